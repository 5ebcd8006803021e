"""Ingest throughput of one core worker: decoders, the pipeline, direct MQTT and JetStream.

    .venv/bin/python benchmarks/ingest_throughput.py [--json] [--messages 3000] [--samples 100]
        [--detectors fleet,ensemble,robust_z] [--repeat 3] [--fetch-batch 64] [--mapped]
        [--paths decode,mapped,pipeline,mqtt_direct,jetstream,jetstream_leased] [--peer]

Every message is one device's batch of ``--samples`` samples of five fields (columnar JSON,
about 5 kB at 100 samples). Measured, in this one process (servers run beside it on the same
two cores):

- ``decode/*``: payload → validated batch as numpy arrays, per decoder: ``forewarn`` (what
  ``core.decode`` runs: msgspec for the structure, :mod:`core.json_numbers` reading the numbers
  straight into arrays, pydantic only for what that fast path is unsure of), pydantic alone
  (``TelemetryBatch``, the schema of record, then the arrays), msgspec alone (typed decode of
  Python floats + numpy checks of the same constraints, then the arrays) and orjson (parse +
  arrays only, no schema checks at all: not a usable validator, a reference);
- ``pipeline/*``: ``CorePipeline.process_payload`` (decode → dedup → detect) into the worker's
  hand-off list, no broker, for the full detector ensemble and for RobustZ alone;
- ``mqtt_direct/*``: a backlog queued at mosquitto for core's persistent MQTT 5 session,
  drained by :class:`core.ingest.Ingestor` into the pipeline (the single-machine engine);
- ``jetstream/*``: a backlog in the partitioned stream (32 partitions) drained by one
  :class:`core.nats.NatsEngine` process (fetch 64, process, store hand-off, ack-all), with
  static ownership (``jetstream/*``) and owning the partitions by lease with every
  acknowledgement fenced, as ``forewarn core --engine nats`` runs by default
  (``jetstream_leased/*``).
  With ``--peer`` each JetStream path is measured again with the ``[peer]`` detector in every
  partition, its peer groups spanning the partitions through the engine's peer summaries
  (``jetstream+peer/*``, ``jetstream_leased+peer/*``), as ``forewarn core`` runs by default,
  and with each partition's peer groups its own devices (``…+peer_unshared/*``, ``[nats]
  peer_share = false``).

``--mapped`` measures mapped JSON instead (docs/connect.md § Speed): ``decode/mapped_json_*``
(the full decoder, ``MappedDecoder.reading``, the quick way to one reading, and
``MappedDecoder.readings``, a group's one-reading messages read at once),
``pipeline/mapped_{1x5,100x5}_{one_by_one,grouped}/*`` (``process_payload`` message by message
against ``process_group`` in groups of ``GROUP_MAX_MESSAGES``) and
``mqtt_direct/mapped_1x5_{one_by_one,grouped,receive_only}/*`` (a backlog at mosquitto drained
by :class:`core.service.CoreService` itself, by the message-by-message loop it ran before, and
by the ingestor alone), after a warm-up of ``--mapped-warm`` readings per device.

``samples_per_s`` counts samples (rows; a sample has five values), ``cpu_us_per_sample`` divides
this process's CPU time by the samples. The store hand-off in the broker runs is
``write_many`` on a store that keeps nothing: store speed is ``benchmarks/store_write.py``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import nats
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.servers, the test fleet

from core.config import MqttConfig
from core.decode import DecodedBatch, decode_fast
from core.detect import DetectorConfig, PeerConfig, RobustZ, make_detector, make_peer
from core.events import ScoredBatch
from core.heap import settle_heap, unsettle_heap
from core.ingest import GROUP_MAX_MESSAGES, Ingestor
from core.mapping import MappedDecoder, MappingConfig
from core.nats import HandOff, NatsConfig, NatsEngine, ensure_stream
from core.pipeline import BatchDetector, CorePipeline, PipelineState
from core.service import CoreService
from core.store.base import TimeSeriesStore
from core.store.null import NullStore
from edge.schema import MAX_FIELDS, MAX_SAMPLES_PER_BATCH, TelemetryBatch
from tests.integration.nats.fleet import SyntheticFleet, publish_mqtt
from tests.servers.mosquitto import Mosquitto, mosquitto_binary
from tests.servers.nats import NatsServer

Message = tuple[str, bytes, int]
DETECTORS: dict[str, Callable[[], BatchDetector]] = {
    # what the service runs (forewarn core, the demo): the one default detector
    "fleet": lambda: make_detector(DetectorConfig()),
    # the earlier single-series NAB tuning, to compare
    "ensemble": lambda: make_detector(DetectorConfig.nab_reference()),
    "robust_z": lambda: RobustZ(),
}


class _WireBatch(msgspec.Struct, forbid_unknown_fields=True):
    """The JSON shape of :class:`TelemetryBatch`, for msgspec's typed decoder."""

    device_id: str
    boot_id: str
    seq: int
    fields: list[str]
    t: list[float]
    values: list[list[float | None]]
    v: int = 1
    product: str = "generic"
    firmware: str | None = None


