"""Shared plumbing of the detectors: struct-of-arrays state that grows, copies and restores.

Each detector declares its per-series arrays in ``_spec`` (name → dtype, trailing shape, initial
value); :class:`SoADetector` owns them, grows them when a new slot appears, and gives every
detector the same verbs: ``update`` (score then learn), ``score_many`` (score, learn nothing),
``learn_many``, ``state()``/``load_state()``/``from_state()``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

__all__ = ["SoADetector", "StateDict", "as_block"]

StateDict = dict[str, NDArray[Any]]


def as_block(
    slots: NDArray[np.int64] | list[int], x: NDArray[np.float64] | list[list[float]]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Validate and convert ``(slots, x)``: slots (k,) int64, x (n_ticks, k) float64."""
    s = np.ascontiguousarray(slots, dtype=np.int64)
    v = np.asarray(x, dtype=np.float64)
    if v.ndim == 1:
        v = v.reshape(-1, s.shape[0]) if s.shape[0] else v.reshape(0, 0)
    if v.ndim != 2 or v.shape[1] != s.shape[0]:
        raise ValueError(f"x must be (n_ticks, {s.shape[0]}), got {v.shape}")
    if s.size and int(s.min()) < 0:
        raise ValueError("slots must be non-negative")
    return s, v


class SoADetector:
    """Base of a detector whose state is equal-length arrays, one row per series slot."""

    name: ClassVar[str] = "detector"
    #: per-series arrays: name -> (dtype, trailing shape, initial value)
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {}

    def __init__(self, capacity: int = 1024) -> None:
        self._arrays: StateDict = {}
        self._capacity = 0
        self._allocate(max(int(capacity), 1))

    # -- state -------------------------------------------------------------------------------
    def _trailing(self, name: str) -> tuple[int, ...]:
        """Trailing shape of array ``name`` (detectors with configurable sizes override)."""
        return self._spec[name][1]

    def _allocate(self, capacity: int) -> None:
        old = self._capacity
        for name, (dtype, _, init) in self._spec.items():
            arr = np.full((capacity, *self._trailing(name)), init, dtype=dtype)
            if old and name in self._arrays:
                arr[:old] = self._arrays[name]
            self._arrays[name] = arr
        self._capacity = capacity

    def _ensure(self, slots: NDArray[np.int64]) -> None:
        if slots.size:
            need = int(slots.max()) + 1
            if need > self._capacity:
                self._allocate(max(need, 2 * self._capacity))

    def forget(self, slots: NDArray[np.int64]) -> None:
        """Reset these slots to a new series' state (the pipeline hands a freed slot on)."""
        slots = slots[slots < self._capacity]
        for name, (_, _, init) in self._spec.items():
            self._arrays[name][slots] = init

    @property
    def capacity(self) -> int:
        """Number of series slots the state has room for."""
        return self._capacity

    def state(self) -> StateDict:
        """Copy of the learned state, for checkpoints."""
        return {name: arr.copy() for name, arr in self._arrays.items()}

    def load_state(self, state: StateDict) -> None:
        """Restore what :meth:`state` returned (same detector parameters).

        An array a newer version added, missing from an older checkpoint, starts at its
        default, as for a new series.
        """
        capacity = int(next(iter(state.values())).shape[0]) if state else 1
        self._arrays = {}
        self._capacity = 0
        self._allocate(capacity)
        for name in self._spec:
            if name in state:
                self._arrays[name][...] = state[name]

    @classmethod
    def from_state(cls, state: StateDict, **params: Any) -> Self:
        """A detector built with ``params`` that continues from a checkpoint."""
        det = cls(**params)
        det.load_state(state)
        return det

    def bytes_per_series(self) -> int:
        """Bytes of state one series slot costs."""
        return sum(arr[0].nbytes if arr.ndim > 1 else arr.itemsize
                   for arr in self._arrays.values())

    # -- verbs -------------------------------------------------------------------------------
    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        raise NotImplementedError

    def update(
        self,
        slots: NDArray[np.int64] | list[int],
        x: NDArray[np.float64] | list[list[float]],
        t: NDArray[np.float64] | None = None,
        out: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """Score then learn a block ``x`` (ticks × len(slots)); scores in [0, 1], same shape.

        ``t`` (n_ticks,) are the samples' times in seconds; detectors that need time use it.
        ``out``, if given, receives the scores (a caller scoring many blocks reuses one buffer
        instead of faulting in fresh pages every call).
        """
        s, v = as_block(slots, x)
        tt = None if t is None else np.ascontiguousarray(t, dtype=np.float64)
        return self._update_block(s, v, tt, out)

    def _update_block(
        self, s: NDArray[np.int64], v: NDArray[np.float64], tt: NDArray[np.float64] | None,
        out: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """:meth:`update` for inputs already checked and converted (the ensemble checks once per
        block, not once per detector: the checks cost more than some kernels)."""
        self._ensure(s)
        if out is None or out.shape != v.shape:
            # same memory order as x: the column-wise kernels take x Fortran-ordered (each
            # series' samples adjacent), the tiled ones C-ordered; every kernel writes every score
            out = np.empty_like(v, dtype=np.float64)
        if v.size:
            self._run(s, v, tt, out)
        return out

    def learn_many(
        self, slots: NDArray[np.int64] | list[int], x: NDArray[np.float64] | list[list[float]],
        t: NDArray[np.float64] | None = None,
    ) -> None:
        """Learn a block without keeping its scores."""
        self.update(slots, x, t)

    def score_many(
        self, slots: NDArray[np.int64] | list[int], x: NDArray[np.float64] | list[list[float]],
        t: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """Score a block as :meth:`update` would, but leave the learned state unchanged."""
        saved = self.state()
        try:
            return self.update(slots, x, t)
        finally:
            self.load_state(saved)
