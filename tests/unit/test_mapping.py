"""Mapped fleets (issue 22): a declared mapping turns a fleet's own topic and payload into the
batch the native path gives, or a dead letter that says why."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.decode import decode_telemetry
from core.detect import RobustZ
from core.errors import DecodeError
from core.mapping import IngestConfig, MappedDecoder, MappingConfig, TopicPattern
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore
from forewarn.cli import main

ACME = dict(name="acme-json", topic="acme/+site/+device/state", tenant="acme",
            product="heat_pump", time_key="ts")
TOPIC = "acme/s1/hp-9/state"


def _decode(payload: bytes, topic: str = TOPIC, arrival: float = 1_700_000_500.0,
            **mapping: object) -> tuple[str, str, tuple[str, ...], list[float], list[list[float]]]:
    decoder = MappedDecoder([MappingConfig.model_validate({**ACME, **mapping})],
                            clock=lambda: arrival)
    batch = decoder(topic, payload)
    values = [[None if math.isnan(v) else round(v, 9) for v in row]
              for row in batch.values.tolist()]
    return batch.tenant, batch.device_id, batch.fields, batch.t.tolist(), values  # type: ignore[return-value]


@pytest.mark.parametrize(("payload", "mapping", "fields", "t", "values"), [
    (b'{"ts": 1700000000, "temp": 21.5, "rpm": 900, "mode": "heat", "on": true}', {},
     ("temp", "rpm"), [1.7e9], [[21.5, 900.0]]),
    (b'{"ts": 1700000000250, "temp": 21.5}', {}, ("temp",), [1_700_000_000.25], [[21.5]]),
    (b'{"ts": "2023-11-14T22:13:20Z", "temp": 1}', {}, ("temp",), [1.7e9], [[1.0]]),
    (b'{"ts": "2023-11-14T23:13:20+01:00", "temp": 1}', {"time_unit": "iso"}, ("temp",),
     [1.7e9], [[1.0]]),
    (b'{"ts": 1700000000000, "temp": 1}', {"time_unit": "ms"}, ("temp",), [1.7e9], [[1.0]]),
    (b'{"temp": 2}', {"time_key": None}, ("temp",), [1_700_000_500.0], [[2.0]]),
    (b'[{"ts": 1700000000, "temp": 1}, {"ts": 1700000060, "rpm": 5}]', {}, ("temp", "rpm"),
     [1.7e9, 1.7e9 + 60], [[1.0, None], [None, 5.0]]),
    (b'{"ts": 1700000000, "temp": 215, "pump": {"rpm": 900, "x": 1}, "junk": 3}',
     {"fields": ["temp", "pump.rpm"], "rename": {"pump.rpm": "pump_rpm"},
      "scale": {"temp": 0.1}, "offset": {"pump_rpm": -100}},
     ("temp", "pump_rpm"), [1.7e9], [[21.5, 800.0]]),
    (b'{"meta": {"t": 1700000000}, "temp": null, "rpm": 1}',
     {"time_key": "meta.t", "fields": ["temp", "rpm"]}, ("temp", "rpm"), [1.7e9],
     [[None, 1.0]]),
], ids=["all-numeric", "epoch-ms-auto", "iso-z", "iso-offset", "ms", "arrival-time",
        "array-union", "paths-rename-scale-offset", "nested-time-null"])
def test_json_readings_become_batches(payload: bytes, mapping: dict[str, object],
                                      fields: tuple[str, ...], t: list[float],
                                      values: list[list[float | None]]) -> None:
    tenant, device, got_fields, got_t, got_values = _decode(payload, **mapping)
    assert (tenant, device) == ("acme", "hp-9")
    assert got_fields == fields
    assert got_t == pytest.approx(t)
    assert got_values == values


@pytest.mark.parametrize(("payload", "mapping", "reason", "words"), [
    (b'{"temp": 21.5}', {}, "mapping_mismatch", "no time key 'ts'"),
    (b'{"ts": "yesterday", "temp": 1}', {}, "mapping_mismatch", "not ISO 8601"),
    (b'{"ts": 1e300, "temp": 1}', {}, "mapping_mismatch", "out of range"),
    (b'{"ts": 1700000000, "mode": "heat"}', {}, "mapping_mismatch", "no field"),
    (b'{"ts": 1700000000, "temp": "21.5"}', {"fields": ["temp"]}, "mapping_mismatch",
     "not a number"),
    (b'{"ts": 1700000000, "temp": true}', {"fields": ["temp"]}, "mapping_mismatch",
     "not a number"),
    (b'{"ts": 1700000000, "temp": 1, "extra": 2}',
     {"fields": ["temp"], "unknown_keys": "dead-letter"}, "mapping_mismatch",
     "unknown key 'extra'"),
    (b'{"ts": 1700000000, "temp": 1, "mode": "x"}', {"unknown_keys": "dead-letter"},
     "mapping_mismatch", "'mode' is not a number"),
    (b'{"ts": 1700000000, "bad key": 1}', {}, "mapping_mismatch", "not a field name"),
    (b"42", {}, "mapping_mismatch", "not a JSON object"),
    (b"{not json", {}, "bad_encoding", "not JSON"),
    (b'{"a":' * 20 + b"1" + b"}" * 20, {}, "too_deep", "nested"),
], ids=["no-time", "bad-iso", "time-overflow", "no-field", "text-number", "bool-number",
        "unknown-key", "unknown-text", "bad-name", "scalar", "not-json", "too-deep"])
def test_payloads_that_do_not_match_say_why(payload: bytes, mapping: dict[str, object],
                                            reason: str, words: str) -> None:
    with pytest.raises(DecodeError) as caught:
        _decode(payload, **mapping)
    assert caught.value.reason == reason
    assert words in caught.value.detail


def test_topics_pick_the_mapping_tenant_and_device() -> None:
    pattern = TopicPattern("fleet/+tenant/+/+device/#")
    assert pattern.subscription == "fleet/+/+/+/#"
    assert pattern.match("fleet/acme/x/hp-1/a/b") == {"tenant": "acme", "device": "hp-1"}
    assert pattern.match("fleet/acme/x") is None
    decoder = MappedDecoder([MappingConfig(name="m", topic="fleet/+tenant/+device",
                                           time_key=None)], clock=lambda: 1.7e9)
    batch = decoder("fleet/globex/d-1", b'{"x": 1}')
    assert (batch.tenant, batch.device_id) == ("globex", "d-1")
    with pytest.raises(DecodeError, match="bad_topic"):
        decoder("elsewhere/globex/d-1", b'{"x": 1}')
    with pytest.raises(DecodeError, match="device id"):
        decoder("fleet/globex/bad device", b'{"x": 1}')


def test_native_topics_still_take_the_native_path() -> None:
    native = (b'{"v":1,"device_id":"hp-1","boot_id":"b","seq":3,"fields":["a"],'
              b'"t":[1.0],"values":[[2.0]]}')
    mapped = MappedDecoder([MappingConfig(**ACME)])("forewarn/v1/acme/hp-1/telemetry", native)
    plain = decode_telemetry("forewarn/v1/acme/hp-1/telemetry", native)
    assert (mapped.device_id, mapped.seq, mapped.values.tolist()) == (
        plain.device_id, plain.seq, plain.values.tolist())


@pytest.mark.parametrize(("mapping", "words"), [
    ({"topic": "acme/+site/state"}, "'+device'"),
    ({"tenant": None}, "'+tenant'"),
    ({"topic": "acme/+dev ice/state"}, "not a name"),
    ({"topic": "acme/#/+device"}, "'#' must be the last"),
    ({"fields": ["pump rpm"]}, "not a field name"),
    ({"time_unit": "minutes"}, "time_unit"),
    ({"colour": "red"}, "colour"),
], ids=["no-device", "no-tenant", "bad-wildcard", "hash-not-last", "key-needs-rename",
        "bad-unit", "unknown-key"])
def test_bad_mappings_are_refused_at_start(mapping: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words.replace("+", r"\+")):
        MappingConfig.model_validate({**ACME, **mapping})


def test_mapping_names_are_unique() -> None:
    with pytest.raises(ValidationError, match="named 'acme-json'"):
        IngestConfig.model_validate({"mapping": [ACME, ACME]})


def test_line_protocol_readings() -> None:
    decoder = MappedDecoder([MappingConfig(
        name="tg", topic="telegraf/+site", tenant="acme", format="influx", device_key="host",
        unknown_keys="ignore", rename={"usage_idle": "idle"})], clock=lambda: 1.7e9)
    batch = decoder("telegraf/s1", b"cpu,host=gw-1,cpu=cpu\\ 0 usage_idle=97.5,n=3i,up=true,"
                                   b'note="a b,c" 1700000000000000000\n'
                                   b"cpu,host=gw-1 usage_idle=96 1700000010000000000\n")
    assert (batch.device_id, batch.fields) == ("gw-1", ("idle", "n"))
    assert batch.t.tolist() == [1.7e9, 1.7e9 + 10]
    assert batch.values.tolist()[0] == [97.5, 3.0]
    assert math.isnan(batch.values[1, 1])
    with pytest.raises(DecodeError, match="no tag 'host'"):
        decoder("telegraf/s1", b"cpu usage_idle=1 1700000000000000000")
    with pytest.raises(DecodeError, match="is not a number"):
        decoder("telegraf/s1", b"cpu,host=a usage_idle=abc 1700000000000000000")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["ts", "temp", "rpm", "x"]), inner, max_size=4),
    max_leaves=20).map(lambda doc: __import__("json").dumps(doc).encode()))
def test_a_mapped_payload_never_raises_anything_but_a_decode_error(payload: bytes) -> None:
    decoder = MappedDecoder([MappingConfig(**ACME)], clock=lambda: 1.7e9)
    try:
        batch = decoder(TOPIC, payload)
    except DecodeError:
        return
    assert batch.values.shape == (batch.n_samples, len(batch.fields))
    assert np.isfinite(batch.t).all()


def test_mapped_messages_dedup_by_device_and_time(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "t.sqlite")
    try:
        pipeline = CorePipeline(RobustZ(warmup=10), store,
                                decoder=MappedDecoder([MappingConfig(**ACME)]))
        first = pipeline.process_payload(TOPIC, b'{"ts": 1700000000, "temp": 1}')
        again = pipeline.process_payload(TOPIC, b'{"ts": 1700000000, "temp": 1}')
        later = pipeline.process_payload(TOPIC, b'{"ts": 1700000060, "temp": 1}')
        refused = pipeline.process_payload(TOPIC, b'{"temp": 1}')
        assert first is not None and later is not None and again is refused is None
        assert pipeline.stats.duplicate_batches == 1
        assert store.count_samples("acme") == 2
        assert dict(pipeline.dead_letters.counts) == {"mapping_mismatch": 1}
    finally:
        store.close()


CONFIG = """\
[[ingest.mapping]]
name = "acme-json"
topic = "acme/+site/+device/state"
format = "json"
tenant = "acme"
product = "heat_pump"
time_key = "ts"
"""


def test_ingest_test_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "forewarn.toml"
    config.write_text(CONFIG)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('{"ts": 1700000000, "discharge_temp": 61.5, "suction_pressure": 3.25}')
    bad.write_text('{"discharge_temp": 61.5}')
    argv = ["--config", str(config), "ingest", "test", "--mapping", "acme-json",
            "--topic", "acme/s1/hp-9/state", "--payload"]
    assert main([*argv, str(good)]) == 0
    out = capsys.readouterr().out
    assert "device hp-9" in out and "2023-11-14T22:13:20.000Z" in out
    assert "discharge_temp=61.5" in out and "suction_pressure=3.25" in out
    assert main([*argv, str(bad)]) == 1
    assert "mapping_mismatch" in capsys.readouterr().out
    assert main([*argv[:5], "nope", *argv[6:], str(good)]) == 2
    assert "no [[ingest.mapping]] named 'nope'" in capsys.readouterr().err


_READING = st.dictionaries(
    st.sampled_from(["ts", "temp", "rpm", "mode", "x"]),
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=4)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(1_600_000_000, 1_800_000_000_000), max_size=5)


@settings(max_examples=500, deadline=None)
@given(st.lists(_READING, min_size=1, max_size=4) | _READING,
       st.sampled_from(["ignore", "dead-letter"]), st.sampled_from(["ts", None]))
def test_the_fast_path_agrees_with_the_general_one(document: object, unknown: str,
                                                   time_key: str | None) -> None:
    import json

    from core.mapping.json_format import decode_json

    mapping = MappingConfig.model_validate({**ACME, "unknown_keys": unknown,
                                            "time_key": time_key})
    payload = json.dumps(document).encode()
    outcomes = []
    for fast in (True, False):
        try:
            _device, fields, t, values = decode_json(mapping, payload, 1.7e9, fast=fast)
            outcomes.append((fields, t.tolist(), np.nan_to_num(values, nan=-0.5).tolist()))
        except DecodeError as exc:
            outcomes.append((exc.reason, exc.detail))
    assert outcomes[0] == outcomes[1]


def test_csv_lines() -> None:
    decoder = MappedDecoder([
        MappingConfig(name="fixed", topic="plant/+device/csv", tenant="acme", format="csv",
                      columns=["ts", "temp", "rpm", "note"], time_key="ts",
                      fields=["temp", "rpm"]),
        MappingConfig(name="header", topic="plant/+site/csvh", tenant="acme", format="csv",
                      time_key="time", device_key="serial", unknown_keys="dead-letter",
                      fields=["temp"], scale={"temp": 0.1}),
    ], clock=lambda: 1.7e9)
    batch = decoder("plant/p-1/csv", b'1700000000,21.5,900,"a, b"\n'
                                     b"2023-11-14T22:13:30Z,,905,x\n")
    assert (batch.device_id, batch.fields) == ("p-1", ("temp", "rpm"))
    assert batch.t.tolist() == [1.7e9, 1.7e9 + 10]
    assert batch.values[0].tolist() == [21.5, 900.0] and math.isnan(batch.values[1, 0])
    batch = decoder("plant/s1/csvh", b"time,serial,temp\n1700000000,hp-3,215\n")
    assert (batch.device_id, batch.values.tolist()) == ("hp-3", [[21.5]])
    for topic, payload, words in [
        ("plant/p-1/csv", b"1700000000,warm,900,x\n", "is not a number"),
        ("plant/p-1/csv", b"1700000000,1,900\n", "3 cells, 4 columns"),
        ("plant/p-1/csv", b"soon,1,900,x\n", "not ISO 8601"),
        ("plant/s1/csvh", b"time,serial,temp,extra\n1700000000,hp-3,1,2\n", "unknown column"),
        ("plant/s1/csvh", b"time,temp\n1700000000,1\n", "no column 'serial'"),
    ]:
        with pytest.raises(DecodeError, match=words):
            decoder(topic, payload)


def test_ingest_test_command_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    config = tmp_path / "forewarn.toml"
    config.write_text(CONFIG)
    payload = tmp_path / "p.json"
    payload.write_text('[{"ts": 1700000000, "temp": 1.5}, {"ts": 1700000010, "temp": null}]')
    argv = ["--config", str(config), "ingest", "test", "--mapping", "acme-json", "--topic",
            "acme/s1/hp-9/state", "--payload", str(payload), "--json"]
    assert main(argv) == 0
    batch = json.loads(capsys.readouterr().out)
    assert (batch["tenant"], batch["device_id"], batch["fields"]) == ("acme", "hp-9", ["temp"])
    assert [r["values"]["temp"] for r in batch["readings"]] == [1.5, None]
    assert batch["readings"][1]["time"] == "2023-11-14T22:13:30.000Z"
    payload.write_text("[]")
    assert main(argv) == 1
    assert json.loads(capsys.readouterr().out)["dead_letter"]["reason"] == "mapping_mismatch"
