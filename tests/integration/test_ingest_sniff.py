"""``forewarn ingest sniff`` (issue 22) against a real Mosquitto: it proposes a mapping from what
a fleet publishes, and the proposal decodes that fleet's payloads."""

from __future__ import annotations

import asyncio
import json
import threading
import tomllib

import pytest

from core.config import MqttConfig
from core.mapping import IngestConfig, MappedDecoder
from forewarn.errors import ForewarnError
from forewarn.sniff import propose, sniff
from tests.integration.nats.fleet import publish_mqtt
from tests.servers.mosquitto import Mosquitto

pytestmark = pytest.mark.integration


def test_sniff_proposes_a_mapping_that_decodes_the_fleet(mosquitto: Mosquitto,
                                                         unique_tenant: str) -> None:
    root = f"{unique_tenant}-acme"
    messages = [(f"{root}/site-{i % 2}/hp-{i % 5}/state",
                 json.dumps({"ts": 1_700_000_000 + i, "temp": 20.0 + i, "rpm": 900 + i,
                             "mode": "heat"}).encode(), 1) for i in range(40)]
    done = threading.Event()

    def publish_until_heard() -> None:
        while not done.is_set():  # sniff subscribes when it is ready: publish until it heard
            publish_mqtt(mosquitto.host, mosquitto.port, messages[:10])

    publisher = threading.Thread(target=publish_until_heard, daemon=True)
    publisher.start()
    try:
        seen = asyncio.run(sniff(MqttConfig(host=mosquitto.host, port=mosquitto.port), 60.0,
                                 f"{root}/#", max_messages=30))
    finally:
        done.set()
        publisher.join(30)
    assert len(seen) == 30
    proposals = propose(seen, "acme")
    assert len(proposals) == 1
    text = proposals[0].toml()
    assert f'topic = "{root}/+level2/+device/state"' in text
    assert 'time_key = "ts"' in text and 'fields = ["temp", "rpm"]' in text
    config = IngestConfig.model_validate(tomllib.loads(text)["ingest"])
    batch = MappedDecoder(config.mapping)(*seen[0])
    assert batch.tenant == "acme" and batch.fields == ("temp", "rpm")
    assert batch.device_id.startswith("hp-")


def test_sniff_says_when_the_broker_is_away() -> None:
    with pytest.raises(ForewarnError, match=r"broker mqtt://127\.0\.0\.1:1"):
        asyncio.run(sniff(MqttConfig(host="127.0.0.1", port=1), 1.0))


def test_line_protocol_is_proposed_with_its_device_tag() -> None:
    seen = [("telegraf/s1", b"cpu,host=gw-1 usage_idle=97.5 1700000000000000000"),
            ("telegraf/s1", b"cpu,host=gw-2 usage_idle=96 1700000000000000000")]
    (proposal,) = propose(seen, "acme")
    assert (proposal.format, proposal.topic, proposal.device_key) == (
        "influx", "telegraf/s1", "host")
