"""Healthy device physics, one time step for the whole fleet at once (vectorised over devices).

Per device and step: the thermostat switches the compressor with hysteresis (and a minimum off
time), the hidden cabinet air temperature follows heat leak, door openings, defrost heat and
cooling; the evaporator coil, condenser, suction (low side) and discharge (high side) pressures
relax towards running or idle targets; compressor current and vibration follow the running
state. Ambient temperature is a diurnal sinusoid per site. Faults act through
:class:`Modifiers`; observation noise is added afterwards by :func:`add_observation_noise`.

The model keeps a healthy fleet clear of the streaming rules' thresholds (the ``default:``
values of ``contracts/device_registry.yaml``): current far below ``current_threshold``, the
evaporator never rising faster than ``evaporator_rise_per_minute`` for minutes on end (defrost
heating is rate-limited below it), and low-side pressure moving by 20-33 % only when the
compressor switches.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from refrig_assets.core.contracts import load_contract
from refrig_assets.simulator.cohorts import COHORTS
from refrig_assets.simulator.config import SimulationConfig

# Physical quantities the model computes, named as sensor_readings columns.
EVAPORATOR = "temperature_evaporator"
CONDENSER = "temperature_condenser"
PRESSURE_LOW = "pressure_low_side"
PRESSURE_HIGH = "pressure_high_side"
CURRENT = "current_compressor"
VIBRATION = "vibration_compressor"
AMBIENT = "ambient_temperature"
DOOR = "door_open"
QUANTITIES = (EVAPORATOR, CONDENSER, PRESSURE_LOW, PRESSURE_HIGH, CURRENT, VIBRATION, AMBIENT, DOOR)

# Thermostat.
MIN_OFF_MINUTES = 3.0  # anti-short-cycle delay before a restart
# Evaporator coil: fast pull-down while running, slow warm-up (frosted coil mass) when idle.
TAU_EVAPORATOR_RUNNING = 2.0
TAU_EVAPORATOR_IDLE = 10.0
EVAPORATOR_CABINET_COUPLING = 0.3  # running coil temperature follows the cabinet load
# Defrost every 6-8 h: compressor off, coil heated towards DEFROST_TARGET at a capped rate.
DEFROST_INTERVAL_HOURS = (6.0, 8.0)
DEFROST_TARGET = 10.0
TAU_DEFROST = 2.0
DEFROST_RISE_SHARE = 0.65  # of the evaporator-rise rule threshold
DEFROST_CABINET_HEAT = 0.08  # degC/min of cabinet warming from the heaters
# Low side: falls quickly when the compressor starts, equalises up more slowly when it stops.
LOW_SIDE_SWING = (0.20, 0.33)  # (idle - running) / idle
TAU_LOW_SIDE_RUNNING = 1.0
TAU_LOW_SIDE_IDLE = 2.5
TAU_LOW_SIDE_FAULT = 0.7
LOW_SIDE_LOAD = 0.004  # running suction pressure per degC of cabinet above setpoint
LOW_SIDE_COIL = 0.003  # idle pressure per degC of coil above setpoint (defrost)
# Condenser and high side (saturation curve of the refrigerant, per-device calibration).
TAU_CONDENSER_RUNNING = 1.5
TAU_CONDENSER_IDLE = 4.0
CONDENSER_IDLE_DELTA = 1.0
HIGH_SIDE_AT_20C = 1150.0
HIGH_SIDE_SLOPE = 0.024  # log kPa per degC
HIGH_SIDE_CALIBRATION = (0.93, 1.07)
# Compressor current rises with the condensing temperature; idle current is the controller's.
CURRENT_PER_DEGC = 0.012
CURRENT_IDLE = (0.03, 0.08)
VIBRATION_IDLE_SHARE = (0.25, 0.40)  # fans and neighbouring plant when the compressor is off
POWER_OFF_VIBRATION_SHARE = 0.05  # of the idle vibration, with the whole site's power off
# Ambient air around the device.
SITE_AMBIENT = (18.0, 26.0)
SITE_DIURNAL_AMPLITUDE = (1.0, 3.5)
SITE_UTC_OFFSET_HOURS = (-8, 3)
DEVICE_AMBIENT_SD = 0.7
PEAK_LOCAL_HOUR = 15.0
OPENING_HOURS = (7.0, 22.0)
NIGHT_DOOR_SHARE = 0.25

# Observation noise: (kind, sigma); "abs" in the sensor's unit, "rel" as a fraction of the value.
# Draws are squashed smoothly into +/- NOISE_CLIP sigmas (tanh, no point mass at the bound, so a
# healthy sensor never repeats a value exactly) and healthy readings keep a margin to the rules.
NOISE: dict[str, tuple[str, float]] = {
    EVAPORATOR: ("abs", 0.08),
    CONDENSER: ("abs", 0.15),
    PRESSURE_LOW: ("rel", 0.006),
    PRESSURE_HIGH: ("rel", 0.006),
    CURRENT: ("rel", 0.015),
    VIBRATION: ("rel", 0.04),
    AMBIENT: ("abs", 0.10),
}
NOISE_CLIP = 2.5


def threshold_default(name: str) -> float:
    """The ``default:`` of a streaming-rule threshold column in the device registry contract."""
    return float(load_contract("device_registry").column(name).default)


@dataclass(frozen=True)
class DeviceParams:
    """Per-device constants (one array element per device) and per-site ambient constants."""

    device_ids: np.ndarray  # object (str)
    site_ids: np.ndarray  # object (str), per device
    cohorts: np.ndarray  # object (str), per device
    site_index: np.ndarray
    setpoint: np.ndarray
    hysteresis: np.ndarray
    evaporator_running: np.ndarray
    coil_delta: np.ndarray  # setpoint - evaporator_running
    heat_leak: np.ndarray
    cooling: np.ndarray
    door_leak: np.ndarray
    door_rate: np.ndarray  # openings per minute in opening hours
    door_minutes_lo: np.ndarray
    door_minutes_hi: np.ndarray
    current_running: np.ndarray
    current_idle: np.ndarray
    vibration_running: np.ndarray
    vibration_idle: np.ndarray
    pressure_running: np.ndarray
    pressure_idle: np.ndarray
    condenser_delta: np.ndarray
    high_side_calibration: np.ndarray
    defrost_interval: np.ndarray  # minutes
    defrost_phase: np.ndarray  # minutes
    defrost_duration: np.ndarray  # minutes
    ambient_offset: np.ndarray
    site_ambient: np.ndarray  # per site
    site_amplitude: np.ndarray  # per site
    site_utc_offset: np.ndarray  # per site, hours

    @property
    def n(self) -> int:
        """Number of devices."""
        return len(self.device_ids)


@dataclass
class PhysicsState:
    """What carries over from one step (and one hour) to the next."""

    cabinet: np.ndarray
    evaporator: np.ndarray
    condenser: np.ndarray
    pressure_low: np.ndarray
    running: np.ndarray  # bool
    idle_steps: np.ndarray  # steps since the compressor stopped
    door_steps_left: np.ndarray
    stuck_values: np.ndarray  # value each stuck-sensor fault repeats (NaN before its onset)

    def copy(self) -> PhysicsState:
        """A deep copy (checkpoints must not share arrays with a running simulation)."""
        return PhysicsState(**{f.name: getattr(self, f.name).copy() for f in fields(self)})


@dataclass
class Modifiers:
    """How active faults bend the physics at one step (neutral values change nothing)."""

    capacity: np.ndarray
    evaporator_offset: np.ndarray
    pressure_low_factor: np.ndarray
    pressure_low_fast: np.ndarray  # bool: low side follows its target within a few minutes
    condenser_extra: np.ndarray
    current_factor: np.ndarray
    vibration_factor: np.ndarray
    force_on: np.ndarray  # bool
    force_off: np.ndarray  # bool
    current_override: np.ndarray  # NaN where not overridden
    evaporator_mode: np.ndarray  # 0 normal, 1 forced linear rise, 2 drift to ambient
    evaporator_rate: np.ndarray  # degC/min for modes 1 and 2
    force_door: np.ndarray  # bool: door held open
    hysteresis_factor: np.ndarray  # thermostat differential multiplier
    ignore_min_off: np.ndarray  # bool: restarts without the anti-short-cycle delay
    no_defrost: np.ndarray  # bool: the defrost heaters never come on
    power_off: np.ndarray  # bool: no supply (compressor, fans and heaters off, current 0)

    @classmethod
    def neutral(cls, n: int) -> Modifiers:
        """Modifiers that leave every device healthy."""
        ones, zeros, no = np.ones(n), np.zeros(n), np.zeros(n, dtype=bool)
        return cls(
            capacity=ones.copy(),
            evaporator_offset=zeros.copy(),
            pressure_low_factor=ones.copy(),
            pressure_low_fast=no.copy(),
            condenser_extra=zeros.copy(),
            current_factor=ones.copy(),
            vibration_factor=ones.copy(),
            force_on=no.copy(),
            force_off=no.copy(),
            current_override=np.full(n, np.nan),
            evaporator_mode=np.zeros(n, dtype=np.int8),
            evaporator_rate=zeros.copy(),
            force_door=no.copy(),
            hysteresis_factor=ones.copy(),
            ignore_min_off=no.copy(),
            no_defrost=no.copy(),
            power_off=no.copy(),
        )


def _per_device(rng: np.random.Generator, cohort: np.ndarray, attr: str) -> np.ndarray:
    lo = np.array([getattr(c, attr)[0] for c in COHORTS])[cohort]
    hi = np.array([getattr(c, attr)[1] for c in COHORTS])[cohort]
    return rng.uniform(lo, hi)


def _cohort_constant(cohort: np.ndarray, attr: str) -> np.ndarray:
    return np.array([float(getattr(c, attr)) for c in COHORTS])[cohort]


def _ids(prefix: str, count: int) -> np.ndarray:
    width = max(6 if prefix == "dev" else 4, len(str(count - 1)))
    return np.array([f"{prefix}-{i:0{width}d}" for i in range(count)], dtype=object)


def sample_devices(config: SimulationConfig, rng: np.random.Generator) -> DeviceParams:
    """Draw every device's cohort, site and physical offsets (reproducible from ``rng``)."""
    n, n_sites = config.devices, config.n_sites
    shares = np.array([c.share for c in COHORTS])
    cohort = rng.choice(len(COHORTS), size=n, p=shares / shares.sum())
    site_index = rng.permutation(np.arange(n) % n_sites)
    site_names = _ids("site", n_sites)
    setpoint = _cohort_constant(cohort, "setpoint")
    evaporator = _per_device(rng, cohort, "evaporator_running")
    pressure_running = _per_device(rng, cohort, "pressure_low_running")
    swing = rng.uniform(*LOW_SIDE_SWING, n)
    current_running = _per_device(rng, cohort, "current")
    vibration_running = _per_device(rng, cohort, "vibration")
    interval = rng.uniform(*DEFROST_INTERVAL_HOURS, n) * 60.0
    names = np.array([c.name for c in COHORTS], dtype=object)
    return DeviceParams(
        device_ids=_ids("dev", n),
        site_ids=site_names[site_index],
        cohorts=names[cohort],
        site_index=site_index,
        setpoint=setpoint,
        hysteresis=_cohort_constant(cohort, "hysteresis"),
        evaporator_running=evaporator,
        coil_delta=setpoint - evaporator,
        heat_leak=_per_device(rng, cohort, "heat_leak"),
        cooling=_per_device(rng, cohort, "cooling"),
        door_leak=_cohort_constant(cohort, "door_leak"),
        door_rate=_cohort_constant(cohort, "doors_per_hour") / 60.0,
        door_minutes_lo=np.array([c.door_minutes[0] for c in COHORTS])[cohort],
        door_minutes_hi=np.array([c.door_minutes[1] for c in COHORTS])[cohort],
        current_running=current_running,
        current_idle=rng.uniform(*CURRENT_IDLE, n),
        vibration_running=vibration_running,
        vibration_idle=vibration_running * rng.uniform(*VIBRATION_IDLE_SHARE, n),
        pressure_running=pressure_running,
        pressure_idle=pressure_running / (1.0 - swing),
        condenser_delta=_per_device(rng, cohort, "condenser_delta"),
        high_side_calibration=rng.uniform(*HIGH_SIDE_CALIBRATION, n),
        defrost_interval=interval,
        defrost_phase=rng.uniform(0.0, interval),
        defrost_duration=_per_device(rng, cohort, "defrost_minutes"),
        ambient_offset=np.clip(rng.normal(0.0, DEVICE_AMBIENT_SD, n), -2.0, 2.0),
        site_ambient=rng.uniform(*SITE_AMBIENT, n_sites),
        site_amplitude=rng.uniform(*SITE_DIURNAL_AMPLITUDE, n_sites),
        site_utc_offset=rng.integers(
            SITE_UTC_OFFSET_HOURS[0], SITE_UTC_OFFSET_HOURS[1] + 1, n_sites
        ).astype(float),
    )


