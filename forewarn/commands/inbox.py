"""``forewarn inbox``: receive customers' e-mail replies over SMTP and file them on their cases.

A reply that quotes ``FW-<id>`` and comes from the address that case's customer notice went to
becomes a ``customer reply`` line on the case's timeline and a team notice (``[notify] team``);
any other mail is kept as a dead letter (reason ``unfiled_reply``, see ``forewarn deadletters
list``). Listens on ``--host``/``--port`` until Ctrl-C.
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

from aiosmtpd.controller import Controller

from forewarn.casedb import add_case_db_options, open_args_case_db
from forewarn.inbox import ReplyHandler
from forewarn.settings import load_settings
from rules.case_actions import Push

__all__ = ["register", "run_inbox"]


def run_inbox(args: argparse.Namespace) -> int:
    """Serve SMTP until interrupted."""
    settings = load_settings(args.config)
    notify = settings.notify
    team_to = (notify.email.team_address
               if notify.team == "email" and notify.email is not None else "")
    engine = open_args_case_db(args)
    handler = ReplyHandler(engine, Push(notify.team, team_to))
    controller = Controller(handler, hostname=args.host, port=args.port)
    controller.start()
    print(f"forewarn inbox: SMTP on {args.host}:{args.port} (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
        engine.dispose()
        print(f"filed {handler.filed}, kept as dead letters {handler.unfiled}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``inbox`` command."""
    parser = subparsers.add_parser("inbox", help="file customers' e-mail replies on their cases "
                                   "(an SMTP receiver)", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on "
                        "(default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=2525, help="SMTP port (default 2525)")
    add_case_db_options(parser)
    parser.set_defaults(func=run_inbox)
