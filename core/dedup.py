"""Drops batches seen before, by (tenant, device, boot, seq), in bounded memory.

>>> dedup = DuplicateFilter(window=4)
>>> [dedup.is_new("t", "d", "b", s) for s in (0, 1, 1, 0, 2)]
[True, True, False, False, True]
"""

from __future__ import annotations

__all__ = ["DuplicateFilter"]


class DuplicateFilter:
    """Remembers recent sequence numbers per device boot.

    Per (tenant, device, boot) it keeps the set of seen sequence numbers above a floor; when the
    set outgrows ``window`` the oldest half is folded into the floor. A batch at or below the
    floor counts as seen: a batch that late (``window`` batches behind) is dropped as a duplicate
    rather than risk storing it twice.
    """

    def __init__(self, window: int = 4096) -> None:
        self.window = window
        self._seen: dict[tuple[str, str, str], tuple[int, set[int]]] = {}
        self.duplicates = 0
        #: when a list, each batch accepted is appended as (tenant, device, boot, seq): the
        #: direct engine journals them until a snapshot covers them (:mod:`core.checkpoint`)
        self.accepted: list[tuple[str, str, str, int]] | None = None

    def is_new(self, tenant: str, device_id: str, boot_id: str, seq: int) -> bool:
        """True the first time a batch is offered; counts the repeats."""
        key = (tenant, device_id, boot_id)
        floor, seen = self._seen.get(key, (-1, set()))
        if seq <= floor or seq in seen:
            self.duplicates += 1
            return False
        seen.add(seq)
        if self.accepted is not None:
            self.accepted.append((tenant, device_id, boot_id, seq))
        if len(seen) > self.window:
            ordered = sorted(seen)
            cut = ordered[len(ordered) // 2]
            floor = max(floor, cut)
            seen = {s for s in seen if s > cut}
        self._seen[key] = (floor, seen)
        return True

    def state(self) -> dict[tuple[str, str, str], tuple[int, list[int]]]:
        """What is remembered, for checkpoints."""
        return {k: (floor, sorted(seen)) for k, (floor, seen) in self._seen.items()}

    def load(self, state: dict[tuple[str, str, str], tuple[int, list[int]]]) -> None:
        """Restore what :meth:`state` returned (a worker taking a partition over does this).

        >>> dedup = DuplicateFilter()
        >>> dedup.load({("t", "d", "b"): (3, [5])})
        >>> [dedup.is_new("t", "d", "b", s) for s in (3, 4, 5)]
        [False, True, False]
        """
        self._seen = {tuple(k): (int(floor), {int(s) for s in seen})  # type: ignore[misc]
                      for k, (floor, seen) in state.items()}
