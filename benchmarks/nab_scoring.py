"""NAB scoring (our own implementation of the method in ``shared/nab/README.md``).

A detector's result files hold one anomaly score per row; this module turns them into the
normalised NAB score of a cost profile, sweeping one threshold over the whole corpus.

>>> import numpy as np
>>> f = FileLabels(n_rows=100, windows=[(50, 59)])
>>> scores = np.zeros(100); scores[50] = 1.0   # fires at the left edge of the only window
>>> result = sweep({"a.csv": f}, {"a.csv": scores}, Profile("standard", 1.0, 0.11, 1.0))
>>> float(round(result.normalised, 6)), result.threshold
(100.0, 1.0)
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FileLabels",
    "Profile",
    "SweepResult",
    "load_labels",
    "load_profiles",
    "load_results",
    "probation_rows",
    "row_weights",
    "scaled_sigmoid",
    "score_at",
    "sweep",
]


@dataclass(frozen=True, slots=True)
class Profile:
    """Weights of one NAB cost profile."""

    name: str
    tp: float
    fp: float
    fn: float


@dataclass(frozen=True, slots=True)
class FileLabels:
    """Rows of one file and its anomaly windows as inclusive row ranges ``(left, right)``."""

    n_rows: int
    windows: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class SweepResult:
    """Best threshold of one profile and the scores it earns."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    normalised: float
    tp: int
    fp: int
    fn: int


def scaled_sigmoid(x: float) -> float:
    """NAB's scaled sigmoid: ``2/(1+e^(5x)) − 1``, and −1 beyond x > 3."""
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probation_rows(n_rows: int) -> int:
    """Rows at the start of a file that are a learning period and never count."""
    return int(min(math.floor(0.15 * n_rows), 0.15 * 5000))


