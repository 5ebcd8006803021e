"""The customers-in-the-loop figures in ``/metrics``: helpdesk tickets (was a case opened before
them?) and customers' answers on the status pages, read at scrape time.

>>> from rules.db import connect
>>> engine = connect("sqlite://")
>>> [m.name for m in customer_metrics(engine)]
['forewarn_helpdesk_tickets', 'forewarn_customer_answers']
>>> engine.dispose()
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from rules.answers import ANSWER_KINDS
from rules.db import CaseRow, CustomerAnswerRow, TicketRow

__all__ = ["customer_metrics"]


def customer_metrics(engine: Engine) -> Iterator[Metric]:
    """Tickets by whether their linked case opened before them, and answers by kind."""
    with Session(engine) as session:
        prior = case((CaseRow.id.is_(None), "unknown"),
                     (CaseRow.opened_at <= TicketRow.opened_at, "yes"), else_="no")
        tickets = session.execute(
            select(prior, func.count()).select_from(TicketRow)
            .outerjoin(CaseRow, CaseRow.id == TicketRow.case_id).group_by(prior)).all()
        answers = session.execute(select(CustomerAnswerRow.kind, func.count())
                                  .group_by(CustomerAnswerRow.kind)).all()
    family = CounterMetricFamily(
        "forewarn_helpdesk_tickets", "Helpdesk tickets by whether their case opened before "
        "them (yes: forewarned, no: missed, unknown: no case linked)", labels=["prior_case"])
    counts = {str(k): int(n) for k, n in tickets}
    for key in ("yes", "no", "unknown"):
        family.add_metric([key], counts.get(key, 0))
    given = CounterMetricFamily("forewarn_customer_answers",
                                "Customers' answers on the status pages", labels=["kind"])
    by_kind = {str(k): int(n) for k, n in answers}
    for kind in ANSWER_KINDS:
        given.add_metric([kind], by_kind.get(kind, 0))
    yield from (family, given)
