"""``forewarn rules check/show``: every example file passes, errors name file/line/key."""

from __future__ import annotations

from pathlib import Path

import pytest

from forewarn.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_examples_check(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in sorted((ROOT / "config/rules").glob("*.yaml"))]
    code = main(["rules", "check", *files, "--customers",
                 str(ROOT / "config/customers.example.yaml"), "--rules"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "heat_pump_offline: no data for 7200 s" in out


def test_bad_file_fails_naming_line_and_key(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    score_at_least: 0.8\n    fro: 10m\n")
    assert main(["rules", "check", str(bad)]) == 1
    assert f"{bad}, line 4: rules.0.fro: Extra inputs are not permitted" in (
        capsys.readouterr().out)


def test_show_lists_rules_and_windows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "show", str(ROOT / "config/rules/heat_pump.yaml")]) == 0
    out = capsys.readouterr().out
    assert "maintenance service_visits: 02:00-04:00 tue (device)" in out
