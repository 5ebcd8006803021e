"""A goodbye survives an involuntary lease move (issue 23): the worker owning a partition is
frozen (SIGSTOP) until its lease lapses, the other worker takes the partition over, and the
frozen one is let go again (SIGCONT) still believing, for a moment, that it owns it.

Three devices of that partition fall quiet: ``hp-early`` said goodbye before the freeze (the
first owner handled it: the next owner finds it in the devices table), ``hp-late`` said goodbye
during the freeze (the next owner finds it replaying the stream), ``hp-quiet`` just stopped.
Only ``hp-quiet`` may get a no-data case, from either owner, before or after the move.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import nats
import pytest

from core.nats import NatsConfig, ensure_stream
from edge.schema import StatusMessage
from forewarn.workers import device_partition, worker_command
from tests.integration.core_process import db_rows
from tests.integration.nats.fleet import FIELDS
from tests.integration.nats.test_nats_machine_failover import _owners, _pid
from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
_NO_DATA_S = 2.0
_TICK_S = 0.25
_LEASE_TTL_S = 3.0
_RULES = f"rules:\n  - name: silent\n    no_data: {_NO_DATA_S:g}s\n"


def _batch(device_id: str, t: float) -> bytes:
    return json.dumps({
        "v": 1, "device_id": device_id, "boot_id": "b1", "seq": 1, "product": "heat_pump",
        "fields": list(FIELDS), "t": [t - 0.5, t],
        "values": [[20.0 + i for i in range(len(FIELDS))]] * 2}).encode()


def _goodbye(device_id: str) -> bytes:
    return StatusMessage(device_id=device_id, boot_id="b1", state="offline",
                         reason="shutdown", t=time.time()).model_dump_json().encode()


async def _until(check: Callable[[], object], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def test_goodbye_survives_an_involuntary_lease_move(nats_server: NatsServer, tmp_path: Path,
                                                    unique_tenant: str) -> None:
    tenant = unique_tenant
    rules = tmp_path / "rules.yaml"
    rules.write_text(_RULES)
    cases_db = tmp_path / "cases.sqlite"
    cfg = NatsConfig(url=nats_server.url, stream=f"GB_{tenant}", partitions=2,
                     ingress_subject=f"forewarn.v1.{tenant}.*.telemetry",
                     partition_prefix=f"gb.{tenant}", snapshot_bucket=f"gb-snap-{tenant}",
                     lease_bucket=f"gb-lease-{tenant}", max_bytes=64 * 1024**2,
                     lease_ttl_s=_LEASE_TTL_S)
    config = tmp_path / "forewarn.toml"
    config.write_text(
        f'tenant = "{tenant}"\n'
        f'[store]\npath = "{tmp_path / "telemetry.sqlite"}"\n'
        f'[cases]\nurl = "sqlite:///{cases_db}"\nrules_file = "{rules}"\n'
        f'notices_jsonl = "{tmp_path / "notices.jsonl"}"\n'
        f"[core]\ntick_interval_s = {_TICK_S}\nworkers = 2\noutbox = false\n"
        f'[nats]\nurl = "{cfg.url}"\nstream = "{cfg.stream}"\n'
        f'ingress_subject = "{cfg.ingress_subject}"\npartition_prefix = "{cfg.partition_prefix}"\n'
        f"partitions = {cfg.partitions}\nsnapshot_bucket = \"{cfg.snapshot_bucket}\"\n"
        f'lease_bucket = "{cfg.lease_bucket}"\nlease_ttl_s = {_LEASE_TTL_S}\n'
        "fetch_batch = 8\nsnapshot_interval_s = 0.5\nmax_bytes = 67108864\n")
    # three devices of one partition
    partition = device_partition(cfg, tenant, "hp-early")
    assert partition is not None
    same = [d for d in (f"hp-{i}" for i in range(200))
            if device_partition(cfg, tenant, d) == partition]
    early, late, quiet = "hp-early", same[0], same[1]

    def cases() -> set[tuple[str, str]]:
        return {(str(d), str(r)) for d, r in db_rows(cases_db,
                                                     "SELECT device_id, rules FROM cases")}

    def said_goodbye(device: str) -> bool:
        return db_rows(cases_db, "SELECT state, reason FROM devices WHERE device_id = ?",
                       device) == [("offline", "shutdown")]

    def in_rules(device: str) -> bool:
        return bool(db_rows(cases_db, "SELECT status FROM alarm_states WHERE device_id = ?",
                            device))

    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    log = tmp_path / "core.log"

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}
        nc = await nats.connect(cfg.url)
        js = nc.jetstream()
        await ensure_stream(js, cfg)
        with log.open("ab") as out:
            core = subprocess.Popen(
                worker_command(["-v", "--config", str(config), "core", "--engine", "nats"]),
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=out,
                start_new_session=True)
        frozen: int | None = None
        try:
            owners: dict[int, str] = {}

            async def spread() -> bool:
                owners.clear()
                owners.update(await _owners(cfg))
                return len(set(owners.values())) == 2

            deadline = time.monotonic() + 90
            while not await spread():
                assert core.poll() is None and time.monotonic() < deadline, owners
                await asyncio.sleep(0.2)
            first = owners[partition]
            now = time.time()
            for device in (early, late, quiet):
                await js.publish(f"forewarn.v1.{tenant}.{device}.telemetry",
                                 _batch(device, now))
            await js.publish(f"forewarn.v1.{tenant}.{early}.status", _goodbye(early))
            await _until(lambda: all(in_rules(d) for d in (early, late, quiet))
                         and said_goodbye(early), "the first owner's batches and goodbye", 30)
            frozen = _pid(first)
            os.kill(frozen, signal.SIGSTOP)
            frozen_at = time.monotonic()
            await js.publish(f"forewarn.v1.{tenant}.{late}.status", _goodbye(late))

            async def moved() -> bool:
                owner = (await _owners(cfg)).get(partition)
                return owner is not None and owner != first

            while not await moved():
                assert time.monotonic() - frozen_at < 6 * _LEASE_TTL_S, "lease never moved"
                await asyncio.sleep(0.1)
            seen["moved_after_s"] = time.monotonic() - frozen_at
            await _until(lambda: said_goodbye(late), "the late goodbye, from the next owner",
                         30)
            os.kill(frozen, signal.SIGCONT)
            frozen = None
            await _until(lambda: (quiet, "silent") in cases(), "the quiet device's case", 30)
            # the woken first owner's ticks and the next owner's: a whole no-data window more
            settle = time.monotonic() + _NO_DATA_S + 4 * _TICK_S + 1.0
            while time.monotonic() < settle:
                assert cases() == {(quiet, "silent")}, cases()
                await asyncio.sleep(0.1)
            seen["cases"] = cases()
        finally:
            if frozen is not None:
                os.kill(frozen, signal.SIGCONT)
            await nc.close()
            if core.poll() is None:
                os.killpg(core.pid, signal.SIGTERM)
            try:
                core.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(core.pid, signal.SIGKILL)
                core.wait()
        return seen

    try:
        seen = asyncio.run(scenario())
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- core's log:\n{log.read_text()[-5000:]}") from exc
    assert seen["cases"] == {(quiet, "silent")}
