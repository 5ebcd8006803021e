"""``forewarn backfill``: re-score a device's stored history with the current detectors.

    forewarn backfill --device hp-0001 --start 2026-11-01 --stop 2026-11-08
    forewarn backfill --device hp-0001 --start 1761955200 --stop 1762560000 --tenant acme
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from core.detect import make_detector
from core.store.base import StoreError
from forewarn.backfill import backfill, open_store
from forewarn.errors import ForewarnError
from forewarn.settings import load_settings

__all__ = ["parse_time", "register"]


def parse_time(text: str) -> float:
    """Epoch seconds from epoch seconds or an ISO 8601 date/time (UTC unless it says otherwise).

    >>> parse_time("1700000000"), parse_time("2023-11-14T22:13:20Z"), parse_time("1970-01-02")
    (1700000000.0, 1700000000.0, 86400.0)
    """
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch seconds nor an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def register(subparsers: Any) -> None:
    """Add the ``backfill`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "backfill",
        help="re-score a device's stored history with the current detectors",
        description=(
            "Reads the device's samples in [start, stop) from the configured store, oldest "
            "first, runs them through a fresh detector and writes the new anomaly scores back "
            "over the old ones."
        ),
    )
    parser.add_argument("--device", required=True, help="device id")
    parser.add_argument("--start", required=True, type=parse_time,
                        help="first time (epoch seconds or ISO 8601, UTC by default)")
    parser.add_argument("--stop", required=True, type=parse_time,
                        help="end time, not included (epoch seconds or ISO 8601)")
    parser.add_argument("--tenant", default=None, help="tenant (default: the configured one)")
    parser.add_argument("--product", default=None,
                        help="product tag of the samples (default: asked from the store)")
    parser.add_argument("--chunk-hours", type=float, default=24.0,
                        help="hours of history read per step (default 24)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if not args.stop > args.start:
        raise ForewarnError("--stop must be later than --start")
    settings = load_settings(args.config)
    tenant = args.tenant or settings.tenant
    detector_config = settings.detector  # the profile the service runs
    try:
        store = open_store(settings)
    except StoreError as exc:
        raise ForewarnError(f"store: {exc}") from exc
    columns = (TextColumn("backfill {task.description}"), BarColumn(),
               TextColumn("{task.fields[samples]:,} samples"), TimeRemainingColumn())
    try:
        with Progress(*columns, disable=args.quiet) as bar:
            task = bar.add_task(args.device, total=1.0, samples=0)
            count = backfill(
                store, lambda: make_detector(detector_config), tenant, args.device,
                args.start, args.stop,
                lambda fraction, samples: bar.update(task, completed=fraction, samples=samples),
                chunk_s=args.chunk_hours * 3600.0, product=args.product,
            )
    except StoreError as exc:
        raise ForewarnError(f"store: {exc}") from exc
    finally:
        store.close()
    if count == 0:
        print(f"no samples of {tenant}/{args.device} stored in that time range")
    else:
        print(f"re-scored {count:,} samples of {tenant}/{args.device}")
    return 0