_WIRE = msgspec.json.Decoder(_WireBatch)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def _fast_batch(payload: bytes) -> TelemetryBatch | None:
    """The batch when ``payload`` is plainly valid, else None (then pydantic validates it).

    The msgspec-only candidate measured here: a typed decode (a Python float per number) plus
    numpy checks of every constraint of :class:`TelemetryBatch`. It barely beats pydantic:
    the Python floats and their conversion to arrays are the cost, which is why ``core.decode``
    reads the numbers with :mod:`core.json_numbers` instead.
    """
    try:
        wire = _WIRE.decode(payload)
    except msgspec.DecodeError:
        return None
    n, k = len(wire.t), len(wire.fields)
    if not (wire.v == 1 and 0 <= wire.seq < 2**63 and 1 <= k <= MAX_FIELDS
            and 1 <= n <= MAX_SAMPLES_PER_BATCH and len(wire.values) == n
            and (wire.firmware is None or len(wire.firmware) <= 64)
            and len(set(wire.fields)) == k
            and all(_NAME_RE.match(name) for name in
                    (wire.device_id, wire.boot_id, wire.product, *wire.fields))):
        return None
    try:
        values = np.array(wire.values, dtype=np.float64)  # null → NaN; ragged rows raise
    except ValueError:
        return None
    t = np.array(wire.t, dtype=np.float64)
    if values.shape != (n, k) or np.isinf(values).any() or not np.isfinite(t).all() \
            or (t < 0).any():
        return None
    return TelemetryBatch.model_construct(
        v=1, device_id=wire.device_id, boot_id=wire.boot_id, seq=wire.seq, product=wire.product,
        firmware=wire.firmware, fields=wire.fields, t=wire.t, values=wire.values,
    )


def _figures(samples: int, messages: int, wall_s: float, cpu_s: float) -> dict[str, float]:
    return {
        "samples_per_s": round(samples / wall_s),
        "messages_per_s": round(messages / wall_s),
        "cpu_us_per_sample": round(cpu_s / samples * 1e6, 3),
        "wall_s": round(wall_s, 3),
    }


def _msgspec_arrays(payload: bytes) -> object:
    batch = _fast_batch(payload)
    return None if batch is None else DecodedBatch.of("bench", batch)


def _orjson_arrays(payload: bytes) -> object:
    body = orjson.loads(payload)
    return np.array(body["values"], dtype=np.float64), np.array(body["t"], dtype=np.float64)


def bench_decoders(messages: list[Message]) -> dict[str, dict[str, float]]:
    decoders: dict[str, Callable[[bytes], object]] = {
        "forewarn": lambda payload: decode_fast("bench", payload),
        "pydantic": lambda payload: DecodedBatch.of(
            "bench", TelemetryBatch.model_validate_json(payload)),
        "msgspec": _msgspec_arrays,
        "orjson_no_checks": _orjson_arrays,
    }
    samples = sum(n for _, _, n in messages)
    out = {}
    for name, decode in decoders.items():
        decode(messages[0][1])  # load compiled kernels before the clock starts
        wall, cpu = time.perf_counter(), time.process_time()
        for _, payload, _ in messages:
            decode(payload)
        out[f"decode/{name}"] = _figures(samples, len(messages), time.perf_counter() - wall,
                                         time.process_time() - cpu)
    return out


