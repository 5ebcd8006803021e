"""The REST API's request and response bodies (they are also the OpenAPI schema at ``/docs``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rules.firmware import FirmwareRollout

__all__ = [
    "AssignBody",
    "CaseDetail",
    "CaseEvent",
    "CasePage",
    "CaseSummary",
    "DeviceDetail",
    "DevicePage",
    "DeviceSummary",
    "FeedbackOut",
    "FirmwareVersion",
    "FirmwareView",
    "FleetOverview",
    "NoteBody",
    "NoticeOut",
    "OutboxPage",
    "ResolveBody",
    "RuleValidation",
    "Telemetry",
]

CaseStatus = Literal["open", "acknowledged", "resolved"]
Severity = Literal["info", "warning", "critical"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoteBody(_Body):
    """A note an agent adds to a case."""

    text: str = Field(min_length=1, max_length=4000)


class AssignBody(_Body):
    """Who takes the case ("" unassigns it)."""

    assignee: str = Field(max_length=100)


class ResolveBody(_Body):
    """How the case ended: an outcome, with a fault category (``confirmed``, one of the
    product's ``fault_categories``) or a reason (``false_alarm``)."""

    outcome: Literal["confirmed", "false_alarm", "customer_caused", "duplicate"]
    category: str = Field(default="", max_length=64)
    reason: Literal["", "sensor", "installation", "usage", "expected_behaviour", "unknown"] = ""
    comment: str = Field(default="", max_length=4000)


class FeedbackOut(BaseModel):
    """An alarm level a false alarm raised (``rules.feedback``): for the device, or for its
    whole product (``device_id`` ""), or a weekly quiet window repeated false alarms taught."""

    id: int
    device_id: str
    product: str
    rule: str
    raise_by: float
    case_id: int | None
    reason: str
    created_by: str
    created_at: float
    expires_at: float
    undone_by: str | None
    undone_at: float | None
    #: in force now (neither undone nor expired)
    active: bool
    #: a weekly quiet window (``raise_by`` 0): seconds into the week (Monday 00:00 UTC) and
    #: its length; both None for a raise
    window_start_s: float | None = None
    window_s: float | None = None
    #: a window renewed because its pattern came back while it was quiet: how often, when last
    renewals: int = 0
    renewed_at: float | None = None


class CaseSummary(BaseModel):
    """One row of the case queue."""

    id: int
    ref: str
    tenant: str
    device_id: str
    product: str
    customer_id: str
    #: the customer's name from the registry ("" when the registry does not know the device)
    customer_name: str = ""
    rule: str
    rules: list[str]
    severity: str
    status: str
    assignee: str
    summary: str
    field: str
    peak_score: float
    fault_started_at: float
    opened_at: float
    acknowledged_at: float | None
    resolved_at: float | None
    escalated_at: float | None
    reopened: int
    customer_notified: bool
    #: seconds since the case opened (by the console's clock)
    age_s: float
    predicted_failure_at: float | None
    #: seconds left before the predicted failure (negative: overdue); None without a prediction
    lead_time_s: float | None


class CaseEvent(BaseModel):
    """One line of a case's timeline."""

    ts: float
    kind: str
    detail: str


class NoticeOut(BaseModel):
    """A notice exactly as the outbox handed it to its channel."""

    id: int
    #: None: a team notice about the service itself (ingest back-pressure)
    case_id: int | None
    audience: str
    kind: str
    channel: str
    recipient: str
    customer_id: str
    device_id: str
    subject: str
    body: str
    status: str
    attempts: int
    last_error: str | None
    created_at: float
    sent_at: float | None
    next_attempt_at: float


class LabelOut(BaseModel):
    """How a person resolved a case (``rules.resolution``), stored as a label over the case's
    evidence window: what ``forewarn backtest`` scores rules against."""

    outcome: str
    #: the fault category (``confirmed``) or the reason (``false_alarm``); "" else
    category: str
    window_start: float
    window_end: float
    labelled_by: str
    labelled_at: float


class CaseDetail(CaseSummary):
    """A case with its evidence, timeline, notices and resolution labels."""

    evidence: dict[str, Any]
    timeline: list[CaseEvent]
    notices: list[NoticeOut]
    #: the outcome it was resolved with (one per resolution; a reopened case may have more)
    labels: list[LabelOut] = []


class CasePage(BaseModel):
    """A page of the case queue."""

    total: int
    limit: int
    offset: int
    items: list[CaseSummary]


class DeviceSummary(BaseModel):
    """A device as the fleet page lists it."""

    device_id: str
    product: str
    customer_id: str
    #: the customer's name from the registry ("" when the registry does not know the device)
    customer_name: str = ""
    #: ok, warning or critical (worst unresolved case)
    status: str
    last_seen: float | None
    open_cases: int
    #: how much of the detector's warm-up the device has sent, in percent (below 100 it is
    #: still learning its baseline and cannot have a case yet; None: the store cannot say)
    warmup_pct: float | None = None
    #: the device's agent as its status messages say: "online", "offline" (None: never heard)
    connection: str | None = None
    #: why it is offline: "shutdown" (said goodbye on purpose) or "connection_lost" (last will)
    connection_reason: str | None = None
    #: since when (epoch seconds)
    connection_since: float | None = None


class DeviceDetail(DeviceSummary):
    """A device with its unresolved cases."""

    cases: list[CaseSummary]
    #: every case of the device, resolved ones too, newest first
    history: list[CaseSummary] = []
    #: the desired config published for the device (``forewarn devices config set``) and
    #: what the device reported doing with it
    desired_config: dict[str, Any] | None = None
    reported_config: dict[str, Any] | None = None


class DevicePage(BaseModel):
    """A page of devices."""

    total: int
    limit: int
    offset: int
    items: list[DeviceSummary]


class Telemetry(BaseModel):
    """A device's history: one row per (bucketed) timestamp, one column per field.

    ``values[i][j]`` and ``scores[i][j]`` are field ``fields[j]`` at ``t[i]``; null where nothing
    was stored. ``anomalies`` are the (t, field, score) where the score reached the threshold.
    """

    device_id: str
    start: float
    stop: float
    every_s: float
    fields: list[str]
    t: list[float]
    values: list[list[float | None]]
    scores: list[list[float | None]]
    threshold: float
    anomalies: list[dict[str, Any]]
    events: list[dict[str, Any]]


class FleetOverview(BaseModel):
    """Counts by product and status."""

    devices: int
    by_product: dict[str, dict[str, int]]
    open_cases_by_severity: dict[str, int]
    cases_by_status: dict[str, int]


class FirmwareVersion(BaseModel):
    """One firmware version of one product: devices on it, case rates before and after the
    moves to it (cases per 1000 device-days; None where no days count)."""

    product: str
    firmware: str
    devices: int
    moved: int
    first_seen: float
    cases_before: int
    device_days_before: float
    cases_after: int
    device_days_after: float
    cases_on: int
    device_days_on: float
    rate_before: float | None
    rate_after: float | None
    rate_on: float | None

    @classmethod
    def of(cls, rollout: FirmwareRollout) -> FirmwareVersion:
        """The API's shape of :class:`rules.firmware.FirmwareRollout`."""
        return cls(**asdict(rollout), rate_before=rollout.rate_before,
                   rate_after=rollout.rate_after, rate_on=rollout.rate_on)


class FirmwareView(BaseModel):
    """Every firmware version the tenant's devices reported (``GET /api/v1/firmware``)."""

    window_s: float
    versions: list[FirmwareVersion]


class RuleValidation(BaseModel):
    """The verdict on an uploaded rules file (nothing is applied)."""

    valid: bool
    rules: list[str]
    errors: list[str]


class OutboxPage(BaseModel):
    """Notices of one status."""

    counts: dict[str, int]
    items: list[NoticeOut]
