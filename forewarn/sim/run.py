"""``forewarn sim evaluate``: simulate a fleet, stream it, match the cases and report."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_sim.fleet import Fleet, SimDevice
from forewarn.sim.incidents import SimIncident, incident_report
from forewarn.sim.match import MatchResult, SimCase, match_cases
from forewarn.sim.options import EvalOptions, TimelineTrace
from forewarn.sim.peer_report import peer_report
from forewarn.sim.report import report
from forewarn.sim.shards import run_shards

__all__ = ["Evaluation", "evaluate", "run_evaluation"]


@dataclass(slots=True)
class Evaluation:
    """Everything a run produced."""

    options: EvalOptions
    fleet: Fleet
    cases: list[SimCase]
    result: MatchResult
    report: dict[str, Any]
    traces: dict[str, TimelineTrace]
    #: the fleet incidents the rules opened
    incidents: list[SimIncident]


def _pick_traced(fleet: Fleet, n: int) -> list[SimDevice]:
    """Up to ``n`` faulty devices whose customer calls, as many kinds of fault as possible."""
    calling = [d for d in fleet.devices if d.truth is not None and d.truth.call is not None]
    picked: list[SimDevice] = []
    kinds: set[str] = set()
    for device in calling:  # first one per kind, then the rest in order
        assert device.truth is not None
        if device.truth.kind not in kinds and len(picked) < n:
            picked.append(device)
            kinds.add(device.truth.kind)
    picked += [d for d in calling if d not in picked][: n - len(picked)]
    return picked


def run_evaluation(options: EvalOptions, out_dir: Path | None = None,
                   progress: Callable[[float], None] = lambda _: None) -> Evaluation:
    """Simulate, stream, match and report; write the ground truth into ``out_dir`` if given.

    ``progress`` hears the share of the simulated time streamed (0 to 1) now and then.
    """
    started = time.perf_counter()
    fleet = Fleet(options.fleet_config())
    if out_dir is not None:
        fleet.write_truth(out_dir / "ground_truth.jsonl")
    traces = {d.device_id: TimelineTrace(d.product.fields)
              for d in _pick_traced(fleet, options.trace)}
    results = run_shards(options, tuple(traces), progress)
    cases = sorted((c for r in results for c in r.cases), key=lambda c: c.noticed_at)
    samples = sum(r.samples for r in results)
    batches = sum(r.batches for r in results)
    for r in results:
        traces.update(r.traces)
    outages = {d.device_id: d.imperfections.outages for d in fleet.devices}
    result = match_cases(fleet.ground_truth, cases, fleet.config.end, outages=outages)
    elapsed = time.perf_counter() - started
    figures = report(result, devices=options.devices, days=options.days,
                     learn_days=options.learn_days, start=fleet.config.start,
                     quirk_devices=frozenset(q.device_id for q in fleet.quirks))
    figures.update(peer_report(fleet, [f for r in results for f in r.peer_flags],
                               learn_until=fleet.config.start + options.learn_days * 86_400.0,
                               detected={m.truth.device_id: m.detected_at for m in result.faults
                                         if m.detected_at is not None}))
    figures["agents_mark_false_cases"] = options.agents
    incidents = [i for r in results for i in r.incidents]
    if options.fleet_faults:
        figures.update(incident_report(
            incidents, fleet,
            {m.truth.device_id for m in result.faults if m.detected_at is not None}))
    figures.update({
        "seed": options.seed,
        "cases": len(cases),
        "samples": samples,
        "batches": batches,
        "run_time_s": round(elapsed, 2),
        "samples_per_s": round(samples / elapsed) if elapsed > 0 else None,
    })
    return Evaluation(options, fleet, cases, result, figures, traces, incidents)


def evaluate(devices: int, days: float, seed: int, **overrides: Any) -> dict[str, Any]:
    """Run one evaluation and return its report (a shortcut for scripts and benchmarks)."""
    options = dataclasses.replace(EvalOptions(devices=devices, days=days, seed=seed),
                                  **overrides)
    return run_evaluation(options).report


# -- pictures ------------------------------------------------------------------------------------
