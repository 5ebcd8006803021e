"""Drops batches seen before, by (tenant, device, boot, seq), in bounded memory.

>>> dedup = DuplicateFilter(window=4)
>>> [dedup.is_new("t", "d", "b", s) for s in (0, 1, 1, 0, 2)]
[True, True, False, False, True]

Memory is bounded per device too: it remembers the ``max_boots`` boots it saw most recently,
so a device that invents a new ``boot_id`` for every message cannot grow it without limit:

>>> dedup = DuplicateFilter(max_boots=2)
>>> [dedup.is_new("t", "d", boot, 0) for boot in ("b1", "b2", "b3", "b1")]
[True, True, True, True]
>>> dedup.evicted
2
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["DuplicateFilter"]


class DuplicateFilter:
    """Remembers recent sequence numbers per device boot.

    Per (tenant, device, boot) it keeps the set of seen sequence numbers above a floor; when the
    set outgrows ``window`` the oldest half is folded into the floor. A batch at or below the
    floor counts as seen: a batch that late (``window`` batches behind) is dropped as a duplicate
    rather than risk storing it twice. Per device it keeps the ``max_boots`` boots used most
    recently; a batch of a boot forgotten since (``evicted`` counts them) is taken as new.
    """

    def __init__(self, window: int = 4096, max_boots: int = 8) -> None:
        self.window = window
        self.max_boots = max_boots
        #: (tenant, device) → boot → (floor, seen), boots from least to most recently used
        self._devices: dict[tuple[str, str], OrderedDict[str, tuple[int, set[int]]]] = {}
        self.duplicates = 0
        #: boots forgotten to keep within ``max_boots`` per device
        self.evicted = 0
        #: when a list, each batch accepted is appended as (tenant, device, boot, seq): the
        #: direct engine journals them until a snapshot covers them (:mod:`core.checkpoint`)
        self.accepted: list[tuple[str, str, str, int]] | None = None

    def is_new(self, tenant: str, device_id: str, boot_id: str, seq: int) -> bool:
        """True the first time a batch is offered; counts the repeats."""
        boots = self._devices.get((tenant, device_id))
        if boots is None:
            boots = self._devices[(tenant, device_id)] = OrderedDict()
        known = boots.get(boot_id)
        floor, seen = known if known is not None else (-1, set())
        if seq <= floor or seq in seen:
            self.duplicates += 1
            boots.move_to_end(boot_id)
            return False
        seen.add(seq)
        if self.accepted is not None:
            self.accepted.append((tenant, device_id, boot_id, seq))
        if len(seen) > self.window:
            ordered = sorted(seen)
            cut = ordered[len(ordered) // 2]
            floor = max(floor, cut)
            seen = {s for s in seen if s > cut}
        boots[boot_id] = (floor, seen)
        boots.move_to_end(boot_id)
        while len(boots) > self.max_boots:
            boots.popitem(last=False)
            self.evicted += 1
        return True

    def new_many(self, tenant: str, device_id: str, boot_id: str, seqs: list[int]
                 ) -> list[bool] | None:
        """:meth:`is_new` of each of a boot's ``seqs`` in turn: None when all are new (the
        usual case, taken in a few set operations), else each one's answer.

        >>> dedup = DuplicateFilter(window=4)
        >>> dedup.new_many("t", "d", "b", [1, 2]), dedup.new_many("t", "d", "b", [3, 2, 3])
        (None, [True, False, False])
        """
        boots = self._devices.get((tenant, device_id))
        known = None if boots is None else boots.get(boot_id)
        if known is not None and boots is not None:
            floor, seen = known
            if (len(seen) + len(seqs) <= self.window and min(seqs) > floor
                    and seen.isdisjoint(seqs) and len(set(seqs)) == len(seqs)):
                seen.update(seqs)  # what is_new does for each: no fold, no new boot
                if self.accepted is not None:
                    self.accepted.extend((tenant, device_id, boot_id, s) for s in seqs)
                boots.move_to_end(boot_id)
                return None
        answers = [self.is_new(tenant, device_id, boot_id, s) for s in seqs]
        return None if all(answers) else answers

    def state(self) -> dict[tuple[str, str, str], tuple[int, list[int]]]:
        """What is remembered, for checkpoints (each device's least recent boot first)."""
        return {(tenant, device_id, boot): (floor, sorted(seen))
                for (tenant, device_id), boots in self._devices.items()
                for boot, (floor, seen) in boots.items()}

    def load(self, state: dict[tuple[str, str, str], tuple[int, list[int]]]) -> None:
        """Restore what :meth:`state` returned (a worker taking a partition over does this).

        >>> dedup = DuplicateFilter()
        >>> dedup.load({("t", "d", "b"): (3, [5])})
        >>> [dedup.is_new("t", "d", "b", s) for s in (3, 4, 5)]
        [False, True, False]
        """
        self._devices = {}
        for (tenant, device_id, boot), (floor, seen) in state.items():
            self._devices.setdefault((tenant, device_id), OrderedDict())[boot] = (
                int(floor), {int(s) for s in seen})
        for boots in self._devices.values():
            while len(boots) > self.max_boots:
                boots.popitem(last=False)
