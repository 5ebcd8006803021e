"""``forewarn report proactivity``: did forewarn open a case before the customer called?

Reads the tickets the helpdesk posted (``POST /api/v1/helpdesk/events``), the cases and the
customers' answers on their status pages from the case database (``[cases] url``, ``--db`` or
``--demo-dir``): tickets about a device that had a case opened before the ticket (lead time:
median, quartiles and distribution), tickets with no prior case (missed), cases without a
ticket (handled before the call) and customer answers by kind. ``--json`` prints one JSON
document with the same figures.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from forewarn.casedb import add_case_db_options, open_args_case_db
from forewarn.errors import ForewarnError
from forewarn.report.proactivity import proactivity
from rules.db import CaseRow, TicketRow
from rules.timeparse import parse_duration

__all__ = ["register", "run_proactivity"]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _duration(option: str, value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ForewarnError(f"{option} {value}: {exc}") from exc
    if seconds <= 0:
        raise ForewarnError(f"{option} {value}: give a positive duration, e.g. 30d")
    return seconds


def _until(args: argparse.Namespace, session: Session) -> float:
    if args.until:
        try:
            return datetime.fromisoformat(args.until).replace(
                tzinfo=datetime.fromisoformat(args.until).tzinfo or UTC).timestamp()
        except ValueError as exc:
            raise ForewarnError(f"--until {args.until}: not an ISO date/time "
                                "(e.g. 2026-12-07 or 2026-12-07T12:00)") from exc
    if getattr(args, "demo_dir", None) is not None:
        # a demo ran in simulated time: its end is the newest case or ticket
        newest = [session.scalar(select(func.max(CaseRow.opened_at))),
                  session.scalar(select(func.max(TicketRow.opened_at)))]
        found = [float(t) for t in newest if t is not None]
        if found:
            return max(found)
    return time.time()


def run_proactivity(args: argparse.Namespace) -> int:
    """Print the proactivity figures of the window."""
    since = _duration("--since", args.since)
    lookback = _duration("--lookback", args.lookback)
    engine = open_args_case_db(args)
    try:
        with Session(engine) as session:
            until = _until(args, session)
        report = proactivity(engine, since, until, lookback)
    except SQLAlchemyError as exc:
        raise ForewarnError(f"case database: {exc}") from exc
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    _print(report)
    return 0


def _print(report: dict[str, Any]) -> None:
    lead = report["lead_time_s"]
    share = report["forewarned_share"]
    print(f"proactivity {_when(report['from'])} .. {_when(report['until'])}")
    print(f"  tickets                     {report['tickets']}")
    print(f"  case opened before ticket   {report['forewarned']}"
          + (f"  ({share:.0%} of tickets naming a device)" if share is not None else ""))
    print(f"    customer was told first   {report['forewarned_customer_told']}")
    print(f"  no prior case (missed)      {report['missed']}")
    print(f"  ticket names no device      {report['tickets_without_device']}")
    print(f"  lead time                   median {_span(lead['median'])}, "
          f"p25 {_span(lead['p25'])}, p75 {_span(lead['p75'])}, "
          f"min {_span(lead['min'])}, max {_span(lead['max'])}")
    print("  lead time distribution      " + ", ".join(
        f"{label} {n}" for label, n in report["lead_time_distribution"].items()))
    print(f"  cases opened                {report['cases']}")
    print(f"  cases without a ticket      {report['cases_without_ticket']}")
    print("  customer answers            " + ", ".join(
        f"{kind} {n}" for kind, n in report["answers"].items()))


def register(subparsers: Any) -> None:
    """Add the ``report`` command."""
    parser = subparsers.add_parser(
        "report", help="reports from the case database (proactivity)",
        description="Reports from the case database.")
    sub = parser.add_subparsers(dest="report_command", metavar="REPORT", required=True)
    pro = sub.add_parser("proactivity", help="cases opened before the customer's ticket, "
                         "lead times, missed tickets, customer answers", description=__doc__)
    pro.add_argument("--since", default="30d", metavar="SPAN",
                     help="the window: tickets and cases of the last SPAN (default 30d)")
    pro.add_argument("--until", default=None, metavar="ISO",
                     help="the window's end (default: now; with --demo-dir the demo's end)")
    pro.add_argument("--lookback", default="14d", metavar="SPAN",
                     help="a case counts for a ticket about its device opened up to SPAN "
                     "later (default 14d)")
    pro.add_argument("--json", action="store_true", help="one JSON document")
    add_case_db_options(pro)
    pro.set_defaults(func=run_proactivity)
