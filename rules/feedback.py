"""Feedback from resolutions that changes detection, visibly and reversibly.

A case resolved as ``false_alarm`` raises the alarm level (``score_at_least``) of each of its
rules for that device by ``step``; once ``product_devices`` devices of one product carry a
raise of the same rule, the rule is raised for the whole product too. A device's raise (its own
plus its product's) never exceeds ``max_raise``, and a raised level never exceeds 0.99. Every
adjustment is a row of ``feedback`` (who, when, why, which case), ends by itself after
``expiry_days`` and can be undone. Confirmed faults (and every other outcome) add nothing: only a
false alarm loosens, and only within these bounds. Rules without ``score_at_least`` (``when``
trees, no-data and offline rules) get no raise.

A raised level cannot quiet a source that scores near 1 every time (a sauna stove beside a
sensor, heated every Saturday: ``firmware_sim.quirks``). So the rules also learn a *weekly
pattern as normal*: when ``window_repeats`` false alarms of one rule on one device (labels of
the last ``pattern_days``, this one included, none from before a person undid such a window)
began within ``window_slack_h`` of the same time of the week, the rule is quiet on that
device for ``window_h`` hours a week around it (from a quarter of the window before the
pattern's time), at most ``max_windows`` windows per device and rule. A window is a
``feedback`` row like a raise: listed, expiring, undoable; no-data rules are never quieted,
and a confirmed fault adds nothing.

>>> from rules.db import CaseRow, connect
>>> from sqlalchemy.orm import Session
>>> engine = connect("sqlite://")
>>> policy = FeedbackPolicy(step=0.05, max_raise=0.1, expiry_days=30, product_devices=2)
>>> case = CaseRow(id=1, tenant="acme", device_id="hp-1", product="heat_pump", rule="leak",
...                rules="leak", fault_started_at=0, opened_at=60)
>>> with Session(engine) as s:
...     _ = learn_false_alarm(s, case, by="kim", now=100.0, policy=policy)
...     _ = learn_false_alarm(s, case, by="kim", now=200.0, policy=policy)
...     _ = learn_false_alarm(s, case, by="kim", now=300.0, policy=policy)  # at the bound
...     s.commit()
>>> levels(engine, now=400.0).device
{('leak', 'acme', 'hp-1'): 0.1}
>>> levels(engine, now=100.0 + 31 * 86400).device  # expired
{}
>>> undo(engine, "acme", 1, by="lee", now=500.0).undone_by
'lee'
>>> levels(engine, now=600.0).device
{('leak', 'acme', 'hp-1'): 0.05}

The same rule's false alarm at about the same time a week later learns a quiet window:

>>> from rules.db import LabelRow
>>> week = 7 * 86400.0
>>> with Session(engine) as s:
...     for n, start in enumerate((2 * 86400.0 + 50_000.0, 9 * 86400.0 + 52_000.0), start=2):
...         c = CaseRow(id=n, tenant="acme", device_id="hp-2", product="heat_pump",
...                     rule="leak", rules="leak", fault_started_at=start, opened_at=start)
...         s.add(LabelRow(case_id=n, tenant="acme", device_id="hp-2", product="heat_pump",
...                        rules="leak", outcome="false_alarm", category="installation",
...                        window_start=start, window_end=start + 3600, labelled_at=start))
...         made = learn_false_alarm(s, c, by="kim", now=start + 3600, policy=policy)
...         learned = [(m.raise_by, m.window_s, m.reason.rsplit(": ")[-1]) for m in made]
...     s.commit()
>>> learned
[(0.05, None, 'leak +0.05 on hp-2'), (0.0, 28800.0, 'quiet Sat 12:10 for 8 h, weekly (UTC)')]
>>> saturday = 2 * 86400.0 + 3 * week
>>> levels(engine, now=10 * 86400.0).quiet("leak", "acme", "hp-2",
...                                        saturday + np.array([-3600.0, 51_000.0, 86400.0]))
array([False,  True, False])
>>> engine.dispose()
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, Engine, func, or_, select, update
from sqlalchemy.orm import Session

from rules.db import CaseRow, FeedbackRow, LabelRow
from rules.errors import CaseNotFoundError, CaseStateError

__all__ = ["MAX_LEVEL", "WEEK_S", "FeedbackPolicy", "Levels", "Quieted", "adjustments",
           "learn_false_alarm", "levels", "renew_windows", "time_of_week", "undo"]

#: a raised alarm level never goes above this (a rule must still be able to fire)
MAX_LEVEL = 0.99
WEEK_S = 7 * 86_400.0
#: epoch day 0 was a Thursday: shift so that a week starts on Monday 00:00 UTC
_MONDAY_SHIFT_S = 3 * 86_400.0


def time_of_week(t: float) -> float:
    """Seconds since Monday 00:00 UTC of ``t``'s week."""
    return (t + _MONDAY_SHIFT_S) % WEEK_S


