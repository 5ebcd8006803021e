"""A harder rig proxy: 8 pump-rig sensors at 1 Hz whose faults move several of them modestly.

``benchmarks/rig_eval.py``'s first simulated rig (``score_accuracy.py --rig``'s water pumps)
is easier than the pump rig the issue describes (issue 17): a fault in half its runs, about
22 % of the judged rows anomalous (alarming on every row scores F1 0.50-0.57, the real rig
0.70), and its faults at full severity move a field by tens of its spreads (a worn bearing
adds 4 mm/s to a vibration whose noise is 0.06) or stop the pump. This one is built to the
real rig's description instead:

- **8 sensors** of one pump driven by a slowly wandering operating point (speed set-point,
  valve opening): flow, discharge pressure, suction pressure, motor current, vibration RMS,
  bearing temperature, motor temperature and fluid temperature, with 1 Hz noise; the
  temperatures follow the current and the flow with first-order lags;
- **runs** of 1,100-1,200 rows; about six in seven have a fault that starts after a normal
  start (between row 450 and 800: after the 400-row warm-up) and in two of three lasts to the
  end, so about half the judged rows are anomalous (alarming on every row scores F1 ≈ 0.7);
- **faults** move two to four sensors by **2-6 of their warm-up spreads** (the sensor's
  standard deviation over the warm-up, load wander included), stepping in within 0-60 s or
  drifting in over 100-300 s, each kind with its physical signs: bearing wear (vibration,
  bearing temperature, current), cavitation (suction pressure down, vibration up, flow and
  discharge pressure down), impeller wear (discharge pressure and flow down for the speed,
  current down), a leak (flow up, discharge pressure down), a sensor drift (one sensor, with
  a partner leaving its relation), and a blocked cooling (motor temperature up for its
  current). A normal run wanders like the faulty ones before their onset.

Every row of a fault's span counts as anomalous, from its first row (its ramp included) to
its last. ``run(seed, index)`` is deterministic.

>>> x, faulty = run(11, 0)
>>> x.shape[1], bool(1100 <= x.shape[0] <= 1200)
(8, True)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["FIELDS", "KINDS", "WARMUP", "run"]

FIELDS = ("flow", "discharge_pressure", "suction_pressure", "motor_current", "vibration",
          "bearing_temp", "motor_temp", "fluid_temp")
WARMUP = 400
#: fault kind → (sensor index, sign) it moves; the size of each is drawn per run
KINDS: dict[str, tuple[tuple[int, float], ...]] = {
    "bearing_wear": ((4, 1.0), (5, 1.0), (3, 1.0)),
    "cavitation": ((2, -1.0), (4, 1.0), (0, -1.0), (1, -1.0)),
    "impeller_wear": ((1, -1.0), (0, -1.0), (3, -1.0)),
    "leak": ((0, 1.0), (1, -1.0)),
    "sensor_drift": ((1, 1.0),),
    "blocked_cooling": ((6, 1.0), (7, 1.0)),
}
_NOISE = np.array([0.4, 0.02, 0.01, 0.05, 0.05, 0.1, 0.1, 0.05])


def _lag(x: NDArray[np.float64], tau: float, start: float) -> NDArray[np.float64]:
    out = np.empty_like(x)
    a = 1.0 / tau
    y = start
    for i in range(x.shape[0]):
        y += a * (x[i] - y)
        out[i] = y
    return out


def _healthy(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    # the operating point: speed and valve wander slowly (an Ornstein-Uhlenbeck walk around a
    # set-point), sometimes with one step of the set-point during the run
    speed = np.empty(n)
    valve = np.empty(n)
    s, v = 0.0, 0.0
    for i in range(n):
        s += -s / 300.0 + rng.normal(0.0, 0.03)
        v += -v / 200.0 + rng.normal(0.0, 0.02)
        speed[i], valve[i] = s, v
    if rng.random() < 0.3:
        at = int(rng.integers(100, n - 100))
        speed[at:] += rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.8)
    rpm = 1.0 + 0.1 * speed
    opening = 0.6 + 0.05 * valve
    flow = 50.0 * rpm * opening / 0.6
    dp = 4.0 * rpm**2 - 0.0004 * flow**2
    suction = 1.2 - 0.0001 * flow**2
    current = 5.0 + 0.06 * flow * dp / 3.0
    vib = 1.5 * rpm**2 + 0.002 * flow
    ambient = 22.0 + rng.normal(0.0, 0.5)
    bearing = _lag(ambient + 12.0 * rpm**2, 150.0, ambient + 12.0)
    motor = _lag(ambient + 3.0 * current, 200.0, ambient + 3.0 * current[0])
    fluid = _lag(ambient + 0.05 * flow, 300.0, ambient + 0.05 * flow[0])
    x = np.column_stack((flow, dp, suction, current, vib, bearing, motor, fluid))
    out: NDArray[np.float64] = x + rng.normal(0.0, 1.0, x.shape) * _NOISE
    return out


def run(seed: int, index: int) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """One run: readings (rows × 8) and which rows are anomalous."""
    rng = np.random.default_rng([seed, index, 17])
    n = int(rng.integers(1100, 1201))
    x = _healthy(rng, n)
    faulty = np.zeros(n, dtype=np.bool_)
    if rng.random() < 0.15:
        return x, faulty
    kind = list(KINDS)[int(rng.integers(len(KINDS)))]
    start = int(rng.integers(450, 801))
    end = n if rng.random() < 2.0 / 3.0 else min(n, start + int(rng.integers(200, 501)))
    ramp = int(rng.integers(100, 301)) if rng.random() < 0.4 else int(rng.integers(0, 61))
    sd = x[:WARMUP].std(axis=0)
    shape = np.clip((np.arange(n) - start + 1) / max(ramp, 1), 0.0, 1.0)
    shape[end:] = 0.0
    moves = KINDS[kind]
    # the kind's first sensors move most; one or two of the later ones may stay still
    n_moved = max(len(moves) - int(rng.integers(0, 2)), min(2, len(moves)))
    for col, sign in moves[:n_moved]:
        x[:, col] += sign * rng.uniform(2.0, 6.0) * sd[col] * shape
    faulty[start:end] = True
    return x, faulty
