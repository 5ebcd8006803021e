"""The error ``forewarn score`` raises for anything a user can fix: one line, file and problem.

>>> str(ScoreError("data.csv: no time column found"))
'data.csv: no time column found'
"""

from __future__ import annotations

from forewarn.errors import ForewarnError

__all__ = ["ScoreError"]


class ScoreError(ForewarnError):
    """A file or option ``forewarn score`` cannot use; the message names the file and why."""