def _week_gap(a: float, b: float) -> float:
    """How far apart two times of the week are (either way round)."""
    gap = abs(a - b) % WEEK_S
    return min(gap, WEEK_S - gap)


@dataclass(frozen=True, slots=True)
class FeedbackPolicy:
    """How far false alarms may loosen a rule (``[rules] feedback_*``)."""

    #: each false alarm raises the rule's level for the device by this much
    step: float = 0.05
    #: a device's total raise (own + product's) never exceeds this
    max_raise: float = 0.10
    #: an adjustment ends by itself this many days after it was made
    expiry_days: float = 30.0
    #: this many devices of one product with a raise of a rule → the product gets one too
    product_devices: int = 3
    #: a learned weekly quiet window lasts this many hours (0: never learn one)
    window_h: float = 8.0
    #: this many false alarms of a rule on a device at about the same time of the week …
    window_repeats: int = 2
    #: … within this many hours of each other (in the week) learn a window
    window_slack_h: float = 3.0
    #: at most this many windows in force per device and rule
    max_windows: int = 2
    #: false alarms this many days back count towards a weekly pattern (a window that expired
    #: comes back with the pattern's next false alarm); never those before an undo
    pattern_days: float = 90.0
    #: a window whose pattern comes back while it is quiet (the rule would have fired there)
    #: is renewed: it then ends ``expiry_days`` after that, but never later than this many
    #: days after it was learned (0: never renewed, it lapses and is learned again)
    window_renew_days: float = 180.0
    #: the same for a device's raise whose level keeps holding back what the rule's own level
    #: would fire on (0: never renewed, it ends ``expiry_days`` after the false alarm)
    raise_renew_days: float = 180.0

    @property
    def expiry_s(self) -> float:
        """``expiry_days`` in seconds."""
        return self.expiry_days * 86400.0


@dataclass(frozen=True, slots=True)
class Levels:
    """Raises in force: per (rule, tenant, device) and per (rule, tenant, product); weekly
    quiet windows per (rule, tenant, device): (start in the week, length) in seconds."""

    device: dict[tuple[str, str, str], float] = field(default_factory=dict)
    product: dict[tuple[str, str, str], float] = field(default_factory=dict)
    max_raise: float = 0.10
    windows: dict[tuple[str, str, str], tuple[tuple[float, float], ...]] = field(
        default_factory=dict)

    def quiet(self, rule: str, tenant: str, device_id: str,
              t: NDArray[np.float64]) -> NDArray[np.bool_] | None:
        """Which of the timestamps ``t`` (device clock) fall in one of the device's quiet
        windows of ``rule`` (None: it has none)."""
        spans = self.windows.get((rule, tenant, device_id))
        if not spans:
            return None
        into = (t + _MONDAY_SHIFT_S) % WEEK_S
        out = np.zeros(t.shape[0], dtype=np.bool_)
        for start, length in spans:
            out |= (into - start) % WEEK_S < length
        return out

    def raise_for(self, rule: str, tenant: str, device_id: str, product: str) -> float:
        """The raise of ``rule`` for one device: its own plus its product's, bounded."""
        total = (self.device.get((rule, tenant, device_id), 0.0)
                 + self.product.get((rule, tenant, product), 0.0))
        return min(total, self.max_raise)


def _in_force(now: float) -> tuple[ColumnElement[bool], ...]:
    return (FeedbackRow.undone_at.is_(None), FeedbackRow.expires_at > now)


def learn_false_alarm(session: Session, case: CaseRow, by: str, now: float,
                      policy: FeedbackPolicy) -> list[FeedbackRow]:
    """The adjustments a false alarm on ``case`` makes (added to ``session``, not committed)."""
    made: list[FeedbackRow] = []
    rules = [r for r in (case.rules or case.rule).split(",") if r]
    for rule in rules:
        mine = session.scalar(select(func.coalesce(func.sum(FeedbackRow.raise_by), 0.0)).where(
            FeedbackRow.tenant == case.tenant, FeedbackRow.device_id == case.device_id,
            FeedbackRow.rule == rule, *_in_force(now))) or 0.0
        step = min(policy.step, policy.max_raise - float(mine))
        if step <= 1e-9:
            continue  # at the bound: a false alarm loosens no further
        row = FeedbackRow(
            tenant=case.tenant, device_id=case.device_id, product=case.product, rule=rule,
            raise_by=round(step, 6), case_id=case.id, created_by=by, created_at=now,
            expires_at=now + policy.expiry_s,
            reason=f"false alarm on case FW-{case.id}: {rule} +{step:.2f} on {case.device_id}")
        session.add(row)
        session.flush()
        made.append(row)
        made.extend(_product_rule(session, case, rule, by, now, policy))
    for rule in rules:
        window = _weekly_window(session, case, rule, by, now, policy)
        if window is not None:
            made.append(window)
    return made


