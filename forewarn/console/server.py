"""Running the console: its context from the settings, and uvicorn on the configured address.

Usage::

    ctx = console_context(load_settings(None))
    asyncio.run(serve_console(ctx, "127.0.0.1", 8080))
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from core.store.base import TimeSeriesStore
from core.store.embedded import EmbeddedStore
from forewarn.casedb import case_db_url
from forewarn.casedb import open_case_db as open_cases
from forewarn.console.app import create_app
from forewarn.console.context import ConsoleContext
from forewarn.console.throttle import LoginLimiter
from forewarn.errors import ConfigError
from forewarn.ports import listening_socket
from forewarn.service import open_store
from forewarn.settings import Settings
from forewarn.status_links import make_status_links
from rules.case_actions import Push
from rules.errors import RuleError
from rules.registry import CustomerRegistry, load_registry

__all__ = ["CONSOLE", "console_context", "make_server", "open_cases", "serve_console"]

#: how a listen error names the console
CONSOLE = "the console ([serve] host/port)"


def console_context(settings: Settings, demo_dir: Path | None = None,
                    clock: Callable[[], float] | None = None) -> ConsoleContext:
    """The console over the configured case database and store, or over a demo run's files.

    A demo's cases happened in simulated time: "now" is then the newest stored sample, so ages
    and lead times read as they did when the demo ended.
    """
    store: TimeSeriesStore
    if demo_dir is not None:
        engine = open_cases(case_db_url(settings, demo_dir))
        store = EmbeddedStore(demo_dir / "telemetry.sqlite")
    else:
        engine = open_cases(settings.cases.url)
        store = open_store(settings.store)
    ctx = ConsoleContext(
        engine=engine, store=store, rules_files=tuple(settings.rule_paths()),
        clock=clock or time.time, session_max_age_s=settings.serve.session_max_age_s,
        secure_cookies=settings.serve.secure_cookies,
        anomaly_threshold=settings.core.event_threshold,
        max_body_bytes=settings.serve.max_body_bytes,
        warmup_samples=_warmup(settings),
        registry=_registry(settings),
        feedback=settings.rules.feedback(),
        mqtt=settings.mqtt,
    )
    if settings.serve.helpdesk_channel:
        ctx.helpdesk = Push(settings.serve.helpdesk_channel, settings.serve.helpdesk_url)
    if settings.serve.session_secret:
        ctx.session_secret = settings.serve.session_secret
    # the customers' status pages (issue 19): links signed with a secret kept over restarts
    ctx.status_links = make_status_links(settings, clock=lambda: ctx.clock())
    ctx.team_push = Push(settings.notify.team, _team_recipient(settings))
    ctx.status_limiter = LoginLimiter(failures=settings.serve.status_answers_per_hour,
                                      window_s=3600.0)
    if demo_dir is not None and clock is None:
        ends = [last for _, last in ctx.store_devices(settings.tenant).values()
                if last is not None]
        if ends:
            data_end = max(ends)
            ctx.clock = lambda: data_end
    return ctx


def _team_recipient(settings: Settings) -> str:
    """``[notify.email] team_address`` when the team reads e-mail, else the channel's default."""
    notify = settings.notify
    return (notify.email.team_address
            if notify.team == "email" and notify.email is not None else "")


def _warmup(settings: Settings) -> int:
    """Samples a series learns before the configured detector may fire."""
    detector = settings.detector
    if detector.regression_weight > 0:
        return max(detector.warmup, detector.regression_warmup)
    return detector.warmup


def _registry(settings: Settings) -> CustomerRegistry | None:
    """The ``[customers]`` registry when one is configured (names on the console)."""
    if settings.customers.file is None:
        return None
    try:
        return load_registry(settings.customers.file, tenant=settings.tenant)
    except RuleError as exc:
        raise ConfigError(f"[customers] file: {exc}") from exc


def make_server(ctx: ConsoleContext, host: str = "127.0.0.1", port: int = 8080
                ) -> uvicorn.Server:
    """The uvicorn server of the console (``server.serve()`` runs it, ``should_exit`` stops it)."""
    return uvicorn.Server(uvicorn.Config(create_app(ctx), host=host, port=port,
                                         log_level="warning", lifespan="off"))


async def serve_console(ctx: ConsoleContext, host: str, port: int,
                        server: uvicorn.Server | None = None, *,
                        sock: socket.socket | None = None) -> None:
    """Serve until interrupted (Ctrl-C, or ``server.should_exit``), then close the store and
    the database. ``server``: one from :func:`make_server` to stop from elsewhere; ``sock``: one
    from :func:`forewarn.ports.listening_socket` (default: bound here, a port in use is a
    one-line :class:`~forewarn.ports.ListenError` rather than uvicorn's log and exit)."""
    server = server or make_server(ctx, host, port)
    try:
        sock = sock or listening_socket(CONSOLE, host, port)
        await server.serve(sockets=[sock])
    finally:
        close = getattr(ctx.store, "close", None)
        if close is not None:
            close()
        ctx.engine.dispose()
