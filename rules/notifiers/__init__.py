"""Notification channels, one file per channel.

The package exports the channel protocol and the demo's terminal channel; import the others
from their modules (``rules.notifiers.webhook``, ``.smtp``, ``.apprise``), so a process that
only needs one channel does not load the libraries of all of them.
"""

from rules.notifiers.base import Notice, Notifier, NotifyError
from rules.notifiers.terminal import TerminalNotifier

__all__ = ["Notice", "Notifier", "NotifyError", "TerminalNotifier"]
