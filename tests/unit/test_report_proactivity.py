"""``forewarn report proactivity`` over a case database the case book, the helpdesk feed and the
status page's answers filled (issue 19, proactivity report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forewarn.cli import main
from rules.answers import record_answer
from rules.case_actions import Push
from rules.cases import CaseBook
from rules.db import connect
from rules.evaluate import Alarm
from rules.model import Rule
from rules.tickets import TicketEvent, record_ticket_event

DAY = 86400.0
#: 2026-12-01 00:00 UTC
T0 = 1796083200.0


def _open(book: CaseBook, device_id: str, at: float) -> int:
    book.clock = lambda: at
    alarm = Alarm(Rule(name="leak", score_at_least=0.8), "acme", device_id, "heat_pump",
                  at - 600.0, at, "discharge_temp", 0.9, 80.0)
    outcome = book.record_alarm(alarm)
    assert outcome.case_id is not None
    return outcome.case_id


@pytest.fixture
def case_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    engine = connect(url)
    book = CaseBook(engine)
    # forewarned: cases 2 h and 2 days before the customers' tickets
    first = _open(book, "hp-1", T0)
    _open(book, "hp-2", T0 + DAY)
    record_ticket_event(engine, "acme", TicketEvent("created", "ZD-1", "", "hp-1"),
                        now=T0 + 2 * 3600.0)
    record_ticket_event(engine, "acme", TicketEvent("created", "ZD-2", "", "hp-2"),
                        now=T0 + 3 * DAY)
    # missed: a ticket with no case before it (its case opens later and is linked to it; the
    # customer is the registry's unknown customer of the device, as the API fills it in)
    record_ticket_event(engine, "acme", TicketEvent("created", "ZD-3", "acme/hp-3", "hp-3"),
                        now=T0 + 4 * DAY)
    _open(book, "hp-3", T0 + 5 * DAY)
    # no device named; and a case nobody called about
    record_ticket_event(engine, "acme", TicketEvent("created", "ZD-4", "lee"), now=T0 + DAY)
    _open(book, "hp-4", T0 + 2 * DAY)
    # answers on the status pages
    record_answer(engine, first, "visit", "saturday", now=T0 + 3600.0, team=Push("terminal"))
    record_answer(engine, first, "noted", "", now=T0 + 3700.0, team=Push("terminal"))
    # a ticket outside the window
    record_ticket_event(engine, "acme", TicketEvent("created", "ZD-0", "", "hp-1"),
                        now=T0 - 60 * DAY)
    engine.dispose()
    return url


def test_the_report_counts_lead_times_misses_and_answers(case_db: str,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    code = main(["report", "proactivity", "--db", case_db, "--since", "30d",
                 "--until", "2026-12-10T00:00:00+00:00", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tickets"] == 4
    assert (report["forewarned"], report["missed"], report["tickets_without_device"]) == (1 + 1,
                                                                                         1, 1)
    assert report["lead_time_s"]["min"] == 2 * 3600.0
    assert report["lead_time_s"]["max"] == 2 * DAY
    assert report["lead_time_s"]["median"] == pytest.approx((2 * 3600.0 + 2 * DAY) / 2)
    assert report["lead_time_distribution"]["1-6h"] == 1
    assert report["lead_time_distribution"]["1-3d"] == 1
    assert report["forewarned_share"] == pytest.approx(2 / 3)
    # hp-3's case came after its ticket (so it has one); nobody called about hp-4
    assert report["cases"] == 4 and report["cases_without_ticket"] == 1
    assert report["answers"] == {"noted": 1, "visit": 1, "fine": 0, "call": 0}
    assert [m["device_id"] for m in report["missed_tickets"]] == ["hp-3"]


def test_the_text_report_and_bad_spans(case_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "proactivity", "--db", case_db,
                 "--until", "2026-12-10"]) == 0
    out = capsys.readouterr().out
    assert "no prior case (missed)      1" in out
    assert "median 25.0 h" in out
    assert main(["report", "proactivity", "--db", case_db, "--since", "soon"]) == 2
    assert "--since soon" in capsys.readouterr().err
