"""The REST API over real HTTP: the queue, a case, agents' actions, roles, tenant isolation,
devices and telemetry, fleet, rules, outbox, metrics, and bad input answered with 4xx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rules.db import CaseRow, NoticeRow
from tests.integration.console.conftest import ConsoleUnderTest

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_case(console: ConsoleUnderTest) -> int:
    """A new open case of acme (on a device of its own), for tests that change cases."""
    with Session(console.ctx.engine) as session:
        row = CaseRow(tenant="acme", device_id=f"hp-api-{time.monotonic_ns()}",
                      product="heat_pump", rule="heat_pump_refrigerant_circuit",
                      severity="warning", status="open", open_key=f"k{time.monotonic_ns()}",
                      fault_started_at=0.0, opened_at=60.0, field="discharge_temp",
                      peak_score=0.9, summary="discharge_temp anomalous", evidence_json="{}")
        session.add(row)
        session.commit()
        return row.id


@pytest.fixture
def acme(console: ConsoleUnderTest) -> Iterator[httpx.Client]:
    """acme's agent."""
    with console.client("acme", "agent") as client:
        yield client


# -- the queue and a case -----------------------------------------------------------------------


def test_queue_lists_the_case_the_simulated_leak_opened(console: ConsoleUnderTest,
                                                        acme: httpx.Client) -> None:
    page = acme.get("/api/v1/cases", params={"status": ["open", "acknowledged"]}).json()
    leak = next(c for c in page["items"] if c["id"] == console.case_id("acme"))
    assert leak["rule"] == "heat_pump_refrigerant_circuit"
    assert leak["ref"] == f"FW-{leak['id']}" and leak["age_s"] >= 0
    detail = acme.get(f"/api/v1/cases/{leak['id']}").json()
    assert detail["evidence"]["events"], "the case carries the detector events as evidence"
    assert detail["timeline"][0]["kind"] == "opened"
    customer = [n for n in detail["notices"] if n["audience"] == "customer"]
    assert customer and customer[0]["status"] == "sent" and customer[0]["body"]


def test_queue_paging_and_filters(acme: httpx.Client, fresh_case: int) -> None:
    everything = acme.get("/api/v1/cases", params={"limit": 200}).json()
    first = acme.get("/api/v1/cases", params={"limit": 1, "offset": 0}).json()
    second = acme.get("/api/v1/cases", params={"limit": 1, "offset": 1}).json()
    assert first["total"] == everything["total"] >= 2
    assert first["items"][0]["id"] != second["items"][0]["id"]
    critical = acme.get("/api/v1/cases", params={"severity": "critical", "limit": 200}).json()
    assert all(c["severity"] == "critical" for c in critical["items"])
    device = everything["items"][0]["device_id"]
    mine = acme.get("/api/v1/cases", params={"device_id": device}).json()
    assert mine["total"] >= 1 and {c["device_id"] for c in mine["items"]} == {device}


def test_agent_acknowledges_assigns_notes_and_resolves(acme: httpx.Client,
                                                       fresh_case: int) -> None:
    url = f"/api/v1/cases/{fresh_case}"
    assert acme.post(f"{url}/acknowledge").json()["status"] == "acknowledged"
    assert acme.post(f"{url}/acknowledge").status_code == 200  # twice is harmless
    assert acme.post(f"{url}/assign", json={"assignee": "kim"}).json()["assignee"] == "kim"
    noted = acme.post(f"{url}/notes", json={"text": "called the customer"})
    assert noted.status_code == 201
    resolved = acme.post(f"{url}/resolve", json={"outcome": "confirmed",
                                                 "category": "component_failure",
                                                 "comment": "valve replaced"}).json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    kinds = [(e["kind"], e["detail"]) for e in resolved["timeline"]]
    assert [k for k, _ in kinds] == ["acknowledged", "assigned", "note", "resolved"]
    assert ("note", "called the customer (by agent of acme)") in kinds
    assert acme.post(f"{url}/resolve", json={"outcome": "duplicate"}).status_code == 409
    assert acme.post(f"{url}/acknowledge").status_code == 409


