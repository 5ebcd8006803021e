"""What every console request reads from: the case database, the telemetry store, the rules and
the tokens, built once by :func:`forewarn.console.app.create_app`.

Usage::

    context = ConsoleContext(engine=connect(url), store=EmbeddedStore(path),
                             rules_files=(Path("config/rules/heat_pump.yaml"),))
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine

from core.config import MqttConfig
from core.events import EVENT_THRESHOLD, DetectorEvent
from core.store.base import SeriesFrame, StoreError
from forewarn.auth import TokenStore
from forewarn.console.throttle import LoginLimiter
from forewarn.metrics import ForewarnMetrics
from rules.case_actions import Push
from rules.errors import RuleError
from rules.feedback import FeedbackPolicy
from rules.model import load_rules
from rules.registry import CustomerRegistry
from rules.status_link import StatusLinks

__all__ = ["ConsoleContext", "ReadableStore"]


class ReadableStore(Protocol):
    """The part of a time-series store the console reads."""

    def read(
        self, tenant: str, device_id: str, start: float, stop: float, every_s: float = 0.0
    ) -> SeriesFrame:
        """History of one device in [start, stop)."""
        ...


@dataclass
class ConsoleContext:
    """The console's dependencies; ``clock`` says what "now" is (the demo's simulated end)."""

    engine: Engine
    store: ReadableStore | None = None
    rules_files: tuple[Path, ...] = ()
    clock: Callable[[], float] = time.time
    session_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    session_max_age_s: int = 8 * 3600
    secure_cookies: bool = False
    #: a score at least this marks an anomaly on charts (core's event threshold)
    anomaly_threshold: float = EVENT_THRESHOLD
    #: agents' actions also go to this outbox channel as team notices (a helpdesk webhook)
    helpdesk: Push | None = None
    #: a request body larger than this is refused unread with 413 (``[serve] max_body_bytes``)
    max_body_bytes: int = 1024 * 1024
    #: failed logins per address (wall-clock time, never the demo's simulated "now")
    login_limiter: LoginLimiter = field(default_factory=LoginLimiter)
    #: samples a new series learns before its detector may fire (``[detector] warmup``)
    warmup_samples: int = 1440
    #: who owns which device (``[customers] file``): names instead of ``tenant/device``
    registry: CustomerRegistry | None = None
    #: how far a false alarm raises its rules for the device (``[rules] feedback_*``)
    feedback: FeedbackPolicy = field(default_factory=FeedbackPolicy)
    #: the broker desired configs are published to (``[mqtt]``, as the core service's user);
    #: None: the API refuses config changes
    mqtt: MqttConfig | None = None
    #: signs and checks the customers' status-page links (None: the pages answer 404)
    status_links: StatusLinks | None = None
    #: where customers' answers go as team notices (``[notify] team``)
    team_push: Push = field(default_factory=lambda: Push("terminal"))
    #: answers per address and case on the status pages (``[serve] status_answers_per_hour``)
    status_limiter: LoginLimiter = field(
        default_factory=lambda: LoginLimiter(failures=20, window_s=3600.0))
    tokens: TokenStore = field(init=False)
    metrics: ForewarnMetrics = field(init=False)
    _store_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _rule_texts: tuple[tuple[float, ...], dict[str, str]] | None = field(init=False,
                                                                          default=None)

    def __post_init__(self) -> None:
        self.tokens = TokenStore(self.engine)
        self.metrics = ForewarnMetrics(self.engine)

    def rule_descriptions(self) -> dict[str, str]:
        """rule name → its ``description`` (the likely cause), re-read when a file changes."""
        stamps = tuple(p.stat().st_mtime if p.exists() else -1.0 for p in self.rules_files)
        if self._rule_texts is None or self._rule_texts[0] != stamps:
            texts: dict[str, str] = {}
            for path in self.rules_files:
                try:
                    ruleset = load_rules(path)
                except RuleError:
                    continue  # the rules page says what is wrong; the case page shows no text
                texts.update({r.name: " ".join(r.description.split()) for r in ruleset.rules})
            self._rule_texts = (stamps, texts)
        return self._rule_texts[1]

    def fault_categories(self, product: str) -> tuple[str, ...]:
        """The fault categories of ``product`` from the rules files (confirming a case)."""
        names: list[str] = []
        for path in self.rules_files:
            try:
                ruleset = load_rules(path)
            except RuleError:
                continue
            names.extend(n for n in ruleset.fault_categories.get(product, ()) if n not in names)
        return tuple(names)

    def customer_name(self, tenant: str, device_id: str, product: str) -> str:
        """The customer's name from the registry; "" when the registry does not know it."""
        if self.registry is None:
            return ""
        meta = self.registry.lookup(tenant, device_id, product)
        if meta.customer_id == f"{tenant}/{device_id}":  # not in the registry
            return ""
        return meta.customer_name or meta.customer_id

    def read_series(self, tenant: str, device_id: str, start: float, stop: float,
                    every_s: float) -> SeriesFrame | None:
        """A device's stored history (None without a store); one reader at a time."""
        if self.store is None:
            return None
        with self._store_lock:
            return self.store.read(tenant, device_id, start, stop, every_s)

    def read_events(self, tenant: str, device_id: str, start: float,
                    stop: float) -> tuple[DetectorEvent, ...]:
        """Detector onsets of a device, when the store keeps them."""
        reader = getattr(self.store, "read_events", None)
        if reader is None:
            return ()
        with self._store_lock:
            try:
                events: tuple[DetectorEvent, ...] = reader(tenant, device_id, start, stop)
            except StoreError:
                return ()
            return events

    def store_devices(self, tenant: str) -> dict[str, tuple[str, float | None]]:
        """device_id → (product, last sample time) of the store, for stores that can list them.
        """
        return {d: (p, last) for d, (p, last, _) in self.store_listing(tenant).items()}

    def store_listing(self, tenant: str) -> dict[str, tuple[str, float | None, int]]:
        """device_id → (product, last sample time, samples up to ``warmup_samples``).

        The store interface has no device listing yet; the embedded store's file is read
        directly (read-only) so the fleet page shows devices that never opened a case.
        """
        path = getattr(self.store, "path", None)
        if path is None or str(path) == ":memory:":
            return {}
        import sqlite3

        try:
            db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        except sqlite3.Error:
            return {}
        try:
            # one index probe per series (the sample table's key starts with series_id)
            # samples are counted up to the warm-up only: a bounded index walk per series
            rows = db.execute(
                "SELECT s.device_id, MIN(s.product), MAX((SELECT MAX(ts_ms) FROM sample "
                "WHERE series_id = s.id)), MAX((SELECT COUNT(*) FROM (SELECT 1 FROM sample "
                "WHERE series_id = s.id LIMIT ?))) FROM series s WHERE s.tenant = ? "
                "GROUP BY s.device_id", (self.warmup_samples, tenant)).fetchall()
        except sqlite3.Error:
            return {}
        finally:
            db.close()
        return {str(d): (str(p), None if last is None else float(last) / 1000.0, int(n or 0))
                for d, p, last, n in rows}
