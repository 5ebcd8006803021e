"""A user's mistake in any command ends as one line on stderr and exit code 2, no traceback.

The shell (:func:`forewarn.cli.main`) reports the shell's own errors and every package's tree
(:data:`forewarn.errors.USER_ERRORS`) the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from forewarn.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _bad_limits(tmp: Path) -> list[str]:
    # core's LimitsFileError, raised while the demo wires its pipeline
    limits = tmp / "limits.yaml"
    limits.write_text("heat_pump: [not, a, table]\n")
    config = tmp / "forewarn.toml"
    config.write_text(f'[core]\nlimits_file = "{limits}"\n\n'
                      f'[cases]\nrules_file = "{ROOT / "config/rules/heat_pump.yaml"}"\n')
    return ["--config", str(config), "demo", "--devices", "1", "--hours", "1", "--quiet",
            "--out", str(tmp / "demo")]


def _bad_device_name(tmp: Path) -> list[str]:
    return ["devices", "add", "hp 1", "--mosquitto-passwd", str(tmp / "passwd")]


def _missing_edge_config(tmp: Path) -> list[str]:
    return ["edge", "run", "--config", str(tmp / "absent.toml")]


def _missing_score_input(tmp: Path) -> list[str]:
    return ["score", str(tmp / "absent.csv"), "--out", str(tmp / "scored.csv")]


def _bad_silence_duration(tmp: Path) -> list[str]:
    return ["rules", "silence", "--device", "hp-1", "--for", "soon",
            "--db", f"sqlite:///{tmp / 'cases.sqlite'}"]


MISTAKES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "demo-bad-limits-file": (_bad_limits, "limits.yaml"),
    "devices-add-bad-name": (_bad_device_name, "'hp 1'"),
    "edge-missing-config": (_missing_edge_config, "absent.toml"),
    "score-missing-input": (_missing_score_input, "absent.csv"),
    "rules-silence-bad-duration": (_bad_silence_duration, "soon"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES), ids=list(MISTAKES))
def test_a_mistake_is_one_line_and_exit_code_2(
        mistake: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, names = MISTAKES[mistake]
    code = main(argv(tmp_path))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("forewarn: error: "), err
    assert names in lines[0] and "Traceback" not in err
