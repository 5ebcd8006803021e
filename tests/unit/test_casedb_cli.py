"""One case database for every command (issue 24): ``tokens``, ``outbox`` and ``rules
silence`` take ``--demo-dir`` as ``serve`` does, ``--config`` works, and ``outbox retry`` of a
notice that is not there says so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from forewarn import cli
from forewarn.console.server import console_context
from forewarn.settings import load_settings
from rules.db import CaseRow, NoticeRow, connect


def _demo_run(folder: Path, statuses: tuple[str, ...] = ("sent", "dead")) -> Path:
    """A demo run's case database with one case and a notice per status."""
    folder.mkdir(parents=True)
    engine = connect(f"sqlite:///{folder / 'cases.sqlite'}")
    with Session(engine) as session:
        session.add(CaseRow(id=1, tenant="demo", device_id="hp-0001", product="heat_pump",
                            rule="r", severity="warning", status="open", open_key="k",
                            fault_started_at=0, opened_at=0, field="f", peak_score=1,
                            summary="", evidence_json="{}"))
        for i, status in enumerate(statuses, start=1):
            session.add(NoticeRow(id=i, case_id=1, audience="team", channel="terminal",
                                  idempotency_key=f"k{i}", subject=f"notice {i}", body="b",
                                  created_at=0.0, status=status))
        session.commit()
    engine.dispose()
    return folder


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder (the default [cases] url is var/cases.sqlite under it)."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("FOREWARN_")]:
        monkeypatch.delenv(key)
    return tmp_path


def test_a_token_made_with_demo_dir_logs_in_to_the_demo_console(
    in_tmp: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    demo = _demo_run(in_tmp / "var" / "demo")
    assert cli.main(["tokens", "create", "--demo-dir", str(demo), "--tenant", "demo",
                     "--role", "agent", "--name", "Kim"]) == 0
    token = capsys.readouterr().out.strip()
    ctx = console_context(load_settings(None), demo_dir=demo)
    principal = ctx.tokens.verify(token)
    assert principal is not None and principal.role == "agent"
    assert not (in_tmp / "var" / "cases.sqlite").exists()


def test_outbox_list_with_demo_dir_shows_the_demo_notices(
    in_tmp: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    demo = _demo_run(in_tmp / "var" / "demo")
    assert cli.main(["outbox", "--demo-dir", str(demo), "list"]) == 0
    out = capsys.readouterr().out
    assert "dead 1, sent 1" in out and "notice 2" in out


def test_a_demo_dir_without_a_run_is_one_line(
    in_tmp: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["outbox", "--demo-dir", str(in_tmp / "nothing"), "list"]) == 2
    err = capsys.readouterr().err
    assert "holds no demo run" in err and len(err.strip().splitlines()) == 1
    assert not (in_tmp / "nothing").exists()


def test_outbox_list_with_a_config_file(in_tmp: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _demo_run(in_tmp / "db")
    config = in_tmp / "forewarn.toml"
    config.write_text(f'[cases]\nurl = "sqlite:///{in_tmp / "db" / "cases.sqlite"}"\n')
    assert cli.main(["--config", str(config), "outbox", "list"]) == 0
    assert "dead 1, sent 1" in capsys.readouterr().out


@pytest.mark.parametrize(("ids", "words"), [
    pytest.param(["999"], ["no notice #999"], id="no-such-notice"),
    pytest.param(["1"], ["#1 is sent"], id="not-dead"),
])
def test_outbox_retry_of_a_notice_not_dead_says_so(
    in_tmp: Path, capsys: pytest.CaptureFixture[str], ids: list[str], words: list[str],
) -> None:
    demo = _demo_run(in_tmp / "demo")
    assert cli.main(["outbox", "--demo-dir", str(demo), "retry", *ids]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and len(err.strip().splitlines()) == 1, err


def test_outbox_retry_of_a_dead_notice(in_tmp: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    demo = _demo_run(in_tmp / "demo")
    assert cli.main(["outbox", "--demo-dir", str(demo), "retry", "2"]) == 0
    assert capsys.readouterr().out.strip() == "1 dead notice back in line"


def test_rules_silence_with_demo_dir(in_tmp: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    demo = _demo_run(in_tmp / "demo")
    assert cli.main(["rules", "silence", "--demo-dir", str(demo), "--device", "hp-0001",
                     "--for", "1h"]) == 0
    capsys.readouterr()
    assert cli.main(["rules", "silences", "--demo-dir", str(demo)]) == 0
    assert "hp-0001" in capsys.readouterr().out
