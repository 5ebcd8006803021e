"""Notice texts from Jinja2 templates: plain words for customers, evidence for the team.

Every sentence, and the glossary of product and field names, is a message of the gettext
catalogues (:mod:`rules.catalogue`); the templates in ``rules/templates/`` mark them with
``{% trans %}``. The customer's language comes from the registry; team notices are English.

>>> from rules.evaluate import Alarm
>>> from rules.model import Rule
>>> alarm = Alarm(Rule(name="r", score_at_least=0.8), "acme", "hp-1", "heat_pump",
...               0.0, 600.0, "discharge_temp", 0.93, 81.5)
>>> subject, body = customer_message(alarm, case_id=7)
>>> subject
'We noticed an early sign of trouble on your heat pump'
>>> "discharge temperature has been unusual" in body and "FW-7" in body
True
>>> subject, body = customer_message(alarm, case_id=7, language="ko", timezone="Asia/Seoul")
>>> subject, "토출 온도" in body, "1970-01-01 09:00" in body
('고객님의 히트펌프에서 초기 이상 징후를 발견했습니다', True, True)
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from rules.catalogue import LANGUAGES, translations
from rules.evaluate import Alarm
from rules.timeparse import zone

__all__ = ["GLOSSARY", "case_ref", "customer_message", "incident_cohort_message",
           "incident_customer_message", "incident_team_message", "team_message",
           "update_message"]


def _term(context: str, key: str) -> str:
    """Marks a glossary key for extraction (``pgettext`` with the context ``glossary``)."""
    return key


#: product and field names a customer reads as words (msgctxt ``glossary``); any other name is
#: shown with its underscores as spaces
GLOSSARY: frozenset[str] = frozenset((
    _term("glossary", "heat_pump"), _term("glossary", "home_battery"),
    _term("glossary", "water_pump"), _term("glossary", "compressor_current"),
    _term("glossary", "discharge_temp"), _term("glossary", "suction_pressure"),
    _term("glossary", "outdoor_temp"), _term("glossary", "water_flow"),
    _term("glossary", "pack_voltage"), _term("glossary", "pack_current"),
    _term("glossary", "cell_v_min"), _term("glossary", "cell_v_max"),
    _term("glossary", "pack_temp"), _term("glossary", "soc"), _term("glossary", "flow"),
    _term("glossary", "pressure"), _term("glossary", "motor_current"),
    _term("glossary", "vibration"), _term("glossary", "motor_temp"),
    # a notice about no field in particular (a device that went quiet)
    _term("glossary", "no_field"),
))


@cache
def _env(language: str) -> Environment:
    env = Environment(
        loader=PackageLoader("rules", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # plain-text messages; HTML channels escape on their own
        extensions=["jinja2.ext.i18n"],
    )
    # a {% trans %} block may be written over several lines; its message is one line
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


#: the support team reads English (its catalogue is complete in every language all the same)
_TEAM_LANGUAGE = "en"


def case_ref(case_id: int) -> str:
    """The reference a person quotes: ``FW-<id>``."""
    return f"FW-{case_id}"


def _when(ts: float, tz: str = "UTC") -> str:
    local = datetime.fromtimestamp(ts, tz=UTC).astimezone(zone(tz))
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or tz)


def _word(language: str, key: str) -> str:
    term = key or "no_field"
    if term in GLOSSARY:
        return translations(language).pgettext("glossary", term)
    return key.replace("_", " ")


def _span(seconds: float) -> str:
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.1f} days"


def customer_message(alarm: Alarm, case_id: int, language: str = "en", timezone: str = "UTC",
                     customer_name: str = "", status_url: str = "") -> tuple[str, str]:
    """Subject and body of the customer notice, in ``language`` and the customer's zone;
    ``status_url``: the case's status page, where the customer answers in one tap."""
    language = language if language in LANGUAGES else LANGUAGES[0]
    words = translations(language)
    product = _word(language, alarm.product)
    fields = alarm.fields or (alarm.field,)
    body = _env(language).get_template("customer.txt.j2").render(
        customer_name=customer_name,
        product=product,
        device_id=alarm.device_id,
        fields=words.pgettext("joins field names", " and ").join(
            _word(language, f) for f in fields[:3]),
        n_fields=len(fields[:3]),
        since=_when(alarm.started_at, timezone),
        predicted=(_when(alarm.predicted_failure_at, timezone)
                   if alarm.predicted_failure_at is not None else None),
        case_ref=case_ref(case_id),
        status_url=status_url,
    )
    subject = words.gettext("We noticed an early sign of trouble on your {product}")
    return subject.format(product=product), body


def team_message(alarm: Alarm, case_id: int, customer: str = "",
                 customer_notice: str = "queued") -> tuple[str, str]:
    """Subject and body of the support team's notice: the evidence."""
    predicted = None
    if alarm.predicted_failure_at is not None:
        predicted = _span(max(0.0, alarm.predicted_failure_at - alarm.fired_at))
    body = _env(_TEAM_LANGUAGE).get_template("team.txt.j2").render(
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
    body = _env(_TEAM_LANGUAGE).get_template("team_update.txt.j2").render(
        case_ref=case_ref(case_id), kind=kind, severity=severity, device_id=device_id,
        rules=rules, detail=detail,
    )
    return f"[{severity}] {case_ref(case_id)} {device_id}: case {kind}", body


def incident_customer_message(incident_id: int, product: str, device_id: str,
                              language: str = "en", timezone: str = "UTC",
                              customer_name: str = "") -> tuple[str, str]:
    """Subject and body of a fleet incident's message to one affected customer (``timezone``
    is the customer's: the text names no time today, the argument keeps the call uniform)."""
    del timezone
    language = language if language in LANGUAGES else LANGUAGES[0]
    words = translations(language)
    word = _word(language, product)
    ref = f"INC-{incident_id}"
    body = _env(language).get_template("incident_customer.txt.j2").render(
        customer_name=customer_name, product=word, device_id=device_id, incident_ref=ref)
    subject = words.gettext("We are fixing a problem that affects your {product}")
    return subject.format(product=word), body


def _customers(policy: str) -> str:
    return ("each gets one message" if policy == "message"
            else "held until a person decides (forewarn incidents decide)")


def incident_team_message(incident_ref: str, severity: str, cohort: str, rule: str,
                          cases: list[tuple[str, str]], customers: str) -> tuple[str, str]:
    """Subject and body of the team's one notice of a fleet incident; ``cases``: (case
    reference, device) of every case linked at opening."""
    devices = len({device for _, device in cases})
    body = _env(_TEAM_LANGUAGE).get_template("incident_team.txt.j2").render(
        incident_ref=incident_ref, severity=severity, n_devices=devices, cohort=cohort,
        rule=rule, cases=cases, customers=_customers(customers))
    return f"[{severity}] {incident_ref} {cohort}: {devices} devices, {rule}", body


def incident_cohort_message(incident_ref: str, was: str, cohort: str, rule: str,
                            devices: int, opened_at: float, why: str,
                            customers: str) -> tuple[str, str]:
    """Subject and body of the team's notice that an open incident, opened as a model's
    (``was``), is now a narrower ``cohort``'s (a release, a batch, a region): its cause.
    ``devices``: the incident's devices now; ``why``: the cohort's cluster that showed it."""
    body = _env(_TEAM_LANGUAGE).get_template("incident_cohort_team.txt.j2").render(
        incident_ref=incident_ref, was=was, cohort=cohort, rule=rule, n_devices=devices,
        opened=_when(opened_at), why=why, customers=_customers(customers))
    return f"{incident_ref} is now {cohort}'s incident: {devices} devices, {rule}", body
