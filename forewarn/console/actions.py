"""What agents do to cases, shared by the API and the web pages; errors become HTTP answers.

Each action is a line of the case's timeline and, when the console has a helpdesk channel
(``[serve] helpdesk_channel``), a team notice in the outbox about it.
"""

from __future__ import annotations

from typing import Literal

from fastapi import HTTPException

from forewarn.auth import Principal
from forewarn.console.context import ConsoleContext
from rules import case_actions
from rules.case_actions import CaseNotFoundError, CaseStateError
from rules.errors import ResolutionError
from rules.resolution import Resolution

__all__ = ["Action", "apply_action"]

Action = Literal["acknowledge", "assign", "note", "resolve"]


def apply_action(ctx: ConsoleContext, who: Principal, case_id: int, action: Action,
                 text: str = "", resolution: Resolution | None = None) -> None:
    """Apply ``action`` as ``who``; 404 for a case not of their tenant, 409 in the wrong state,
    422 for a resolution without a valid outcome (``resolve`` needs one)."""
    now, push, engine = ctx.clock(), ctx.helpdesk, ctx.engine
    by = who.name or f"token {who.key}"
    try:
        if action == "acknowledge":
            case_actions.acknowledge(engine, who.tenant, case_id, by=by, now=now, push=push)
        elif action == "assign":
            case_actions.assign(engine, who.tenant, case_id, text, by=by, now=now, push=push)
        elif action == "note":
            case_actions.note(engine, who.tenant, case_id, text, by=by, now=now, push=push)
        else:
            product = case_actions.product_of(engine, who.tenant, case_id)  # 404 first
            if resolution is None:
                raise ResolutionError("resolving needs an outcome: confirmed, false_alarm, "
                                      "customer_caused or duplicate")
            case_actions.resolve(engine, who.tenant, case_id, by=by, comment=text, now=now,
                                 push=push, resolution=resolution,
                                 categories=ctx.fault_categories(product),
                                 feedback=ctx.feedback)
    except ResolutionError as exc:
        raise HTTPException(422, str(exc)) from exc
    except CaseNotFoundError as exc:
        raise HTTPException(404, str(exc)) from exc
    except CaseStateError as exc:
        raise HTTPException(409, str(exc)) from exc
