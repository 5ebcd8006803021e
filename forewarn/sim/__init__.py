"""``forewarn sim evaluate``: stream a simulated fleet through core and rules, in-process, and
measure how often the customer hears from us before they call.

::

    options.py  what to simulate and how to stream it (EvalOptions)
    stream.py   the fleet's batches through the services' core and rules pipelines, on
                simulated time
    shards.py   shares of the devices streamed in separate processes, and their progress
    match.py    the cases matched to the ground truth, which detectors and rules never see
    report.py   the figures (JSON) and the summary in words
    run.py      simulate → stream → match → report (run_evaluation, evaluate)
    plot.py     the --plots pictures
"""

from __future__ import annotations

from forewarn.sim.match import FaultMatch, MatchResult, Outcome, SimCase, match_cases
from forewarn.sim.options import EvalOptions, TimelineTrace
from forewarn.sim.plot import write_plots
from forewarn.sim.report import LABELS, print_report, report
from forewarn.sim.run import Evaluation, evaluate, run_evaluation

__all__ = [
    "LABELS",
    "EvalOptions",
    "Evaluation",
    "FaultMatch",
    "MatchResult",
    "Outcome",
    "SimCase",
    "TimelineTrace",
    "evaluate",
    "match_cases",
    "print_report",
    "report",
    "run_evaluation",
    "write_plots",
]
