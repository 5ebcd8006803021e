"""Each fault kind shows in the telemetry it should affect (a property test per kind).

A device with the fault is compared with the very same device without it: same traits, same
noise, so any difference is the fault's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from firmware_sim.faults import FAULTS
from firmware_sim.fleet import Fleet, FleetConfig, FleetFault, SimDevice
from firmware_sim.imperfections import Imperfections
from firmware_sim.products.home_battery import _SOC_MAX, _SOC_MIN

DAY = 86_400.0
Arr = NDArray[np.float64]


def _pair(kind: str, product: str, seed: int) -> tuple[SimDevice, Arr, Arr, Arr]:
    """(faulty device, t, its values, the healthy twin's values) over four days."""
    config = FleetConfig(devices=1, seed=seed, product=product, horizon_s=4 * DAY,
                         fault_fraction=1.0, fault_kinds=(kind,), onset_window=(0.1, 0.2),
                         fault_ramp_s=DAY, imperfections=Imperfections.none())
    faulty = Fleet(config).devices[0]
    healthy = Fleet(dataclasses.replace(config, fault_fraction=0.0)).devices[0]
    t, bad = faulty.next_block(4 * DAY)
    _, good = healthy.next_block(4 * DAY)
    return faulty, t, bad, good


def _col(device: SimDevice, name: str) -> int:
    return device.product.fields.index(name)


def _late(device: SimDevice, t: Arr) -> NDArray[np.bool_]:
    """The last day, when a slow fault has (almost) run its course."""
    assert device.fault is not None
    return t >= t[-1] - DAY


def _after(device: SimDevice, t: Arr) -> NDArray[np.bool_]:
    assert device.fault is not None
    return t >= device.fault.onset


def _mean_shift(field: str, sign: float, at_least: float) -> Check:
    def check(device: SimDevice, t: Arr, bad: Arr, good: Arr) -> None:
        late, col = _late(device, t), _col(device, field)
        shift = np.nanmean(bad[late, col]) - np.nanmean(good[late, col])
        assert sign * shift >= at_least, f"{field} moved {shift:.3g}"
    return check


def _spread_grows(device: SimDevice, t: Arr, bad: Arr, good: Arr) -> None:
    late = _late(device, t)
    lo, hi = _col(device, "cell_v_min"), _col(device, "cell_v_max")
    spread = lambda v: float(np.nanmean(v[late, hi] - v[late, lo]))  # noqa: E731
    assert spread(bad) > spread(good) + 0.05


def _capacity_fades(device: SimDevice, t: Arr, bad: Arr, good: Arr) -> None:
    # the same energy moves the state of charge further: it travels more, or sits at a limit
    late, soc, volt = _late(device, t), _col(device, "soc"), _col(device, "pack_voltage")
    travel = lambda v: float(np.nansum(np.abs(np.diff(v[late, soc]))))  # noqa: E731
    sag = lambda v: float(np.nanmean(np.abs(v[late, volt] - np.nanmedian(v[late, volt]))))  # noqa: E731
    # a pack drained to its floor every evening travels less, but sits at the limit longer
    at_limit = lambda v: float(np.mean((v[late, soc] <= _SOC_MIN + 0.5)  # noqa: E731
                                       | (v[late, soc] >= _SOC_MAX - 0.5)))
    # a pack that never cycles (no sun to charge it, parked at its floor) shows no fade at all
    assume(travel(good) > 0.0)
    assert travel(bad) > travel(good) or sag(bad) > sag(good) or at_limit(bad) > at_limit(good)


def _stops(device: SimDevice, t: Arr, bad: Arr, good: Arr) -> None:
    after, col = _after(device, t), _col(device, device.product.power_field)
    assert np.nanmean(np.abs(bad[after, col])) < 0.5 * np.nanmean(np.abs(good[after, col]))


def _flatlines(device: SimDevice, t: Arr, bad: Arr, good: Arr) -> None:
    assert device.fault is not None and device.fault.field is not None
    after, col = _after(device, t), _col(device, device.fault.field)
    assert np.unique(bad[after, col]).size == 1
    assert np.nanstd(good[after, col]) > 0.0


def _spikes(device: SimDevice, t: Arr, bad: Arr, good: Arr) -> None:
    assert device.fault is not None and device.fault.field is not None
    after, col = _after(device, t), _col(device, device.fault.field)
    differs = bad[after, col] != good[after, col]
    assert 0.002 < differs.mean() < 0.1
    np.testing.assert_array_equal(bad[~after], good[~after])


def _cuts_out(device: SimDevice, t: Arr, bad: Arr, good: Arr) -> None:
    assert device.fault is not None
    inside = device.fault.severity(t) > 0
    col = _col(device, device.product.power_field)
    assert np.isnan(bad[inside]).any()
    assert np.nanmean(np.abs(bad[inside, col])) < 0.5 * np.nanmean(np.abs(good[inside, col])) + 0.2
    np.testing.assert_array_equal(bad[~inside], good[~inside])


Check = Callable[[SimDevice, Arr, Arr, Arr], None]

#: (fault kind, product, what must show)
CASES: list[tuple[str, str, Check]] = [
    ("refrigerant_leak", "heat_pump", _mean_shift("discharge_temp", +1, 10.0)),
    ("refrigerant_leak", "heat_pump", _mean_shift("suction_pressure", -1, 0.5)),
    ("clogged_filter", "heat_pump", _mean_shift("water_flow", -1, 4.0)),
    ("clogged_filter", "water_pump", _mean_shift("pressure", -1, 0.4)),
    ("bearing_wear", "water_pump", _mean_shift("vibration", +1, 2.0)),
    ("bearing_wear", "water_pump", _mean_shift("motor_temp", +1, 4.0)),
    ("cell_imbalance", "home_battery", _spread_grows),
    ("capacity_fade", "home_battery", _capacity_fades),
    ("component_failure", "heat_pump", _stops),
    ("component_failure", "water_pump", _stops),
    ("component_failure", "home_battery", _stops),
    ("sensor_stuck", "heat_pump", _flatlines),
    ("sensor_stuck", "home_battery", _flatlines),
    ("sensor_spikes", "water_pump", _spikes),
    ("sensor_spikes", "heat_pump", _spikes),
    ("loose_connection", "heat_pump", _cuts_out),
    ("loose_connection", "home_battery", _cuts_out),
    ("loose_connection", "water_pump", _cuts_out),
]


def test_every_kind_is_covered() -> None:
    # (a heat wave is a region's weather, no device's fault: checked below)
    assert {kind for kind, _, _ in CASES} == set(FAULTS) - {"heat_wave"}


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_a_heat_wave_warms_its_regions_pumps(seed: int) -> None:
    """The south's water pumps run warmer once the heat wave is on (its full heat 10 C), the
    rest of the fleet does not feel it; before it, nothing differs."""
    wave = FleetFault("heat", "region", "water_pump", "heat_wave", share=1.0, at=0.25,
                      value="south")
    config = FleetConfig(devices=8, seed=seed, product="water_pump", horizon_s=4 * DAY,
                         fault_fraction=0.0, imperfections=Imperfections.none(),
                         fleet_faults=(wave,))
    hot, calm = Fleet(config).devices, Fleet(dataclasses.replace(config, fleet_faults=())).devices
    for device, twin in zip(hot, calm, strict=True):
        t, bad = device.next_block(4 * DAY)
        _, good = twin.next_block(4 * DAY)
        col = _col(device, "motor_temp")
        late = t >= config.start + 2 * DAY
        shift = float(np.nanmean(bad[late, col]) - np.nanmean(good[late, col]))
        early = t < config.start + 0.25 * 4 * DAY
        np.testing.assert_array_equal(bad[early], good[early])
        if device.cohort["region"] == "south":
            assert device.weather is not None and shift >= 8.0, shift
        else:
            assert device.weather is None and shift == 0.0


@pytest.mark.parametrize(("kind", "product", "check"), CASES,
                         ids=[f"{k}-{p}-{i}" for i, (k, p, _) in enumerate(CASES)])
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_fault_shows_where_it_should(kind: str, product: str, check: Check, seed: int) -> None:
    device, t, bad, good = _pair(kind, product, seed)
    assert device.fault is not None and device.fault.kind == kind
    check(device, t, bad, good)
