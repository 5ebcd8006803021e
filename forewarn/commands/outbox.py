"""``forewarn outbox list`` / ``forewarn outbox retry``: see and revive the notification outbox.

Reads the case database of the configuration (``[cases] url``), of a demo run
(``--demo-dir var/demo``) or the one ``--db`` names. ``list`` shows
the newest notices (``--status dead`` for the dead letters) with their attempts; ``retry`` puts
dead notices back in line (all of them, or the ids given) for the dispatcher.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.casedb import add_case_db_options, open_args_case_db
from forewarn.errors import ForewarnError
from forewarn.text import paragraph, plural
from rules.db import NoticeRow
from rules.outbox import Outbox

__all__ = ["register", "run_list", "run_retry"]


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def run_list(args: argparse.Namespace) -> int:
    """Print counts by status and the newest notices."""
    engine = open_args_case_db(args)
    try:
        outbox = Outbox(engine, {}, clock=time.time)
        counts = outbox.counts()
        print("notices: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                             or "none"))
        for notice in outbox.notices(args.status, args.limit):
            case = "-" if notice.case_id is None else notice.case_id  # a service notice
            print(f"#{notice.id:<6} {notice.status:<10} {notice.audience:<8} "
                  f"{notice.channel:<9} case {case:<5} attempts {notice.attempts} "
                  f"next {_when(notice.next_attempt_at)}  {notice.subject[:60]}")
            if notice.last_error:
                print(f"        last error: {notice.last_error}")
            if args.attempts:
                for attempt in outbox.attempts(notice.id):
                    print(f"        {_when(attempt.ts)} "
                          f"{'ok' if attempt.ok else 'failed: ' + (attempt.error or '')}")
    finally:
        engine.dispose()
    return 0


def run_retry(args: argparse.Namespace) -> int:
    """Revive dead notices; naming a notice that is not there or not dead is an error."""
    engine = open_args_case_db(args)
    try:
        if args.ids:
            with Session(engine) as session:
                status = {row.id: row.status for row in session.execute(
                    select(NoticeRow.id, NoticeRow.status).where(NoticeRow.id.in_(args.ids)))}
            missing = [i for i in args.ids if i not in status]
            alive = [f"#{i} is {status[i]}" for i in args.ids if status.get(i, "dead") != "dead"]
            if missing or alive:
                problems = ([f"no notice {', '.join(f'#{i}' for i in missing)}"]
                            if missing else []) + alive
                raise ForewarnError(f"{'; '.join(problems)} (only dead notices are retried; "
                                    "'forewarn outbox list --status dead' lists them)")
        revived = Outbox(engine, {}, clock=time.time).retry(args.ids or None)
    finally:
        engine.dispose()
    print(f"{plural(revived, 'dead notice')} back in line")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``outbox`` command."""
    parser = subparsers.add_parser(
        "outbox", help="list notices, retry dead ones",
        description=paragraph(__doc__))
    sub = parser.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="counts by status and the newest notices")
    listing.add_argument("--status", choices=("pending", "sent", "dead", "suppressed"),
                         default=None, help="only notices in this state (default: all)")
    listing.add_argument("--limit", type=int, default=20, metavar="N",
                         help="the newest N notices (default 20)")
    listing.add_argument("--attempts", action="store_true", help="show every attempt")
    listing.set_defaults(func=run_list)
    retry = sub.add_parser("retry", help="put dead notices back in line")
    retry.add_argument("ids", type=int, nargs="*", metavar="ID",
                       help="notice ids (default: every dead notice)")
    retry.set_defaults(func=run_retry)
    add_case_db_options(parser, actions=(listing, retry))
