"""``forewarn core`` configured by the file, the environment and flags: the supervisor's
workers run with exactly the configuration it resolved, also after a restart and after the
file was edited meanwhile.

The evidence is what the workers create on the real nats-server: the stream (its subjects,
partitioning and limits) and one durable consumer per partition (its window and ack wait).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
from nats.js.api import ConsumerInfo
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the supervisor's workers)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


async def _consumers(js: JetStreamContext, stream: str, n: int) -> list[ConsumerInfo] | None:
    infos = []
    for partition in range(n):
        try:
            infos.append(await js.consumer_info(stream, f"fw-part-{partition:02d}"))
        except NotFoundError:
            return None
    return infos


async def _wait_for(check: Callable[[], object], timeout_s: float, what: str,
                    alive: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():  # type: ignore[misc]
        assert alive.poll() is None, f"forewarn core exited with {alive.returncode}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def test_workers_run_with_the_supervisors_resolved_config(
        nats_server: NatsServer, tmp_path: Path, unique_tenant: str) -> None:
    stream = f"CFG_{unique_tenant}"
    config = tmp_path / "forewarn.toml"
    file_text = (
        f'[store]\npath = "{tmp_path / "telemetry.sqlite"}"\n'
        f'[cases]\nurl = "sqlite:///{tmp_path / "cases.sqlite"}"\n'
        f'notices_jsonl = "{tmp_path / "notices.jsonl"}"\n'
        '[core]\nengine = "nats"\nworkers = 2\noutbox = false\n'
        f'[nats]\nurl = "{nats_server.url}"\nstream = "{stream}"\n'
        f'ingress_subject = "forewarn.v1.{unique_tenant}.*.telemetry"\n'
        f'partition_prefix = "cfg.{unique_tenant}"\nsnapshot_bucket = "snap-{unique_tenant}"\n'
        "partitions = 8\nfetch_batch = 16\nack_wait_s = 17.0\nmax_bytes = 67108864\n"
        # static slices: the killed worker's own consumers are the ones recreated
        'ownership = "static"\n'
    )
    config.write_text(file_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    env["FOREWARN_NATS__FETCH_BATCH"] = "8"  # over the file's 16
    # flags over both: 4 partitions (the file says 8), a 3 h replay window
    log = (tmp_path / "core.log").open("wb")
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "forewarn.cli", "--config", str(config), "core",
         "--stream-partitions", "4", "--retention-hours", "3"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)

    async def scenario() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        try:
            await _wait_for(lambda: _consumers(js, stream, 4), 90, "4 partition consumers",
                            supervisor)
            info = await js.stream_info(stream)
            assert info.config.subjects == [f"forewarn.v1.{unique_tenant}.*.{kind}" for kind in
                                            ("telemetry", "status", "event", "config.reported")]
            assert info.config.subject_transform is not None
            assert info.config.subject_transform.dest == (
                f"cfg.{unique_tenant}.{{{{partition(4,1)}}}}.{unique_tenant}.{{{{wildcard(1)}}}}.>")
            assert (info.config.max_age, info.config.max_bytes) == (3 * 3600.0, 64 * 1024**2)
            before = await _consumers(js, stream, 4)
            assert before is not None
            for consumer in before:
                assert (consumer.config.max_ack_pending, consumer.config.ack_wait) == (8, 17.0)
            assert sorted(c.config.filter_subject or "" for c in before) == [
                f"cfg.{unique_tenant}.{p}.>" for p in range(4)]

            # the file changes under the running supervisor; a worker dies and is restarted
            config.write_text(file_text.replace("fetch_batch = 16", "fetch_batch = 99")
                              .replace("ack_wait_s = 17.0", "ack_wait_s = 45.0"))
            workers = _children(supervisor.pid)
            assert len(workers) == 2, workers
            os.kill(workers[0], signal.SIGKILL)

            async def recreated() -> bool:
                infos = await _consumers(js, stream, 4)
                return infos is not None and sum(
                    a.created != b.created for a, b in zip(before, infos, strict=True)) == 2

            await _wait_for(recreated, 90, "the restarted worker's consumers", supervisor)
            after = await _consumers(js, stream, 4)
            assert after is not None
            for consumer in after:
                assert (consumer.config.max_ack_pending, consumer.config.ack_wait) == (8, 17.0)
        finally:
            await nc.close()

    try:
        asyncio.run(scenario())
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(60)
        log.close()
    assert code == 0, (tmp_path / "core.log").read_text()[-3000:]
