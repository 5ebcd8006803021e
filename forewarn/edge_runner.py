"""Runs edge agents: one for a real device (`forewarn edge run`); :mod:`forewarn.fleet` runs many.

This is the wiring place of the edge side: settings → disk queue → batcher → agent → uplink, plus
a sample source. A source is one of

* ``sim`` (default): a :mod:`firmware_sim` device producing one sample per ``sample_period_s``,
* ``callable``: ``"package.module:function"`` called every ``sample_period_s``; it returns a
  mapping ``{field: value}`` (missing or ``None``: no reading),
* ``command``: a long-running program that prints one JSON object per line,
  ``{"t": 1767225600.0, "compressor_current": 7.1, ...}`` (``t`` optional: arrival time).

>>> settings = EdgeSettings(device_id="hp-0042", queue={"path": "/tmp/q.sqlite"})
>>> settings.source.kind, settings.batching.age_clock, settings.broker.port
('sim', 'wall', 1883)
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    SettingsConfigDict,
)

from edge.agent import EdgeAgent
from edge.backoff import Backoff
from edge.batcher import AgeClock, Batcher
from edge.problems import problems
from edge.queue import DiskQueue
from edge.uplink import BrokerConfig, TlsFiles, Uplink
from forewarn.errors import ConfigError
from forewarn.settings import TomlFileSettings

if TYPE_CHECKING:
    from firmware_sim.fleet import SimDevice

__all__ = [
    "AgentRun",
    "EdgeSettings",
    "SampleSource",
    "build_source",
    "load_edge_settings",
    "run_agent",
]

_log = logging.getLogger(__name__)


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
        raise ConfigError(f"{path}: {problems(exc)[0]}") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    return EdgeSettings.model_validate(loaded.model_dump())


# --- sample sources ------------------------------------------------------------------------


class SampleSource(Protocol):
    """Where one device's samples come from."""

    product: str
    fields: tuple[str, ...]
    #: whether the source paces itself (a command) or is read every sample period
    self_paced: bool

    async def read(self) -> tuple[float, list[float]] | None:
        """The next sample (epoch seconds, one value per field; NaN: missing); None: ended."""
        ...

    async def aclose(self) -> None:
        """Release what the source holds."""
        ...


class SimSource:
    """A :mod:`firmware_sim` device whose clock starts now: one sample per read."""

    self_paced = False

    def __init__(self, device: SimDevice, period_s: float) -> None:
        self.device = device
        self.period_s = period_s
        self.product = device.product.name
        self.fields = tuple(device.product.fields)

    async def read(self) -> tuple[float, list[float]] | None:
        t, values = self.device.next_block(self.period_s)
        return float(t[0]), [float(v) for v in values[0]]

    async def aclose(self) -> None:
        return None


