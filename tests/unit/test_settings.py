"""Configuration: the example file loads, precedence is defaults → TOML → environment, and a
wrong key is a clear error."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from forewarn.errors import ConfigError
from forewarn.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "forewarn.example.toml"


def test_example_config_loads_with_its_files_beside_it() -> None:
    settings = load_settings(EXAMPLE, env={})
    config = EXAMPLE.parent
    assert settings.core.limits_file == config / "limits.yaml"
    assert settings.rules.dir == config / "rules"
    assert settings.customers.file == config / "customers.example.yaml"
    assert settings.notify.channels() == ("terminal", "email", "webhook", "apprise")
    assert settings.notify.email is not None and settings.notify.email.tls == "starttls"
    # what the example does not name on purpose is the default
    assert settings.model_dump(exclude={"core", "rules", "customers", "notify"}) == \
        Settings().model_dump(exclude={"core", "rules", "customers", "notify"})


def _keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for name, info in model.model_fields.items():
        sub = info.annotation
        for arg in (*get_args(sub), sub):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out += _keys(arg, f"{prefix}{name}.")
                break
        else:
            out.append((prefix, name))
    return out


def test_every_key_is_documented_in_the_example() -> None:
    text = EXAMPLE.read_text()
    skip = {"detector"}  # [detector] is documented in docs/detection.md (dozens of knobs)
    missing = [f"{prefix}{name}" for prefix, name in _keys(Settings)
               if prefix.split(".")[0] not in skip
               and not re.search(rf"^#?\s*{name}\s*=", text, re.MULTILINE)]
    assert not missing, f"keys missing from {EXAMPLE.name}: {missing}"


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


@pytest.mark.parametrize(("tls", "port"), [("starttls", 587), ("implicit", 465), ("none", 587)])
def test_the_email_port_follows_the_tls_mode(tmp_path: Path, tls: str, port: int) -> None:
    path = tmp_path / "forewarn.toml"
    path.write_text(f'[notify.email]\nhost = "smtp.example.com"\nsender = "a@example.com"\n'
                    f'tls = "{tls}"\n')
    email = load_settings(path, env={}).notify.email
    assert email is not None and email.port == port