def _mapped_messages(count: int, per_message: int, devices: int = 300) -> list[Message]:
    """Plain JSON as an existing fleet sends it: ``per_message`` readings of five fields
    (one object, or an array of objects), on ``acme/{site}/{device}/state``."""
    rng = np.random.default_rng(3)
    messages: list[Message] = []
    for i in range(count):
        readings = [{"ts": 1_700_000_000 + 10 * (i * per_message + k), "status": "ok",
                     **{f"f{j}": round(float(v), 3) for j, v in enumerate(
                         rng.normal(50.0, 5.0, 5))}} for k in range(per_message)]
        body = readings[0] if per_message == 1 else readings
        messages.append((f"acme/s1/hp-{i % devices}/state", orjson.dumps(body), per_message))
    return messages


MAPPING = MappingConfig(name="acme-json", topic="acme/+site/+device/state", tenant="acme",
                        product="heat_pump", time_key="ts")


def bench_mapped(count: int, samples: int) -> dict[str, dict[str, float]]:
    """``decode/mapped_json_*``: a mapped topic and payload → the native DecodedBatch
    (:class:`core.mapping.MappedDecoder`, every numeric key a field, time key ``ts``), and
    ``decode/mapped_json_1x5_reading``: the quick way to one reading
    (:meth:`MappedDecoder.reading`, no arrays), ``decode/mapped_json_1x5_group``: what the
    pipeline coalesces, a group's readings read at once (:meth:`MappedDecoder.readings`)."""
    decoder = MappedDecoder([MAPPING])
    out = {}
    messages = _mapped_messages(count, 1)
    decoder.reading(*messages[0][:2])
    wall, cpu = time.perf_counter(), time.process_time()
    for topic, payload, _ in messages:
        decoder.reading(topic, payload)
    out["decode/mapped_json_1x5_reading"] = _figures(
        len(messages), len(messages), time.perf_counter() - wall, time.process_time() - cpu)
    pairs = [(topic, payload) for topic, payload, _ in messages]
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(pairs), GROUP_MAX_MESSAGES):
        decoder.readings(pairs[start:start + GROUP_MAX_MESSAGES])
    out["decode/mapped_json_1x5_group"] = _figures(
        len(messages), len(messages), time.perf_counter() - wall, time.process_time() - cpu)
    for name, messages in (("decode/mapped_json_1x5", _mapped_messages(count, 1)),
                           (f"decode/mapped_json_{samples}x5",
                            _mapped_messages(max(1, count // samples), samples))):
        decoder(*messages[0][:2])  # load compiled kernels before the clock starts
        wall, cpu = time.perf_counter(), time.process_time()
        for topic, payload, _ in messages:
            decoder(topic, payload)
        out[name] = _figures(sum(n for _, _, n in messages), len(messages),
                             time.perf_counter() - wall, time.process_time() - cpu)
    return out


def _mapped_rounds(devices: int, warm_per_device: int, count: int, per_message: int
                   ) -> tuple[list[Message], list[Message]]:
    """A mapped fleet's warm-up (``warm_per_device`` readings of each device) and the
    ``count`` messages measured after it (readings go on in time)."""
    warm = max(1, devices * warm_per_device // per_message)
    both = _mapped_messages(warm + max(1, count // per_message), per_message, devices)
    return both[:warm], both[warm:]


def _mapped_warm(detector: str, warmup: list[Message]) -> PipelineState:
    """The state of ``forewarn core``'s pipeline with the mapping past the detectors' warm-up
    (fed in groups: the same state as message by message, tests/property/
    test_coalesced_ingest.py). The measured paths start from it, and the warm-up messages need
    not stay in memory (a heap of them made every garbage collection slower)."""
    pipeline = _mapped_pipeline(detector, None, NullStore())
    pairs = [(topic, payload) for topic, payload, _ in warmup]
    for start in range(0, len(pairs), GROUP_MAX_MESSAGES):
        pipeline.process_group(pairs[start:start + GROUP_MAX_MESSAGES])
    return pipeline.state()


def _mapped_pipeline(detector: str, warm: PipelineState | None, store: TimeSeriesStore
                     ) -> CorePipeline:
    """The pipeline of ``forewarn core`` with the mapping, from the state ``warm``."""
    pipeline = CorePipeline(DETECTORS[detector](), store, decoder=MappedDecoder([MAPPING]))
    if warm is not None:
        pipeline.load_state(warm)
    return pipeline


def bench_mapped_pipeline(detector: str, warm: PipelineState, messages: list[Message],
                          grouped: bool) -> dict[str, float]:
    """Mapped JSON through the pipeline, no broker: message by message (``process_payload``,
    what core ran before coalescing) or in groups of ``GROUP_MAX_MESSAGES`` as the ingestor
    hands a backlog on (``process_group``, what core runs)."""
    handoff = HandOff()
    pipeline = _mapped_pipeline(detector, warm, handoff)
    pairs = [(topic, payload) for topic, payload, _ in messages]
    wall, cpu = time.perf_counter(), time.process_time()
    if grouped:
        for start in range(0, len(pairs), GROUP_MAX_MESSAGES):
            pipeline.process_group(pairs[start:start + GROUP_MAX_MESSAGES])
    else:
        for topic, payload in pairs:
            pipeline.process_payload(topic, payload)
    batches = handoff.take()
    figures = _figures(sum(n for _, _, n in messages), len(messages),
                       time.perf_counter() - wall, time.process_time() - cpu)
    figures["batches"] = len(batches)
    assert pipeline.stats.samples_ingested == sum(n for _, _, n in messages)
    return figures


async def bench_mqtt_mapped(workdir: Path, detector: str, warm: PipelineState,
                            messages: list[Message], how: str) -> dict[str, float]:
    """A backlog of mapped JSON at mosquitto drained by core's MQTT ingest, ``how``:

    - ``grouped``: :class:`core.service.CoreService` itself (what ``forewarn core`` runs:
      ingestor groups → ``process_group`` → rules hand-off → journal hook → acknowledgement),
      a sink that does nothing and a store that keeps nothing;
    - ``one_by_one``: the same loop message by message (``Ingestor.messages`` →
      ``process_payload``), as CoreService ran before coalescing;
    - ``receive_only``: the ingestor's groups and nothing else: the MQTT client's floor.

    All three with the collector set as ``forewarn core`` sets it (:func:`core.heap.settle_heap`).
    """
    with Mosquitto(workdir) as broker:
        mqtt = MqttConfig(host=broker.host, port=broker.port, client_id=f"bench-{how}",
                          subscription="forewarn/v1/+/+/telemetry", protocol="5")
        pipeline = _mapped_pipeline(detector, warm, NullStore())
        groups: list[int] = []
        received = [0]

        async def sink(batch: ScoredBatch) -> None:
            return None

        def on_handled() -> None:
            return None

        service = CoreService(mqtt, pipeline, sink, on_handled=on_handled)
        service.ingestor.extra_subscriptions = (MAPPING.pattern.subscription,)
        grouped = pipeline.process_group

        def counted(group: Sequence[tuple[str, bytes]]) -> list[tuple[ScoredBatch, str, bytes]]:
            groups.append(len(group))
            return grouped(group)

        pipeline.process_group = counted  # type: ignore[method-assign,assignment]

        async def consume() -> None:
            if how == "grouped":
                await service.run()
            elif how == "one_by_one":
                async with service.ingestor as ingestor:
                    async for topic, payload in ingestor.messages():
                        scored = pipeline.process_payload(topic, payload)
                        if scored is not None:
                            await sink(scored)
                        on_handled()
            else:
                async with service.ingestor as ingestor:
                    async for group in ingestor.groups():
                        groups.append(len(group))
                        received[0] += len(group)

        def done() -> int:
            return received[0] if how == "receive_only" else pipeline.stats.messages

        # subscribe once so the broker keeps the persistent session, then queue the backlog
        threshold = gc.get_threshold()
        settle_heap()  # as forewarn core does once started (core.heap)
        task = asyncio.create_task(consume())
        await service.ingestor.connected.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(publish_mqtt, broker.host, broker.port, messages)
        start = done()
        wall, cpu = time.perf_counter(), time.process_time()
        task = asyncio.create_task(consume())
        while done() < start + len(messages):
            await asyncio.sleep(0.005)
        elapsed, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        unsettle_heap(threshold)
        figures = _figures(sum(n for _, _, n in messages), len(messages), elapsed, cpu_s)
        if groups:
            figures["mean_group"] = round(float(np.mean(groups)), 1)
        return figures


def _warm(detector: str, warmup: list[Message]) -> tuple[CorePipeline, HandOff]:
    handoff = HandOff()
    pipeline = CorePipeline(DETECTORS[detector](), handoff)
    for topic, payload, _ in warmup:  # compile kernels, allocate every device's series
        pipeline.process_payload(topic, payload)
    handoff.take()
    return pipeline, handoff


def bench_pipeline(detector: str, warmup: list[Message],
                   messages: list[Message]) -> dict[str, float]:
    pipeline, handoff = _warm(detector, warmup)
    samples = sum(n for _, _, n in messages)
    wall, cpu = time.perf_counter(), time.process_time()
    for topic, payload, _ in messages:
        pipeline.process_payload(topic, payload)
    handoff.take()
    return _figures(samples, len(messages), time.perf_counter() - wall,
                    time.process_time() - cpu)


async def bench_mqtt_direct(workdir: Path, detector: str, warmup: list[Message],
                            messages: list[Message]) -> dict[str, float]:
    with Mosquitto(workdir) as broker:
        mqtt = MqttConfig(host=broker.host, port=broker.port, client_id="bench-core",
                          subscription="forewarn/v1/+/+/telemetry", protocol="5")
        ingestor = Ingestor(mqtt)

        marks: dict[str, float] = {}

        async def consume(pipeline: CorePipeline, handoff: HandOff, store: NullStore,
                          expected: int) -> None:
            async with ingestor:
                async for topic, payload in ingestor.messages():
                    pipeline.process_payload(topic, payload)
                    store.write_many(handoff.take())
                    if pipeline.stats.messages == len(warmup):
                        marks["wall"], marks["cpu"] = time.perf_counter(), time.process_time()
                    if pipeline.stats.messages >= expected:
                        return

        # subscribe once so the broker keeps the persistent session, then queue a backlog;
        # one consumer drains it all (the ingestor acknowledges what it finished, in groups)
        pipeline, handoff = _warm(detector, [])
        first = asyncio.create_task(consume(pipeline, handoff, NullStore(), 1 << 60))
        await ingestor.connected.wait()
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        await asyncio.to_thread(publish_mqtt, broker.host, broker.port, warmup + messages)
        pipeline, handoff = _warm(detector, [])
        start = time.perf_counter()
        await consume(pipeline, handoff, NullStore(), len(warmup) + len(messages))
        figures = _figures(sum(n for _, _, n in messages), len(messages),
                           time.perf_counter() - marks["wall"], time.process_time() - marks["cpu"])
        figures["warmup_s"] = round(marks["wall"] - start, 2)
        return figures


async def bench_jetstream(workdir: Path, detector: str, warmup: list[Message],
                          messages: list[Message], fetch_batch: int = 64,
                          leased: bool = False, peer: str | None = None) -> dict[str, float]:
    """One worker process's engine over 32 partitions: static (``leased`` False) or owning
    them by lease as ``forewarn core --engine nats`` does by default (fenced acks); with
    ``peer`` each partition also runs the ``[peer]`` detector with its default settings:
    ``"shared"``, its groups spanning the partitions through the engine's peer summaries (as
    ``forewarn core`` runs it), ``"unshared"``, each partition's groups its own devices
    (``[nats] peer_share = false``, what every partition did before the summaries)."""
    with NatsServer(workdir) as server:
        # a long lease term: on a loaded machine a starved event loop must not lose leases
        # mid-run (the fence would stop partitions and the replays be measured); the fence's
        # cost per acknowledgement does not depend on the term
        cfg = NatsConfig(url=server.url, partitions=32, fetch_batch=fetch_batch, max_bytes=1024**3,
                         snapshot_interval_s=3600, lease_max_moves=32, lease_ttl_s=120.0,
                         peer_share=peer == "shared")
        nc = await nats.connect(server.url)
        await ensure_stream(nc.jetstream(), cfg)
        js = nc.jetstream()
        for topic, payload, _ in warmup + messages:
            await js.publish(topic.replace("/", "."), payload)  # MQTT → NATS subject mapping
        await nc.close()
        store = NullStore()

        async def sink(batch: ScoredBatch) -> None:
            return None

        def make_pipeline(handoff: TimeSeriesStore) -> CorePipeline:
            return CorePipeline(DETECTORS[detector](), handoff,
                                peer=make_peer(PeerConfig()) if peer else None)

        async with NatsEngine(cfg, [] if leased else range(32), make_pipeline, store, sink,
                              member="bench" if leased else None) as engine:
            runner = asyncio.create_task(engine.run())
            await engine.ready.wait()
            start = time.perf_counter()
            while sum(s.messages for s in engine.stats()) < len(warmup):
                await asyncio.sleep(0.005)
            wall, cpu = time.perf_counter(), time.process_time()
            done = sum(s.messages for s in engine.stats())
            total = len(warmup) + len(messages)
            while sum(s.messages for s in engine.stats()) < total:
                await asyncio.sleep(0.005)
            elapsed, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
            engine.stop()
            await runner
        measured = total - done
        samples = measured * messages[0][2]
        figures = _figures(samples, measured, elapsed, cpu_s)
        figures["warmup_s"] = round(wall - start, 2)
        return figures


#: the paths ``--paths`` chooses from
_PATHS = ("decode", "mapped", "pipeline", "mqtt_direct", "jetstream", "jetstream_leased")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=100, help="samples per message")
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--detectors", default="fleet,ensemble,robust_z")
    parser.add_argument("--fetch-batch", type=int, default=64,
                        help="JetStream messages per fetch (= max_ack_pending; forewarn's default)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of every path; each figure is the median round's (default 3)")
    parser.add_argument("--mapped-messages", type=int, default=50_000,
                        help="messages of the mapped JSON decoders (one reading each)")
    parser.add_argument("--mapped-only", action="store_true",
                        help="only the decoders (native and mapped), no pipeline or broker")
    parser.add_argument("--mapped", action="store_true",
                        help="mapped JSON only: decoders, pipeline and MQTT, one reading per "
                        "message and arrays of --samples, before and after coalescing")
    parser.add_argument("--mapped-devices", type=int, default=300)
    parser.add_argument("--mapped-warm", type=int, default=1500,
                        help="warm-up readings per device (past the detectors' warm-up)")
    parser.add_argument("--mapped-mqtt-messages", type=int, default=30_000,
                        help="messages of the mapped MQTT and pipeline paths (one reading each)")
    parser.add_argument("--peer", action="store_true",
                        help="also measure each JetStream path with the [peer] detector, its "
                        "groups spanning partitions ('<path>+peer/<detector>') and not "
                        "('<path>+peer_unshared/<detector>')")
    parser.add_argument("--paths", default=",".join(_PATHS),
                        help=f"which paths to run (default all: {','.join(_PATHS)})")
    args = parser.parse_args(argv)
    paths = set(args.paths.split(","))
    if paths - set(_PATHS):
        parser.error(f"unknown paths {sorted(paths - set(_PATHS))}; choose from {_PATHS}")
    logging.basicConfig(level=logging.WARNING)
    # aiomqtt leaves the cancelled first session's disconnect future unread; it is expected
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)

    fleet = SyntheticFleet("bench", devices=args.devices, batch_samples=args.samples)
    warm_rounds = max(1, 1500 // args.samples + 1)  # past the detectors' warm-up (a day)
    warmup = list(fleet.batches(warm_rounds))
    rounds = max(1, args.messages // args.devices)
    messages = list(fleet.batches(rounds))
    results: dict[str, Any] = {
        "messages": len(messages), "samples_per_message": args.samples,
        "fields": 5, "fetch_batch": args.fetch_batch, "repeat": args.repeat,
        "payload_bytes": int(np.mean([len(p) for _, p, _ in messages])),
    }
    detectors = args.detectors.split(",")
    runs: dict[str, list[dict[str, float]]] = {}
    if args.mapped:
        results = _run_mapped(args, detectors, runs)
        _print(results, args)
        return 0
    with tempfile.TemporaryDirectory(prefix="fw-ingest-") as tmp:
        # every path once per round, rounds one after the other: the paths are measured side
        # by side under the same machine load, and each figure is the median round's
        for rnd in range(args.repeat):
            if "decode" in paths:
                for name, fig in bench_decoders(messages).items():
                    runs.setdefault(name, []).append(fig)
            if "mapped" in paths:
                for name, fig in bench_mapped(args.mapped_messages, args.samples).items():
                    runs.setdefault(name, []).append(fig)
            if args.mapped_only:
                continue
            for detector in detectors:
                if "pipeline" in paths:
                    runs.setdefault(f"pipeline/{detector}", []).append(
                        bench_pipeline(detector, warmup, messages))
            for detector in detectors:
                if "mqtt_direct" in paths and mosquitto_binary() is not None:
                    runs.setdefault(f"mqtt_direct/{detector}", []).append(asyncio.run(
                        bench_mqtt_direct(Path(tmp) / f"mosq-{detector}-{rnd}", detector,
                                          warmup, messages)))
                for leased in (False, True):
                    path = "jetstream_leased" if leased else "jetstream"
                    if path not in paths:
                        continue
                    for peer in (None, "shared", "unshared") if args.peer else (None,):
                        name = path if peer is None else {"shared": f"{path}+peer",
                                                          "unshared": f"{path}+peer_unshared"}[peer]
                        runs.setdefault(f"{name}/{detector}", []).append(asyncio.run(
                            bench_jetstream(Path(tmp) / f"{name}-{detector}-{rnd}", detector,
                                            warmup, messages, args.fetch_batch, leased,
                                            peer)))
    _medians(runs, results)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{results['messages']} messages × {args.samples} samples × 5 fields "
          f"(~{results['payload_bytes']} bytes each), one process; median of {args.repeat} "
          "rounds")
    _print(results, args)
    return 0


def _medians(runs: dict[str, list[dict[str, float]]], results: dict[str, Any]) -> None:
    """Each path's median round (by samples/s) into ``results``, with every round's figure."""
    for name, figs in runs.items():
        ranked = sorted(figs, key=lambda f: f["samples_per_s"])
        median: dict[str, Any] = dict(ranked[len(ranked) // 2])
        median["runs_samples_per_s"] = [f["samples_per_s"] for f in figs]
        # CPU per sample moves less than the rate on a shared machine: its own median
        cpu = sorted(f["cpu_us_per_sample"] for f in figs)
        median["cpu_us_per_sample_median"] = cpu[len(cpu) // 2]
        median["runs_cpu_us_per_sample"] = [f["cpu_us_per_sample"] for f in figs]
        results[name] = median


def _print(results: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'path':<44}{'samples/s':>12}{'messages/s':>12}{'CPU µs/sample':>15}  rounds")
    for name, row in results.items():
        if isinstance(row, dict):
            spread = " / ".join(f"{r / 1000:.0f}k" for r in row["runs_samples_per_s"])
            print(f"{name:<44}{row['samples_per_s']:>12,}{row['messages_per_s']:>12,}"
                  f"{row['cpu_us_per_sample']:>15.3f}  {spread}")


def _run_mapped(args: argparse.Namespace, detectors: list[str],
                runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """``--mapped``: every mapped JSON path, rounds side by side; the figures' medians."""
    count = args.mapped_mqtt_messages
    shapes: dict[str, tuple[dict[str, PipelineState], list[Message]]] = {}
    for label, per_message in (("1x5", 1), (f"{args.samples}x5", args.samples)):
        warm, messages = _mapped_rounds(args.mapped_devices, args.mapped_warm, count,
                                        per_message)
        shapes[label] = ({detector: _mapped_warm(detector, warm) for detector in detectors},
                         messages)
        del warm
    gc.collect()
    results: dict[str, Any] = {
        "mapped_messages": count, "mapped_devices": args.mapped_devices,
        "mapped_warm_readings_per_device": args.mapped_warm,
        "group_max_messages": GROUP_MAX_MESSAGES, "repeat": args.repeat, "fields": 5,
        "array_samples": args.samples, "detectors": detectors,
    }
    with tempfile.TemporaryDirectory(prefix="fw-ingest-") as tmp:
        for rnd in range(args.repeat):
            for name, fig in bench_mapped(args.mapped_messages, args.samples).items():
                runs.setdefault(name, []).append(fig)
            for detector in detectors:
                for label, (states, messages) in shapes.items():
                    for grouped in (False, True):
                        runs.setdefault(
                            f"pipeline/mapped_{label}_{'grouped' if grouped else 'one_by_one'}"
                            f"/{detector}", []).append(
                            bench_mapped_pipeline(detector, states[detector], messages, grouped))
                if mosquitto_binary() is None:
                    continue
                states, messages = shapes["1x5"]
                for how in ("one_by_one", "grouped", "receive_only"):
                    if how == "receive_only" and detector != detectors[0]:
                        continue
                    runs.setdefault(f"mqtt_direct/mapped_1x5_{how}/{detector}", []).append(
                        asyncio.run(bench_mqtt_mapped(Path(tmp) / f"m-{how}-{detector}-{rnd}",
                                                      detector, states[detector], messages,
                                                      how)))
    _medians(runs, results)
    return results


if __name__ == "__main__":
    sys.exit(main())
