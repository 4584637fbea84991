"""Synthetic fleet of refrigeration devices: plausible physics, labelled faults, landing files.

Plain Python (numpy, pandas, pyarrow); no Dagster. The column names, types and ranges come from
``contracts/sensor_readings.yaml`` and ``contracts/device_registry.yaml``.

- :class:`SimulationConfig` says what to simulate (devices, hours, seed, fault mix, cadence,
  and the sensors the fleet has: only those are written, and only faults they can show are
  injected, by each fault type's sensor signature, ``faults.FAULT_SIGNATURES``).
- :class:`FleetSimulator` gives the registry, the fault labels and the readings hour by hour.
- :func:`simulate_fleet` writes all of it to disk as a device fleet would deliver it.

Healthy devices cycle their compressor by thermostat, defrost every 6-8 h and see door
openings and a diurnal ambient; their low-side pressure swings by 20-33 % whenever the
compressor starts or stops (normal). Faults (see :data:`FAULT_TYPES`) start after the first
third of the simulated range, so early hours are clean: machine and sensor faults
(``faults.py``), operational faults and site power losses (``events.py``), and on request an
unlabelled heat wave that nothing should alert on.
"""

from refrig_assets.simulator.cohorts import COHORT_NAMES, COHORTS, CohortSpec
from refrig_assets.simulator.config import SimulationConfig
from refrig_assets.simulator.faults import ALL_SENSORS, FAULT_TYPES, LABEL_COLUMNS
from refrig_assets.simulator.fleet import FleetSimulator
from refrig_assets.simulator.writer import readings_path, simulate_fleet

__all__ = [
    "ALL_SENSORS",
    "COHORTS",
    "COHORT_NAMES",
    "CohortSpec",
    "FAULT_TYPES",
    "FleetSimulator",
    "LABEL_COLUMNS",
    "SimulationConfig",
    "readings_path",
    "simulate_fleet",
]
