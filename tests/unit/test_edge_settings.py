"""Edge settings, sample sources, device credentials and the payload codec."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import zlib
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given

from edge.schema import (
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_ZLIB,
    PayloadError,
    decode_payload,
    encode_payload,
)
from forewarn.commands.edge import main as edge_main
from forewarn.devices import passwords as devices
from forewarn.edge import (
    CallableSource,
    CommandSource,
    SimSource,
    SourceSection,
    build_source,
    load_edge_settings,
    open_agent,
)
from forewarn.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "edge.example.toml"


def test_example_config_loads() -> None:
    settings = load_edge_settings(EXAMPLE)
    assert settings.device_id == settings.broker.username == "hp-0001"
    assert settings.batching.age_clock == "wall"
    assert settings.queue.durability == "crash" and settings.queue.synchronous == "NORMAL"
    assert settings.source.kind == "sim"


@pytest.mark.parametrize(("durability", "pragma"), [("crash", 1), ("power-cut", 2)],
                         ids=["crash-is-NORMAL", "power-cut-is-FULL"])
def test_queue_durability_sets_sqlite_synchronous(tmp_path: Path, durability: str,
                                                  pragma: int) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(f'device_id = "hp-1"\n[queue]\npath = "{tmp_path / "q.sqlite"}"\n'
                      f'durability = "{durability}"\n')
    agent = open_agent(load_edge_settings(config), "heat_pump", ("a",), 60.0)
    assert agent.queue is not None
    try:
        assert agent.queue._db.execute("PRAGMA synchronous").fetchone()[0] == pragma
    finally:
        agent.queue.close()


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_EDGE_BROKER__PASSWORD", "from-env")
    monkeypatch.setenv("FOREWARN_EDGE_BATCHING__MAX_SAMPLES", "7")
    settings = load_edge_settings(EXAMPLE)
    assert (settings.broker.password, settings.batching.max_samples) == ("from-env", 7)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('device_id = "d"\n[batching]\nmax_sample = 3\n', "batching.max_sample"),
        ('device_id = "d"\n[queue]\nmax_bytes = 10\n', "queue.max_bytes"),
        ("tenant = 'x'\n", "device_id"),
    ],
    ids=["unknown-key", "too-small", "missing-device"],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_edge_settings(path)
    assert str(path) in str(info.value)


def read_sensor() -> dict[str, float | None]:
    """A source callable for the test below."""
    return {"a": 1.5, "b": None}


def test_sources() -> None:
    sim = build_source(SourceSection(sample_period_s=60.0, index=2))
    assert isinstance(sim, SimSource) and sim.device.device_id == "hp-0002"
    section = SourceSection(kind="callable", callable=f"{__name__}:read_sensor",
                            fields=["a", "b"])
    source = build_source(section)
    assert isinstance(source, CallableSource)
    t, row = asyncio.run(source.read()) or (0.0, [])
    assert row[0] == 1.5 and math.isnan(row[1]) and t > 0
    with pytest.raises(ConfigError, match="fields"):
        build_source(SourceSection(kind="command", command=["true"]))


def test_command_source_reads_json_lines() -> None:
    program = "print('{\"t\": 5.0, \"a\": 2}'); print('noise'); print('{\"a\": 3}')"
    source = CommandSource([sys.executable, "-c", program], ("a",), "generic")

    async def read_all() -> list[tuple[float, list[float]]]:
        out = []
        while (sample := await source.read()) is not None:
            out.append(sample)
        await source.aclose()
        return out

    first, second = asyncio.run(read_all())
    assert first == (5.0, [2.0]) and second[1] == [3.0]


def test_devices_add_writes_a_mosquitto_entry(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    passwd = tmp_path / "passwd"
    devices.add_device(passwd, "hp-1", "one", iterations=1000)
    devices.add_device(passwd, "hp-2", "two", iterations=1000)
    devices.add_device(passwd, "hp-1", "uno")  # replaces, does not duplicate
    lines = passwd.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["hp-2", "hp-1"]
    assert devices.verify_password_line(lines[1], "uno")
    assert passwd.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError):
        devices.add_device(passwd, "bad/id", "x")


def test_edge_run_requires_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        edge_main(["run"])
    assert "--config" in capsys.readouterr().err


@given(st.binary(max_size=300))
def test_decode_payload_raises_only_payload_error(payload: bytes) -> None:
    for content_type in (None, CONTENT_TYPE_JSON, CONTENT_TYPE_ZLIB, "text/plain"):
        properties = type("P", (), {"ContentType": content_type})() if content_type else None
        with contextlib.suppress(PayloadError):
            decode_payload(payload, properties)


@given(st.binary(max_size=3000).map(lambda b: b"{" + b), st.integers(0, 4000))
def test_encode_then_decode_round_trips(body: bytes, threshold: int) -> None:
    payload, content_type = encode_payload(body, threshold)
    properties = type("P", (), {"ContentType": content_type})()
    assert decode_payload(payload, properties) == body
    assert decode_payload(payload, None) == body  # a bridge dropped the properties


def test_decompression_bomb_is_refused() -> None:
    bomb = zlib.compress(b"{" + b" " * (17 * 1024 * 1024))
    with pytest.raises(PayloadError, match="larger than"):
        decode_payload(bomb, None)
