"""NAB on fixed halves and by category: ``python benchmarks/nab_eval.py [--reference] [--json]``.

Streams every labelled file of ``shared/nab`` through :func:`forewarn.nab.score_series` (what
``forewarn nab`` runs: a fresh ``make_detector(DetectorConfig())`` per file, blocks of 64 rows
with their timestamps, learning lengths scaled to the file's NAB probation; ``--learn config``:
the config's sample counts, as the service runs them) and scores the results with
:mod:`benchmarks.nab_scoring` (NAB's standard, low-FP and low-FN profiles, one corpus-wide
threshold per set).

**The halves.** The labelled files' relative paths (``realKnownCause/nyc_taxi.csv``...),
sorted as strings, are numbered from 0: *tuning* = even numbers, *held-out* = odd numbers.
Every constant chosen by looking at NAB figures is chosen on the tuning half; the held-out
half is only measured. The report gives the tuning half, the held-out half and all files,
each with its own threshold (as NAB chooses one per corpus).

**Leave one category out** (``loco``, the stronger estimate): the four folders
(``artificialNoAnomaly``, ``artificialWithAnomaly``, ``realAWSCloudwatch``, ``realKnownCause``)
are four folds. For each, the corpus threshold is chosen on the other three folders and the
held-out folder is scored at it, as the unseen NAB categories are scored at a threshold they did
not choose. The report gives each fold (with its own best threshold beside it, ``own``), the
folds' mean, the worst fold and the pooled score (all folds' raw scores summed, normalised). With
``--candidates FILE`` (a JSON object ``{"name": {config overrides}, ...}``) the fold also picks
the configuration: the candidate with the best standard score on the other three folders is the
one scored on the held-out folder (``loco_selected``), so the estimate includes the choice.

**Resampled** (``--resample K``, a stress test): every file averaged over blocks of ``K`` rows
(5-minute files become ``5·K``-minute ones, ``K`` times shorter; windows keep their time span,
files left with fewer than 1,000 rows are dropped). The unseen NAB categories are sampled
differently (hourly, irregular) and are shorter than most of the 35 files, so constants that
only hold at 5 minutes and 4,032 rows show here. Halves and folds are reported as above.

**Quiet jitter** (``--jitter``): the default scored again with its onset quiet period
(``quiet`` and ``quiet_s``) 15 % and 7.5 % shorter and longer. NAB scores a detector that
fires once per anomaly by where its quiet periods happen to end, so a figure that holds only
at one exact quiet is luck;
the report gives the standard score of each set at each quiet and their mean.

**Firing AUC** (``auc`` per set): do the fired scores rank? Every non-zero score after a file's
probation is a firing; it is a true one inside a window and a false one outside. The AUC is the
chance that a random true firing scores above a random false one (ties count ½): 0.5 means the
score carries no ranking and NAB's threshold can only keep every firing or drop good ones.

``--reference`` scores :meth:`DetectorConfig.nab_reference` (the earlier single-series tuning,
chosen on all 35 files) beside the default, on the same halves.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.nab_scoring import (
    FileLabels,
    Profile,
    load_labels,
    load_profiles,
    probation_rows,
    row_weights,
    score_at,
    sweep,
)
from core.detect import DetectorConfig
from forewarn.nab import LEARN_RULES, _read, score_series

__all__ = ["categories", "firing_auc", "halves", "leave_one_category_out", "main", "resample"]

#: ``--jitter``: the quiet periods scored, as factors of the configured one
_JITTER = (0.85, 0.925, 1.0, 1.075, 1.15)

#: files shorter than this after ``--resample`` are dropped (the detectors warm up 300 rows)
_MIN_ROWS = 1000

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "nab"


def halves(names: list[str]) -> dict[str, list[str]]:
    """The fixed split: sorted relative paths, even index = tuning, odd = held-out."""
    ordered = sorted(names)
    return {"tuning": ordered[0::2], "held_out": ordered[1::2], "all": ordered}


def categories(names: list[str]) -> dict[str, list[str]]:
    """Files by their folder (NAB's category), sorted.

    >>> categories(["b/x.csv", "a/y.csv", "a/x.csv"])
    {'a': ['a/x.csv', 'a/y.csv'], 'b': ['b/x.csv']}
    """
    out: dict[str, list[str]] = {}
    for rel in sorted(names):
        out.setdefault(rel.split("/", 1)[0], []).append(rel)
    return dict(sorted(out.items()))


def firing_auc(labels: dict[str, FileLabels],
               scores: dict[str, NDArray[np.float64]]) -> float | None:
    """AUC of the fired scores of true (in a window) against false firings, after probation.

    None when either kind is missing.

    >>> lab = {"a": FileLabels(100, [(50, 59)])}
    >>> s = np.zeros(100); s[52] = 0.9; s[80] = 0.3; s[90] = 0.9
    >>> firing_auc(lab, {"a": s})                               # above one, tied with the other
    0.75
    """
    true: list[float] = []
    false: list[float] = []
    for name, lab in labels.items():
        s = np.nan_to_num(np.asarray(scores[name], dtype=np.float64), nan=0.0)
        _, window_of = row_weights(lab)
        rows = np.flatnonzero(s > 0.0)
        for r in rows[rows >= probation_rows(lab.n_rows)].tolist():
            (true if window_of[r] >= 0 else false).append(float(s[r]))
    if not true or not false:
        return None
    t, f = np.array(true)[:, None], np.array(false)[None, :]
    return round(float(((t > f).sum() + 0.5 * (t == f).sum()) / (t.size * f.size)), 3)


def leave_one_category_out(
    labels: dict[str, FileLabels], scores: dict[str, dict[str, NDArray[np.float64]]],
    profile: Profile,
) -> dict[str, object]:
    """Each category scored at the threshold (and config) chosen on the other categories.

    ``scores`` maps a candidate configuration's name to its scores of every file; with more than
    one candidate each fold picks the one with the best score on its training categories.
    """
    folds: dict[str, dict[str, object]] = {}
    raw = null = perfect = 0.0
    for cat, held in categories(list(labels)).items():
        train = {n: lab for n, lab in labels.items() if n not in held}
        test = {n: labels[n] for n in held}
        fits = {c: sweep(train, s, profile) for c, s in scores.items()}
        chosen = max(fits, key=lambda c: fits[c].normalised)
        r = score_at(test, scores[chosen], profile, fits[chosen].threshold)
        own = sweep(test, scores[chosen], profile)
        windows = r.perfect > r.null  # a folder without anomalies has no score of its own
        folds[cat] = {"files": len(held), "config": chosen,
                      "train": round(fits[chosen].normalised, 2),
                      "threshold": round(r.threshold, 4),
                      "score": round(r.normalised, 2) if windows else None,
                      "tp": r.tp, "fp": r.fp, "fn": r.fn,
                      "own": round(own.normalised, 2) if windows else None}
        raw, null, perfect = raw + r.raw, null + r.null, perfect + r.perfect
    fold_scores = [float(f["score"]) for f in folds.values()  # type: ignore[arg-type]
                   if f["score"] is not None]
    # mean and worst over the folders with anomalies; pooled counts every false positive
    return {"folds": folds, "mean": round(float(np.mean(fold_scores)), 2),
            "worst": round(min(fold_scores), 2),
            "pooled": round(100.0 * (raw - null) / (perfect - null), 2)}


def resample(values: NDArray[np.float64], times: NDArray[np.float64], labels: FileLabels,
             k: int) -> tuple[NDArray[np.float64], NDArray[np.float64], FileLabels]:
    """One file averaged over blocks of ``k`` rows (each block at its first time).

    >>> v, t, lab = resample(np.arange(10.0), np.arange(10.0), FileLabels(10, [(4, 7)]), 3)
    >>> v.tolist(), t.tolist(), lab
    ([1.0, 4.0, 7.0], [0.0, 3.0, 6.0], FileLabels(n_rows=3, windows=[(1, 2)]))
    """
    m = values.shape[0] // k
    v = values[:m * k].reshape(m, k).mean(axis=1)
    windows = [(lo // k, min(hi // k, m - 1)) for lo, hi in labels.windows if lo // k < m]
    return v, times[:m * k:k].copy(), FileLabels(m, windows)


def _load(data: Path, labels: dict[str, FileLabels], k: int) -> tuple[
        dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]], dict[str, FileLabels]]:
    series: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    out: dict[str, FileLabels] = {}
    for rel, lab in labels.items():
        _, values, times = _read(data / rel)
        if k > 1:
            values, times, lab = resample(values, times, lab, k)
            if lab.n_rows < _MIN_ROWS:
                continue
        series[rel], out[rel] = (values, times), lab
    return series, out


def _scores(series: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]],
            names: list[str], config: DetectorConfig,
            by_probation: bool) -> dict[str, NDArray[np.float64]]:
    # a resampled file's probation is that of its own (shorter) length, as NAB would give it
    return {rel: score_series(*series[rel], config,
                              probation_rows(series[rel][0].shape[0]) if by_probation else None)
            for rel in names}


def main(argv: list[str] | None = None) -> int:
    """Score the halves and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=_SHARED / "data")
    parser.add_argument("--windows", type=Path, default=_SHARED / "labels" /
                        "combined_windows.json")
    parser.add_argument("--reference", action="store_true",
                        help="also score DetectorConfig.nab_reference()")
    parser.add_argument("--half", choices=("tuning", "held_out", "all"), default="all",
                        help="score only the files of this half (default: all, reported per half)")
    parser.add_argument("--config", type=Path, default=None,
                        help="detector config over the defaults (TOML/JSON, as forewarn score "
                        "--config): for tuning on --half tuning")
    parser.add_argument("--candidates", type=Path, default=None,
                        help="JSON {name: {overrides}}: leave-one-category-out also picks one")
    parser.add_argument("--resample", type=int, default=1, metavar="K",
                        help="average every file over blocks of K rows first (stress test)")
    parser.add_argument("--jitter", action="store_true",
                        help="also score the default at quiet x 0.85 ... 1.15 (luck check)")
    parser.add_argument("--learn", choices=LEARN_RULES, default="probation",
                        help="learning lengths scaled to each file's NAB probation (forewarn "
                        "nab's default) or the config's sample counts (the service's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    by_probation = args.learn == "probation"
    series, labels = _load(args.data, load_labels(args.data, args.windows), args.resample)
    profiles = load_profiles(args.windows.resolve().parent.parent / "profiles.json")
    sets = halves(list(labels))
    run = sets[args.half]
    from forewarn.score import load_detector_config

    configs = {"default": load_detector_config(args.config)}
    if args.reference:
        configs["nab_reference"] = DetectorConfig.nab_reference()
    standard = next(p for p in profiles if p.name == "standard")
    report: dict[str, dict[str, dict[str, object]]] = {}
    for cname, config in configs.items():
        started = time.process_time()
        scores = _scores(series, run, config, by_probation)
        report[cname] = {}
        if args.half == "all":
            report[cname]["loco"] = leave_one_category_out(labels, {cname: scores}, standard)
        for sname, names in sets.items():
            if not set(names) <= set(run):
                continue
            subset: dict[str, FileLabels] = {n: labels[n] for n in names}
            report[cname][sname] = {"files": len(names), "auc": firing_auc(subset, scores)}
            for profile in profiles:
                r = sweep(subset, scores, profile)
                report[cname][sname][r.profile] = {
                    "score": round(r.normalised, 2), "threshold": round(r.threshold, 4),
                    "tp": r.tp, "fp": r.fp, "fn": r.fn}
        report[cname]["cpu_s"] = {"all": round(time.process_time() - started, 1)}
    if args.candidates is not None and args.half == "all":
        base = configs["default"].model_dump()
        cands: dict[str, dict[str, NDArray[np.float64]]] = {
            name: _scores(series, run, DetectorConfig.model_validate({**base, **over}),
                          by_probation)
            for name, over in json.loads(args.candidates.read_text()).items()}
        cands.setdefault("default", _scores(series, run, configs["default"], by_probation))
        report["candidates"] = {"loco_selected": leave_one_category_out(labels, cands, standard)}
    if args.jitter and args.half == "all":
        jitter = _jitter(series, labels, sets, configs["default"], standard, by_probation)
        report["jitter"] = {key: dict(row) for key, row in jitter.items()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'config':<14} {'half':<9} {'files':>5} {'standard':>9} {'low_FP':>7} {'low_FN':>7}"
          f" {'thr':>7} {'tp':>4} {'fp':>4} {'fn':>4} {'auc':>6}")
    for cname, per_set in report.items():
        for sname, row in per_set.items():
            if sname in ("cpu_s", "loco", "loco_selected") or cname == "jitter":
                continue
            std: dict[str, object] = row["standard"]  # type: ignore[assignment]
            low_fp: dict[str, object] = row["reward_low_FP_rate"]  # type: ignore[assignment]
            low_fn: dict[str, object] = row["reward_low_FN_rate"]  # type: ignore[assignment]
            print(f"{cname:<14} {sname:<9} {row['files']:>5} {std['score']:>9} "
                  f"{low_fp['score']:>7} {low_fn['score']:>7} {std['threshold']:>7} "
                  f"{std['tp']:>4} {std['fp']:>4} {std['fn']:>4} {row['auc']!s:>6}")
    for cname, per_set in report.items():
        for key in ("loco", "loco_selected"):
            if key in per_set:
                _print_loco(f"{cname} {key}", per_set[key])
    if "jitter" in report:
        print("\ndefault, quiet jittered (standard score per set; loco = pooled)")
        for key, row in report["jitter"].items():
            print(f"{key:<10} " + " ".join(f"{k}={v}" for k, v in row.items()))
    return 0


