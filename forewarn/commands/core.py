"""``forewarn core``: the core service, on one machine or scaled out on NATS JetStream.

Without options it runs as it always has: one process subscribed to the MQTT broker (the
embedded one unless ``[broker] embedded = false``), detecting, storing and opening cases.
``--engine nats --workers N`` supervises N worker processes that consume the partitioned
JetStream stream (see docs/scaling.md); ``--partitions 0-15`` restricts this machine to a slice
of the partitions, so several machines share one stream.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

from core.nats import NatsConfig
from forewarn.settings import load_settings
from forewarn.workers import (
    Supervisor,
    WorkerOptions,
    dispatch_outbox,
    parse_partitions,
    run_direct,
    run_worker,
    worker_command,
)

__all__ = ["register"]

_log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``core`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "core", help="run the core service (MQTT direct, or workers on NATS JetStream)",
        description=__doc__,
    )
    parser.add_argument("--engine", choices=("mqtt", "nats"), default="mqtt",
                        help="mqtt: one process on the MQTT broker (default); nats: workers on "
                        "a partitioned JetStream stream")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes on this machine (nats engine; default 2)")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream-name", default="FOREWARN_TELEMETRY")
    parser.add_argument("--ingress-subject", default="forewarn.v1.*.*.telemetry",
                        help="subjects the stream captures (a literal tenant: one stream each)")
    parser.add_argument("--partition-prefix", default="fw.tp",
                        help="subject prefix of the partitioned, stored messages")
    parser.add_argument("--no-outbox", action="store_true",
                        help="do not dispatch notices here (run one dispatcher per cluster)")
    parser.add_argument("--stream-partitions", type=int, default=32, metavar="P",
                        help="partitions of the stream; fixed for the stream's life (default 32)")
    parser.add_argument("--partitions", default=None, metavar="RANGE",
                        help="partitions this machine owns, e.g. 0-15 (default: all)")
    parser.add_argument("--fetch-batch", type=int, default=64,
                        help="messages per fetch = max_ack_pending per partition (default 64)")
    parser.add_argument("--snapshot-interval", type=float, default=30.0, metavar="S",
                        help="seconds between detector snapshots (default 30)")
    parser.add_argument("--retention-hours", type=float, default=24.0,
                        help="hours the stream keeps telemetry for replay (default 24)")
    parser.add_argument("--stream-max-gb", type=float, default=10.0,
                        help="disk the stream may use before it drops its oldest (default 10)")
    parser.add_argument("--influx-url", default=None,
                        help="InfluxDB (v2 write API) URL; default: the embedded store")
    parser.add_argument("--influx-bucket", default="forewarn")
    parser.add_argument("--quiet-notices", action="store_true",
                        help="deliver notices without echoing them")
    parser.add_argument("--own", default=None, help=argparse.SUPPRESS)  # a supervised worker
    parser.add_argument("--ready-file", type=Path, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=_run)


def _options(args: argparse.Namespace) -> WorkerOptions:
    return WorkerOptions(
        nats=NatsConfig(url=args.nats_url, partitions=args.stream_partitions,
                        stream=args.stream_name, ingress_subject=args.ingress_subject,
                        partition_prefix=args.partition_prefix,
                        fetch_batch=args.fetch_batch, snapshot_interval_s=args.snapshot_interval,
                        max_age_s=args.retention_hours * 3600.0,
                        max_bytes=int(args.stream_max_gb * 1024**3)),
        influx_url=args.influx_url, influx_bucket=args.influx_bucket,
    )


def _worker_argv(args: argparse.Namespace) -> list[str]:
    argv = ["-v"] * args.verbose
    if args.config is not None:
        argv += ["--config", str(args.config)]
    argv += ["core", "--engine", "nats", "--nats-url", args.nats_url,
             "--stream-name", args.stream_name, "--ingress-subject", args.ingress_subject,
             "--partition-prefix", args.partition_prefix,
             "--stream-partitions", str(args.stream_partitions),
             "--fetch-batch", str(args.fetch_batch),
             "--snapshot-interval", str(args.snapshot_interval),
             "--retention-hours", str(args.retention_hours),
             "--stream-max-gb", str(args.stream_max_gb),
             "--influx-bucket", args.influx_bucket]
    if args.influx_url is not None:
        argv += ["--influx-url", args.influx_url]
    return worker_command(argv)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(Path(args.config) if args.config else None)
    # the service runs the fleet profile layered with [detector] from the settings
    options = dataclasses.replace(_options(args), detector=settings.detector)
    if args.engine == "mqtt":
        asyncio.run(run_direct(settings, options))
        return 0
    if args.own is not None:
        asyncio.run(run_worker(settings, options, parse_partitions(args.own), args.ready_file))
        return 0
    partitions = (parse_partitions(args.partitions) if args.partitions
                  else list(range(args.stream_partitions)))
    if args.workers < 1 or args.workers > len(partitions):
        _log.error("--workers must be between 1 and the number of partitions owned")
        return 2

    async def supervise() -> None:
        import signal

        supervisor = Supervisor(partitions, args.workers, _worker_argv(args))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def shutdown() -> None:
            stop.set()
            supervisor.stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, shutdown)
        outbox = None if args.no_outbox else asyncio.create_task(
            dispatch_outbox(settings, stop, echo=not args.quiet_notices))
        await supervisor.run()
        stop.set()
        if outbox is not None:
            await outbox

    asyncio.run(supervise())
    return 0
