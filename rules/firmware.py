"""The firmware rollout view (issue 20): for each product's firmware version, the devices on it
and the case rate before and after devices moved to it.

The history is ``firmware_changes`` (written by :mod:`rules.lifecycle` when a device's status
names a version it did not run last). For every move onto a version the device's cases are
counted ``window_s`` before the move (while it still ran the earlier version, and not before it
got that one) and ``window_s`` after it (until its next move or now); rates are cases per 1000
device-days of those windows. ``on`` counts every day any device ran the version.

>>> from rules.db import connect, FirmwareChangeRow
>>> from sqlalchemy.orm import Session
>>> engine = connect("sqlite://")
>>> with Session(engine) as s, s.begin():
...     s.add_all([FirmwareChangeRow(tenant="acme", device_id="hp-1", product="heat_pump",
...                                  firmware=v, previous=p, since=t)
...                for v, p, t in (("2.5", None, 0.0), ("2.6", "2.5", 10 * 86400.0))])
>>> [(r.firmware, r.devices, r.moved, r.device_days_before, r.device_days_after)
...  for r in rollout_view(engine, "acme", now=20 * 86400.0)]
[('2.5', 0, 0, 0.0, 0.0), ('2.6', 1, 1, 10.0, 10.0)]
>>> engine.dispose()
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from rules.db import CaseRow, DeviceRow, FirmwareChangeRow

__all__ = ["DEFAULT_WINDOW_S", "FirmwareRollout", "rollout_view"]

#: how long before and after a move cases are counted (30 days)
DEFAULT_WINDOW_S = 30 * 86_400.0
_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class FirmwareRollout:
    """One firmware version of one product across the tenant's fleet."""

    product: str
    firmware: str
    #: devices whose latest reported version this is
    devices: int
    #: devices that moved to it from an earlier version
    moved: int
    #: when the first device reported it
    first_seen: float
    cases_before: int
    device_days_before: float
    cases_after: int
    device_days_after: float
    #: every day a device ran it, and the cases opened meanwhile
    cases_on: int
    device_days_on: float

    @staticmethod
    def _rate(cases: int, days: float) -> float | None:
        return round(1000.0 * cases / days, 2) if days > 0 else None

    @property
    def rate_before(self) -> float | None:
        """Cases per 1000 device-days before the moves (None: no days to count)."""
        return self._rate(self.cases_before, self.device_days_before)

    @property
    def rate_after(self) -> float | None:
        """Cases per 1000 device-days after the moves."""
        return self._rate(self.cases_after, self.device_days_after)

    @property
    def rate_on(self) -> float | None:
        """Cases per 1000 device-days while devices ran it."""
        return self._rate(self.cases_on, self.device_days_on)


@dataclass(slots=True)
class _Tally:
    product: str
    first_seen: float
    devices: int = 0
    moved: int = 0
    cases_before: int = 0
    days_before: float = 0.0
    cases_after: int = 0
    days_after: float = 0.0
    cases_on: int = 0
    days_on: float = 0.0


def _count(opened: list[float], start: float, stop: float) -> int:
    return sum(start <= t < stop for t in opened)


def rollout_view(engine: Engine, tenant: str, now: float,
                 window_s: float = DEFAULT_WINDOW_S) -> list[FirmwareRollout]:
    """Every firmware version the tenant's devices reported, by product then first report."""
    with Session(engine) as session:
        changes = list(session.scalars(
            select(FirmwareChangeRow).where(FirmwareChangeRow.tenant == tenant)
            .order_by(FirmwareChangeRow.device_id, FirmwareChangeRow.since,
                      FirmwareChangeRow.id)))
        rows = {r.device_id: r for r in session.scalars(
            select(DeviceRow).where(DeviceRow.tenant == tenant))}
        opened: dict[str, list[float]] = defaultdict(list)
        case_product: dict[str, str] = {}
        for device_id, at, of in session.execute(
                select(CaseRow.device_id, CaseRow.opened_at, CaseRow.product)
                .where(CaseRow.tenant == tenant)):
            opened[device_id].append(at)
            case_product[device_id] = of
    by_device: dict[str, list[FirmwareChangeRow]] = defaultdict(list)
    for change in changes:
        by_device[change.device_id].append(change)
    tally: dict[tuple[str, str], _Tally] = {}
    for device_id, history in by_device.items():
        row = rows.get(device_id)
        # what its row (telemetry seen), its history or its cases name
        product = ((row.product if row is not None else "") or history[-1].product
                   or case_product.get(device_id, ""))
        cases = opened.get(device_id, [])
        for i, change in enumerate(history):
            end = history[i + 1].since if i + 1 < len(history) else max(now, change.since)
            t = tally.setdefault((product, change.firmware), _Tally(product, change.since))
            t.first_seen = min(t.first_seen, change.since)
            t.cases_on += _count(cases, change.since, end)
            t.days_on += (end - change.since) / _DAY
            if i == 0 or change.previous is None:
                continue
            t.moved += 1
            before = max(change.since - window_s, history[i - 1].since)
            after = min(change.since + window_s, end)
            t.cases_before += _count(cases, before, change.since)
            t.days_before += (change.since - before) / _DAY
            t.cases_after += _count(cases, change.since, after)
            t.days_after += (after - change.since) / _DAY
        tally[(product, history[-1].firmware)].devices += 1  # the version it reported last
    out = [FirmwareRollout(
        product=t.product, firmware=firmware, devices=t.devices, moved=t.moved,
        first_seen=t.first_seen, cases_before=t.cases_before,
        device_days_before=round(t.days_before, 3), cases_after=t.cases_after,
        device_days_after=round(t.days_after, 3), cases_on=t.cases_on,
        device_days_on=round(t.days_on, 3))
        for (_, firmware), t in tally.items()]
    return sorted(out, key=lambda r: (r.product, r.first_seen, r.firmware))