def row_weights(labels: FileLabels) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Unweighted reward of a detection at each row and the window index of each row (−1 = none).

    Inside a window the reward is the true-positive fraction σ(−(right−i+1)/w)/σ(−1); outside it
    is the (negative) false-positive fraction σ(d) with d the distance past the previous window.
    """
    n = labels.n_rows
    reward = np.empty(n, dtype=np.float64)
    window_of = np.full(n, -1, dtype=np.int64)
    max_tp = scaled_sigmoid(-1.0)
    prev_right: int | None = None
    prev_width = 0
    windows = sorted(labels.windows)
    k = 0
    i = 0
    while i < n:
        if k < len(windows) and windows[k][0] <= i <= windows[k][1]:
            left, right = windows[k]
            width = right - left + 1
            for j in range(i, right + 1):
                reward[j] = scaled_sigmoid(-(right - j + 1) / width) / max_tp
                window_of[j] = k
            prev_right, prev_width = right, width
            i = right + 1
            k += 1
            continue
        if prev_right is None:
            reward[i] = -1.0
        else:
            d = (i - prev_right) / max(prev_width - 1, 1)
            reward[i] = scaled_sigmoid(d)
        i += 1
    return reward, window_of


def sweep(
    labels: dict[str, FileLabels],
    scores: dict[str, NDArray[np.float64]],
    profile: Profile,
) -> SweepResult:
    """Choose the one corpus-wide threshold that maximises the profile's raw score.

    Every distinct score is tried as a threshold (a row detects when score ≥ threshold), in one
    pass from the highest score down: only the earliest detection of a window counts.
    """
    cand_score: list[NDArray[np.float64]] = []
    cand_gain_fp: list[NDArray[np.float64]] = []
    cand_key: list[NDArray[np.int64]] = []
    cand_tp: list[NDArray[np.float64]] = []
    n_windows = 0
    key_offset = 0
    for name, lab in labels.items():
        s = np.asarray(scores[name], dtype=np.float64)
        if s.shape[0] != lab.n_rows:
            raise ValueError(f"{name}: {s.shape[0]} scores for {lab.n_rows} rows")
        reward, window_of = row_weights(lab)
        start = probation_rows(lab.n_rows)
        idx = np.arange(start, lab.n_rows)
        s = np.nan_to_num(s[idx], nan=0.0)
        cand_score.append(s)
        in_win = window_of[idx] >= 0
        cand_gain_fp.append(np.where(in_win, 0.0, reward[idx]))
        cand_key.append(np.where(in_win, window_of[idx] + key_offset, -1))
        cand_tp.append(np.where(in_win, reward[idx], 0.0))
        n_windows += len(lab.windows)
        key_offset += len(lab.windows)
    all_s = np.concatenate(cand_score) if cand_score else np.zeros(0)
    all_fp = np.concatenate(cand_gain_fp) if cand_gain_fp else np.zeros(0)
    all_key = np.concatenate(cand_key) if cand_key else np.zeros(0, dtype=np.int64)
    all_tp = np.concatenate(cand_tp) if cand_tp else np.zeros(0)
    # within one window, a row later in the file has a smaller tp reward: the best reward seen so
    # far is the earliest detection's reward, so max() tracks "earliest detection"
    order = np.argsort(-all_s, kind="stable")
    null = -profile.fn * n_windows
    perfect = profile.tp * n_windows
    best_raw = null
    best_thr = math.inf
    best_counts = (0, 0, n_windows)
    window_best = np.full(max(key_offset, 1), -math.inf)
    raw = null
    n_tp = n_fp = 0
    m = order.shape[0]
    p = 0
    while p < m:
        thr = all_s[order[p]]
        while p < m and all_s[order[p]] == thr:
            r = order[p]
            key = all_key[r]
            if key < 0:
                raw += profile.fp * all_fp[r]
                n_fp += 1
            else:
                old = window_best[key]
                new = all_tp[r]
                if old == -math.inf:
                    raw += profile.fn + profile.tp * new
                    window_best[key] = new
                    n_tp += 1
                elif new > old:
                    raw += profile.tp * (new - old)
                    window_best[key] = new
            p += 1
        if raw > best_raw:
            best_raw, best_thr = raw, float(thr)
            best_counts = (n_tp, n_fp, n_windows - n_tp)
    span = perfect - null
    normalised = 100.0 * (best_raw - null) / span if span > 0 else 0.0
    return SweepResult(
        profile.name, best_thr, best_raw, null, perfect, normalised, *best_counts
    )


def score_at(
    labels: dict[str, FileLabels],
    scores: dict[str, NDArray[np.float64]],
    profile: Profile,
    threshold: float,
) -> SweepResult:
    """The profile's score at a given threshold (one chosen on other files), not the best one.

    >>> f = FileLabels(n_rows=100, windows=[(50, 59)])
    >>> s = np.zeros(100); s[50] = 0.4; s[80] = 0.9
    >>> p = Profile("standard", 1.0, 0.11, 1.0)
    >>> round(score_at({"a": f}, {"a": s}, p, 0.5).normalised, 2)   # only the false positive
    -5.5
    >>> round(score_at({"a": f}, {"a": s}, p, 0.3).normalised, 2)
    94.5
    """
    n_windows = sum(len(lab.windows) for lab in labels.values())
    null = -profile.fn * n_windows
    perfect = profile.tp * n_windows
    raw = null
    n_tp = n_fp = 0
    for name, lab in labels.items():
        s = np.nan_to_num(np.asarray(scores[name], dtype=np.float64), nan=0.0)
        if s.shape[0] != lab.n_rows:
            raise ValueError(f"{name}: {s.shape[0]} scores for {lab.n_rows} rows")
        reward, window_of = row_weights(lab)
        hit = np.flatnonzero(s >= threshold)
        hit = hit[hit >= probation_rows(lab.n_rows)]
        best: dict[int, float] = {}
        for r in hit.tolist():
            key = int(window_of[r])
            if key < 0:
                raw += profile.fp * float(reward[r])
                n_fp += 1
            elif key not in best:  # the earliest detection of a window is its best
                best[key] = float(reward[r])
        for value in best.values():
            raw += profile.fn + profile.tp * value
        n_tp += len(best)
    span = perfect - null
    normalised = 100.0 * (raw - null) / span if span > 0 else 0.0
    return SweepResult(profile.name, threshold, raw, null, perfect, normalised,
                       n_tp, n_fp, n_windows - n_tp)


def load_profiles(path: Path) -> list[Profile]:
    """The cost profiles of NAB's ``profiles.json``."""
    raw = json.loads(path.read_text())
    out = []
    for name, body in raw.items():
        cm = body["CostMatrix"]
        out.append(Profile(name, float(cm["tpWeight"]), float(cm["fpWeight"]),
                           float(cm["fnWeight"])))
    return out


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.strip())


def _timestamps(path: Path) -> list[datetime]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        return [_parse_ts(row[0]) for row in reader if row]


def load_labels(data_dir: Path, windows_file: Path) -> dict[str, FileLabels]:
    """Windows of every labelled file under ``data_dir``, turned into row ranges."""
    windows = json.loads(windows_file.read_text())
    out: dict[str, FileLabels] = {}
    for rel, spans in sorted(windows.items()):
        path = data_dir / rel
        if not path.exists():
            continue
        ts = np.array(_timestamps(path), dtype="datetime64[us]")
        rows = []
        for start, end in spans:
            lo = int(np.searchsorted(ts, np.datetime64(_parse_ts(start)), side="left"))
            hi = int(np.searchsorted(ts, np.datetime64(_parse_ts(end)), side="right")) - 1
            if hi >= lo:
                rows.append((lo, hi))
        out[rel] = FileLabels(int(ts.shape[0]), rows)
    return out


def load_results(results_dir: Path, names: list[str]) -> dict[str, NDArray[np.float64]]:
    """The ``anomaly_score`` column of each result file (same relative paths as the data)."""
    out: dict[str, NDArray[np.float64]] = {}
    for rel in names:
        with (results_dir / rel).open(newline="") as fh:
            reader = csv.DictReader(fh)
            out[rel] = np.array([float(row["anomaly_score"]) for row in reader])
    return out
