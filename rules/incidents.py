"""Fleet incidents: many devices of one cohort opening cases of one rule at once are one
problem (a firmware release, a production batch), told to the team once and to the customers
in one coordinated message (issue 20).

The case book calls :meth:`IncidentBook.link` for every case it opens, inside the transaction
that opens it: when at least ``min_devices`` devices of one cohort (and ``min_share`` of it)
opened cases of the same rule within ``window_s``, one incident opens and links them; a later
case of the cohort and rule joins the open incident. The team gets one notice for the incident
(the linked cases' own team notices are kept, marked ``suppressed``); a linked case's customer
notice becomes the incident's message (``customers = "message"``), or is held until a person
decides (``"hold"``, per product or rule). A device's customer hears at most once per incident
(the notice's idempotency key is the incident's and the device's). One open incident per
cohort and rule is the database's unique ``open_key``: two workers opening it at once make one,
the loser's transaction is retried by the case book and joins.

>>> from rules.cases import CaseBook
>>> from rules.db import connect
>>> from rules.evaluate import Alarm
>>> from rules.model import Rule
>>> from rules.registry import parse_registry
>>> registry = parse_registry('''
... customers: [{id: c1}, {id: c2}, {id: c3}]
... devices:
...   hp-1: {customer: c1, product: heat_pump, firmware: "2.6.0"}
...   hp-2: {customer: c2, product: heat_pump, firmware: "2.6.0"}
...   hp-3: {customer: c3, product: heat_pump, firmware: "2.6.0"}
...   hp-4: {customer: c3, product: heat_pump, firmware: "2.5.3"}
...   hp-5: {customer: c3, product: heat_pump, firmware: "2.5.3"}
... ''')
>>> engine = connect("sqlite://")
>>> incidents = IncidentBook(IncidentPolicy(min_devices=2), registry)
>>> book = CaseBook(engine, clock=lambda: 0.0, registry=registry, incidents=incidents)
>>> rule = Rule(name="r", score_at_least=0.8, notify_customer=True)
>>> for n, device in enumerate(("hp-1", "hp-2", "hp-3")):
...     _ = book.open_case(Alarm(rule, "acme", device, "heat_pump", 0.0, 600.0 * n,
...                              "discharge_temp", 0.9, 80.0))
>>> [(i.cohort, i.rule, i.devices) for i in incidents.list_incidents(engine)]
[('heat_pump/firmware=2.6.0', 'r', 3)]
>>> [(n.audience, n.kind, n.device_id) for n in incidents.notices(engine, 1)
...  if n.status != "suppressed"]  # doctest: +NORMALIZE_WHITESPACE
[('customer', 'opened', 'hp-1'), ('team', 'opened', 'hp-1'), ('team', 'incident', ''),
 ('customer', 'incident', 'hp-2'), ('customer', 'incident', 'hp-3')]
>>> engine.dispose()

hp-1's own notices went before there was an incident, so its customer gets no second message;
the team hears of hp-2 and hp-3 only in the incident's one notice.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, func, insert, select, union, update
from sqlalchemy.orm import Session

from rules.cohorts import Cohort, Dimension, cohorts_of
from rules.db import (
    CaseRow,
    DeviceRow,
    FirmwareChangeRow,
    IncidentCaseRow,
    IncidentFlagRow,
    IncidentRow,
    NoticeRow,
)
from rules.errors import CaseStateError, RuleError
from rules.flag_rate import binomial_tail, rest_flag_rate
from rules.messages import (
    case_ref,
    incident_cohort_message,
    incident_customer_message,
    incident_team_message,
)
from rules.registry import CustomerRegistry, DeviceMeta

__all__ = [
    "CustomerPolicy",
    "IncidentBook",
    "IncidentDetail",
    "IncidentLink",
    "IncidentPolicy",
    "incident_ref",
]

CustomerPolicy = Literal["message", "hold"]


def incident_ref(incident_id: int) -> str:
    """The reference a person quotes: ``INC-<id>``."""
    return f"INC-{incident_id}"


@dataclass(frozen=True, slots=True)
class IncidentPolicy:
    """When cases make an incident, and what customers hear (``[incidents]``)."""

    enabled: bool = True
    #: this many devices of one cohort with cases of one rule within ``window_s``…
    min_devices: int = 3
    #: …that are also at least this share of the cohort's known devices (0: any share)…
    min_share: float = 0.0
    #: …and whose share is at least this many times that of the product's other devices
    #: with cases of the rule in the window (peers under the same conditions)
    min_lift: float = 3.0
    #: a cohort holding more than this share of the product's known devices is the product
    #: itself (everyone runs the same firmware): it is not compared
    max_cohort_share: float = 0.8
    window_s: float = 24 * 3600.0
    #: the cohorts looked at, in this order (the first to reach the threshold opens it)
    dimensions: tuple[Dimension, ...] = ("firmware", "batch", "model", "region")
    #: "message": each affected customer gets the incident's message; "hold": customer notices
    #: wait until a person decides (``forewarn incidents decide``)
    customers: CustomerPolicy = "message"
    #: products and rules whose incidents hold customer notices whatever ``customers`` says
    hold_products: tuple[str, ...] = ()
    hold_rules: tuple[str, ...] = ()
    #: detector events that flag a device unlike its peers: ``min_devices`` of one cohort
    #: flagged within the window open an incident before their own cases (empty: none)
    flag_detectors: tuple[str, ...] = ("peer",)
    #: cases of a device gone silent or offline make an incident only of a cohort of at most
    #: this share of the product (a region, a batch): outages hit wide cohorts by chance
    offline_max_cohort_share: float = 0.3
    #: flags of fewer than ``min_devices`` (at least ``few_flags_min_devices``, on one field)
    #: open the incident of a cohort of these dimensions (a production batch) when so many
    #: are improbable, at most ``few_flags_alpha``, at the rate the product's other devices
    #: were flagged over the past ``few_flags_history_s`` (``rules.flag_rate``; empty: never)
    few_flags_dimensions: tuple[Dimension, ...] = ("batch",)
    few_flags_min_devices: int = 2
    few_flags_alpha: float = 0.02
    few_flags_history_s: float = 7 * 86_400.0

    #: incidents over cohorts of these dimensions hold customer notices whatever
    #: ``customers`` says: a region whose devices move together is most often the weather (a
    #: heat wave), which a person judges before customers hear of it
    hold_dimensions: tuple[Dimension, ...] = ("region",)

    def customer_policy(self, product: str, rule: str,
                        dimension: Dimension | None = None) -> CustomerPolicy:
        """What the customers of an incident of ``rule`` on ``product`` (over a cohort of
        ``dimension``) hear."""
        if (product in self.hold_products or rule in self.hold_rules
                or dimension in self.hold_dimensions):
            return "hold"
        return self.customers


@dataclass(frozen=True, slots=True)
class IncidentLink:
    """What :meth:`IncidentBook.link` did with a new case."""

    incident_id: int
    #: the case opened the incident (False: it joined an open one)
    opened: bool
    #: the customers' policy of the incident, and the decision on a held one
    policy: CustomerPolicy
    decision: str | None

    @property
    def message_customers(self) -> bool:
        """Whether a linked case's customer gets the incident's message now."""
        return self.policy == "message" or self.decision == "message"


@dataclass(frozen=True, slots=True)
class IncidentDetail:
    """An incident, the cases it links and the flags of its devices without a case there,
    for the console, the API and the CLI."""

    incident: IncidentRow
    cases: list[CaseRow]
    #: the peer detector's flags of devices in the incident by a flag only (none of their
    #: cases is linked), oldest first
    flags: list[IncidentFlagRow]


class IncidentBook:
    """Opens, joins, decides and closes fleet incidents in the case database."""

    def __init__(self, policy: IncidentPolicy | None = None,
                 registry: CustomerRegistry | None = None) -> None:
        self.policy = policy or IncidentPolicy()
        self.registry = registry or CustomerRegistry()
        #: the registry's devices per cohort key, and its firmware per (product, device)
        self._sizes: dict[str, int] | None = None
        self._firmware: dict[tuple[str, str], str] = {}

    # -- linking, inside the case book's transaction -----------------------------------------

    def link(self, session: Session, case_id: int, rule: str, meta: DeviceMeta, at: float,
             now: float, silent: bool = False) -> IncidentLink | None:
        """Link the case just inserted (``case_id``) to an incident of its cohort and rule:
        join the open one, or open one when the cohort has reached the threshold.
        ``silent``: the case says the device went silent or offline."""
        policy = self.policy
        if not policy.enabled:
            return None
        firmware = session.scalar(select(DeviceRow.firmware).where(
            DeviceRow.tenant == meta.tenant, DeviceRow.device_id == meta.device_id))
        cohorts = cohorts_of(meta, firmware, policy.dimensions)
        # a device already in an open incident (by a case, or flagged unlike its peers when
        # the flags opened it): its new case (another rule fired by the same fault) is the
        # incident's too, and its customer is not told again by another one
        row = self._open_incident_of(session, meta.tenant, meta.device_id)
        if row is not None and (row.rule in (rule, _FLAGGED)
                                or Cohort.parse(row.cohort).dimension not in _CONDITIONS
                                or self._shared(session, meta.tenant, row, rule, at)):
            self._join(session, row, [(case_id, meta)], at)
            return IncidentLink(row.id, False, _policy(row.customer_policy), row.decision)
        broad: IncidentRow | None = None
        for cohort in cohorts:
            row = session.scalar(select(IncidentRow).where(
                IncidentRow.open_key == _open_key(meta.tenant, cohort, rule)))
            if row is None and cohort.dimension in _CONDITIONS:
                # the region's weather incident, of a rule ``min_devices`` of the region's
                # devices opened cases of (whichever incident those are in): the weather's
                # second symptom is the weather's, not a second incident of the region
                weather = session.scalar(select(IncidentRow).where(
                    IncidentRow.status == "open", IncidentRow.tenant == meta.tenant,
                    IncidentRow.cohort == cohort.key, IncidentRow.rule != _FLAGGED)
                    .order_by(IncidentRow.id).limit(1))
                if weather is not None and self._shared(session, meta.tenant, weather, rule,
                                                        at):
                    row = weather
            if row is None:
                # an incident of the cohort whose devices opened cases of this rule (one the
                # peer detector's flags opened, that their cases joined; or a release's of
                # another rule, whose defect fires both): the same fault. A region's shares
                # one symptom only (its rule; ``_CONDITIONS``)
                same_fault = select(IncidentRow).join(
                    IncidentCaseRow, IncidentCaseRow.incident_id == IncidentRow.id).join(
                    CaseRow, CaseRow.id == IncidentCaseRow.case_id).where(
                    IncidentRow.status == "open", IncidentRow.tenant == meta.tenant,
                    IncidentRow.cohort == cohort.key, CaseRow.rule == rule)
                if cohort.dimension not in _ONE_CAUSE:
                    # a region's shares its symptoms only; a model's devices fail for many
                    # reasons: its incident of another rule, that a member's case of this rule
                    # joined (the device's second fault), is no evidence this rule is its cause
                    same_fault = same_fault.where(IncidentRow.rule == _FLAGGED)
                row = session.scalar(same_fault.order_by(IncidentRow.id).limit(1))
            if row is not None and cohort.dimension in _BROAD:
                # a model's open incident of the rule: a narrower cohort's of it (the
                # region's heat wave) explains the case better, if one is open
                broad = broad or row
                continue
            if row is not None:
                self._join(session, row, [(case_id, meta)], at)
                return IncidentLink(row.id, False, _policy(row.customer_policy), row.decision)
        product_size = self.product_size(session, meta.tenant, meta.product)
        if broad is not None and self._bursting(session, meta.tenant, Cohort.parse(broad.cohort),
                                                rule, at, product_size):
            self._join(session, broad, [(case_id, meta)], at)
            return IncidentLink(broad.id, False, _policy(broad.customer_policy),
                                broad.decision)
        looked: list[tuple[Cohort, int, list[tuple[int, DeviceMeta]], int]] = []
        widest = policy.offline_max_cohort_share if silent else policy.max_cohort_share
        for cohort in cohorts:
            size = self.cohort_size(session, meta.tenant, cohort)
            if product_size and size > widest * product_size:
                continue  # (nearly) the whole product: no cohort to compare with the rest
            members, rest = self._candidates(session, meta.tenant, cohort, rule, at)
            looked.append((cohort, size, members, rest))
            devices = {m.device_id for _, m in members}
            if not self._stands_out(len(devices), size, rest, product_size):
                continue
            # a small cohort (a batch of ten) stands out first, but when half its devices
            # share a cohort of an earlier dimension (the firmware they run) that has as many
            # cases itself, that one explains them
            for earlier, earlier_size, earlier_members, _ in looked[:-1]:
                theirs = {m.device_id for _, m in earlier_members}
                if (len(theirs) >= max(policy.min_devices, len(devices))
                        and 2 * len(devices & theirs) >= len(devices)):
                    cohort, size, members = earlier, earlier_size, earlier_members
                    devices = {m.device_id for _, m in members}
                    break
            if cohort.dimension in _BROAD:
                # a model's devices fail for many reasons: a narrower cohort of a later
                # dimension (the region the heat wave is in) that stands out as well, more
                # densely, with at least half the model's devices, explains them better
                for later in cohorts[cohorts.index(cohort) + 1:]:
                    later_size = self.cohort_size(session, meta.tenant, later)
                    if product_size and later_size > widest * product_size:
                        continue
                    later_members, later_rest = self._candidates(session, meta.tenant, later,
                                                                 rule, at)
                    theirs = {m.device_id for _, m in later_members}
                    if (self._stands_out(len(theirs), later_size, later_rest, product_size)
                            and 2 * len(devices & theirs) >= len(devices)
                            and len(theirs) * max(size, 1) > len(devices) * max(later_size, 1)):
                        cohort, size, members, rest = later, later_size, later_members, later_rest
                        devices = theirs
                        break
            flagged = session.scalar(select(IncidentRow).where(
                IncidentRow.open_key == _open_key(meta.tenant, cohort, _FLAGGED)))
            if flagged is None and cohort.dimension in _BROAD:
                # the model's incident of the rule, open from an earlier burst, bursts again
                flagged = session.scalar(select(IncidentRow).where(
                    IncidentRow.open_key == _open_key(meta.tenant, cohort, rule)))
            if flagged is not None:  # the peer detector found the cohort first: that one
                self._join(session, flagged, members, at)
                return IncidentLink(flagged.id, False, _policy(flagged.customer_policy),
                                    flagged.decision)
            if cohort.dimension not in _CONDITIONS and self._weather_explains(
                    session, meta.tenant, meta.product, members):
                continue
            # the cohort's incident of another rule is open (a release whose defect fires a
            # second rule on other devices of it): one cause, one incident. Only where the
            # cohort is one change (``_ONE_CAUSE``): a model's devices fail for many reasons
            same_cohort = None if cohort.dimension not in _ONE_CAUSE else session.scalar(
                select(IncidentRow).where(
                    IncidentRow.status == "open", IncidentRow.tenant == meta.tenant,
                    IncidentRow.cohort == cohort.key).order_by(IncidentRow.id).limit(1))
            if same_cohort is not None:
                self._join(session, same_cohort, members, at)
                return IncidentLink(same_cohort.id, False,
                                    _policy(same_cohort.customer_policy), same_cohort.decision)
            summary = (f"{len(devices)} of {size or '?'} devices of {cohort.key} opened "
                       f"{rule} cases within {policy.window_s / 3600:.0f} h"
                       f" ({rest} of the product's other {product_size - size})")
            absorbed = None if cohort.dimension in _BROAD else self._broad_of(
                session, meta, cohort)
            if absorbed is not None:
                # a model's open incident, at least half of whose devices are this cohort's
                # (it reached the model's threshold first): the same cause, told once; it
                # becomes this cohort's incident and this cluster joins it
                row = self._absorb(session, absorbed, meta, cohort, rule, summary, now,
                                   devices)
            else:
                row = self._insert(session, meta, cohort, rule, now, at, summary)
            # the members' other cases of the window (other rules, the same fault) join too;
            # a region's only of a rule ``min_devices`` of them share: one device's own fault
            # in the heat wave is not the weather
            others = session.execute(select(CaseRow.id, CaseRow.device_id, CaseRow.rule).where(
                CaseRow.tenant == meta.tenant, CaseRow.device_id.in_(devices),
                CaseRow.opened_at >= at - policy.window_s, CaseRow.opened_at <= at,
                CaseRow.id.not_in([c for c, _ in members]),
                CaseRow.id.not_in(select(IncidentCaseRow.case_id)))).all()
            if cohort.dimension in _CONDITIONS:
                sharing: dict[str, set[str]] = {}
                for _, d, other_rule in others:
                    sharing.setdefault(other_rule, set()).add(d)
                others = [o for o in others if len(sharing[o.rule]) >= policy.min_devices]
            by_device = {m.device_id: m for _, m in members}
            members += [(c, by_device[d]) for c, d, _ in others]
            self._join(session, row, members, at)
            customer_policy = _policy(row.customer_policy)
            if absorbed is None:  # (the team heard of an absorbed one when it opened)
                self._team_notice(session, row, case_id, [c for c, _ in members], now)
            if customer_policy == "hold":
                self._hold_pending(session, row, [c for c, _ in members if c != case_id])
            return IncidentLink(row.id, absorbed is None, customer_policy, row.decision)
        return None

    def flag(self, session: Session, meta: DeviceMeta, detector: str, field: str, at: float,
             now: float) -> int | None:
        """Record that ``detector`` flagged the device unlike its peers at ``at``; when
        ``min_devices`` of one of its cohorts (and ``min_share`` of it, ``min_lift`` times the
        product's other devices) were flagged within the window, open the cohort's incident
        from the flags: the team hears now, before the devices' own cases open; those cases
        (and later ones of the cohort with the same rules) join it. Returns the incident the
        flag belongs to (None: none)."""
        policy = self.policy
        if not policy.enabled or detector not in policy.flag_detectors:
            return None
        row = self._open_incident_of(session, meta.tenant, meta.device_id)
        flag_id: int | None = None
        if row is None and session.scalar(select(CaseRow.id).where(
                CaseRow.tenant == meta.tenant, CaseRow.device_id == meta.device_id,
                CaseRow.status != "resolved", CaseRow.opened_at <= at).limit(1)) is not None:
            # its own open case explains it (a fault of its own, found sooner by its rules):
            # the flag is no evidence of a cohort's (the peer rules are inhibited the same
            # way); but a case of the same field opened within the window is the same
            # symptom, which counts once, by the case, in a few flags' tally (below)
            if meta.device_id not in self._cased(session, meta, field, at):
                return None
        else:
            flag_id = session.execute(insert(IncidentFlagRow).values(
                tenant=meta.tenant, product=meta.product, device_id=meta.device_id,
                detector=detector, field=field, at=at,
                incident_id=None if row is None else row.id).returning(IncidentFlagRow.id)
                ).scalar_one()
        if row is not None:
            return row.id
        firmware = session.scalar(select(DeviceRow.firmware).where(
            DeviceRow.tenant == meta.tenant, DeviceRow.device_id == meta.device_id))
        flags = session.execute(select(IncidentFlagRow.id, IncidentFlagRow.device_id,
                                       IncidentFlagRow.field).where(
            IncidentFlagRow.tenant == meta.tenant, IncidentFlagRow.product == meta.product,
            IncidentFlagRow.at >= at - policy.window_s, IncidentFlagRow.at <= at,
            IncidentFlagRow.detector.in_(policy.flag_detectors),
            IncidentFlagRow.incident_id.is_(None))).all()
        flagged = {device_id for _, device_id, _ in flags}
        reported = self._reported(session, meta.tenant, flagged)
        product_size = self.product_size(session, meta.tenant, meta.product)
        for cohort in cohorts_of(meta, firmware, policy.dimensions):
            size = self.cohort_size(session, meta.tenant, cohort)
            if product_size and size > policy.max_cohort_share * product_size:
                continue
            row = session.scalar(select(IncidentRow).where(
                IncidentRow.open_key == _open_key(meta.tenant, cohort, _FLAGGED)))
            if row is None and cohort.dimension in _ONE_CAUSE:
                # a release's or a batch's incident of cases is open: a device of it flagged
                # unlike its peers is the same change's, not a second incident's
                row = session.scalar(select(IncidentRow).where(
                    IncidentRow.status == "open", IncidentRow.tenant == meta.tenant,
                    IncidentRow.cohort == cohort.key).order_by(IncidentRow.id).limit(1))
            if row is not None and flag_id is None:
                return None  # (its case is its own, as before: no flag to join)
            if row is not None:  # the cohort's incident is open: the device joins it
                session.execute(update(IncidentFlagRow).where(IncidentFlagRow.id == flag_id)
                                .values(incident_id=row.id)
                                .execution_options(synchronize_session=False))
                self._join(session, row, [], at)
                return row.id
            devices = {d for d in flagged if cohort in cohorts_of(
                self.registry.lookup(meta.tenant, d, meta.product), reported.get(d),
                (cohort.dimension,))}
            rest = len(flagged - devices)
            if (len(devices) < policy.min_devices
                    and cohort.dimension not in policy.few_flags_dimensions):
                few = True  # (a few flags make no incident of this dimension)
            elif len(devices) < policy.min_devices:
                # a few flags: beside at least one device counted by its flag, the devices
                # of the cohort with an open case of a flagged field, opened within the
                # window and in no incident, count too (once, by their case: a flag of
                # theirs is not recorded), as do the product's others in the lift; cases
                # alone are the cases' count to make (``link``, ``min_devices``)
                fields = {f for _, d, f in flags if d in devices} | {field}
                cased = {d: f for f in fields for d in self._cased(session, meta, f, at)}
                by_case = {d for d in cased if d not in devices and cohort in cohorts_of(
                    self.registry.lookup(meta.tenant, d, meta.product), None,
                    (cohort.dimension,))} if devices else set()
                few = not self._improbable_few(
                    session, meta, cohort, [(d, f) for _, d, f in flags if d in devices]
                    + [(d, cased[d]) for d in by_case], size, product_size, at)
                devices |= by_case
                rest = len((flagged | set(cased)) - devices)
            else:
                few = False
            if (few or len(devices) < policy.min_share * size
                    or (rest and product_size > size and len(devices) / max(size, 1)
                        < policy.min_lift * rest / (product_size - size))):
                continue
            summary = (f"{len(devices)} of {size or '?'} devices of {cohort.key} flagged "
                       f"unlike their peers within {policy.window_s / 3600:.0f} h"
                       f" ({rest} of the product's other {product_size - size})")
            absorbed = None if cohort.dimension not in _ONE_CAUSE else self._broad_of(
                session, meta, cohort)
            if absorbed is not None:
                # a model's open incident, at least half of whose devices are the batch's:
                # the flags are the same cause; it becomes the batch's (of its own rule)
                row = self._absorb(session, absorbed, meta, cohort, absorbed.rule, summary,
                                   now, devices)
            else:
                row = self._insert(session, meta, cohort, _FLAGGED, now, at, summary)
            incident_id = row.id
            session.execute(update(IncidentFlagRow).where(
                IncidentFlagRow.id.in_([i for i, d, _ in flags if d in devices]
                                       + ([] if flag_id is None else [flag_id])))
                .values(incident_id=incident_id).execution_options(synchronize_session=False))
            # the flagged devices' cases opened since their flags, still open, join it
            cases = session.execute(select(CaseRow.id, CaseRow.device_id).where(
                CaseRow.tenant == meta.tenant, CaseRow.device_id.in_(devices),
                CaseRow.opened_at >= at - policy.window_s, CaseRow.opened_at <= at,
                CaseRow.status != "resolved",
                CaseRow.id.not_in(select(IncidentCaseRow.case_id)))).all()
            members = [(c, self.registry.lookup(meta.tenant, d, meta.product))
                       for c, d in cases]
            self._join(session, row, members, at)
            if absorbed is None:  # (the team heard of an absorbed one when it opened)
                self._team_notice(session, row, None, [c for c, _ in members], now,
                                  flagged=sorted(devices))
            return incident_id
        return None

    def _improbable_few(self, session: Session, meta: DeviceMeta, cohort: Cohort,
                        flags: Sequence[tuple[str, str]], size: int, product_size: int,
                        at: float) -> bool:
        """Whether ``flags`` ((device, field) of the cohort in the window), fewer devices than
        ``min_devices``, are too many of one field for chance at the product's other devices'
        rate of flags (``few_flags_*``)."""
        policy = self.policy
        if (cohort.dimension not in policy.few_flags_dimensions or size <= 0
                or product_size <= size):  # (a cohort the registry does not size: no rate)
            return False
        by_field: dict[str, set[str]] = {}
        for device_id, field in flags:
            by_field.setdefault(field, set()).add(device_id)
        most = max((len(d) for d in by_field.values()), default=0)
        if most < policy.few_flags_min_devices:
            return False

        def in_cohort(device_id: str) -> bool:
            meta_d = self.registry.lookup(meta.tenant, device_id, meta.product)
            return cohort in cohorts_of(meta_d, None, (cohort.dimension,))

        rate = rest_flag_rate(session, meta.tenant, meta.product, in_cohort,
                              product_size - size, policy.flag_detectors, at,
                              policy.window_s, policy.few_flags_history_s)
        return binomial_tail(most, max(size, most), rate) <= policy.few_flags_alpha

    def _cased(self, session: Session, meta: DeviceMeta, field: str, at: float) -> set[str]:
        """The devices of ``meta``'s product with an open case of ``field`` opened within the
        window before ``at`` and in no incident (the same symptom as a flag of ``field``)."""
        return set(session.scalars(select(CaseRow.device_id).where(
            CaseRow.tenant == meta.tenant, CaseRow.product == meta.product,
            CaseRow.field == field, CaseRow.status != "resolved",
            CaseRow.opened_at >= at - self.policy.window_s, CaseRow.opened_at <= at,
            CaseRow.id.not_in(select(IncidentCaseRow.case_id)))))

    def _insert(self, session: Session, meta: DeviceMeta, cohort: Cohort, rule: str,
                now: float, at: float, summary: str) -> IncidentRow:
        """A new open incident of ``cohort`` and ``rule`` (no cases or devices yet)."""
        incident_id = session.execute(insert(IncidentRow).values(
            tenant=meta.tenant, product=meta.product, cohort=cohort.key, rule=rule,
            status="open", open_key=_open_key(meta.tenant, cohort, rule), opened_at=now,
            cohort_at=now, last_joined_at=at, closed_by="", cases=0, devices=0, summary=summary,
            customer_policy=self.policy.customer_policy(meta.product, rule, cohort.dimension),
            ).returning(IncidentRow.id)).scalar_one()
        row = session.get(IncidentRow, incident_id)
        assert row is not None
        return row

    def _stands_out(self, devices: int, size: int, rest: int, product_size: int) -> bool:
        """Whether ``devices`` of a cohort of ``size`` with cases (``rest`` of the product's
        other devices) reach ``min_devices``, ``min_share`` and ``min_lift``."""
        policy = self.policy
        return not (devices < policy.min_devices or devices < policy.min_share * size
                    or (rest > 0 and product_size > size and devices / max(size, 1)
                        < policy.min_lift * rest / (product_size - size)))

    def _absorb(self, session: Session, absorbed: IncidentRow, meta: DeviceMeta,
                cohort: Cohort, rule: str, summary: str, now: float,
                cluster: Collection[str]) -> IncidentRow:
        """Make the open incident ``absorbed`` (a model's) ``cohort``'s incident of ``rule``
        from ``now`` (its ``cohort_at``: the team knew of a model's incident before), and tell
        the team so once: the cause is now known (``cluster``: the cohort's devices that
        showed it, about to join)."""
        was = absorbed.cohort
        session.execute(update(IncidentRow).where(IncidentRow.id == absorbed.id).values(
            cohort=cohort.key, rule=rule, open_key=_open_key(meta.tenant, cohort, rule),
            cohort_at=now,
            summary=f"{summary}; was {was}",
            customer_policy=self.policy.customer_policy(meta.product, rule, cohort.dimension))
            .execution_options(synchronize_session=False))
        session.refresh(absorbed)
        self._cohort_notice(session, absorbed, was, summary, cluster, now)
        return absorbed

    def _cohort_notice(self, session: Session, row: IncidentRow, was: str, why: str,
                       cluster: Collection[str], now: float) -> None:
        """The team's one notice that ``row``, opened as ``was``'s incident, is now its
        cohort's (``kind = cohort``; customers hear nothing more: they were told of the
        incident, not of its cohort). Once per incident, whatever re-runs: its key."""
        key = f"incident-{row.id}-team-cohort"
        if session.scalar(select(NoticeRow.id).where(NoticeRow.idempotency_key == key)):
            return
        devices = set(cluster) | set(session.scalars(union(
            select(IncidentCaseRow.device_id).where(IncidentCaseRow.incident_id == row.id),
            select(IncidentFlagRow.device_id).where(IncidentFlagRow.incident_id == row.id))))
        subject, body = incident_cohort_message(
            incident_ref(row.id), was, row.cohort, row.rule, len(devices), row.opened_at, why,
            row.customer_policy)
        session.execute(insert(NoticeRow).values(
            case_id=None, tenant=row.tenant, device_id="", audience="team", kind="cohort",
            customer_id="", channel=self._team_channel, recipient=self._team_recipient,
            idempotency_key=key, subject=subject, body=body, status="pending", attempts=0,
            next_attempt_at=0.0, last_error=None, created_at=now))

    def _broad_of(self, session: Session, meta: DeviceMeta,
                  cohort: Cohort) -> IncidentRow | None:
        """An open incident of a broad cohort (a model) of ``meta``'s product, none of a
        flag's, at least half of whose devices are in ``cohort``, and at least half of the
        devices it opened with: those are the evidence of its cause; devices that joined
        later joined because it was open (a heat wave's pumps joining a chance cluster of
        their model's) and make a majority by chance."""
        broad = [row for row in session.scalars(select(IncidentRow).where(
            IncidentRow.status == "open", IncidentRow.tenant == meta.tenant,
            IncidentRow.product == meta.product, IncidentRow.rule != _FLAGGED)
            .order_by(IncidentRow.id)) if Cohort.parse(row.cohort).dimension in _BROAD]
        for row in broad:
            opened = session.execute(select(
                CaseRow.device_id, CaseRow.opened_at, IncidentCaseRow.joined_at).join(
                IncidentCaseRow, IncidentCaseRow.case_id == CaseRow.id).where(
                IncidentCaseRow.incident_id == row.id).order_by(IncidentCaseRow.id)).all()
            devices = {d for d, _, _ in opened}
            # the cases it opened with were linked first, at once (one ``joined_at``)
            first = {d for d, _, joined in opened if opened and joined == opened[0].joined_at}
            reported = self._reported(session, meta.tenant, devices)
            since = self._running_since(session, meta.tenant, devices, cohort)
            # a device of the cohort whose case in it opened while it was the cohort's: a
            # pump's case from before it installed the release is not the release's
            inside = {d for d, at, _ in opened if cohort in cohorts_of(
                self.registry.lookup(meta.tenant, d, meta.product), reported.get(d),
                (cohort.dimension,)) and at >= since.get(d, at)}
            if (devices and 2 * len(inside) >= len(devices)
                    and 2 * len(inside & first) >= len(first)):
                return row
        return None

    @staticmethod
    def _running_since(session: Session, tenant: str, devices: set[str],
                       cohort: Cohort) -> dict[str, float]:
        """When each of ``devices`` began reporting ``cohort``'s firmware (a firmware cohort;
        no entry: always, or another dimension)."""
        if cohort.dimension != "firmware":
            return {}
        return {device_id: since for device_id, since in session.execute(
            select(FirmwareChangeRow.device_id, func.max(FirmwareChangeRow.since)).where(
                FirmwareChangeRow.tenant == tenant, FirmwareChangeRow.device_id.in_(devices),
                FirmwareChangeRow.product == cohort.product,
                FirmwareChangeRow.firmware == cohort.value,
                FirmwareChangeRow.previous.is_not(None))
            .group_by(FirmwareChangeRow.device_id)).all()}

    def _shared(self, session: Session, tenant: str, incident: IncidentRow, rule: str,
                at: float) -> bool:
        """Whether ``rule`` is a symptom the devices of a region's open ``incident`` share: at
        least ``min_devices`` of the region's devices opened a case of it since the incident's
        first case (or within the window, if longer ago), whatever incident those cases are in
        (a south pump in its batch's incident feels the heat too). The weather lasts as long
        as its incident: its second symptom may come a few devices a day."""
        began = session.scalar(select(func.min(CaseRow.opened_at)).join(
            IncidentCaseRow, IncidentCaseRow.case_id == CaseRow.id).where(
            IncidentCaseRow.incident_id == incident.id))
        since = at - self.policy.window_s if began is None else min(
            at - self.policy.window_s, began)
        return len(self._cohort_devices(session, tenant, Cohort.parse(incident.cohort), rule,
                                        since, at)) >= self.policy.min_devices

    def _bursting(self, session: Session, tenant: str, cohort: Cohort, rule: str, at: float,
                  product_size: int) -> bool:
        """Whether ``cohort``'s devices with cases of ``rule`` in the window before ``at``
        (linked or not) still stand out against the product's others: a broad cohort's
        (a model's) incident is a burst of cases, and a case after the burst is no evidence
        of the model's cause (a pump's sensor in the heat wave, days after a chance cluster
        of its model's sensors opened the model's incident)."""
        since = at - self.policy.window_s
        devices = self._cohort_devices(session, tenant, cohort, rule, since, at)
        everyone = session.scalar(select(func.count(CaseRow.device_id.distinct())).where(
            CaseRow.tenant == tenant, CaseRow.product == cohort.product, CaseRow.rule == rule,
            CaseRow.opened_at >= since, CaseRow.opened_at <= at)) or 0
        return self._stands_out(len(devices), self.cohort_size(session, tenant, cohort),
                                everyone - len(devices), product_size)

    def _weather_explains(self, session: Session, tenant: str, product: str,
                          members: Sequence[tuple[int, DeviceMeta]]) -> bool:
        """Whether at least half the devices of ``members`` (a model's cases of one rule)
        belong to a region whose weather incident is open: the heat wave explains them
        better than their model does, and a device's case of the rule joins the region's
        incident once ``min_devices`` of the region share it (or stays its own)."""
        regions = [Cohort.parse(key) for key in session.scalars(
            select(IncidentRow.cohort).distinct().where(
                IncidentRow.status == "open", IncidentRow.tenant == tenant,
                IncidentRow.product == product, IncidentRow.rule != _FLAGGED))]
        by_device = {m.device_id: m for _, m in members}
        for region in regions:
            if region.dimension not in _CONDITIONS:
                continue
            inside = [d for d, m in by_device.items() if region in cohorts_of(
                m, None, (region.dimension,))]
            if 2 * len(inside) >= len(by_device):
                return True
        return False

    def _cohort_devices(self, session: Session, tenant: str, cohort: Cohort, rule: str,
                        since: float, at: float) -> set[str]:
        """The devices of ``cohort`` that opened a case of ``rule`` from ``since`` to ``at``."""
        rows = session.execute(select(CaseRow.device_id, CaseRow.product).distinct().where(
            CaseRow.tenant == tenant, CaseRow.product == cohort.product, CaseRow.rule == rule,
            CaseRow.opened_at >= since, CaseRow.opened_at <= at)).all()
        reported = self._reported(session, tenant, {d for d, _ in rows})
        return {d for d, product in rows if cohort in cohorts_of(
            self.registry.lookup(tenant, d, product), reported.get(d), (cohort.dimension,))}

    @staticmethod
    def _open_incident_of(session: Session, tenant: str, device_id: str) -> IncidentRow | None:
        """The open incident a device is in: by one of its cases, or flagged into it."""
        by_case = select(IncidentCaseRow.incident_id).where(
            IncidentCaseRow.tenant == tenant, IncidentCaseRow.device_id == device_id)
        by_flag = select(IncidentFlagRow.incident_id).where(
            IncidentFlagRow.tenant == tenant, IncidentFlagRow.device_id == device_id,
            IncidentFlagRow.incident_id.is_not(None))
        return session.scalar(select(IncidentRow).where(
            IncidentRow.status == "open", IncidentRow.tenant == tenant,
            IncidentRow.id.in_(by_case.union(by_flag).scalar_subquery()))
            .order_by(IncidentRow.id.desc()).limit(1))

    @staticmethod
    def _reported(session: Session, tenant: str, devices: set[str]) -> dict[str, str | None]:
        return {device_id: firmware for device_id, firmware in session.execute(
            select(DeviceRow.device_id, DeviceRow.firmware).where(
                DeviceRow.tenant == tenant, DeviceRow.device_id.in_(devices)))}

    def customer_notice(self, session: Session, link: IncidentLink, notice: dict[str, object],
                        meta: DeviceMeta, product: str) -> dict[str, object] | None:
        """Turn a linked case's customer notice into the incident's message (``message``), or
        hold it (``hold``, undecided); None: the device's customer already heard of this
        incident. ``notice`` is the row the case book would have written."""
        held = {**notice, "status": "suppressed",
                "last_error": f"held: incident {incident_ref(link.incident_id)} awaits a "
                              "decision"}
        if link.decision == "quiet":
            return {**held, "last_error": f"not sent: incident {incident_ref(link.incident_id)}"
                                          " was decided quiet"}
        if not link.message_customers:
            return held
        return self._message(session, link.incident_id, notice, meta.tenant, meta.device_id,
                             meta.language, meta.timezone, meta.customer_name, product)

    def _message(self, session: Session, incident_id: int, notice: dict[str, object],
                 tenant: str, device_id: str, language: str, timezone: str,
                 customer_name: str, product: str) -> dict[str, object] | None:
        key = f"incident-{incident_id}-customer-{tenant}/{device_id}"
        told = session.scalar(select(func.count()).select_from(NoticeRow).where(
            NoticeRow.audience == "customer", NoticeRow.status != "suppressed",
            NoticeRow.case_id.in_(select(IncidentCaseRow.case_id).where(
                IncidentCaseRow.incident_id == incident_id,
                IncidentCaseRow.device_id == device_id))))
        if told or session.scalar(select(NoticeRow.id).where(
                NoticeRow.idempotency_key == key)) is not None:
            return None
        subject, body = incident_customer_message(
            incident_id, product, device_id, language, timezone, customer_name)
        return {**notice, "kind": "incident", "idempotency_key": key, "subject": subject,
                "body": body, "status": "pending", "last_error": None}

    def _candidates(self, session: Session, tenant: str, cohort: Cohort, rule: str,
                    at: float) -> tuple[list[tuple[int, DeviceMeta]], int]:
        """Cases of ``rule`` opened within one window around ``at`` by devices of ``cohort``
        and in no incident; and how many devices of the product outside the cohort opened one
        in that window.

        The window is the one of ``window_s`` holding ``at`` with the most such devices:
        ``window_s`` before ``at`` when cases are recorded in the order they opened, but a
        case recorded late (its device's batch came after another's, or after an outage) may
        complete a cluster of cases that opened after it."""
        window = self.policy.window_s
        rows = session.execute(select(CaseRow.id, CaseRow.device_id, CaseRow.product,
                                      CaseRow.opened_at).where(
            CaseRow.tenant == tenant, CaseRow.rule == rule,
            CaseRow.opened_at >= at - window, CaseRow.opened_at <= at + window)).all()
        if not rows:
            return [], 0
        linked = set(session.scalars(select(IncidentCaseRow.case_id).where(
            IncidentCaseRow.case_id.in_([r.id for r in rows]))))
        reported: dict[str, str | None] = {
            device_id: firmware for device_id, firmware in session.execute(
                select(DeviceRow.device_id, DeviceRow.firmware).where(
                    DeviceRow.tenant == tenant,
                    DeviceRow.device_id.in_({r.device_id for r in rows})))}
        metas = {r.device_id: self.registry.lookup(tenant, r.device_id, r.product)
                 for r in rows}
        inside = {d: cohort in cohorts_of(m, reported.get(d), (cohort.dimension,))
                  for d, m in metas.items()}

        def members_from(start: float) -> set[str]:
            return {r.device_id for r in rows if inside[r.device_id] and r.id not in linked
                    and start <= r.opened_at <= start + window}

        start = at - window
        best = members_from(start)
        for later in sorted({r.opened_at for r in rows if at - window < r.opened_at <= at}):
            found = members_from(later)
            if len(found) > len(best):
                start, best = later, found
        chosen = [r for r in rows if start <= r.opened_at <= start + window]
        members = [(r.id, metas[r.device_id]) for r in chosen
                   if inside[r.device_id] and r.id not in linked]
        rest = {r.device_id for r in chosen if not inside[r.device_id]}
        return members, len(rest)

    def product_size(self, session: Session, tenant: str, product: str) -> int:
        """The devices of ``product`` known: the registry's, or those the device book saw."""
        self._registry_sizes()
        assert self._sizes is not None
        seen = session.scalar(select(func.count()).select_from(DeviceRow).where(
            DeviceRow.tenant == tenant, DeviceRow.product == product)) or 0
        return max(self._sizes.get(product, 0), seen)

    def _registry_sizes(self) -> None:
        if self._sizes is None:
            sizes: dict[str, int] = {}
            for device in self.registry.installed():
                meta = self.registry.lookup(device.tenant or "", device.device_id,
                                            device.product or "")
                if meta.firmware:
                    self._firmware[(meta.product, meta.device_id)] = meta.firmware
                for c in cohorts_of(meta):
                    sizes[c.key] = sizes.get(c.key, 0) + 1
            self._sizes = sizes

    def cohort_size(self, session: Session, tenant: str, cohort: Cohort) -> int:
        """The devices known to be in ``cohort``: the registry's, or for a firmware those that
        reported it, whichever is more."""
        self._registry_sizes()
        assert self._sizes is not None
        if cohort.dimension != "firmware":
            return self._sizes.get(cohort.key, 0)
        running: dict[str, str | None] = {device_id: firmware for (product, device_id), firmware
                   in self._firmware.items() if product == cohort.product}
        running.update({device_id: firmware for device_id, firmware in session.execute(
            select(DeviceRow.device_id, DeviceRow.firmware).where(
                DeviceRow.tenant == tenant, DeviceRow.product == cohort.product,
                DeviceRow.firmware.is_not(None)))})
        return sum(firmware == cohort.value for firmware in running.values())

    def _join(self, session: Session, row: IncidentRow,
              members: Sequence[tuple[int, DeviceMeta]], at: float) -> None:
        if members:
            session.execute(insert(IncidentCaseRow), [
                {"incident_id": row.id, "case_id": case_id, "tenant": meta.tenant,
                 "device_id": meta.device_id, "customer_id": meta.customer_id,
                 "joined_at": at} for case_id, meta in members])
        # the devices of its cases, and those flagged into it
        devices = select(func.count()).select_from(union(
            select(IncidentCaseRow.device_id).where(IncidentCaseRow.incident_id == row.id),
            select(IncidentFlagRow.device_id).where(IncidentFlagRow.incident_id == row.id))
            .subquery()).scalar_subquery()
        cases = select(func.count()).select_from(IncidentCaseRow).where(
            IncidentCaseRow.incident_id == row.id).scalar_subquery()
        session.execute(update(IncidentRow).where(IncidentRow.id == row.id).values(
            cases=cases, devices=devices,
            last_joined_at=func.max(IncidentRow.last_joined_at, at)
            if session.get_bind().dialect.name == "sqlite"
            else func.greatest(IncidentRow.last_joined_at, at))
            .execution_options(synchronize_session=False))

    def _team_notice(self, session: Session, row: IncidentRow, case_id: int | None,
                     case_ids: Sequence[int], now: float, flagged: Sequence[str] = ()) -> None:
        cases = session.execute(select(CaseRow.id, CaseRow.device_id, CaseRow.severity).where(
            CaseRow.id.in_(case_ids)).order_by(CaseRow.id)).all()
        severity = max((c.severity for c in cases), key=lambda s: _SEVERITY.get(s, 1),
                       default="warning")
        with_case = {c.device_id for c in cases}
        subject, body = incident_team_message(
            incident_ref(row.id), severity, row.cohort, row.rule,
            [(case_ref(c.id), c.device_id) for c in cases]
            + [("flagged unlike its peers", d) for d in flagged if d not in with_case],
            row.customer_policy)
        session.execute(insert(NoticeRow).values(
            case_id=case_id, tenant=row.tenant, device_id="", audience="team", kind="incident",
            customer_id="", channel=self._team_channel, recipient=self._team_recipient,
            idempotency_key=f"incident-{row.id}-team-opened", subject=subject, body=body,
            status="pending", attempts=0, next_attempt_at=0.0, last_error=None,
            created_at=now))

    #: set by the case book: where team notices go
    _team_channel = "terminal"
    _team_recipient = ""

    def route_team(self, channel: str, recipient: str) -> None:
        """Where the incident's team notice goes (the case book's team channel)."""
        self._team_channel = channel
        self._team_recipient = recipient

    @staticmethod
    def _hold_pending(session: Session, row: IncidentRow, case_ids: Sequence[int]) -> None:
        """Customer notices of the cases linked at opening that no channel took yet wait."""
        if case_ids:
            held = session.scalars(update(NoticeRow).where(
                NoticeRow.case_id.in_(case_ids), NoticeRow.audience == "customer",
                NoticeRow.status == "pending", NoticeRow.attempts == 0).values(
                status="suppressed",
                last_error=f"held: incident {incident_ref(row.id)} awaits a decision")
                .returning(NoticeRow.case_id)
                .execution_options(synchronize_session=False)).all()
            if held:
                session.execute(update(CaseRow).where(CaseRow.id.in_(held))
                                .values(customer_notified=False)
                                .execution_options(synchronize_session=False))

    # -- people's actions ----------------------------------------------------------------------

    def decide(self, engine: Engine, incident_id: int, decision: Literal["message", "quiet"],
               by: str, now: float) -> int:
        """A person's decision on an incident's held customer notices: ``message`` sends the
        incident's message to every held customer (once per device), ``quiet`` sends nothing.
        Returns how many messages were queued."""
        queued = 0
        with Session(engine) as session:
            row = session.get(IncidentRow, incident_id)
            if row is None:
                raise CaseStateError(f"no incident {incident_ref(incident_id)}")
            if row.decision is not None:
                raise CaseStateError(f"incident {incident_ref(incident_id)} was decided "
                                     f"({row.decision}) by {row.decided_by}")
            done = session.execute(update(IncidentRow).where(
                IncidentRow.id == incident_id, IncidentRow.decision.is_(None)).values(
                decision=decision, decided_by=by, decided_at=now))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise CaseStateError(f"incident {incident_ref(incident_id)} was just decided")
            held = list(session.scalars(select(NoticeRow).where(
                NoticeRow.audience == "customer", NoticeRow.status == "suppressed",
                NoticeRow.last_error.like(f"held: incident {incident_ref(incident_id)} %"),
            ).order_by(NoticeRow.id)))
            for notice in held:
                if decision == "quiet":
                    notice.last_error = (f"not sent: incident {incident_ref(incident_id)} was "
                                         f"decided quiet by {by}")
                    continue
                case = session.get(CaseRow, notice.case_id)
                assert case is not None
                meta = self.registry.lookup(case.tenant, case.device_id, case.product)
                base = {c.name: getattr(notice, c.name) for c in NoticeRow.__table__.columns
                        if c.name not in ("id", "sent_at")}
                message = self._message(session, incident_id, {**base, "created_at": now},
                                        case.tenant, case.device_id, meta.language,
                                        meta.timezone, meta.customer_name, case.product)
                if message is not None:
                    session.execute(insert(NoticeRow).values(**message))
                    case.customer_notified = True
                    session.flush()
                    queued += 1
            session.commit()
        return queued

    def close(self, engine: Engine, incident_id: int, by: str, now: float) -> None:
        """Close an open incident (a later case of its cohort and rule may open a new one)."""
        with Session(engine) as session:
            done = session.execute(update(IncidentRow).where(
                IncidentRow.id == incident_id, IncidentRow.status == "open").values(
                status="closed", open_key=None, closed_at=now, closed_by=by))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                if session.get(IncidentRow, incident_id) is None:
                    raise CaseStateError(f"no incident {incident_ref(incident_id)}")
                raise CaseStateError(f"incident {incident_ref(incident_id)} is closed already")
            session.commit()

    def close_quiet(self, engine: Engine, now: float) -> list[int]:
        """Close the open incidents whose cases are all resolved and that nothing joined for a
        window (the tick's work); returns their ids."""
        closed: list[int] = []
        with Session(engine) as session:
            still_open = select(IncidentCaseRow.incident_id).join(
                CaseRow, CaseRow.id == IncidentCaseRow.case_id).where(
                CaseRow.status != "resolved")
            ids = session.scalars(select(IncidentRow.id).where(
                IncidentRow.status == "open",
                IncidentRow.last_joined_at < now - self.policy.window_s,
                IncidentRow.id.not_in(still_open))).all()
            for incident_id in ids:
                done = session.execute(update(IncidentRow).where(
                    IncidentRow.id == incident_id, IncidentRow.status == "open").values(
                    status="closed", open_key=None, closed_at=now,
                    closed_by="forewarn (every case resolved)"))
                if done.rowcount == 1:  # type: ignore[attr-defined]
                    closed.append(incident_id)
            session.commit()
        return closed

    # -- reading -------------------------------------------------------------------------------

    @staticmethod
    def list_incidents(engine: Engine, status: str | None = None,
             tenant: str | None = None) -> list[IncidentRow]:
        """Incidents, newest first (``status``: open or closed only)."""
        query = select(IncidentRow).order_by(IncidentRow.id.desc())
        if status is not None:
            query = query.where(IncidentRow.status == status)
        if tenant is not None:
            query = query.where(IncidentRow.tenant == tenant)
        with Session(engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    @staticmethod
    def detail(engine: Engine, incident_id: int,
               tenant: str | None = None) -> IncidentDetail | None:
        """One incident, its cases and its flag-only devices' flags (None: no such incident,
        or another tenant's)."""
        with Session(engine, expire_on_commit=False) as session:
            row = session.get(IncidentRow, incident_id)
            if row is None or (tenant is not None and row.tenant != tenant):
                return None
            cases = list(session.scalars(select(CaseRow).join(
                IncidentCaseRow, IncidentCaseRow.case_id == CaseRow.id).where(
                IncidentCaseRow.incident_id == incident_id).order_by(CaseRow.id)))
            flags = list(session.scalars(select(IncidentFlagRow).where(
                IncidentFlagRow.incident_id == incident_id,
                IncidentFlagRow.device_id.not_in({c.device_id for c in cases}))
                .order_by(IncidentFlagRow.at, IncidentFlagRow.id)))
            return IncidentDetail(row, cases, flags)

    @staticmethod
    def notices(engine: Engine, incident_id: int) -> list[NoticeRow]:
        """Every notice about an incident: its team notice, its messages and its cases'
        own notices."""
        with Session(engine, expire_on_commit=False) as session:
            case_ids = select(IncidentCaseRow.case_id).where(
                IncidentCaseRow.incident_id == incident_id)
            return list(session.scalars(select(NoticeRow).where(
                (NoticeRow.case_id.in_(case_ids))
                | NoticeRow.idempotency_key.like(f"incident-{incident_id}-%"))
                .order_by(NoticeRow.id)))


_SEVERITY = {"info": 0, "warning": 1, "critical": 2}
#: the rule name of an incident the peer detector's flags opened
_FLAGGED = "unlike_peers"


#: cohorts that share conditions (the weather of a region), not parts or code: what their
#: devices share are symptoms, the incident's rule and rules ``min_devices`` of its devices
#: opened cases of; a member's case of another rule is a fault of its own (a clogged filter
#: during the heat wave) and stays out of the incident
_CONDITIONS: tuple[Dimension, ...] = ("region",)


#: cohorts that are one change (a release, a batch of parts): their open incident is the
#: cause of a second rule's cluster in them too
_ONE_CAUSE: tuple[Dimension, ...] = ("firmware", "batch")


#: cohorts whose devices fail for many reasons (a model): a narrower cohort (a release, a
#: batch, a region) that explains the same devices is preferred, and absorbs their incident
_BROAD: tuple[Dimension, ...] = ("model",)


def _open_key(tenant: str, cohort: Cohort, rule: str) -> str:
    return f"{tenant}|{cohort.key}|{rule}"


def _policy(value: str) -> CustomerPolicy:
    if value not in ("message", "hold"):
        raise RuleError(f"an incident's customer policy is {value!r}, not message or hold")
    return "hold" if value == "hold" else "message"