def test_lead_time_before_the_predicted_failure(console: ConsoleUnderTest, acme: httpx.Client,
                                                fresh_case: int) -> None:
    now = console.ctx.clock()
    with Session(console.ctx.engine) as session:
        session.execute(update(CaseRow).where(CaseRow.id == fresh_case)
                        .values(predicted_failure_at=now + 3 * 3600.0, severity="critical"))
        session.commit()
    case = acme.get(f"/api/v1/cases/{fresh_case}").json()
    assert case["lead_time_s"] == pytest.approx(3 * 3600.0)
    queue = acme.get("/api/v1/cases", params={"status": "open"}).json()["items"]
    assert queue[0]["id"] == fresh_case, "critical with a predicted failure comes first"


# -- roles --------------------------------------------------------------------------------------

ACTIONS = [
    ("post", "/acknowledge", None),
    ("post", "/assign", {"assignee": "kim"}),
    ("post", "/notes", {"text": "x"}),
    ("post", "/resolve", {"outcome": "duplicate"}),
]


@pytest.mark.parametrize(("method", "suffix", "body"), ACTIONS,
                         ids=[a[1].strip("/") for a in ACTIONS])
def test_viewers_read_but_do_not_act(console: ConsoleUnderTest, fresh_case: int, method: str,
                                     suffix: str, body: dict[str, str] | None) -> None:
    with console.client("acme", "viewer") as viewer:
        assert viewer.get(f"/api/v1/cases/{fresh_case}").status_code == 200
        answer = viewer.request(method, f"/api/v1/cases/{fresh_case}{suffix}", json=body)
        assert answer.status_code == 403
        assert "agent" in answer.json()["detail"]
        assert viewer.get(f"/api/v1/cases/{fresh_case}").json()["timeline"] == []


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer fw_000000000000_" + "a" * 43,
                                    "Basic dXNlcjpwYXNz"],
                         ids=["missing", "garbage", "unknown", "basic"])
def test_no_valid_token_is_401(console: ConsoleUnderTest, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    with httpx.Client(base_url=console.url) as anonymous:
        for path in ("/api/v1/cases", "/api/v1/devices", "/api/v1/fleet", "/api/v1/rules",
                     "/api/v1/outbox"):
            assert anonymous.get(path, headers=headers).status_code == 401, path


def test_a_revoked_token_stops_working(console: ConsoleUnderTest) -> None:
    issued = console.ctx.tokens.create("acme", "viewer", "leaver")
    with httpx.Client(base_url=console.url,
                      headers={"Authorization": f"Bearer {issued.token}"}) as client:
        assert client.get("/api/v1/fleet").status_code == 200
        assert console.ctx.tokens.revoke(issued.key)
        assert client.get("/api/v1/fleet").status_code == 401


# -- tenant isolation: globex's admin against every endpoint that names acme's things ----------


def _acme_things(console: ConsoleUnderTest) -> dict[str, str]:
    case_id = console.case_id("acme")
    globex = {d["device_id"] for d in _get(console, "globex", "/api/v1/devices")["items"]}
    acme_only = [d["device_id"] for d in _get(console, "acme", "/api/v1/devices")["items"]
                 if d["device_id"] not in globex]
    with Session(console.ctx.engine) as session:
        notice = session.scalar(select(NoticeRow.id).where(NoticeRow.tenant == "acme"))
    return {"case": str(case_id), "device": acme_only[0], "notice": str(notice)}


ISOLATION = [
    ("get", "/api/v1/cases/{case}", None, 404),
    ("post", "/api/v1/cases/{case}/acknowledge", None, 404),
    ("post", "/api/v1/cases/{case}/assign", {"assignee": "mallory"}, 404),
    ("post", "/api/v1/cases/{case}/notes", {"text": "mallory was here"}, 404),
    ("post", "/api/v1/cases/{case}/resolve", {"outcome": "duplicate"}, 404),
    ("get", "/api/v1/devices/{device}", None, 404),
    ("get", "/api/v1/devices/{device}/telemetry?start=1767225600&stop=1768000000", None, 404),
    ("post", "/api/v1/outbox/{notice}/retry", None, 404),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), ISOLATION,
                         ids=[f"{m} {p}" for m, p, _, _ in ISOLATION])