class CallableSource:
    """``module:function`` returning ``{field: value}``, called once per sample period."""

    self_paced = False

    def __init__(self, function: Callable[[], Mapping[str, float | None]],
                 fields: tuple[str, ...], product: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.function = function
        self.fields = fields
        self.product = product
        self._clock = clock

    async def read(self) -> tuple[float, list[float]] | None:
        reading = self.function()
        return self._clock(), [_float(reading.get(name)) for name in self.fields]

    async def aclose(self) -> None:
        return None


class CommandSource:
    """A program printing one JSON object per line; it ends when the program does."""

    self_paced = True

    def __init__(self, argv: list[str], fields: tuple[str, ...], product: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.argv = argv
        self.fields = fields
        self.product = product
        self._clock = clock
        self._process: asyncio.subprocess.Process | None = None

    async def read(self) -> tuple[float, list[float]] | None:
        if self._process is None:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv, stdout=asyncio.subprocess.PIPE)
        assert self._process.stdout is not None
        while line := await self._process.stdout.readline():
            try:
                reading = json.loads(line)
            except json.JSONDecodeError:
                _log.warning("source command printed a line that is not JSON: %r", line[:80])
                continue
            if not isinstance(reading, dict):
                continue
            t = _float(reading.get("t"))
            return (t if math.isfinite(t) else self._clock(),
                    [_float(reading.get(name)) for name in self.fields])
        return None

    async def aclose(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()


def _float(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return math.nan


def build_source(section: SourceSection, clock: Callable[[], float] = time.time) -> SampleSource:
    """The source a ``[source]`` section describes; :class:`ConfigError` if it is incomplete."""
    if section.kind == "sim":
        # imported here: the simulator (numba) triples the agent's memory, a real device
        # with a command or callable source should not pay for it
        from firmware_sim.fleet import Fleet, FleetConfig

        fleet = Fleet(FleetConfig(devices=section.index + 1, seed=section.seed,
                                  product=section.product, start=clock(),
                                  sample_period_s=section.sample_period_s))
        return SimSource(fleet.devices[section.index], section.sample_period_s)
    if not section.fields:
        raise ConfigError(f"source kind {section.kind!r} needs [source] fields = [...]")
    fields = tuple(section.fields)
    if section.kind == "callable":
        if not section.callable or ":" not in section.callable:
            raise ConfigError("source kind 'callable' needs callable = 'package.module:function'")
        module_name, _, name = section.callable.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load source callable {section.callable!r}: {exc}") from exc
        return CallableSource(function, fields, section.product, clock)
    if not section.command:
        raise ConfigError("source kind 'command' needs command = ['program', 'arg', ...]")
    return CommandSource(section.command, fields, section.product, clock)


# --- one agent -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentRun:
    """What one agent did in this run (the queue's counters span restarts)."""

    device_id: str
    boot_id: str
    samples: int
    queue_depth: int
    accepted_samples: int
    acked_samples: int
    dropped_samples: int
    connects: int


def new_boot_id() -> str:
    """A fresh id for this start of the agent: batches are numbered from 0 within it."""
    return secrets.token_hex(4)


def open_agent(settings: EdgeSettings, product: str, fields: tuple[str, ...],
               sample_period_s: float) -> EdgeAgent:
    """Queue, batcher and agent for ``settings`` (staged samples of a crashed run recovered)."""
    settings.queue.path.parent.mkdir(parents=True, exist_ok=True)
    queue = DiskQueue(settings.queue.path, max_bytes=settings.queue.max_bytes,
                      max_age_s=settings.queue.max_age_s,
                      synchronous=settings.queue.synchronous)
    batcher = Batcher(settings.device_id, new_boot_id(), product, fields,
                      max_samples=settings.batching.max_samples,
                      max_age_s=settings.batching.max_age_s,
                      firmware=settings.firmware, age_clock=settings.batching.age_clock)
    return EdgeAgent(settings.tenant, batcher, queue=queue,
                     compress_above_bytes=settings.batching.compress_above_bytes,
                     sample_period_s=sample_period_s,
                     status_interval_s=settings.status_interval_s)


def broker_config(section: BrokerSection) -> BrokerConfig:
    """The uplink's view of ``[broker]``."""
    tls = TlsFiles(section.tls.ca_file, section.tls.cert_file, section.tls.key_file) \
        if section.tls else None
    return BrokerConfig(host=section.host, port=section.port, username=section.username,
                        password=section.password, tls=tls, keepalive_s=section.keepalive_s,
                        session_expiry_s=section.session_expiry_s, timeout_s=section.timeout_s)


async def run_agent(settings: EdgeSettings, stop: asyncio.Event,
                    source: SampleSource | None = None,
                    max_samples: int | None = None,
                    on_state: Callable[[str], None] | None = None) -> AgentRun:
    """Sample, queue and send until ``stop`` is set (or ``max_samples`` were taken, or the
    source ended); then queue the open batch and keep sending up to ``drain_timeout_s``.

    ``on_state`` gets one line per change of the broker connection (connecting, connected,
    cannot reach … retrying in N s, lost)."""
    source = source or build_source(settings.source)
    agent = open_agent(settings, source.product, source.fields, settings.source.sample_period_s)
    assert agent.queue is not None
    backoff = Backoff(settings.broker.backoff_base_s, settings.broker.backoff_cap_s)
    samples = 0
    stopped = asyncio.ensure_future(stop.wait())
    try:
        async with Uplink(agent, broker_config(settings.broker), window=settings.broker.window,
                          backoff=backoff, on_state=on_state) as uplink:
            next_at = time.monotonic()
            while not stop.is_set() and (max_samples is None or samples < max_samples):
                if not source.self_paced:
                    next_at += agent.sample_period_s or settings.source.sample_period_s
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.wait({stopped}, timeout=delay)
                    if stop.is_set():
                        break
                    sample = await source.read()
                else:
                    sample = await _first(source.read(), stopped)
                if sample is None:
                    break
                t, row = sample
                records = agent.queue.records_put
                agent.add_samples(np.array([t]), np.array([row], dtype=np.float64))
                agent.poll()
                if agent.queue.records_put != records:
                    uplink.notify()
                samples += 1
            agent.close()
            uplink.notify()
            await uplink.wait_drained(settings.drain_timeout_s)
            connects = uplink.connects
    finally:
        stopped.cancel()
        await source.aclose()
        stats = agent.queue.stats()
        agent.queue.close()
    return AgentRun(settings.device_id, agent.batcher.boot_id, samples, stats.depth,
                    stats.accepted_samples, stats.acked_samples, stats.dropped_samples, connects)


async def _first(read: Awaitable[tuple[float, list[float]] | None],
                 stopped: asyncio.Future[Any]) -> tuple[float, list[float]] | None:
    reading = asyncio.ensure_future(read)
    await asyncio.wait({reading, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not reading.done():
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        return None
    return reading.result()
