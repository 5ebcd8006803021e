"""``forewarn backtest --rules NEW_DIR --since 90d [--json]``: what a rules change would cost.

Replays the stored telemetry (``[store]``, the embedded SQLite file by default) of every device
the case database knows through the current rules (``[rules]``) and the rules of NEW_DIR, and
prints side by side the cases each would open, their precision and recall against the agents'
resolution labels (``confirmed`` faults), the median lead time, and the cases that would open,
close or move. Nothing is written: each replay uses a case database in memory. docs/rules.md
("Backtest") explains the measures.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forewarn.casedb import add_case_db_options
from forewarn.errors import ConfigError
from forewarn.text import paragraph

__all__ = ["register", "run"]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value / 3600:.1f} h"


def run(args: argparse.Namespace) -> int:
    """Replay both rule sets; print the comparison (or ``--json``)."""
    from core.store.config import make_store
    from core.store.embedded import EmbeddedStore
    from forewarn.backtest import backtest, newest_sample
    from forewarn.casedb import open_args_case_db
    from forewarn.settings import load_settings
    from rules.errors import RuleError
    from rules.model import load_rule_dir, load_rules, merge_rule_sets
    from rules.timeparse import parse_duration

    try:
        since = parse_duration(args.since)
    except ValueError as exc:
        raise ConfigError(f"--since {args.since}: {exc}") from exc
    if not args.rules.is_dir():
        raise ConfigError(f"--rules {args.rules}: not a folder of rules files")
    settings = load_settings(Path(args.config) if args.config else None)
    try:
        proposed = load_rule_dir(args.rules)
        current = merge_rule_sets(load_rules(p) for p in settings.rule_paths())
    except RuleError as exc:
        raise ConfigError(str(exc)) from exc
    engine = open_args_case_db(args)
    store = (EmbeddedStore(args.demo_dir / "telemetry.sqlite") if args.demo_dir is not None
             else make_store(settings.store))
    try:
        end = newest_sample(engine)
        if end is None:
            raise ConfigError("the case database has seen no telemetry yet: nothing to replay")
        report = backtest(current, proposed, store, engine, end - since, end + 1.0)
    finally:
        store.close()
        engine.dispose()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    print(f"replayed {report.devices} devices from {_when(report.start)} to {_when(report.end)}"
          f" against {report.labels} labels")
    rows: list[tuple[str, Any, Any]] = [
        ("cases", report.current.cases, report.proposed.cases),
        ("labelled cases", report.current.labelled_cases, report.proposed.labelled_cases),
        ("precision (confirmed / labelled)", _share(report.current.precision),
         _share(report.proposed.precision)),
        ("confirmed faults found", f"{report.current.confirmed_found}/"
         f"{report.current.confirmed_labels}",
         f"{report.proposed.confirmed_found}/{report.proposed.confirmed_labels}"),
        ("recall of confirmed faults", _share(report.current.recall),
         _share(report.proposed.recall)),
        ("median lead time", _hours(report.current.lead_time_median_s),
         _hours(report.proposed.lead_time_median_s)),
    ]
    print(f"{'':34} {'current':>12} {'proposed':>12}")
    for name, now, new in rows:
        print(f"{name:34} {now!s:>12} {new!s:>12}")
    for kind, verb in (("open", "would open"), ("close", "would no longer open"),
                       ("move", "would move")):
        for case in report.changes[kind]:
            shift = f" ({case['shift_s'] / 60:+.0f} min)" if kind == "move" else ""
            print(f"{verb}: {case['tenant']}/{case['device_id']} {case['rules']} "
                  f"opened {_when(case['opened_at'])}{shift}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``backtest`` command."""
    parser = subparsers.add_parser(
        "backtest", help="replay stored telemetry through current and proposed rules",
        description=paragraph(__doc__))
    parser.add_argument("--rules", type=Path, required=True, metavar="NEW_DIR",
                        help="folder of the proposed rules files (*.yaml)")
    parser.add_argument("--since", default="90d", metavar="DURATION",
                        help="replay this far back from the newest sample (default 90d)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_case_db_options(parser)
    parser.set_defaults(func=run)