def ambient(params: DeviceParams, utc_hour: float) -> tuple[np.ndarray, np.ndarray]:
    """Ambient temperature per device and whether its site is in opening hours, at ``utc_hour``.

    ``utc_hour`` is the hour of day in UTC (fractional; values past 24 wrap).
    """
    local_site = (utc_hour + params.site_utc_offset) % 24.0
    phase = 2.0 * np.pi * (local_site - PEAK_LOCAL_HOUR + 6.0) / 24.0
    site_temp = params.site_ambient + params.site_amplitude * np.sin(phase)
    site_open = (local_site >= OPENING_HOURS[0]) & (local_site < OPENING_HOURS[1])
    idx = params.site_index
    return site_temp[idx] + params.ambient_offset, site_open[idx]


def in_defrost(params: DeviceParams, minute: float) -> np.ndarray:
    """Whether each device's defrost timer is in its defrost period at ``minute``."""
    return ((minute + params.defrost_phase) % params.defrost_interval) < params.defrost_duration


def initial_state(
    params: DeviceParams, config: SimulationConfig, rng: np.random.Generator, n_stuck: int
) -> PhysicsState:
    """A steady, desynchronised starting point: cabinets inside their thermostat band."""
    n = params.n
    amb, _ = ambient(params, float(config.start.hour))
    cabinet = params.setpoint + rng.uniform(-1.0, 1.0, n) * params.hysteresis
    running = rng.random(n) < 0.5
    evaporator = np.where(
        running,
        params.evaporator_running + EVAPORATOR_CABINET_COUPLING * (cabinet - params.setpoint),
        cabinet - rng.uniform(0.0, 2.0, n),
    )
    return PhysicsState(
        cabinet=cabinet,
        evaporator=evaporator,
        condenser=np.where(running, amb + params.condenser_delta, amb + CONDENSER_IDLE_DELTA),
        pressure_low=np.where(running, params.pressure_running, params.pressure_idle),
        running=running,
        idle_steps=np.where(running, 0, 10_000).astype(np.int64),
        door_steps_left=np.zeros(n, dtype=np.int64),
        stuck_values=np.full(n_stuck, np.nan),
    )


