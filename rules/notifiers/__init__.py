"""Notification channels, one file per channel."""

from rules.notifiers.base import Notice, Notifier, NotifyError
from rules.notifiers.terminal import TerminalNotifier

__all__ = ["Notice", "Notifier", "NotifyError", "TerminalNotifier"]