def test_another_tenant_cannot_reach_acme(console: ConsoleUnderTest, method: str, path: str,
                                          body: dict[str, str] | None, expected: int) -> None:
    things = _acme_things(console)
    before = _case_state(console, int(things["case"]))
    with console.client("globex", "admin") as globex:
        answer = globex.request(method, path.format(**things), json=body)
    assert answer.status_code == expected
    # the same answer as for something that does not exist at all: nothing of acme's leaks
    assert "acme" not in answer.text and "discharge" not in answer.text
    assert _case_state(console, int(things["case"])) == before


def _case_state(console: ConsoleUnderTest, case_id: int) -> tuple[str, int]:
    with console.client("acme", "viewer") as acme:
        case = acme.get(f"/api/v1/cases/{case_id}").json()
    return case["status"], len(case["timeline"])


LISTS = ["/api/v1/cases?limit=200", "/api/v1/cases?status=resolved", "/api/v1/devices",
         "/api/v1/fleet", "/api/v1/outbox?status=sent", "/api/v1/outbox/pending",
         "/api/v1/outbox/failed", "/api/v1/rules"]


@pytest.mark.parametrize("path", LISTS)
def test_lists_show_only_the_tokens_tenant(console: ConsoleUnderTest, path: str) -> None:
    acme_devices = {d["device_id"] for d in _get(console, "acme", "/api/v1/devices")["items"]}
    globex_devices = {d["device_id"] for d in _get(console, "globex", "/api/v1/devices")["items"]}
    seen = _get(console, "globex", path)
    text = json.dumps(seen)
    assert '"acme' not in text and "acme/" not in text
    if path.startswith("/api/v1/cases"):
        assert {c["tenant"] for c in seen["items"]} <= {"globex"}
        assert seen["items"] or "resolved" in path
    if path == "/api/v1/devices":
        # the two fleets reuse device names: only globex's own count
        assert {d["device_id"] for d in seen["items"]} == globex_devices != acme_devices
    if path == "/api/v1/fleet":
        assert seen["devices"] == len(globex_devices)
    if path.startswith("/api/v1/outbox"):
        assert all(n["case_id"] in _case_ids(console, "globex") for n in seen["items"])


def _get(console: ConsoleUnderTest, tenant: str, path: str) -> Any:
    with console.client(tenant, "viewer") as client:
        answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _case_ids(console: ConsoleUnderTest, tenant: str) -> set[int]:
    with Session(console.ctx.engine) as session:
        return set(session.scalars(select(CaseRow.id).where(CaseRow.tenant == tenant)))


def test_same_device_name_in_two_tenants_keeps_its_own_telemetry(
        console: ConsoleUnderTest) -> None:
    """Both fleets have an hp-0000: each tenant sees only its own series."""
    params = {"start": 1_767_225_600, "stop": 1_768_000_000}
    with console.client("acme") as acme, console.client("globex") as globex:
        a = acme.get("/api/v1/devices/hp-0000/telemetry", params=params).json()
        g = globex.get("/api/v1/devices/hp-0000/telemetry", params=params).json()
    assert a["t"] and g["t"] and a["values"] != g["values"]


# -- devices, telemetry, fleet ------------------------------------------------------------------


