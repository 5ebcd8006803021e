"""SQLAlchemy tables of cases and their outbox; SQLite by default, PostgreSQL when shared.

:func:`connect` upgrades the database to the newest schema with the Alembic migrations in
:mod:`rules.migrations` (a new database is made by them too); a database made before
migrations existed is recognised and upgraded from the first revision.

>>> engine = connect("sqlite://")
>>> from sqlalchemy import inspect
>>> sorted(inspect(engine).get_table_names())  # doctest: +NORMALIZE_WHITESPACE
['alarm_states', 'alembic_version', 'api_tokens', 'case_events', 'case_labels', 'cases',
  'condition_memory', 'customer_answers', 'dead_letter_counts', 'dead_letters', 'devices',
  'feedback', 'firmware_changes', 'incident_cases', 'incident_flags', 'incidents',
  'notice_attempts', 'notices', 'silences', 'tickets']
>>> schema_revision(engine) == HEAD_REVISION
True
>>> engine.dispose()
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Boolean,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rules.errors import RuleError

__all__ = [
    "HEAD_REVISION",
    "AlarmStateRow",
    "AttemptRow",
    "Base",
    "CaseEventRow",
    "CaseRow",
    "ConditionMemoryRow",
    "CustomerAnswerRow",
    "DeviceRow",
    "FeedbackRow",
    "FirmwareChangeRow",
    "IncidentCaseRow",
    "IncidentFlagRow",
    "IncidentRow",
    "LabelRow",
    "NoticeRow",
    "SilenceRow",
    "TicketRow",
    "connect",
    "schema_revision",
]


class Base(DeclarativeBase):
    """Declarative base of the case store."""


class CaseRow(Base):
    """A support case: one per real problem of one device."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    product: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    #: open, acknowledged or resolved
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    #: tenant/device/group while the case is open or acknowledged, NULL after: the database
    #: itself refuses a second open case for the same alarm, also under concurrent workers
    open_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    #: tenant/device/group for good: finds the case to reopen
    group_key: Mapped[str] = mapped_column(String(200), index=True, default="")
    customer_id: Mapped[str] = mapped_column(String(64), index=True, default="")
    #: every rule that joined this case, comma separated
    rules: Mapped[str] = mapped_column(Text, default="")
    predicted_failure_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    escalate_after_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    escalated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    acknowledged_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    resolved_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    customer_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    fault_started_at: Mapped[float] = mapped_column(Float)
    opened_at: Mapped[float] = mapped_column(Float)
    field: Mapped[str] = mapped_column(String(64))
    peak_score: Mapped[float] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    evidence_json: Mapped[str] = mapped_column(Text)


class NoticeRow(Base):
    """The durable outbox: a notice waits here until a channel took it (or it is dead)."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: None: a notice about the service itself (ingest back-pressure), not about a case
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True,
                                                nullable=True)
    tenant: Mapped[str] = mapped_column(String(64), default="")
    device_id: Mapped[str] = mapped_column(String(64), default="")
    audience: Mapped[str] = mapped_column(String(16))
    #: opened, reopened, escalated, resolved
    kind: Mapped[str] = mapped_column(String(16), default="opened")
    customer_id: Mapped[str] = mapped_column(String(64), index=True, default="")
    channel: Mapped[str] = mapped_column(String(32))
    #: e-mail address, webhook or Apprise URL ("" : the channel's default)
    recipient: Mapped[str] = mapped_column(Text, default="")
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    #: pending, sent, dead, or suppressed (never sent, ``last_error`` says why)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class CaseEventRow(Base):
    """One line of a case's timeline."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    ts: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


class AttemptRow(Base):
    """One delivery attempt of one notice: when, and what went wrong if anything."""

    __tablename__ = "notice_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"), index=True)
    ts: Mapped[float] = mapped_column(Float)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class TicketRow(Base):
    """A ticket the customer opened themselves (from the helpdesk): no proactive notice then."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    opened_at: Mapped[float] = mapped_column(Float)
    closed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the helpdesk's own id (``POST /api/v1/helpdesk/events``); None: recorded in-process
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True, unique=True)
    #: the case the ticket is about, once linked (opened before or after the ticket)
    case_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    tenant: Mapped[str] = mapped_column(String(64), default="", server_default="")
    subject: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: open, pending or solved (the helpdesk's word)
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    updated_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class CustomerAnswerRow(Base):
    """One answer a customer gave on the case's status page (``rules.answers``)."""

    __tablename__ = "customer_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    #: noted, visit, fine or call
    kind: Mapped[str] = mapped_column(String(16), index=True)
    #: the reason ("fine"), the preferred time windows ("visit"), a phone number ("call")
    detail: Mapped[str] = mapped_column(Text, default="")
    ts: Mapped[float] = mapped_column(Float)
    #: case + kind + detail: the same answer twice is recorded once
    answer_key: Mapped[str] = mapped_column(String(200), unique=True)


