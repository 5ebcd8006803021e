"""Errors of the rules, cases and notifications package.

::

    RuleError                  anything rules raises on purpose
    ├── RuleFileError          a rules file that cannot be used (names file, line and key)
    ├── NotifyError            a channel could not deliver a notice; ``retryable`` tells the
    │                          outbox whether to try again (the outbox decides, not the notifier)
    └── CaseActionError        an agent's action on a case could not be applied
        ├── CaseNotFoundError  no such case for this tenant
        ├── CaseStateError     the case's state does not allow the action
        └── ResolutionError    a resolution without a valid outcome, category or reason
"""

from __future__ import annotations

__all__ = [
    "CaseActionError", "CaseNotFoundError", "CaseStateError", "NotifyError", "ResolutionError",
    "RuleError", "RuleFileError",
]


class RuleError(Exception):
    """Anything the rules package raises on purpose."""


class RuleFileError(RuleError):
    """A rules file that cannot be used."""


class NotifyError(RuleError):
    """A notice was not delivered."""

    def __init__(self, reason: str, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class CaseActionError(RuleError):
    """An agent's action could not be applied."""


class CaseNotFoundError(CaseActionError):
    """No such case for this tenant."""


class CaseStateError(CaseActionError):
    """The case is in a state that does not allow the action (e.g. acknowledging a resolved one)."""


class ResolutionError(CaseActionError):
    """A case cannot be resolved this way: the outcome, category or reason is missing or wrong."""
