"""How Alembic reaches the case database: the connection :func:`rules.db.connect` hands over, or
``sqlalchemy.url`` of ``alembic.ini`` when a developer runs ``alembic revision --autogenerate``."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from rules.db import Base


def _ours(obj: object, name: str | None, type_: str, reflected: bool,
          compare_to: object | None) -> bool:
    """Only the case book's tables: core keeps its own in the same database (dead letters,
    ``core/dead_letter.py``), and autogenerate must not write a migration that drops them."""
    return not (type_ == "table" and reflected and compare_to is None)


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite alters a table by copying it, and Alembic's batch mode does that
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=True, include_object=_ours)
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
