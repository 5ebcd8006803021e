"""``forewarn core``: the core service, on one machine or scaled out on NATS JetStream.

Without options it runs as it always has: one process subscribed to the MQTT broker (the
embedded one unless ``[broker] embedded = false``), detecting, storing and opening cases.
``--engine nats --workers N`` supervises N worker processes that consume the partitioned
JetStream stream (see docs/scaling.md); ``--partitions 0-15`` restricts this machine to a slice
of the partitions, so several machines share one stream.

Every option has a key in the configuration file (``[core]`` and ``[nats]``, documented in
config/forewarn.example.toml); an option given on the command line overrides the file and the
``FOREWARN_*`` environment, one left out leaves them alone. The supervisor resolves the
configuration once and hands the result to its workers on their standard input, so a worker
(also one restarted hours later) runs with exactly the supervisor's configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.nats import NatsConfig
from edge.problems import problems
from forewarn.errors import ConfigError
from forewarn.settings import CoreSettings, Settings, load_settings
from forewarn.workers import (
    WorkerOptions,
    leased_ownership,
    make_service,
    parse_partitions,
    run_direct,
    run_supervised,
    run_worker,
    supervised_partitions,
    worker_command,
)

__all__ = ["register", "resolve_settings"]

_log = logging.getLogger(__name__)


_DESCRIPTION = """\
Runs the core service: receives device telemetry, detects faults while they are small,
stores the data, opens support cases by the rules of every product and sends the notices
(terminal, e-mail, webhook, Apprise) to customers and the support team.

At start it reads and checks everything the configuration names (rules, customer registry,
limits, notice channels) and says what it runs with; a problem is one line and exit code 2.

Engines:
  mqtt  one process subscribed to the MQTT broker (the embedded one unless
        [broker] embedded = false)
  nats  N worker processes on a partitioned NATS JetStream stream, for large fleets
        (docs/scaling.md); --partitions gives this machine a slice of them, so several
        machines share one stream

