"""Notification channels, one file per channel."""

from rules.notifiers.apprise import AppriseNotifier
from rules.notifiers.base import Notice, Notifier, NotifyError
from rules.notifiers.smtp import SmtpNotifier
from rules.notifiers.terminal import TerminalNotifier
from rules.notifiers.webhook import WebhookNotifier

__all__ = [
    "AppriseNotifier",
    "Notice",
    "Notifier",
    "NotifyError",
    "SmtpNotifier",
    "TerminalNotifier",
    "WebhookNotifier",
]
