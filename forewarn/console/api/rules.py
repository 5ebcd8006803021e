"""``/api/v1/rules``: the rules in force, and a dry-run check of an uploaded rules file."""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, HTTPException, UploadFile

from forewarn.auth import Principal
from forewarn.console.context import ConsoleContext
from forewarn.console.schemas import RuleValidation
from forewarn.console.security import context, requires
from rules.errors import RuleError
from rules.model import load_rules, parse_rules

__all__ = ["router"]

router = APIRouter(prefix="/rules", tags=["rules"])

#: a rules file is a few kilobytes; anything much larger is a mistake
MAX_UPLOAD_BYTES = 256 * 1024
#: a rules file nests a handful of levels (rule → when → all → test → field); PyYAML's loader
#: and pydantic recurse once per level, so a few thousand levels end in RecursionError
MAX_NESTING = 64
#: aliases let a small file stand for an exponentially large one (an alias re-uses a node that
#: may itself hold aliases); a rules file expands to a few thousand nodes
MAX_NODES = 100_000
_OPENS = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken,
          yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
_CLOSES = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _too_deep(text: str, name: str) -> str | None:
    """Why ``text`` is refused before it is loaded (None: it may be loaded).

    PyYAML's scanner is iterative, so reading the tokens is safe for any nesting; the loader
    is not.

    >>> _too_deep("rules: " + "[" * 100 + "]" * 100, "r.yaml")
    'r.yaml, line 1: nested deeper than 64 levels'
    >>> _too_deep("rules: [{name: x, when: {all: [{score: {at_least: 0.8}}]}}]", "r.yaml")
    """
    depth = 0
    try:
        for token in yaml.scan(text):
            if isinstance(token, _OPENS):
                depth += 1
                if depth > MAX_NESTING:
                    return (f"{name}, line {token.start_mark.line + 1}: nested deeper than "
                            f"{MAX_NESTING} levels")
            elif isinstance(token, _CLOSES):
                depth -= 1
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes only: aliases stay shared
    except yaml.YAMLError:
        return None  # the loader names the syntax error with its line
    if root is not None and _expanded(root, {}) > MAX_NODES:
        return f"{name}: its aliases (*name) expand to more than {MAX_NODES} values"
    return None


def _expanded(node: yaml.Node, seen: dict[int, int]) -> int:
    """How many nodes ``node`` stands for once every alias is copied out (memoised per node)."""
    known = seen.get(id(node))
    if known is not None:
        return known
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded(child, seen) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded(k, seen) + _expanded(v, seen) for k, v in node.value)
    seen[id(node)] = min(total, MAX_NODES + 1)
    return seen[id(node)]


@router.get("", summary="The rules in force")
def list_rules(who: Annotated[Principal, Depends(requires("viewer"))],
               ctx: Annotated[ConsoleContext, Depends(context)]) -> list[dict[str, Any]]:
    """Every rule of the configured rules files (shared by all tenants), as JSON."""
    out: list[dict[str, Any]] = []
    for path in ctx.rules_files:
        try:
            ruleset = load_rules(path)
        except RuleError as exc:
            raise HTTPException(503, f"the configured rules do not load: {exc}") from exc
        for rule in ruleset.rules:
            entry = rule.model_dump(mode="json", by_alias=True, exclude_none=True)
            entry["source"] = path.name
            out.append(entry)
    return out


@router.post("/validate", response_model=RuleValidation,
             summary="Check a rules file without applying it")
async def validate(file: UploadFile,
                   who: Annotated[Principal, Depends(requires("agent"))]) -> RuleValidation:
    """Upload a YAML rules file (multipart field ``file``); nothing is applied or stored."""
    raw = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(raw) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"a rules file is at most {MAX_UPLOAD_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, "a rules file is UTF-8 text") from exc
    name = (file.filename or "upload.yaml")[:100]
    refused = _too_deep(text, name)
    if refused is not None:
        raise HTTPException(422, refused)
    try:
        ruleset = parse_rules(text, source=name)
    except RecursionError as exc:  # nesting the token count did not see (indentless lists)
        raise HTTPException(422, f"{name}: nested too deeply to check") from exc
    except RuleError as exc:
        return RuleValidation(valid=False, rules=[], errors=str(exc).splitlines())
    except (TypeError, ValueError, AttributeError) as exc:  # YAML that is not a mapping at all
        return RuleValidation(valid=False, rules=[], errors=[f"{name}: {exc}"])
    return RuleValidation(valid=True, rules=[r.name for r in ruleset.rules], errors=[])
