"""The forewarn service, wired in one place from the settings alone.

::

    MQTT or a NATS partition ─▶ CorePipeline (decode, dedup, detect, limits) ─▶ store
                             ─▶ RulesPipeline (customer registry, every product's rules,
                                case book) ─▶ outbox ─▶ channels (terminal, email, webhook,
                                apprise)
    (case book)              ─▶ fleet incidents ([incidents]): a cohort's cases of one rule,
                                one team notice, one customer message per device
    ticks(now)               ─▶ devices gone silent, escalation, auto-resolve, ended silences,
                                incidents whose cases all resolved closed
    MQTT status/event/config ─▶ LifecycleListener ─▶ RulesPipeline's device book (online,
      (direct engine)           offline, last seen, reported config; goodbyes, last wills)
    the device's partition   ─▶ decode_lifecycle ─▶ the same sink (NATS workers: in stream
      (NATS engine)             order with the device's telemetry)

``forewarn core`` (direct engine), its NATS workers and their outbox dispatcher, and
``forewarn demo`` (the same service on a simulated fleet, in simulated time) all build their
parts with :class:`Service`; nothing else constructs a stage. Building a service reads and
checks everything the settings name (rules, customer registry, limits, channels) and raises
:class:`ConfigError` with one line naming what is wrong.

Usage::

    service = Service(load_settings(path))
    store = service.open_store()
    cases = service.connect_cases()
    rules = service.rules_pipeline(cases)
    pipeline = service.core_pipeline(store)
    outbox = service.outbox(cases)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import nats.errors
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from core.config import MqttConfig
from core.dead_letter import DeadLetters, DeadLetterStore
from core.detect import DetectorConfig, make_detector, make_peer
from core.errors import LimitsFileError
from core.events import LifecycleSink
from core.lifecycle import LifecycleListener
from core.limits import ProductLimits, load_limits
from core.mapping import MappedDecoder
from core.mapping.sparkplug_status import SparkplugStatus
from core.pipeline import CorePipeline
from core.store.base import HistoryStore, TimeSeriesStore
from core.store.config import InfluxConfig, StoreConfig, make_store
from forewarn.casedb import open_case_db, printable_url
from forewarn.errors import ConfigError, unusable_path
from forewarn.peers import registry_peer_labels
from forewarn.settings import SHIPPED_CONFIG, Settings
from forewarn.status_links import make_status_links
from rules.cases import CaseBook
from rules.errors import RuleError
from rules.incidents import IncidentBook
from rules.model import RuleSet, load_rules, merge_rule_sets
from rules.notifiers.base import Notifier
from rules.notifiers.terminal import TerminalNotifier
from rules.outbox import Outbox
from rules.pipeline import RulesPipeline
from rules.registry import CustomerRegistry, load_registry

__all__ = ["Configured", "Service", "load_configured", "make_notifiers", "open_store",
           "tick_forever"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Configured:
    """What the settings name, read and checked: the parts every engine shares."""

    rules: RuleSet
    rule_files: tuple[Path, ...]
    registry: CustomerRegistry
    limits: ProductLimits | None
    #: the channels ``[notify]`` configures ("terminal" always)
    channels: tuple[str, ...]

    def products(self) -> list[str]:
        """The products the rules name (a rule without one applies to every product)."""
        return sorted({r.product for r in self.rules.rules if r.product is not None})

    def describe(self) -> list[str]:
        """What a service prints at start, one line each."""
        products = self.products()
        count = len(self.rules.rules)
        lines = [f"{count} rule{'s' if count != 1 else ''} for products "
                 f"{', '.join(products) or '(any)'} from "
                 f"{', '.join(str(p) for p in self.rule_files)}"]
        registry = self.registry
        if registry.customer_count or registry.device_count:
            lines.append(f"{registry.customer_count} customer"
                         f"{'s' if registry.customer_count != 1 else ''} with "
                         f"{registry.device_count} device"
                         f"{'s' if registry.device_count != 1 else ''} in the registry")
        else:
            lines.append("no customer registry ([customers] file): every device is a customer "
                         "of its own")
        lines.append(f"notice channels: {', '.join(self.channels)}")
        return lines


def load_configured(settings: Settings) -> Configured:
    """Read the rules, the registry and the limits, and check every channel that a rule, a
    customer or ``[notify]``/``[serve]`` names is configured. Raises :class:`ConfigError`."""
    paths = tuple(settings.rule_paths())
    try:
        rules = merge_rule_sets(load_rules(p) for p in paths)
        registry = load_registry(settings.customers.file, tenant=settings.tenant)
    except RuleError as exc:
        raise ConfigError(str(exc)) from exc
    limits_file = settings.core.limits_file
    limits = None
    if limits_file is not None and (limits_file.exists()
                                    or limits_file != SHIPPED_CONFIG / "limits.yaml"):
        try:
            limits = load_limits(limits_file)
        except LimitsFileError as exc:
            # the validation's first line: where and what; the rest is pydantic's detail
            first = str(exc).splitlines()
            raise ConfigError(f"[core] limits_file: {' '.join(first[:2])}") from exc
    channels = settings.notify.channels()
    named = [("[notify] team", settings.notify.team),
             ("[notify] customers", settings.notify.customers)]
    if settings.serve.helpdesk_channel:
        named.append(("[serve] helpdesk_channel", settings.serve.helpdesk_channel))
    source = settings.customers.file
    named += [(f"customer {cid} in {source}", channel)
              for cid, channel in registry.contact_channels().items()]
    for who, channel in named:
        if channel not in channels:
            raise ConfigError(f"{who} names the channel {channel!r}, which is not configured "
                              f"(configured: {', '.join(channels)}; add [notify.{channel}])")
    if settings.notify.email is not None:
        _secret("", settings.notify.email.password_file, "[notify.email] password_file")
    if settings.notify.webhook is not None:
        _secret("", settings.notify.webhook.secret_file, "[notify.webhook] secret_file")
    return Configured(rules, paths, registry, limits, channels)


def open_store(config: StoreConfig) -> HistoryStore:
    """The ``[store]`` the settings name (:func:`core.store.config.make_store`); an embedded
    file (or spool folder) that cannot be made or opened is one :class:`ConfigError`."""
    try:
        return make_store(config)
    except (OSError, sqlite3.Error) as exc:
        raise unusable_path("[store] path", config.path, exc) from exc


def _secret(value: str, file: Path | None, key: str) -> str:
    if file is None:
        return value
    try:
        return file.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError) as exc:
        raise ConfigError(f"{key}: cannot read a secret from {file}") from exc


def make_notifiers(settings: Settings, *, echo: bool = True,
                   console: Console | None = None) -> dict[str, Notifier]:
    """One notifier per configured channel (``[notify.*]``), keyed by channel name."""
    notify = settings.notify
    channels: dict[str, Notifier] = {
        "terminal": TerminalNotifier(settings.cases.notices_jsonl, echo=echo, console=console)}
    if notify.email is not None:
        from rules.notifiers.smtp import SmtpNotifier

        mail = notify.email
        password = _secret(mail.password, mail.password_file, "[notify.email] password_file")
        try:
            channels["email"] = SmtpNotifier(
                mail.host, mail.port, mail.sender, default_to=mail.team_address, tls=mail.tls,
                login=(mail.username, password) if mail.username else None,
                timeout_s=mail.timeout_s, ca_file=mail.ca_file)
        except (RuleError, OSError) as exc:
            raise ConfigError(f"[notify.email]: {exc}") from exc
    if notify.webhook is not None:
        from rules.notifiers.webhook import WebhookNotifier

        hook = notify.webhook
        secret = _secret(hook.secret, hook.secret_file, "[notify.webhook] secret_file")
        channels["webhook"] = WebhookNotifier(hook.url, secret.encode(), timeout_s=hook.timeout_s)
    if notify.apprise is not None:
        from rules.notifiers.apprise import AppriseNotifier

        channels["apprise"] = AppriseNotifier(notify.apprise.urls)
    return channels


async def close_notifiers(channels: dict[str, Notifier]) -> None:
    """Close what the notifiers hold open (the webhook's HTTP client)."""
    for channel in channels.values():
        aclose = getattr(channel, "aclose", None)
        if aclose is not None:
            await aclose()


class Service:
    """Builds every stage of the service from ``settings`` (read and checked once, here).

    ``clock`` is the cases' and the outbox's clock: the wall clock in production, the
    simulated time in the demo. ``detector`` overrides ``[detector]`` (a NATS worker's
    command line), ``influx`` (url, bucket) the ``[store]`` (``--influx-url``).
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time,
                 detector: DetectorConfig | None = None,
                 influx: tuple[str, str] | None = None,
                 echo: bool = True, console: Console | None = None) -> None:
        self.settings = settings
        self.configured = load_configured(settings)
        notices = settings.cases.notices_jsonl
        try:  # the terminal channel's folder: checked at start, not when a notice is first due
            notices.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise unusable_path("[cases] notices_jsonl", notices, exc) from exc
        self.clock = clock
        self.detector = detector or settings.detector
        self.influx = influx
        self.echo = echo
        self.console = console
        #: the outbox's channels once :meth:`outbox` built them
        self.channels: dict[str, Notifier] = {}

    def describe(self) -> list[str]:
        """What the service runs with, one line each (``forewarn core`` prints them)."""
        store = self.settings.store
        if self.influx is not None:
            where = f"influxdb {self.influx[0]} bucket {self.influx[1]}"
        elif store.kind == "embedded":
            where = f"embedded {store.path}"
        else:
            where = f"{store.kind}"
        cases = printable_url(self.settings.cases.url)
        return [*self.configured.describe(), f"store: {where}", f"cases: {cases}"]

    def open_store(self, buffered: bool = True) -> HistoryStore:
        """The store batches go to: ``[store]`` (with its outage buffer when ``buffered``;
        NATS workers run without it, the stream is their buffer) or the ``influx`` override."""
        if self.influx is not None:
            return make_store(StoreConfig(kind="influxdb", influxdb=InfluxConfig(
                url=self.influx[0], bucket=self.influx[1], retries=0, timeout_s=5.0)))
        store = self.settings.store
        return open_store(store if buffered else store.model_copy(update={"buffer": None}))

    def connect_cases(self) -> Engine:
        """The case and outbox database (a SQLite file's folder is made)."""
        return open_case_db(self.settings.cases.url)

    def case_book(self, engine: Engine) -> CaseBook:
        """The case book: default channel ``[notify] customers``, team notices to ``[notify]
        team`` (and ``[notify.email] team_address`` when that is e-mail)."""
        notify = self.settings.notify
        team_to = (notify.email.team_address
                   if notify.team == "email" and notify.email is not None else "")
        return CaseBook(engine, channel=notify.customers, clock=self.clock,
                        registry=self.configured.registry, team_channel=notify.team,
                        team_recipient=team_to,
                        status_links=make_status_links(self.settings, clock=self.clock),
                        incidents=self.incident_book())

    def incident_book(self) -> IncidentBook:
        """Fleet incidents over the registry's cohorts (``[incidents]``)."""
        return IncidentBook(self.settings.incidents.policy(), self.configured.registry)

    def rules_pipeline(self, engine: Engine) -> RulesPipeline:
        """Every product's rules over the registry, opening cases in ``engine``."""
        return RulesPipeline(self.configured.rules, self.case_book(engine),
                             registry=self.configured.registry,
                             feedback=self.settings.rules.feedback())

    def core_pipeline(self, store: TimeSeriesStore, cases: Engine | None = None
                      ) -> CorePipeline:
        """Decode, dedup, detect (``[detector]``), limits; batches handed to ``store``.

        It refuses bad messages as dead letters, persisted in the ``cases`` database (in
        memory only without it), past the future horizon, or under a tenant other than the
        registry's for the device.
        """
        core = self.settings.core
        dead_letters = (DeadLetters() if cases is None else
                        DeadLetters(store=DeadLetterStore(cases, keep=core.dead_letters_keep)))
        return CorePipeline(make_detector(self.detector), store,
                            event_threshold=core.event_threshold,
                            dedup_window=core.dedup_window, limits=self.configured.limits,
                            dead_letters=dead_letters,
                            future_horizon_s=core.future_horizon_s,
                            device_tenant=self.configured.registry.tenant_of,
                            max_series_per_device=core.max_series_per_device,
                            max_boots_per_device=core.max_boots_per_device,
                            decoder=MappedDecoder(self.settings.ingest.mapping,
                                                  clock=self.clock),
                            peer=make_peer(self.settings.peer),
                            peer_labels=registry_peer_labels(self.configured.registry))

    def lifecycle_sink(self, rules: RulesPipeline) -> LifecycleSink:
        """Where the devices' status, own events and reported configs go, on both engines:
        the rules' device book (``rules.lifecycle``), on the rules pipeline's thread."""
        return rules.handle_lifecycle_in_thread

    def lifecycle_listener(self, mqtt: MqttConfig, rules: RulesPipeline,
                           pipeline: CorePipeline) -> LifecycleListener:
        """The direct engine's lifecycle messages from MQTT into :meth:`lifecycle_sink`; bad
        ones are dead letters. (NATS workers read them from the stream instead.)"""
        return LifecycleListener(mqtt, self.lifecycle_sink(rules),
                                 dead_letters=pipeline.dead_letters,
                                 sparkplug=SparkplugStatus(self.settings.ingest.mapping))

    def outbox(self, engine: Engine, base_delay_s: float = 0.5) -> Outbox:
        """The outbox over every configured channel."""
        self.channels = make_notifiers(self.settings, echo=self.echo, console=self.console)
        return Outbox(engine, self.channels, clock=self.clock, base_delay_s=base_delay_s)

    async def dispatch(self, stop: asyncio.Event, outbox: Outbox | None = None,
                       idle_s: float = 0.2) -> None:
        """Deliver pending notices until ``stop`` is set (the one dispatcher per database);
        without ``outbox``, one over its own connection to the case database."""
        engine = self.connect_cases() if outbox is None else None
        if engine is not None:
            outbox = self.outbox(engine)
        assert outbox is not None
        try:
            while not stop.is_set():
                await outbox.dispatch_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle_s)
        finally:
            await close_notifiers(self.channels)
            if engine is not None:
                engine.dispose()

    async def tick_forever(self, rules: RulesPipeline, stop: asyncio.Event,
                           every_s: float | None = None,
                           clock: Callable[[], Awaitable[float | None]] | None = None, *,
                           on_loop: bool = False) -> None:
        """The rules' time-driven work every ``every_s`` (``[core] tick_interval_s``)."""
        await tick_forever(rules, stop, self.settings.core.tick_interval_s
                           if every_s is None else every_s, clock, on_loop=on_loop)


async def tick_forever(rules: RulesPipeline, stop: asyncio.Event, every_s: float = 60.0,
                       clock: Callable[[], Awaitable[float | None]] | None = None, *,
                       on_loop: bool = False) -> None:
    """Time-driven rule work (silent devices, escalation, released silences) every ``every_s``.

    ``clock`` says up to when to tick (None: not yet); without it, the wall clock. The ticks
    run on the pipeline's thread, or with ``on_loop`` on the event loop's, for a caller that
    hands its batches to :meth:`RulesPipeline.handle` there (the demo): the pipeline's state
    is only ever touched from one thread.
    """
    while not stop.is_set():
        try:
            now = time.time() if clock is None else await clock()
            if now is not None and on_loop:
                rules.tick(now)
            elif now is not None:
                await rules.tick_in_thread(now)
        except (OperationalError, TimeoutError, nats.errors.Error) as exc:
            # the case database or NATS is away: the next tick catches up (transitions are
            # dated by the data, not by when the tick ran)
            _log.warning("rules tick skipped: %s", exc)
        except Exception:
            # a rules bug must not end the ticks for the life of the process unnoticed
            _log.exception("rules tick failed; trying again in %.0f s", every_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
