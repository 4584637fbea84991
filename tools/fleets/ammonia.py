"""An industrial R717 (ammonia) fleet with per-device sensor kits and untidy landing files.

Why: the pipeline is judged on fleets it never sees. This generator follows the contracts
(``contracts/sensor_readings.yaml``, ``contracts/device_registry.yaml``) but shares no code with
``refrig_assets/simulator`` or ``tools/fleets/propane.py``, and differs from both:

* **Refrigerant**: ammonia. Pressures are its saturation pressure (Antoine fit) at the
  evaporating and condensing temperatures (``psat_kpa``): suction 70-300 kPa, head 1100-1700 kPa.
* **Cohorts**: chiller rooms (+2 °C, off-cycle defrost), cold stores (-22 °C) and blast freezers
  (-32 °C) with hot-gas defrost; compressors of 15-45 A.
* **Cadence**: 10 s by default, with clock jitter (each reading up to a few seconds off the
  grid) and one device whose clock runs 40 s ahead.
* **Sensor kits per device, not per fleet**: chiller rooms have no pressure transmitters (the
  columns are null on their rows), blast freezers have no door switch, about half the cold stores
  have a vibration sensor and the rest do not, one device has no ambient probe and one (a data
  logger) reports only its coil temperature and door.
* **Lifecycle**: one device is commissioned hours after the others (its first reading comes
  after training), one is decommissioned part-way (its readings stop for good).
* **Landing files**: an hour delivered twice (the same readings under another name), an hour
  split in two time halves, an hour written per site (one gateway each, sending only the
  columns its devices fill), an hour delivered late under a name of another layout, and a few
  readings repeated inside their file.
* **Faults** (after the training hours; labels in the shape ``refrig evaluate --labels`` reads):
  faults the project does not name (an iced evaporator, a hunting expansion valve, a failing
  compressor valve: weak pumping, low current, warm discharge, the room warming) and some it
  names (refrigerant leak, door left open, stuck evaporator sensor). Other devices stay healthy.

Usage::

    python -m tools.fleets.ammonia --home /tmp/f --devices 24 --hours 12 --cadence 10 --seed 3
    REFRIG_HOME=/tmp/f REFRIG_CADENCE_SECONDS=10 refrig pipeline run --start 2026-01-01T00:00 \\
        --hours 12 --train-hours 4
    REFRIG_HOME=/tmp/f refrig evaluate --labels /tmp/f/reference/labels.parquet
    python -m tools.fleets.ammonia --home /tmp/f --score     # incidents per fault and cause
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tools.fleets.common import ramp, score

START = pd.Timestamp("2026-01-01T00:00:00Z")
# Which incident causes name each labelled fault right (the unnamed faults accept "unknown").
EXPECTED_CAUSES: dict[str, tuple[str, ...]] = {
    "iced_evaporator": ("evaporator_airflow", "defrost_failure", "unknown"),
    "hunting_expansion_valve": ("unknown",),
    "compressor_valve_failure": ("mechanical_wear", "unknown"),
    "refrigerant_leak": ("refrigerant_leak",),
    "door_left_open": ("door_ajar",),
    "stuck_sensor": ("sensor_fault",),
    # The decommissioned device: one communications ticket when it goes silent is right.
    "device_went_silent": ("communications_loss",),
}
DEVICE_FAULTS = tuple(EXPECTED_CAUSES)[:-1]
READING_COLUMNS = [
    "device_id", "ts", "temperature_evaporator", "temperature_condenser", "pressure_low_side",
    "pressure_high_side", "current_compressor", "vibration_compressor", "ambient_temperature",
    "door_open",
]  # fmt: skip


def psat_kpa(temp_c: np.ndarray | float) -> np.ndarray:
    """Saturation pressure of ammonia (kPa absolute) at ``temp_c`` (Antoine fit, NIST)."""
    return 100.0 * 10 ** (4.86886 - 1113.928 / (np.asarray(temp_c) + 273.15 - 10.409))


@dataclass(frozen=True)
class Cohort:
    """Nominal behaviour and sensor kit of a device type; pairs are per-device uniform ranges."""

    setpoint: float
    band: float
    coil_delta: tuple[float, float]  # running coil below room air, K
    leak: tuple[float, float]  # room warming per minute and K of (ambient - room)
    cooling: tuple[float, float]  # cooling per minute and K of (room - coil)
    amps: tuple[float, float]  # running current
    doors_per_hour: float
    defrost_every_h: float
    defrost_minutes: float
    hot_gas: bool  # hot-gas defrost heats the coil; off-cycle defrost lets it drift to the air
    pressures: bool
    door_switch: bool
    vibration_share: float  # share of the cohort's devices with a vibration sensor


COHORTS = {
    "chiller_room": Cohort(2.0, 1.0, (6, 8), (0.006, 0.008), (0.05, 0.065), (15, 22), 6.0,
                           6.0, 25.0, False, False, True, 0.0),
    "cold_store": Cohort(-22.0, 1.5, (7, 9), (0.0035, 0.0045), (0.065, 0.08), (25, 35), 2.0,
                         8.0, 25.0, True, True, True, 0.5),
    "blast_freezer": Cohort(-32.0, 2.0, (8, 10), (0.004, 0.005), (0.07, 0.085), (35, 45), 0.0,
                            6.0, 30.0, True, True, False, 1.0),
}  # fmt: skip
FAN_AMPS = 1.2  # evaporator fans and controls, drawn whenever the device has power


@dataclass
class Plan:
    """Devices (registry rows), their sensor kits, lifecycle and faults (label rows)."""

    registry: pd.DataFrame
    labels: pd.DataFrame
    kit: pd.DataFrame  # device_id x measurement: does the device have the sensor
    first_hour: dict[str, float]  # commissioned devices: first reading
    last_hour: dict[str, float]  # decommissioned devices: last reading


def make_plan(devices: int, hours: float, train_hours: float, per_site: int, rng) -> Plan:
    """Sites of ``per_site`` devices, per-device sensor kits, one device commissioned after
    training and one decommissioned part-way, and a fault for about 40 % of the others."""
    ids = [f"nh3-{i:04d}" for i in range(devices)]
    sites = [f"plant-{i // per_site:02d}" for i in range(devices)]
    cohorts = rng.choice(list(COHORTS), size=devices, p=[0.35, 0.4, 0.25])
    registry = pd.DataFrame({"device_id": ids, "site_id": sites, "cohort": cohorts})
    spec = [COHORTS[c] for c in cohorts]
    kit = pd.DataFrame(
        {
            "pressure_low_side": [s.pressures for s in spec],
            "pressure_high_side": [s.pressures for s in spec],
            "vibration_compressor": [rng.random() < s.vibration_share for s in spec],
            "door_open": [s.door_switch for s in spec],
            "ambient_temperature": True,
            "temperature_condenser": True,
            "current_compressor": True,
        },
        index=ids,
    )
    kit.iloc[int(rng.integers(devices)), kit.columns.get_loc("ambient_temperature")] = False
    order = list(rng.permutation(ids))
    newcomer, leaver = order.pop(), order.pop()
    first_hour = {newcomer: train_hours + 0.75}
    last_hour = {leaver: hours * 0.6}

    def onset(length_h: float) -> float:
        return float(rng.uniform(train_hours + 0.5, max(train_hours + 0.6, hours - length_h)))

    rows = []
    faulty = order[: int(round(0.4 * len(order)))]
    # A data-logger kit: the first faulty device reports its coil temperature and door only.
    kit.loc[faulty[0]] = False
    kit.loc[faulty[0], "door_open"] = True
    for k, dev in enumerate(faulty):
        kind = DEVICE_FAULTS[k % len(DEVICE_FAULTS)]
        if kind == "door_left_open":
            t0 = onset(1.5)
            rows.append((dev, kind, "acute", t0, t0 + rng.uniform(1.0, 1.5), None))
        elif kind == "stuck_sensor":
            t0 = onset(2.0)
            rows.append((dev, kind, "sensor", t0, t0 + 2.0, "temperature_evaporator"))
        elif kind == "hunting_expansion_valve":
            t0 = onset(2.0)
            rows.append((dev, kind, "gradual", t0, min(hours, t0 + 3.0), None))
        else:
            rows.append((dev, kind, "gradual", onset(3.0), hours, None))
    rows.append((leaver, "device_went_silent", "sensor", last_hour[leaver], hours, None))
    labels = pd.DataFrame(
        rows, columns=["device_id", "fault_type", "category", "onset", "end", "sensor"]
    )
    return Plan(registry, labels, kit, first_hour, last_hour)


def simulate(plan: Plan, hours: float, cadence_s: float, rng) -> pd.DataFrame:
    """Readings of every device while it is in service, one row per cadence (jittered)."""
    reg = plan.registry
    n = len(reg)
    steps = int(round(hours * 3600 / cadence_s))
    dt = cadence_s / 60.0  # minutes
    t_h = np.arange(steps) * cadence_s / 3600.0
    spec = [COHORTS[c] for c in reg["cohort"]]

    def draw(attr: str) -> np.ndarray:
        return np.array([rng.uniform(*getattr(s, attr)) for s in spec])

    sp = np.array([s.setpoint for s in spec])
    band = np.array([s.band for s in spec])
    coil_delta, leak, cool, amps = draw("coil_delta"), draw("leak"), draw("cooling"), draw("amps")
    hot_gas = np.array([s.hot_gas for s in spec])
    defrost_every = np.array([s.defrost_every_h for s in spec])
    defrost_len = np.array([s.defrost_minutes for s in spec]) / 60.0
    defrost_phase = rng.uniform(0, 1, n) * defrost_every
    door_rate = np.array([s.doors_per_hour for s in spec]) * cadence_s / 3600.0
    vib_base = rng.uniform(2.0, 3.5, n)

    # Ambient: plant rooms, warm and steady, with a slow daily swing.
    site_codes, site_index = np.unique(reg["site_id"], return_inverse=True)
    level = rng.uniform(22, 32, len(site_codes))
    amp = rng.uniform(1.0, 3.0, len(site_codes))
    daily = np.cos(2 * np.pi * (t_h[:, None] - rng.uniform(13, 17, len(site_codes))) / 24.0)
    ambient = (level + amp * daily)[:, site_index] + rng.uniform(-1, 1, n)

    eff = {k: np.zeros((steps, n)) for k in DEVICE_FAULTS}
    col = {d: i for i, d in enumerate(reg["device_id"])}
    for row in plan.labels.itertuples():
        ramp_h = {"refrigerant_leak": 4.0, "iced_evaporator": 3.0,
                  "compressor_valve_failure": 1.0, "hunting_expansion_valve": 0.2}.get(
            row.fault_type, 1e-9)  # fmt: skip
        if row.fault_type in eff:
            eff[row.fault_type][:, col[row.device_id]] = ramp(
                t_h, row.onset, row.end + 1e-9, ramp_h
            )
    charge = 1.0 - 0.5 * eff["refrigerant_leak"]
    ice = eff["iced_evaporator"]  # airflow through the coil blocked by ice
    pumping = 1.0 - 0.6 * eff["compressor_valve_failure"]  # leaking valves: gas recirculates
    hunting = eff["hunting_expansion_valve"]
    door_stuck = eff["door_left_open"] > 0
    hunt_period = rng.uniform(3.0, 6.0, n)  # minutes

    air = sp + rng.uniform(-band, band)
    coil = air - coil_delta * 0.5
    cond = ambient[0] + 2.0
    on = rng.random(n) < 0.5
    off_since = np.zeros(n)
    on_since = np.zeros(n)
    door_left = np.zeros(n)
    p_low, p_high = psat_kpa(coil), psat_kpa(cond)
    out = {k: np.empty((steps, n)) for k in ("evap", "cond", "plow", "phigh", "amps", "vib")}
    out_door = np.zeros((steps, n), dtype=bool)
    for i in range(steps):
        amb = ambient[i]
        in_defrost = ((t_h[i] - defrost_phase) % defrost_every) < defrost_len
        opened = rng.random(n) < door_rate
        # an opening at a random moment of the step, open at the reading if it lasts past it
        since = rng.uniform(0, cadence_s, n)
        lasting = rng.uniform(30, 180, n) - since
        door_left = np.where(
            opened, np.maximum(lasting, door_left - cadence_s), door_left - cadence_s
        )
        door = (door_left > 0) | door_stuck[i]
        want_on = np.where(on, air > sp - band, air > sp + band)
        start = want_on & ~on & (off_since >= 4.0)
        stop = ~want_on & on & (on_since >= 3.0)
        on = (on | start) & ~stop & ~in_defrost
        on_since = np.where(on, np.where(start, 0.0, on_since + dt), 0.0)
        off_since = np.where(on, 0.0, off_since + dt)
        swing = hunting[i] * np.sin(2 * np.pi * t_h[i] * 60.0 / hunt_period)
        coil_target = np.where(
            on,
            air
            - coil_delta * (1 + 1.5 * ice[i]) * pumping[i] ** 0.5
            - 5.0 * (1 - charge[i])
            + 4.0 * swing,
            np.where(in_defrost & hot_gas, 15.0, air),
        )
        coil += (coil_target - coil) * (1 - np.exp(-dt / np.where(on, 2.0, 4.0)))
        capacity = (
            cool * (1 - 0.75 * ice[i]) * charge[i] ** 0.8 * pumping[i]
            * np.maximum(air - coil, 0) * on
        )  # fmt: skip
        warming = (leak + 0.03 * door) * (amb - air) + 0.03 * (in_defrost & hot_gas)
        air = air + (warming - capacity) * dt
        cond_target = np.where(on, amb + 10.0 * (0.5 + 0.5 * charge[i]) * pumping[i], amb + 2.0)
        cond += (cond_target - cond) * (1 - math.exp(-dt / 3.0))
        evap_sat = np.where(on, coil - 3.0 - 8.0 * (1 - charge[i]) + 6.0 * (1 - pumping[i]), coil)
        p_low += (psat_kpa(evap_sat) - p_low) * (1 - math.exp(-dt / 0.7))
        p_high += (psat_kpa(cond) - p_high) * (1 - math.exp(-dt / 0.7))
        running = (
            amps * (1 + 0.01 * (cond - 35)) * (0.75 + 0.25 * charge[i]) * (0.55 + 0.45 * pumping[i])
        )
        current = np.where(on, running, 0.0) + FAN_AMPS
        vib = np.where(on, vib_base * (1 + 0.3 * (1 - pumping[i])), 0.3)
        out["evap"][i], out["cond"][i], out["amps"][i] = coil, cond, current
        out["plow"][i], out["phigh"][i], out["vib"][i] = p_low, p_high, vib
        out_door[i] = door

    noise = {"evap": 0.2, "cond": 0.25, "plow": 1.5, "phigh": 8.0, "amps": 0.3, "vib": 0.15}
    for k, sd in noise.items():
        out[k] = np.maximum(out[k] + rng.normal(0, sd, out[k].shape), -1e9)
    out["amps"] = np.maximum(out["amps"], 0.0)
    out["vib"] = np.maximum(out["vib"], 0.0)
    stuck = eff["stuck_sensor"] > 0
    for j in np.flatnonzero(stuck.any(axis=0)):
        first = np.flatnonzero(stuck[:, j])[0]
        out["evap"][stuck[:, j], j] = round(float(out["evap"][first, j]), 1)
    amb_read = ambient + rng.normal(0, 0.1, ambient.shape)

    grid = np.arange(steps) * cadence_s
    jitter = rng.uniform(-0.3, 0.3, (steps, n)) * min(cadence_s, 10.0)
    clock = np.zeros(n)
    clock[int(rng.integers(n))] = 40.0  # one device's clock runs ahead
    seconds = np.round(grid[:, None] + jitter + clock, 3)
    frame = pd.DataFrame(
        {
            "device_id": np.tile(reg["device_id"].to_numpy(), steps),
            "ts": START + pd.to_timedelta(seconds.ravel(), unit="s"),
            "temperature_evaporator": out["evap"].ravel(),
            "temperature_condenser": out["cond"].ravel(),
            "pressure_low_side": out["plow"].ravel(),
            "pressure_high_side": out["phigh"].ravel(),
            "current_compressor": out["amps"].ravel(),
            "vibration_compressor": out["vib"].ravel(),
            "ambient_temperature": amb_read.ravel(),
            "door_open": pd.array(out_door.ravel(), dtype="boolean"),
        }
    )
    # Sensors a device does not have read as null on its rows.
    for name in plan.kit.columns:
        lacking = plan.kit.index[~plan.kit[name]]
        frame.loc[frame["device_id"].isin(lacking), name] = None
    hour = np.tile(np.arange(steps) * cadence_s / 3600.0, 1).repeat(n)
    served = np.ones(len(frame), dtype=bool)
    for dev, h in plan.first_hour.items():
        served &= ~((frame["device_id"] == dev).to_numpy() & (hour < h))
    for dev, h in plan.last_hour.items():
        served &= ~((frame["device_id"] == dev).to_numpy() & (hour > h))
    frame = frame[served & (rng.random(len(frame)) >= 0.002)]
    return frame.sort_values(["device_id", "ts"]).reset_index(drop=True)[READING_COLUMNS]


def _write(part: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part.to_parquet(path, index=False)


def write_fleet(home: Path, devices: int, hours: int, train_hours: float, cadence_s: float,
                seed: int, per_site: int = 6) -> Plan:  # fmt: skip
    """Landing files under ``<home>/landing/``, the registry
    (``<home>/reference/device_registry.csv``) and the labels
    (``<home>/reference/labels.parquet``) of one fleet. Most hours land as one file; the
    untidy ones are described in the module docstring."""
    rng = np.random.default_rng(seed)
    plan = make_plan(devices, hours, train_hours, per_site, rng)
    readings = simulate(plan, hours, cadence_s, rng)
    ref = home / "reference"
    ref.mkdir(parents=True, exist_ok=True)
    plan.registry.to_csv(ref / "device_registry.csv", index=False)
    labels = plan.labels.assign(
        onset=START + pd.to_timedelta(plan.labels["onset"], unit="h"),
        end=START + pd.to_timedelta(plan.labels["end"], unit="h"),
    )
    labels.to_parquet(ref / "labels.parquet", index=False)
    site_of = plan.registry.set_index("device_id")["site_id"]
    last = hours - 1
    resent, halves, per_gateway, late = 2, min(3, last), min(5, last), min(6, last)
    hour = readings["ts"].dt.floor("h")
    land = home / "landing"
    for h, part in readings.groupby(hour):
        k = int((h - START) / pd.Timedelta(hours=1))
        name = f"{h:%Y-%m-%d}/readings_{h:%Y%m%dT%H}"
        if k == halves:
            middle = h + pd.Timedelta(minutes=30)
            _write(part[part["ts"] < middle], land / f"{name}_a.parquet")
            _write(part[part["ts"] >= middle], land / f"{name}_b.parquet")
        elif k == per_gateway:
            for site, rows in part.groupby(part["device_id"].map(site_of)):
                # a site's gateway sends only the columns its devices fill
                _write(rows.dropna(axis=1, how="all"), land / f"{name}_{site}.parquet")
        elif k == late:
            path = land / "late" / f"upload-{seed}-{h:%H%M}.parquet"
            _write(part, path)
            arrival = (h + pd.Timedelta(hours=3)).timestamp()
            os.utime(path, (arrival, arrival))
        else:
            if k == 1:  # a gateway resends a few readings inside the same file
                part = pd.concat([part, part.sample(frac=0.01, random_state=seed)])
            _write(part, land / f"{name}.parquet")
            if k == resent:  # the whole hour delivered again under another name
                _write(part, land / f"{name}_resend.parquet")
    return plan


def main(argv: list[str] | None = None) -> None:
    """Write a fleet, or with ``--score`` print a pipeline run's incidents against it."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, required=True)
    p.add_argument("--devices", type=int, default=24)
    p.add_argument("--hours", type=int, default=12)
    p.add_argument("--train-hours", type=float, default=4)
    p.add_argument("--cadence", type=float, default=10, help="seconds between readings")
    p.add_argument("--per-site", type=int, default=6)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--score", action="store_true")
    a = p.parse_args(argv)
    if a.score:
        per_type, totals = score(a.home, EXPECTED_CAUSES)
        pd.set_option("display.width", 200)
        print(per_type.drop(columns=["category"]).to_string(index=False))
        right = (per_type["cause_accuracy"] * per_type["caught"]).sum()
        totals["cause_accuracy"] = right / max(per_type["caught"].sum(), 1)
        print({k: round(v, 3) for k, v in totals.items()})
        return
    plan = write_fleet(a.home, a.devices, a.hours, a.train_hours, a.cadence, a.seed, a.per_site)
    print(plan.labels.to_string(index=False))
    print("commissioned:", plan.first_hour, "decommissioned:", plan.last_hour)
    print("sensor kits:\n" + plan.kit.to_string())


if __name__ == "__main__":
    main()
