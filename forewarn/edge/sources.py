"""Where one device's samples come from: a simulated device, a Python callable, or a command.

* ``sim`` (default): a :mod:`firmware_sim` device producing one sample per ``sample_period_s``,
* ``callable``: ``"package.module:function"`` called every ``sample_period_s``; it returns a
  mapping ``{field: value}`` (missing or ``None``: no reading),
* ``command``: a long-running program that prints one JSON object per line,
  ``{"t": 1767225600.0, "compressor_current": 7.1, ...}`` (``t`` optional: arrival time).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from forewarn.edge.settings import SourceSection
from forewarn.errors import ConfigError

if TYPE_CHECKING:
    from firmware_sim.fleet import SimDevice

__all__ = ["CallableSource", "CommandSource", "SampleSource", "SimSource", "build_source"]

_log = logging.getLogger(__name__)


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
