"""The support console and REST API (``forewarn serve``): see :mod:`forewarn.console.app`."""

from __future__ import annotations

from forewarn.console.app import create_app
from forewarn.console.context import ConsoleContext

__all__ = ["ConsoleContext", "create_app"]
