"""Fleet incidents under concurrent workers: threads on SQLite, processes on PostgreSQL, all
recording the cases of one firmware cohort at once. The database's unique ``open_key`` keeps it
to one incident (a worker that lost the race retries and joins), a case is linked once, the team
gets one incident notice, and no customer hears twice."""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.cases import CaseBook
from rules.db import IncidentCaseRow, IncidentRow, NoticeRow, connect
from rules.evaluate import Alarm
from rules.incidents import IncidentBook, IncidentPolicy
from rules.model import Rule
from rules.registry import registry_from_dict

pytestmark = pytest.mark.integration

DEVICES = [f"hp-{i}" for i in range(10)]
#: the release's cohort: six of the ten heat pumps
COHORT = DEVICES[:6]
RULE = Rule(name="compressor", score_at_least=0.8, notify_customer=True)


def _record(url: str, seed: int, start: object | None = None) -> None:
    registry = registry_from_dict({
        "customers": [{"id": f"c-{d}"} for d in DEVICES],
        "devices": {d: {"customer": f"c-{d}", "product": "heat_pump",
                        "firmware": "2.6.0" if d in COHORT else "2.5.3"} for d in DEVICES}})
    engine = connect(url)
    try:
        book = CaseBook(engine, clock=lambda: 600.0, registry=registry,
                        incidents=IncidentBook(IncidentPolicy(min_devices=3), registry))
        alarms = [Alarm(RULE, "acme", d, "heat_pump", 0.0, 60.0 * i, "a", 0.9, 1.0)
                  for i, d in enumerate(COHORT)]
        random.Random(seed).shuffle(alarms)
        if start is not None:
            start.wait()  # type: ignore[attr-defined]
        for alarm in alarms:
            book.record_alarm(alarm)
    finally:
        engine.dispose()


def _check(url: str) -> None:
    engine = connect(url)
    try:
        with Session(engine) as session:
            incidents = session.scalars(select(IncidentRow)).all()
            assert [(i.cohort, i.status) for i in incidents] == [
                ("heat_pump/firmware=2.6.0", "open")]
            links = session.scalars(select(IncidentCaseRow)).all()
            assert len(links) >= 3 and len({ln.case_id for ln in links}) == len(links)
            notices = session.scalars(select(NoticeRow)).all()
            assert sum(n.kind == "incident" and n.audience == "team" for n in notices) == 1
            told = Counter(n.device_id for n in notices
                           if n.audience == "customer" and n.status != "suppressed")
            assert set(told) == set(COHORT) and max(told.values()) == 1, told
            keys = [n.idempotency_key for n in notices]
            assert len(keys) == len(set(keys))
    finally:
        engine.dispose()


def test_threads_on_sqlite_open_one_incident(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    connect(url).dispose()
    barrier = threading.Barrier(4)
    threads = [threading.Thread(target=_record, args=(url, seed, barrier)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    _check(url)


def test_processes_on_postgres_open_one_incident(postgres_url: str) -> None:
    connect(postgres_url).dispose()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    workers = [ctx.Process(target=_record, args=(postgres_url, seed, barrier))
               for seed in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    _check(postgres_url)
