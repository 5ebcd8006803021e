"""Alarm states in the case database: loaded once at start, written when they change.

>>> from rules.db import connect
>>> from rules.evaluate import AlarmState
>>> engine = connect("sqlite://")
>>> store = StateStore(engine)
>>> store.save({("hot", "acme", "hp-1"): AlarmState("firing", 60.0, fires=[60.0])})
>>> store.load()[("hot", "acme", "hp-1")].status
'firing'
>>> engine.dispose()
"""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rules.conditions import memory_from_json
from rules.db import AlarmStateRow, ConditionMemoryRow
from rules.evaluate import AlarmState, AlarmStatus, Key

__all__ = ["StateStore"]

_COLUMNS = ("product", "status", "since", "pending_since", "clear_since", "fired_at",
            "last_seen", "fires_json", "flapping", "before_no_data", "held")


class StateStore:
    """Reads and upserts :class:`~rules.evaluate.AlarmState` rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(AlarmStateRow)
        # built once: the pipeline saves after every batch that changed a state
        self._upsert = stmt.on_conflict_do_update(
            index_elements=["rule", "tenant", "device_id"],
            set_={c: getattr(stmt.excluded, c) for c in _COLUMNS},
        )
        memory = insert(ConditionMemoryRow)
        self._upsert_memory = memory.on_conflict_do_update(
            index_elements=["rule", "tenant", "device_id"],
            set_={"memory_json": memory.excluded.memory_json},
        )

    def load(self) -> dict[Key, AlarmState]:
        """Every stored state."""
        with Session(self.engine) as session:
            rows = session.scalars(select(AlarmStateRow)).all()
            memory = {(m.rule, m.tenant, m.device_id): json.loads(m.memory_json)
                      for m in session.scalars(select(ConditionMemoryRow)).all()}
            return {
                (r.rule, r.tenant, r.device_id): AlarmState(
                    status=cast(AlarmStatus, r.status), since=r.since,
                    pending_since=r.pending_since, clear_since=r.clear_since,
                    fired_at=r.fired_at, last_seen=r.last_seen,
                    fires=[float(x) for x in json.loads(r.fires_json)], flapping=r.flapping,
                    before_no_data=cast(AlarmStatus | None, r.before_no_data),
                    product=r.product, held=r.held,
                    memory={node: memory_from_json(kept) for node, kept in memory.get(
                        (r.rule, r.tenant, r.device_id), {}).items()},
                )
                for r in rows
            }

    def save(self, states: dict[Key, AlarmState]) -> None:
        """Insert or update ``states`` in one transaction."""
        if not states:
            return
        rows: list[dict[str, Any]] = [
            {"rule": k[0], "tenant": k[1], "device_id": k[2], "product": s.product,
             "status": s.status, "since": s.since, "pending_since": s.pending_since,
             "clear_since": s.clear_since, "fired_at": s.fired_at, "last_seen": s.last_seen,
             "fires_json": json.dumps(s.fires), "flapping": s.flapping,
             "before_no_data": s.before_no_data, "held": s.held}
            for k, s in states.items()
        ]
        remembered: list[dict[str, Any]] = [
            {"rule": k[0], "tenant": k[1], "device_id": k[2],
             "memory_json": json.dumps({node: m.to_json() for node, m in s.memory.items()})}
            for k, s in states.items() if s.memory
        ]
        with Session(self.engine) as session:
            session.execute(self._upsert, rows)
            if remembered:
                session.execute(self._upsert_memory, remembered)
            session.commit()
