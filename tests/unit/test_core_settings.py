"""``[core]`` and ``[nats]`` of ``forewarn core``: file, environment and command line, in that
order of precedence; what the supervisor hands its workers is what it resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.nats import NatsConfig
from forewarn.cli import build_parser
from forewarn.commands.core import resolve_settings
from forewarn.errors import ConfigError
from forewarn.settings import Settings, load_settings

_TOML = """\
[core]
engine = "nats"
workers = 3
owned_partitions = "0-7"
outbox = false
tick_interval_s = 5

[nats]
url = "nats://nats-1:4222"
stream = "FW_FILE"
partitions = 16
fetch_batch = 32
ack_wait_s = 17
max_age_s = 7200
snapshot_interval_s = 600
"""


def _resolved(tmp_path: Path, toml: str, env: dict[str, str], argv: list[str]) -> Settings:
    path = tmp_path / "forewarn.toml"
    path.write_text(toml)
    args = build_parser().parse_args(["--config", str(path), "core", *argv])
    return resolve_settings(load_settings(path, env=env), args)


def test_the_file_alone_configures_the_nats_engine(tmp_path: Path) -> None:
    settings = _resolved(tmp_path, _TOML, {}, [])
    assert (settings.core.engine, settings.core.workers, settings.core.owned_partitions,
            settings.core.outbox, settings.core.tick_interval_s) == ("nats", 3, "0-7", False, 5.0)
    assert settings.nats == NatsConfig(url="nats://nats-1:4222", stream="FW_FILE", partitions=16,
                                       fetch_batch=32, ack_wait_s=17, max_age_s=7200,
                                       snapshot_interval_s=600)


@pytest.mark.parametrize(
    ("env", "argv", "expected"),
    [
        ({}, [], ("nats://nats-1:4222", 32, 7200.0, 16, False)),
        ({"FOREWARN_NATS__URL": "nats://env:4222", "FOREWARN_NATS__FETCH_BATCH": "8"}, [],
         ("nats://env:4222", 8, 7200.0, 16, False)),
        ({"FOREWARN_NATS__URL": "nats://env:4222"},
         ["--nats-url", "nats://cli:4222", "--retention-hours", "3", "--stream-partitions", "64",
          "--outbox"],
         ("nats://cli:4222", 32, 3 * 3600.0, 64, True)),
        ({"FOREWARN_NATS__FETCH_BATCH": "8"}, ["--fetch-batch", "128", "--no-outbox"],
         ("nats://nats-1:4222", 128, 7200.0, 16, False)),
    ],
    ids=["file", "env-over-file", "cli-over-env", "cli-over-env-fetch"],
)
def test_precedence_file_env_command_line(tmp_path: Path, env: dict[str, str], argv: list[str],
                                          expected: tuple[object, ...]) -> None:
    settings = _resolved(tmp_path, _TOML, env, argv)
    nats = settings.nats
    assert (nats.url, nats.fetch_batch, nats.max_age_s, nats.partitions,
            settings.core.outbox) == expected
    assert nats.ack_wait_s == 17  # a key without a flag keeps the file's value


def test_options_left_out_keep_the_defaults(tmp_path: Path) -> None:
    settings = _resolved(tmp_path, "", {}, [])
    assert settings.nats == NatsConfig()
    assert (settings.core.engine, settings.core.workers, settings.core.outbox) == ("mqtt", 2,
                                                                                   True)


@pytest.mark.parametrize(
    ("toml", "env", "argv", "message"),
    [
        ("", {}, ["--fetch-batch", "0"], "NatsConfig.fetch_batch"),
        ("", {}, ["--workers", "0"], "workers"),
        ("[nats]\npartitions = 0\n", {}, [], "nats.partitions"),
        ("[nats]\nurll = 'x'\n", {}, [], "nats.urll"),
        ("", {"FOREWARN_CORE__ENGINE": "kafka"}, [], "core.engine"),
        ("[core]\nowned_partitions = '0..7'\n", {}, [], "core.owned_partitions"),
    ],
    ids=["flag-out-of-range", "workers-zero", "file-out-of-range", "unknown-key", "bad-engine",
         "bad-slice"],
)
def test_errors_name_the_key(tmp_path: Path, toml: str, env: dict[str, str], argv: list[str],
                             message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _resolved(tmp_path, toml, env, argv)


def test_settings_survive_the_trip_to_a_worker(tmp_path: Path) -> None:
    # what the supervisor writes to a worker's stdin is what the worker reads back
    settings = _resolved(tmp_path, _TOML + '\n[detector]\nquiet = 5\n',
                         {"FOREWARN_NATS__FETCH_BATCH": "8"}, ["--snapshot-interval", "9"])
    assert Settings.model_validate_json(settings.model_dump_json()) == settings


def test_state_and_metrics_keys_from_file_and_command_line(tmp_path: Path) -> None:
    toml = ('[core]\nstate_dir = "/srv/forewarn/state"\nsnapshot_interval_s = 120\n'
            'metrics_port = 9300\nmetrics_host = "0.0.0.0"\n')
    settings = _resolved(tmp_path, toml, {}, [])
    assert (settings.core.state_dir, settings.core.snapshot_interval_s, settings.core.metrics_port,
            settings.core.metrics_host) == (Path("/srv/forewarn/state"), 120.0, 9300, "0.0.0.0")
    defaults = _resolved(tmp_path, "", {}, []).core
    assert (defaults.state_dir, defaults.snapshot_interval_s, defaults.metrics_port) == (
        Path("var/state"), 300.0, 0)
    # one flag for both engines' snapshots; --metrics-port over the file
    flagged = _resolved(tmp_path, toml, {}, ["--snapshot-interval", "60", "--metrics-port", "9400"])
    assert (flagged.core.snapshot_interval_s, flagged.nats.snapshot_interval_s,
            flagged.core.metrics_port) == (60.0, 60.0, 9400)
    with pytest.raises(ConfigError, match="metrics_port"):
        _resolved(tmp_path, "", {}, ["--metrics-port", "70000"])
