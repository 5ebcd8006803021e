"""A simulated fleet: devices of one or more product types, some with an injected fault, the
imperfections of a real fleet, and the ground truth.

Deterministic for a seed, and each device depends only on (seed, its index): device 17 is the same
whatever the fleet size. Each device draws from separate random streams per purpose (traits,
fault, noise, per-sample events, delivery), one fixed-size draw per sample, so generating a day
in one block or in 24 gives the same telemetry.

>>> fleet = Fleet(FleetConfig(devices=3, seed=1, horizon_s=3600.0))
>>> [d.device_id for d in fleet.devices]
['hp-0000', 'hp-0001', 'hp-0002']
>>> t, values = fleet.devices[0].next_block(600.0)
>>> values.shape
(10, 5)
>>> mixed = Fleet(FleetConfig(devices=4, seed=1, products=("heat_pump", "water_pump")))
>>> sorted({d.product.name for d in mixed.devices})
['heat_pump', 'water_pump']
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edge.schema import TelemetryBatch
from firmware_sim.calls import CallModel
from firmware_sim.faults import FAULTS, FaultPlan
from firmware_sim.imperfections import DeviceImperfections, Imperfections
from firmware_sim.products import PRODUCTS, DeviceTraits, Product
from firmware_sim.quirks import Quirk, QuirkTruth, draw_quirk
from firmware_sim.truth import FaultTruth, write_jsonl

__all__ = ["DEFAULT_START", "FLEET_FAULTS", "Delivery", "Fleet", "FleetConfig", "FleetFault",
           "SimBlock", "SimDevice"]

#: 2026-01-01T00:00:00Z: simulated runs start here unless told otherwise
DEFAULT_START = 1_767_225_600.0

# purposes of a device's random streams: np.random.default_rng([seed, index, purpose])
_CALL, _FAULT, _IMPERFECT, _NOISE, _EVENTS, _DELIVERY = 1, 2, 3, 10, 11, 12
_FLEET, _COHORT, _QUIRK = 20, 21, 22
#: what a device's registry entry says before any fleet fault: its model, firmware, production
#: batch and region are drawn from these (a fleet fault's cohort overrides its own dimension)
_MODELS = ("A", "B")
_BASE_FIRMWARE = "2.5.3"
_BATCHES = tuple(f"B{n}" for n in range(10, 17))
_REGIONS = ("north", "south", "east", "west")


@dataclass(frozen=True, slots=True)
class FleetFault:
    """A fault a whole cohort shares (issue 20): a firmware release that degrades a component
    on a share of the devices of a product that install it (onsets within hours of the
    release), or a production batch with a weak part (onsets spread over a fifth of the run).

    ``share`` is the share of the product's devices affected; ``at`` the release (or the
    batch's first failure) as a fraction of the run. A device with a fault of its own keeps it.
    The cohort is ``cohort_share`` of the product's devices (those that install the release,
    or that came from the batch), so a share of the cohort stays well; its members carry
    ``value`` (the firmware version, the batch id) as their ``cohort`` dimension.

    A ``region`` fleet fault is the region's weather (a heat wave, ``fault_kind`` heat_wave):
    its cohort is the product's devices whose registry region is ``value``, and it reaches
    every one of them within hours (a device's own fault stays its ground truth, the warmer
    air reaches it all the same).
    """

    name: str
    cohort: str
    product: str
    fault_kind: str
    share: float
    at: float
    value: str = ""
    cohort_share: float = 1.0

    def released(self, config: FleetConfig) -> float:
        """When the release is installed (firmware) or the batch's first failure may come."""
        return config.start + self.at * config.horizon_s

    def onset(self, config: FleetConfig, rng: np.random.Generator) -> float:
        """When the fault starts on one affected device."""
        spread = (6 * 3600.0 if self.cohort in ("firmware", "region")
                  else 0.2 * config.horizon_s)
        return config.start + self.at * config.horizon_s + float(rng.uniform(0.0, spread))


