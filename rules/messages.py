"""Notice texts from Jinja2 templates: plain words for customers, evidence for the team.

>>> from rules.evaluate import Alarm
>>> from rules.model import Rule
>>> alarm = Alarm(Rule(name="r", score_at_least=0.8), "acme", "hp-1", "heat_pump",
...               0.0, 600.0, "discharge_temp", 0.93, 81.5)
>>> subject, body = customer_message(alarm, case_id=7)
>>> subject
'We noticed an early sign of trouble on your heat pump'
>>> "discharge temperature" in body and "FW-7" in body
True
"""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, StrictUndefined

from rules.evaluate import Alarm

__all__ = ["case_ref", "customer_message", "team_message"]

_env = Environment(
    loader=PackageLoader("rules", "templates"),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # plain-text messages; HTML channels escape on their own
)

_PRODUCT_NAMES = {"heat_pump": "heat pump"}
_FIELD_WORDS = {
    "discharge_temp": "discharge temperature",
    "compressor_current": "compressor current",
    "suction_pressure": "suction pressure",
    "outdoor_temp": "outdoor temperature",
}


def case_ref(case_id: int) -> str:
    """The reference a person quotes: ``FW-<id>``."""
    return f"FW-{case_id}"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def customer_message(alarm: Alarm, case_id: int) -> tuple[str, str]:
    """Subject and body of the customer notice."""
    product_name = _PRODUCT_NAMES.get(alarm.product, alarm.product.replace("_", " "))
    field = _FIELD_WORDS.get(alarm.field, alarm.field.replace("_", " "))
    body = _env.get_template("customer_en.txt.j2").render(
        product_name=product_name,
        device_id=alarm.device_id,
        finding=f"its {field} has been unusual since {_when(alarm.started_at)}",
        meaning="this is often the first sign of a fault that gets worse over days; "
        "caught now, it is usually a small repair.",
        advice="keep using it as usual; if it stops working, switch it off and tell us.",
        case_ref=case_ref(case_id),
    )
    return f"We noticed an early sign of trouble on your {product_name}", body


def team_message(alarm: Alarm, case_id: int) -> tuple[str, str]:
    """Subject and body of the support team's notice."""
    body = _env.get_template("team_en.txt.j2").render(
        case_ref=case_ref(case_id),
        rule=alarm.rule.name,
        severity=alarm.rule.severity,
        device_id=alarm.device_id,
        product=alarm.product,
        tenant=alarm.tenant,
        started_at=_when(alarm.started_at),
        fired_at=_when(alarm.fired_at),
        field=alarm.field,
        value=f"{alarm.value:.4g}",
        score=f"{alarm.peak_score:.2f}",
        events=[{"when": _when(e.ts), "detector": e.detector, "field": e.field,
                 "explanation": e.explanation} for e in alarm.events[-5:]],
        notify_customer=alarm.rule.notify_customer,
    )
    return f"[{alarm.rule.severity}] {case_ref(case_id)} {alarm.device_id}: {alarm.rule.name}", body
