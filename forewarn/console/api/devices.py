"""``/api/v1/devices``: the tenant's devices, one device, its telemetry with anomaly marks, and
its desired config (published retained to the broker, as ``forewarn devices config set``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Query

from forewarn.auth import Principal
from forewarn.console import queries
from forewarn.console.context import ConsoleContext
from forewarn.console.schemas import DeviceDetail, DevicePage, FeedbackOut, Telemetry
from forewarn.console.security import Agent, Context, Viewer
from forewarn.errors import ConfigError, ForewarnError
from rules import feedback
from rules.errors import CaseNotFoundError, CaseStateError

__all__ = ["router"]

router = APIRouter(prefix="/devices", tags=["devices"])

DeviceId = Annotated[str, Path(min_length=1, max_length=64)]
#: the longest telemetry range one request may ask for
MAX_RANGE_S = 366 * 86400.0
#: a timestamp in seconds between 1970 and 2100
Timestamp = Annotated[float, Query(ge=0, le=4_102_444_800)]


@router.get("", response_model=DevicePage, summary="Devices with status and last seen")
def list_devices(
    who: Viewer,
    ctx: Context,
    status: Annotated[str | None, Query(pattern="^(ok|warning|critical)$")] = None,
    product: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> DevicePage:
    """Every device the store, the alarms or the cases know for the token's tenant."""
    items = [d for d in queries.devices(ctx, who.tenant)
             if (status is None or d.status == status)
             and (product is None or d.product == product)]
    return DevicePage(total=len(items), limit=limit, offset=offset,
                      items=items[offset:offset + limit])


@router.get("/{device_id}", response_model=DeviceDetail, summary="One device")
def get_device(device_id: DeviceId, who: Viewer, ctx: Context) -> DeviceDetail:
    """Status, last seen and unresolved cases."""
    detail = queries.device_detail(ctx, who.tenant, device_id)
    if detail is None:
        raise HTTPException(404, f"no device {device_id}")
    return detail


@router.get("/{device_id}/telemetry", response_model=Telemetry,
            summary="Values and anomaly scores over a time range")
def get_telemetry(
    device_id: DeviceId,
    who: Viewer,
    ctx: Context,
    start: Timestamp,
    stop: Timestamp,
    every_s: Annotated[float, Query(ge=0, le=86400)] = 0.0,
) -> Telemetry:
    """History in [start, stop) (Unix seconds), bucketed to at most 1500 points per field."""
    if stop <= start:
        raise HTTPException(422, "stop must be after start")
    if stop - start > MAX_RANGE_S:
        raise HTTPException(422, "ask for at most 366 days at once")
    if queries.device_detail(ctx, who.tenant, device_id) is None:
        raise HTTPException(404, f"no device {device_id}")
    return queries.telemetry(ctx, who.tenant, device_id, start, stop, every_s)


def adjustments(ctx: ConsoleContext, tenant: str, device_id: str) -> list[FeedbackOut]:
    """The alarm levels false alarms raised for a device and its product, newest first."""
    detail = queries.device_detail(ctx, tenant, device_id)
    if detail is None:
        raise HTTPException(404, f"no device {device_id}")
    now = ctx.clock()
    return [FeedbackOut(
        id=r.id, device_id=r.device_id, product=r.product, rule=r.rule, raise_by=r.raise_by,
        case_id=r.case_id, reason=r.reason, created_by=r.created_by, created_at=r.created_at,
        expires_at=r.expires_at, undone_by=r.undone_by, undone_at=r.undone_at,
        active=r.undone_at is None and r.expires_at > now,
        window_start_s=r.window_start_s, window_s=r.window_s)
        for r in feedback.adjustments(ctx.engine, tenant, device_id, detail.product, now)]


def undo_adjustment(ctx: ConsoleContext, who: Principal, device_id: str,
                    feedback_id: int) -> None:
    """Undo one of the device's (or its product's) adjustments; 404 / 409 as for cases."""
    if feedback_id not in {a.id for a in adjustments(ctx, who.tenant, device_id)}:
        raise HTTPException(404, f"no adjustment {feedback_id} on {device_id}")
    try:
        feedback.undo(ctx.engine, who.tenant, feedback_id,
                      by=who.name or f"token {who.key}", now=ctx.clock())
    except CaseNotFoundError as exc:
        raise HTTPException(404, str(exc)) from exc
    except CaseStateError as exc:
        raise HTTPException(409, str(exc)) from exc


@router.get("/{device_id}/feedback", response_model=list[FeedbackOut],
            summary="Alarm levels raised by false alarms")
def get_feedback(device_id: DeviceId, who: Viewer, ctx: Context) -> list[FeedbackOut]:
    """Every adjustment of the device and of its product (ended ones too), newest first:
    who caused it, when, why, until when."""
    return adjustments(ctx, who.tenant, device_id)


@router.post("/{device_id}/feedback/{feedback_id}/undo", response_model=list[FeedbackOut],
             summary="Undo an adjustment")
def undo_feedback(device_id: DeviceId,
                  feedback_id: Annotated[int, Path(ge=1, le=2**62)],
                  who: Agent, ctx: Context) -> list[FeedbackOut]:
    """The rule's level goes back at the service's next tick; 409 when it already ended."""
    undo_adjustment(ctx, who, device_id, feedback_id)
    return adjustments(ctx, who.tenant, device_id)
@router.post("/{device_id}/config", summary="Change the device's desired config")
async def set_config(
    device_id: DeviceId,
    who: Agent,
    ctx: Context,
    changes: Annotated[dict[str, float | int | None], Body(
        examples=[{"batch_max_samples": 120, "status_interval_s": None}])],
) -> dict[str, object]:
    """Merge ``changes`` (a number sets a key, null removes it) into the device's retained
    desired config, raise its revision and publish it (QoS 1); the agent applies it and
    reports back, shown on the device. 503 when no broker is configured or reachable."""
    from forewarn.devices.config import check_changes, publish_desired
    from rules.lifecycle import DeviceBook

    if queries.device_detail(ctx, who.tenant, device_id) is None:
        raise HTTPException(404, f"no device {device_id}")
    if ctx.mqtt is None:
        raise HTTPException(503, "no broker configured for config changes")
    try:
        desired, _ = await publish_desired(ctx.mqtt, who.tenant, device_id,
                                           check_changes(dict(changes)))
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from exc
    except ForewarnError as exc:
        raise HTTPException(503, f"cannot publish the config: {exc}") from exc
    DeviceBook(ctx.engine).set_desired(who.tenant, device_id, desired)
    return {"device_id": device_id, "desired": desired}
