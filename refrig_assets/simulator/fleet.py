"""The :class:`FleetSimulator`: devices, labels and readings hour by hour.

The simulation is a deterministic function of the config: device constants, the fault plan and
the initial state come from their own random streams, and hour ``i`` draws door openings and
sensor noise from streams seeded by ``(seed, i)``. The physical state at each hour boundary is
kept (the latest one, and one per simulated day) so :meth:`FleetSimulator.hour` replays only the
hours it has not seen yet, and ``hour(i)`` alone equals the ``i``-th item of
:meth:`FleetSimulator.hours`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import ContractError, load_contract
from refrig_assets.core.fleet_sensors import measurement_columns
from refrig_assets.simulator.config import SimulationConfig
from refrig_assets.simulator.events import heat_wave_offset, heat_wave_sites, plan_events
from refrig_assets.simulator.faults import FaultPlan, plan_faults
from refrig_assets.simulator.physics import (
    QUANTITIES,
    PhysicsState,
    add_observation_noise,
    ambient,
    door_step,
    in_defrost,
    initial_state,
    sample_devices,
    step,
)

# Independent random streams, combined with the seed (and the hour for per-hour streams).
STREAM_DEVICES, STREAM_FAULTS, STREAM_INITIAL, STREAM_PROCESS, STREAM_NOISE = range(5)
STREAM_EVENTS, STREAM_WEATHER = 5, 6
CHECKPOINT_EVERY_HOURS = 24


def _transpose(a: np.ndarray, block: int = 8192) -> np.ndarray:
    """(steps, devices) to C-ordered (devices, steps), in cache-friendly blocks of devices."""
    steps, n = a.shape
    out = np.empty((n, steps), dtype=a.dtype)
    for lo in range(0, n, block):
        out[lo : lo + block] = a[:, lo : lo + block].T
    return out


class FleetSimulator:
    """A simulated fleet: registry, fault labels and hourly sensor readings.

    ``hours()`` is the sequential path; ``hour(i)`` gives the same frame for hour ``i`` whatever
    was asked before (it simulates forward from the nearest kept state, so asking for hours in
    order costs one hour each).
    """

    def __init__(self, config: SimulationConfig):
        self.config = config
        self.contract = load_contract("sensor_readings")
        self._registry_contract = load_contract("device_registry")
        unknown = set(self.contract.column_names) - set(self.contract.primary_key) - set(QUANTITIES)
        if unknown:
            raise ContractError(f"simulator does not produce columns {sorted(unknown)}")
        measurements = [c.name for c in measurement_columns(self.contract)]
        foreign = sorted(set(config.sensors or ()) - set(measurements))
        if foreign:
            raise ContractError(
                f"sensors {foreign} are not measurements of sensor_readings ({measurements})"
            )
        self.measurements = [m for m in measurements if not config.sensors or m in config.sensors]
        self.params = sample_devices(config, self._rng(STREAM_DEVICES))
        machine = plan_faults(config, self._rng(STREAM_FAULTS), self.contract.sensor_columns)
        events = plan_events(config, self._rng(STREAM_EVENTS), self.params, machine.device)
        self.plan: FaultPlan = machine.merged(events)
        self._heat_wave = heat_wave_sites(config, self._rng(STREAM_WEATHER))[self.params.site_index]
        start_state = initial_state(
            self.params, config, self._rng(STREAM_INITIAL), self.plan.n_stuck
        )
        self._checkpoints: dict[int, PhysicsState] = {0: start_state}

    def _rng(self, stream: int, *more: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, stream, *more])

    # ----------------------------------------------------------------- reference tables
    def registry(self) -> pd.DataFrame:
        """The device registry, column for column as in ``contracts/device_registry.yaml``.

        Thresholds take the contract's ``default:`` values; every device is ``registered``.
        """
        n = self.params.n
        known = {
            "device_id": self.params.device_ids,
            "site_id": self.params.site_ids,
            "cohort": self.params.cohorts,
            "registered": np.ones(n, dtype=bool),
        }
        columns = {}
        for col in self._registry_contract.columns:
            if col.name in known:
                values = known[col.name]
            elif col.default is not None:
                values = np.full(n, col.default)
            elif col.nullable:
                values = np.full(n, None)
            else:
                raise ContractError(f"simulator cannot fill registry column {col.name!r}")
            columns[col.name] = pd.Series(values, dtype=col.pandas_dtype)
        return pd.DataFrame(columns)

    def labels(self) -> pd.DataFrame:
        """Ground truth, one row per fault: device_id, fault_type, category ('gradual', 'acute'
        or 'sensor'), onset, end (UTC; end exclusive) and sensor (affected column of a sensor
        fault, ``'*'`` when whole readings are missing, None for machine faults)."""
        return self.plan.labels(self.config, self.params.device_ids)

    # ----------------------------------------------------------------- readings
    def hour(self, i: int) -> pd.DataFrame:
        """Readings of hour ``i`` (0-based): columns exactly as the sensor_readings contract,
        sorted by device then time, ``ts`` in UTC."""
        if not 0 <= i < self.config.hours:
            raise IndexError(f"hour {i} outside 0..{self.config.hours - 1}")
        base = max(h for h in self._checkpoints if h <= i)
        state = self._checkpoints[base].copy()
        for h in range(base, i):
            self._simulate_hour(h, state, collect=False)
            self._remember(h + 1, state)
        readings = self._simulate_hour(i, state, collect=True)
        self._remember(i + 1, state)
        assert readings is not None
        return self._frame(i, readings)

    def hours(self) -> Iterator[tuple[datetime, pd.DataFrame]]:
        """Every hour in order, as ``(hour start, readings)``; state carries across hours."""
        for i in range(self.config.hours):
            yield self.config.hour_start(i), self.hour(i)

    def _remember(self, h: int, state: PhysicsState) -> None:
        latest = max(self._checkpoints)
        if h <= latest:
            return
        if latest % CHECKPOINT_EVERY_HOURS:
            del self._checkpoints[latest]
        self._checkpoints[h] = state.copy()

    def _simulate_hour(
        self, i: int, state: PhysicsState, *, collect: bool
    ) -> dict[str, np.ndarray] | None:
        """Advance ``state`` through hour ``i``; with ``collect``, return observed readings
        shaped (devices, steps), sensor faults applied, plus ``_keep`` when rows are lost."""
        cfg, params, plan = self.config, self.params, self.plan
        n, steps, dt = params.n, cfg.steps_per_hour, cfg.step_minutes
        process = self._rng(STREAM_PROCESS, i)
        out: dict[str, np.ndarray] = {}
        for k in range(steps):
            t = i * steps + k
            minute = t * dt
            amb, open_hours = ambient(params, cfg.start.hour + minute / 60.0)
            if cfg.heat_wave:
                amb = amb + self._heat_wave * heat_wave_offset(cfg, minute)
            door = door_step(params, state, process, dt, open_hours)
            values = step(
                params,
                state,
                dt=dt,
                amb=amb,
                defrost=in_defrost(params, minute),
                door=door,
                mods=plan.modifiers(t, n, dt),
            )
            plan.record_stuck(t, values, state.stuck_values)
            if collect:
                for name, v in values.items():
                    if name not in out:
                        out[name] = np.empty((steps, n), dtype=v.dtype)
                    out[name][k] = v
        if not collect:
            return None
        readings = {name: _transpose(out.pop(name)) for name in list(out)}
        add_observation_noise(readings, self._rng(STREAM_NOISE, i))
        keep = plan.apply_sensor_faults(readings, n, i * steps, steps, state.stuck_values)
        if keep is not None:
            readings["_keep"] = keep
        return readings

    def _frame(self, i: int, readings: dict[str, np.ndarray]) -> pd.DataFrame:
        cfg, n = self.config, self.params.n
        steps = cfg.steps_per_hour
        id_col, ts_col = self.contract.primary_key
        keep = readings.pop("_keep", None)
        mask = None if keep is None else keep.ravel()

        def take(a: np.ndarray) -> np.ndarray:
            return a if mask is None else a[mask]

        start = np.datetime64(cfg.hour_start(i).replace(tzinfo=None), "ns")
        offsets = np.arange(steps, dtype=np.int64) * np.int64(cfg.cadence_seconds * 10**9)
        ts = np.tile(start + offsets.astype("timedelta64[ns]"), n)
        columns: dict[str, pd.Series] = {}
        for col in self.contract.columns:
            if col.name == id_col:
                ids = take(np.repeat(self.params.device_ids, steps))
                columns[col.name] = pd.Series(ids, dtype=col.pandas_dtype, copy=False)
            elif col.name == ts_col:
                columns[col.name] = pd.Series(pd.DatetimeIndex(take(ts)).tz_localize("UTC"))
            elif col.name not in self.measurements:
                continue  # a sensor this fleet does not have: no column, as in its files
            else:  # every other column is a simulated quantity (checked in __init__)
                values = take(readings[col.name].ravel())
                if col.range is not None:  # a sensor saturates at the end of its range
                    np.clip(values, col.range[0], col.range[1], out=values)
                series = pd.Series(values, copy=False)
                columns[col.name] = series.astype(col.pandas_dtype, copy=False)
        return pd.DataFrame(columns, copy=False)
