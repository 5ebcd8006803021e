"""``forewarn firmware list``: each firmware version per product, the devices on it, and the case
rate before and after devices moved to it (cases per 1000 device-days).

The history is what devices' status messages reported (the case database, ``[cases] url`` or
``--db``); ``--window`` (default 30d) is how long before and after each move cases count.
``--json`` prints the same as one JSON document (what ``GET /api/v1/firmware`` answers).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from forewarn.casedb import add_case_db_options, open_args_case_db
from forewarn.console.schemas import FirmwareVersion, FirmwareView
from forewarn.errors import ForewarnError
from forewarn.text import paragraph
from rules.firmware import rollout_view
from rules.timeparse import parse_duration

__all__ = ["register", "run_list"]


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def run_list(args: argparse.Namespace) -> int:
    """Print every version with its devices and rates."""
    try:
        window = parse_duration(args.window)
    except ValueError as exc:
        raise ForewarnError(f"--window {args.window}: {exc}") from exc
    if window <= 0:
        raise ForewarnError(f"--window {args.window}: give a positive duration, e.g. 30d")
    from forewarn.backtest import newest_sample

    tenant = args.tenant
    if tenant is None:
        from forewarn.settings import load_settings

        tenant = load_settings(args.config if getattr(args, "config", None) else None).tenant
    engine = open_args_case_db(args)
    try:
        # a demo's cases happened in simulated time: "now" is its newest sample, as in the
        # console (``forewarn serve --demo-dir``), not today's date
        now = newest_sample(engine) if getattr(args, "demo_dir", None) is not None else None
        rows = rollout_view(engine, tenant, now=time.time() if now is None else now,
                            window_s=window)
    except SQLAlchemyError as exc:
        raise ForewarnError(f"case database: {exc}") from exc
    finally:
        engine.dispose()
    if args.json:
        view = FirmwareView(window_s=window, versions=[FirmwareVersion.of(r) for r in rows])
        print(json.dumps({"tenant": tenant, **view.model_dump()}, indent=2))
        return 0
    if not rows:
        print(f"no firmware reported by tenant {tenant}'s devices yet")
        return 0
    print(f"{'product':<14} {'firmware':<12} {'devices':>7} {'moved':>6} {'first seen':<17} "
          f"{'before':>8} {'after':>8} {'on it':>8}   (cases per 1000 device-days)")
    for r in rows:
        first = datetime.fromtimestamp(r.first_seen, tz=UTC).strftime("%Y-%m-%d %H:%M")
        print(f"{r.product:<14} {r.firmware:<12} {r.devices:>7} {r.moved:>6} {first:<17} "
              f"{_rate(r.rate_before):>8} {_rate(r.rate_after):>8} {_rate(r.rate_on):>8}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``firmware`` command."""
    parser = subparsers.add_parser(
        "firmware", help="firmware versions: devices on each and case rates before and after",
        description=paragraph(__doc__))
    sub = parser.add_subparsers(dest="firmware_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="every version per product with its case rates",
                             description=__doc__)
    listing.add_argument("--window", default="30d", metavar="SPAN",
                         help="cases count this long before and after a move (default 30d)")
    listing.add_argument("--tenant", default=None,
                         help="whose devices (default: the settings' tenant)")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    listing.set_defaults(func=run_list)
    add_case_db_options(parser, actions=(listing,))
