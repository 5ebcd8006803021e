"""The silencing stage: alarms inside a silence or maintenance window open no case.

Windows come from the rules file (``silences:``) and from the case database, where the team
adds them at run time (``forewarn rules silence``; :class:`SilenceStore`). The pipeline reads
the stored ones when it starts and on every ``tick``.

>>> from rules.model import Silence
>>> from rules.registry import DeviceMeta
>>> nightly = Silence(name="nightly_service", products=("heat_pump",), hours="02:00-04:00",
...                   timezone="UTC")
>>> meta = DeviceMeta("acme", "hp-1", "heat_pump", "kim")
>>> silencer = Silencer((nightly,))
>>> silencer.match("any_rule", meta, 3 * 3600.0).name, silencer.match("any_rule", meta, 0.0)
('nightly_service', None)
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from rules.db import SilenceRow
from rules.model import Silence
from rules.registry import DeviceMeta

__all__ = ["SilenceStore", "Silencer"]


class Silencer:
    """Finds the window, if any, that silences an alarm."""

    def __init__(self, windows: Iterable[Silence] = ()) -> None:
        self.windows: list[Silence] = list(windows)
        #: windows read from the database (replaced by :meth:`refresh`)
        self.stored: list[Silence] = []

    def add(self, window: Silence) -> None:
        """Silence something in this process from now on."""
        self.windows.append(window)

    def refresh(self, store: SilenceStore, now: float) -> None:
        """Take the windows stored in the database that still matter at ``now``."""
        self.stored = [w for _, w in store.active(now)]

    def match(self, rule: str, meta: DeviceMeta, ts: float) -> Silence | None:
        """The first window covering ``rule`` on the device at ``ts``."""
        for window in (*self.windows, *self.stored):
            if window.covers(rule, meta, ts):
                return window
        return None


class SilenceStore:
    """Silences in the case database, so every process of a deployment sees them.

    >>> from datetime import UTC, datetime
    >>> from rules.db import connect
    >>> engine = connect("sqlite://")
    >>> store = SilenceStore(engine)
    >>> window = Silence(name="storm", kind="silence", devices=("hp-1",),
    ...                  start=datetime(2026, 1, 1, tzinfo=UTC),
    ...                  end=datetime(2026, 1, 2, tzinfo=UTC))
    >>> sid = store.add(window, by="lee", now=0.0)
    >>> [w.name for _, w in store.active(now=datetime(2026, 1, 1, 12, tzinfo=UTC).timestamp())]
    ['storm']
    >>> store.active(now=datetime(2026, 1, 3, tzinfo=UTC).timestamp())   # over by itself
    []
    >>> store.remove(sid, now=1.0)
    True
    >>> engine.dispose()
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, window: Silence, by: str, now: float) -> int:
        """Store a window; returns its id."""
        with Session(self.engine) as session:
            row = SilenceRow(spec_json=window.model_dump_json(by_alias=True), created_at=now,
                             created_by=by)
            session.add(row)
            session.commit()
            return row.id

    def active(self, now: float) -> list[tuple[int, Silence]]:
        """Stored windows not removed and not over at ``now`` (recurring ones never are)."""
        with Session(self.engine) as session:
            rows = session.scalars(select(SilenceRow).where(SilenceRow.removed_at.is_(None))
                                   .order_by(SilenceRow.id)).all()
            windows = [(r.id, Silence.model_validate_json(r.spec_json)) for r in rows]
        return [(i, w) for i, w in windows if w.end is None or w.end.timestamp() > now]

    def remove(self, silence_id: int, now: float) -> bool:
        """End a window early; False when there was no such (active) window."""
        with Session(self.engine) as session:
            done = session.execute(update(SilenceRow).where(
                SilenceRow.id == silence_id, SilenceRow.removed_at.is_(None))
                .values(removed_at=now))
            session.commit()
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]
