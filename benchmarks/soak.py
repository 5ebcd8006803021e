"""Whole-pipeline soak on NATS JetStream with faults: a worker killed -9, the store down 20 s.

    .venv/bin/python benchmarks/soak.py [--json] [--devices 1000] [--minutes 3]
    .venv/bin/python benchmarks/soak.py --machines 3 [--json] [--devices 300] [--minutes 2]

A synthetic fleet (``--devices``, five fields, batches of ``--batch-samples`` samples every
``--round-s`` wall seconds; the first ``--faulty`` devices jump 12 σ half-way) publishes over
MQTT 3.1.1 to nats-server's MQTT listener. ``forewarn core --engine nats --workers 2`` (the real
supervisor and worker processes, 32 partitions) detects, writes to VictoriaMetrics through the
InfluxDB store and opens cases in SQLite; this process runs the outbox dispatcher. At 30 % of
the run worker 0 is killed with SIGKILL (the supervisor restarts it), at 50 % VictoriaMetrics is
stopped for ``--store-outage-s`` seconds. After the last publish the stream is drained, then:

- ``published``: samples the broker acknowledged; ``stored_unique``: distinct (device, time)
  samples in VictoriaMetrics (one field counted); ``lost`` = published − stored_unique;
  ``stored_raw``: raw values VictoriaMetrics holds for that field (> unique: replayed writes);
- ``duplicate_cases``: cases beyond one per (device, rule); ``duplicate_notices``: notices
  delivered more than once (same idempotency key twice in the notifier's output);
- ``failover_s``: from the kill until every partition of the killed worker acknowledged again;
- ``p99_sample_to_case_s``: from publishing the batch holding the sample that fired to the
  case's notice being queued, 99th percentile over cases;
- ``cases_on_healthy_devices``: cases of devices without a fault (the soak's rule opens a case
  on any sample scoring ≥ 0.5, so healthy devices' rare high scores open some: they exercise
  the case and notice paths like the faulty ones); ``notices_by_kind``: notices queued per
  kind (opened, resolved, reopened…).

With ``--machines 3`` three "machines" (``forewarn core --engine nats --workers 1``, each a
supervisor and its worker in a process group of its own) share the stream by lease. At 30 %
machine 0's whole process group is killed with SIGKILL and not restarted; at 50 % machine 1
stops (SIGTERM, its leases released) and at 65 % it starts again and rejoins. Keys besides the
above: ``machine_failover_s`` (the kill until every partition the killed machine held
acknowledged again elsewhere), ``max_owners_per_partition`` (the most machines consuming one
partition at once, sampled every 0.1 s over the stretches each machine's log shows it
consuming a partition: from "restored" to "stopped", or to the kill), ``rebalance_moves``
(partitions taken by lease after the first even spread: the failover and the leave/rejoin).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
import numpy as np
import paho.mqtt.client as mqtt
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.servers, the test fleet

from core.nats import NatsConfig, ensure_stream
from forewarn.settings import load_settings
from forewarn.workers import Supervisor, dispatch_outbox, worker_command
from tests.integration.nats.fleet import SINGLE_SERIES_DETECTOR_TOML, SyntheticFleet
from tests.servers.nats import NatsServer
from tests.servers.victoria import VictoriaMetrics

_RULES = """\
rules:
  - name: level_jump
    product: heat_pump
    score_at_least: 0.5
    for: 0s
    severity: warning
    notify_customer: false
"""
_PARTITIONS = 32


class Publisher:
    """Publishes the fleet's rounds at a fixed pace from a thread; remembers when."""

    def __init__(self, server: NatsServer, fleet: SyntheticFleet, rounds: int,
                 round_s: float) -> None:
        self.fleet = fleet
        self.rounds = rounds
        self.round_s = round_s
        self.round_wall: list[float] = []
        self.published = 0
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"soak-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(2000)
        self.client.max_queued_messages_set(0)
        self.client.connect(server.host, server.mqtt_port)
        self.done = threading.Event()

    def run(self) -> None:
        self.client.loop_start()
        try:
            start = time.monotonic()
            for r in range(self.rounds):
                self.round_wall.append(time.time())
                infos = [(self.client.publish(topic, payload, qos=1), n)
                         for topic, payload, n in self.fleet.batches(1)]
                for info, n in infos:
                    info.wait_for_publish(120)
                    self.published += n
                ahead = start + (r + 1) * self.round_s - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        finally:
            self.client.loop_stop()
            self.client.disconnect()
            self.done.set()


