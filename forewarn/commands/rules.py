"""``forewarn rules``: placeholder until its module lands."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``rules`` command."""
    parser = subparsers.add_parser("rules", help="(not yet available)")
    parser.set_defaults(func=lambda args: 2)
