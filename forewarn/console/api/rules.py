"""``/api/v1/rules``: the rules in force, and a dry-run check of an uploaded rules file."""

from __future__ import annotations

from typing import Annotated, Any

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
    try:
        ruleset = parse_rules(text, source=name)
    except RuleError as exc:
        return RuleValidation(valid=False, rules=[], errors=str(exc).splitlines())
    except (TypeError, ValueError, AttributeError) as exc:  # YAML that is not a mapping at all
        return RuleValidation(valid=False, rules=[], errors=[f"{name}: {exc}"])
    return RuleValidation(valid=True, rules=[r.name for r in ruleset.rules], errors=[])
