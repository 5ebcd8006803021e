"""Errors of the core service.

::

    CoreError            anything core raises on purpose
    ├── IngestError      the broker connection failed or was lost for good
    ├── LimitsFileError  a product limits file (config/limits.yaml) is unreadable or invalid
    └── DecodeError      one payload could not be used (it is dead-lettered, never raised out
                         of the ingest loop); ``reason`` is a short counter label
"""

from __future__ import annotations

__all__ = ["CoreError", "DecodeError", "IngestError", "LimitsFileError"]


class CoreError(Exception):
    """Anything core raises on purpose."""


class IngestError(CoreError):
    """The broker connection failed."""


class LimitsFileError(CoreError):
    """A product limits file that cannot be read or does not validate."""


class DecodeError(CoreError):
    """A payload that cannot be used; ``reason`` labels the dead-letter counter."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
