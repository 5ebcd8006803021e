"""Tenants are bound (issue 16.4): at the broker by the ACL ``forewarn devices add --tenant``
writes, and in core by the registry's device → tenant (``tenant_mismatch`` dead letters)."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path

import aiomqtt
import pytest

from core.detect import RobustZ
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore
from edge.schema import telemetry_topic
from forewarn.cli import main
from rules.registry import parse_registry
from tests.integration.edge.conftest import load_benchmark

pytestmark = pytest.mark.integration


def _client(port: int, username: str, password: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, username=username, password=password,
                          identifier=f"{username}-{uuid.uuid4().hex[:6]}",
                          protocol=aiomqtt.ProtocolVersion.V5, timeout=5.0)


def _secret(tmp_path: Path, password: str) -> Path:
    path = tmp_path / f"{password}.secret"
    path.write_text(password + "\n")
    return path


def test_devices_add_tenant_binds_the_device_at_the_broker(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    own, other = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    for device, tenant in (("hp-a", own), ("hp-b", other), ("hp-a", own)):  # re-add replaces
        assert main(["devices", "add", device, "--mosquitto-passwd", str(passwd),
                     "--password-file", str(_secret(tmp_path, f"pw-{device}")),
                     "--tenant", tenant, "--acl-file", str(acl)]) == 0
    assert main(["devices", "add", "forewarn-core", "--mosquitto-passwd", str(passwd),
                 "--password-file", str(_secret(tmp_path, "pw-core"))]) == 0
    text = acl.read_text()
    assert text.count("user hp-a") == 1 and f"topic write forewarn/v1/{own}/hp-a/telemetry" \
        in text and "+/%u" not in text
    capsys.readouterr()

    broker_module = load_benchmark("edge_broker")
    with broker_module.Mosquitto(password_file=passwd, acl_file=acl) as broker:
        async def scenario() -> list[str]:
            seen: list[str] = []
            async with _client(broker.port, "forewarn-core", "pw-core") as core:
                await core.subscribe("forewarn/v1/#", qos=1)
                async with _client(broker.port, "hp-a", "pw-hp-a") as device:
                    await device.publish(telemetry_topic(other, "hp-a"), b"{}", qos=1)
                    await device.publish(telemetry_topic(own, "hp-a"), b"{}", qos=1)
                async with asyncio.timeout(10):
                    async for message in core.messages:
                        seen.append(str(message.topic))
                        if str(message.topic) == telemetry_topic(own, "hp-a"):
                            break
            return seen

        assert asyncio.run(scenario()) == [telemetry_topic(own, "hp-a")]


def test_devices_add_warns_when_the_acl_lets_any_tenant_through(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    acl = tmp_path / "acl"
    shutil.copy(Path(__file__).resolve().parents[3] / "deploy/mosquitto/acl", acl)
    passwd, secret = tmp_path / "passwd", str(_secret(tmp_path, "x"))
    assert main(["devices", "add", "hp-a", "--mosquitto-passwd", str(passwd),
                 "--password-file", secret, "--tenant", "acme", "--acl-file", str(acl)]) == 0
    assert "lets every device publish under any tenant" in capsys.readouterr().err
    assert "topic write forewarn/v1/acme/hp-a/telemetry" in acl.read_text()
    assert main(["devices", "add", "hp-a", "--mosquitto-passwd", str(passwd),
                 "--password-file", secret, "--tenant", "acme"]) == 2
    assert main(["devices", "add", "hp-a", "--mosquitto-passwd", str(passwd),
                 "--password-file", secret, "--tenant", "ac/me", "--acl-file", str(acl)]) == 2


def test_core_dead_letters_a_message_under_another_tenant() -> None:
    registry = parse_registry("customers: [{id: kim}]\n"
                              "devices: {hp-1: {customer: kim, tenant: acme}}")
    store = EmbeddedStore(":memory:")
    pipe = CorePipeline(RobustZ(), store, device_tenant=registry.tenant_of)

    def batch(device: str, seq: int) -> bytes:
        return json.dumps({"device_id": device, "boot_id": "b", "seq": seq, "fields": ["a"],
                           "t": [1.0 + seq], "values": [[1.0]]}).encode()

    assert pipe.process_payload(telemetry_topic("evil", "hp-1"), batch("hp-1", 0)) is None
    assert pipe.process_payload(telemetry_topic("acme", "hp-1"), batch("hp-1", 0)) is not None
    assert pipe.process_payload(telemetry_topic("any", "hp-9"), batch("hp-9", 0)) is not None
    assert dict(pipe.dead_letters.counts) == {"tenant_mismatch": 1}
    letter = pipe.dead_letters.recent[0]
    assert letter.topic == telemetry_topic("evil", "hp-1") and "'acme'" in letter.detail
    assert store.count_samples("evil") == 0 and store.count_samples("acme") == 1
