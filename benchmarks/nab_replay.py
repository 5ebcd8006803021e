"""Record NAB's per-file detector scores once, replay the onset offline: ``nab_replay.py``.

``python benchmarks/nab_replay.py [--resample K] [--half tuning] [--check]`` streams every
labelled file of ``shared/nab`` through the default detector (as :mod:`benchmarks.nab_eval`
does: blocks of 64 rows, learning over the file's probation) and keeps what each block's
:meth:`Ensemble.last_components` gave: the raw scores (level, seasonal, transition), the
likelihood, the short likelihood, the extreme records and the rule detectors. From those the
fired score ``update`` returns is rebuilt without re-running the detectors (:func:`replay`:
the onset candidate ``max(likelihood, w · short, extreme)`` through :class:`TimedOnset`, the
rules through their own onset), so an idea about *which rows fire* is measured on all files in
a second instead of a minute (docs/detection.md, fifth round). ``--check`` asserts that the
replay equals the live scores (it must, before any variant is trusted).

The listing (``--half``) prints, per file, every firing as ``row`` + the source that fired
(``L`` likelihood, ``S`` short likelihood, ``E`` extreme record, ``R`` a rule) + where it
landed (``p`` in the probation, ``T<i>`` in window ``i``, ``F`` a false positive) and its
fired score: the diagnosis the fifth round started from. Decide on the tuning half.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.nab_eval import _SHARED, _load, halves
from benchmarks.nab_scoring import (
    FileLabels,
    load_labels,
    load_profiles,
    probation_rows,
    row_weights,
    sweep,
)
from core.detect import DetectorConfig, make_detector
from core.detect.onset import Onset, TimedOnset
from forewarn.nab import BLOCK_ROWS, probation_config

__all__ = ["Recorded", "candidate", "record", "replay"]

#: the components kept per file (the inputs of the onset and of the rules' onset)
_KEPT = ("level", "seasonal", "transition", "likelihood", "likelihood_short", "extreme",
         "stuck", "dropout", "out_of_range")


@dataclass(frozen=True, slots=True)
class Recorded:
    """One file's values, times, labels, live fired scores and components."""

    values: NDArray[np.float64]
    times: NDArray[np.float64]
    labels: FileLabels
    fired: NDArray[np.float64]
    comps: dict[str, NDArray[np.float64]]


def record(values: NDArray[np.float64], times: NDArray[np.float64], labels: FileLabels,
           config: DetectorConfig) -> Recorded:
    """Stream one file through a fresh detector (over its probation) and keep the components."""
    det = make_detector(probation_config(config, probation_rows(values.shape[0])))
    slots = np.zeros(1, dtype=np.int64)
    n = values.shape[0]
    fired = np.zeros(n)
    comps = {name: np.zeros(n) for name in _KEPT}
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        fired[start:stop] = det.update(slots, values[start:stop].reshape(-1, 1),
                                       times[start:stop])[:, 0]
        got = det.last_components()
        for name in _KEPT:
            if name in got:
                comps[name][start:stop] = got[name][:, 0]
    return Recorded(values, times, labels, fired, comps)


def candidate(rec: Recorded, config: DetectorConfig) -> NDArray[np.float64]:
    """The onset's input: ``max(likelihood, short weight · short likelihood, extreme)``."""
    c = rec.comps
    return np.maximum(np.maximum(c["likelihood"],
                                 config.likelihood_short_weight * c["likelihood_short"]),
                      config.extreme_weight * c["extreme"])


def replay(rec: Recorded, config: DetectorConfig,
           cand: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """The fired scores rebuilt from ``rec``'s components (``cand``: another onset input)."""
    c = rec.comps
    onset = TimedOnset(1, config.fire, config.quiet, config.quiet_s, config.quiet_min,
                       config.onset_rank_memory, config.onset_rank_prior,
                       config.onset_rank_ceiling)
    x = candidate(rec, config) if cand is None else cand
    fired = onset.update([0], x.reshape(-1, 1), rec.times)[:, 0]
    rule = np.maximum(np.maximum(c["stuck"], c["dropout"]), c["out_of_range"])
    rule_onset = Onset(1, config.rule_fire, config.level_quiet, config.calm_scale,
                       rearm=max(config.rearm, 1))
    return np.maximum(fired, rule_onset.update([0], rule.reshape(-1, 1))[:, 0])


def _listing(rec: Recorded, config: DetectorConfig) -> str:
    c = rec.comps
    _, window_of = row_weights(rec.labels)
    probation = probation_rows(rec.labels.n_rows)
    out = []
    for i in np.flatnonzero(rec.fired > 0).tolist():
        if c["stuck"][i] + c["dropout"][i] + c["out_of_range"][i] > 0.5:
            src = "R"
        elif c["extreme"][i] >= config.fire and c["extreme"][i] >= c["likelihood"][i]:
            src = "E"
        elif config.likelihood_short_weight * c["likelihood_short"][i] >= max(
                c["likelihood"][i], config.fire):
            src = "S"
        else:
            src = "L"
        where = ("p" if i < probation else
                 f"T{window_of[i]}" if window_of[i] >= 0 else "F")
        out.append(f"{i}{src}{where}:{rec.fired[i]:.2f}")
    return " ".join(out)


def main(argv: list[str] | None = None) -> int:
    """Record, optionally check the replay, list the firings of one half and score it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=_SHARED / "data")
    parser.add_argument("--windows", type=Path,
                        default=_SHARED / "labels" / "combined_windows.json")
    parser.add_argument("--resample", type=int, default=1, metavar="K")
    parser.add_argument("--half", choices=("tuning", "held_out", "all"), default="tuning")
    parser.add_argument("--check", action="store_true",
                        help="assert that the replay equals the live scores on every file")
    args = parser.parse_args(argv)
    config = DetectorConfig()
    series, labels = _load(args.data, load_labels(args.data, args.windows), args.resample)
    recs = {rel: record(*series[rel], labels[rel], config) for rel in sorted(series)}
    if args.check:
        bad = [rel for rel, rec in recs.items() if not np.array_equal(replay(rec, config),
                                                                        rec.fired)]
        if bad:
            print(f"replay differs from the live scores: {bad}")
            return 1
        print(f"replay equals the live scores on all {len(recs)} files")
    names = halves(list(recs))[args.half]
    for rel in names:
        rec = recs[rel]
        print(f"{rel} rows {rec.labels.n_rows} probation {probation_rows(rec.labels.n_rows)}"
              f" windows {rec.labels.windows}\n    {_listing(rec, config)}")
    standard = next(p for p in load_profiles(args.windows.resolve().parent.parent /
                                             "profiles.json") if p.name == "standard")
    r = sweep({n: labels[n] for n in names}, {n: recs[n].fired for n in names}, standard)
    print(f"{args.half}: standard {r.normalised:.2f} (tp {r.tp}, fp {r.fp}, fn {r.fn})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