def door_step(
    params: DeviceParams,
    state: PhysicsState,
    rng: np.random.Generator,
    dt: float,
    open_hours: np.ndarray,
) -> np.ndarray:
    """Open doors at random (Poisson per step, fewer at night); return who is open this step."""
    rate = params.door_rate * dt * np.where(open_hours, 1.0, NIGHT_DOOR_SHARE)
    opening = (state.door_steps_left == 0) & (rng.random(params.n) < rate)
    if opening.any():
        minutes = rng.uniform(params.door_minutes_lo[opening], params.door_minutes_hi[opening])
        state.door_steps_left[opening] = np.maximum(1, np.ceil(minutes / dt)).astype(np.int64)
    door = state.door_steps_left > 0
    state.door_steps_left = np.maximum(state.door_steps_left - 1, 0)
    return door


def _blend(dt: float, tau: float) -> float:
    return float(1.0 - np.exp(-dt / tau))


def step(
    params: DeviceParams,
    state: PhysicsState,
    *,
    dt: float,
    amb: np.ndarray,
    defrost: np.ndarray,
    door: np.ndarray,
    mods: Modifiers | None,
) -> dict[str, np.ndarray]:
    """Advance ``state`` by one step of ``dt`` minutes; return the noise-free readings."""
    m = mods if mods is not None else Modifiers.neutral(params.n)
    sp = params.setpoint
    door = door | m.force_door
    defrost = defrost & ~m.no_defrost & ~m.power_off

    # Thermostat with hysteresis, minimum off time, defrost lockout, fault overrides.
    cab = state.cabinet
    band = params.hysteresis * m.hysteresis_factor
    want = np.where(
        cab > sp + band,
        True,
        np.where(cab < sp - band, False, state.running),
    )
    may_start = state.running | (state.idle_steps * dt >= MIN_OFF_MINUTES) | m.ignore_min_off
    running = ((want & may_start & ~defrost) | m.force_on) & ~m.force_off & ~m.power_off
    heating = defrost & ~running
    state.idle_steps = np.where(running, 0, state.idle_steps + 1)
    state.running = running

    # Cabinet air (hidden): heat leak, open door, defrost heaters, cooling by the coil.
    gap = amb - cab
    gain = params.heat_leak * gap + params.door_leak * door * gap + heating * DEFROST_CABINET_HEAT
    pull = np.clip((cab - state.evaporator) / params.coil_delta, 0.0, 1.5)
    cool = running * params.cooling * m.capacity * pull
    cab = cab + dt * (gain - cool)
    state.cabinet = cab

    # Evaporator coil.
    old_evap = state.evaporator
    target = np.where(
        running,
        params.evaporator_running + EVAPORATOR_CABINET_COUPLING * (cab - sp) + m.evaporator_offset,
        cab,
    )
    blend = np.where(running, _blend(dt, TAU_EVAPORATOR_RUNNING), _blend(dt, TAU_EVAPORATOR_IDLE))
    evap = old_evap + blend * (target - old_evap)
    max_rise = DEFROST_RISE_SHARE * threshold_default("evaporator_rise_per_minute") * dt
    heat = np.minimum((DEFROST_TARGET - old_evap) * _blend(dt, TAU_DEFROST), max_rise)
    evap = np.where(heating, old_evap + heat, evap)
    if m.evaporator_mode.any():
        rate = m.evaporator_rate * dt
        drift = np.clip((amb - old_evap) * _blend(dt, TAU_EVAPORATOR_RUNNING), -rate, rate)
        evap = np.where(m.evaporator_mode == 1, old_evap + rate, evap)
        evap = np.where(m.evaporator_mode == 2, old_evap + drift, evap)
    state.evaporator = evap

    # Condenser and high side.
    cond_target = np.where(
        running, amb + params.condenser_delta + m.condenser_extra, amb + CONDENSER_IDLE_DELTA
    )
    cond_blend = np.where(
        running, _blend(dt, TAU_CONDENSER_RUNNING), _blend(dt, TAU_CONDENSER_IDLE)
    )
    cond = state.condenser + cond_blend * (cond_target - state.condenser)
    state.condenser = cond
    high = params.high_side_calibration * HIGH_SIDE_AT_20C * np.exp(HIGH_SIDE_SLOPE * (cond - 20.0))

    # Low side: two levels set by the running state, small load and coil dependence.
    low_target = m.pressure_low_factor * np.where(
        running,
        params.pressure_running * (1.0 + LOW_SIDE_LOAD * (cab - sp)),
        params.pressure_idle * (1.0 + LOW_SIDE_COIL * (evap - sp)),
    )
    low_blend = np.where(running, _blend(dt, TAU_LOW_SIDE_RUNNING), _blend(dt, TAU_LOW_SIDE_IDLE))
    low_blend = np.where(m.pressure_low_fast, _blend(dt, TAU_LOW_SIDE_FAULT), low_blend)
    low = state.pressure_low + low_blend * (low_target - state.pressure_low)
    state.pressure_low = low

    # Compressor motor.
    current = np.where(
        running,
        params.current_running * (1.0 + CURRENT_PER_DEGC * (cond - 40.0)) * m.current_factor,
        params.current_idle,
    )
    current = np.where(np.isnan(m.current_override), current, m.current_override)
    current = np.where(m.power_off, 0.0, current)
    vibration = np.where(
        running, params.vibration_running * m.vibration_factor, params.vibration_idle
    )
    # Without power the fans stop too; the sensor still sees a little from the building.
    vibration = np.where(m.power_off, POWER_OFF_VIBRATION_SHARE * params.vibration_idle, vibration)

    return {
        EVAPORATOR: evap,
        CONDENSER: cond,
        PRESSURE_LOW: low,
        PRESSURE_HIGH: high,
        CURRENT: current,
        VIBRATION: vibration,
        AMBIENT: amb,
        DOOR: door,
    }


def add_observation_noise(values: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Add bounded Gaussian-like sensor noise in place to every quantity in :data:`NOISE`."""
    for name in sorted(values):
        if name not in NOISE:
            continue
        kind, sigma = NOISE[name]
        arr = values[name]
        z = rng.standard_normal(arr.shape, dtype=np.float32)
        np.tanh(z / NOISE_CLIP, out=z)
        z *= NOISE_CLIP
        if kind == "abs":
            arr += sigma * z
        else:
            arr *= 1.0 + sigma * z
