"""Dead letters: persisted in batches, counted by reason, listed by ``forewarn deadletters``;
a message that crashes decoding or scoring is one of them, and ingest goes on."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import create_engine

from core.dead_letter import HEAD_BYTES, DeadLetters, DeadLetterStore
from core.decode import decode_fast, decode_telemetry
from core.detect import RobustZ
from core.errors import DecodeError
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore
from forewarn.cli import main
from forewarn.workers import serve_until_stopped

TOPIC = "forewarn/v1/acme/hp-1/telemetry"


def _good(seq: int, t: float = 1000.0) -> bytes:
    return json.dumps({"v": 1, "device_id": "hp-1", "boot_id": "b", "seq": seq,
                       "fields": ["a"], "t": [t], "values": [[1.0]]}).encode()


@pytest.mark.parametrize("payload", [
    b'{"device_id":"hp-1","boot_id":"b","seq":1,"fields":["a"],"t":[1],"values":'
    + b"[" * 1000 + b"]" * 1000 + b"}",
    b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b'{"t":' + b"[" * 100_000 + b"}",
], ids=["values-1000-deep", "objects-1000-deep", "unclosed-100k"])
def test_deep_nesting_is_a_decode_error_not_a_recursion_error(payload: bytes) -> None:
    assert decode_fast("acme", payload) is None
    with pytest.raises(DecodeError) as caught:
        decode_telemetry(TOPIC, payload)
    assert caught.value.reason == "too_deep"


class _CrashOnNegative(RobustZ):
    """A detector with a bug: any negative reading raises."""

    def update(self, slots: NDArray[np.int64], x: NDArray[np.float64],  # type: ignore[override]
               t: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
        if (np.asarray(x) < 0).any():
            raise ZeroDivisionError("detector bug")
        return super().update(slots, x, t)


def test_a_message_that_crashes_scoring_is_dead_lettered_and_the_next_is_ingested() -> None:
    store = EmbeddedStore(":memory:")
    pipe = CorePipeline(_CrashOnNegative(), store)
    bad = _good(0).replace(b"[[1.0]]", b"[[-1.0]]")
    assert pipe.process_payload(TOPIC, bad) is None
    assert pipe.process_payload(TOPIC, b'{"t":' + b"[" * 3000 + b"]" * 3000 + b"}") is None
    assert pipe.process_payload(TOPIC, _good(1)) is not None
    assert dict(pipe.dead_letters.counts) == {"crash": 1, "too_deep": 1}
    assert "ZeroDivisionError" in pipe.dead_letters.recent[0].detail
    assert store.count_samples() == 1


def test_store_persists_counts_and_prunes_to_the_newest() -> None:
    engine = create_engine("sqlite://")
    store = DeadLetterStore(engine, keep=100)
    tick = itertools.count(1000)
    letters = DeadLetters(store=store, clock=lambda: float(next(tick)), flush_batch=50)
    for i in range(130):
        letters.record("invalid" if i % 2 else "too_deep", TOPIC, f"#{i}", b"x" * 1000)
    letters.flush()
    assert store.counts() == {"invalid": 65, "too_deep": 65}  # totals survive pruning
    kept = store.letters(limit=1000)
    assert len(kept) == 100 and kept[0].detail == "#129" and kept[-1].detail == "#30"
    assert all(len(d.payload_head) == HEAD_BYTES for d in kept)
    assert [d.detail for d in store.letters("invalid", limit=2)] == ["#129", "#127"]
    # a second store on the same database (another worker) adds to the same totals
    DeadLetters(store=DeadLetterStore(engine), clock=lambda: 5000.0).record(
        "invalid", TOPIC, "other worker", b"")
    assert store.counts()["invalid"] == 66


def test_writes_are_batched_within_the_flush_interval() -> None:
    engine = create_engine("sqlite://")
    store = DeadLetterStore(engine)
    now = [100.0]
    letters = DeadLetters(store=store, clock=lambda: now[0], flush_every_s=1.0, flush_batch=10)
    letters.record("invalid", TOPIC, "first", b"")  # nothing written for a while: at once
    for _ in range(5):
        letters.record("invalid", TOPIC, "burst", b"")
    assert store.counts() == {"invalid": 1} and letters.pending == 5
    now[0] += 1.5
    letters.record("invalid", TOPIC, "later", b"")  # the interval passed: all waiting go
    assert store.counts() == {"invalid": 7} and letters.pending == 0


def test_a_failing_store_keeps_letters_for_the_next_flush(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cases.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    store = DeadLetterStore(engine)
    letters = DeadLetters(store=store, clock=lambda: 1.0, max_pending=3)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE dead_letters")  # the database lost the table
    with caplog.at_level(logging.WARNING):
        for i in range(5):
            letters.record("invalid", TOPIC, f"#{i}", b"")
            letters.flush()
    assert "not saved yet" in caplog.text
    assert letters.pending == 3 and letters.unsaved == 2 and letters.counts["invalid"] == 5
    DeadLetterStore(engine)  # the table is back
    letters.flush()
    assert letters.pending == 0
    assert [d.detail for d in store.letters()] == ["#4", "#3", "#2"]


def test_deadletters_list_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    pipe = CorePipeline(RobustZ(), EmbeddedStore(":memory:"), dead_letters=DeadLetters(
        store=DeadLetterStore(create_engine(url)), clock=lambda: 1_765_000_000.0))
    pipe.process_payload(TOPIC, b'{"t":' + b"[" * 3000 + b"]" * 3000 + b"}")
    pipe.process_payload(TOPIC, b"\xff\xfe not json")
    pipe.process_payload(TOPIC, _good(0))
    pipe.dead_letters.flush()

    assert main(["deadletters", "--db", url, "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "dead letters: bad_encoding 1, too_deep 1"
    assert "too_deep" in out and "2025-12-06 05:46:40" in out and TOPIC in out

    assert main(["deadletters", "--db", url, "list", "--reason", "bad_encoding",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"] == {"bad_encoding": 1, "too_deep": 1}
    [letter] = doc["dead_letters"]
    assert letter["reason"] == "bad_encoding" and letter["topic"] == TOPIC
    assert letter["payload_head"].startswith("\\xff\\xfe not json")

    assert main(["deadletters", "--db", url, "list", "--limit", "-1"]) == 2
    assert "--limit -1" in capsys.readouterr().err


def test_a_service_task_that_dies_ends_the_service_with_code_1(
        caplog: pytest.LogCaptureFixture) -> None:
    async def ingest() -> None:
        await asyncio.sleep(0.01)
        raise RecursionError("maximum recursion depth exceeded")

    async def forever() -> None:
        await asyncio.Event().wait()

    async def scenario(crash: bool) -> int:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(ingest() if crash else forever(), name="ingest"),
                 asyncio.create_task(forever(), name="outbox")]
        if not crash:
            asyncio.get_running_loop().call_later(0.01, stop.set)
        code = await serve_until_stopped(stop, tasks)
        assert all(task.done() for task in tasks)
        return code

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(scenario(crash=True)) == 1
    assert "core's ingest task stopped: RecursionError" in caplog.text
    caplog.clear()
    assert asyncio.run(scenario(crash=False)) == 0
    assert not caplog.records


def test_a_task_that_ends_on_stop_is_a_clean_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    """The outbox ends when ``stop`` is set; seen done together with ``stop``, it is no dead
    service (SIGTERM during an outbox round once gave exit code 1)."""
    async def outbox(stop: asyncio.Event) -> None:
        await stop.wait()

    async def scenario() -> int:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(outbox(stop), name="outbox")]
        await asyncio.sleep(0)  # the outbox waits on ``stop`` before serve_until_stopped does
        stop.set()
        await asyncio.sleep(0)  # the outbox has ended; ``stopping`` has not run yet
        assert tasks[0].done()
        return await serve_until_stopped(stop, tasks)

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(scenario()) == 0
    assert not caplog.records


def test_the_case_database_migrations_leave_the_dead_letter_tables_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """core keeps its tables in the case database: autogenerate must not drop them."""
    from alembic import command
    from alembic.config import Config

    from rules.db import connect

    url = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    engine = connect(url)
    DeadLetterStore(engine)
    engine.dispose()
    monkeypatch.setenv("FOREWARN_CASES__URL", url)
    ini = Path(__file__).resolve().parents[2] / "rules" / "migrations" / "alembic.ini"
    command.check(Config(str(ini)))  # raises when it would write a migration
