"""``forewarn ingest test``: try a mapping (``[[ingest.mapping]]``) on a payload before core does;
``forewarn ingest sniff``: watch the broker and propose mappings from what devices publish.

Prints the decoded batch core would ingest (tenant, device, product, each reading's time and
field values) and exits 0, or prints the dead letter core would record (its reason and what did
not match) and exits 1. An unknown mapping or an unreadable file is exit code 2. See
docs/connect.md.

Example::

  forewarn --config forewarn.toml ingest test --mapping acme-json \\
      --topic acme/s1/hp-9/state --payload reading.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from forewarn.text import paragraph

__all__ = ["register"]


def _run_test(args: argparse.Namespace) -> int:
    from forewarn.ingest import read_payload, try_mapping
    from forewarn.settings import load_settings

    settings = load_settings(args.config)
    births = [(topic, read_payload(Path(path))) for topic, path in args.birth or ()]
    return try_mapping(settings, args.mapping, args.topic, read_payload(args.payload),
                        as_json=args.json, before=births)


def register(subparsers: Any) -> None:
    """Add the ``ingest`` command."""
    parser = subparsers.add_parser(
        "ingest", help="try the mappings of fleets that publish their own topics and payloads",
        description=paragraph(__doc__))
    actions = parser.add_subparsers(dest="ingest_command", metavar="ACTION", required=True)
    test = actions.add_parser(
        "test", help="decode one payload through a mapping, or say why core would refuse it",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    test.add_argument("--mapping", required=True, metavar="NAME",
                      help="the name of an [[ingest.mapping]] in the configuration")
    test.add_argument("--topic", required=True, metavar="TOPIC",
                      help="the topic the payload arrives on (it gives device and tenant)")
    test.add_argument("--payload", required=True, type=Path, metavar="FILE",
                      help="a file holding the payload as the device sends it ('-': stdin)")
    test.add_argument("--birth", nargs=2, action="append", metavar=("TOPIC", "FILE"),
                      help="Sparkplug B: a birth (NBIRTH/DBIRTH) decoded first, so the payload's "
                      "aliases resolve (repeatable)")
    test.add_argument("--json", action="store_true",
                      help="print the batch (or the dead letter) as JSON")
    test.set_defaults(func=_run_test)
    sniff = actions.add_parser(
        "sniff", help="watch the broker ([mqtt] host/port) and propose [[ingest.mapping]] blocks",
        description="Subscribes to the broker of [mqtt] (a throw-away session), collects what "
        "devices publish for --seconds, groups the topics into patterns and prints a proposed "
        "[[ingest.mapping]] per pattern of JSON or line protocol: the topic with named "
        "wildcards, the numeric keys, the time key. Check a proposal with 'ingest test'.")
    sniff.add_argument("--seconds", type=float, default=30.0, metavar="S",
                       help="how long to listen (default 30)")
    sniff.add_argument("--filter", default="#", metavar="TOPIC",
                       help="the topic filter to listen to (default '#': everything)")
    sniff.add_argument("--max-messages", type=int, default=10_000, metavar="N",
                       help="stop after this many messages (default 10000)")
    sniff.add_argument("--tenant", default=None, metavar="NAME",
                       help="the tenant the proposals name (default: the configuration's)")
    sniff.set_defaults(func=_run_sniff)


def _run_sniff(args: argparse.Namespace) -> int:
    import asyncio

    from forewarn.errors import ConfigError
    from forewarn.settings import load_settings
    from forewarn.sniff import propose, sniff
    from forewarn.text import plural

    if args.seconds <= 0 or args.max_messages < 1:
        raise ConfigError("--seconds must be above 0 and --max-messages at least 1")
    settings = load_settings(args.config)
    seen = asyncio.run(sniff(settings.mqtt, args.seconds, args.filter, args.max_messages))
    proposals = propose(seen, args.tenant or settings.tenant)
    print(f"# {len(seen)} messages in {args.seconds:g} s on {args.filter}; "
          f"{plural(len(proposals), 'proposed mapping')}")
    for proposal in proposals:
        print()
        print(proposal.toml())
    return 0
