"""Device lifecycle on the NATS engine, as separate processes: MQTT 5 agents → mosquitto →
bridge (mosquitto's own, or core's ingest bridge, ``[nats] bridge = true``) → nats-server's
stream → ``forewarn core --engine nats`` (a supervisor and two leased workers). The worker that
owns a device's partition reads its status, last will and reported config in stream order with
its telemetry (issue 23):

- a device that said goodbye raises no no-data case, while one that just went quiet does;
- a device killed (mosquitto publishes its last will) raises the ``offline`` rule's case;
- ``forewarn devices config set`` reaches the agent, whose report lands in the devices table.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats
import numpy as np
import pytest

from core.nats import NatsConfig, ensure_stream
from forewarn.workers import worker_command
from tests.integration.core_process import db_rows
from tests.integration.edge.agents import device_uplink, kill_agent, until
from tests.servers.mosquitto import Mosquitto, mosquitto_binary
from tests.servers.nats import NatsServer, mosquitto_bridge_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
_NO_DATA_S = 4.0
_OFFLINE_S = 3.0
_RULES = f"""\
rules:
  - name: device_offline
    offline: {_OFFLINE_S:g}s
  - name: silent
    no_data: {_NO_DATA_S:g}s
"""




@pytest.mark.parametrize("ingress", ["mosquitto_bridge", "ingest_bridge"])
def test_lifecycle_on_the_nats_engine(nats_server: NatsServer, tmp_path: Path,
                                      unique_tenant: str, ingress: str) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto; make test installs it)")
    tenant = unique_tenant
    rules = tmp_path / "rules.yaml"
    rules.write_text(_RULES)
    cases_db = tmp_path / "cases.sqlite"
    cfg = NatsConfig(url=nats_server.url, stream=f"LC_{tenant}", partitions=4,
                     ingress_subject=f"forewarn.v1.{tenant}.*.telemetry",
                     partition_prefix=f"lc.{tenant}", snapshot_bucket=f"lc-snap-{tenant}",
                     lease_bucket=f"lc-lease-{tenant}", max_bytes=64 * 1024**2)

    def state(device: str) -> tuple[str | None, str | None]:
        found = db_rows(cases_db, "SELECT state, reason FROM devices WHERE tenant = ? "
                      "AND device_id = ?", tenant, device)
        return (str(found[0][0]), None if found[0][1] is None else str(found[0][1])) \
            if found else (None, None)

    def _reported(device: str) -> str:
        found = db_rows(cases_db, "SELECT reported_json FROM devices WHERE tenant = ? AND "
                      "device_id = ?", tenant, device)
        return str(found[0][0] or "") if found else ""

    def cases() -> set[tuple[str, str]]:
        return {(str(d), str(r))
                for d, r in db_rows(cases_db, "SELECT device_id, rules FROM cases")}

    bridged = ingress == "mosquitto_bridge"
    with Mosquitto(tmp_path / "mosquitto", extra_config=mosquitto_bridge_config(
            nats_server, tenant, name=tenant) if bridged else "") as broker:
        config = tmp_path / "forewarn.toml"
        config.write_text(
            f'tenant = "{tenant}"\n'
            f'[mqtt]\nport = {broker.port}\n'
            f'[store]\npath = "{tmp_path / "telemetry.sqlite"}"\n'
            f'[cases]\nurl = "sqlite:///{cases_db}"\nrules_file = "{rules}"\n'
            f'notices_jsonl = "{tmp_path / "notices.jsonl"}"\n'
            "[core]\ntick_interval_s = 0.5\nworkers = 2\noutbox = false\n"
            f'[nats]\nurl = "{cfg.url}"\nstream = "{cfg.stream}"\n'
            f'ingress_subject = "{cfg.ingress_subject}"\n'
            f'partition_prefix = "{cfg.partition_prefix}"\npartitions = {cfg.partitions}\n'
            f'snapshot_bucket = "{cfg.snapshot_bucket}"\nlease_bucket = "{cfg.lease_bucket}"\n'
            # the default lease term: a lease lapsing on a starved machine moves the goodbye
            # mark with the partition (test_nats_goodbye_takeover.py forces that move)
            "fetch_batch = 8\nsnapshot_interval_s = 1.0\nmax_bytes = 67108864\n"
            + ("" if bridged else f'bridge = true\nbridge_client_id = "bridge-{tenant}"\n'
               f'bridge_subscription = "forewarn/v1/{tenant}/+/telemetry"\n'))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
        log = tmp_path / "core.log"

        async def scenario() -> dict[str, object]:
            seen: dict[str, object] = {}
            nc = await nats.connect(cfg.url)
            try:
                await ensure_stream(nc.jetstream(), cfg)  # devices' publishes need it
            finally:
                await nc.close()
            with log.open("ab") as out:  # supervisor and workers append
                core = await asyncio.create_subprocess_exec(
                    *worker_command(["-v", "--config", str(config), "core", "--engine",
                                     "nats"]),
                    cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=out,
                    start_new_session=True)
            try:
                # hp-a talks, is reconfigured, then says goodbye; hp-c talks and goes quiet
                a = device_uplink(broker.port, tenant, "hp-a", None, tmp_path / "a.sqlite")
                c = device_uplink(broker.port, tenant, "hp-c", None, tmp_path / "c.sqlite")
                async with c:
                    async with a:
                        await until(lambda: state("hp-a") == ("online", None)
                                    and state("hp-c") == ("online", None), "both online", 120)
                        setter = await asyncio.to_thread(subprocess.run, [
                            sys.executable, "-m", "forewarn.cli", "devices", "config", "set",
                            "hp-a", "batch_max_samples=7", "--wait", "20", "--config",
                            str(config)], capture_output=True, text=True, timeout=60,
                            cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)})
                        seen["set"] = (setter.returncode, setter.stdout, setter.stderr)
                        await until(lambda: bool(_reported("hp-a")),
                                    f"hp-a's report in the devices table ({seen['set']})", 60)
                        seen["reported"] = _reported("hp-a")
                        seen["batch_size"] = a.agent.batcher.max_samples
                        now = time.time()
                        for uplink in (a, c):  # one whole batch each
                            n = uplink.agent.batcher.max_samples
                            uplink.agent.add_samples(now - np.arange(float(n))[::-1],
                                                     np.ones((n, 1)))
                            uplink.notify()
                        # hp-a leaves as soon as the broker has its batch: its goodbye follows
                        # its last sample closely, not after however long a loaded machine
                        # takes to carry the batch into the rules (silent for no_data before
                        # the goodbye, a no-data case would be right)
                        assert await a.wait_drained(30), "hp-a's batch not sent"
                        quiet_since = time.time()
                    await until(lambda: len(db_rows(
                        cases_db, "SELECT device_id FROM alarm_states "
                        "WHERE rule = 'silent'")) == 2, "both batches in the rules", 60)
                    # hp-a said goodbye on leaving; hp-c stays connected, quiet
                    await until(lambda: state("hp-a") == ("offline", "shutdown"),
                                "hp-a's goodbye", 60)
                    # hp-b: killed, so mosquitto publishes its last will
                    seen["killed"] = await kill_agent(broker.port, tenant, "hp-b", None,
                                                      tmp_path, state, 120)
                    await until(lambda: ("hp-b", "device_offline") in cases(),
                                "hp-b's offline case", 60)
                    seen["offline_after_s"] = time.time() - seen["killed"]  # type: ignore
                    await until(lambda: ("hp-c", "silent") in cases(), "hp-c's no-data case",
                                60)
                    # hp-a fell quiet with hp-c, then said goodbye: no case, also a while later
                    settle = time.time() + 2.0
                    while time.time() < settle:
                        assert not {r for d, r in cases() if d == "hp-a"}, cases()
                        await asyncio.sleep(0.2)
                    seen["quiet_for_s"] = time.time() - quiet_since
                    seen["cases"] = cases()
            finally:
                if core.returncode is None:
                    os.killpg(core.pid, signal.SIGTERM)
                await asyncio.wait_for(core.wait(), 60)
            seen["code"] = core.returncode
            return seen

        try:
            seen = asyncio.run(scenario())
        except AssertionError as exc:  # what core said meanwhile
            raise AssertionError(f"{exc}\n--- core's log:\n{log.read_text()[-4000:]}") from exc

    code, out, err = seen["set"]  # type: ignore[misc]
    assert code == 0, err
    assert "reported: applied" in out
    reported = json.loads(str(seen["reported"]))
    assert (reported["status"], reported["applied"]["batch_max_samples"]) == ("applied", 7)
    assert seen["batch_size"] == 7
    assert float(seen["offline_after_s"]) >= _OFFLINE_S  # type: ignore[arg-type]
    assert float(seen["quiet_for_s"]) > _NO_DATA_S + 1.0  # type: ignore[arg-type]
    opened = seen["cases"]
    assert isinstance(opened, set)
    assert {("hp-b", "device_offline"), ("hp-c", "silent")} <= opened, opened
    assert not {rule for device, rule in opened if device == "hp-a"}, opened
    assert seen["code"] == 0, log.read_text()[-3000:]
