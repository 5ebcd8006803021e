"""Opening a case is idempotent under concurrent workers: threads on SQLite, processes on
PostgreSQL, all recording the same alarms at once; every problem gets exactly one case and one
set of notices."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rules.cases import CaseBook
from rules.db import CaseRow, NoticeRow, connect
from rules.evaluate import Alarm
from rules.model import Rule

pytestmark = pytest.mark.integration

RULES = (Rule(name="circuit", score_at_least=0.8, group="g"),
         Rule(name="forecast", score_at_least=0.9, group="g"),
         Rule(name="other", score_at_least=0.9))
DEVICES = [f"hp-{i}" for i in range(6)]


def _alarms() -> list[Alarm]:
    return [Alarm(rule, "acme", device, "heat_pump", 0.0, 600.0, "a", 0.9, 1.0, fields=("a",))
            for device in DEVICES for rule in RULES]


def _record_all(url: str, start: threading.Barrier | None = None) -> list[str]:
    engine = connect(url)
    try:
        book = CaseBook(engine, channel="terminal", clock=lambda: 600.0)
        if start is not None:
            start.wait()
        return [book.record_alarm(alarm).kind for alarm in _alarms()]
    finally:
        engine.dispose()


def _worker(url: str, barrier: object, out: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    out.put(_record_all(url))  # type: ignore[attr-defined]


def _check(url: str, outcomes: list[list[str]]) -> None:
    flat = [kind for worker in outcomes for kind in worker]
    # per device: group g (2 rules) → 1 case, "other" → 1 case
    assert flat.count("opened") == 2 * len(DEVICES)
    assert flat.count("joined") == len(DEVICES)
    engine = connect(url)
    try:
        with Session(engine) as session:
            cases = session.scalars(select(CaseRow)).all()
            assert len(cases) == 2 * len(DEVICES)
            assert all(set(c.rules.split(",")) in ({"circuit", "forecast"}, {"other"})
                       for c in cases)
            keys = session.scalars(select(NoticeRow.idempotency_key)).all()
            assert len(keys) == len(set(keys)) == 2 * 2 * len(DEVICES)
            assert session.scalar(select(func.count()).select_from(CaseRow).where(
                CaseRow.open_key.is_not(None))) == 2 * len(DEVICES)
    finally:
        engine.dispose()


def test_threads_on_sqlite_open_each_case_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    connect(url).dispose()  # tables first
    barrier = threading.Barrier(6)
    results: list[list[str]] = []
    lock = threading.Lock()

    def run() -> None:
        kinds = _record_all(url, barrier)
        with lock:
            results.append(kinds)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 6
    _check(url, results)


def test_processes_on_postgres_open_each_case_once(postgres_url: str) -> None:
    connect(postgres_url).dispose()  # tables first
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    out = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(postgres_url, barrier, out)) for _ in range(4)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    out.close()
    out.join_thread()
    _check(postgres_url, results)