#: ``forewarn sim evaluate --fleet-faults``: a firmware release, a weak production batch and a
#: regional heat wave
FLEET_FAULTS: tuple[FleetFault, ...] = (
    FleetFault("firmware-2.6-compressor", "firmware", "heat_pump", "component_failure",
               share=0.3, at=0.4, value="2.6.0", cohort_share=0.6),
    FleetFault("batch-17-bearings", "batch", "water_pump", "bearing_wear", share=0.25, at=0.3,
               value="B17", cohort_share=0.4),
    FleetFault("heat-wave-south", "region", "water_pump", "heat_wave", share=1.0, at=0.55,
               value="south"),
)


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """What fleet to simulate.

    ``products`` (when not empty) mixes product types, each device drawing its own; otherwise
    every device is a ``product``. ``fault_kinds`` (when not empty) limits the faults injected.
    """

    devices: int = 12
    seed: int = 1
    product: str = "heat_pump"
    products: tuple[str, ...] = ()
    tenant: str = "demo"
    start: float = DEFAULT_START
    horizon_s: float = 72 * 3600.0
    sample_period_s: float = 60.0
    fault_fraction: float = 0.25
    fault_kinds: tuple[str, ...] = ()
    #: a fault begins somewhere in this part of the run (fractions of the horizon)
    onset_window: tuple[float, float] = (0.1, 0.35)
    #: typical length of a slow fault's ramp from onset to full severity
    fault_ramp_s: float = 48 * 3600.0
    call_model: CallModel = field(default_factory=CallModel)
    imperfections: Imperfections = field(default_factory=Imperfections)
    #: faults shared by a cohort (none by default)
    fleet_faults: tuple[FleetFault, ...] = ()
    #: share of the devices without a fault that have an installation quirk, a weekly heat
    #: source near a temperature sensor (``firmware_sim.quirks``; none by default)
    quirk_fraction: float = 0.0

    @property
    def end(self) -> float:
        """End of the simulated run."""
        return self.start + self.horizon_s


@dataclass(frozen=True, slots=True, eq=False)
class SimBlock:
    """A block of one device's telemetry with everything a real fleet would do to it.

    ``t`` is what the device's clock says, ``true_t`` the true time; ``values`` has NaN for lost
    samples and fields; ``present`` is False where the device was off (no sample at all);
    ``arrival`` is when each sample reaches the server; ``boot`` counts the device's reboots.
    """

    t: NDArray[np.float64]
    true_t: NDArray[np.float64]
    values: NDArray[np.float64]
    present: NDArray[np.bool_]
    arrival: NDArray[np.float64]
    boot: NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class Delivery:
    """One batch as it reaches the server: at ``arrival`` (true time), possibly out of order."""

    tenant: str
    device_id: str
    product: str
    fields: tuple[str, ...]
    boot_id: str
    firmware: str
    seq: int
    arrival: float
    t: NDArray[np.float64]
    values: NDArray[np.float64]
    #: when each sample would have reached the server had the agent sent it in its own small
    #: batches (``agent_batch_s``): lets an evaluation stream big batches for speed and still
    #: time a notice as a live server would have sent it
    sample_arrival: NDArray[np.float64] | None = None

    def to_batch(self, validate: bool = True) -> TelemetryBatch:
        """The message the device's agent would publish (missing readings as None).

        ``validate=False`` skips the schema checks and leaves missing readings as NaN, for
        trusted in-process streaming: core turns None and NaN alike into NaN, and the checks
        and the None conversion would cost more than generating the fleet.
        """
        rows: list[list[float | None]] = self.values.tolist()
        kwargs = {"device_id": self.device_id, "boot_id": self.boot_id, "seq": self.seq,
                  "product": self.product, "firmware": self.firmware,
                  "fields": list(self.fields), "t": self.t.tolist(), "values": rows}
        if not validate:
            return TelemetryBatch.model_construct(**kwargs)
        if np.isnan(self.values).any():
            obj = self.values.astype(object)
            obj[np.isnan(self.values)] = None
            kwargs["values"] = obj.tolist()
        return TelemetryBatch.model_validate(kwargs)


