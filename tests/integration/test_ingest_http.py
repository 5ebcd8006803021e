"""HTTP ingest (issue 22): ``forewarn core`` as a subprocess serves ``POST
/api/v1/ingest/{mapping}``; JSON readings posted with an ingest token of the tenant are stored
and open a case when a device develops a fault, through the same mapping, dedup and rules as
MQTT messages; a wrong token is 401, another tenant's ingest token 403, a console token 401, an
oversize body 413 (refused before it is sent), a payload that does not fit the mapping 422 and
dead-lettered with the reason."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.dead_letter import DeadLetterStore
from forewarn.auth import TokenStore
from forewarn.ports import free_port
from rules.db import connect
from tests.integration.core_process import CoreProcess, wait_for
from tests.integration.nats.fleet import FIELDS
from tests.integration.test_ingest_mapping import DEVICES, FAULT, LEARN, _case_devices
from tests.servers.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

_ROOT = Path(__file__).resolve().parents[2]
MAX_BODY = 200_000


def _bodies(start: int, count: int, faulty: bool) -> Iterator[tuple[str, bytes]]:
    """Per device, one POST of ``count`` readings (an array of JSON objects)."""
    rng = np.random.default_rng(11)
    levels = rng.uniform(20.0, 80.0, (len(DEVICES), len(FIELDS)))
    for d, device in enumerate(DEVICES):
        readings = []
        for i in range(start, start + count):
            values = levels[d] + rng.normal(0.0, 1.0, len(FIELDS))
            if faulty and d == 0:
                values += 12.0
            readings.append({"ts": 1_700_000_000 + 10 * i, "status": "ok",
                             **{f: round(float(v), 3) for f, v in zip(FIELDS, values,
                                                                      strict=True)}})
        yield device, json.dumps(readings).encode()


def _post(port: int, path: str, body: bytes, token: str | None,
          length: int | None = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", path)
        if token is not None:
            conn.putheader("Authorization", f"Bearer {token}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body) if length is None else length))
        conn.endheaders()
        if length is None:
            conn.send(body)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def _token(config: Path, tenant: str, role: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "forewarn.cli", "--config", str(config), "tokens", "create",
         "--tenant", tenant, "--role", role], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(_ROOT)})
    return next(w for w in done.stdout.split() if w.startswith("fw_"))


def test_http_ingest_stores_opens_a_case_and_refuses_what_it_must(
        mosquitto: Mosquitto, tmp_path: Path, unique_tenant: str) -> None:
    tenant = unique_tenant
    port = free_port()
    core = CoreProcess(tmp_path, mosquitto, tenant,
                       extra_core=f"ingest_http_port = {port}\n"
                       f"ingest_http_max_body_bytes = {MAX_BODY}\n")
    with core.config.open("a") as config:
        config.write(f'\n[[ingest.mapping]]\nname = "acme-http"\n'
                     f'topic = "unused/+device"\nformat = "json"\ntime_key = "ts"\n'
                     f'tenant = "{tenant}"\nproduct = "heat_pump"\n')
    ingest = _token(core.config, tenant, "ingest")
    other = _token(core.config, "someone-else", "ingest")
    console = _token(core.config, tenant, "admin")
    path = "/api/v1/ingest/acme-http?device="
    core.start()
    try:
        wait_for(lambda: "HTTP ingest on" in core.log_tail(), 60, "core's HTTP ingest", core)
        for device, body in _bodies(0, LEARN, faulty=False):
            status, answer = _post(port, path + device, body, ingest)
            assert (status, answer["readings"], answer["values"]) == (
                202, LEARN, LEARN * len(FIELDS)), answer
        wait_for(lambda: core.stored() >= len(DEVICES) * LEARN, 60, "the readings", core)
        for device, body in _bodies(LEARN, FAULT, faulty=True):
            status, answer = _post(port, path + device, body, ingest)
            assert status == 202, answer
        # the same post again: a duplicate, stored once
        status, answer = _post(port, path + DEVICES[1], body, ingest)
        assert (status, answer["duplicate"]) == (202, True), answer
        wait_for(lambda: "hp-1" in _case_devices(core.cases_db, tenant), 120,
                 "a case of the faulty device", core)

        refusals = {
            "no token": _post(port, path + "hp-2", body, None),
            "a wrong token": _post(port, path + "hp-2", body, ingest[:-2] + "xx"),
            "a console token": _post(port, path + "hp-2", body, console),
            "another tenant": _post(port, path + "hp-2", body, other),
            "oversize": _post(port, path + "hp-2", b"", ingest, length=MAX_BODY + 1),
            "no device": _post(port, "/api/v1/ingest/acme-http", body, ingest),
            "unknown mapping": _post(port, "/api/v1/ingest/nope?device=hp-2", body, ingest),
            "not the mapping": _post(port, path + "hp-2", b'{"discharge_temp": 61.5}', ingest),
        }
        assert {what: status for what, (status, _) in refusals.items()} == {
            "no token": 401, "a wrong token": 401, "a console token": 401,
            "another tenant": 403, "oversize": 413, "no device": 400, "unknown mapping": 404,
            "not the mapping": 422}
        mismatch = refusals["not the mapping"][1]
        assert mismatch["error"] == "mapping_mismatch"
        assert "no time key 'ts'" in mismatch["detail"]
        engine = connect(f"sqlite:///{core.cases_db}")
        try:
            wait_for(lambda: any(d.reason == "mapping_mismatch"
                                 for d in DeadLetterStore(engine).letters()), 30,
                     "the dead letter", core)
            letter = next(d for d in DeadLetterStore(engine).letters()
                          if d.reason == "mapping_mismatch")
            # the ingest token is no key to the console's API either
            assert TokenStore(engine).verify(ingest) is None
        finally:
            engine.dispose()
        assert core.stop() == 0
    finally:
        core.close()
    assert letter.topic == "http/acme-http/hp-2"
    assert "no time key 'ts'" in letter.detail
    # every reading stored once: the repeated post was dropped as a duplicate
    assert core.stored() == len(DEVICES) * (LEARN + FAULT)
    assert _case_devices(core.cases_db, tenant) == {"hp-1"}
