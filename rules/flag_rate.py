"""Whether a few flagged devices of a narrow cohort are too many to be chance (issue 20).

A production batch's weak part wears on one device after another, hours apart; the peer
detector flags each a day or so after its onset, so a third flagged device of the batch comes
long after a tenth of it was affected. Two devices of one batch flagged on the same field
within a window are already telling when the product's other devices are seldom flagged: this
module says whether they are improbable at the rate the product's other devices were flagged
over the past ``history_s`` (a binomial tail, as the peer detector's drift score does for its
pools, ``core.detect.peer_drift``).

>>> round(binomial_tail(2, 25, 0.005), 4)
0.0069
>>> round(binomial_tail(2, 25, 0.04), 2)
0.26
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.db import IncidentFlagRow

__all__ = ["binomial_tail", "rest_flag_rate"]


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(Binomial(``n``, ``p``) ≥ ``k``)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    p = min(max(p, 0.0), 1.0)
    below = sum(math.comb(n, i) * p**i * (1.0 - p) ** (n - i) for i in range(k))
    return max(0.0, 1.0 - below)


def rest_flag_rate(session: Session, tenant: str, product: str,
                   in_cohort: Callable[[str], bool], rest_size: int,
                   detectors: Collection[str], at: float, window_s: float,
                   history_s: float) -> float:
    """The chance a device of ``product`` outside the cohort is flagged within one window:
    its other devices' flagged windows over the ``history_s`` before ``at`` (a device flagged
    twice in one window counts once), plus one, over their device-windows plus one (a week
    without a flag is not a rate of zero)."""
    flags = session.execute(select(IncidentFlagRow.device_id, IncidentFlagRow.at).where(
        IncidentFlagRow.tenant == tenant, IncidentFlagRow.product == product,
        IncidentFlagRow.at >= at - history_s, IncidentFlagRow.at <= at,
        IncidentFlagRow.detector.in_(tuple(detectors)))).all()
    flagged = {(device, int((at - when) // window_s)) for device, when in flags
               if not in_cohort(device)}
    windows = max(1.0, history_s / window_s)
    return (len(flagged) + 1.0) / (max(rest_size, 0) * windows + 1.0)
