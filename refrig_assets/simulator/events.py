"""Operational faults, site events and weather: what happens to devices that are not broken.

* ``door_left_open``: the door stays open for 45-120 minutes.
* ``short_cycling``: the thermostat differential shrinks to a tenth and the anti-short-cycle
  delay is lost for 1-3 hours; the compressor starts every few minutes.
* ``defrost_failure``: the defrost heaters never come on again; the coil ices up over hours
  (less capacity, a colder coil, lower suction pressure). Only planned when the simulation is
  long enough for a missed defrost to be seen (:data:`DEFROST_FAILURE_MIN_HOURS`).
* ``site_power_loss``: every device of a site loses its supply for 30-90 minutes (compressor,
  fans and heaters off, current 0; the data logger keeps reporting).
* Faults are planned only where the fleet's sensors (``SimulationConfig.sensors``) can show
  them (:data:`~refrig_assets.simulator.faults.FAULT_SIGNATURES`).
* heat wave (``SimulationConfig.heat_wave``): half of the sites warm by up to
  :data:`HEAT_WAVE_DELTA` degC from a third of the range on. Not a fault and not labelled:
  nothing should alert on it.

They are planned from their own random stream, after the machine and sensor faults, on devices
those left healthy, so a seed's machine and sensor faults do not change.
"""

from __future__ import annotations

import numpy as np

from refrig_assets.simulator.config import SimulationConfig
from refrig_assets.simulator.faults import (
    FAULT_NAMES,
    ONSET_AFTER_SHARE,
    OPERATIONAL_FAULTS,
    FaultPlan,
    observable,
)
from refrig_assets.simulator.physics import DEFROST_INTERVAL_HOURS, DeviceParams

DOOR_OPEN_MINUTES = (45, 120)
SHORT_CYCLING_MINUTES = (60, 180)
POWER_LOSS_MINUTES = (30, 90)
ICING_RAMP_HOURS = (16.0, 24.0)
# A defrost failure shows once a defrost is missed (1.5 intervals after the last one) and the
# device's usual interval is known (two defrosts before the onset).
DEFROST_FAILURE_MIN_HOURS = 36
DEFROST_FAILURE_HISTORY_HOURS = 2 * DEFROST_INTERVAL_HOURS[1]
DEFROST_FAILURE_TAIL_HOURS = 1.5 * DEFROST_INTERVAL_HOURS[1] + 2
HEAT_WAVE_DELTA = 8.0
HEAT_WAVE_RAMP_HOURS = 3.0


def operational_kinds(config: SimulationConfig) -> tuple[str, ...]:
    """The operational faults a simulation of this length and these sensors can show."""
    kinds = tuple(k for k in OPERATIONAL_FAULTS if observable(k, config.sensors))
    if config.hours < DEFROST_FAILURE_MIN_HOURS:
        return tuple(k for k in kinds if k != "defrost_failure")
    return kinds


def _minutes(config: SimulationConfig, rng: np.random.Generator, span, k: int) -> np.ndarray:
    minutes = rng.integers(span[0], span[1] + 1, k)
    return np.maximum(1, np.ceil(minutes * 60.0 / config.cadence_seconds)).astype(np.int64)


def _onsets(config, rng, k, duration, earliest_hours=0.0, tail_steps=None) -> np.ndarray:
    total = config.total_steps
    lo = max(int(np.ceil(total * ONSET_AFTER_SHARE)), config.steps_for_minutes(earliest_hours * 60))
    tail = duration if tail_steps is None else np.full(k, tail_steps)
    hi = np.maximum(lo, total - tail)
    return (lo + np.floor(rng.random(k) * (hi - lo + 1))).astype(np.int64)


def plan_events(
    config: SimulationConfig,
    rng: np.random.Generator,
    params: DeviceParams,
    taken: np.ndarray,
) -> FaultPlan:
    """Operational faults on ``operational_fault_fraction`` of the devices not in ``taken``
    (round-robin over the kinds), and power losses on ``power_loss_sites`` sites (the sites
    with the fewest faulty devices; their devices already faulty keep only their own label)."""
    if not config.faults:
        return FaultPlan.empty()
    n = config.devices
    free = np.setdiff1d(np.arange(n), taken)
    kinds = operational_kinds(config)
    k = min(len(free), round(config.operational_fault_fraction * n))
    parts = []
    if k and kinds:
        device = rng.permutation(free)[:k]
        kind = np.array([kinds[i % len(kinds)] for i in range(k)], dtype=object)
        door = _minutes(config, rng, DOOR_OPEN_MINUTES, k)
        cycling = _minutes(config, rng, SHORT_CYCLING_MINUTES, k)
        duration = np.where(kind == "door_left_open", door, cycling)
        onset = _onsets(config, rng, k, duration)
        defrost = kind == "defrost_failure"
        if defrost.any():
            late = _onsets(
                config,
                rng,
                k,
                duration,
                earliest_hours=DEFROST_FAILURE_HISTORY_HOURS,
                tail_steps=config.steps_for_minutes(DEFROST_FAILURE_TAIL_HOURS * 60),
            )
            onset = np.where(defrost, late, onset)
        total = config.total_steps
        end = np.where(defrost, total, np.minimum(onset + duration, total))
        ramp = np.where(
            defrost, _minutes(config, rng, tuple(int(h * 60) for h in ICING_RAMP_HOURS), k), 0
        )
        parts.append(
            FaultPlan(
                device=device,
                code=np.array([FAULT_NAMES.index(x) for x in kind]),
                onset=onset,
                end=end,
                ramp=ramp,
                magnitude=np.zeros(k),
                sensor=np.full(k, None, dtype=object),
            )
        )
        taken = np.concatenate([taken, device])
    sites = min(config.power_loss_sites, config.n_sites)
    if not observable("site_power_loss", config.sensors):
        sites = 0
    if sites:
        faulty = np.bincount(params.site_index[taken], minlength=config.n_sites)
        order = np.lexsort((rng.random(config.n_sites), faulty))[:sites]
        for site in order:
            device = np.setdiff1d(np.flatnonzero(params.site_index == site), taken)
            if not len(device):
                continue
            duration = _minutes(config, rng, POWER_LOSS_MINUTES, 1)
            onset = _onsets(config, rng, 1, duration)
            m = len(device)
            parts.append(
                FaultPlan(
                    device=device,
                    code=np.full(m, FAULT_NAMES.index("site_power_loss")),
                    onset=np.full(m, onset[0]),
                    end=np.full(m, min(int(onset[0] + duration[0]), config.total_steps)),
                    ramp=np.zeros(m),
                    magnitude=np.zeros(m),
                    sensor=np.full(m, None, dtype=object),
                )
            )
    plan = FaultPlan.empty()
    for part in parts:
        plan = plan.merged(part)
    return plan


def heat_wave_sites(config: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Which sites the heat wave covers (half of them, at least one): bool per site."""
    covered = np.zeros(config.n_sites, dtype=bool)
    if config.heat_wave:
        covered[rng.permutation(config.n_sites)[: max(1, config.n_sites // 2)]] = True
    return covered


def heat_wave_offset(config: SimulationConfig, minute: float) -> float:
    """Extra ambient degC of the heat wave at ``minute`` of the simulation (0 before it)."""
    if not config.heat_wave:
        return 0.0
    start = config.hours * 60.0 * ONSET_AFTER_SHARE
    progress = (minute - start) / (HEAT_WAVE_RAMP_HOURS * 60.0)
    return float(HEAT_WAVE_DELTA * np.clip(progress, 0.0, 1.0))