def test_device_telemetry_marks_the_anomaly(console: ConsoleUnderTest,
                                            acme: httpx.Client) -> None:
    case = acme.get(f"/api/v1/cases/{console.case_id('acme')}").json()
    device = acme.get(f"/api/v1/devices/{case['device_id']}").json()
    assert device["status"] == "warning" and device["open_cases"] >= 1
    assert device["last_seen"] >= case["opened_at"]
    series = acme.get(f"/api/v1/devices/{case['device_id']}/telemetry", params={
        "start": case["fault_started_at"] - 86400, "stop": case["opened_at"] + 3600}).json()
    assert "discharge_temp" in series["fields"] and len(series["t"]) <= 1500
    assert len(series["values"]) == len(series["t"]) == len(series["scores"])
    assert series["anomalies"] and all(a["score"] >= series["threshold"]
                                       for a in series["anomalies"])
    assert series["events"], "the store's detector onsets come along"


def test_fleet_counts_devices_by_product_and_status(acme: httpx.Client) -> None:
    fleet = acme.get("/api/v1/fleet").json()
    assert fleet["devices"] == sum(sum(c.values()) for c in fleet["by_product"].values())
    assert fleet["by_product"]["heat_pump"]["ok"] >= 1
    devices = acme.get("/api/v1/devices", params={"status": "ok"}).json()
    assert devices["items"] and all(d["status"] == "ok" for d in devices["items"])


# -- rules ----------------------------------------------------------------------------------------


def test_rules_list_and_validate(acme: httpx.Client) -> None:
    rules = acme.get("/api/v1/rules").json()
    assert "heat_pump_refrigerant_circuit" in {r["name"] for r in rules}
    good = "rules:\n  - name: hot\n    score_at_least: 0.9\n    for: 5m\n"
    verdict = acme.post("/api/v1/rules/validate", files={"file": ("mine.yaml", good)}).json()
    assert verdict == {"valid": True, "rules": ["hot"], "errors": []}
    typo = "rules:\n  - name: hot\n    scor_at_least: 0.9\n"
    verdict = acme.post("/api/v1/rules/validate", files={"file": ("mine.yaml", typo)}).json()
    assert not verdict["valid"] and "mine.yaml, line 3" in verdict["errors"][0]
    assert "hot" not in {r["name"] for r in acme.get("/api/v1/rules").json()}  # not applied


# -- outbox ------------------------------------------------------------------------------------


def test_admin_retries_a_failed_notice(console: ConsoleUnderTest) -> None:
    with Session(console.ctx.engine) as session:
        notice_id = session.scalar(select(NoticeRow.id).where(
            NoticeRow.tenant == "acme", NoticeRow.status == "sent").order_by(NoticeRow.id))
        assert notice_id is not None
        session.execute(update(NoticeRow).where(NoticeRow.id == notice_id)
                        .values(status="dead", last_error="gateway said 550"))
        session.commit()
    with console.client("acme", "agent") as agent, console.client("acme", "admin") as admin:
        failed = admin.get("/api/v1/outbox/failed").json()
        assert [n["last_error"] for n in failed["items"]] == ["gateway said 550"]
        assert agent.post(f"/api/v1/outbox/{notice_id}/retry").status_code == 403
        retried = admin.post(f"/api/v1/outbox/{notice_id}/retry").json()
        assert retried["status"] == "pending" and retried["attempts"] == 0
        assert admin.post(f"/api/v1/outbox/{notice_id}/retry").status_code == 409
        assert admin.get("/api/v1/outbox/pending").json()["counts"]["pending"] >= 1
    with Session(console.ctx.engine) as session:  # leave it as it was for the other tests
        session.execute(update(NoticeRow).where(NoticeRow.id == notice_id)
                        .values(status="sent", last_error=None))
        session.commit()


# -- bad input: always a clear 4xx, never a 500 ---------------------------------------------------

#: 9 levels of 9 aliases: a 1 KB file whose rule watches 9**9 fields
_ALIAS_BOMB = b"l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + b"".join(
    b"l%d: &l%d [" % (i, i) + b", ".join([b"*l%d" % (i - 1)] * 9) + b"]\n"
    for i in range(1, 10)) + b"rules: [{name: r, score_at_least: 0.8, fields: *l9}]\n"