class SilenceRow(Base):
    """A silence set at run time (``forewarn rules silence``), shared by every process."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the :class:`rules.model.Silence` as JSON
    spec_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    #: one-off windows end by themselves; this ends any window early
    removed_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AlarmStateRow(Base):
    """The persisted state of one (rule, tenant, device) alarm."""

    __tablename__ = "alarm_states"

    rule: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16))
    since: Mapped[float] = mapped_column(Float)
    pending_since: Mapped[float | None] = mapped_column(Float, nullable=True)
    clear_since: Mapped[float | None] = mapped_column(Float, nullable=True)
    fired_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)
    fires_json: Mapped[str] = mapped_column(Text, default="[]")
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    before_no_data: Mapped[str | None] = mapped_column(String(16), nullable=True)
    held: Mapped[bool] = mapped_column(Boolean, default=False)


class ConditionMemoryRow(Base):
    """What the stateful conditions (``episodes``) of one (rule, tenant, device) remember.

    A table of its own rather than a column of ``alarm_states``, so a case database made
    before it gains the table instead of being refused."""

    __tablename__ = "condition_memory"

    rule: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: node key → :meth:`rules.conditions.EpisodeState.to_json`
    memory_json: Mapped[str] = mapped_column(Text, default="{}")


class LabelRow(Base):
    """How an agent resolved a case (``rules.resolution``), with the case's evidence window:
    the labels that ``forewarn backtest`` scores rules against."""

    __tablename__ = "case_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    product: Mapped[str] = mapped_column(String(64))
    #: the rules of the case, comma separated (the first is the one that opened it)
    rules: Mapped[str] = mapped_column(Text)
    #: confirmed, false_alarm, customer_caused or duplicate
    outcome: Mapped[str] = mapped_column(String(32))
    #: confirmed: the fault category; false_alarm: the reason; otherwise ""
    category: Mapped[str] = mapped_column(String(64), default="")
    window_start: Mapped[float] = mapped_column(Float)
    window_end: Mapped[float] = mapped_column(Float)
    labelled_by: Mapped[str] = mapped_column(String(100), default="")
    labelled_at: Mapped[float] = mapped_column(Float)
    comment: Mapped[str] = mapped_column(Text, default="")


class FeedbackRow(Base):
    """A change a resolution made to detection (``rules.feedback``): a rule's alarm level
    raised for one device (``device_id``) or a whole product (``device_id`` = ""), or a weekly
    quiet window of one device's rule (``window_s`` set, ``raise_by`` 0)."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    product: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    #: added to the rule's ``score_at_least`` (bounded by ``[rules] feedback_max_raise``)
    raise_by: Mapped[float] = mapped_column(Float)
    case_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    undone_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    undone_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: a learned weekly pattern: the rule is quiet on the device from this many seconds into
    #: the week (Monday 00:00 UTC, device clock) for ``window_s`` seconds
    window_start_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    window_s: Mapped[float | None] = mapped_column(Float, nullable=True)


class FirmwareChangeRow(Base):
    """A device reported a firmware version it had not reported before (``rules.lifecycle``):
    the history the firmware rollout view (``rules.firmware``) reads."""

    __tablename__ = "firmware_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    product: Mapped[str] = mapped_column(String(64), default="")
    firmware: Mapped[str] = mapped_column(String(64))
    #: the version it ran before (None: the first version it reported)
    previous: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: when it first reported this version (epoch seconds)
    since: Mapped[float] = mapped_column(Float)


