"""The fleet's error: a :class:`~forewarn.errors.ForewarnError`, reported as one line."""

from __future__ import annotations

from forewarn.errors import ForewarnError

__all__ = ["FleetError"]


class FleetError(ForewarnError):
    """The fleet could not do what it was asked (devices that cannot log in, unsent records)."""
