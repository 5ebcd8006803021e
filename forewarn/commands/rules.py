"""``forewarn rules check FILE…``: validate rules files (and a customer registry) and say what
they do; ``forewarn rules show FILE``: the rules as a table.

An error names the file, the line and the key; the exit code is 1 when any file is wrong.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rules.errors import RuleFileError
from rules.model import Rule, RuleSet, load_rules, merge_rule_sets
from rules.registry import load_registry

__all__ = ["describe", "register", "run_check", "run_show"]


def describe(rule: Rule) -> str:
    """One line saying what a rule does."""
    if rule.is_no_data_rule:
        what = f"no data for {rule.no_data:.0f} s"
    elif rule.score_at_least is not None:
        what = f"score ≥ {rule.score_at_least} for {rule.for_s:.0f} s"
    else:
        what = f"condition tree for {rule.for_s:.0f} s"
    extras = [f"group {rule.group_name}"]
    if rule.clear is not None:
        extras.append("hysteresis")
    if rule.flapping is not None:
        extras.append(f"flapping {rule.flapping.fires}×/{rule.flapping.within:.0f} s")
    if rule.inhibited_by:
        extras.append(f"inhibited by {', '.join(rule.inhibited_by)}")
    who = "team + customer" if rule.notify_customer else "team"
    return (f"{rule.name}: {what} on {rule.product or 'any product'} → {rule.severity} case, "
            f"{who} ({'; '.join(extras)})")


def run_check(args: argparse.Namespace) -> int:
    """Validate every file; print what each holds or what is wrong."""
    sets: list[RuleSet] = []
    failed = False
    for path in args.files:
        try:
            ruleset = load_rules(path)
        except RuleFileError as exc:
            print(exc)
            failed = True
            continue
        sets.append(ruleset)
        print(f"{path}: {len(ruleset.rules)} rules, {len(ruleset.silences)} silences — ok")
        if args.verbose_rules:
            for rule in ruleset.rules:
                print(f"  {describe(rule)}")
    if len(sets) > 1 and not failed:
        try:
            merge_rule_sets(sets)
        except RuleFileError as exc:
            print(exc)
            failed = True
    if args.customers is not None:
        try:
            load_registry(args.customers)
            print(f"{args.customers}: ok")
        except RuleFileError as exc:
            print(exc)
            failed = True
    return 1 if failed else 0


def run_show(args: argparse.Namespace) -> int:
    """Print one line per rule."""
    try:
        ruleset = load_rules(args.file)
    except RuleFileError as exc:
        print(exc)
        return 1
    for rule in ruleset.rules:
        print(describe(rule))
    for window in ruleset.silences:
        when = (f"{window.start:%Y-%m-%d %H:%M %Z} – {window.end:%Y-%m-%d %H:%M %Z}"
                if window.start is not None and window.end is not None
                else f"{window.hours} {','.join(window.weekdays or ()) or 'daily'} "
                     f"({window.timezone})")
        print(f"{window.kind} {window.name}: {when}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``rules`` command."""
    parser = subparsers.add_parser(
        "rules", help="check rules files", description=__doc__.splitlines()[0] if __doc__
        else None)
    sub = parser.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate rules files (exit 1 when one is wrong)")
    check.add_argument("files", type=Path, nargs="+", metavar="FILE")
    check.add_argument("--customers", type=Path, default=None, metavar="YAML",
                       help="also validate a customer registry")
    check.add_argument("--rules", dest="verbose_rules", action="store_true",
                       help="print what each rule does")
    check.set_defaults(func=run_check)
    show = sub.add_parser("show", help="one line per rule and window")
    show.add_argument("file", type=Path, metavar="FILE")
    show.set_defaults(func=run_show)