BAD = [
    ("get", "/api/v1/cases?limit=100000", None, None, 422),
    ("get", "/api/v1/cases?limit=0", None, None, 422),
    ("get", "/api/v1/cases?offset=-1", None, None, 422),
    ("get", "/api/v1/cases?limit=ten", None, None, 422),
    ("get", "/api/v1/cases?status=sleeping", None, None, 422),
    ("get", "/api/v1/cases?sort=random", None, None, 422),
    ("get", "/api/v1/cases/abc", None, None, 422),
    ("get", "/api/v1/cases/0", None, None, 422),
    ("get", "/api/v1/cases/99999999999999999999999", None, None, 422),
    ("get", "/api/v1/cases/999999", None, None, 404),
    ("post", "/api/v1/cases/{case}/notes", None, b"{not json", 422),
    ("post", "/api/v1/cases/{case}/notes", None, b'{"text": 5}', 422),
    ("post", "/api/v1/cases/{case}/notes", None, b'{"text": ""}', 422),
    ("post", "/api/v1/cases/{case}/notes", None, b'{"text": "x", "extra": 1}', 422),
    ("post", "/api/v1/cases/{case}/notes", None, b"[1, 2]", 422),
    ("post", "/api/v1/cases/{case}/notes", None, json.dumps({"text": "x" * 5000}).encode(), 422),
    ("post", "/api/v1/cases/{case}/assign", None, b'{"assignee": null}', 422),
    ("post", "/api/v1/cases/{case}/resolve", None, b'"done"', 422),
    ("get", "/api/v1/devices?limit=1000000", None, None, 422),
    ("get", "/api/v1/devices/" + "x" * 65, None, None, 422),
    ("get", "/api/v1/devices/hp-0000/telemetry", None, None, 422),
    ("get", "/api/v1/devices/hp-0000/telemetry?start=10&stop=5", None, None, 422),
    ("get", "/api/v1/devices/hp-0000/telemetry?start=0&stop=1e300", None, None, 422),
    ("get", "/api/v1/devices/hp-0000/telemetry?start=nan&stop=5", None, None, 422),
    ("get", "/api/v1/devices/hp-0000/telemetry?start=0&stop=2000000000", None, None, 422),
    ("get", "/api/v1/devices/hp-0000/telemetry?start=0&stop=20000&every_s=-1", None, None, 422),
    ("get", "/api/v1/devices/nope/telemetry?start=0&stop=100", None, None, 404),
    ("get", "/api/v1/outbox?status=lost", None, None, 422),
    ("post", "/api/v1/outbox/abc/retry", None, None, 422),
    ("post", "/api/v1/rules/validate", None, None, 422),
    ("post", "/api/v1/rules/validate", ("r.yaml", b"\xff\xfe\x00bad"), None, 400),
    ("post", "/api/v1/rules/validate", ("r.yaml", b"rules: [" * 10), None, 200),
    ("post", "/api/v1/rules/validate", ("r.yaml", b"- just\n- a list\n"), None, 200),
    ("post", "/api/v1/rules/validate", ("r.yaml", b"#" * (300 * 1024)), None, 413),
    # issue 18.6: 10 KB that nest thousands of levels (the loader recursed into a 500)
    ("post", "/api/v1/rules/validate", ("r.yaml", b"rules: " + b"[" * 5000 + b"]" * 5000),
     None, 422),
    ("post", "/api/v1/rules/validate", ("r.yaml", b"rules: " + b"{a: " * 2500 + b"1" + b"}" * 2500),
     None, 422),
    ("post", "/api/v1/rules/validate", ("r.yaml", b"rules:\n" + b"- " * 5000 + b"x\n"), None, 422),
    ("post", "/api/v1/rules/validate", ("r.yaml", b"a:\n" + b"".join(
        b" " * i + b"b:\n" for i in range(1, 140))), None, 422),
    ("post", "/api/v1/rules/validate", ("r.yaml", _ALIAS_BOMB), None, 422),
]


