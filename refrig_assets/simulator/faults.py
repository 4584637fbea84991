"""Labelled faults: which devices fail, how and when, and how each fault bends the readings.

Machine faults (``gradual`` and ``acute``) act on the physics through
:class:`~refrig_assets.simulator.physics.Modifiers`; sensor faults act on the observed readings
only. Magnitudes are set relative to the ``default:`` thresholds of the device registry
contract, so each fault crosses the streaming rule it is meant to trigger while a healthy
device stays clear of it.

Onsets fall uniformly between one third of the simulated range and 30 minutes before its end,
so the first hours are clean training data. Label ``end`` is exclusive: the fault is active for
readings with ``onset <= ts < end``. Gradual faults last to the end of the simulation; acute and
sensor faults end after their duration (cut at the end of the simulation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from refrig_assets.simulator.config import SimulationConfig
from refrig_assets.simulator.physics import Modifiers, threshold_default

FAULT_TYPES: dict[str, str] = {
    "refrigerant_leak": "gradual",
    "condenser_fouling": "gradual",
    "bearing_wear": "gradual",
    "compressor_overload": "acute",
    "rapid_pressure_loss": "acute",
    "total_cooling_loss": "acute",
    "sensor_dropout": "sensor",
    "stuck_sensor": "sensor",
    # Operational faults and site events (refrig_assets/simulator/events.py plans them from their
    # own random stream, so the machine and sensor faults of a seed stay what they were).
    "door_left_open": "operational",
    "short_cycling": "operational",
    "defrost_failure": "operational",
    "site_power_loss": "site",
}
FAULT_NAMES: tuple[str, ...] = tuple(FAULT_TYPES)
MACHINE_FAULTS: tuple[str, ...] = tuple(
    k for k, v in FAULT_TYPES.items() if v in ("gradual", "acute")
)
SENSOR_FAULTS: tuple[str, ...] = tuple(k for k, v in FAULT_TYPES.items() if v == "sensor")
OPERATIONAL_FAULTS: tuple[str, ...] = tuple(k for k, v in FAULT_TYPES.items() if v == "operational")
# The probable causes (config/causes.yaml) that correctly name each labelled fault. A device
# whose whole readings drop out cannot tell a broken logger from a lost connection.
FAULT_CAUSES: dict[str, tuple[str, ...]] = {
    "refrigerant_leak": ("refrigerant_leak",),
    "rapid_pressure_loss": ("refrigerant_leak",),
    "condenser_fouling": ("condenser_fouling",),
    "bearing_wear": ("mechanical_wear",),
    "compressor_overload": ("compressor_overload",),
    "total_cooling_loss": ("total_cooling_loss",),
    "sensor_dropout": ("sensor_fault", "communications_loss"),
    "stuck_sensor": ("sensor_fault",),
    "door_left_open": ("door_ajar",),
    "short_cycling": ("short_cycling",),
    "defrost_failure": ("defrost_failure",),
    "site_power_loss": ("power_loss",),
}
# The measurements each fault shows on: alternatives, each a set of sensors that must all be
# present (``ALL_SENSORS``: any measurement, for the sensor faults, which hit one the fleet has).
# A fleet with a subset of the sensors (``SimulationConfig.sensors``) gets only faults with at
# least one alternative it measures: a leak whose signature is the suction pressure is no label
# for a temperature-and-door fleet, which could never see it.
FAULT_SIGNATURES: dict[str, tuple[tuple[str, ...], ...]] = {
    "refrigerant_leak": (("pressure_low_side",),),
    "condenser_fouling": (("temperature_condenser",), ("pressure_high_side",)),
    "bearing_wear": (("vibration_compressor",),),
    "compressor_overload": (("current_compressor",),),
    "rapid_pressure_loss": (("pressure_low_side",),),
    "total_cooling_loss": (("temperature_evaporator",),),
    "sensor_dropout": (("*",),),
    "stuck_sensor": (("*",),),
    "door_left_open": (("door_open",),),
    "short_cycling": (("current_compressor",),),
    # A missed defrost is told from an ordinary stop by the compressor being off while the
    # coil warms: both sensors.
    "defrost_failure": (("current_compressor", "temperature_evaporator"),),
    # The supply lost: the compressor current drops to zero (the temperature alone reads as a
    # defrost or an idle spell).
    "site_power_loss": (("current_compressor",),),
}


def observable(fault: str, sensors: Iterable[str] | None) -> bool:
    """Whether a fleet measuring ``sensors`` (None: every sensor) can show ``fault``."""
    if sensors is None:
        return True
    have = set(sensors)
    return any(
        all(s in have or (s == ALL_SENSORS and have) for s in alternative)
        for alternative in FAULT_SIGNATURES[fault]
    )


# Faults that act on the physics (everything but the sensor faults, which bend readings only).
PHYSICAL_FAULTS: tuple[str, ...] = tuple(k for k, v in FAULT_TYPES.items() if v != "sensor")
LABEL_COLUMNS = ("device_id", "fault_type", "category", "onset", "end", "sensor")
# ``sensor`` label of a dropout that loses whole readings (the rows are missing).
ALL_SENSORS = "*"

ONSET_AFTER_SHARE = 1.0 / 3.0
ONSET_BEFORE_END_MINUTES = 30
GRADUAL_RAMP_MINUTES = (120, 180)  # time to full severity
ACUTE_MINUTES = (10, 60)
DROPOUT_MINUTES = (15, 90)
STUCK_MINUTES = (30, 180)
DROPOUT_ROWS_SHARE = 0.5  # of dropouts lose whole rows rather than one sensor

LEAK_PRESSURE_DROP = (0.30, 0.40)  # low side lower by this share at full severity
LEAK_CAPACITY_LOSS = 0.5
LEAK_EVAPORATOR_WARMING = 6.0  # degC on the running coil (starved evaporator)
LEAK_CURRENT_LOSS = 0.10
FOULING_CONDENSER_RISE = (14.0, 20.0)  # degC extra condensing temperature at full severity
FOULING_CURRENT_GAIN = 0.15
FOULING_CAPACITY_LOSS = 0.15
BEARING_VIBRATION_FACTOR = (3.5, 5.0)  # running vibration multiple at full severity
BEARING_CURRENT_GAIN = 0.05
OVERLOAD_MARGIN_AMPS = (9.0, 20.0)  # above the current_threshold default
OVERLOAD_VIBRATION_FACTOR = 1.5
PRESSURE_LOSS_MARGIN = (0.33, 0.40)  # drop beyond the pressure_drop_fraction default
PRESSURE_LOSS_CAPACITY = 0.3
COOLING_LOSS_RATE_MARGIN = (1.1, 2.0)  # degC/min above the evaporator_rise_per_minute default
COOLING_LOSS_RAMP_MINUTES = (5.0, 8.0)
# Operational faults: how the physics bends (see events.py for durations and onsets).
SHORT_CYCLING_HYSTERESIS = 0.1  # share of the thermostat differential left
ICING_CAPACITY_LOSS = 0.25  # at full icing (defrost failure)
ICING_EVAPORATOR_DROP = 3.0  # degC colder running coil at full icing
ICING_PRESSURE_DROP = 0.08  # low side lower by this share at full icing


class FaultPlan:
    """Every fault of a simulation, one element per fault in each array.

    ``onset``/``end`` are global step indices (end exclusive), ``ramp`` is the number of steps to
    full severity (gradual faults) or of the linear evaporator rise (total cooling loss),
    ``magnitude`` is type-specific, ``sensor`` names the affected column for sensor faults.
    """

    def __init__(
        self,
        device: np.ndarray,
        code: np.ndarray,
        onset: np.ndarray,
        end: np.ndarray,
        ramp: np.ndarray,
        magnitude: np.ndarray,
        sensor: np.ndarray,
    ) -> None:
        self.device = device.astype(np.int64)
        self.code = code.astype(np.int64)
        self.onset = onset.astype(np.int64)
        self.end = end.astype(np.int64)
        self.ramp = ramp.astype(np.int64)
        self.magnitude = magnitude.astype(float)
        self.sensor = sensor.astype(object)
        names = np.array(FAULT_NAMES, dtype=object)[self.code] if len(code) else np.array([])
        self._machine = np.isin(names, PHYSICAL_FAULTS)
        self._sensor_faults = np.flatnonzero(~self._machine)
        stuck = np.flatnonzero(names == "stuck_sensor")
        self.stuck_slot = np.full(len(self.device), -1, dtype=np.int64)
        self.stuck_slot[stuck] = np.arange(len(stuck))
        self._stuck_by_onset: dict[int, list[int]] = {}
        for j in stuck:
            self._stuck_by_onset.setdefault(int(self.onset[j]), []).append(int(j))

    def merged(self, other: FaultPlan) -> FaultPlan:
        """This plan and ``other`` as one (sorted by device)."""
        arrays = [
            np.concatenate([getattr(self, a), getattr(other, a)])
            for a in ("device", "code", "onset", "end", "ramp", "magnitude", "sensor")
        ]
        order = np.argsort(arrays[0], kind="stable")
        return FaultPlan(*(a[order] for a in arrays))

    @classmethod
    def empty(cls) -> FaultPlan:
        """No faults."""
        z = np.zeros(0)
        return cls(z, z, z, z, z, z, np.array([], dtype=object))

    def __len__(self) -> int:
        return len(self.device)

    @property
    def n_stuck(self) -> int:
        """Number of stuck-sensor faults (slots in the state's ``stuck_values``)."""
        return int((self.stuck_slot >= 0).sum())

    def kinds(self) -> np.ndarray:
        """Fault type name of each fault."""
        return np.array(FAULT_NAMES, dtype=object)[self.code]

    def counts(self) -> dict[str, int]:
        """Number of faults by type (every type listed, zero when absent)."""
        kinds = list(self.kinds())
        return {name: kinds.count(name) for name in FAULT_NAMES}

    def labels(self, config: SimulationConfig, device_ids: np.ndarray) -> pd.DataFrame:
        """The ground truth: one row per fault, sorted by device."""
        start = pd.Timestamp(config.start)
        step = pd.Timedelta(seconds=config.cadence_seconds)
        kinds = self.kinds()
        frame = pd.DataFrame(
            {
                "device_id": pd.Series(device_ids[self.device], dtype=object),
                "fault_type": pd.Series(kinds, dtype=object),
                "category": pd.Series([FAULT_TYPES[k] for k in kinds], dtype=object),
                "onset": pd.Series(start + step * self.onset, dtype="datetime64[ns, UTC]"),
                "end": pd.Series(start + step * self.end, dtype="datetime64[ns, UTC]"),
                "sensor": pd.Series(self.sensor, dtype=object),
            },
            columns=list(LABEL_COLUMNS),
        )
        return frame.sort_values("device_id", kind="stable").reset_index(drop=True)

    def modifiers(self, t: int, n: int, dt: float) -> Modifiers | None:
        """Physics modifiers at global step ``t`` (None when no machine fault is active)."""
        active = np.flatnonzero((self.onset <= t) & (t < self.end) & self._machine)
        if not len(active):
            return None
        m = Modifiers.neutral(n)
        for code in np.unique(self.code[active]):
            sel = active[self.code[active] == code]
            d, mag = self.device[sel], self.magnitude[sel]
            elapsed = t - self.onset[sel]
            progress = np.minimum(1.0, (elapsed + 1) / np.maximum(self.ramp[sel], 1))
            name = FAULT_NAMES[code]
            if name == "refrigerant_leak":
                m.capacity[d] *= 1.0 - LEAK_CAPACITY_LOSS * progress
                m.pressure_low_factor[d] *= 1.0 - mag * progress
                m.evaporator_offset[d] += LEAK_EVAPORATOR_WARMING * progress
                m.current_factor[d] *= 1.0 - LEAK_CURRENT_LOSS * progress
            elif name == "condenser_fouling":
                m.condenser_extra[d] += mag * progress
                m.current_factor[d] *= 1.0 + FOULING_CURRENT_GAIN * progress
                m.capacity[d] *= 1.0 - FOULING_CAPACITY_LOSS * progress
            elif name == "bearing_wear":
                m.vibration_factor[d] *= 1.0 + (mag - 1.0) * progress
                m.current_factor[d] *= 1.0 + BEARING_CURRENT_GAIN * progress
            elif name == "compressor_overload":
                m.force_on[d] = True
                m.current_override[d] = mag
                m.vibration_factor[d] *= OVERLOAD_VIBRATION_FACTOR
            elif name == "rapid_pressure_loss":
                m.force_on[d] = True
                m.pressure_low_factor[d] *= mag
                m.pressure_low_fast[d] = True
                m.capacity[d] *= PRESSURE_LOSS_CAPACITY
            elif name == "total_cooling_loss":
                m.force_off[d] = True
                m.evaporator_mode[d] = np.where(elapsed < self.ramp[sel], 1, 2)
                m.evaporator_rate[d] = mag
            elif name == "door_left_open":
                m.force_door[d] = True
            elif name == "short_cycling":
                m.hysteresis_factor[d] *= SHORT_CYCLING_HYSTERESIS
                m.ignore_min_off[d] = True
            elif name == "defrost_failure":
                m.no_defrost[d] = True
                m.capacity[d] *= 1.0 - ICING_CAPACITY_LOSS * progress
                m.evaporator_offset[d] -= ICING_EVAPORATOR_DROP * progress
                m.pressure_low_factor[d] *= 1.0 - ICING_PRESSURE_DROP * progress
            elif name == "site_power_loss":
                m.power_off[d] = True
        return m

    def record_stuck(self, t: int, values: dict[str, np.ndarray], stuck_values: np.ndarray) -> None:
        """Remember the value each stuck sensor freezes at, at its onset step ``t``."""
        for j in self._stuck_by_onset.get(t, ()):
            stuck_values[self.stuck_slot[j]] = values[self.sensor[j]][self.device[j]]

    def apply_sensor_faults(
        self,
        readings: dict[str, np.ndarray],
        n: int,
        first_step: int,
        steps: int,
        stuck_values: np.ndarray,
    ) -> np.ndarray | None:
        """Apply sensor faults in place to readings shaped (n devices, steps) of one hour.

        Returns a (devices, steps) mask of rows to keep, or None when no row is lost.
        """
        keep = None
        last = first_step + steps
        sel = self._sensor_faults
        sel = sel[(self.onset[sel] < last) & (self.end[sel] > first_step)]
        for j in sel:
            d = self.device[j]
            k0 = max(int(self.onset[j]), first_step) - first_step
            k1 = min(int(self.end[j]), last) - first_step
            sensor = self.sensor[j]
            if FAULT_NAMES[self.code[j]] == "stuck_sensor":
                readings[sensor][d, k0:k1] = stuck_values[self.stuck_slot[j]]
            elif sensor == ALL_SENSORS:
                if keep is None:
                    keep = np.ones((n, steps), dtype=bool)
                keep[d, k0:k1] = False
            else:
                readings[sensor][d, k0:k1] = np.nan
        return keep


def _steps(config: SimulationConfig, minutes: np.ndarray) -> np.ndarray:
    return np.maximum(1, np.ceil(minutes * 60.0 / config.cadence_seconds)).astype(np.int64)


def plan_faults(
    config: SimulationConfig, rng: np.random.Generator, sensors: list[str]
) -> FaultPlan:
    """Choose faulty devices, fault types (round-robin over the types the fleet's sensors can
    show, so those are about equally common), onsets, durations and magnitudes. ``sensors``
    are the columns sensor faults may hit: the fleet's own (``config.sensors``) among them."""
    if not config.faults:
        return FaultPlan.empty()
    if config.sensors is not None:
        sensors = [s for s in sensors if s in config.sensors]
    machine = [f for f in MACHINE_FAULTS if observable(f, config.sensors)]
    sensor_kinds = [f for f in SENSOR_FAULTS if sensors and observable(f, config.sensors)]
    n = config.devices
    n_machine = min(n, round(config.fault_fraction * n)) if machine else 0
    n_sensor = min(n - n_machine, round(config.sensor_fault_fraction * n)) if sensor_kinds else 0
    k = n_machine + n_sensor
    if k == 0:
        return FaultPlan.empty()
    device = rng.permutation(n)[:k]
    kinds = [machine[i % len(machine)] for i in range(n_machine)]
    kinds += [sensor_kinds[i % len(sensor_kinds)] for i in range(n_sensor)]
    code = np.array([FAULT_NAMES.index(x) for x in kinds])
    category = np.array([FAULT_TYPES[x] for x in kinds], dtype=object)
    kind = np.array(kinds, dtype=object)

    total = config.total_steps
    lo = math.ceil(total * ONSET_AFTER_SHARE)
    hi = max(lo, total - config.steps_for_minutes(ONSET_BEFORE_END_MINUTES))
    onset = rng.integers(lo, hi + 1, k)

    # Draw every candidate quantity for every fault, then keep the one its type uses.
    acute = _steps(config, rng.integers(ACUTE_MINUTES[0], ACUTE_MINUTES[1] + 1, k))
    dropout = _steps(config, rng.integers(DROPOUT_MINUTES[0], DROPOUT_MINUTES[1] + 1, k))
    stuck = _steps(config, rng.integers(STUCK_MINUTES[0], STUCK_MINUTES[1] + 1, k))
    gradual_ramp = _steps(
        config, rng.integers(GRADUAL_RAMP_MINUTES[0], GRADUAL_RAMP_MINUTES[1] + 1, k)
    )
    cooling_ramp = _steps(config, rng.uniform(*COOLING_LOSS_RAMP_MINUTES, k))
    sensor_pick = np.array(sensors, dtype=object)[rng.integers(0, len(sensors), k)]
    rows_lost = rng.random(k) < DROPOUT_ROWS_SHARE
    magnitudes = {
        "refrigerant_leak": rng.uniform(*LEAK_PRESSURE_DROP, k),
        "condenser_fouling": rng.uniform(*FOULING_CONDENSER_RISE, k),
        "bearing_wear": rng.uniform(*BEARING_VIBRATION_FACTOR, k),
        "compressor_overload": threshold_default("current_threshold")
        + rng.uniform(*OVERLOAD_MARGIN_AMPS, k),
        "rapid_pressure_loss": 1.0
        - threshold_default("pressure_drop_fraction")
        - rng.uniform(*PRESSURE_LOSS_MARGIN, k),
        "total_cooling_loss": threshold_default("evaporator_rise_per_minute")
        + rng.uniform(*COOLING_LOSS_RATE_MARGIN, k),
    }
    magnitude = np.zeros(k)
    for name, values in magnitudes.items():
        magnitude = np.where(kind == name, values, magnitude)

    duration = np.where(
        category == "acute",
        acute,
        np.where(kind == "sensor_dropout", dropout, stuck),
    )
    end = np.where(category == "gradual", total, np.minimum(onset + duration, total))
    ramp = np.where(
        category == "gradual", gradual_ramp, np.where(kind == "total_cooling_loss", cooling_ramp, 0)
    )
    sensor = np.where(category == "sensor", sensor_pick, np.array(None, dtype=object))
    sensor = np.where((kind == "sensor_dropout") & rows_lost, ALL_SENSORS, sensor)

    order = np.argsort(device, kind="stable")
    return FaultPlan(
        device=device[order],
        code=code[order],
        onset=onset[order],
        end=end[order],
        ramp=ramp[order],
        magnitude=magnitude[order],
        sensor=sensor[order],
    )
