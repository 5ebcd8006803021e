"""Rules as YAML, validated by pydantic: an unknown key is an error naming file, line and key.

A rules file has ``rules`` (each with a condition, ``for``, a ``clear`` condition, ``no_data``,
``flapping``, a ``group`` and ``inhibited_by``), optional ``silences`` (one-off or recurring
maintenance windows) and an optional ``cases`` policy (escalation, reopen, quiet hours, budget).
``docs/rules.md`` explains every key; ``config/rules/*.yaml`` are commented examples.

>>> rules = parse_rules('''
... rules:
...   - name: sustained_anomaly
...     score_at_least: 0.8
...     for: 10m
... ''', source="example.yaml")
>>> rules.rules[0].for_s
600.0
>>> try:
...     parse_rules("rules:\\n  - name: x\\n    scor_at_least: 0.8\\n", source="b.yml")
... except RuleFileError as exc:
...     print(str(exc).splitlines()[0].replace("Extra inputs are not permitted", "extra"))
b.yml, line 3: rules.0.scor_at_least: extra (did you mean `score_at_least`?)
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from edge.problems import place
from rules.conditions import Condition, ScoreTest
from rules.errors import RuleFileError
from rules.registry import DeviceMeta
from rules.timeparse import (
    WEEKDAYS,
    DailyHours,
    Duration,
    QuietHours,
    local_clock,
    parse_duration,
    zone,
)

__all__ = [
    "CasePolicy",
    "Flapping",
    "Rule",
    "RuleSet",
    "Silence",
    "describe_errors",
    "load_rule_dir",
    "load_rules",
    "merge_rule_sets",
    "parse_duration",
    "parse_rules",
    "yaml_problem",
]

Severity = Literal["info", "warning", "critical"]
_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Flapping(BaseModel):
    """An alarm that fired ``fires`` times ``within`` a while is flapping: it stays firing (one
    case, no new notices) until it has been quiet for ``within``."""

    model_config = _STRICT

    fires: int = Field(default=3, ge=2)
    within: Duration = 3600.0


class Rule(BaseModel):
    """When to raise an alarm for a device, and when it is over."""

    model_config = _STRICT

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str = ""
    #: the rule applies to devices of this product only (None: all products)
    product: str | None = None
    #: fields considered by score tests and events (None: all fields of the device)
    fields: tuple[str, ...] | None = None
    #: shorthand for ``when: {score: {at_least: X}}``
    score_at_least: float | None = Field(default=None, gt=0.0, le=1.0)
    #: the condition tree (see :mod:`rules.conditions`)
    when: Condition | None = None
    #: when the alarm counts as recovering (default: ``when`` is false); a clear condition
    #: stricter than ``not when`` gives hysteresis
    clear: Condition | None = None
    #: the condition must hold this long before the alarm fires
    for_s: Duration = Field(default=600.0, alias="for")
    #: after recovering this long, the alarm resolves (and the case auto-resolves)
    resolve_after: Duration = 1800.0
    #: a device silent this long is "no data" (without ``when``: the rule *is* a no-data alarm)
    no_data: Duration | None = None
    #: the device's agent has been offline this long without saying goodbye (its last will:
    #: the connection was lost); without ``when`` the rule *is* an offline alarm, which
    #: resolves when the device is back online (``rules.lifecycle``)
    offline: Duration | None = None
    flapping: Flapping | None = None
    severity: Severity = "warning"
    notify_customer: bool = True
    #: rules of one device with the same group share one case (default: the rule's name)
    group: str | None = Field(default=None, pattern=r"^[a-z0-9_]+$")
    #: while one of these rules fires (or has no data) for the device, this rule opens no case
    inhibited_by: tuple[str, ...] = ()
    #: not acknowledged this long → severity one step up and a team notice (None: the policy's)
    escalate_after: Duration | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> Rule:
        if self.score_at_least is not None and self.when is not None:
            raise ValueError("give either 'score_at_least' or 'when', not both")
        if self.score_at_least is None and self.when is None and self.no_data is None \
                and self.offline is None:
            raise ValueError("a rule needs 'score_at_least', 'when', 'no_data' or 'offline'")
        return self

    @property
    def condition(self) -> Condition | None:
        """The firing condition (None for a pure no-data rule)."""
        if self.when is not None:
            return self.when
        if self.score_at_least is not None:
            return Condition(score=ScoreTest(at_least=self.score_at_least))
        return None

    @property
    def group_name(self) -> str:
        """The case group this rule's alarms fall into."""
        return self.group or self.name

    @property
    def is_no_data_rule(self) -> bool:
        """True when the rule fires on silence alone."""
        return self.condition is None and self.offline is None

    @property
    def is_offline_rule(self) -> bool:
        """True when the rule fires on the device being offline (its last will) alone."""
        return self.condition is None and self.offline is not None


