"""``forewarn fleet --hours --speed`` as a separate process against a real Mosquitto where every
device has its own password: it publishes the simulated hours, ends by itself, and its ground
truth is the demo fleet's."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections import Counter
from pathlib import Path

import aiomqtt
import pytest

from edge.schema import StatusMessage, TelemetryBatch, decode_payload, parse_topic
from firmware_sim.truth import read_jsonl
from forewarn.devices.passwords import add_device
from forewarn.fleet import FleetPlan, demo_fleet
from tests.servers.mosquitto import Mosquitto, mosquitto_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
ACL = ROOT / "deploy" / "mosquitto" / "acl"
START = "2026-03-01T00:00:00+00:00"
START_S = 1_772_323_200.0
DEVICES = 6
SEED = 2  # three of the six devices get a fault in two hours


@pytest.fixture
def broker(tmp_path: Path) -> tuple[Mosquitto, dict[str, str]]:
    """Mosquitto with the shipped ACL and one password per fleet device, plus forewarn-core."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    passwd = tmp_path / "passwd"
    users = [f"hp-{i:04d}" for i in range(DEVICES)] + ["forewarn-core"]
    passwords = {user: f"pw-{uuid.uuid4().hex[:10]}" for user in users}
    for user, password in passwords.items():
        add_device(passwd, user, password, iterations=101)
    with Mosquitto(tmp_path / "mosquitto", allow_anonymous=False,
                   extra_config=f"user root\npassword_file {passwd}\nacl_file {ACL}\n") as server:
        yield server, passwords


def _config(tmp_path: Path, port: int, tenant: str, credentials: dict[str, str]) -> Path:
    creds = tmp_path / "fleet.credentials"
    creds.write_text("".join(f"{d} {p}\n" for d, p in credentials.items()))
    config = tmp_path / "forewarn.toml"
    config.write_text(f'tenant = "{tenant}"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
                      f'[fleet]\ncredentials_file = "{creds}"\n')
    return config


async def _fleet(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "forewarn.cli", *args, cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(300):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_fleet_publishes_simulated_hours_and_ends_by_itself(broker, tmp_path) -> None:
    server, passwords = broker
    tenant = f"t{uuid.uuid4().hex[:8]}"
    devices = {d: p for d, p in passwords.items() if d != "forewarn-core"}
    config = _config(tmp_path, server.port, tenant, devices)
    truth = tmp_path / "truth.jsonl"
    samples: Counter[str] = Counter()
    statuses: dict[str, str] = {}
    hours = 2

    async def scenario() -> tuple[int, str]:
        async with aiomqtt.Client("127.0.0.1", server.port, username="forewarn-core",
                                  password=passwords["forewarn-core"],
                                  identifier=f"core-{tenant}",
                                  protocol=aiomqtt.ProtocolVersion.V5) as core:
            await core.subscribe(f"forewarn/v1/{tenant}/#", qos=1)

            async def count() -> None:
                async for message in core.messages:
                    assert isinstance(message.payload, bytes)
                    parts = parse_topic(str(message.topic))
                    body = decode_payload(message.payload, message.properties)
                    if parts.kind == "telemetry":
                        batch = TelemetryBatch.model_validate_json(body)
                        assert min(batch.t) > START_S - 600 and max(batch.t) < START_S + 3 * 3600
                        samples[parts.device_id] += batch.n_samples
                    elif parts.kind == "status":
                        statuses[parts.device_id] = StatusMessage.model_validate_json(
                            body).state

            counter = asyncio.create_task(count())
            code, _, err = await _fleet(
                "fleet", "--config", str(config), "--devices", str(DEVICES), "--hours",
                str(hours), "--speed", "3600", "--seed", str(SEED), "--truth", str(truth),
                "--start", START, cwd=tmp_path)
            # the fleet ended after its last PUBACK; the broker still forwards to us
            async with asyncio.timeout(30):
                while sum(samples.values()) < DEVICES * hours * 60 or \
                        set(statuses.values()) != {"offline"}:
                    await asyncio.sleep(0.05)
            counter.cancel()
            return code, err

    code, err = asyncio.run(scenario())
    assert code == 0, err
    # one sample a minute for two hours, every device, each logged in as itself
    assert samples == dict.fromkeys(devices, hours * 60)
    # the devices said goodbye on purpose (retained status offline)
    assert statuses == dict.fromkeys(devices, "offline")
    assert "acknowledged" in err and "0 messages unacknowledged" in err
    # the ground truth is the demo fleet's for this seed and start
    expected = demo_fleet(FleetPlan(devices=DEVICES, hours=hours, seed=SEED,
                                    start=START_S, tenant=tenant)).ground_truth
    written = read_jsonl(truth)
    assert written == expected and len(written) == 3
    assert all(START_S < t.onset < START_S + hours * 3600 for t in written)
    assert all(json.loads(line) for line in truth.read_text().splitlines())


def test_a_device_with_a_wrong_password_is_named_and_the_fleet_stops(broker,
                                                                       tmp_path) -> None:
    server, passwords = broker
    devices = {d: p for d, p in passwords.items() if d != "forewarn-core"}
    devices["hp-0001"] = "not-its-password"
    config = _config(tmp_path, server.port, "acme", devices)

    code, out, err = asyncio.run(_fleet(
        "fleet", "--config", str(config), "--devices", "3", "--hours", "1", "--speed", "3600",
        "--connect-timeout", "3", cwd=tmp_path))

    assert code == 2, (out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("forewarn: error: 1 of 3 devices could not connect") and \
        "hp-0001" in last, err
    assert "Traceback" not in err


def test_a_device_missing_from_the_credentials_is_refused_before_connecting(tmp_path) -> None:
    config = _config(tmp_path, 1, "acme", {"hp-0000": "x"})

    code, _, err = asyncio.run(_fleet("fleet", "--config", str(config), "--devices", "2",
                                      "--hours", "1", cwd=tmp_path))

    assert code == 2
    assert err.strip() == ("forewarn: error: no password for 1 device in the credentials "
                           "file: hp-0001")
