"""Time-series stores behind one interface (:class:`core.store.base.TimeSeriesStore`)."""

from core.store.base import SeriesFrame, StoreError, TimeSeriesStore

__all__ = ["SeriesFrame", "StoreError", "TimeSeriesStore"]
