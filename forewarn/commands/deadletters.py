"""``forewarn deadletters list``: the messages core refused, newest first, and why.

Core dead-letters every message it cannot use (undecodable, too deep, a timestamp beyond the
future horizon, a device publishing under another tenant, a message that crashed the decoder
or a detector) and goes on ingesting; it keeps them in the case database (``[cases] url``, or
``--db``): reason, time, topic, what was wrong and the payload's first bytes, plus the total
of every reason. ``--json`` prints the same as one JSON document.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from core.dead_letter import DeadLetter, DeadLetterStore
from forewarn.casedb import add_case_db_options, open_args_case_db
from forewarn.errors import ForewarnError
from forewarn.text import paragraph

__all__ = ["register", "run_list"]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _head(letter: DeadLetter) -> str:
    """The payload's first bytes as text, undecodable bytes escaped."""
    return letter.payload_head.decode("utf-8", "backslashreplace")


def _as_json(letter: DeadLetter) -> dict[str, Any]:
    return {"ts": letter.ts, "time": _when(letter.ts), "reason": letter.reason,
            "topic": letter.topic, "detail": letter.detail, "payload_head": _head(letter)}


def run_list(args: argparse.Namespace) -> int:
    """Print the totals by reason and the newest dead letters."""
    if args.limit < 0:
        raise ForewarnError(f"--limit {args.limit}: give 0 or more")
    engine = open_args_case_db(args)
    try:
        store = DeadLetterStore(engine)
        counts = store.counts()
        letters = store.letters(args.reason, args.limit)
    except SQLAlchemyError as exc:
        raise ForewarnError(f"case database: {exc}") from exc
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps({"counts": counts, "dead_letters": [_as_json(d) for d in letters]},
                         indent=2))
        return 0
    print("dead letters: " + (", ".join(f"{reason} {n}" for reason, n in counts.items())
                              or "none"))
    for letter in letters:
        print(f"{_when(letter.ts)}  {letter.reason:<17} {letter.topic}")
        print(f"        {letter.detail}")
        print(f"        first bytes: {_head(letter)[:120]!r}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``deadletters`` command."""
    parser = subparsers.add_parser(
        "deadletters", help="list the messages core refused (dead letters)",
        description=paragraph(__doc__))
    sub = parser.add_subparsers(dest="deadletters_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="totals by reason and the newest dead letters",
                             description=__doc__)
    listing.add_argument("--reason", default=None, metavar="R",
                         help="only this reason (e.g. invalid, too_deep, future_timestamp, "
                         "tenant_mismatch, crash)")
    listing.add_argument("--limit", type=int, default=20, metavar="N",
                         help="newest N dead letters (default 20)")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    listing.set_defaults(func=run_list)
    add_case_db_options(parser, actions=(listing,))
