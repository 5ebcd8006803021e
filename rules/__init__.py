"""forewarn's rules, cases and notifications: scored batches in, support cases and messages out.

Wired in :mod:`rules.pipeline` (evaluate → silence → inhibit → case book → outbox); delivery
by :class:`rules.outbox.Outbox` over the channels in :mod:`rules.notifiers`. Rules files are
described in ``docs/rules.md``; errors in :mod:`rules.errors`.
"""