@pytest.mark.parametrize(("method", "path", "upload", "raw", "expected"), BAD,
                         ids=[f"{m} {p[:60]} {'' if r is None else r[:20]!r}"
                              for m, p, _, r, _ in BAD])
def test_bad_input_is_a_clear_4xx(console: ConsoleUnderTest, fresh_case: int, method: str,
                                  path: str, upload: tuple[str, bytes] | None,
                                  raw: bytes | None, expected: int) -> None:
    with console.client("acme", "admin") as admin:
        answer = admin.request(
            method, path.format(case=fresh_case), content=raw,
            files={"file": upload} if upload is not None else None,
            headers={"Content-Type": "application/json"} if raw is not None else None)
    assert answer.status_code == expected, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    if expected >= 400:
        assert answer.json()["detail"]
    if expected == 200:
        assert answer.json()["valid"] is False


# -- metrics and docs ----------------------------------------------------------------------------


def test_metrics_and_openapi(console: ConsoleUnderTest) -> None:
    with httpx.Client(base_url=console.url) as client:
        metrics = client.get("/metrics").text
        schema = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    assert 'forewarn_open_cases{severity="warning",tenant="acme"}' in metrics
    assert "forewarn_outbox_backlog" in metrics and "forewarn_outbox_failed" in metrics
    sent = [line for line in metrics.splitlines()
            if line.startswith("forewarn_notice_latency_seconds_count")]
    assert sent and float(sent[0].split()[-1]) >= 3
    assert "/api/v1/cases/{case_id}/acknowledge" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_an_agent_sets_a_devices_desired_config_through_the_api(
        console: ConsoleUnderTest, acme: httpx.Client, tmp_path: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """POST /api/v1/devices/{id}/config publishes the merged, retained desired config to a real
    Mosquitto, as ``forewarn devices config set`` does (issue 16.3)."""
    import asyncio

    import aiomqtt

    from core.config import MqttConfig
    from edge.schema import config_desired_topic
    from rules.lifecycle import DeviceBook
    from tests.servers.mosquitto import Mosquitto, mosquitto_binary

    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    book = DeviceBook(console.ctx.engine)
    book.update("acme", "hp-config", lambda row: setattr(row, "product", "heat_pump"))
    url = "/api/v1/devices/hp-config/config"
    assert acme.post(url, json={"batch_max_samples": 60}).status_code == 503  # no broker
    with Mosquitto(tmp_path / "mosquitto") as broker:
        monkeypatch.setattr(console.ctx, "mqtt", MqttConfig(port=broker.port,
                                                            client_id="console-test"))
        first = acme.post(url, json={"batch_max_samples": 60, "sample_period_s": 30})
        second = acme.post(url, json={"sample_period_s": None})
        refused = acme.post(url, json={"batch_max_sample": 60})
        with console.client("acme", "viewer") as viewer:
            assert viewer.post(url, json={"batch_max_samples": 1}).status_code == 403
        with console.client("globex", "agent") as other:
            assert other.post(url, json={"batch_max_samples": 1}).status_code == 404

        async def retained() -> bytes:
            async with aiomqtt.Client("127.0.0.1", broker.port) as client:
                await client.subscribe(config_desired_topic("acme", "hp-config"), qos=1)
                async with asyncio.timeout(10):
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        return message.payload
            raise AssertionError("no retained desired config")

        payload = asyncio.run(retained())
    assert first.status_code == 200, first.text
    assert first.json()["desired"] == {"revision": 1, "batch_max_samples": 60,
                                       "sample_period_s": 30}
    assert second.json()["desired"] == {"revision": 2, "batch_max_samples": 60}
    assert json.loads(payload) == {"revision": 2, "batch_max_samples": 60}
    assert refused.status_code == 422 and "batch_max_sample" in refused.json()["detail"]
    assert json.loads(book.get("acme", "hp-config").desired_json)["revision"] == 2
