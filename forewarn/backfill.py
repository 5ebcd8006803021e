"""Re-score a device's stored history with the current detectors and write the scores back.

History is read oldest first in chunks of ``chunk_s`` seconds and fed to a fresh detector in
order, as if the samples were arriving now; the new scores replace the stored ones (values are
not written again: the write-back batch carries NaN values, which no store writes). Detector
onsets are not re-derived. InfluxDB keeps the last write of a point, so the new scores win;
VictoriaMetrics (tests) keeps one of the two unpredictably.

>>> import numpy as np
>>> from core.detect import RobustZ
>>> from core.events import ScoredBatch
>>> from core.store.embedded import EmbeddedStore
>>> store = EmbeddedStore(":memory:")
>>> values = np.r_[np.random.default_rng(1).normal(10.0, 1.0, 500), 40.0][:, None]
>>> store.write(ScoredBatch("acme", "hp-1", "heat_pump", ("a",), np.arange(501.0), values,
...                         np.zeros((501, 1))))
>>> backfill(store, lambda: RobustZ(warmup=50), "acme", "hp-1", 0.0, 501.0, chunk_s=100.0)
501
>>> float(store.read("acme", "hp-1", 500.0, 501.0).scores[0, 0]) > 0.9
True
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from core.detect.series import SeriesRegistry
from core.events import ScoredBatch
from core.pipeline import LevelDetector
from core.store.base import HistoryStore
from core.store.config import StoreConfig, make_store
from forewarn.errors import ConfigError

__all__ = ["Detector", "Progress", "backfill", "open_store"]


class Detector(Protocol):
    """Scores then learns a block (ticks × series); ensembles also take the timestamps."""

    def update(self, slots: NDArray[np.int64], x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Scores in [0, 1] of the same shape as ``x``."""
        ...


#: called after each chunk with (fraction of the time range done, samples re-scored so far)
Progress = Callable[[float, int], None]


def backfill(
    store: HistoryStore,
    detector_factory: Callable[[], Detector],
    tenant: str,
    device_id: str,
    start: float,
    stop: float,
    progress: Progress | None = None,
    *,
    chunk_s: float = 86_400.0,
    product: str | None = None,
) -> int:
    """Re-score ``device_id``'s samples in [start, stop); returns how many were re-scored.

    ``product`` is the tag the samples were stored under; by default the store is asked.
    """
    if not stop > start or chunk_s <= 0:
        raise ValueError("backfill needs start < stop and chunk_s > 0")
    product = product or store.product_of(tenant, device_id)
    if product is None:
        return 0
    detector = detector_factory()
    takes_time = "t" in inspect.signature(detector.update).parameters
    registry = SeriesRegistry()
    done = 0
    n_chunks = max(1, math.ceil((stop - start) / chunk_s))
    for index in range(n_chunks):
        lo = start + index * chunk_s
        hi = min(stop, lo + chunk_s)
        frame = store.read(tenant, device_id, lo, hi)
        if frame.t.size:
            slots = registry.slots(tenant, device_id, frame.fields)
            values = np.ascontiguousarray(frame.values, dtype=np.float64)
            if takes_time:
                scores = detector.update(slots, values, frame.t)  # type: ignore[call-arg]
            else:
                scores = detector.update(slots, values)
            # what the service stores (core/pipeline.py): a level detector's continuous level,
            # not its onset scores
            level = detector.last_level() if isinstance(detector, LevelDetector) else None
            if level is not None:
                scores = level
            store.write(ScoredBatch(
                tenant, device_id, product, frame.fields, frame.t,
                np.full(values.shape, np.nan), np.asarray(scores, dtype=np.float64),
            ))
            done += int(frame.t.size)
        if progress is not None:
            progress((hi - start) / (stop - start), done)
    return done


def open_store(settings: Any) -> HistoryStore:
    """The store the settings' ``[store]`` section configures, to read and write back."""
    return make_store(_store_config(settings))


def _store_config(settings: Any) -> StoreConfig:
    store = settings.store
    if isinstance(store, StoreConfig):
        return store
    try:
        return StoreConfig.model_validate(store.model_dump())
    except ValueError as exc:
        raise ConfigError(f"[store] cannot be used: {exc}") from exc