async def _ack_floors(js: Any, cfg: NatsConfig, partitions: list[int]) -> dict[int, int]:
    floors = {}
    for p in partitions:
        try:
            info = await js.consumer_info(cfg.stream, cfg.consumer_name(p))
            floors[p] = info.ack_floor.stream_seq if info.ack_floor else 0
        except NotFoundError:
            floors[p] = 0
    return floors


async def _backlog(js: Any, cfg: NatsConfig) -> int:
    """Messages not yet acknowledged over all partitions (-1 while a consumer is missing)."""
    total = 0
    for p in range(cfg.partitions):
        try:
            info = await js.consumer_info(cfg.stream, cfg.consumer_name(p))
        except NotFoundError:
            return -1
        total += info.num_pending + info.num_ack_pending
    return total


async def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    tenant = f"soak{uuid.uuid4().hex[:6]}"
    rules = workdir / "rules.yaml"
    rules.write_text(_RULES)
    cases_db, notices = workdir / "cases.sqlite", workdir / "notices.jsonl"
    toml = workdir / "forewarn.toml"
    toml.write_text(f'tenant = "{tenant}"\n[store]\npath = "{workdir / "unused.sqlite"}"\n'
                    f'[cases]\nurl = "sqlite:///{cases_db}"\nrules_file = "{rules}"\n'
                    f'notices_jsonl = "{notices}"\n' + SINGLE_SERIES_DETECTOR_TOML)
    settings = load_settings(toml)
    rounds = max(10, int(args.minutes * 60 / args.round_s))
    samples_per_device = rounds * args.batch_samples
    period_s = 10.0
    fleet = SyntheticFleet(tenant, devices=args.devices, batch_samples=args.batch_samples,
                           period_s=period_s, faulty=args.faulty,
                           fault_at=samples_per_device // 2,
                           start_t=time.time() - samples_per_device * period_s - 3600)
    results: dict[str, Any] = {"devices": args.devices, "rounds": rounds,
                               "samples_per_batch": args.batch_samples}
    with NatsServer(workdir / "nats") as server, VictoriaMetrics(workdir / "vm") as vm:
        cfg = NatsConfig(url=server.url, partitions=_PARTITIONS, max_bytes=2 * 1024**3)
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_stream(js, cfg)  # before any device publishes: NATS drops the uncaptured
        argv = worker_command([
            "-v", "--config", str(toml), "core", "--engine", "nats", "--nats-url", server.url,
            "--stream-partitions", str(_PARTITIONS), "--stream-max-gb", "2",
            "--snapshot-interval", str(args.snapshot_s), "--influx-url", vm.url,
            "--fetch-batch", "64",
        ])
        supervisor = Supervisor(range(_PARTITIONS), 2, argv)
        stop_outbox = asyncio.Event()
        sup_task = asyncio.create_task(supervisor.run())
        outbox_task = asyncio.create_task(dispatch_outbox(settings, stop_outbox, echo=False))
        publisher = Publisher(server, fleet, rounds, args.round_s)
        pub_thread = threading.Thread(target=publisher.run, name="fleet")
        try:
            run_s = rounds * args.round_s
            started = time.monotonic()
            pub_thread.start()
            victim = list(supervisor.workers[0].partitions)
            # worker 0 killed -9 at 30 % of the run
            await asyncio.sleep(max(0.0, 0.3 * run_s - (time.monotonic() - started)))
            floors = await _ack_floors(js, cfg, victim)
            process = supervisor.workers[0].process
            assert process is not None
            killed_at = time.monotonic()
            os.kill(process.pid, signal.SIGKILL)
            failover_s: float | None = None
            outage_at = 0.5 * run_s
            outage_done = False
            last_report = 0.0
            while True:
                backlog = await _backlog(js, cfg)
                if publisher.done.is_set() and backlog == 0:
                    break
                now = time.monotonic()
                if now - last_report >= 10:
                    print(f"soak: {now - started:5.0f} s published {publisher.published} "
                          f"backlog {backlog} messages", file=sys.stderr)
                    last_report = now
                if failover_s is None:
                    current = await _ack_floors(js, cfg, victim)
                    if all(current[p] > floors[p] for p in victim):
                        failover_s = round(now - killed_at, 2)
                if not outage_done and now - started >= outage_at:
                    vm.stop()
                    await asyncio.sleep(args.store_outage_s)
                    vm.start()
                    outage_done = True
                if now - started > run_s + 600:
                    logging.error("soak: stream not drained 10 minutes after the last publish")
                    break
                await asyncio.sleep(0.5)
            results["drain_s_after_last_publish"] = round(time.monotonic() - started - run_s, 1)
            await asyncio.sleep(2.0)  # the dispatcher's last round
        finally:
            supervisor.stop()
            await sup_task
            stop_outbox.set()
            await outbox_task
            pub_thread.join()
            await nc.close()

        results["published"] = publisher.published
        series = vm.export(f'{{__name__="telemetry_compressor_current",tenant="{tenant}"}}')
        results["stored_unique"] = sum(len(set(s["timestamps"])) for s in series)
        results["stored_raw"] = sum(len(s["timestamps"]) for s in series)
        results["lost"] = results["published"] - results["stored_unique"]
        results["worker_restarts"] = [w.restarts for w in supervisor.workers]

    conn = sqlite3.connect(cases_db)
    try:
        cases = conn.execute("SELECT id, device_id, rule, opened_at FROM cases").fetchall()
        queued = dict(conn.execute(
            "SELECT case_id, min(created_at) FROM notices GROUP BY case_id").fetchall())
        by_kind = dict(conn.execute(
            "SELECT kind, count(*) FROM notices GROUP BY kind ORDER BY kind").fetchall())
    finally:
        conn.close()
    keys = [(device, rule) for _, device, rule, _ in cases]
    results["cases"] = len(cases)
    results["duplicate_cases"] = len(keys) - len(set(keys))
    delivered = [json.loads(line)["idempotency_key"]
                 for line in notices.read_text().splitlines()] if notices.exists() else []
    results["notices_delivered"] = len(delivered)
    results["duplicate_notices"] = len(delivered) - len(set(delivered))
    results["failover_s"] = failover_s
    latencies = []
    for case_id, _, _, opened_at in cases:
        r = int((opened_at - fleet.start_t) / period_s) // args.batch_samples
        if case_id in queued and 0 <= r < len(publisher.round_wall):
            latencies.append(queued[case_id] - publisher.round_wall[r])
    results["p99_sample_to_case_s"] = (round(float(np.percentile(latencies, 99)), 2)
                                       if latencies else None)
    results["faulty_devices_with_case"] = len(
        {d for _, d, _, _ in cases if int(d[1:]) < args.faulty})
    results["cases_on_healthy_devices"] = sum(1 for _, d, _, _ in cases
                                              if int(d[1:]) >= args.faulty)
    results["notices_by_kind"] = by_kind
    return results


