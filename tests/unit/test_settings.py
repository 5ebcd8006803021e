"""Configuration: the example file loads, precedence is defaults → TOML → environment, and a
wrong key is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from forewarn.errors import ConfigError
from forewarn.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "forewarn.example.toml"


def test_example_config_loads_and_matches_defaults() -> None:
    assert load_settings(EXAMPLE, env={}) == Settings()


@pytest.mark.parametrize(
    ("toml", "env", "port"),
    [
        ("", {}, 1883),
        ("[mqtt]\nport = 1999\n", {}, 1999),
        ("[mqtt]\nport = 1999\n", {"FOREWARN_MQTT__PORT": "2001"}, 2001),
        ("", {"FOREWARN_MQTT__PORT": "2002"}, 2002),
    ],
    ids=["default", "toml", "env-over-toml", "env"],
)
def test_precedence(tmp_path: Path, toml: str, env: dict[str, str], port: int) -> None:
    path = tmp_path / "forewarn.toml"
    path.write_text(toml)
    assert load_settings(path, env=env).mqtt.port == port


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[mqtt]\nprot = 1\n", {}, "mqtt.prot"),
        ("[mqtt]\nport = 'x'\n", {}, "mqtt.port"),
        ("", {"FOREWARN_MQTT__PORT": "99999"}, "mqtt.port"),
        ("not toml [", {}, "cannot read"),
    ],
    ids=["unknown-key", "wrong-type", "env-out-of-range", "broken-file"],
)
def test_errors_name_the_key(tmp_path: Path, toml: str, env: dict[str, str], message: str) -> None:
    path = tmp_path / "forewarn.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env=env)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})
