"""Time-series stores behind one interface (:class:`core.store.base.TimeSeriesStore`).

::

    make_store(StoreConfig)          core/store/config.py, picks one of:
    ├── EmbeddedStore(path)          core/store/embedded.py   a SQLite file (the default)
    └── InfluxStore(InfluxConfig)    core/store/influx.py     InfluxDB 2.x/3.x, v2 HTTP API
    optionally behind
        BufferedStore(inner, spool_dir, max_bytes)   core/store/buffered.py (outage spool)
    NullStore()                      core/store/null.py       keeps nothing (evaluation, benchmarks)

Errors: :class:`StoreError` (down, timed out: try again later) and its subclass
:class:`StoreRejectedError` (refused for good). See docs/store.md.
"""

from core.store.base import (
    HistoryStore,
    SeriesFrame,
    StoreError,
    StoreRejectedError,
    TimeSeriesStore,
)
from core.store.config import BufferConfig, InfluxConfig, StoreConfig, make_store

__all__ = [
    "BufferConfig",
    "HistoryStore",
    "InfluxConfig",
    "SeriesFrame",
    "StoreConfig",
    "StoreError",
    "StoreRejectedError",
    "TimeSeriesStore",
    "make_store",
]