class Silence(BaseModel):
    """A silence or maintenance window: matching alarms open no case and send no notice.

    One-off with ``start``/``end`` (ISO 8601), or recurring with ``hours`` (and ``weekdays``) in
    ``timezone`` (``device``: the device's own).
    """

    model_config = _STRICT

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    kind: Literal["silence", "maintenance"] = "maintenance"
    comment: str = ""
    devices: tuple[str, ...] | None = None
    products: tuple[str, ...] | None = None
    customers: tuple[str, ...] | None = None
    rules: tuple[str, ...] | None = None
    start: datetime | None = None
    end: datetime | None = None
    hours: str | None = None
    weekdays: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] | None = None
    timezone: str = "device"

    @model_validator(mode="after")
    def _a_window(self) -> Silence:
        one_off = self.start is not None or self.end is not None
        if one_off and (self.start is None or self.end is None):
            raise ValueError("a one-off window needs both 'start' and 'end'")
        if one_off and self.hours is not None:
            raise ValueError("give 'start'/'end' (one-off) or 'hours' (recurring), not both")
        if not one_off and self.hours is None:
            raise ValueError("a window needs 'start' and 'end', or recurring 'hours'")
        for stamp in (self.start, self.end):
            if stamp is not None and stamp.tzinfo is None:
                raise ValueError("write window times with a zone, e.g. 2026-12-01T02:00:00Z")
        if self.hours is not None:
            DailyHours.parse(self.hours)
        if self.timezone != "device":
            zone(self.timezone)
        return self

    def covers(self, rule: str, meta: DeviceMeta, ts: float) -> bool:
        """Whether an alarm of ``rule`` on the device at ``ts`` falls in this window."""
        for patterns, actual in ((self.devices, meta.device_id), (self.products, meta.product),
                                 (self.customers, meta.customer_id), (self.rules, rule)):
            if patterns is not None and not any(fnmatch.fnmatchcase(actual, p)
                                                for p in patterns):
                return False
        if self.start is not None and self.end is not None:
            return self.start.timestamp() <= ts < self.end.timestamp()
        import numpy as np

        tz = meta.timezone if self.timezone == "device" else self.timezone
        minutes, weekday = local_clock(np.array([ts]), tz)
        assert self.hours is not None
        hours = DailyHours.parse(self.hours)
        if not hours.contains(int(minutes[0])):
            return False
        if self.weekdays is None:
            return True
        # a window past midnight belongs to the day it started on
        day = int(weekday[0])
        if hours.start_min > hours.end_min and int(minutes[0]) < hours.end_min:
            day = (day - 1) % 7
        return WEEKDAYS[day] in self.weekdays


class CasePolicy(BaseModel):
    """How cases and customer notices behave (one per rules file; merged files keep the first)."""

    model_config = _STRICT

    #: not acknowledged this long → one severity step up and a team notice
    escalate_after: Duration = 4 * 3600.0
    #: a fault returning this soon after its case resolved reopens that case
    reopen_within: Duration = 2 * 86400.0
    #: customer notices per customer and day (rolling 24 h); 0 turns customer notices off
    customer_notices_per_day: int = Field(default=3, ge=0)
    #: customer notices wait out these hours in the customer's time zone (team cases do not);
    #: None: only customers whose registry entry (or its defaults) names quiet hours
    quiet_hours: QuietHours | None = None


class RuleSet(BaseModel):
    """The contents of one rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...] = Field(min_length=1)
    silences: tuple[Silence, ...] = ()
    cases: CasePolicy = Field(default_factory=CasePolicy)
    #: product → the fault categories an agent picks from when confirming a case of it
    #: (``forewarn`` resolution codes, docs/rules.md "Resolution codes")
    fault_categories: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        names = [r.name for r in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names repeat: {', '.join(dupes)}")
        known = set(names)
        for rule in rules:
            missing = [n for n in rule.inhibited_by if n not in known]
            if missing:
                raise ValueError(f"rule {rule.name} is inhibited_by unknown rules: "
                                 f"{', '.join(missing)}")
        return rules

    @field_validator("fault_categories")
    @classmethod
    def _category_names(cls, categories: dict[str, tuple[str, ...]]
                        ) -> dict[str, tuple[str, ...]]:
        for product, names in categories.items():
            bad = [n for n in names if not re.fullmatch(r"[a-z0-9_]+", n)]
            if bad:
                raise ValueError(f"fault categories of {product} must be lower_snake_case: "
                                 f"{', '.join(bad)}")
        return categories


def _merged_categories(sets: list[RuleSet]) -> dict[str, tuple[str, ...]]:
    """Every file's fault categories per product, first mention first, none twice."""
    merged: dict[str, list[str]] = {}
    for ruleset in sets:
        for product, names in ruleset.fault_categories.items():
            known = merged.setdefault(product, [])
            known.extend(n for n in names if n not in known)
    return {p: tuple(n) for p, n in merged.items()}


