"""forewarn's rules, cases and notifications: scored batches in, support cases and messages out.

Wired in :mod:`rules.pipeline` (evaluate → silence → inhibit → case book → outbox); delivery
by :class:`rules.outbox.Outbox` over the channels in :mod:`rules.notifiers`. Rules files are
described in ``docs/rules.md``.

Errors (:mod:`rules.errors`)::

    RuleError                  anything rules raises on purpose
    ├── RuleFileError          a rules file that cannot be used (names file, line and key)
    ├── NotifyError            a channel could not deliver a notice (``retryable``)
    └── CaseActionError        an agent's action on a case could not be applied
        ├── CaseNotFoundError  no such case for this tenant
        └── CaseStateError     the case's state does not allow the action
"""
