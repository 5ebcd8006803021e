"""The settings of one edge agent (``edge.toml``): broker, batching, disk queue, sample source.

>>> settings = EdgeSettings(device_id="hp-0042", queue={"path": "/tmp/q.sqlite"})
>>> settings.source.kind, settings.batching.age_clock, settings.broker.port
('sim', 'wall', 1883)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    SettingsConfigDict,
)

from edge.batcher import AgeClock
from edge.problems import problems
from forewarn.errors import ConfigError
from forewarn.settings import TomlFileSettings

__all__ = [
    "BatchingSection",
    "BrokerSection",
    "EdgeSettings",
    "QueueSection",
    "SourceSection",
    "TlsSection",
    "load_edge_settings",
]


class TlsSection(BaseModel):
    """Files for TLS to the broker (see :class:`edge.uplink.TlsFiles`)."""

    model_config = ConfigDict(extra="forbid")

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None


class BrokerSection(BaseModel):
    """``[broker]``: where and as whom to connect."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls: TlsSection | None = None
    keepalive_s: int = Field(default=30, ge=5)
    session_expiry_s: int = Field(default=3600, ge=0)
    timeout_s: float = Field(default=15.0, gt=0)
    window: int = Field(default=16, ge=1, le=1000)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_cap_s: float = Field(default=60.0, gt=0)
    #: "3.1.1" for a broker without MQTT 5 (the demo's embedded broker)
    protocol: Literal["3.1.1", "5"] = "5"


class BatchingSection(BaseModel):
    """``[batching]``: when a batch is cut and when it is compressed."""

    model_config = ConfigDict(extra="forbid")

    max_samples: int = Field(default=60, ge=1, le=10_000)
    max_age_s: float = Field(default=60.0, gt=0)
    age_clock: AgeClock = "wall"
    compress_above_bytes: int | None = Field(default=1024, ge=0)


class QueueSection(BaseModel):
    """``[queue]``: the store-and-forward file and its caps."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Path("var/edge-queue.sqlite")
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)
    max_age_s: float = Field(default=7 * 86_400.0, gt=0)
    #: "crash": a committed record survives the agent being killed (SQLite synchronous=NORMAL);
    #: "power-cut": it also survives the power going (synchronous=FULL, an fsync per commit;
    #: benchmarks/edge_cost.py measures the price, docs/edge.md says when to pay it)
    durability: Literal["crash", "power-cut"] = "crash"

    @property
    def synchronous(self) -> Literal["NORMAL", "FULL"]:
        """The SQLite ``synchronous`` setting that gives this durability."""
        return "FULL" if self.durability == "power-cut" else "NORMAL"


class SourceSection(BaseModel):
    """``[source]``: where samples come from."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sim", "callable", "command"] = "sim"
    sample_period_s: float = Field(default=60.0, gt=0)
    #: ``kind="callable"``: ``"package.module:function"``
    callable: str | None = None
    #: ``kind="command"``: the program and its arguments
    command: list[str] | None = None
    #: field names (``callable``/``command``; ``sim`` takes the product's)
    fields: list[str] | None = None
    product: str = "heat_pump"
    #: ``kind="sim"``: which simulated device (seed, index) produces the values
    seed: int = 1
    index: int = 0


class EdgeSettings(TomlFileSettings):
    """One agent's settings: defaults → TOML → ``FOREWARN_EDGE_*`` (nested keys with ``__``)."""

    model_config = SettingsConfigDict(
        env_prefix="FOREWARN_EDGE_", env_nested_delimiter="__", extra="forbid"
    )

    tenant: str = "demo"
    device_id: str
    firmware: str | None = None
    status_interval_s: float = Field(default=30.0, ge=1)
    #: on a clean stop, how long to keep sending what is queued before exiting
    drain_timeout_s: float = Field(default=10.0, ge=0)
    broker: BrokerSection = Field(default_factory=BrokerSection)
    batching: BatchingSection = Field(default_factory=BatchingSection)
    queue: QueueSection = Field(default_factory=QueueSection)
    source: SourceSection = Field(default_factory=SourceSection)



def load_edge_settings(path: Path, **overrides: Any) -> EdgeSettings:
    """Settings from a TOML file and the environment; :class:`ConfigError` names file and key."""
    if not path.exists():
        raise ConfigError(f"configuration file {path} does not exist")

    class _Loaded(EdgeSettings):
        toml_file: ClassVar[Path | None] = path

    try:
        loaded = _Loaded(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {problems(exc, model=EdgeSettings)[0]}") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    return EdgeSettings.model_validate(loaded.model_dump())
