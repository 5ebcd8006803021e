"""``forewarn fleet``: a simulated fleet of edge agents in one process, against a real broker.

Two ways to run it, both with one MQTT connection, one disk queue and one identity per device
(username = device id, password from a credentials file or one shared password):

* **simulated time** (:func:`drive_fleet`, ``--hours H --speed S``): the demo's fleet (its
  products, faults and imperfections, deterministic for the seed) lives ``H`` hours of
  simulated time, ``S`` times faster than real time, then says goodbye and ends once every
  batch is acknowledged (QoS 1). Drives a running ``forewarn core`` through days of device
  life in minutes; the ground truth (which device has which fault, when its customer calls)
  is written first, so a test can judge the service against it.
* **load test** (:func:`run_fleet`, ``--rate R``): devices stream in real time until stopped.

::

    plan.py         which fleet: the demo's (FleetPlan, demo_fleet) or the load test's
    credentials.py  each device's password (load_credentials, device_passwords)
    agents.py       a queue, agent and MQTT connection per device; what each did
    simulated.py    simulated time (drive_fleet)
    load.py         the load test in real time (run_fleet)
    errors.py       FleetError
"""

from __future__ import annotations

from forewarn.fleet.credentials import device_passwords, load_credentials
from forewarn.fleet.errors import FleetError
from forewarn.fleet.load import run_fleet
from forewarn.fleet.plan import (
    DEMO_FAULT_FRACTION,
    DEMO_FAULT_KINDS,
    DEMO_ONSET_WINDOW,
    FleetPlan,
    demo_fleet,
    load_test_fleet,
)
from forewarn.fleet.simulated import FleetProgress, FleetReport, drive_fleet

__all__ = [
    "DEMO_FAULT_FRACTION",
    "DEMO_FAULT_KINDS",
    "DEMO_ONSET_WINDOW",
    "FleetError",
    "FleetPlan",
    "FleetProgress",
    "FleetReport",
    "demo_fleet",
    "device_passwords",
    "drive_fleet",
    "load_credentials",
    "load_test_fleet",
    "run_fleet",
]
