"""Ground truth of a simulated run: which device has which fault, and when the customer calls.

Only the evaluation reads this; detectors and rules never do.

>>> truth = FaultTruth("hp-0001", "heat_pump", "refrigerant_leak", onset=10.0, visible=50.0,
...                    call=80.0)
>>> truth.to_json()["kind"]
'refrigerant_leak'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["FaultTruth", "read_jsonl", "write_jsonl"]


@dataclass(frozen=True, slots=True)
class FaultTruth:
    """One injected fault. Times are epoch seconds (true time, not the device's clock).

    ``visible`` is None for a fault the customer never notices (it deserves a low-priority case,
    not a customer notice); ``call`` is None when the customer never calls.
    """

    device_id: str
    product: str
    kind: str
    onset: float
    visible: float | None
    call: float | None
    #: "slow", "sudden" or "intermittent"
    course: str = ""
    #: the field a sensor fault affects, when it affects one
    field: str | None = None
    #: the cohort fault (``firmware_sim.fleet.FleetFault``) this device's fault is part of
    fleet_fault: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


class _Truth(Protocol):
    def to_json(self) -> dict[str, Any]: ...


def write_jsonl(path: Path, truths: Sequence[_Truth]) -> None:
    """Write one JSON object per fault (or per quirk: anything with ``to_json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for truth in truths:
            out.write(json.dumps(truth.to_json()) + "\n")


def read_jsonl(path: Path) -> list[FaultTruth]:
    """Read what :func:`write_jsonl` wrote."""
    with path.open(encoding="utf-8") as src:
        return [FaultTruth(**json.loads(line)) for line in src if line.strip()]
