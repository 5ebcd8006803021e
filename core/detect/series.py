"""Stable slot numbers for series, so detector state can live in flat arrays.

>>> reg = SeriesRegistry()
>>> reg.slots("acme", "hp-1", ("a", "b")).tolist()
[0, 1]
>>> reg.slots("acme", "hp-2", ("a",)).tolist(), reg.slots("acme", "hp-1", ("b",)).tolist()
([2], [1])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["SeriesRegistry"]


class SeriesRegistry:
    """Assigns each (tenant, device, field) a slot number on first sight; slots never move."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str, str], int] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def slots(self, tenant: str, device_id: str, fields: tuple[str, ...]) -> NDArray[np.int64]:
        """Slot numbers of a device's fields, in the order given."""
        out = np.empty(len(fields), dtype=np.int64)
        for i, name in enumerate(fields):
            key = (tenant, device_id, name)
            slot = self._slots.get(key)
            if slot is None:
                slot = len(self._slots)
                self._slots[key] = slot
            out[i] = slot
        return out

    def items(self) -> list[tuple[tuple[str, str, str], int]]:
        """All (series key, slot) pairs, for checkpoints."""
        return list(self._slots.items())

    def load(self, items: list[tuple[tuple[str, str, str], int]]) -> None:
        """Restore what :meth:`items` returned."""
        self._slots = {tuple(k): int(v) for k, v in items}  # type: ignore[misc]
