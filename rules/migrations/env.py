"""How Alembic reaches the case database: the connection :func:`rules.db.connect` hands over, or
``sqlalchemy.url`` of ``alembic.ini`` when a developer runs ``alembic revision --autogenerate``."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from rules.db import Base


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite alters a table by copying it, and Alembic's batch mode does that
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


_given: Connection | None = context.config.attributes.get("connection")
if _given is not None:
    _run(_given)
else:
    url = (os.environ.get("FOREWARN_CASES__URL") or context.config.get_main_option("sqlalchemy.url")
           or "sqlite://")
    engine = create_engine(url)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()
