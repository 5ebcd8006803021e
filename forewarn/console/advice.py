"""What a support agent does next about a case, in the order they would do it.

The rules' ``description`` says what is probably wrong; these steps say what to do about it,
from the case's own facts (status, predicted failure, whether the customer was told).

>>> from forewarn.console.schemas import CaseSummary
>>> case = CaseSummary(id=3, ref="FW-3", tenant="acme", device_id="hp-1", product="heat_pump",
...     customer_id="kim", rule="r", rules=["r"], severity="warning", status="open",
...     assignee="", summary="s", field="discharge_temp", peak_score=0.9,
...     fault_started_at=0.0, opened_at=600.0, acknowledged_at=None, resolved_at=None,
...     escalated_at=None, reopened=0, customer_notified=True, age_s=3600.0,
...     predicted_failure_at=90000.0, lead_time_s=86400.0)
>>> for step in next_steps(case): print(step)
Acknowledge the case so it does not escalate, and assign it to whoever calls the customer.
Book a technician before the predicted failure (in 24 h 0 min, 1970-01-02 01:00 UTC).
The customer was told; they will quote FW-3 when they call back.
Resolve the case once the repair is done; if the problem comes back, a new case opens.
"""

from __future__ import annotations

from forewarn.console.schemas import CaseSummary
from forewarn.console.timefmt import span, when

__all__ = ["next_steps"]


def next_steps(case: CaseSummary) -> list[str]:
    """The steps left for ``case``, one sentence each (none once it is resolved)."""
    if case.status == "resolved":
        return []
    steps: list[str] = []
    if case.status == "open":
        steps.append("Acknowledge the case so it does not escalate, and assign it to whoever "
                     "calls the customer.")
    elif not case.assignee:
        steps.append("Assign the case to whoever calls the customer.")
    if case.lead_time_s is not None and case.predicted_failure_at is not None:
        if case.lead_time_s >= 0:
            steps.append(f"Book a technician before the predicted failure (in "
                         f"{span(case.lead_time_s)}, {when(case.predicted_failure_at)}).")
        else:
            steps.append(f"The predicted failure ({when(case.predicted_failure_at)}) has "
                         "passed: call the customer now to check the device still works.")
    else:
        steps.append("No failure is predicted: compare the chart with the evidence, then call "
                     "the customer to arrange a check at a convenient time.")
    if case.customer_notified:
        steps.append(f"The customer was told; they will quote {case.ref} when they call back.")
    else:
        steps.append("The customer has not been told (see the notices below): tell them "
                     "when you call.")
    steps.append("Resolve the case once the repair is done; if the problem comes back, a new "
                 "case opens.")
    return steps
