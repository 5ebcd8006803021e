"""Errors of the edge agent.

::

    EdgeError           anything the agent raises on purpose
    └── PublishError    the broker did not take a message (not connected, timed out)
"""

from __future__ import annotations

__all__ = ["EdgeError", "PublishError"]


class EdgeError(Exception):
    """Anything the edge agent raises on purpose."""


class PublishError(EdgeError):
    """The broker did not acknowledge a message in time."""