class SimDevice:
    """One simulated device: its traits, its fault (if any), its imperfections, its streams."""

    def __init__(self, config: FleetConfig, index: int, product: Product | None = None) -> None:
        self.index = index
        self.tenant = config.tenant
        rng = np.random.default_rng([config.seed, index])
        names = config.products or (config.product,)
        # always draw the product, so the rest of the stream is the same for a single product
        chosen = names[int(rng.integers(len(names)))]
        self.product: Product = product if product is not None else PRODUCTS[chosen]
        self.device_id = f"{self.product.id_prefix}-{index:04d}"
        self._period = config.sample_period_s
        self.traits: DeviceTraits = self.product.traits(rng)
        self.fault: FaultPlan | None = None
        self.truth: FaultTruth | None = None
        faulty = rng.random() < config.fault_fraction
        onset_frac = rng.uniform(*config.onset_window)
        kinds = [k for k in self.product.fault_kinds
                 if not config.fault_kinds or k in config.fault_kinds]
        pick = int(rng.integers(1 << 30))
        if faulty and kinds:
            kind = FAULTS[kinds[pick % len(kinds)]]
            self.fault = kind.plan(self.product, config.start + onset_frac * config.horizon_s,
                                   config.fault_ramp_s, config.end,
                                   np.random.default_rng([config.seed, index, _FAULT]))
            visible = self.fault.visible_time()
            self.truth = FaultTruth(
                device_id=self.device_id,
                product=self.product.name,
                kind=kind.name,
                onset=self.fault.onset,
                visible=visible,
                call=config.call_model.call_time(
                    visible, np.random.default_rng([config.seed, index, _CALL]),
                    urgency=kind.call_urgency),
                course=kind.course,
                field=self.fault.field,
            )
        meta = np.random.default_rng([config.seed, index, _COHORT])
        #: what the registry says of the device (``rules.cohorts`` dimensions)
        self.cohort: dict[str, str] = {
            "model": f"{self.product.id_prefix.upper()}-{_MODELS[int(meta.integers(2))]}",
            "firmware": _BASE_FIRMWARE,
            "batch": _BATCHES[int(meta.integers(len(_BATCHES)))],
            "region": _REGIONS[int(meta.integers(len(_REGIONS)))]}
        #: (when, version): the device installs a fleet fault's firmware release then, and
        #: says so in its status messages
        self.firmware_update: tuple[float, str] | None = None
        #: the fleet faults whose cohort the device is in
        self.fleet_cohorts: list[str] = []
        #: a region's weather on top of any fault (a heat wave), and the fleet fault it is
        self.weather: FaultPlan | None = None
        self._weather_of = ""
        for k, shared in enumerate(config.fleet_faults):
            if shared.product != self.product.name:
                continue
            cohort_rng = np.random.default_rng([config.seed, index, _FLEET, k])
            if shared.cohort == "region":
                if self.cohort["region"] == shared.value:
                    self.fleet_cohorts.append(shared.name)
                    self._weather(config, shared, cohort_rng)
                continue
            draw = cohort_rng.random()
            if draw < max(shared.cohort_share, shared.share):
                self.fleet_cohorts.append(shared.name)
                if shared.cohort == "firmware":
                    self.firmware_update = (shared.released(config), shared.value)
                elif shared.value:
                    self.cohort[shared.cohort] = shared.value
            if (self.fault is not None or shared.fault_kind not in self.product.fault_kinds
                    or draw >= shared.share):
                continue
            kind = FAULTS[shared.fault_kind]
            self.fault = kind.plan(self.product, shared.onset(config, cohort_rng),
                                   config.fault_ramp_s, config.end, cohort_rng)
            visible = self.fault.visible_time()
            self.truth = FaultTruth(
                device_id=self.device_id, product=self.product.name, kind=kind.name,
                onset=self.fault.onset, visible=visible,
                call=config.call_model.call_time(
                    visible, np.random.default_rng([config.seed, index, _CALL]),
                    urgency=kind.call_urgency),
                course=kind.course, field=self.fault.field, fleet_fault=shared.name)
        if self.weather is not None and self.truth is None:
            self.truth = FaultTruth(
                device_id=self.device_id, product=self.product.name, kind=self.weather.kind,
                onset=self.weather.onset, visible=None, call=None, course="slow",
                fleet_fault=self._weather_of)
        #: a recurring false-alarm source (no fault: only for devices without one)
        self.quirk: Quirk | None = None
        quirk_rng = np.random.default_rng([config.seed, index, _QUIRK])
        if quirk_rng.random() < config.quirk_fraction and self.truth is None:
            self.quirk = draw_quirk(self.product, config.start, config.end, quirk_rng)
        self.imperfections = DeviceImperfections.draw(
            config.imperfections, config.start, config.end,
            np.random.default_rng([config.seed, index, _IMPERFECT]))
        self._noise = np.random.default_rng([config.seed, index, _NOISE])
        self._events = np.random.default_rng([config.seed, index, _EVENTS])
        self._delivery = np.random.default_rng([config.seed, index, _DELIVERY])
        self._fault_state: dict[str, float] = {}
        self._next_seq: dict[int, int] = {}
        self._shift_col = self.product.fields.index(self.product.firmware_shift[0])
        self._next_t = config.start

    def _weather(self, config: FleetConfig, shared: FleetFault,
                 rng: np.random.Generator) -> None:
        """The region's weather reaches the device (the ground truth only when it has no
        fault of its own: set once every fleet fault was drawn)."""
        self.weather = FAULTS[shared.fault_kind].plan(
            self.product, shared.onset(config, rng), config.fault_ramp_s, config.end, rng)
        self._weather_of = shared.name

    @property
    def now(self) -> float:
        """True time of the next sample this device will produce."""
        return self._next_t

    def next_block(self, duration_s: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The next ``duration_s`` seconds of telemetry: device timestamps and values (rows ×
        fields), NaN for lost samples and for the time the device was off."""
        block = self.next_sim_block(duration_s)
        return block.t, block.values

    def next_sim_block(self, duration_s: float) -> SimBlock:
        """The next ``duration_s`` seconds, with the fleet's imperfections spelled out."""
        n = max(0, round(duration_s / self._period))
        t = self._next_t + self._period * np.arange(n, dtype=np.float64)
        self._next_t += n * self._period
        severities: dict[str, NDArray[np.float64]] = {}
        plan = self.fault
        if plan is not None:
            severities[plan.kind] = plan.severity(t)
        if self.weather is not None:
            severities[self.weather.kind] = self.weather.severity(t)
        values = self.product.simulate(self.traits, t, self._noise, severities)
        u = self._events.random((n, 5))
        if plan is not None and plan.kind not in self.product.physical_faults:
            FAULTS[plan.kind].apply(plan, self.product, t, values, severities[plan.kind],
                                    u[:, 3:], self._fault_state)
        if self.quirk is not None:
            values[:, self.product.fields.index(self.quirk.field)] += self.quirk.offset(t)
        imp = self.imperfections
        values[:, self._shift_col] += self.product.firmware_shift[1] * imp.updated(t)
        present = imp.present(t)
        values[(u[:, 0] < imp.missing_rate) | ~present] = np.nan
        lost_field = np.flatnonzero(u[:, 1] < imp.field_missing_rate)
        values[lost_field, (u[lost_field, 2] * values.shape[1]).astype(np.int64)] = np.nan
        return SimBlock(t=imp.device_clock(t), true_t=t, values=values, present=present,
                        arrival=imp.arrival(t), boot=imp.boot(t))

    def batches(self, block: SimBlock, batch_s: float = 600.0,
                agent_batch_s: float = 600.0) -> list[Delivery]:
        """Cut a block into the batches the device's agent would send: one per ``batch_s`` of
        samples and boot; a few arrive late, after batches sent later.

        ``agent_batch_s`` is how long the agent itself would batch: it sets each delivery's
        ``sample_arrival`` when ``batch_s`` is longer (see :class:`Delivery`).
        """
        keep = np.flatnonzero(block.present)
        if not keep.size:
            return []
        imp = self.imperfections
        boot_key, true_t = block.boot[keep] * 1_000_000_000, block.true_t[keep]
        # the agent's own batches: each arrives with its last sample, a few of them late
        small_key = boot_key + (true_t // agent_batch_s).astype(np.int64)
        small_starts = np.append(0, np.flatnonzero(np.diff(small_key)) + 1)
        sizes = np.diff(np.append(small_starts, keep.size))
        late = self._delivery.random(small_starts.size) < imp.late_batch_rate
        extra = imp.late_median_s * np.exp(self._delivery.standard_normal(small_starts.size))
        small_arrival = np.maximum.reduceat(block.arrival[keep], small_starts) + extra * late
        sample_arrival = np.repeat(small_arrival, sizes)
        # deliveries: ``batch_s`` of on-time samples each; a late agent batch travels alone
        late_id = np.repeat(np.where(late, np.arange(small_starts.size), -1), sizes)
        big_key = boot_key + (true_t // batch_s).astype(np.int64)
        cuts = np.flatnonzero((np.diff(big_key) != 0) | (np.diff(late_id) != 0)) + 1
        parts = np.split(keep, cuts)
        arrivals = np.maximum.reduceat(sample_arrival, np.append(0, cuts)).tolist()
        per_sample = np.split(sample_arrival, cuts)
        out: list[Delivery] = []
        for part, arrival, sample_at in zip(parts, arrivals, per_sample, strict=True):
            boot = int(block.boot[part[0]])
            seq = self._next_seq.get(boot, 0)
            self._next_seq[boot] = seq + 1
            out.append(Delivery(
                tenant=self.tenant, device_id=self.device_id, product=self.product.name,
                fields=self.product.fields, boot_id=f"boot{boot}", firmware=imp.firmware(boot),
                seq=seq, arrival=arrival, t=block.t[part], values=block.values[part],
                sample_arrival=sample_at,
            ))
        return out


class Fleet:
    """The devices of one simulated run and their ground truth."""

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        single = PRODUCTS[config.product] if not config.products else None
        self.devices = [SimDevice(config, i, single) for i in range(config.devices)]

    @property
    def ground_truth(self) -> list[FaultTruth]:
        """Every injected fault."""
        return [d.truth for d in self.devices if d.truth is not None]

    @property
    def quirks(self) -> list[QuirkTruth]:
        """Every installation quirk (no fault: its cases are false cases)."""
        return [d.quirk.truth(d.device_id, d.product.name) for d in self.devices
                if d.quirk is not None]

    def write_truth(self, path: Path) -> None:
        """Write the ground truth as JSON lines (the quirks beside it, ``quirks.jsonl``)."""
        write_jsonl(path, self.ground_truth)
        if self.quirks:
            write_jsonl(path.with_name("quirks.jsonl"), self.quirks)

    def deliveries(self, block_s: float = 86_400.0, batch_s: float = 600.0,
                   agent_batch_s: float = 600.0) -> Iterator[Delivery]:
        """Every batch of the whole run, in the order they reach the server.

        Generates ``block_s`` of the whole fleet at a time, so memory holds one block.

        >>> fleet = Fleet(FleetConfig(devices=2, horizon_s=7200.0,
        ...                           imperfections=Imperfections.none()))
        >>> arrivals = [d.arrival for d in fleet.deliveries(batch_s=1800.0)]
        >>> len(arrivals), arrivals == sorted(arrivals)
        (8, True)
        """
        pending: list[tuple[float, int, Delivery]] = []
        order = 0
        end = self.config.start
        while end < self.config.end:
            end = min(end + block_s, self.config.end)
            for device in self.devices:
                block = device.next_sim_block(end - device.now)
                for delivery in device.batches(block, batch_s, agent_batch_s):
                    heapq.heappush(pending, (delivery.arrival, order, delivery))
                    order += 1
            while pending and pending[0][0] < end:
                yield heapq.heappop(pending)[2]
        while pending:
            yield heapq.heappop(pending)[2]
