"""Device types (cohorts) of the simulated fleet and their nominal physical parameters.

Each cohort gives a setpoint, thermal constants and the ranges from which every device draws its
own offsets. Rates are per minute, temperatures in degC, pressures in kPa absolute, currents in A,
vibration in mm/s RMS. The values are tuned so a healthy device runs a compressor duty cycle of
roughly 30-70 % with cycles of 10-30 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CohortSpec:
    """Nominal behaviour of one device type; ``(lo, hi)`` pairs are per-device uniform ranges."""

    name: str
    share: float  # fraction of the fleet
    setpoint: float  # cabinet air setpoint
    hysteresis: float  # thermostat switches at setpoint +/- hysteresis
    evaporator_running: tuple[float, float]  # evaporator coil temperature while running
    heat_leak: tuple[float, float]  # cabinet warming per minute and degC of (ambient - cabinet)
    cooling: tuple[float, float]  # cabinet cooling per minute while running at nominal coil delta
    door_leak: float  # extra warming per minute and degC while the door is open
    doors_per_hour: float  # door openings per hour in opening hours (a quarter of it at night)
    door_minutes: tuple[float, float]  # how long the door stays open
    current: tuple[float, float]  # running compressor current at 40 degC condensing
    vibration: tuple[float, float]  # running compressor vibration
    pressure_low_running: tuple[float, float]  # suction pressure while running
    condenser_delta: tuple[float, float]  # condensing temperature above ambient while running
    defrost_minutes: tuple[float, float]  # defrost duration (compressor off, coil heated)


COHORTS: tuple[CohortSpec, ...] = (
    CohortSpec(
        name="reach_in_cooler",
        share=0.35,
        setpoint=3.0,
        hysteresis=1.2,
        evaporator_running=(-9.0, -7.0),
        heat_leak=(0.008, 0.012),
        cooling=(0.50, 0.62),
        door_leak=0.05,
        doors_per_hour=3.0,
        door_minutes=(0.5, 2.0),
        current=(6.0, 8.0),
        vibration=(1.5, 3.0),
        pressure_low_running=(250.0, 300.0),
        condenser_delta=(10.0, 14.0),
        defrost_minutes=(20.0, 25.0),
    ),
    CohortSpec(
        name="reach_in_freezer",
        share=0.20,
        setpoint=-20.0,
        hysteresis=1.0,
        evaporator_running=(-29.0, -27.0),
        heat_leak=(0.004, 0.006),
        cooling=(0.40, 0.50),
        door_leak=0.03,
        doors_per_hour=2.0,
        door_minutes=(0.5, 1.5),
        current=(8.0, 10.0),
        vibration=(2.0, 3.5),
        pressure_low_running=(160.0, 190.0),
        condenser_delta=(12.0, 15.0),
        defrost_minutes=(26.0, 30.0),
    ),
    CohortSpec(
        name="walk_in_cooler",
        share=0.15,
        setpoint=2.0,
        hysteresis=0.7,
        evaporator_running=(-8.0, -6.0),
        heat_leak=(0.005, 0.007),
        cooling=(0.24, 0.30),
        door_leak=0.02,
        doors_per_hour=2.0,
        door_minutes=(1.0, 3.0),
        current=(11.0, 14.0),
        vibration=(2.0, 4.0),
        pressure_low_running=(260.0, 300.0),
        condenser_delta=(10.0, 13.0),
        defrost_minutes=(20.0, 25.0),
    ),
    CohortSpec(
        name="display_case",
        share=0.30,
        setpoint=3.0,
        hysteresis=1.3,
        evaporator_running=(-11.0, -9.0),
        heat_leak=(0.010, 0.014),
        cooling=(0.60, 0.75),
        door_leak=0.04,
        doors_per_hour=5.0,
        door_minutes=(0.5, 1.5),
        current=(9.0, 12.0),
        vibration=(1.5, 3.5),
        pressure_low_running=(240.0, 290.0),
        condenser_delta=(10.0, 14.0),
        defrost_minutes=(20.0, 25.0),
    ),
)
COHORT_NAMES: tuple[str, ...] = tuple(c.name for c in COHORTS)
