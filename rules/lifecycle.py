"""Device lifecycle in the rules: online/offline/last-seen per device in the case database (where
the console reads it), goodbyes that silence no-data alarms, last wills that offline rules
count, the agent's events as events for the rules, and reported configs kept per device.

Core hands each lifecycle message (:data:`core.events.LifecycleEvent`) to
:meth:`DeviceLifecycle.handle`; telemetry batches pass :meth:`DeviceLifecycle.observe` on
their way into the rules, so last-seen covers samples too (written at each tick, not per batch),
and so does the firmware a batch names: a status or a batch naming a version the device did not
run last is a move the firmware rollout view counts (``firmware_changes``).

>>> from rules.db import connect
>>> from rules.evaluate import RuleEvaluator
>>> from core.events import DeviceStatus
>>> engine = connect("sqlite://")
>>> lifecycle = DeviceLifecycle(DeviceBook(engine), RuleEvaluator(()))
>>> lifecycle.handle(DeviceStatus("acme", "hp-1", "offline", 100.0, reason="shutdown"))
>>> row = lifecycle.book.get("acme", "hp-1")
>>> row.state, row.reason, row.since, ("acme", "hp-1") in lifecycle.evaluator.resting
('offline', 'shutdown', 100.0, True)
>>> engine.dispose()
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.events import (
    AgentEvent,
    ConfigReported,
    DetectorEvent,
    DeviceStatus,
    LifecycleEvent,
    ScoredBatch,
)
from rules.db import DeviceRow, FirmwareChangeRow
from rules.evaluate import RuleEvaluator, Transition

__all__ = ["AGENT_DETECTOR", "DeviceBook", "DeviceLifecycle", "agent_event_as_detector_event"]

#: the ``detector`` of an agent's own event, for a rule's ``event`` test
#: (``event: {detector: agent, field: high_pressure_trip}``; ``field`` is the event's kind)
AGENT_DETECTOR = "agent"
_SEVERITY_SCORE = {"info": 0.3, "warning": 0.6, "alarm": 1.0}


def agent_event_as_detector_event(event: AgentEvent, product: str = "") -> DetectorEvent:
    """An agent's event as the rules' event type: detector ``agent``, field = its kind, score
    0.3 / 0.6 / 1.0 for info / warning / alarm."""
    detail = ", ".join(f"{k}={v}" for k, v in event.detail)
    return DetectorEvent(
        tenant=event.tenant, device_id=event.device_id, product=product, field=event.kind,
        detector=AGENT_DETECTOR, ts=event.ts, score=_SEVERITY_SCORE[event.severity],
        value=math.nan,
        explanation=f"the device reported {event.kind} ({event.severity})"
                    + (f": {detail}" if detail else ""))


class DeviceBook:
    """The ``devices`` table: one row per device, written by core's lifecycle messages and by
    ``forewarn devices config set``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, tenant: str, device_id: str) -> DeviceRow | None:
        """One device's row (detached), or None."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(DeviceRow, (tenant, device_id))

    def find(self, device_id: str, tenant: str | None = None) -> list[DeviceRow]:
        """Rows of ``device_id`` (in every tenant unless ``tenant`` is given)."""
        query = select(DeviceRow).where(DeviceRow.device_id == device_id)
        if tenant is not None:
            query = query.where(DeviceRow.tenant == tenant)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    def all(self, tenant: str | None = None) -> list[DeviceRow]:
        """Every device (of one tenant), by tenant and id."""
        query = select(DeviceRow).order_by(DeviceRow.tenant, DeviceRow.device_id)
        if tenant is not None:
            query = query.where(DeviceRow.tenant == tenant)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    def update(self, tenant: str, device_id: str, change: Callable[[DeviceRow], None]) -> None:
        """Apply ``change`` to the device's row (created if new) and commit."""
        with Session(self.engine) as session, session.begin():
            row = session.get(DeviceRow, (tenant, device_id))
            if row is None:
                row = DeviceRow(tenant=tenant, device_id=device_id, product="",
                                state="unknown", boot_id="", queue_depth=0, dropped_samples=0,
                                desired_json="", reported_json="")
                session.add(row)
            change(row)

    def record_firmware(self, tenant: str, device_id: str, product: str, firmware: str,
                        ts: float) -> bool:
        """Remember that the device runs ``firmware`` from ``ts`` on, when that is not the
        version it ran last (the rollout view's history, ``rules.firmware``); whether it was
        new."""
        with Session(self.engine) as session, session.begin():
            last = session.scalars(
                select(FirmwareChangeRow.firmware)
                .where(FirmwareChangeRow.tenant == tenant,
                       FirmwareChangeRow.device_id == device_id)
                .order_by(FirmwareChangeRow.since.desc(), FirmwareChangeRow.id.desc()).limit(1)
            ).first()
            if last == firmware:
                return False
            session.add(FirmwareChangeRow(tenant=tenant, device_id=device_id, product=product,
                                          firmware=firmware, previous=last, since=ts))
            return True

    def goodbyes(self, devices: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """Of ``devices`` (tenant, id), those whose last word was a goodbye (offline,
        ``shutdown``), with when they said it."""
        wanted = set(devices)
        found: dict[tuple[str, str], float] = {}
        with Session(self.engine) as session:
            for tenant in {t for t, _ in wanted}:
                ids = sorted(d for t, d in wanted if t == tenant)
                for start in range(0, len(ids), 500):  # bounded IN lists
                    rows = session.execute(
                        select(DeviceRow.device_id, DeviceRow.since).where(
                            DeviceRow.tenant == tenant,
                            DeviceRow.device_id.in_(ids[start:start + 500]),
                            DeviceRow.state == "offline", DeviceRow.reason == "shutdown"))
                    for device_id, since in rows:
                        found[(tenant, device_id)] = since if since is not None else 0.0
        return found

    def set_desired(self, tenant: str, device_id: str, desired: dict[str, Any]) -> None:
        """Remember the desired config just published for the device."""
        def change(row: DeviceRow) -> None:
            row.desired_json = json.dumps(desired, sort_keys=True)
        self.update(tenant, device_id, change)

    def save_last_seen(self, seen: dict[tuple[str, str], tuple[float, str]]) -> None:
        """Move last-seen (and product) forward for many devices at once."""
        if not seen:
            return
        with Session(self.engine) as session, session.begin():
            for (tenant, device_id), (ts, product) in seen.items():
                row = session.get(DeviceRow, (tenant, device_id))
                if row is None:
                    session.add(DeviceRow(tenant=tenant, device_id=device_id, product=product,
                                          state="unknown", last_seen=ts, boot_id="",
                                          queue_depth=0, dropped_samples=0, desired_json="",
                                          reported_json=""))
                    continue
                row.product = product or row.product
                if row.last_seen is None or ts > row.last_seen:
                    row.last_seen = ts


class DeviceLifecycle:
    """The rules' stage for lifecycle messages: the device book and the evaluator's view of
    who is resting (said goodbye) and who is offline (last will)."""

    def __init__(self, book: DeviceBook, evaluator: RuleEvaluator,
                 apply: Callable[[list[Transition]], None] = lambda _: None) -> None:
        self.book = book
        self.evaluator = evaluator
        self._apply = apply
        #: last sample time and product per device, since the last :meth:`flush`
        self._seen: dict[tuple[str, str], tuple[float, str]] = {}
        #: the firmware each device's batches named last (this process), and the moves to
        #: record at the next :meth:`flush`: (firmware, product, first sample time)
        self._firmware: dict[tuple[str, str], str] = {}
        self._moves: list[tuple[tuple[str, str], str, str, float]] = []
        self._products: dict[tuple[str, str], str] = {}
        self.restore()  # a restart keeps who is resting or offline

    def restore(self, mine: Callable[[str, str], bool] = lambda tenant, device_id: True
                ) -> None:
        """Who is resting (said goodbye) or offline (last will), from the device book, for
        the devices ``mine(tenant, device_id)`` accepts: at start, and when a NATS worker
        takes over a partition (its previous owner's last word)."""
        for row in self.book.all():
            if not mine(row.tenant, row.device_id):
                continue
            self._products[(row.tenant, row.device_id)] = row.product
            if row.state == "offline" and row.since is not None:
                self.evaluator.device_state(row.tenant, row.device_id, "offline", row.reason,
                                            row.since, row.product)

    def forget(self, theirs: Callable[[str, str], bool]) -> int:
        """Drop what the evaluator knows of the lifecycle of the devices ``theirs`` accepts
        (a NATS worker's devices of partitions it does not own: their owner judges them);
        returns how many went."""
        evaluator = self.evaluator
        gone = 0
        for table in (evaluator.resting, evaluator.awake_since, evaluator.offline_since):
            for device in [d for d in table if theirs(*d)]:
                del table[device]
                gone += 1
        return gone

    def observe(self, batch: ScoredBatch) -> None:
        """A telemetry batch arrived: the device was seen at its last sample."""
        if not batch.n_samples:
            return
        device = (batch.tenant, batch.device_id)
        last = float(batch.t[-1])
        known = self._seen.get(device)
        if known is None or last > known[0]:
            self._seen[device] = (last, batch.product)
        self._products[device] = batch.product
        if batch.firmware and self._firmware.get(device) != batch.firmware:
            self._firmware[device] = batch.firmware
            self._moves.append((device, batch.firmware, batch.product, float(batch.t[0])))

    def flush(self) -> None:
        """Write the last-seen times observed since the last flush, and firmware moves."""
        seen, self._seen = self._seen, {}
        self.book.save_last_seen(seen)
        moves, self._moves = self._moves, []
        for (tenant, device_id), firmware, product, ts in moves:
            self.book.record_firmware(tenant, device_id, product, firmware, ts)

    def handle(self, event: LifecycleEvent) -> None:
        """Record one lifecycle message; a status may resolve an offline alarm."""
        device = (event.tenant, event.device_id)
        product = self._products.get(device, "")
        if isinstance(event, DeviceStatus):
            self.book.update(event.tenant, event.device_id, lambda row: _status(row, event))
            if event.firmware is not None:
                self.book.record_firmware(event.tenant, event.device_id, product,
                                          event.firmware, event.ts)
                self._firmware[device] = event.firmware
            self._apply(self.evaluator.device_state(event.tenant, event.device_id, event.state,
                                                    event.reason, event.ts, product))
        elif isinstance(event, AgentEvent):
            self.book.update(event.tenant, event.device_id, lambda row: _event(row, event))
            self.evaluator.add_events(event.tenant, event.device_id,
                                      [agent_event_as_detector_event(event, product)])
        elif isinstance(event, ConfigReported):
            self.book.update(event.tenant, event.device_id, lambda row: _report(row, event))


def _seen(row: DeviceRow, ts: float) -> None:
    if row.last_seen is None or ts > row.last_seen:
        row.last_seen = ts


def _status(row: DeviceRow, event: DeviceStatus) -> None:
    if row.state != event.state or row.reason != event.reason or row.since is None:
        row.since = event.ts
    row.state, row.reason = event.state, event.reason
    row.boot_id = event.boot_id
    row.firmware = event.firmware
    row.queue_depth, row.dropped_samples = event.queue_depth, event.dropped_samples
    _seen(row, event.ts)


def _event(row: DeviceRow, event: AgentEvent) -> None:
    row.last_event, row.last_event_severity, row.last_event_at = (
        event.kind, event.severity, event.ts)
    _seen(row, event.ts)


def _report(row: DeviceRow, event: ConfigReported) -> None:
    row.reported_json = json.dumps({
        "status": event.status, "revision": event.revision, "reason": event.reason,
        "applied": dict(event.applied)}, sort_keys=True)
    row.reported_at = event.ts