def _jitter(series: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]],
            labels: dict[str, FileLabels], sets: dict[str, list[str]], config: DetectorConfig,
            profile: Profile, by_probation: bool) -> dict[str, dict[str, float]]:
    """Standard score of each set and the pooled fold score at each jittered quiet period."""
    out: dict[str, dict[str, float]] = {}
    for factor in _JITTER:
        quiet = round(config.quiet * factor)
        # a timed quiet period (quiet_s) is jittered by the same factor
        jittered = config.model_copy(update={"quiet": quiet, "quiet_s": config.quiet_s * factor})
        scores = _scores(series, sets["all"], jittered, by_probation)
        row = {name: round(sweep({n: labels[n] for n in names}, scores, profile).normalised, 2)
               for name, names in sets.items()}
        pooled = leave_one_category_out(labels, {"q": scores}, profile)["pooled"]
        row["loco"] = float(pooled)  # type: ignore[arg-type]
        out[f"quiet={quiet}"] = row
    out["mean"] = {key: round(float(np.mean([r[key] for r in out.values()])), 2)
                   for key in ("tuning", "held_out", "all", "loco")}
    return out


def _print_loco(title: str, loco: dict[str, object]) -> None:
    print(f"\n{title} (standard; threshold and config chosen on the other categories)")
    print(f"{'held-out category':<24} {'files':>5} {'score':>7} {'own':>7} {'train':>7} {'thr':>7}"
          f" {'tp':>4} {'fp':>4} {'fn':>4}  config")
    folds: dict[str, dict[str, object]] = loco["folds"]  # type: ignore[assignment]
    for cat, f in folds.items():
        dash = {k: "-" if f[k] is None else f[k] for k in ("score", "own")}
        print(f"{cat:<24} {f['files']:>5} {dash['score']:>7} {dash['own']:>7} "
              f"{f['train']:>7} "
              f"{f['threshold']:>7} {f['tp']:>4} {f['fp']:>4} {f['fn']:>4}  {f['config']}")
    print(f"mean {loco['mean']}, worst {loco['worst']}, pooled {loco['pooled']}")


if __name__ == "__main__":
    sys.exit(main())
