"""``forewarn nab DATA_DIR --out OUT_DIR``: score NAB-style CSV files as the core service would.

Writes ``OUT_DIR/<relative path>.csv`` with ``timestamp,value,anomaly_score`` for every CSV
under DATA_DIR; score them with ``benchmarks/nab_score.py``. As NAB gives every detector its
probationary period (15 % of a file's rows, at most 750), each file's likelihood stage learns
over a share of its probation: the default's 150 samples, chosen on 4,032-row files (probation
604), scaled by the file's probation over 604. ``--learn config`` runs the default's sample
counts instead, as the service does.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from forewarn.errors import ForewarnError
from forewarn.text import paragraph, plural

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    """Score every file; the exit code is 0 when at least one file was scored."""
    from forewarn.nab import run_nab  # numba compiles lazily: keep `forewarn --help` fast

    data_dir: Path = args.data_dir
    if not data_dir.is_dir():
        raise ForewarnError(f"no such directory: {data_dir}")
    n = run_nab(data_dir, args.out, progress=not args.quiet, learn=args.learn)
    if n == 0:
        raise ForewarnError(f"no CSV files under {data_dir}")
    print(f"scored {plural(n, 'file')} into {args.out}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``nab`` command to the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "nab", help="run the detector over NAB CSV files (benchmark)",
        description=paragraph(__doc__),
    )
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR",
                        help="directory of timestamp,value CSV files (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT_DIR",
                        help="where to write the scored files")
    parser.add_argument("--learn", choices=("probation", "config"), default="probation",
                        help="learning lengths: scaled to each file's NAB probation (default) "
                        "or the config's sample counts, as the service runs them")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-file progress")
    parser.set_defaults(func=run)
