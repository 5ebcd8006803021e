"""``forewarn tokens``: API and console tokens (create, list, revoke); stored hashed."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from forewarn.auth import ROLES, TokenStore
from forewarn.casedb import add_case_db_options, open_args_case_db

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``tokens`` command with its ``create``, ``list`` and ``revoke`` actions."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "tokens", help="create, list or revoke API tokens of the support console",
        description="Tokens are stored hashed in the case database ([cases] url, or a demo "
        "run's with --demo-dir); a new token is shown once.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a token and print it (once)")
    create.add_argument("--tenant", required=True, help="the tenant the token sees")
    create.add_argument("--role", required=True, choices=ROLES,
                        help="viewer reads; agent also works cases; admin also retries notices; "
                        "ingest only posts telemetry to core's HTTP ingest (no console access)")
    create.add_argument("--name", default="", help="who or what holds it (shown in timelines)")
    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--tenant", default=None, help="only this tenant's")
    revoke = actions.add_parser("revoke", help="revoke a token by its key")
    revoke.add_argument("key", help="the 12 hex digits after fw_")
    add_case_db_options(parser, db=False, actions=(create, listing, revoke))
    parser.set_defaults(func=_run)


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _run(args: argparse.Namespace) -> int:
    engine = open_args_case_db(args)
    try:
        tokens = TokenStore(engine)
        if args.action == "create":
            issued = tokens.create(args.tenant, args.role, args.name)
            print(issued.token)
            return 0
        if args.action == "revoke":
            if not tokens.revoke(args.key):
                print(f"forewarn: no active token {args.key}")
                return 1
            return 0
        table = Table("key", "tenant", "role", "name", "created", "revoked")
        for row in tokens.list(args.tenant):
            table.add_row(row.key, row.tenant, row.role, row.name, _when(row.created_at),
                          _when(row.revoked_at))
        Console().print(table)
        return 0
    finally:
        engine.dispose()
