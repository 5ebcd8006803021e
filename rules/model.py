"""Rules as YAML, validated by pydantic: an unknown key is an error naming file, line and key.

>>> rules = parse_rules('''
... rules:
...   - name: sustained_anomaly
...     score_at_least: 0.8
...     for: 10m
... ''', source="example.yaml")
>>> rules.rules[0].for_s
600.0
>>> try:
...     parse_rules("rules:\\n  - name: x\\n    scor_at_least: 0.8\\n", source="bad.yaml")
... except RuleFileError as exc:
...     print(str(exc).splitlines()[0])
bad.yaml, line 3: rules.0.scor_at_least: Extra inputs are not permitted
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rules.errors import RuleFileError

__all__ = ["Rule", "RuleSet", "load_rules", "parse_duration", "parse_rules"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | float | int) -> float:
    """Seconds from ``90``, ``"90s"``, ``"10m"``, ``"2h"`` or ``"1d"``.

    >>> parse_duration("10m"), parse_duration(30)
    (600.0, 30.0)
    """
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 2h, 1d)")
    return float(match.group(1)) * _UNIT_S[match.group(2) or "s"]


class Rule(BaseModel):
    """Open a case when a device's anomaly score stays high for a while."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str = ""
    #: the rule applies to devices of this product only (None: all products)
    product: str | None = None
    #: fields considered (None: all fields of the device)
    fields: tuple[str, ...] | None = None
    score_at_least: float = Field(gt=0.0, le=1.0)
    for_s: float = Field(alias="for", default=600.0, ge=0.0)
    severity: Literal["info", "warning", "critical"] = "warning"
    notify_customer: bool = True

    @field_validator("for_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


class RuleSet(BaseModel):
    """The contents of one rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...] = Field(min_length=1)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        names = [r.name for r in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names repeat: {', '.join(dupes)}")
        return rules


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((k for k, _ in node.value if k.value == part), None)
            if match is None:
                break
            line = match.start_mark.line + 1
            node = next(v for k, v in node.value if k is match)
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and part < len(node.value)):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Validate rules YAML text; raise :class:`RuleFileError` naming where it is wrong."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{source}: not valid YAML: {exc}") from exc
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        # an unknown key usually explains the missing one beside it (a typo): name it first
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        problems = []
        for err in errors:
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "(top level)"
            line = _line_of(root, loc)
            at = f", line {line}" if line is not None else ""
            problems.append(f"{source}{at}: {where}: {err['msg']}")
        raise RuleFileError("\n".join(problems)) from exc


def load_rules(path: Path) -> RuleSet:
    """Read and validate a rules file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(f"cannot read rules file {path}: {exc}") from exc
    return parse_rules(text, source=str(path))