_OWNER_LOG = re.compile(r"^(\S+ \S+) \w+ core\.nats\.worker: partition (\d+): "
                        r"(restored|stopped) at stream seq")
_TOOK_LOG = re.compile(r"^(\S+ \S+) \w+ core\.nats\.lease: leases of \S+: took \[([\d, ]*)\]")


def _log_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def ownership_intervals(logs: list[Path], killed: dict[int, float]) -> list[tuple[int, float,
                                                                                  float]]:
    """(partition, start, end) of every stretch a machine consumed a partition, from its log.

    A stretch starts when a worker restored the partition and ends when it stopped it, when the
    machine was killed (``killed``: log index → wall time), or at the end of the run.
    """
    intervals = []
    for index, log in enumerate(logs):
        open_at: dict[int, float] = {}
        for line in log.read_text(errors="replace").splitlines():
            match = _OWNER_LOG.match(line)
            if match is None:
                continue
            at, partition = _log_time(match[1]), int(match[2])
            if match[3] == "restored":
                if partition in open_at:  # the machine's previous worker died holding it
                    intervals.append((partition, open_at.pop(partition), at))
                open_at[partition] = at
            elif partition in open_at:
                intervals.append((partition, open_at.pop(partition), at))
        end = killed.get(index, time.time())
        intervals += [(p, start, end) for p, start in open_at.items()]
    return intervals


def max_owners(intervals: list[tuple[int, float, float]], every_s: float = 0.1) -> int:
    """The most machines consuming one partition at once, sampled every ``every_s``."""
    if not intervals:
        return 0
    first = min(start for _, start, _ in intervals)
    last = max(end for _, _, end in intervals)
    most = 0
    t = first
    while t <= last:
        counts: dict[int, int] = {}
        for partition, start, end in intervals:
            if start <= t < end:
                counts[partition] = counts.get(partition, 0) + 1
        most = max(most, *counts.values(), 0)
        t += every_s
    return most


