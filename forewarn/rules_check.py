"""What ``forewarn rules check`` adds to validation: the products and fields rules name,
checked against the known products, and folders of rules files; and a rule in one line
(:func:`describe`, for ``rules check -v`` and ``rules show``).

Known products are the simulator's (``firmware_sim/products``) and the product limits'
(``[core] limits_file``). A product or field outside them is a warning, not an error (a
deployment may have products of its own), with the closest known name.

>>> from rules.model import parse_rules
>>> rules = parse_rules("rules:\\n  - name: hot\\n    product: heat_pmup\\n"
...                     "    fields: [discharge_tmp]\\n    score_at_least: 0.9\\n    for: 10m\\n")
>>> for line in unknown_names(rules, known_products()):
...     print(line)
rule hot: product 'heat_pmup' is not a known product (did you mean 'heat_pump'?)
rule hot: field 'discharge_tmp' is no field of any known product (did you mean 'discharge_temp'?)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from firmware_sim.products import PRODUCTS
from rules.model import Rule, RuleSet

__all__ = ["describe", "known_products", "rules_files", "unknown_names"]

_PRODUCT_KEYS = ("product", "products")
_FIELD_KEYS = ("field", "fields")


def known_products(limits_file: Path | None = None) -> dict[str, set[str]]:
    """Product name → its field names: the simulator's products and the limits file's."""
    known = {name: set(product.fields) for name, product in PRODUCTS.items()}
    if limits_file is not None and limits_file.is_file():
        from core.limits import load_limits

        for name, fields in load_limits(limits_file).root.items():
            known.setdefault(name, set()).update(fields)
    return known


def rules_files(paths: list[Path]) -> list[Path]:
    """The files to check: each file given, and the ``*.yaml``/``*.yml`` files of a folder."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.iterdir()
                          if p.is_file() and p.suffix in (".yaml", ".yml"))
        else:
            out.append(path)
    return out


def _names(node: Any, keys: tuple[str, ...]) -> Iterator[str]:
    """Every value under ``keys`` anywhere in a rule's model tree (conditions included)."""
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            value = getattr(node, name)
            if name in keys:
                if isinstance(value, str):
                    yield value
                elif isinstance(value, tuple):
                    yield from (v for v in value if isinstance(v, str))
            else:
                yield from _names(value, keys)
    elif isinstance(node, tuple | list):
        for item in node:
            yield from _names(item, keys)


def _hint(name: str, choices: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_names(ruleset: RuleSet, known: dict[str, set[str]]) -> list[str]:
    """One warning per product or field a rule names that no known product has."""
    warnings: list[str] = []
    for rule in ruleset.rules:
        products = list(dict.fromkeys(_names(rule, _PRODUCT_KEYS)))
        for product in products:
            if product not in known and not any(c in product for c in "*?["):
                warnings.append(f"rule {rule.name}: product {product!r} is not a known "
                                f"product{_hint(product, set(known))}")
        mine = [p for p in products if p in known]
        fields = set().union(*(known[p] for p in (mine or known)))
        where = " or ".join(mine) if mine else "any known product"
        for name in dict.fromkeys(_names(rule, _FIELD_KEYS)):
            if name not in fields and not any(c in name for c in "*?["):
                warnings.append(f"rule {rule.name}: field {name!r} is no field of {where}"
                                f"{_hint(name, fields)}")
    return warnings


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