Every option has a key in the configuration file ([core] and [nats], documented in
config/forewarn.example.toml); an option on the command line overrides the file and the
FOREWARN_* environment. Deployment as a systemd service: docs/deploy.md.
"""


def register(subparsers: Any) -> None:
    """Add the ``core`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "core", help="run the core service (MQTT direct, or workers on NATS JetStream)",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--engine", choices=("mqtt", "nats"), default=None,
                        help="mqtt: one process on the MQTT broker; nats: workers on a "
                        "partitioned JetStream stream ([core] engine, default mqtt)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes on this machine ([core] workers, default 2)")
    parser.add_argument("--nats-url", default=None, help="[nats] url")
    parser.add_argument("--stream-name", default=None, help="[nats] stream")
    parser.add_argument("--ingress-subject", default=None,
                        help="subjects the stream captures (a literal tenant: one stream each; "
                        "[nats] ingress_subject)")
    parser.add_argument("--partition-prefix", default=None,
                        help="subject prefix of the partitioned, stored messages "
                        "([nats] partition_prefix)")
    parser.add_argument("--outbox", action=argparse.BooleanOptionalAction, default=None,
                        help="dispatch notices here; --no-outbox on every machine but one "
                        "([core] outbox, default on)")
    parser.add_argument("--stream-partitions", type=int, default=None, metavar="P",
                        help="partitions of the stream; fixed for the stream's life "
                        "([nats] partitions, default 32)")
    parser.add_argument("--partitions", default=None, metavar="RANGE",
                        help="partitions this machine owns, e.g. 0-15 "
                        "([core] owned_partitions, default all)")
    parser.add_argument("--fetch-batch", type=int, default=None,
                        help="messages per fetch = max_ack_pending per partition "
                        "([nats] fetch_batch, default 64)")
    parser.add_argument("--snapshot-interval", type=float, default=None, metavar="S",
                        help="seconds between detector snapshots ([nats] snapshot_interval_s, "
                        "default 30; for the mqtt engine [core] snapshot_interval_s, default 300)")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="serve Prometheus /metrics here; nats: worker i on PORT + 1 + i "
                        "([core] metrics_port, default 0 = off)")
    parser.add_argument("--retention-hours", type=float, default=None,
                        help="hours the stream keeps telemetry for replay "
                        "([nats] max_age_s / 3600, default 24)")
    parser.add_argument("--stream-max-gb", type=float, default=None,
                        help="disk the stream may use before it drops its oldest "
                        "([nats] max_bytes / 2^30, default 10)")
    parser.add_argument("--influx-url", default=None,
                        help="InfluxDB (v2 write API) URL, instead of [store]")
    parser.add_argument("--influx-bucket", default="forewarn",
                        help="InfluxDB bucket with --influx-url (default forewarn)")
    parser.add_argument("--quiet-notices", action="store_true",
                        help="deliver notices without echoing them")
    parser.add_argument("--own", default=None, help=argparse.SUPPRESS)  # a supervised worker
    parser.add_argument("--ready-file", type=Path, default=None, help=argparse.SUPPRESS)
    # a supervised worker: the supervisor's resolved settings arrive as JSON on stdin
    parser.add_argument("--settings-stdin", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(func=_run)


def resolve_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    """``settings`` with the ``[core]`` and ``[nats]`` options given on the command line.

    Raises :class:`ConfigError` naming the key when an override is out of range.
    """
    core = {"engine": args.engine, "workers": args.workers,
            "owned_partitions": args.partitions, "outbox": args.outbox,
            "snapshot_interval_s": args.snapshot_interval, "metrics_port": args.metrics_port}
    nats: dict[str, object] = {
        "url": args.nats_url, "stream": args.stream_name,
        "ingress_subject": args.ingress_subject, "partition_prefix": args.partition_prefix,
        "partitions": args.stream_partitions, "fetch_batch": args.fetch_batch,
        "snapshot_interval_s": args.snapshot_interval,
        "max_age_s": None if args.retention_hours is None else args.retention_hours * 3600.0,
        "max_bytes": None if args.stream_max_gb is None else int(args.stream_max_gb * 1024**3),
    }
    try:
        return settings.model_copy(update={
            "core": CoreSettings.model_validate(
                {**settings.core.model_dump(), **_given(core)}),
            "nats": NatsConfig.model_validate({**settings.nats.model_dump(), **_given(nats)}),
        })
    except ValidationError as exc:
        raise ConfigError(f"command line: {exc.title}.{problems(exc)[0]}") from exc


def _given(options: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in options.items() if value is not None}


def _options(settings: Settings, args: argparse.Namespace) -> WorkerOptions:
    # the service runs the default detector layered with [detector] from the settings
    return WorkerOptions(nats=settings.nats, influx_url=args.influx_url,
                         influx_bucket=args.influx_bucket, detector=settings.detector)


def _worker_argv(args: argparse.Namespace) -> list[str]:
    # no --config and no [nats] options: the worker's whole configuration is the settings
    # the supervisor resolved, written to its stdin (off the process list: URLs and tokens
    # may carry credentials), so a file edited since cannot make one worker differ
    argv = ["-v"] * args.verbose + ["core", "--engine", "nats", "--settings-stdin",
                                    "--influx-bucket", args.influx_bucket]
    if args.influx_url is not None:
        argv += ["--influx-url", args.influx_url]
    return worker_command(argv)


def _load(args: argparse.Namespace) -> Settings:
    if args.settings_stdin:
        try:
            settings = Settings.model_validate_json(sys.stdin.buffer.read())
        except ValidationError as exc:
            raise ConfigError(f"settings from the supervisor: {exc}") from exc
    else:
        settings = load_settings(args.config)
    return resolve_settings(settings, args)


def _say(line: str) -> None:
    print(f"forewarn core: {line}", flush=True)


def _run(args: argparse.Namespace) -> int:
    settings = _load(args)
    options = _options(settings, args)
    if args.own is None and settings.core.engine == "mqtt":
        return asyncio.run(run_direct(settings, options, echo=not args.quiet_notices, say=_say))
    if args.own is not None:
        if args.own.startswith("lease:"):
            asyncio.run(run_worker(settings, options, [], args.ready_file, leased=True,
                                   worker_index=int(args.own.split(":", 1)[1])))
        else:
            asyncio.run(run_worker(settings, options, parse_partitions(args.own),
                                   args.ready_file))
        return 0
    partitions = supervised_partitions(settings)
    # read and check the rules, registry, limits and channels once, before any worker starts
    for line in make_service(settings, options).describe():
        _say(line)
    _say(f"{settings.core.workers} workers on "
         + (f"leased partitions (bucket {settings.nats.lease_bucket}) of "
            if leased_ownership(settings) else
            f"partitions {settings.core.owned_partitions or f'0-{settings.nats.partitions - 1}'}"
            " of ")
         + f"{settings.nats.stream} at {_without_password(settings.nats.url)}")
    asyncio.run(run_supervised(settings, partitions, _worker_argv(args),
                               echo=not args.quiet_notices))
    return 0


def _without_password(url: str) -> str:
    """``url`` with a password it carries replaced by ``***`` (for printing)."""
    head, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    auth, _, host = rest.rpartition("@")
    user, colon, _ = auth.partition(":")
    return f"{head}{sep}{user}{':***' if colon else ''}@{host}"
