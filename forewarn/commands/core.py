"""``forewarn core``: placeholder until its module lands."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``core`` command."""
    parser = subparsers.add_parser("core", help="(not yet available)")
    parser.set_defaults(func=lambda args: 2)
