"""Servers for the rules integration tests: PostgreSQL, a webhook receiver, an SMTP server.

PostgreSQL is started once per session from the Debian package in a temp dir on a free port;
each test gets a database of its own on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from tests.servers.postgres import Postgres, postgres_bindir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """One PostgreSQL server for the session."""
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL not installed (Debian package postgresql; make test installs it)")
    with Postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Postgres) -> Iterator[str]:
    """URL of a fresh database (dropped after the test)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
