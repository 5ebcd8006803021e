"""Notice texts from Jinja2 templates: plain words for customers, evidence for the team.

Customer texts exist in English and Korean (``customer_<language>.txt.j2``); the customer's
language comes from the registry.

>>> from rules.evaluate import Alarm
>>> from rules.model import Rule
>>> alarm = Alarm(Rule(name="r", score_at_least=0.8), "acme", "hp-1", "heat_pump",
...               0.0, 600.0, "discharge_temp", 0.93, 81.5)
>>> subject, body = customer_message(alarm, case_id=7)
>>> subject
'We noticed an early sign of trouble on your heat pump'
>>> "discharge temperature" in body and "FW-7" in body
True
>>> subject, body = customer_message(alarm, case_id=7, language="ko", timezone="Asia/Seoul")
>>> subject, "토출 온도" in body, "1970-01-01 09:00" in body
('고객님의 히트펌프에서 초기 이상 징후를 발견했습니다', True, True)
"""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, StrictUndefined

from rules.evaluate import Alarm
from rules.timeparse import zone

__all__ = ["case_ref", "customer_message", "team_message", "update_message"]

_env = Environment(
    loader=PackageLoader("rules", "templates"),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # plain-text messages; HTML channels escape on their own
)

_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "heat_pump": "heat pump", "home_battery": "home battery", "water_pump": "water pump",
        "compressor_current": "compressor current", "discharge_temp": "discharge temperature",
        "suction_pressure": "suction pressure", "outdoor_temp": "outdoor temperature",
        "water_flow": "water flow", "pack_voltage": "battery voltage",
        "pack_current": "battery current", "cell_v_min": "lowest cell voltage",
        "cell_v_max": "highest cell voltage", "pack_temp": "battery temperature",
        "soc": "charge level", "flow": "water flow", "pressure": "water pressure",
        "motor_current": "motor current", "vibration": "vibration",
        "motor_temp": "motor temperature", "": "data",
    },
    "ko": {
        "heat_pump": "히트펌프", "home_battery": "가정용 배터리", "water_pump": "급수 펌프",
        "compressor_current": "압축기 전류", "discharge_temp": "토출 온도",
        "suction_pressure": "흡입 압력", "outdoor_temp": "외기 온도", "water_flow": "물 유량",
        "pack_voltage": "배터리 전압", "pack_current": "배터리 전류",
        "cell_v_min": "최저 셀 전압", "cell_v_max": "최고 셀 전압", "pack_temp": "배터리 온도",
        "soc": "충전량", "flow": "유량", "pressure": "수압", "motor_current": "모터 전류",
        "vibration": "진동", "motor_temp": "모터 온도", "": "데이터",
    },
}
_SUBJECT = {
    "en": "We noticed an early sign of trouble on your {product}",
    "ko": "고객님의 {product}에서 초기 이상 징후를 발견했습니다",
}
_AND = {"en": " and ", "ko": ", "}


def case_ref(case_id: int) -> str:
    """The reference a person quotes: ``FW-<id>``."""
    return f"FW-{case_id}"


def _when(ts: float, tz: str = "UTC") -> str:
    local = datetime.fromtimestamp(ts, tz=UTC).astimezone(zone(tz))
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or tz)


def _word(language: str, key: str) -> str:
    return _WORDS.get(language, _WORDS["en"]).get(key, key.replace("_", " "))


def _span(seconds: float) -> str:
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.1f} days"


def customer_message(alarm: Alarm, case_id: int, language: str = "en", timezone: str = "UTC",
                     customer_name: str = "") -> tuple[str, str]:
    """Subject and body of the customer notice, in ``language`` and the customer's zone."""
    language = language if language in _SUBJECT else "en"
    product = _word(language, alarm.product)
    fields = alarm.fields or (alarm.field,)
    body = _env.get_template(f"customer_{language}.txt.j2").render(
        customer_name=customer_name,
        product=product,
        device_id=alarm.device_id,
        fields=_AND[language].join(_word(language, f) for f in fields[:3]),
        n_fields=len(fields[:3]),
        since=_when(alarm.started_at, timezone),
        predicted=(_when(alarm.predicted_failure_at, timezone)
                   if alarm.predicted_failure_at is not None else None),
        case_ref=case_ref(case_id),
    )
    return _SUBJECT[language].format(product=product), body


def team_message(alarm: Alarm, case_id: int, customer: str = "",
                 customer_notice: str = "queued") -> tuple[str, str]:
    """Subject and body of the support team's notice: the evidence."""
    predicted = None
    if alarm.predicted_failure_at is not None:
        predicted = _span(max(0.0, alarm.predicted_failure_at - alarm.fired_at))
    body = _env.get_template("team_en.txt.j2").render(
        case_ref=case_ref(case_id),
        rule=alarm.rule.name,
        severity=alarm.rule.severity,
        kind=alarm.kind,
        device_id=alarm.device_id,
        product=alarm.product,
        tenant=alarm.tenant,
        customer=customer or "unknown",
        started_at=_when(alarm.started_at),
        fired_at=_when(alarm.fired_at),
        field=alarm.field,
        fields=", ".join(alarm.fields or (alarm.field,)),
        value=f"{alarm.value:.4g}",
        score=f"{alarm.peak_score:.2f}",
        predicted=predicted,
        predicted_at=(_when(alarm.predicted_failure_at)
                      if alarm.predicted_failure_at is not None else ""),
        around=", ".join(f"{v:.4g}" for _, v in alarm.around),
        events=[{"when": _when(e.ts), "detector": e.detector, "field": e.field,
                 "score": f"{e.score:.2f}", "explanation": e.explanation}
                for e in alarm.events[-5:]],
        customer_notice=customer_notice,
    )
    subject = f"[{alarm.rule.severity}] {case_ref(case_id)} {alarm.device_id}: {alarm.rule.name}"
    return subject, body


def update_message(kind: str, case_id: int, severity: str, device_id: str, rules: str,
                   detail: str) -> tuple[str, str]:
    """Subject and body of a team notice about a case that changed (reopened, escalated…)."""
    body = _env.get_template("team_update_en.txt.j2").render(
        case_ref=case_ref(case_id), kind=kind, severity=severity, device_id=device_id,
        rules=rules, detail=detail,
    )
    return f"[{severity}] {case_ref(case_id)} {device_id}: case {kind}", body
