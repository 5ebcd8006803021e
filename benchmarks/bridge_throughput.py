"""The ingest bridge's throughput: Mosquitto → JetStream, acknowledging only what was stored.

    .venv/bin/python benchmarks/bridge_throughput.py [--json] [--messages 5000] [--samples 30]

Mosquitto and nats-server on 127.0.0.1 (the test helpers start them). The bridge's persistent
session is opened first, then ``--messages`` QoS 1 batches of ``--samples`` samples (five
fields, ~1.6 kB at 30) are published to Mosquitto, which queues them for the bridge; then the
bridge (:class:`core.nats.bridge.IngestBridge`, in this process) is started and timed until the
stream holds every message. Figures: ``messages_per_s`` (wall), ``cpu_us_per_message`` (this
process's CPU over the drain: the bridge alone, the publisher is done), the median of
``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.servers, the test fleet

from core.config import MqttConfig
from core.nats import NatsConfig, ensure_stream
from core.nats.bridge import IngestBridge
from tests.integration.nats.fleet import SyntheticFleet, publish_mqtt
from tests.servers.mosquitto import Mosquitto
from tests.servers.nats import NatsServer


async def _round(server: NatsServer, broker: Mosquitto, messages: list[tuple[str, bytes, int]],
                 ) -> dict[str, float]:
    tenant = f"b{uuid.uuid4().hex[:8]}"
    cfg = NatsConfig(url=server.url, stream=f"BB_{tenant}", partitions=8,
                     ingress_subject=f"forewarn.v1.{tenant}.*.telemetry",
                     partition_prefix=f"bb.{tenant}", max_bytes=1024**3,
                     bridge_client_id=f"bridge-{tenant}",
                     bridge_subscription=f"forewarn/v1/{tenant}/+/telemetry")
    mqtt = MqttConfig(host=broker.host, port=broker.port)
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await ensure_stream(js, cfg)
    async with IngestBridge(cfg, mqtt) as bridge:  # open the session, then leave
        opening = asyncio.create_task(bridge.run())
        await asyncio.wait_for(bridge.ingestor.connected.wait(), 10)
        opening.cancel()
        await asyncio.gather(opening, return_exceptions=True)
    own = [(topic.replace("/bench/", f"/{tenant}/"), payload, n)
           for topic, payload, n in messages]
    await asyncio.to_thread(publish_mqtt, broker.host, broker.port, own)
    async with IngestBridge(cfg, mqtt) as bridge:
        wall, cpu = time.perf_counter(), time.process_time()
        running = asyncio.create_task(bridge.run())
        while bridge.ledger.totals().forwarded < len(own):
            await asyncio.sleep(0.01)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    stored = (await js.stream_info(cfg.stream)).state.messages
    await js.delete_stream(cfg.stream)
    await nc.close()
    return {"messages_per_s": len(own) / wall, "cpu_us_per_message": cpu / len(own) * 1e6,
            "stored": stored}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=30, help="samples per message")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    fleet = SyntheticFleet("bench", devices=100, batch_samples=args.samples)
    messages = list(fleet.batches(max(1, args.messages // 100)))
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="fw-bridge-") as tmp, \
            NatsServer(Path(tmp) / "nats") as server, \
            Mosquitto(Path(tmp) / "mosquitto", extra_config="max_queued_messages 0\n") as broker:
        for _ in range(args.repeat):
            rounds.append(asyncio.run(_round(server, broker, messages)))
    result: dict[str, Any] = {
        "messages": len(messages), "samples_per_message": args.samples,
        "payload_bytes": int(statistics.mean(len(p) for _, p, _ in messages)),
        "repeat": args.repeat,
        "messages_per_s": round(statistics.median(r["messages_per_s"] for r in rounds)),
        "cpu_us_per_message": round(statistics.median(r["cpu_us_per_message"]
                                                      for r in rounds), 1),
        "all_stored": all(r["stored"] == len(messages) for r in rounds),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