def takes(logs: list[Path], after: float) -> int:
    """Partitions taken by lease after ``after`` (wall time), over all machines."""
    count = 0
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            match = _TOOK_LOG.match(line)
            if match is not None and _log_time(match[1]) > after and match[2].strip():
                count += len(match[2].split(","))
    return count


async def _lease_owners(js: Any, cfg: NatsConfig) -> dict[int, str]:
    try:
        kv = await js.key_value(cfg.lease_bucket)
    except BucketNotFoundError:
        return {}
    owners = {}
    for p in range(cfg.partitions):
        try:
            entry = await kv.get(f"p.{p:04d}")
        except (KeyNotFoundError, NotFoundError):
            continue
        if entry.value:
            owners[p] = entry.value.decode()
    return owners


class Machine:
    """One "machine": ``forewarn core --engine nats`` (supervisor and workers) in a process
    group of its own, logging to a file."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.argv, start_new_session=True,
                                            stdout=out, stderr=out)

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def owns(self, member: str) -> bool:
        """Whether the lease member ``member`` (host-pid-tag) is a process of this machine."""
        assert self.process is not None
        try:
            return os.getpgid(int(member.rsplit("-", 2)[1])) == self.process.pid
        except (ProcessLookupError, ValueError):
            return False


async def soak_machines(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """``--machines N``: N machines share the stream by lease; machine 0 is killed -9 at 30 %
    of the run (or once the partitions are spread evenly, if later) and not restarted; machine 1
    leaves (SIGTERM) at 50 % and rejoins at 65 %."""
    tenant = f"soak{uuid.uuid4().hex[:6]}"
    rules = workdir / "rules.yaml"
    rules.write_text(_RULES)
    cases_db, notices = workdir / "cases.sqlite", workdir / "notices.jsonl"
    toml = workdir / "forewarn.toml"
    toml.write_text(f'tenant = "{tenant}"\n[store]\npath = "{workdir / "unused.sqlite"}"\n'
                    f'[cases]\nurl = "sqlite:///{cases_db}"\nrules_file = "{rules}"\n'
                    f'notices_jsonl = "{notices}"\n'
                    f'[nats]\nlease_ttl_s = {args.lease_ttl_s}\n' + SINGLE_SERIES_DETECTOR_TOML)
    settings = load_settings(toml)
    rounds = max(10, int(args.minutes * 60 / args.round_s))
    samples_per_device = rounds * args.batch_samples
    period_s = 10.0
    fleet = SyntheticFleet(tenant, devices=args.devices, batch_samples=args.batch_samples,
                           period_s=period_s, faulty=args.faulty,
                           fault_at=samples_per_device // 2,
                           start_t=time.time() - samples_per_device * period_s - 3600)
    results: dict[str, Any] = {"devices": args.devices, "rounds": rounds,
                               "machines": args.machines,
                               "samples_per_batch": args.batch_samples}
    with NatsServer(workdir / "nats") as server, VictoriaMetrics(workdir / "vm") as vm:
        cfg = NatsConfig(url=server.url, partitions=_PARTITIONS, max_bytes=2 * 1024**3,
                         lease_ttl_s=args.lease_ttl_s)
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_stream(js, cfg)
        argv = worker_command([
            "-v", "--config", str(toml), "core", "--engine", "nats", "--nats-url", server.url,
            "--stream-partitions", str(_PARTITIONS), "--stream-max-gb", "2",
            "--snapshot-interval", str(args.snapshot_s), "--influx-url", vm.url,
            "--fetch-batch", "64", "--workers", str(args.workers), "--no-outbox",
        ])
        logs = [workdir / f"machine-{i}.log" for i in range(args.machines)]
        machines = [Machine(argv, log) for log in logs]
        for machine in machines:
            machine.start()
        stop_outbox = asyncio.Event()
        outbox_task = asyncio.create_task(dispatch_outbox(settings, stop_outbox, echo=False))
        publisher = Publisher(server, fleet, rounds, args.round_s)
        pub_thread = threading.Thread(target=publisher.run, name="fleet")
        killed: dict[int, float] = {}
        spread_at = 0.0
        try:
            run_s = rounds * args.round_s
            started = time.monotonic()
            pub_thread.start()
            while True:  # every partition leased before the kill: the spread is the start
                owners = await _lease_owners(js, cfg)
                held = [list(owners.values()).count(m) for m in set(owners.values())]
                if (len(owners) == _PARTITIONS and len(held) == args.machines * args.workers
                        and max(held) - min(held) <= 1 and not spread_at):
                    spread_at = time.time()  # every partition leased, evenly
                if time.monotonic() - started >= 0.3 * run_s and spread_at:
                    break
                await asyncio.sleep(0.5)
            orphaned = [p for p, m in owners.items() if machines[0].owns(m)]
            floors = await _ack_floors(js, cfg, orphaned)
            killed_at = time.monotonic()
            killed[0] = time.time()
            machines[0].kill()
            failover_s: float | None = None
            left = rejoined = False
            last_report = 0.0
            while True:
                backlog = await _backlog(js, cfg)
                now = time.monotonic()
                if publisher.done.is_set() and backlog == 0 and rejoined \
                        and failover_s is not None:
                    break
                if now - last_report >= 10:
                    print(f"soak: {now - started:5.0f} s published {publisher.published} "
                          f"backlog {backlog} messages", file=sys.stderr)
                    last_report = now
                if failover_s is None:
                    current = await _ack_floors(js, cfg, orphaned)
                    if all(current[p] > floors[p] for p in orphaned):
                        failover_s = round(now - killed_at, 2)
                if not left and now - started >= 0.5 * run_s:
                    await asyncio.to_thread(machines[1].stop)
                    left = True
                if left and not rejoined and now - started >= 0.65 * run_s:
                    machines[1].start()
                    rejoined = True
                if now - started > run_s + 600:
                    logging.error("soak: stream not drained 10 minutes after the last publish")
                    break
                await asyncio.sleep(0.5)
            results["drain_s_after_last_publish"] = round(time.monotonic() - started - run_s, 1)
            await asyncio.sleep(2.0)  # the dispatcher's last round
        finally:
            for machine in machines[1:]:
                await asyncio.to_thread(machine.stop)
            if not killed:
                machines[0].kill()
            stop_outbox.set()
            await outbox_task
            pub_thread.join()
            await nc.close()

        results["published"] = publisher.published
        series = vm.export(f'{{__name__="telemetry_compressor_current",tenant="{tenant}"}}')
        results["stored_unique"] = sum(len(set(s["timestamps"])) for s in series)
        results["stored_raw"] = sum(len(s["timestamps"]) for s in series)
        results["lost"] = results["published"] - results["stored_unique"]

    conn = sqlite3.connect(cases_db)
    try:
        keys = conn.execute("SELECT device_id, rule FROM cases").fetchall()
    finally:
        conn.close()
    results["cases"] = len(keys)
    results["duplicate_cases"] = len(keys) - len(set(keys))
    delivered = [json.loads(line)["idempotency_key"]
                 for line in notices.read_text().splitlines()] if notices.exists() else []
    results["notices_delivered"] = len(delivered)
    results["duplicate_notices"] = len(delivered) - len(set(delivered))
    results["machine_failover_s"] = failover_s
    results["orphaned_partitions"] = len(orphaned)
    results["max_owners_per_partition"] = max_owners(ownership_intervals(logs, killed))
    results["rebalance_moves"] = takes(logs, spread_at) if spread_at else None
    # leases that ran out under a live owner (a round delayed past the fence), each a move too
    results["leases_lost"] = sum(log.read_text(errors="replace").count("lease lost")
                                 for log in logs)
    if args.keep_logs is not None:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
        for log in logs:
            shutil.copy(log, args.keep_logs / log.name)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--faulty", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--round-s", type=float, default=2.0,
                        help="wall seconds between two batches of a device")
    parser.add_argument("--batch-samples", type=int, default=20)
    parser.add_argument("--store-outage-s", type=float, default=20.0)
    parser.add_argument("--snapshot-s", type=float, default=10.0)
    parser.add_argument("--machines", type=int, default=1,
                        help="> 1: that many machines share the stream by lease; machine 0 is "
                        "killed -9 at 30 %% and not restarted, machine 1 leaves at 50 %% and "
                        "rejoins at 65 %% (no store outage)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per machine "
                        "(with --machines)")
    parser.add_argument("--lease-ttl-s", type=float, default=10.0)
    parser.add_argument("--keep-logs", type=Path, default=None,
                        help="copy each machine's log here (with --machines)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="fw-soak-") as tmp:
        results = asyncio.run(soak_machines(args, Path(tmp)) if args.machines > 1
                              else soak(args, Path(tmp)))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:<28}{value}")
    ok = results["lost"] == 0 and not results["duplicate_cases"] \
        and not results["duplicate_notices"]
    if args.machines > 1:
        ok = ok and results["max_owners_per_partition"] == 1 \
            and (results["machine_failover_s"] or 1e9) <= 30
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
