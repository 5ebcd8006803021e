"""The imperfections of a real fleet: lost samples, devices going offline, clock skew, late and
out-of-order batches, and firmware updates that shift a baseline (not a fault).

:class:`Imperfections` sets fleet-wide rates; :class:`DeviceImperfections` is one device's draw
of them, fixed in absolute time when the device is created so that blocks of any length agree.

>>> import numpy as np
>>> plan = DeviceImperfections.draw(Imperfections(), 0.0, 30 * 86_400.0, np.random.default_rng(4))
>>> t = np.arange(0.0, 30 * 86_400.0, 60.0)
>>> bool(plan.present(t).mean() > 0.9)
True
>>> quiet = DeviceImperfections.draw(Imperfections.none(), 0.0, 86_400.0, np.random.default_rng(4))
>>> bool(quiet.present(t).all()), float(quiet.device_clock(t)[5] - t[5])
(True, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["FIRMWARE_AFTER_UPDATE", "FIRMWARE_BEFORE_UPDATE", "DeviceImperfections",
           "Imperfections"]

FIRMWARE_BEFORE_UPDATE = "1.4.2"
FIRMWARE_AFTER_UPDATE = "1.5.0"


@dataclass(frozen=True, slots=True)
class Imperfections:
    """Fleet-wide rates of what goes wrong that is not a fault."""

    #: typical fraction of samples a device loses (each device draws its own, log-normally)
    missing_rate: float = 0.003
    #: fraction of samples with one field missing
    field_missing_rate: float = 0.001
    outages_per_day: float = 0.05
    outage_median_s: float = 2 * 3600.0
    #: share of outages where the device is off (no samples at all); in the rest the network is
    #: down and the device delivers what it buffered when it comes back
    power_outage_share: float = 0.5
    clock_offset_sd_s: float = 2.0
    clock_drift_sd_ppm: float = 20.0
    #: share of devices that get a firmware update (a reboot and a baseline shift) during the run
    firmware_update_share: float = 0.3
    #: share of batches that arrive late (out of order), and their typical extra delay
    late_batch_rate: float = 0.01
    late_median_s: float = 1800.0
    latency_s: float = 2.0

    @classmethod
    def none(cls) -> Imperfections:
        """A perfect fleet: every sample, on time, in order, with true clocks."""
        return cls(0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True, slots=True, eq=False)
class DeviceImperfections:
    """One device's imperfections, in absolute (true) time."""

    missing_rate: float
    field_missing_rate: float
    #: rows of (start, end) for outages, and whether each is a power (True) or network outage
    outages: NDArray[np.float64]
    power: NDArray[np.bool_]
    clock_offset_s: float
    clock_drift_ppm: float
    start: float
    update_at: float | None
    #: times at which a new boot begins (after a power outage or an update), sorted
    boot_starts: NDArray[np.float64]
    late_batch_rate: float
    late_median_s: float
    latency_s: float

    @classmethod
    def draw(cls, rates: Imperfections, start: float, end: float,
             rng: np.random.Generator) -> DeviceImperfections:
        """Draw one device's imperfections for the run [start, end)."""
        days = (end - start) / 86_400.0
        n_out = int(rng.poisson(rates.outages_per_day * days))
        starts = np.sort(rng.uniform(start, end, n_out))
        lengths = rates.outage_median_s * np.exp(rng.normal(0.0, 0.8, n_out))
        outages = np.column_stack((starts, starts + lengths)) if n_out else np.zeros((0, 2))
        power = rng.random(n_out) < rates.power_outage_share
        updated = rng.random() < rates.firmware_update_share
        update_at = float(rng.uniform(start + 0.2 * (end - start), end)) if updated else None
        boots = list(outages[power, 1]) + ([update_at] if update_at is not None else [])
        return cls(
            missing_rate=rates.missing_rate * float(np.exp(rng.normal(0.0, 1.0))),
            field_missing_rate=rates.field_missing_rate,
            outages=outages,
            power=power,
            clock_offset_s=float(rng.normal(0.0, rates.clock_offset_sd_s)),
            clock_drift_ppm=float(rng.normal(0.0, rates.clock_drift_sd_ppm)),
            start=start,
            update_at=update_at,
            boot_starts=np.sort(np.asarray(boots, dtype=np.float64)),
            late_batch_rate=rates.late_batch_rate,
            late_median_s=rates.late_median_s,
            latency_s=rates.latency_s,
        )

    def _outage_index(self, t: NDArray[np.float64]) -> NDArray[np.int64]:
        """Index of the outage each time falls in, or -1."""
        if not self.outages.shape[0]:
            return np.full(t.shape, -1, dtype=np.int64)
        i = np.searchsorted(self.outages[:, 0], t, side="right") - 1
        inside = (i >= 0) & (t < self.outages[np.maximum(i, 0), 1])
        return np.where(inside, i, -1)

    def present(self, t: NDArray[np.float64]) -> NDArray[np.bool_]:
        """False where the device is powered off and takes no sample."""
        if not self.outages.shape[0]:
            return np.ones(t.shape, dtype=np.bool_)
        i = self._outage_index(t)
        return ~((i >= 0) & self.power[np.maximum(i, 0)])

    def arrival(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """When each sample reaches the server: a little latency, or the end of a network outage."""
        if not self.outages.shape[0]:
            return t + self.latency_s
        i = self._outage_index(t)
        held = (i >= 0) & ~self.power[np.maximum(i, 0)]
        out: NDArray[np.float64] = np.where(held, self.outages[np.maximum(i, 0), 1], t)
        out += self.latency_s
        return out

    def device_clock(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """What the device's own (skewed, drifting) clock says at true time ``t``."""
        out: NDArray[np.float64] = (t + self.clock_offset_s
                                    + self.clock_drift_ppm * 1e-6 * (t - self.start))
        return out

    def boot(self, t: NDArray[np.float64]) -> NDArray[np.int64]:
        """Boot number (0 for the first) at each time."""
        out: NDArray[np.int64] = np.searchsorted(self.boot_starts, t, side="right")
        return out

    def updated(self, t: NDArray[np.float64]) -> NDArray[np.bool_]:
        """True once the firmware update is installed."""
        if self.update_at is None:
            return np.zeros(t.shape, dtype=np.bool_)
        out: NDArray[np.bool_] = t >= self.update_at
        return out

    def firmware(self, boot: int) -> str:
        """Firmware version running in boot number ``boot``."""
        if self.update_at is None or boot == 0:
            return FIRMWARE_BEFORE_UPDATE
        return (FIRMWARE_AFTER_UPDATE if self.boot_starts[boot - 1] >= self.update_at
                else FIRMWARE_BEFORE_UPDATE)
