"""Several processes open one embedded store file: a held write lock delays an open, never fails it.

A core's workers share the SQLite file; on a starved machine one may hold the write lock (its
own open, switching to WAL and making the tables, or a write) longer than the other's busy
timeout. Found by a CI run: a NATS worker exited with "database is locked" at start.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from core.store.base import StoreError
from core.store.embedded import EmbeddedStore


def _hold_write_lock(path: Path, seconds: float, held: threading.Event) -> None:
    """Another process making the file: its write lock held ``seconds``."""
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    db.execute("CREATE TABLE early (a)")
    held.set()
    time.sleep(seconds)
    db.execute("COMMIT")
    db.close()


def test_an_open_waits_out_a_lock_held_longer_than_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.sqlite"
    # the first worker is making the file (its lock held); the second one opens it
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, 1.0, held))
    holder.start()
    held.wait(5)
    started = time.monotonic()
    store = EmbeddedStore(path, busy_timeout_s=0.1, open_deadline_s=30.0, rng=random.Random(1))
    waited = time.monotonic() - started
    holder.join()
    assert waited >= 0.5  # it did meet the lock (ten busy timeouts' worth), and got through
    assert store.count_samples() == 0
    store.close()


def test_a_lock_held_past_the_deadline_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.sqlite"
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, 1.5, held))
    holder.start()
    held.wait(5)
    with pytest.raises(StoreError, match=r"cannot open embedded store .*locked"):
        EmbeddedStore(path, busy_timeout_s=0.05, open_deadline_s=0.3, rng=random.Random(1))
    holder.join()


def test_a_file_that_is_not_a_database_fails_at_once(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.sqlite"
    path.write_bytes(b"not a database, " * 100)
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot open embedded store"):
        EmbeddedStore(path, open_deadline_s=30.0)
    assert time.monotonic() - started < 5.0
