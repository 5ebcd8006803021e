"""Notification latency: detector events at a steady rate → rules → case → outbox → webhook.

    .venv/bin/python benchmarks/notify_latency.py [--json] [--events-per-s 1000]
        [--new-faults-per-s 50] [--seconds 10] [--db sqlite|postgres]

A producer hands the rules pipeline one scored batch per detector event (one sample, one
``DetectorEvent``), paced at ``--events-per-s``. ``--new-faults-per-s`` devices start to be
faulty every second; the events are spread over every device faulty so far, so most events
land on a device whose case is already open (that is what a real fleet sends) and each new
faulty device opens one case. The dispatcher runs as a deployment runs it: in a process of its
own, polling the outbox, delivering to a signed webhook on 127.0.0.1.

Printed: for every case, the time from the first event of its device until the webhook
received the team notice (p50/p99/max), the same for the customer notice, cases opened per
second, the event rate achieved, and the grouping wait (none: grouping joins open cases at
once, it never waits). Default settings: SQLite file, dispatcher poll 50 ms, 16 sends at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.servers

from core.events import DetectorEvent, ScoredBatch
from rules.cases import CaseBook
from rules.db import connect
from rules.model import parse_rules
from rules.notifiers.webhook import WebhookNotifier
from rules.outbox import Outbox
from rules.pipeline import RulesPipeline
from tests.servers.postgres import Postgres
from tests.servers.webhook import WebhookReceiver

SECRET = b"bench"
RULES = parse_rules("""
rules:
  - name: onset
    when: {event: {score_at_least: 0.8, within: 10m}}
    for: 0s
    severity: warning