def _weekly_window(session: Session, case: CaseRow, rule: str, by: str, now: float,
                   policy: FeedbackPolicy) -> FeedbackRow | None:
    """The rule's false alarms on the device keep coming at the same time of the week →
    a quiet window around that time (the pattern is learned as normal)."""
    if policy.window_h <= 0.0 or policy.window_repeats < 1:
        return None
    here = time_of_week(case.fault_started_at)
    slack = policy.window_slack_h * 3600.0
    mine = (FeedbackRow.tenant == case.tenant, FeedbackRow.device_id == case.device_id,
            FeedbackRow.rule == rule, FeedbackRow.window_s.is_not(None))
    # a person undid a window of this rule: only what came after counts
    since = max(now - policy.pattern_days * 86_400.0, session.scalar(
        select(func.max(FeedbackRow.undone_at)).where(*mine)) or -math.inf)
    starts = [time_of_week(start) for start, rules in session.execute(
        select(LabelRow.window_start, LabelRow.rules).where(
            LabelRow.tenant == case.tenant, LabelRow.device_id == case.device_id,
            LabelRow.outcome == "false_alarm", LabelRow.labelled_at > since))
        if rule in rules.split(",")]
    if case.id not in set(session.scalars(select(LabelRow.case_id).where(
            LabelRow.case_id == case.id, LabelRow.outcome == "false_alarm"))):
        starts.append(here)  # judged without a label (a caller that stores none)
    near = [s for s in starts if _week_gap(s, here) <= slack]
    if len(near) < policy.window_repeats:
        return None
    windows = list(session.scalars(select(FeedbackRow).where(*mine, *_in_force(now))))
    length = policy.window_h * 3600.0
    if len(windows) >= policy.max_windows or any(
            (here - (w.window_start_s or 0.0)) % WEEK_S < (w.window_s or 0.0) for w in windows):
        return None  # at the bound, or this time is quiet already
    # the pattern's time: the mean of its starts on the week's circle
    angles = [2 * math.pi * s / WEEK_S for s in near]
    centre = (math.atan2(sum(map(math.sin, angles)), sum(map(math.cos, angles)))
              / (2 * math.pi) * WEEK_S) % WEEK_S
    start = round((centre - length / 4.0) % WEEK_S, 1)
    row = FeedbackRow(
        tenant=case.tenant, device_id=case.device_id, product=case.product, rule=rule,
        raise_by=0.0, case_id=case.id, created_by=by, created_at=now,
        expires_at=now + policy.expiry_s, window_start_s=start, window_s=length,
        reason=(f"{len(near)} false alarms of {rule} on {case.device_id} at about the same "
                f"time of the week (last: case FW-{case.id}): quiet {_describe(start, length)}"))
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True, slots=True)
class Quieted:
    """A quiet window (``by`` "window") or the device's raised level (``by`` "raise") held
    back what would have fired: the rule's own condition held for its ``for`` from ``began``
    (device clock)."""

    rule: str
    tenant: str
    device_id: str
    began: float
    by: str = "window"


def renew_windows(engine: Engine, quieted: Iterable[Quieted], now: float,
                  policy: FeedbackPolicy) -> list[FeedbackRow]:
    """What a false alarm taught came back and was held back: the adjustment lives on.

    Each window in force whose quiet held back ``quieted`` (and each raise of the device's
    rule in force, for what only the raised level held back) ends ``expiry_days`` after
    ``now`` instead (never later than ``window_renew_days``, for a raise
    ``raise_renew_days``, after it was made), and counts the renewal. An adjustment of a rule
    that a person confirmed as a fault on that device since it was made is not renewed (a
    confirmed fault never keeps anything loose); an undone or expired one stays ended.
    The adjustments renewed are returned (committed)."""
    bounds = {"window": policy.window_renew_days, "raise": policy.raise_renew_days}
    due = [seen for seen in quieted if bounds.get(seen.by, 0.0) > 0.0]
    renewed: list[FeedbackRow] = []
    if not due:
        return renewed
    with Session(engine, expire_on_commit=False) as session:
        for seen in due:
            bound = bounds[seen.by]
            kind = (FeedbackRow.window_s.is_not(None) if seen.by == "window"
                    else FeedbackRow.window_s.is_(None))
            rows = session.scalars(select(FeedbackRow).where(
                FeedbackRow.tenant == seen.tenant, FeedbackRow.device_id == seen.device_id,
                FeedbackRow.rule == seen.rule, kind, *_in_force(now)))
            for row in rows:
                until = min(now + policy.expiry_s,
                            row.created_at + bound * 86_400.0)
                if until <= row.expires_at:
                    continue
                if row.window_s is not None and (
                        time_of_week(seen.began) - (row.window_start_s or 0.0)
                ) % WEEK_S >= row.window_s:
                    continue
                if _confirmed_since(session, row, seen.rule):
                    continue
                row.expires_at = until
                row.renewals = (row.renewals or 0) + 1
                row.renewed_at = now
                renewed.append(row)
        session.commit()
    return renewed


