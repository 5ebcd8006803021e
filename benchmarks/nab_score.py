"""Score NAB result files: ``python benchmarks/nab_score.py RESULTS_DIR --data DIR --windows FILE``.

Prints, for each cost profile, the normalised score (0 = never fires, 100 = perfect) at the
corpus-wide threshold that maximises it. The method is the one in ``shared/nab/README.md``;
the logic lives in :mod:`benchmarks.nab_scoring`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.nab_scoring import (
    load_labels,
    load_profiles,
    load_results,
    sweep,
)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, score every profile, print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("results", type=Path, help="directory of <rel path>.csv result files")
    parser.add_argument("--data", type=Path, required=True, help="NAB data directory")
    parser.add_argument("--windows", type=Path, required=True, help="combined_windows.json")
    parser.add_argument("--profiles", type=Path, default=None,
                        help="profiles.json (default: beside the windows file's parent)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    profiles_path = args.profiles or args.windows.resolve().parent.parent / "profiles.json"
    labels = load_labels(args.data, args.windows)
    scores = load_results(args.results, sorted(labels))
    results = [sweep(labels, scores, p) for p in load_profiles(profiles_path)]
    if args.json:
        print(json.dumps({r.profile: {
            "score": round(r.normalised, 3), "threshold": r.threshold, "raw": r.raw,
            "tp": r.tp, "fp": r.fp, "fn": r.fn} for r in results}, indent=2))
    else:
        print(f"{'profile':<20} {'score':>7} {'threshold':>10} {'tp':>4} {'fp':>5} {'fn':>4}")
        for r in results:
            print(f"{r.profile:<20} {r.normalised:7.2f} {r.threshold:10.4f} "
                  f"{r.tp:4d} {r.fp:5d} {r.fn:4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
