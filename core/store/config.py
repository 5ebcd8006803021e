"""Configuration of the time-series store, and :func:`make_store`, which builds the store it names.

The application's settings hold a :class:`StoreConfig` under ``[store]``::

    [store]
    kind = "influxdb"            # or "embedded" (the default: a local SQLite file)
    path = "var/telemetry.sqlite"  # embedded only

    [store.influxdb]
    url = "http://127.0.0.1:8086"
    org = "acme"
    bucket = "forewarn"
    token = "…"                  # or FOREWARN_STORE__INFLUXDB__TOKEN in the environment

    [store.buffer]               # spool writes to disk while the store is down
    spool_dir = "/var/lib/forewarn/spool"
    max_bytes = 268435456

>>> config = StoreConfig.model_validate(
...     {"kind": "influxdb", "influxdb": {"url": "http://influx:8086", "bucket": "fleet"}})
>>> config.influxdb.bucket, config.influxdb.token.get_secret_value(), config.buffer is None
('fleet', '', True)
>>> StoreConfig.model_validate({"kind": "influx"})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for StoreConfig
...
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core.store.base import HistoryStore

__all__ = ["BufferConfig", "InfluxConfig", "StoreConfig", "make_store"]


class InfluxConfig(BaseModel):
    """Where and how to write to InfluxDB 2.x/3.x (v2 HTTP API) or anything that speaks it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "http://127.0.0.1:8086"
    org: str = "forewarn"
    bucket: str = "forewarn"
    token: SecretStr = SecretStr("")
    #: seconds one HTTP request may take before it counts as failed
    timeout_s: float = Field(default=10.0, gt=0)
    #: immediate retries of one request (connection errors, 429, 5xx) before giving up on it;
    #: long outages are the buffer's business (:class:`BufferConfig`)
    retries: int = Field(default=2, ge=0)
    #: lines per HTTP request when a write is larger
    max_lines_per_request: int = Field(default=50_000, ge=1)
    gzip: bool = False
    #: write detector explanations as a string field (VictoriaMetrics keeps only numbers)
    write_explanations: bool = True


class BufferConfig(BaseModel):
    """The on-disk outage buffer in front of the store (:mod:`core.store.buffered`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spool_dir: Path
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    #: first retry delay after a failure; doubles per failure up to ``max_delay_s`` (full jitter)
    base_delay_s: float = Field(default=0.5, gt=0)
    max_delay_s: float = Field(default=30.0, gt=0)


class StoreConfig(BaseModel):
    """Which store to use, and its settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["embedded", "influxdb"] = "embedded"
    path: Path = Path("var/telemetry.sqlite")
    influxdb: InfluxConfig = InfluxConfig()
    buffer: BufferConfig | None = None


def make_store(config: StoreConfig) -> HistoryStore:
    """The store ``config`` names, behind the outage buffer when ``config.buffer`` is set.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = make_store(StoreConfig(path=Path(tmp) / "fw.sqlite3"))
    ...     print(type(store).__name__, store.count_samples())
    ...     store.close()
    EmbeddedStore 0
    """
    store: HistoryStore
    if config.kind == "influxdb":
        from core.store.influx import InfluxStore

        store = InfluxStore(config.influxdb)
    else:
        from core.store.embedded import EmbeddedStore

        store = EmbeddedStore(config.path)
    if config.buffer is not None:
        from core.store.buffered import BufferedStore

        store = BufferedStore(
            store,
            config.buffer.spool_dir,
            config.buffer.max_bytes,
            base_delay_s=config.buffer.base_delay_s,
            max_delay_s=config.buffer.max_delay_s,
        )
    return store
