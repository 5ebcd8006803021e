"""``forewarn rules check FILE…``: validate rules files (and a customer registry) and say what
they do; ``forewarn rules show FILE``: the rules as a table; ``forewarn rules silence …``,
``silences`` and ``unsilence ID``: silences set at run time, in the case database, seen by every
process of the deployment.

An error names the file, the line and the key; the exit code is 1 when any file is wrong.
"""

from __future__ import annotations

import argparse
import getpass
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from forewarn.casedb import add_case_db_options, open_args_case_db
from forewarn.errors import ForewarnError
from forewarn.text import paragraph, plural
from rules.errors import RuleFileError
from rules.model import RuleSet, Silence, load_rules, merge_rule_sets, parse_duration
from rules.registry import load_registry
from rules.silence import SilenceStore

__all__ = [
    "register",
    "run_check",
    "run_show",
    "run_silence",
    "run_silences",
    "run_unsilence",
]


def run_check(args: argparse.Namespace) -> int:
    """Validate every file; print what each holds or what is wrong."""
    from forewarn.rules_check import describe, known_products, rules_files, unknown_names
    from forewarn.settings import load_settings

    sets: list[RuleSet] = []
    failed = False
    files = rules_files(args.files)
    if not files:
        raise ForewarnError(f"no *.yaml rules files in {', '.join(map(str, args.files))}")
    known = known_products(load_settings(getattr(args, "config", None)).core.limits_file)
    for path in files:
        try:
            ruleset = load_rules(path)
        except RuleFileError as exc:
            print(exc)
            failed = True
            continue
        sets.append(ruleset)
        warnings = unknown_names(ruleset, known)
        print(f"{path}: {plural(len(ruleset.rules), 'rule')}, "
              f"{plural(len(ruleset.silences), 'silence')} — "
              f"{'ok' if not warnings else plural(len(warnings), 'warning')}")
        for warning in warnings:
            print(f"{path}: warning: {warning}")
        if args.verbose_rules:
            for rule in ruleset.rules:
                print(f"  {describe(rule)}")
    if len(sets) > 1 and not failed:
        try:
            merge_rule_sets(sets)
        except RuleFileError as exc:
            print(exc)
            failed = True
    customers = args.customers
    if customers is None and getattr(args, "config", None) is not None:
        from forewarn.settings import load_settings

        customers = load_settings(args.config).customers.file  # the service's registry
    if customers is not None:
        try:
            load_registry(customers)
            print(f"{customers}: ok")
        except RuleFileError as exc:
            print(exc)
            failed = True
    return 1 if failed else 0


def run_show(args: argparse.Namespace) -> int:
    """Print one line per rule."""
    from forewarn.rules_check import describe

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


def run_silence(args: argparse.Namespace) -> int:
    """Store a one-off silence from now for ``--for``."""
    if not (args.devices or args.products or args.customers):
        raise ForewarnError("say what to silence: --device, --product or --customer")
    start = datetime.now(tz=UTC)
    try:
        window = Silence(
            name=args.name, kind="silence", comment=args.comment,
            devices=tuple(args.devices) or None, products=tuple(args.products) or None,
            customers=tuple(args.customers) or None, rules=tuple(args.rules) or None,
            start=start, end=start + timedelta(seconds=parse_duration(args.duration)),
        )
    except (ValidationError, ValueError) as exc:
        raise ForewarnError(f"not a valid silence: {exc}") from exc
    engine = open_args_case_db(args)
    try:
        silence_id = SilenceStore(engine).add(window, by=args.by, now=time.time())
    finally:
        engine.dispose()
    assert window.end is not None
    print(f"silence #{silence_id} ({window.name}) until {window.end:%Y-%m-%d %H:%M %Z}")
    return 0


def run_silences(args: argparse.Namespace) -> int:
    """List the stored silences still in force."""
    engine = open_args_case_db(args)
    try:
        active = SilenceStore(engine).active(time.time())
    finally:
        engine.dispose()
    for silence_id, window in active:
        scope = "; ".join(f"{k} {','.join(v)}" for k, v in (
            ("devices", window.devices), ("products", window.products),
            ("customers", window.customers), ("rules", window.rules)) if v)
        until = f"until {window.end:%Y-%m-%d %H:%M %Z}" if window.end else window.hours
        print(f"#{silence_id} {window.name}: {scope} {until} {window.comment}".rstrip())
    if not active:
        print("no silences in force")
    return 0


def run_unsilence(args: argparse.Namespace) -> int:
    """End a stored silence early."""
    engine = open_args_case_db(args)
    try:
        removed = SilenceStore(engine).remove(args.id, now=time.time())
    finally:
        engine.dispose()
    print(f"silence #{args.id} ended" if removed else f"no silence #{args.id} in force")
    return 0 if removed else 1


def register(subparsers: Any) -> None:
    """Add the ``rules`` command."""
    parser = subparsers.add_parser(
        "rules", help="check rules files; silence devices, products or customers",
        description=paragraph(__doc__))
    sub = parser.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate rules files (exit 1 when one is wrong)")
    check.add_argument("files", type=Path, nargs="+", metavar="FILE",
                       help="rules files, or folders of them (e.g. config/rules); checked "
                       "apart and together")
    check.add_argument("--customers", type=Path, default=None, metavar="YAML",
                       help="also validate a customer registry (default with --config: "
                       "its [customers] file)")
    check.add_argument("--rules", dest="verbose_rules", action="store_true",
                       help="print what each rule does")
    check.set_defaults(func=run_check)
    show = sub.add_parser("show", help="one line per rule and window")
    show.add_argument("file", type=Path, metavar="FILE", help="a rules file")
    show.set_defaults(func=run_show)

    silence = sub.add_parser("silence", help="silence devices, products or customers for a while")
    silence.add_argument("--device", dest="devices", action="append", default=[],
                         metavar="ID", help="device id or pattern (repeatable)")
    silence.add_argument("--product", dest="products", action="append", default=[],
                         metavar="NAME", help="a product, e.g. heat_pump (repeatable)")
    silence.add_argument("--customer", dest="customers", action="append", default=[],
                         metavar="ID", help="a customer id of the registry (repeatable)")
    silence.add_argument("--rule", dest="rules", action="append", default=[],
                         help="only these rules (default: all)")
    silence.add_argument("--for", dest="duration", default="2h", help="e.g. 30m, 2h, 1d")
    silence.add_argument("--name", default="manual", help="a name ([a-z0-9_]+)")
    silence.add_argument("--comment", default="",
                         help="why (shown with 'rules silences' and in case timelines)")
    silence.add_argument("--by", default=getpass.getuser(), help="who silenced it")
    add_case_db_options(silence)
    silence.set_defaults(func=run_silence)
    listing = sub.add_parser("silences", help="silences in force")
    add_case_db_options(listing)
    listing.set_defaults(func=run_silences)
    unsilence = sub.add_parser("unsilence", help="end a silence early")
    unsilence.add_argument("id", type=int, metavar="ID",
                           help="the silence's number, as 'rules silences' lists it")
    add_case_db_options(unsilence)
    unsilence.set_defaults(func=run_unsilence)
