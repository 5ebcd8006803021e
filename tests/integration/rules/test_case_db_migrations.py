"""The case database is upgraded by its Alembic migrations, on SQLite and on PostgreSQL.

A database made by the release before migrations (``create_all`` at e1ed8fc; its schema is
committed as SQL in tests/fixtures/cases_db_e1ed8fc/) opens with its cases kept and ends at the
newest revision; a database made by the migrations matches the models exactly, so a model change
without a revision fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, select, text
from sqlalchemy.orm import Session

from core.dead_letter import _metadata as dead_letter_tables
from forewarn.auth import TokenStore
from forewarn.auth import _Base as token_tables
from rules.db import HEAD_REVISION, Base, CaseRow, NoticeRow, connect, schema_revision

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cases_db_e1ed8fc"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with nothing in it, of each kind forewarn supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cases.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _make_previous_release(url: str) -> None:
    engine = create_engine(url)
    ddl = (FIXTURES / f"{engine.dialect.name}.sql").read_text(encoding="utf-8")
    statements = [s for s in ddl.split(";") if "CREATE" in s]
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
        conn.execute(text(
            "INSERT INTO cases (id, tenant, device_id, product, rule, severity, status, open_key,"
            " group_key, customer_id, rules, reopened, customer_notified, fault_started_at,"
            " opened_at, field, peak_score, summary, evidence_json) VALUES (7, 'acme', 'hp-1',"
            " 'heat_pump', 'leak', 'warning', 'open', 'acme/hp-1/leak', 'acme/hp-1/leak', 'c1',"
            " 'leak', 0, false, 10.0, 60.0, 't', 0.9, 'refrigerant leak', '{}')"))
        conn.execute(text(
            "INSERT INTO notices (id, case_id, tenant, device_id, audience, kind, customer_id,"
            " channel, recipient, idempotency_key, subject, body, status, attempts,"
            " next_attempt_at, created_at) VALUES (1, 7, 'acme', 'hp-1', 'team', 'opened', 'c1',"
            " 'terminal', '', 'k7', 'FW-7', 'body', 'pending', 0, 0.0, 60.0)"))
    engine.dispose()


def test_a_database_of_the_previous_release_is_upgraded_and_keeps_its_cases(
        empty_url: str) -> None:
    _make_previous_release(empty_url)
    engine = connect(empty_url)
    try:
        assert schema_revision(engine) == HEAD_REVISION
        with Session(engine) as session:
            case = session.get(CaseRow, 7)
            assert case is not None and case.summary == "refrigerant leak"
            notice = session.scalars(select(NoticeRow)).one()
            assert notice.case_id == 7 and notice.status == "pending"
    finally:
        engine.dispose()
    # opening it again changes nothing
    again = connect(empty_url)
    assert schema_revision(again) == HEAD_REVISION
    again.dispose()


def _every_table() -> MetaData:
    """The tables of every package that keeps some in the case database."""
    combined = MetaData()
    for metadata in (Base.metadata, dead_letter_tables, token_tables.metadata):
        for table in metadata.tables.values():
            table.to_metadata(combined)
    return combined


def test_the_migrations_make_exactly_the_tables_of_the_models(empty_url: str) -> None:
    engine = connect(empty_url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), _every_table()) == []
    finally:
        engine.dispose()


def test_a_database_that_has_tokens_already_is_upgraded(empty_url: str) -> None:
    # before migrations the console made api_tokens itself: the revision that adds it for
    # everyone else leaves an existing one (and its tokens) alone
    _make_previous_release(empty_url)
    engine = create_engine(empty_url)
    issued = TokenStore(engine).create("acme", "agent", now=0.0)
    engine.dispose()
    engine = connect(empty_url)
    try:
        assert schema_revision(engine) == HEAD_REVISION
        assert TokenStore(engine).verify(issued.token) is not None
    finally:
        engine.dispose()