class IncidentRow(Base):
    """A fleet incident (``rules.incidents``): many devices of one cohort with cases of one
    rule at once, told to the team once and to the customers in one coordinated message."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    product: Mapped[str] = mapped_column(String(64))
    #: the cohort's key (``rules.cohorts.Cohort.key``), e.g. ``heat_pump/firmware=2.6.0``
    cohort: Mapped[str] = mapped_column(String(200))
    rule: Mapped[str] = mapped_column(String(64))
    #: open or closed
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    #: tenant|cohort|rule while open, NULL after: one open incident per cohort and rule, also
    #: when several workers open it at once
    open_key: Mapped[str | None] = mapped_column(String(400), unique=True, nullable=True)
    opened_at: Mapped[float] = mapped_column(Float)
    #: when it became ``cohort``'s incident: ``opened_at``, or later when a release's, a
    #: batch's or a region's cluster absorbed it (it opened as a model's); NULL: as opened_at
    cohort_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: when the newest case joined
    last_joined_at: Mapped[float] = mapped_column(Float)
    closed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    closed_by: Mapped[str] = mapped_column(String(100), default="")
    #: what happens to customers: "message" (one coordinated message per device) or "hold"
    #: (nothing until a person decides)
    customer_policy: Mapped[str] = mapped_column(String(16))
    #: a person's decision on a held incident: "message" or "quiet" (None: not decided)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: how many cases and devices it links (kept with the links, for lists)
    cases: Mapped[int] = mapped_column(Integer, default=0)
    devices: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[str] = mapped_column(Text, default="")


class IncidentCaseRow(Base):
    """A case linked to a fleet incident (a case belongs to one incident at most)."""

    __tablename__ = "incident_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    tenant: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(64), default="")
    joined_at: Mapped[float] = mapped_column(Float)


class IncidentFlagRow(Base):
    """A device flagged unlike its peers (the peer detector's event, ``rules.incidents``):
    enough of one cohort at once open an incident before their own cases do."""

    __tablename__ = "incident_flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    product: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    #: the detector that flagged it (``peer``) and the field
    detector: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[float] = mapped_column(Float, index=True)
    #: the incident the flag belongs to (None: none yet)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True,
                                                    nullable=True)


class DeviceRow(Base):
    """One device's lifecycle: online or offline (and why), last seen, what its agent reports,
    the config it was asked to run and the config it runs (``rules.lifecycle``)."""

    __tablename__ = "devices"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product: Mapped[str] = mapped_column(String(64), default="")
    #: "online", "offline" or "unknown" (only a desired config so far)
    state: Mapped[str] = mapped_column(String(16), default="unknown")
    #: offline: "shutdown" (said goodbye on purpose) or "connection_lost" (its last will)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: when the state last changed (epoch seconds)
    since: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the newest time anything was heard from the device (status, event or sample)
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)
    boot_id: Mapped[str] = mapped_column(String(64), default="")
    firmware: Mapped[str | None] = mapped_column(String(64), nullable=True)
    queue_depth: Mapped[int] = mapped_column(Integer, default=0)
    dropped_samples: Mapped[int] = mapped_column(Integer, default=0)
    last_event: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_event_severity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_event_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the retained desired config as published (JSON), and the device's report (JSON)
    desired_json: Mapped[str] = mapped_column(Text, default="")
    reported_json: Mapped[str] = mapped_column(Text, default="")
    reported_at: Mapped[float | None] = mapped_column(Float, nullable=True)


def connect(url: str) -> Engine:
    """Engine for ``url`` (e.g. ``sqlite:///var/cases.db``) with the tables created."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
            cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives the process being killed (the outbox's promise);
            # only a power cut may lose the last commits. FULL would fsync every notice.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    _upgrade(engine)
    _check_schema(engine)
    return engine


_MIGRATIONS = Path(__file__).with_name("migrations")
#: the revision a database made before migrations (by ``create_all``) is at
_FIRST_REVISION = "0001"
#: the PostgreSQL advisory lock (any constant) held while one process upgrades: workers that
#: start together wait for the first instead of racing to create the same tables
_UPGRADE_LOCK = 0x666F7265


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


#: the newest revision in :mod:`rules.migrations`
HEAD_REVISION: str = ScriptDirectory.from_config(_alembic_config()).get_current_head() or ""


def _upgrade(engine: Engine) -> None:
    """Bring the database to :data:`HEAD_REVISION` (in one transaction where the database can)."""
    config = _alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": _UPGRADE_LOCK})
        elif connection.dialect.name == "sqlite":
            # the write lock first (pysqlite would run the DDL outside any transaction): a
            # second process waits (busy_timeout) and then finds the tables made
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        config.attributes["connection"] = connection
        tables = set(inspect(connection).get_table_names())
        if "alembic_version" not in tables and "cases" in tables:
            command.stamp(config, _FIRST_REVISION)
        if _revision(connection) != HEAD_REVISION:
            command.upgrade(config, "head")


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at (None: not a forewarn case database yet)."""
    with engine.connect() as connection:
        return _revision(connection)


def _check_schema(engine: Engine) -> None:
    """Refuse a database whose tables lack columns after upgrading: one made before the first
    revision by a forewarn too old for the stamp to be true."""
    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        missing = sorted({c.name for c in table.columns} - have)
        if missing:
            url = engine.url.render_as_string(hide_password=True)
            engine.dispose()
            raise RuleError(f"the case database {url} was made by an older forewarn: table "
                            f"{table.name} lacks {', '.join(missing)}; move it away (or "
                            "migrate it) and start again")