cases: {quiet_hours: null, customer_notices_per_day: 100}
""")


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.array(values), q))


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 1)


def _dispatcher(engine_url: str, hook_url: str, stop: Any, ready: Any, poll_s: float) -> None:
    """The dispatcher process: deliver until ``stop`` (a multiprocessing event) is set."""
    async def run() -> None:
        engine = connect(engine_url)
        try:
            async with WebhookNotifier(hook_url, SECRET) as hook:
                outbox = Outbox(engine, {"webhook": hook}, clock=time.time,
                                base_delay_s=0.05, concurrency=16)
                done = asyncio.Event()

                async def watch() -> None:
                    while not stop.is_set():
                        await asyncio.sleep(0.02)
                    done.set()

                watcher = asyncio.create_task(watch())
                await outbox.dispatch_once()  # warm: imports, connections, statement cache
                ready.set()
                await outbox.run(done, idle_s=poll_s)
                await watcher
        finally:
            engine.dispose()

    asyncio.run(run())


def run_benchmark(events_per_s: float, new_faults_per_s: float, seconds: float, db: str,
                  poll_s: float = 0.05, drain_s: float = 30.0) -> dict[str, Any]:
    """Run once; return the figures."""
    with ExitStack() as stack:
        if db == "postgres":
            url = stack.enter_context(Postgres()).url
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            url = f"sqlite:///{tmp / 'cases.sqlite'}"
        hook = stack.enter_context(WebhookReceiver(secret=SECRET))
        engine = connect(url)
        stack.callback(engine.dispose)
        book = CaseBook(engine, channel="webhook", clock=time.time)
        pipeline = RulesPipeline(RULES, book, persist_states=True)
        spawn = multiprocessing.get_context("spawn")
        stop, ready = spawn.Event(), spawn.Event()
        dispatcher = spawn.Process(target=_dispatcher, args=(url, hook.url, stop, ready, poll_s))
        dispatcher.start()
        if not ready.wait(60):
            raise RuntimeError("the dispatcher process did not start")
        stack.callback(dispatcher.join, 30)
        stack.callback(stop.set)

        first_event: dict[str, float] = {}
        handle_s: list[float] = []
        started = time.monotonic()
        sent = 0
        tick_s = 0.01
        while (elapsed := time.monotonic() - started) < seconds:
            faulty = max(1, int(elapsed * new_faults_per_s) + 1)
            # catch up with the schedule: as many events as the rate owes by now
            while sent < elapsed * events_per_s:
                # the newest faulty device first, then round robin over all faulty ones
                index = faulty - 1 if f"dev-{faulty - 1}" not in first_event else sent % faulty
                device = f"dev-{index}"
                now = time.time()
                event = DetectorEvent("bench", device, "heat_pump", "discharge_temp", "robust_z",
                                      now, 0.95, 80.0, "discharge temperature far above usual")
                batch = ScoredBatch("bench", device, "heat_pump", ("discharge_temp",),
                                    np.array([now]), np.array([[80.0]]), np.array([[0.95]]),
                                    (event,))
                first_event.setdefault(device, time.monotonic())
                t = time.perf_counter()
                _handle(pipeline, batch)
                handle_s.append(time.perf_counter() - t)
                sent += 1
            pause = started + (int(elapsed / tick_s) + 1) * tick_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        produced_s = time.monotonic() - started
        cases = pipeline.stats.opened
        hook.wait_for(2 * cases, timeout_s=drain_s)
        stop.set()

        team: list[float] = []
        customer: list[float] = []
        case_device = {c.id: c.device_id for c in book.cases()}
        for key, seen in list(hook.first_seen.items()):
            case_id = int(key.split("-")[1])
            start = first_event.get(case_device.get(case_id, ""))
            if start is None:
                continue
            (team if "-team-" in key else customer).append(seen - start)
        return {
            "db": db,
            "events_per_s_target": events_per_s,
            "events_per_s_achieved": round(sent / produced_s, 1),
            "new_faults_per_s": new_faults_per_s,
            "seconds": round(produced_s, 2),
            "events": sent,
            "cases_opened": cases,
            "cases_per_s": round(cases / produced_s, 1),
            "team_notices_received": len(team),
            "customer_notices_received": len(customer),
            "team_latency_ms": {"p50": _ms(_percentile(team, 50)),
                                "p99": _ms(_percentile(team, 99)),
                                "max": _ms(max(team) if team else None)},
            "customer_latency_ms": {"p50": _ms(_percentile(customer, 50)),
                                    "p99": _ms(_percentile(customer, 99))},
            "handle_ms": {"p50": _ms(statistics.median(handle_s)),
                          "p99": _ms(_percentile(handle_s, 99))},
            "handle_busy_s": round(sum(handle_s), 2),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
            "webhook_repeats": sum(1 for n in hook.received.values() if n > 1),
            "grouping_wait_s": 0.0,
            "dispatcher_poll_s": poll_s,
        }


def _handle(pipeline: RulesPipeline, batch: ScoredBatch) -> None:
    pipeline.handle(batch)


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--events-per-s", type=float, default=1000.0)
    parser.add_argument("--new-faults-per-s", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--poll-s", type=float, default=0.05, help="dispatcher idle poll")
    args = parser.parse_args()
    report = run_benchmark(args.events_per_s, args.new_faults_per_s, args.seconds, args.db,
                           args.poll_s)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    team, customer = report["team_latency_ms"], report["customer_latency_ms"]
    print(f"{report['events']} detector events in {report['seconds']} s "
          f"({report['events_per_s_achieved']}/s, target {report['events_per_s_target']}/s), "
          f"{report['db']}")
    print(f"cases opened: {report['cases_opened']} ({report['cases_per_s']}/s)")
    print(f"event → webhook, team notice:     p50 {team['p50']} ms, p99 {team['p99']} ms, "
          f"max {team['max']} ms ({report['team_notices_received']} received)")
    print(f"event → webhook, customer notice: p50 {customer['p50']} ms, "
          f"p99 {customer['p99']} ms ({report['customer_notices_received']} received)")
    print(f"pipeline.handle per event: p50 {report['handle_ms']['p50']} ms, "
          f"p99 {report['handle_ms']['p99']} ms; grouping wait: none; webhook repeats: "
          f"{report['webhook_repeats']}")
    print(f"time inside pipeline.handle: {report['handle_busy_s']} s; load average "
          f"{report['load_average_1m']} on {report['cpus']} CPUs (shared machine)")


if __name__ == "__main__":
    main()
