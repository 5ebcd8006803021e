"""The ``--plot`` picture: every field over time, alarm episodes shaded, onsets marked, and the
anomaly score underneath.

Long files are drawn as a min–max band per pixel column (a day of 1 Hz data is 86,400 rows
for about 1,600 pixels), so a spike survives the thinning; episodes are shaded over all panels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from forewarn.score.errors import ScoreError
from forewarn.score.read import DeviceSeries
from forewarn.score.run import GENERIC_LEVEL, DeviceResult
from forewarn.text import plural

__all__ = ["plot_device"]

_BUCKETS = 1600
_MAX_FIELD_PANELS = 12


def _envelope(t: NDArray[np.float64], y: NDArray[np.float64],
              ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Bucket times, minimum and maximum of ``y`` per bucket (NaN-aware; empty buckets NaN)."""
    n = t.shape[0]
    if n <= 2 * _BUCKETS:
        return t, y, y
    edges = np.linspace(0, n, _BUCKETS + 1).astype(np.int64)
    lo = np.full(_BUCKETS, np.nan)
    hi = np.full(_BUCKETS, np.nan)
    finite = np.where(np.isfinite(y), y, np.nan)
    starts = edges[:-1]
    with np.errstate(invalid="ignore"):
        lo = np.fmin.reduceat(np.where(np.isnan(finite), np.inf, finite), starts)
        hi = np.fmax.reduceat(np.where(np.isnan(finite), -np.inf, finite), starts)
    lo[~np.isfinite(lo)] = np.nan
    hi[~np.isfinite(hi)] = np.nan
    return t[starts], lo, hi


def plot_device(series: DeviceSeries, result: DeviceResult, fields: tuple[str, ...],
                path: Path, title: str) -> None:
    """Draw one device's fields, episodes, onsets and score into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = fields[:_MAX_FIELD_PANELS]
    epoch = bool(series.t.shape[0]) and float(series.t[0]) > 1e8
    x = series.t.astype("datetime64[s]") if epoch else series.t
    height = 1.2 * len(shown) + 2.0
    fig, axes = plt.subplots(len(shown) + 1, 1, sharex=True, figsize=(16, height),
                             gridspec_kw={"height_ratios": [1.0] * len(shown) + [1.4]},
                             squeeze=False)
    panels = [ax[0] for ax in axes]
    spans = [(x[ep.start_row], x[ep.end_row]) for ep in result.episodes]
    for j, name in enumerate(shown):
        ax = panels[j]
        bt, lo, hi = _envelope(series.t, series.values[:, j])
        bx = bt.astype("datetime64[s]") if epoch else bt
        if lo is hi:
            ax.plot(bx, lo, lw=0.7, color="tab:blue")
        else:
            ax.fill_between(bx, lo, hi, color="tab:blue", lw=0.0, alpha=0.8, step="post")
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
        blamed = result.blame[result.onset] == j
        for when in x[result.onset][blamed]:
            ax.axvline(when, color="red", lw=1.0)
    score_ax = panels[-1]
    bt, _, hi = _envelope(series.t, result.anomaly_score.astype(np.float64))
    bx = bt.astype("datetime64[s]") if epoch else bt
    score_ax.fill_between(bx, 0.0, hi, color="tab:orange", lw=0.0, step="post")
    score_ax.axhline(GENERIC_LEVEL, color="grey", lw=0.6, ls="--")
    score_ax.set_ylim(0.0, 1.02)
    score_ax.set_ylabel("anomaly\nscore", rotation=0, ha="right", va="center", fontsize=8)
    score_ax.tick_params(labelsize=7)
    if result.warmup_rows and result.warmup_rows < series.t.shape[0]:
        for ax in panels:
            ax.axvspan(x[0], x[result.warmup_rows], color="grey", alpha=0.12, lw=0.0)
    for ax in panels:
        for start, stop in spans:
            ax.axvspan(start, stop, color="red", alpha=0.18, lw=0.0)
    onsets = x[result.onset]
    score_ax.plot(onsets, np.full(onsets.shape[0], 0.98), "v", color="red", ms=6)
    extra = f" (first {len(shown)} of {len(fields)} fields)" if len(shown) < len(fields) else ""
    panels[0].set_title(f"{title}{extra}: {plural(len(result.episodes), 'alarm episode')} (red), "
                        "warm-up grey, onsets ▼", fontsize=10, loc="left")
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise ScoreError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    finally:
        plt.close(fig)
