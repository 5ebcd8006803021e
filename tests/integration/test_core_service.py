"""``forewarn core --config FILE`` as a user runs it: a separate process on a real Mosquitto,
with the customer registry, an SMTP server (aiosmtpd) and a helpdesk webhook. A simulated fleet
publishes; every faulty device's customer gets one e-mail, in their language and time zone,
and the team's notices reach the webhook signed with the secret from its file."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import MqttConfig
from edge.schema import telemetry_subscription
from firmware_sim.fleet import Fleet, FleetConfig
from forewarn.demo import DemoOptions, publish_fleet
from tests.integration.core_process import CoreProcess
from tests.servers.mosquitto import Mosquitto
from tests.servers.smtp import SmtpServer
from tests.servers.webhook import WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

_HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def _registry(fleet: Fleet) -> str:
    """Every device its own customer; every other one Korean in Seoul, the rest English in
    Berlin, each with an e-mail contact."""
    customers, devices = [], []
    for i, device in enumerate(fleet.devices):
        korean = i % 2 == 0
        customers.append(
            f"  - id: c-{device.device_id}\n"
            f"    name: Customer {i}\n"
            f"    language: {'ko' if korean else 'en'}\n"
            f"    timezone: {'Asia/Seoul' if korean else 'Europe/Berlin'}\n"
            f"    contact: {{channel: email, address: {device.device_id}@example.com}}\n")
        devices.append(f"  {device.device_id}: {{customer: c-{device.device_id}, "
                       f"product: {device.product.name}}}\n")
    return "customers:\n" + "".join(customers) + "devices:\n" + "".join(devices)


@pytest.fixture
def helpdesk() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=b"helpdesk-secret") as receiver:
        yield receiver


def test_core_process_emails_each_faulty_devices_customer_in_their_language(
        mosquitto: Mosquitto, smtp: SmtpServer, helpdesk: WebhookReceiver,
        unique_tenant: str, tmp_path: Path) -> None:
    hours = 96.0
    fleet = Fleet(FleetConfig(devices=8, seed=4, horizon_s=hours * 3600.0, tenant=unique_tenant,
                              onset_window=(0.3, 0.5), fault_kinds=("refrigerant_leak",),
                              fault_fraction=0.4))
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "customers.yaml").write_text(_registry(fleet))
    (etc / "webhook-secret").write_text("helpdesk-secret\n")
    config = etc / "forewarn.toml"
    config.write_text(f"""\
tenant = "{unique_tenant}"
[broker]
embedded = false
[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}
client_id = "core-{unique_tenant}"
subscription = "{telemetry_subscription(unique_tenant)}"
[store]
path = "{tmp_path}/var/telemetry.sqlite"
[cases]
url = "sqlite:///{tmp_path}/var/cases.sqlite"
notices_jsonl = "{tmp_path}/var/notices.jsonl"
[rules]
files = ["{ROOT}/config/rules/heat_pump.yaml"]
[customers]
file = "customers.yaml"
[notify.email]
host = "{smtp.host}"
port = {smtp.port}
sender = "support@example.com"
tls = "none"
[notify]
team = "webhook"
[notify.webhook]
url = "{helpdesk.url}"
secret_file = "webhook-secret"
""")
    # from a directory that is not the checkout: the registry is found beside the config
    core = CoreProcess(tmp_path, config=config, args=(), core_args=["--quiet-notices"])
    core.start()
    try:
        assert core.wait_for_line("subscribed to", 120), "\n".join(core.lines)
        # what it runs with, said at start
        assert any(f"connected to mqtt://{mosquitto.host}:{mosquitto.port}" in line
                   for line in core.lines), core.lines
        assert any("rule" in line and "for products heat_pump" in line for line in core.lines)
        assert any("8 devices in the registry" in line for line in core.lines), core.lines
        assert any("store: embedded" in line for line in core.lines), core.lines
        assert any("notice channels: terminal, email, webhook" in line for line in core.lines)
        mqtt = MqttConfig(host=mosquitto.host, port=mosquitto.port, protocol="5")
        options = DemoOptions(devices=8, hours=hours, seed=4, show_notices=False,
                              progress=False)
        asyncio.run(publish_fleet(fleet, mqtt, options, tmp_path / "queues"))
        faulty = {t.device_id for t in fleet.ground_truth}
        assert faulty, "the seed must inject at least one fault"

        def customer_mails() -> dict[str, list[object]]:
            mails: dict[str, list[object]] = {}
            with smtp.lock:
                for message in smtp.messages:
                    mails.setdefault(str(message["To"]).split("@")[0], []).append(message)
            return mails

        deadline = time.monotonic() + 300
        while not faulty <= set(customer_mails()) and time.monotonic() < deadline:
            smtp.wait_for(len(smtp.messages) + 1, 2.0)
            assert core.process is not None and core.process.poll() is None, core.log_tail()
        mails = customer_mails()
        assert faulty <= set(mails), f"no e-mail for {sorted(faulty - set(mails))}"
        korean = {d.device_id for i, d in enumerate(fleet.devices) if i % 2 == 0}
        for device_id in faulty:
            [message] = mails[device_id]
            subject = str(message["Subject"])  # type: ignore[index]
            body = message.get_content()  # type: ignore[attr-defined]
            if device_id in korean:
                assert _HANGUL.search(subject) and re.search(r"\d\d:\d\d KST", body), body
            else:
                assert subject.startswith("We noticed"), subject
                assert re.search(r"\d\d:\d\d CES?T", body), body
        # the team hears of every case on the helpdesk webhook, each notice signed
        assert helpdesk.wait_for(len(faulty), 60)
        opened = {p["device_id"] for p in helpdesk.delivered.values() if p["kind"] == "opened"}
        assert faulty <= opened and helpdesk.bad_signatures == 0
        assert all(p["audience"] == "team" for p in helpdesk.delivered.values())
    finally:
        code = core.stop()
    assert code == 0, "\n".join(core.lines[-20:])
