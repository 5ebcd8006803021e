"""TLS with client certificates: the certificate's CN is the device's identity (and ``%u``)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from edge.agent import EdgeAgent
from edge.batcher import Batcher
from edge.queue import DiskQueue
from edge.schema import TelemetryBatch, decode_payload, telemetry_topic
from edge.uplink import BrokerConfig, TlsFiles, Uplink
from tests.integration.edge.conftest import ACL, load_benchmark

pytestmark = pytest.mark.integration


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(pki: Path, name: str, cn: str, san: str | None = None) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-subj", f"/CN={cn}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=pki)
    extra = []
    if san:
        (pki / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        extra = ["-extfile", f"{name}.ext"]
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", *extra, cwd=pki)


@pytest.fixture
def tls_broker(tmp_path: Path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    pki = tmp_path / "pki"
    pki.mkdir()
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-subj", "/CN=forewarn test CA", "-keyout", "ca.key",
             "-out", "ca.crt", cwd=pki)
    _issue(pki, "server", "localhost", "IP:127.0.0.1,DNS:localhost")
    for device in ("hp-a", "forewarn-core"):
        _issue(pki, device, device)
    broker_module = load_benchmark("edge_broker")
    extra = (f"cafile {pki / 'ca.crt'}", f"certfile {pki / 'server.crt'}",
             f"keyfile {pki / 'server.key'}", "require_certificate true",
             "use_identity_as_username true")
    with broker_module.Mosquitto(acl_file=ACL, extra=extra) as broker:
        yield broker.port, pki


def _tls_client(port: int, pki: Path, name: str | None,
                timeout_s: float = 5.0) -> aiomqtt.Client:
    tls = aiomqtt.TLSParameters(
        ca_certs=str(pki / "ca.crt"),
        certfile=str(pki / f"{name}.crt") if name else None,
        keyfile=str(pki / f"{name}.key") if name else None,
        cert_reqs=ssl.CERT_REQUIRED,
    )
    return aiomqtt.Client("127.0.0.1", port, identifier=f"c-{uuid.uuid4().hex[:6]}",
                          protocol=aiomqtt.ProtocolVersion.V5, tls_params=tls, timeout=timeout_s)


def test_client_certificate_is_the_device_identity(tls_broker, tmp_path: Path) -> None:
    port, pki = tls_broker
    tenant = f"t{uuid.uuid4().hex[:8]}"
    queue = DiskQueue(tmp_path / "q.sqlite")
    agent = EdgeAgent(tenant, Batcher("hp-a", "boot1", "heat_pump", ("a",), max_samples=2),
                      queue=queue)
    broker = BrokerConfig("127.0.0.1", port, tls=TlsFiles(
        str(pki / "ca.crt"), str(pki / "hp-a.crt"), str(pki / "hp-a.key")))

    async def scenario() -> tuple[list[str], TelemetryBatch]:
        seen: list[str] = []
        async with _tls_client(port, pki, "forewarn-core") as core:
            await core.subscribe(f"forewarn/v1/{tenant}/+/telemetry", qos=1)
            async with _tls_client(port, pki, "hp-a") as spoofer:
                # hp-a's certificate does not let it speak for hp-b
                await spoofer.publish(telemetry_topic(tenant, "hp-b"), b"{}", qos=1)
            async with Uplink(agent, broker) as uplink:
                agent.add_samples(np.array([1.0, 2.0]), np.ones((2, 1)))
                uplink.notify()
                async with asyncio.timeout(10):
                    async for message in core.messages:
                        seen.append(str(message.topic))
                        assert isinstance(message.payload, bytes)
                        return seen, TelemetryBatch.model_validate_json(
                            decode_payload(message.payload, message.properties))
        raise AssertionError("nothing arrived")

    try:
        seen, batch = asyncio.run(scenario())
    finally:
        queue.close()
    assert seen == [telemetry_topic(tenant, "hp-a")]
    assert batch.t == [1.0, 2.0]


def test_no_client_certificate_no_connection(tls_broker) -> None:
    port, pki = tls_broker

    async def attempt() -> None:
        # the broker ends the handshake; no CONNACK ever comes
        async with _tls_client(port, pki, None, timeout_s=1.0):
            pass

    with pytest.raises(aiomqtt.MqttError):
        asyncio.run(attempt())
