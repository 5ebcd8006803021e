"""Errors of the core service.

::

    CoreError                   anything core raises on purpose
    ├── LimitsFileError         a product limits file (config/limits.yaml) is unreadable or
    │                           invalid
    ├── DecodeError             one payload could not be used (it is dead-lettered, never raised
    │   │                       out of the ingest loop); ``reason`` is a short counter label
    │   └── NoTelemetry         a message understood and used that holds no readings (a
    │                           Sparkplug death): counted, not dead-lettered
    └── StoreError              the time-series store could not take or give data (down,
        │                       timed out: try again later)
        └── StoreRejectedError  the store refused the data for good (malformed, unauthorised)

The ingestor never gives up on a lost broker (it reconnects with backoff), so there is no
ingest error to raise.
"""

from __future__ import annotations

__all__ = [
    "CoreError", "DecodeError", "LimitsFileError", "NoTelemetry", "StoreError",
    "StoreRejectedError",
]


class CoreError(Exception):
    """Anything core raises on purpose."""


class LimitsFileError(CoreError):
    """A product limits file that cannot be read or does not validate."""


class DecodeError(CoreError):
    """A payload that cannot be used; ``reason`` labels the dead-letter counter."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class NoTelemetry(DecodeError):
    """A message that was understood and used but holds no readings (a Sparkplug death, a
    birth without numeric metrics): the pipeline counts it and does not dead-letter it."""

    def __init__(self, detail: str) -> None:
        super().__init__("no_telemetry", detail)


class StoreError(CoreError):
    """The store could not take or give data (unreachable, refused, timed out)."""


class StoreRejectedError(StoreError):
    """The store answered and refused the data for good (malformed, unauthorised, wrong bucket).

    Trying again will not help, so :class:`~core.store.buffered.BufferedStore` does not spool it.
    """
