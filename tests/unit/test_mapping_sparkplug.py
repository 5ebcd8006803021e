"""Sparkplug B through a mapping (issue 22): births name aliases, data becomes the native batch,
deaths mark devices offline, seq gaps are counted. Payloads are encoded by pysparkplug itself."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pysparkplug as spb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.detect import RobustZ
from core.errors import DecodeError, NoTelemetry
from core.mapping import MappedDecoder, MappingConfig
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore
from forewarn.cli import main

PLANT = dict(name="plant", topic="spBv1.0/+tenant/#", format="sparkplug", product="heat_pump")
T0 = 1_700_000_000_000  # ms
DOUBLE, INT, BOOL = spb.DataType.DOUBLE, spb.DataType.INT32, spb.DataType.BOOLEAN


def _metric(name: str | None, alias: int | None, value: object, datatype: spb.DataType = DOUBLE,
            timestamp: int | None = None) -> spb.Metric:
    return spb.Metric(timestamp=timestamp, name=name, datatype=datatype, value=value,  # type: ignore[arg-type]
                      alias=alias)


def _nbirth(seq: int = 0) -> bytes:
    return spb.NBirth(timestamp=T0, seq=seq, metrics=(
        _metric("bdSeq", None, 0, spb.DataType.INT64),
        _metric("Node Control/Rebirth", 1, False, BOOL),
        _metric("Node/cpu_temp", 2, 45.0))).encode(include_dtypes=True)


def _dbirth(seq: int = 1) -> bytes:
    return spb.DBirth(timestamp=T0, seq=seq, metrics=(
        _metric("Inputs/discharge temp", 1, 61.5),
        _metric("Inputs/rpm", 2, 900, INT),
        _metric("Outputs/on", 3, True, BOOL))).encode(include_dtypes=True)


def _ddata(seq: int, values: dict[int, object], timestamp: int = T0 + 1000) -> bytes:
    return spb.DData(timestamp=timestamp, seq=seq, metrics=tuple(
        _metric(None, alias, value) for alias, value in values.items())).encode()


def _decoder(**mapping: object) -> MappedDecoder:
    return MappedDecoder([MappingConfig.model_validate({**PLANT, **mapping})])


def test_births_name_the_aliases_of_data() -> None:
    decoder = _decoder()
    node = decoder("spBv1.0/acme/NBIRTH/edge-1", _nbirth())
    assert (node.tenant, node.device_id, node.fields) == ("acme", "edge-1", ("Node.cpu_temp",))
    birth = decoder("spBv1.0/acme/DBIRTH/edge-1/hp-9", _dbirth())
    assert birth.fields == ("Inputs.discharge_temp", "Inputs.rpm")
    assert birth.values.tolist() == [[61.5, 900.0]] and birth.t.tolist() == [T0 / 1000]
    data = decoder("spBv1.0/acme/DDATA/edge-1/hp-9", _ddata(2, {2: 950, 1: 62.25}))
    assert (data.tenant, data.device_id, data.product) == ("acme", "hp-9", "heat_pump")
    assert data.fields == ("Inputs.rpm", "Inputs.discharge_temp")
    assert data.values.tolist() == [[950.0, 62.25]] and data.t.tolist() == [T0 / 1000 + 1]
    assert decoder.sparkplug.births == 2 and decoder.sparkplug.seq_gaps == 0


def test_metric_timestamps_give_one_reading_each() -> None:
    decoder = _decoder(rename={"Inputs/discharge temp": "discharge_temp"})
    decoder("spBv1.0/acme/DBIRTH/edge-1/hp-9", _dbirth())
    payload = spb.DData(timestamp=T0 + 5000, seq=2, metrics=(
        _metric(None, 1, 70.0, timestamp=T0 + 2000), _metric(None, 1, 71.0, timestamp=T0 + 3000),
        _metric(None, 2, 1000, timestamp=T0 + 3000))).encode()
    batch = decoder("spBv1.0/acme/DDATA/edge-1/hp-9", payload)
    assert batch.fields == ("discharge_temp", "Inputs.rpm")
    assert batch.t.tolist() == [T0 / 1000 + 2, T0 / 1000 + 3]
    values = [[None if math.isnan(v) else v for v in row] for row in batch.values.tolist()]
    assert values == [[70.0, None], [71.0, 1000.0]]


@pytest.mark.parametrize(("topic", "payload", "words"), [
    ("spBv1.0/acme/DDATA/edge-1/hp-9", _ddata(2, {1: 1.0}), "alias 1 unknown"),
    ("spBv1.0/acme/DDATA/edge-1", _ddata(2, {1: 1.0}), "needs device level"),
    ("spBv1.0/acme/XDATA/edge-1/hp-9", _ddata(2, {1: 1.0}), "is not spBv1.0"),
    ("spBv1.0/acme/DBIRTH/edge-1/hp-9", b"\xff\xff\xff", "not a Sparkplug B payload"),
    ("spBv1.0/acme/DBIRTH/edge-1/hp-9", spb.DBirth(timestamp=T0, seq=1, metrics=(
        _metric("mode", 1, "heat", spb.DataType.STRING),)).encode(include_dtypes=True),
     "without a numeric metric"),
], ids=["alias-without-birth", "ddata-without-device", "unknown-type", "garbage", "no-number"])
def test_messages_that_do_not_fit_say_why(topic: str, payload: bytes, words: str) -> None:
    with pytest.raises(DecodeError, match=words):
        _decoder()(topic, payload)


def test_deaths_mark_devices_offline_and_seq_gaps_are_counted() -> None:
    decoder = _decoder()
    decoder("spBv1.0/acme/NBIRTH/edge-1", _nbirth(0))
    decoder("spBv1.0/acme/DBIRTH/edge-1/hp-9", _dbirth(1))
    decoder("spBv1.0/acme/DDATA/edge-1/hp-9", _ddata(2, {1: 60.0}))
    decoder("spBv1.0/acme/DDATA/edge-1/hp-9", _ddata(5, {1: 60.0}, T0 + 2000))  # 3, 4 lost
    decoder("spBv1.0/acme/DDATA/edge-1/hp-9", _ddata(6, {1: 60.0}, T0 + 3000))
    state = decoder.sparkplug
    assert (state.seq_gaps, state.seq_missing) == (1, 2)
    death = spb.DDeath(timestamp=T0 + 4000, seq=7).encode()
    with pytest.raises(NoTelemetry, match="DDEATH: device 'hp-9'"):
        decoder("spBv1.0/acme/DDEATH/edge-1/hp-9", death)
    assert state.offline == {("acme", "edge-1", "hp-9")} and state.deaths == 1
    decoder("spBv1.0/acme/DBIRTH/edge-1/hp-9", _dbirth(8))
    assert state.offline == set() and state.seq_gaps == 1


def test_seq_wraps_at_256_without_a_gap() -> None:
    decoder = _decoder()
    decoder("spBv1.0/acme/DBIRTH/edge-1/hp-9", _dbirth(254))
    for i, seq in enumerate((255, 0, 1)):
        decoder("spBv1.0/acme/DDATA/edge-1/hp-9", _ddata(seq, {1: 1.0}, T0 + 1000 * (i + 1)))
    assert decoder.sparkplug.seq_gaps == 0


def test_pipeline_stores_data_and_counts_deaths_without_dead_letters(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "t.sqlite")
    try:
        pipeline = CorePipeline(RobustZ(warmup=10), store, decoder=_decoder())
        pipeline.process_payload("spBv1.0/acme/DBIRTH/edge-1/hp-9", _dbirth())
        for i in range(5):
            pipeline.process_payload("spBv1.0/acme/DDATA/edge-1/hp-9",
                                     _ddata(2 + i, {1: 60.0 + i}, T0 + 1000 * (i + 1)))
        pipeline.process_payload("spBv1.0/acme/DDEATH/edge-1/hp-9",
                                 spb.DDeath(timestamp=T0 + 9000, seq=7).encode())
        pipeline.process_payload("spBv1.0/acme/DDATA/edge-1/hp-9", b"\x00garbage")
        assert store.count_samples("acme") == 1 + 5
        assert pipeline.stats.no_telemetry == 1
        assert dict(pipeline.dead_letters.counts) == {"mapping_mismatch": 1}
    finally:
        store.close()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["DDATA", "DBIRTH", "NDATA", "DDEATH"]))
def test_a_sparkplug_payload_never_raises_anything_but_a_decode_error(payload: bytes,
                                                                      kind: str) -> None:
    topic = f"spBv1.0/acme/{kind}/edge-1" + ("/hp-9" if kind.startswith("D") else "")
    try:
        batch = _decoder()(topic, payload)
    except DecodeError:
        return
    assert batch.t.shape[0] == batch.values.shape[0] >= 1


CONFIG = """\
[[ingest.mapping]]
name = "plant"
topic = "spBv1.0/+tenant/#"
format = "sparkplug"
product = "heat_pump"
"""


def test_ingest_test_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "forewarn.toml"
    config.write_text(CONFIG)
    birth, data, death = tmp_path / "birth.bin", tmp_path / "data.bin", tmp_path / "death.bin"
    birth.write_bytes(_dbirth())
    data.write_bytes(_ddata(2, {1: 62.25}))
    death.write_bytes(spb.DDeath(timestamp=T0, seq=3).encode())
    argv = ["--config", str(config), "ingest", "test", "--mapping", "plant"]
    topic = "spBv1.0/acme/DDATA/edge-1/hp-9"
    assert main([*argv, "--topic", topic, "--payload", str(data)]) == 1
    assert "alias 1 unknown" in capsys.readouterr().out
    assert main([*argv, "--topic", topic, "--payload", str(data),
                 "--birth", "spBv1.0/acme/DBIRTH/edge-1/hp-9", str(birth)]) == 0
    out = capsys.readouterr().out
    assert "device hp-9" in out and "Inputs.discharge_temp=62.25" in out
    assert main([*argv, "--topic", "spBv1.0/acme/DDEATH/edge-1/hp-9",
                 "--payload", str(death)]) == 0
    assert "offline" in capsys.readouterr().out


def test_sniff_proposes_a_sparkplug_mapping_per_group() -> None:
    from core.mapping import IngestConfig
    from forewarn.sniff import propose

    seen = [("spBv1.0/plant-1/NBIRTH/edge-1", _nbirth()),
            ("spBv1.0/plant-1/DBIRTH/edge-1/hp-9", _dbirth()),
            *[("spBv1.0/plant-1/DDATA/edge-1/hp-9", _ddata(2 + i, {1: 60.0})) for i in range(3)],
            ("acme/s1/hp-1/state", b'{"ts": 1700000000, "temp": 21.5}')]
    proposals = propose(seen, tenant="acme")
    assert [(p.format, p.topic, p.messages) for p in proposals] == [
        ("sparkplug", "spBv1.0/plant-1/#", 5), ("json", "acme/s1/hp-1/state", 1)]
    block = proposals[0].toml()
    assert "# metrics in births: Node Control/Rebirth, Node/cpu_temp, Inputs/discharge" in block
    mapping = IngestConfig.model_validate(tomllib.loads(block)["ingest"]).mapping[0]
    decoder = MappedDecoder([mapping])
    decoder(seen[1][0], seen[1][1])
    assert decoder(*seen[2]).values.tolist() == [[60.0]]
