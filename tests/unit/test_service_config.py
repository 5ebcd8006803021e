"""The service's configuration through ``forewarn``'s own parser: ``--config`` reaches every
command, files named in it are found beside it (from any working directory), and what cannot
be used is one line and exit code 2."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.detect import DetectorConfig
from core.events import ScoredBatch
from core.store.embedded import EmbeddedStore
from forewarn import cli
from forewarn.service import Service
from forewarn.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _config(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "forewarn.toml"
    path.write_text(f'{body}\n[cases]\nurl = "sqlite:///{folder}/cases.sqlite"\n')
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("forewarn: error: ")
    return err


@pytest.mark.parametrize("argv", [
    ["demo", "--quiet"],
    ["serve"],
    ["tokens", "list"],
    ["backfill", "--device", "hp-1", "--start", "0", "--stop", "60"],
    ["outbox", "list"],
    ["rules", "silences"],
    ["core"],
], ids=lambda argv: argv[0])
def test_config_reaches_every_command_and_a_missing_file_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    # the old parser handed --config over as a str: 'str' object has no attribute 'exists'
    config = _config(tmp_path / "etc", '[customers]\nfile = "customers.yaml"\n')
    err = _one_line_error(capsys, ["--config", str(config), *argv])
    assert "[customers] file" in err and str(tmp_path / "etc" / "customers.yaml") in err


def test_outbox_list_with_a_config_file_exits_0(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "")
    assert cli.main(["--config", str(config), "outbox", "list"]) == 0


def test_files_are_found_beside_the_config_from_another_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    etc = tmp_path / "etc"
    (etc / "rules").mkdir(parents=True)
    (etc / "rules" / "pump.yaml").write_text(
        "rules:\n  - name: pump_odd\n    product: water_pump\n    score_at_least: 0.9\n")
    (etc / "limits.yaml").write_text("water_pump: {pressure: {lo: 0, hi: 10}}\n")
    config = _config(etc, '[core]\nlimits_file = "limits.yaml"\n[rules]\ndir = "rules"\n')
    monkeypatch.chdir(tmp_path / "..")
    service = Service(load_settings(str(config)))
    assert service.configured.rule_files == (etc / "rules" / "pump.yaml",)
    assert service.configured.products() == ["water_pump"]
    assert service.configured.limits is not None


def test_a_minimal_config_elsewhere_runs_the_shipped_rules_of_every_product(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, "[mqtt]\nport = 1999\n")
    monkeypatch.chdir(tmp_path)
    configured = Service(load_settings(config)).configured
    assert {"heat_pump", "home_battery", "water_pump"} <= set(configured.products())
    assert configured.limits is not None


@pytest.mark.parametrize(("limits", "expected"), [
    ("heat_pump: [1, 2\n", "[core] limits_file"),
    ("heat_pump: {discharge_temp: {lo: x}}\n", "[core] limits_file"),
], ids=["not-yaml", "not-a-limit"])
def test_a_bad_limits_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       limits: str, expected: str) -> None:
    (tmp_path / "limits.yaml").write_text(limits)
    config = _config(tmp_path, '[core]\nlimits_file = "limits.yaml"\n')
    err = _one_line_error(capsys, ["--config", str(config), "core"])
    assert expected in err and "limits.yaml" in err


@pytest.mark.parametrize(("body", "expected"), [
    ('[notify]\nteam = "webhook"\n', "[notify] team names the channel 'webhook'"),
    ('[serve]\nhelpdesk_channel = "email"\n', "[serve] helpdesk_channel"),
    (f'[customers]\nfile = "{ROOT}/config/customers.example.yaml"\n',
     "names the channel"),
    ('[notify]\nteam = "email"\n[notify.email]\nhost = "smtp.example.com"\n'
     'sender = "a@example.com"\ntls = "none"\nusername = "u"\npassword = "p"\n',
     "login refused without TLS"),
    ('[notify.webhook]\nurl = "https://example.com"\n', "secret"),
    ('[notify.email]\nhost = "h"\nsender = "a@example.com"\nsmtp_port = 2\n', "smtp_port"),
    ('[rules]\ndir = "nowhere"\n', "[rules] dir"),
], ids=["team", "helpdesk", "customer-contact", "login-in-clear", "no-secret", "unknown-key",
        "no-rules-dir"])
def test_what_cannot_be_used_is_one_line_at_start(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str) -> None:
    config = _config(tmp_path, body)
    err = _one_line_error(capsys, ["--config", str(config), "core"])
    assert expected in err


def test_backfill_scores_with_the_profile_the_service_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 50
    with EmbeddedStore(tmp_path / "fw.sqlite") as store:
        store.write(ScoredBatch("acme", "hp-1", "heat_pump", ("temp",),
                                1_700_000_000.0 + np.arange(n) * 60.0,
                                np.full((n, 1), 20.0), np.zeros((n, 1))))
    config = _config(tmp_path, f'[store]\npath = "{tmp_path}/fw.sqlite"\n'
                               '[detector]\nregression_half_z = 4.0\n')
    seen: list[DetectorConfig | None] = []
    from forewarn.commands import backfill as command

    real = command.make_detector

    def spy(config: DetectorConfig | None = None) -> Any:
        seen.append(config)
        return real(config)

    monkeypatch.setattr(command, "make_detector", spy)
    assert cli.main(["--config", str(config), "backfill", "--tenant", "acme", "--device", "hp-1",
                     "--start", "1700000000", "--stop", "1700010000", "--quiet"]) == 0
    assert seen and seen[0] == DetectorConfig(regression_half_z=4.0)


def test_every_products_rules_apply_to_their_own_devices_only(tmp_path: Path) -> None:
    (tmp_path / "customers.yaml").write_text(
        "customers: [{id: kim, language: ko, timezone: Asia/Seoul}]\n"
        "devices:\n"
        "  bat-1: {customer: kim, product: home_battery, installed_at: 0}\n"
        "  wp-1: {customer: kim, product: water_pump, installed_at: 0}\n")
    config = _config(tmp_path, 'tenant = "acme"\n[customers]\nfile = "customers.yaml"\n')
    service = Service(load_settings(config))
    engine = service.connect_cases()
    try:
        rules = service.rules_pipeline(engine)
        product_of = {r.name: r.product for r in rules.rules.rules}
        # never reported since installed: each device's own product's no-data rule, under
        # the deployment's tenant (not every product's, not tenant "")
        rules.tick(86400.0)
        silent = sorted((key[2], product_of[key[0]]) for key in rules.evaluator.states)
        assert silent == [("bat-1", "home_battery"), ("wp-1", "water_pump")]
        assert {key[1] for key in rules.evaluator.states} == {"acme"}
        assert {c.device_id for c in rules.opened} == {"bat-1", "wp-1"}
        assert all(c.customer_id == "kim" for c in rules.opened)
        # telemetry of one product meets only that product's rules
        n = 10
        batch = ScoredBatch("acme", "hp-7", "heat_pump", ("discharge_temp", "compressor_current"),
                            86400.0 + np.arange(n) * 60.0, np.full((n, 2), 50.0),
                            np.zeros((n, 2)))
        rules.handle(batch)
        touched = {product_of[key[0]] for key in rules.evaluator.states if key[2] == "hp-7"}
        assert touched == {"heat_pump"}
    finally:
        engine.dispose()


def test_rules_check_reads_the_configured_registry(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "customers.yaml").write_text("customers: [{id: kim, lnguage: ko}]\n")
    config = _config(tmp_path, '[customers]\nfile = "customers.yaml"\n')
    code = cli.main(["--config", str(config), "rules", "check",
                     str(ROOT / "config/rules/heat_pump.yaml")])
    out = capsys.readouterr().out
    assert code == 1 and "customers.yaml, line 1: customers.0.lnguage" in out


def test_core_help_is_for_users(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["core", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text and "standard input" not in text and "stdin" not in text
    assert "docs/deploy.md" in text


def test_the_production_example_in_deploy_loads(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    shutil.copytree(ROOT / "config" / "rules", etc / "rules")
    shutil.copy(ROOT / "config" / "limits.yaml", etc / "limits.yaml")
    shutil.copy(ROOT / "config" / "customers.example.yaml", etc / "customers.yaml")
    (etc / "smtp-password").write_text("pw\n")
    (etc / "webhook-secret").write_text("s3cret\n")
    shutil.copy(ROOT / "deploy" / "systemd" / "forewarn.toml.example", etc / "forewarn.toml")
    env = {"FOREWARN_CASES__URL": "postgresql+psycopg://forewarn:pw@127.0.0.1/forewarn"}
    service = Service(load_settings(etc / "forewarn.toml", env=env))
    assert service.configured.channels == ("terminal", "email", "webhook", "apprise")
    said = "\n".join(service.describe())
    assert "forewarn:***@127.0.0.1" in said and ":pw@" not in said
