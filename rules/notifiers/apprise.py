"""Apprise: one URL reaches e-mail, SMS gateways, chat apps and many more services.

The notice's ``recipient`` (an Apprise URL such as ``tgram://…`` or ``mailto://…``) wins over
the channel's default URLs. Apprise reports only success or failure, so every failure is
retryable and the outbox's attempt limit decides when to give up.

>>> channel = AppriseNotifier(["json://127.0.0.1:9/hook"])
>>> channel.name
'apprise'
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence

import apprise

from rules.errors import NotifyError
from rules.notifiers.base import Notice

__all__ = ["AppriseNotifier"]


class AppriseNotifier:
    """Sends each notice through Apprise to its URL(s)."""

    name = "apprise"

    def __init__(self, urls: Sequence[str] = ()) -> None:
        self.urls = tuple(urls)

    async def send(self, notice: Notice) -> None:
        """Deliver one notice (Apprise blocks: it runs in a worker thread)."""
        urls = (notice.recipient,) if "://" in notice.recipient else self.urls
        if not urls:
            raise NotifyError("no Apprise URL for this notice", retryable=False)
        client = apprise.Apprise()
        with warnings.catch_warnings():
            # Apprise loads its plugins on first use; one imports the deprecated ``imghdr``
            warnings.simplefilter("ignore", DeprecationWarning)
            for url in urls:
                if not client.add(url):
                    raise NotifyError(f"Apprise does not understand {url!r}", retryable=False)
        ok = await asyncio.to_thread(client.notify, body=notice.body, title=notice.subject)
        if not ok:
            raise NotifyError(f"Apprise could not deliver to {len(urls)} URL(s)",
                              retryable=True)