def merge_rule_sets(sets: Iterable[RuleSet]) -> RuleSet:
    """One rule set from several files: all rules and silences, the first file's case policy."""
    sets = list(sets)
    if not sets:
        raise RuleFileError("no rules files to merge")
    try:
        return RuleSet(rules=tuple(r for s in sets for r in s.rules),
                       silences=tuple(w for s in sets for w in s.silences),
                       cases=sets[0].cases,
                       fault_categories=_merged_categories(sets))
    except ValidationError as exc:
        raise RuleFileError(f"rules files do not fit together: {exc}") from exc


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((k for k, _ in node.value if k.value == part), None)
            if match is None:
                continue  # pydantic adds union/model names to loc: skip what is not a key
            line = match.start_mark.line + 1
            node = next(v for k, v in node.value if k is match)
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and part < len(node.value)):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            continue
    return line


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's type holds (``tuple[Rule, ...]``, ``Condition | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _keys_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> set[str]:
    """The keys a file may write where ``loc`` points (aliases as written: ``for``, ``all``)."""
    models = [model]
    for part in loc:
        found = [m for current in models for name, info in current.model_fields.items()
                 if part in (name, info.alias) for m in _models_in(info.annotation)]
        if found:
            models = found  # list indexes and union member names in loc are skipped
    return {info.alias or name for m in models for name, info in m.model_fields.items()}


def describe_errors(exc: ValidationError, root: yaml.Node | None, source: str,
                    model: type[BaseModel] | None = None) -> str:
    """One line per problem: ``file, line N: dotted.key: message`` (typos first, with the
    known key they are closest to when ``model`` is given).

    A list whose items all failed also reports that it is too short: that line says nothing
    the item errors do not, and is left out.
    """
    errors = exc.errors()
    locs = [tuple(e["loc"]) for e in errors]
    errors = [e for e in errors if not (
        e["type"] == "too_short"
        and any(len(other) > len(e["loc"]) and other[:len(e["loc"])] == tuple(e["loc"])
                for other in locs))]
    # an unknown key usually explains the missing one beside it (a typo): name it first
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    problems = []
    for err in errors:
        loc = tuple(err["loc"])
        where = place(loc, root="(top level)")
        line = _line_of(root, loc)
        at = f", line {line}" if line is not None else ""
        hint = ""
        if err["type"] == "extra_forbidden" and model is not None and loc:
            close = difflib.get_close_matches(str(loc[-1]), sorted(_keys_at(model, loc[:-1])),
                                              n=1, cutoff=0.6)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
        problems.append(f"{source}{at}: {where}: {err['msg']}{hint}")
    return "\n".join(problems)


def yaml_problem(exc: yaml.YAMLError, source: str) -> str:
    """A YAML syntax error in one line naming ``source`` and the line (not ``<unicode string>``).

    >>> try:
    ...     yaml.safe_load("rules:\\n  - name: a\\n   product: x\\n")
    ... except yaml.YAMLError as exc:
    ...     print(yaml_problem(exc, "hp.yaml")[:63])
    hp.yaml, line 3, column 4: not valid YAML: expected <block end>
    """
    mark = getattr(exc, "problem_mark", None)
    at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{source}{at}: not valid YAML: {problem}"


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Validate rules YAML text; raise :class:`RuleFileError` naming where it is wrong."""
    try:
        data: Any = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(yaml_problem(exc, source)) from exc
    if data is None:
        raise RuleFileError(f"{source}: empty rules file (it needs a 'rules:' list; see "
                            "docs/rules.md)")
    if not isinstance(data, dict):
        raise RuleFileError(f"{source}: expected keys such as 'rules:', found a "
                            f"{type(data).__name__}")
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RuleFileError(describe_errors(exc, root, source, RuleSet)) from exc


def load_rules(path: Path) -> RuleSet:
    """Read and validate a rules file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(f"cannot read rules file {path}: {exc}") from exc
    return parse_rules(text, source=str(path))


def load_rule_dir(rules_dir: Path) -> RuleSet:
    """Every ``*.yaml`` file of ``rules_dir`` as one rule set (see :func:`merge_rule_sets`)."""
    paths = sorted(rules_dir.glob("*.yaml"))
    if not paths:
        raise RuleFileError(f"no *.yaml rules files in {rules_dir}")
    return merge_rule_sets(load_rules(p) for p in paths)
