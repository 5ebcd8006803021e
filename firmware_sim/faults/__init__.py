"""The fault library: one module per kind of fault, and a registry by name.

Slow kinds ramp up over days (refrigerant leak, clogged filter, bearing wear, cell imbalance,
capacity fade), sudden ones step (component failure, stuck sensor, spiking sensor), and a loose
connection comes and goes. Capacity fade, stuck and spiking sensors are never visible to the
customer: they should open a low-priority case and no customer notice. A heat wave is no
device's fault: a region's weather (a fleet fault of ``firmware_sim.fleet``), which the
products read as warmer air.

>>> sorted(FAULTS)[:3]
['bearing_wear', 'capacity_fade', 'cell_imbalance']
>>> len(FAULTS), FAULTS["loose_connection"].course
(10, 'intermittent')
"""

from firmware_sim.faults.base import Course, FaultKind, FaultPlan
from firmware_sim.faults.bearing_wear import BearingWear
from firmware_sim.faults.capacity_fade import CapacityFade
from firmware_sim.faults.cell_imbalance import CellImbalance
from firmware_sim.faults.clogged_filter import CloggedFilter
from firmware_sim.faults.component_failure import ComponentFailure
from firmware_sim.faults.heat_wave import HeatWave
from firmware_sim.faults.loose_connection import LooseConnection
from firmware_sim.faults.refrigerant_leak import RefrigerantLeak
from firmware_sim.faults.sensor_spikes import SensorSpikes
from firmware_sim.faults.sensor_stuck import SensorStuck

__all__ = ["FAULTS", "Course", "FaultKind", "FaultPlan"]

#: fault kind name → kind
FAULTS: dict[str, FaultKind] = {
    kind.name: kind
    for kind in (
        RefrigerantLeak(), CloggedFilter(), BearingWear(), CellImbalance(), CapacityFade(),
        ComponentFailure(), SensorStuck(), SensorSpikes(), LooseConnection(), HeatWave(),
    )
}
