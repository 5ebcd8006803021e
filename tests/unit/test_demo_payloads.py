"""``forewarn demo --payload json|sparkplug`` (issue 22): the same simulated fleet, sent as plain
JSON or Sparkplug B and ingested through a mapping, gives the native run's samples and cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pysparkplug._protobuf import Payload

from core.errors import NoTelemetry
from core.mapping import MappedDecoder
from forewarn.demo_payloads import MappedPayloads

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ("forewarn/v1/acme/hp-1/telemetry",
          b'{"device_id": "hp-1", "boot_id": "b1", "seq": 0, "product": "heat_pump",'
          b' "fields": ["temp", "rpm"], "t": [1700000000.0, 1700000010.0],'
          b' "values": [[21.5, 900.0], [22.0, null]]}')


def _resend(kind: str) -> tuple[MappedDecoder, list[tuple[str, bytes]]]:
    payloads = MappedPayloads(kind, "acme")  # type: ignore[arg-type]
    sent: list[tuple[str, bytes]] = []
    payloads.wrap(lambda topic, payload: sent.append((topic, payload)))(*NATIVE)
    return MappedDecoder([payloads.mapping()]), sent


def test_json_resend_decodes_to_the_native_readings() -> None:
    decoder, sent = _resend("json")
    assert [topic for topic, _ in sent] == ["demo/site-1/hp-1/state"]
    batch = decoder(*sent[0])
    assert (batch.tenant, batch.device_id, batch.fields) == ("acme", "hp-1", ("temp", "rpm"))
    assert batch.t.tolist() == [1.7e9, 1.7e9 + 10]
    assert batch.values[0].tolist() == [21.5, 900.0] and batch.values[1, 0] == 22.0


def test_sparkplug_resend_births_then_data_by_alias() -> None:
    decoder, sent = _resend("sparkplug")
    assert [topic for topic, _ in sent] == ["spBv1.0/acme/NBIRTH/demo-edge",
                                            "spBv1.0/acme/DBIRTH/demo-edge/hp-1",
                                            "spBv1.0/acme/DDATA/demo-edge/hp-1"]
    data = Payload.FromString(sent[2][1])  # as sent: aliases only, no names, no datatypes
    assert [(m.name, m.alias, m.datatype) for m in data.metrics] == [
        ("", 1, 0), ("", 2, 0), ("", 1, 0), ("", 2, 0)]
    for topic, payload in sent[:2]:
        with pytest.raises(NoTelemetry):  # births name the aliases; they hold no readings
            decoder(topic, payload)
    batch = decoder(*sent[2])
    assert (batch.device_id, batch.fields, batch.t.tolist()) == (
        "hp-1", ("temp", "rpm"), [1.7e9, 1.7e9 + 10])
    assert batch.values[0].tolist() == [21.5, 900.0] and batch.values[1, 0] == 22.0


def _demo(tmp_path: Path, payload: str) -> list[tuple[str, str, float]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FOREWARN_MQTT__PORT", None)
    summary = tmp_path / f"{payload}.json"
    done = subprocess.run(
        [sys.executable, "-m", "forewarn.cli", "demo", "--quiet", "--devices", "4",
         "--hours", "48", "--port", "0", "--payload", payload,
         "--out", str(tmp_path / payload), "--summary-json", str(summary)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    result = json.loads(summary.read_text())
    assert result["samples_lost"] == 0 and result["dead_letters"] == 0, result
    assert result["samples_ingested"] == result["samples_published"] > 0
    return [(c["case_id"], c["device_id"], c["opened_at"]) for c in result["cases"]]


def test_the_demo_fleet_through_a_mapping_opens_the_native_cases(tmp_path: Path) -> None:
    native = _demo(tmp_path, "native")
    assert native, "the demo opens cases"
    assert _demo(tmp_path, "json") == native
    sparkplug = _demo(tmp_path, "sparkplug")
    # Sparkplug times are whole milliseconds: the same cases open within one
    assert [c[:2] for c in sparkplug] == [c[:2] for c in native]
    assert all(abs(s[2] - n[2]) <= 0.001 for s, n in zip(sparkplug, native, strict=True))
