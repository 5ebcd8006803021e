"""Errors of the edge agent and the message schema.

::

    EdgeError           anything edge raises on purpose
    ├── PublishError    the broker did not take a message (not connected, timed out)
    ├── TopicError      a topic that does not follow the forewarn layout (also a ValueError)
    └── PayloadError    a payload whose encoding is unknown, corrupt or too large once
                        decompressed (also a ValueError)

>>> from edge.schema import parse_topic
>>> try:
...     parse_topic("not/a/forewarn/topic")
... except EdgeError as exc:
...     type(exc).__name__
'TopicError'
"""

from __future__ import annotations

__all__ = ["EdgeError", "PayloadError", "PublishError", "TopicError"]


class EdgeError(Exception):
    """Anything the edge agent raises on purpose."""


class PublishError(EdgeError):
    """The broker did not acknowledge a message in time."""


class TopicError(EdgeError, ValueError):
    """A topic that does not follow the forewarn layout."""


class PayloadError(EdgeError, ValueError):
    """A payload whose encoding is unknown, corrupt or too large once decompressed."""
