"""The status-page links of a deployment, from ``[serve]``: who signs them and where they point.

Links exist when ``[serve] public_url`` is set and a secret survives restarts: ``[serve]
status_secret``, or one derived from ``[serve] session_secret``. Core (which writes the
notices) and serve (which checks the links) build the same :class:`StatusLinks` from the same
configuration.

>>> from forewarn.settings import Settings, ServeSettings
>>> make_status_links(Settings()) is None  # no public URL, no secret: no links
True
>>> make_status_links(Settings(serve=ServeSettings(public_url="https://x.example"))) is None
True
>>> links = make_status_links(Settings(serve=ServeSettings(
...     session_secret="x", public_url="https://support.example.com")))
>>> links is not None and links.url(3).startswith("https://support.example.com/s/3-")
True
"""

from __future__ import annotations

import time
from collections.abc import Callable

from forewarn.settings import Settings
from rules.status_link import StatusLinks, derive_status_secret

__all__ = ["make_status_links"]


def make_status_links(settings: Settings, clock: Callable[[], float] = time.time
                      ) -> StatusLinks | None:
    """The deployment's status links; None without ``public_url`` or a secret that survives a
    restart."""
    serve = settings.serve
    if not serve.public_url:
        return None
    secret = serve.status_secret or (derive_status_secret(serve.session_secret)
                                     if serve.session_secret else "")
    if not secret:
        return None
    return StatusLinks(secret, serve.public_url, grace_s=serve.status_grace_days * 86400.0,
                       clock=clock)
