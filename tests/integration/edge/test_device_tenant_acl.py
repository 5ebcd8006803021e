"""``forewarn devices add --tenant T --acl FILE``: the device's ACL block names its literal
tenant, so at a real Mosquitto it can publish under its own tenant only (issue 16.4)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aiomqtt
import pytest

from tests.servers.mosquitto import Mosquitto, mosquitto_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SHIPPED_ACL = ROOT / "deploy" / "mosquitto" / "acl"
CORE_BLOCK = ("user forewarn-core\ntopic read forewarn/v1/#\n"
              "topic write forewarn/v1/+/+/config/desired\n")


def _add(device: str, passwd: Path, password: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forewarn.cli", "devices", "add", device, "--mosquitto-passwd",
         str(passwd), "--password-stdin", *extra], input=password + "\n",
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def _client(port: int, user: str, password: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, username=user, password=password,
                          identifier=f"{user}-{uuid.uuid4().hex[:6]}",
                          protocol=aiomqtt.ProtocolVersion.V5, timeout=10.0)


async def _arrives(port: int, device: str, tenant_of_topic: str, own_tenant: str) -> list[str]:
    """Topics core receives when ``device`` publishes under another tenant, then its own."""
    spoofed = f"forewarn/v1/{tenant_of_topic}/{device}/telemetry"
    own = f"forewarn/v1/{own_tenant}/{device}/telemetry"
    seen: list[str] = []
    async with _client(port, "forewarn-core", "core-pw") as core:
        await core.subscribe("forewarn/v1/#", qos=1)
        async with _client(port, device, f"{device}-pw") as client:
            await client.publish(spoofed, b'{"spoofed": true}', qos=1)
            # the broker keeps one client's messages in order: the marker comes last
            await client.publish(own, b'{"marker": true}', qos=1)
        async with asyncio.timeout(10):
            async for message in core.messages:
                seen.append(str(message.topic))
                if str(message.topic) == own:
                    break
    return seen


@pytest.mark.parametrize("bound", [True, False], ids=["bound-acl", "shipped-acl"])
def test_a_bound_device_cannot_publish_under_another_tenant(tmp_path, bound) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    acl.write_text(CORE_BLOCK if bound else SHIPPED_ACL.read_text())
    assert _add("forewarn-core", passwd, "core-pw").returncode == 0
    added = _add("hp-1", passwd, "hp-1-pw", "--tenant", "acme", "--acl", str(acl))
    assert added.returncode == 0, added.stderr
    again = _add("hp-1", passwd, "hp-1-pw", "--tenant", "acme", "--acl", str(acl))
    assert again.returncode == 0 and acl.read_text().count("user hp-1\n") == 1
    assert "topic write forewarn/v1/acme/hp-1/telemetry" in acl.read_text()
    # the shipped '+' patterns undo the binding: the command says so
    assert ("lets every device publish under any tenant" in added.stderr) is not bound

    with Mosquitto(tmp_path / "mosquitto", allow_anonymous=False,
                   extra_config=f"user root\npassword_file {passwd}\nacl_file {acl}\n") as broker:
        seen = asyncio.run(_arrives(broker.port, "hp-1", "other", "acme"))

    spoofed = "forewarn/v1/other/hp-1/telemetry"
    assert seen[-1] == "forewarn/v1/acme/hp-1/telemetry"
    assert (spoofed in seen) is not bound


def test_tenant_without_acl_is_refused(tmp_path) -> None:
    result = _add("hp-1", tmp_path / "passwd", "pw", "--tenant", "acme")
    assert result.returncode == 2
    assert "--tenant and --acl go together" in result.stderr
