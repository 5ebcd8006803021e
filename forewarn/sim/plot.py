"""The PNGs of ``forewarn sim evaluate --plots``: lead times per fault kind, device timelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forewarn.sim.run import Evaluation
from forewarn.text import plural

__all__ = ["write_plots"]

_H = 3600.0


def write_plots(evaluation: Evaluation, out_dir: Path) -> list[Path]:
    """Write the PNGs a support lead wants: lead times per fault kind, and device timelines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    start = evaluation.fleet.config.start

    kinds = sorted({m.truth.kind for m in evaluation.result.faults if m.truth.call is not None})
    if kinds:
        fig, axes = plt.subplots(len(kinds), 1, figsize=(8, 1.8 * len(kinds) + 1),
                                 sharex=True, squeeze=False)
        for ax, kind in zip(axes[:, 0], kinds, strict=True):
            ms = [m for m in evaluation.result.faults
                  if m.truth.kind == kind and m.truth.call is not None]
            leads = [(m.truth.call - m.notified_at) / _H for m in ms
                     if m.notified_at is not None and m.truth.call is not None]
            missed = sum(m.notified_at is None for m in ms)
            if leads:  # two-hour bins shared by every kind, so the bars compare
                edges = np.arange(np.floor(min(min(leads), 0.0) / 2) * 2,
                                  max(max(leads), 0.0) + 4.0, 2.0)
                ax.hist(leads, bins=edges, color="tab:green", alpha=0.8)
            ax.axvline(0.0, color="tab:red", lw=1)
            ax.set_ylabel(kind.replace("_", "\n"), rotation=0, ha="right", fontsize=8)
            ax.text(0.99, 0.8, f"{len(leads)} notified, {missed} not", ha="right",
                    transform=ax.transAxes, fontsize=8)
        axes[-1, 0].set_xlabel("hours from customer notice to the customer's call "
                               "(right of the red line: we were first)")
        fig.suptitle(f"Lead time before the call, per fault kind "
                     f"(seed {evaluation.options.seed}, "
                     f"{plural(evaluation.options.devices, 'device')}, "
                     f"{evaluation.options.days:g} days)")
        fig.tight_layout()
        path = out_dir / "lead_time_by_fault.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    by_device = {m.truth.device_id: m for m in evaluation.result.faults}
    for device_id, trace in evaluation.traces.items():
        if not trace.t:
            continue
        t = np.concatenate(trace.t)
        order = np.argsort(t, kind="stable")
        hours = (t[order] - start) / _H
        values = np.vstack(trace.values)[order]
        match = by_device.get(device_id)
        fig, axes = plt.subplots(len(trace.fields), 1, figsize=(11, 1.4 * len(trace.fields) + 1),
                                 sharex=True, squeeze=False)
        marks: list[tuple[str, float | None, str]] = []
        if match is not None:
            truth = match.truth
            marks = [("onset", truth.onset, "grey"), ("visible", truth.visible, "tab:orange"),
                     ("case opened", match.detected_at, "tab:blue"),
                     ("customer notice", match.notified_at, "tab:green"),
                     ("call", truth.call, "tab:red")]
        for ax, j in zip(axes[:, 0], range(len(trace.fields)), strict=True):
            ax.plot(hours, values[:, j], lw=0.5, color="black")
            ax.set_ylabel(trace.fields[j], rotation=0, ha="right", fontsize=8)
            for label, at, colour in marks:
                if at is not None:
                    ax.axvline((at - start) / _H, color=colour, lw=1.2, ls="--", label=label)
        if marks:
            axes[0, 0].legend(loc="upper left", fontsize=7, ncol=5)
        axes[-1, 0].set_xlabel("hours since the start of the run")
        title = device_id
        if match is not None:
            lead = ("" if match.lead_time_s is None
                    else f", notified {match.lead_time_s / _H:.1f} h before the call")
            title += f": {match.truth.kind} ({match.outcome.replace('_', ' ')}{lead})"
        fig.suptitle(title)
        fig.tight_layout()
        path = out_dir / f"timeline_{device_id}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
