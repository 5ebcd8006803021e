"""``forewarn rules check`` as a newcomer meets it (issue 24): each problem said once, in
words that point at the fix, products and fields checked, folders of rules files."""

from __future__ import annotations

from pathlib import Path

import pytest

from forewarn.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, str]:
    path = tmp_path / "hp.yaml"
    path.write_text(text)
    code = main(["rules", "check", str(path)])
    return code, capsys.readouterr().out


CASES = [
    pytest.param("rules:\n  - name: x\n    score_at_least: 0.8\n    fro: 10m\n",
                 ["line 4: rules.0.fro", "did you mean `for`?"], id="typo-of-for"),
    pytest.param("rules:\n  - name: x\n    score_at_least: 0.8\n    for: 10m\n"
                 "    clear: {not: {scor: {at_least: 0.5}}}\n",
                 ["did you mean `score`?"], id="typo-in-a-condition"),
    pytest.param("", ["empty rules file"], id="empty"),
    pytest.param("# only a comment\n", ["empty rules file"], id="only-comments"),
    pytest.param("rules:\n  - name: a\n   product: x\n",
                 ["hp.yaml, line 3, column 4: not valid YAML"], id="yaml-syntax"),
]


@pytest.mark.parametrize(("text", "words"), CASES)
def test_a_broken_file_gets_one_line_that_points_at_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, words: list[str],
) -> None:
    code, out = _check(tmp_path, capsys, text)
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    for word in words:
        assert word in lines[0], out
    assert str(tmp_path / "hp.yaml") in lines[0]
    assert "<unicode string>" not in out and "Tuple should have" not in out
    assert "valid dictionary" not in out


def test_unknown_products_and_fields_are_warned_about_with_suggestions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _check(tmp_path, capsys, "rules:\n  - name: hot\n    product: heat_pmup\n"
                       "    fields: [discharge_tmp]\n    score_at_least: 0.9\n    for: 10m\n")
    assert code == 0
    assert "'heat_pmup' is not a known product (did you mean 'heat_pump'?)" in out
    assert "'discharge_tmp'" in out and "did you mean 'discharge_temp'?" in out
    assert "— ok" not in out


def test_a_field_of_another_product_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _check(tmp_path, capsys, "rules:\n  - name: hot\n    product: water_pump\n"
                       "    when: {value: {field: discharge_temp, above: 80}}\n    for: 0s\n")
    assert code == 0 and "'discharge_temp' is no field of water_pump" in out


def test_a_folder_checks_every_file_in_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(ROOT / "config/rules")]) == 0
    out = capsys.readouterr().out
    for name in ("heat_pump", "home_battery", "water_pump"):
        assert f"{name}.yaml: " in out
    assert "warning" not in out and "Is a directory" not in out


def test_one_rule_is_said_in_the_singular(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _check(tmp_path, capsys, "rules:\n  - name: x\n    score_at_least: 0.8\n"
                       "    for: 10m\n")
    assert code == 0 and "1 rule, 0 silences — ok" in out
