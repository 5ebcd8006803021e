"""Stable slot numbers for series, so detector state can live in flat arrays.

>>> reg = SeriesRegistry()
>>> reg.slots("acme", "hp-1", ("a", "b")).tolist()
[0, 1]
>>> reg.slots("acme", "hp-2", ("a",)).tolist(), reg.slots("acme", "hp-1", ("b",)).tolist()
([2], [1])

A device may hold at most ``max_per_device`` series: past that, its least recently used
series is forgotten and its slot handed to the new one (``reused`` lists such slots, whose
detector state the caller resets), so a device that renames its fields on every message cannot
grow core's state without limit:

>>> reg = SeriesRegistry(max_per_device=2)
>>> reg.slots("acme", "hp-1", ("a", "b")).tolist(), reg.slots("acme", "hp-1", ("c",)).tolist()
([0, 1], [0])
>>> reg.reused.tolist(), reg.evicted, len(reg)
([0], 1, 2)
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numpy.typing import NDArray

__all__ = ["SeriesRegistry"]

_NO_SLOTS = np.empty(0, dtype=np.int64)


class SeriesRegistry:
    """Assigns each (tenant, device, field) a slot number on first sight.

    A slot stays with its series until the series is evicted (its device holds
    ``max_per_device`` others used more recently); None: never.
    """

    def __init__(self, max_per_device: int | None = None) -> None:
        self.max_per_device = max_per_device
        self._slots: dict[tuple[str, str, str], int] = {}
        #: per device, its fields from least to most recently used (only with a cap)
        self._lru: dict[tuple[str, str], OrderedDict[str, None]] = {}
        self._free: list[int] = []
        self._next = 0
        #: series forgotten to make room, since the start
        self.evicted = 0
        #: slots of the last :meth:`slots` call that belonged to an evicted series
        self.reused: NDArray[np.int64] = _NO_SLOTS

    def __len__(self) -> int:
        return len(self._slots)

    def slots(self, tenant: str, device_id: str, fields: tuple[str, ...]) -> NDArray[np.int64]:
        """Slot numbers of a device's fields, in the order given."""
        self.reused = _NO_SLOTS
        out = np.empty(len(fields), dtype=np.int64)
        if self.max_per_device is None:
            for i, name in enumerate(fields):
                key = (tenant, device_id, name)
                slot = self._slots.get(key)
                if slot is None:
                    slot = self._slots[key] = self._next
                    self._next += 1
                out[i] = slot
            return out
        lru = self._lru.setdefault((tenant, device_id), OrderedDict())
        reused: list[int] = []
        for i, name in enumerate(fields):
            key = (tenant, device_id, name)
            slot = self._slots.get(key)
            if slot is None:
                if len(lru) >= self.max_per_device:
                    self._evict(tenant, device_id, lru, keep=fields)
                if self._free:
                    slot = self._free.pop()
                    reused.append(slot)
                else:
                    slot = self._next
                    self._next += 1
                self._slots[key] = slot
                lru[name] = None
            else:
                lru.move_to_end(name)
            out[i] = slot
        if reused:
            self.reused = np.array(reused, dtype=np.int64)
        return out

    def _evict(self, tenant: str, device_id: str, lru: OrderedDict[str, None],
               keep: tuple[str, ...]) -> None:
        for name in lru:
            if name not in keep:  # never a field of the batch being placed
                del lru[name]
                self._free.append(self._slots.pop((tenant, device_id, name)))
                self.evicted += 1
                return

    def items(self) -> list[tuple[tuple[str, str, str], int]]:
        """All (series key, slot) pairs, for checkpoints (each device's least recent first)."""
        if self.max_per_device is None:
            return list(self._slots.items())
        return [((t, d, name), self._slots[(t, d, name)])
                for (t, d), lru in self._lru.items() for name in lru]

    def load(self, items: list[tuple[tuple[str, str, str], int]]) -> None:
        """Restore what :meth:`items` returned."""
        self._slots = {tuple(k): int(v) for k, v in items}  # type: ignore[misc]
        self._next = max(self._slots.values(), default=-1) + 1
        self._free = sorted(set(range(self._next)) - set(self._slots.values()), reverse=True)
        self._lru = {}
        if self.max_per_device is not None:
            for tenant, device_id, name in self._slots:
                self._lru.setdefault((tenant, device_id), OrderedDict())[name] = None
