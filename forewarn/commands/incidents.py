"""``forewarn incidents list|show|decide|close``: fleet incidents in the case database.

A fleet incident links the cases that many devices of one cohort (product and firmware,
production batch, model or region) opened for one rule within a window (``[incidents]``,
docs/incidents.md). ``decide`` sends (``--message``) or drops (``--quiet``) the customer
messages of an incident that holds them; ``close`` ends an incident. The work is in
:mod:`forewarn.incidents`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import time
from typing import Any

from forewarn.casedb import add_case_db_options, open_args_case_db
from forewarn.errors import ForewarnError
from forewarn.text import paragraph, plural

__all__ = ["register"]


def _list(args: argparse.Namespace) -> int:
    from forewarn.incidents import incident_list, render_list

    engine = open_args_case_db(args)
    try:
        views = incident_list(engine, args.status)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps([v.model_dump() for v in views], indent=2))
    else:
        print("\n".join(render_list(views)))
    return 0


def _show(args: argparse.Namespace) -> int:
    from forewarn.incidents import incident_detail, render_detail

    engine = open_args_case_db(args)
    try:
        detail = incident_detail(engine, args.id)
    finally:
        engine.dispose()
    if detail is None:
        raise ForewarnError(f"no incident INC-{args.id}")
    if args.json:
        print(json.dumps(detail.model_dump(), indent=2))
    else:
        print("\n".join(render_detail(detail)))
    return 0


def _decide(args: argparse.Namespace) -> int:
    from forewarn.incidents import decide_incident
    from forewarn.service import load_configured
    from forewarn.settings import load_settings

    registry = load_configured(load_settings(args.config)).registry
    engine = open_args_case_db(args)
    try:
        queued = decide_incident(engine, registry, args.id,
                                 "message" if args.message else "quiet", args.by, time.time())
    finally:
        engine.dispose()
    print(f"INC-{args.id}: {'message' if args.message else 'quiet'}; "
          f"{plural(queued, 'customer message')} queued")
    return 0


def _close(args: argparse.Namespace) -> int:
    from forewarn.incidents import close_incident

    engine = open_args_case_db(args)
    try:
        close_incident(engine, args.id, args.by, time.time())
    finally:
        engine.dispose()
    print(f"INC-{args.id} closed")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``incidents`` command."""
    parser = subparsers.add_parser(
        "incidents", help="fleet incidents: many devices of one cohort with one problem",
        description=paragraph(__doc__))
    sub = parser.add_subparsers(dest="incidents_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="incidents, newest first", description=__doc__)
    listing.add_argument("--status", choices=("open", "closed"), default=None,
                         help="only open or only closed ones")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    listing.set_defaults(func=_list)
    show = sub.add_parser("show", help="one incident and the cases it links")
    show.add_argument("id", type=int, metavar="ID", help="the incident's number (INC-ID)")
    show.add_argument("--json", action="store_true", help="one JSON document")
    show.set_defaults(func=_show)
    decide = sub.add_parser("decide", help="send or drop the held customer messages")
    decide.add_argument("id", type=int, metavar="ID", help="the incident's number (INC-ID)")
    choice = decide.add_mutually_exclusive_group(required=True)
    choice.add_argument("--message", action="store_true",
                        help="send each held customer the incident's message (once a device)")
    choice.add_argument("--quiet", action="store_true", help="tell the customers nothing")
    decide.add_argument("--by", default=getpass.getuser(), help="who decided")
    decide.set_defaults(func=_decide)
    close = sub.add_parser("close", help="close an open incident")
    close.add_argument("id", type=int, metavar="ID", help="the incident's number (INC-ID)")
    close.add_argument("--by", default=getpass.getuser(), help="who closed it")
    close.set_defaults(func=_close)
    add_case_db_options(parser, actions=(listing, show, decide, close))
