"""Feedback from resolutions that changes detection, visibly and reversibly.

A case resolved as ``false_alarm`` raises the alarm level (``score_at_least``) of each of its
rules for that device by ``step``; once ``product_devices`` devices of one product carry a
raise of the same rule, the rule is raised for the whole product too. A device's raise (its own
plus its product's) never exceeds ``max_raise``, and a raised level never exceeds 0.99. Every
adjustment is a row of ``feedback`` (who, when, why, which case), ends by itself after
``expiry_days`` and can be undone. Confirmed faults (and every other outcome) add nothing: only a
false alarm loosens, and only within these bounds. Rules without ``score_at_least`` (``when``
trees, no-data and offline rules) are not adjusted.

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
>>> engine.dispose()
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Engine, func, or_, select, update
from sqlalchemy.orm import Session

from rules.db import CaseRow, FeedbackRow
from rules.errors import CaseNotFoundError, CaseStateError

__all__ = ["MAX_LEVEL", "FeedbackPolicy", "Levels", "adjustments", "learn_false_alarm",
           "levels", "undo"]

#: a raised alarm level never goes above this (a rule must still be able to fire)
MAX_LEVEL = 0.99


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

    @property
    def expiry_s(self) -> float:
        """``expiry_days`` in seconds."""
        return self.expiry_days * 86400.0


@dataclass(frozen=True, slots=True)
class Levels:
    """Raises in force: per (rule, tenant, device) and per (rule, tenant, product)."""

    device: dict[tuple[str, str, str], float] = field(default_factory=dict)
    product: dict[tuple[str, str, str], float] = field(default_factory=dict)
    max_raise: float = 0.10

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
    return made


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
    with Session(engine) as session:
        for row in session.scalars(select(FeedbackRow).where(*_in_force(now))):
            if row.device_id:
                key = (row.rule, row.tenant, row.device_id)
                device[key] = round(min(device.get(key, 0.0) + row.raise_by, max_raise), 6)
            else:
                key = (row.rule, row.tenant, row.product)
                product[key] = round(min(product.get(key, 0.0) + row.raise_by, max_raise), 6)
    return Levels(device, product, max_raise)


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