def _confirmed_since(session: Session, row: FeedbackRow, rule: str) -> bool:
    """A person confirmed a fault of ``rule`` on the window's device since it was learned."""
    return any(rule in rules.split(",") for rules in session.scalars(
        select(LabelRow.rules).where(
            LabelRow.tenant == row.tenant, LabelRow.device_id == row.device_id,
            LabelRow.outcome == "confirmed", LabelRow.labelled_at >= row.created_at)))


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _describe(start: float, length: float) -> str:
    """A weekly window in words: ``Sat 10:30 for 8 h, weekly (UTC)``."""
    day, into = divmod(int(start), 86_400)
    return (f"{_DAYS[day % 7]} {into // 3600:02d}:{into % 3600 // 60:02d} for "
            f"{length / 3600.0:g} h, weekly (UTC)")


def _product_rule(session: Session, case: CaseRow, rule: str, by: str, now: float,
                  policy: FeedbackPolicy) -> list[FeedbackRow]:
    """Enough devices of the product agree → one raise of ``rule`` for the whole product."""
    devices = session.scalar(select(func.count(FeedbackRow.device_id.distinct())).where(
        FeedbackRow.tenant == case.tenant, FeedbackRow.product == case.product,
        FeedbackRow.rule == rule, FeedbackRow.device_id != "", *_in_force(now))) or 0
    if devices < policy.product_devices:
        return []
    present = session.scalar(select(FeedbackRow.id).where(
        FeedbackRow.tenant == case.tenant, FeedbackRow.product == case.product,
        FeedbackRow.rule == rule, FeedbackRow.device_id == "", *_in_force(now)).limit(1))
    if present is not None:
        return []
    row = FeedbackRow(
        tenant=case.tenant, device_id="", product=case.product, rule=rule,
        raise_by=policy.step, case_id=case.id, created_by=by, created_at=now,
        expires_at=now + policy.expiry_s,
        reason=(f"{devices} devices of {case.product} had false alarms of {rule}: "
                f"+{policy.step:.2f} for the product"))
    session.add(row)
    session.flush()
    return [row]


def levels(engine: Engine, now: float, max_raise: float = 0.10) -> Levels:
    """Every raise in force at ``now`` (what :class:`rules.evaluate.RuleEvaluator` applies)."""
    device: dict[tuple[str, str, str], float] = {}
    product: dict[tuple[str, str, str], float] = {}
    windows: dict[tuple[str, str, str], tuple[tuple[float, float], ...]] = {}
    with Session(engine) as session:
        for row in session.scalars(select(FeedbackRow).where(*_in_force(now))):
            if row.window_s is not None and row.window_start_s is not None:
                key = (row.rule, row.tenant, row.device_id)
                windows[key] = (*windows.get(key, ()), (row.window_start_s, row.window_s))
            elif row.device_id:
                key = (row.rule, row.tenant, row.device_id)
                device[key] = round(min(device.get(key, 0.0) + row.raise_by, max_raise), 6)
            else:
                key = (row.rule, row.tenant, row.product)
                product[key] = round(min(product.get(key, 0.0) + row.raise_by, max_raise), 6)
    return Levels(device, product, max_raise, windows)


def adjustments(engine: Engine, tenant: str, device_id: str, product: str,
                now: float) -> list[FeedbackRow]:
    """A device's adjustments and its product's, newest first (ended ones too: who undid
    them, or when they expired)."""
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(select(FeedbackRow).where(
            FeedbackRow.tenant == tenant,
            or_(FeedbackRow.device_id == device_id,
                (FeedbackRow.device_id == "") & (FeedbackRow.product == product)))
            .order_by(FeedbackRow.id.desc())))


def undo(engine: Engine, tenant: str, feedback_id: int, by: str, now: float) -> FeedbackRow:
    """End an adjustment now; the rule's level goes back at the service's next tick."""
    with Session(engine, expire_on_commit=False) as session:
        row = session.scalar(select(FeedbackRow).where(FeedbackRow.id == feedback_id,
                                                       FeedbackRow.tenant == tenant))
        if row is None:
            raise CaseNotFoundError(f"no adjustment {feedback_id}")
        done = session.execute(update(FeedbackRow).where(
            FeedbackRow.id == feedback_id, FeedbackRow.undone_at.is_(None),
            FeedbackRow.expires_at > now).values(undone_by=by, undone_at=now))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise CaseStateError(f"adjustment {feedback_id} has already ended")
        session.commit()
        session.refresh(row)
        return row
