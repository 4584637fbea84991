"""A small R290 (propane) fleet with its own physics, independent of ``refrig simulate``.

Why: the pipeline is judged on fleets it never sees. This generator writes a fleet that follows
the contracts (``contracts/sensor_readings.yaml``, ``contracts/device_registry.yaml``) but shares
no code, constant or habit with ``refrig_assets/simulator``:

* **Refrigerant**: propane. Pressures are the saturation pressure (Antoine fit) of the
  evaporating and condensing temperatures, so suction and discharge levels differ from the
  simulator's cohorts (``PSAT``).
* **Cohorts**: medium-temperature display cases (``mt_display_case``, +4 °C) and low-temperature
  chest freezers (``lt_chest_freezer``, -22 °C), with their own thermostat band, heat leak and
  capacity (duty around 40-55 %), electric defrost every 6 h (cases) or 8 h (freezers), each
  device at its own phase, then a forced pull-down.
* **Cadence**: any (default 30 s); the compressor's locked-rotor inrush lasts half a second and is
  sampled with the chance a reading falls in it.
* **Sites**: each site's ambient follows its own daily cycle and level, each device sits in its
  own room offset; one site has an unlabelled HVAC failure (the room warms by 7 K for hours: the
  machines work harder, nothing is broken).
* **Sensors**: no vibration sensor anywhere (the column is absent from every file).
* **Faults** (after the training hours; labels in the shape ``refrig evaluate --labels`` and
  ``refrig pipeline run`` read: ``device_id, fault_type, category, onset, end, sensor``): a
  site-wide power loss, a door left open, a refrigerant leak, a condenser fan failure (head
  pressure up, label ``condenser_fouling``), an evaporator fan failure (not a fault the simulator
  names), a stuck evaporator sensor and a drifting discharge pressure transmitter. The other
  devices stay healthy.
* **Site-wide events** (``--site-events``; without it the fleet is the one above, file for
  file): a gateway outage at the second site (every device silent for 30-60 min, then back:
  label ``site_communications_loss``, category ``site``), a heat wave at the third (the room
  +6-10 K for 2-3 h: compressors run longer, cabinets warm a little; not a fault, so not a
  label), a second power loss at the fourth at another time and in another rhythm (two cuts of
  15-25 min with 15-25 min of supply between them: one label spanning both) and a door left
  open at the heat wave's site while the heat wave lasts (a device fault of its own). Every
  site event is also listed in ``<home>/reference/site_events.parquet`` (site_id, event,
  onset, end), and ``--score`` prints the incidents each one raised. Needs four sites or more.

Usage::

    python -m tools.fleets.propane --home /tmp/f --devices 24 --hours 12 --cadence 30 --seed 3
    REFRIG_HOME=/tmp/f REFRIG_CADENCE_SECONDS=30 refrig pipeline run --start 2026-01-01T00:00 \\
        --hours 12 --train-hours 4
    REFRIG_HOME=/tmp/f refrig evaluate --labels /tmp/f/reference/labels.parquet
    python -m tools.fleets.propane --home /tmp/f --score     # incidents per fault and cause
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tools.fleets.common import ramp, score

START = pd.Timestamp("2026-01-01T00:00:00Z")
# Which incident causes name each labelled fault right (the unnamed faults accept "unknown").
EXPECTED_CAUSES: dict[str, tuple[str, ...]] = {
    "site_power_loss": ("power_loss",),
    "door_left_open": ("door_ajar",),
    "refrigerant_leak": ("refrigerant_leak",),
    "condenser_fouling": ("condenser_fouling",),
    "evaporator_fan_failure": ("evaporator_airflow", "unknown"),
    "stuck_sensor": ("sensor_fault",),
    "sensor_drift": ("sensor_fault", "unknown"),
    "site_communications_loss": ("communications_loss",),
}
DEVICE_FAULTS = (
    "door_left_open",
    "refrigerant_leak",
    "condenser_fouling",
    "evaporator_fan_failure",
    "stuck_sensor",
    "sensor_drift",
)


def psat_kpa(temp_c: np.ndarray | float) -> np.ndarray:
    """Saturation pressure of propane (kPa absolute) at ``temp_c`` (Antoine fit, NIST)."""
    return 100.0 * 10 ** (4.53678 - 1149.36 / (np.asarray(temp_c) + 273.15 + 24.906))


PSAT = psat_kpa


@dataclass(frozen=True)
class Cohort:
    """Nominal behaviour of a device type; pairs are per-device uniform ranges."""

    setpoint: float
    band: float  # thermostat switches at setpoint +/- band
    coil_delta: tuple[float, float]  # running coil below cabinet air, K
    leak: tuple[float, float]  # cabinet warming per minute and K of (ambient - cabinet)
    cooling: tuple[float, float]  # cooling per minute and K of (cabinet - coil)
    amps: tuple[float, float]  # running current at 40 °C condensing
    condenser_delta: tuple[float, float]  # condensing above ambient, K
    doors_per_hour: float
    defrost_every_h: float
    defrost_minutes: float


COHORTS = {
    "mt_display_case": Cohort(4.0, 1.5, (9, 11), (0.009, 0.012), (0.035, 0.045), (3.5, 5.0),
                              (11, 14), 4.0, 6.0, 20.0),
    "lt_chest_freezer": Cohort(-22.0, 1.5, (7, 9), (0.0045, 0.006), (0.05, 0.065),
                               (4.5, 6.0), (12, 16), 1.0, 8.0, 30.0),
}  # fmt: skip
FAN_AMPS = 0.4  # controller and fans, drawn whenever the device has power
READING_COLUMNS = [
    "device_id", "ts", "temperature_evaporator", "temperature_condenser", "pressure_low_side",
    "pressure_high_side", "current_compressor", "ambient_temperature", "door_open",
]  # fmt: skip


@dataclass
class Plan:
    """Devices (registry rows) and faults (label rows) of one fleet."""

    registry: pd.DataFrame
    labels: pd.DataFrame
    hvac_site: str | None
    hvac_window: tuple[float, float]  # hours
    # Site-wide events (--site-events): site_id, event, onset, end (hours), and per event the
    # spans (hours) its effect is on: a gateway's silence, a power cut, a room's extra warmth.
    site_events: pd.DataFrame | None = None
    event_spans: list[list[tuple[float, float]]] | None = None
    heat_kelvin: float = 0.0


def make_plan(devices: int, hours: float, train_hours: float, per_site: int, rng) -> Plan:
    """Sites of ``per_site`` devices, a fault for about 40 % of the devices after
    ``train_hours``, a power loss at the first site and an HVAC failure at the last (with more
    than one site)."""
    ids = [f"r290-{i:04d}" for i in range(devices)]
    sites = [f"store-{i // per_site:02d}" for i in range(devices)]
    cohorts = rng.choice(list(COHORTS), size=devices, p=[0.6, 0.4])
    registry = pd.DataFrame({"device_id": ids, "site_id": sites, "cohort": cohorts})
    rows = []
    site_ids = sorted(set(sites))

    def onset(length_h: float) -> float:
        return float(rng.uniform(train_hours + 0.5, max(train_hours + 0.6, hours - length_h)))

    if len(site_ids) > 1:
        t0 = onset(1.5)
        for dev in registry.loc[registry["site_id"] == site_ids[0], "device_id"]:
            rows.append((dev, "site_power_loss", "site", t0, t0 + 0.75, None))
    hvac_site = site_ids[-1] if len(site_ids) > 1 else None
    hvac_t0 = onset(4.0)
    spare = [d for d, s in zip(ids, sites, strict=True) if s != site_ids[0] or len(site_ids) == 1]
    faulty = rng.choice(spare, size=int(round(0.4 * len(spare))), replace=False)
    for k, dev in enumerate(faulty):
        kind = DEVICE_FAULTS[k % len(DEVICE_FAULTS)]
        if kind == "door_left_open":
            t0 = onset(1.5)
            rows.append((dev, kind, "acute", t0, t0 + rng.uniform(1.0, 1.5), None))
        elif kind == "stuck_sensor":
            t0 = onset(2.0)
            rows.append((dev, kind, "sensor", t0, t0 + 2.0, "temperature_evaporator"))
        elif kind == "sensor_drift":
            rows.append((dev, kind, "sensor", onset(3.0), hours, "pressure_high_side"))
        else:
            rows.append((dev, kind, "gradual", onset(3.0), hours, None))
    labels = pd.DataFrame(
        rows, columns=["device_id", "fault_type", "category", "onset", "end", "sensor"]
    )
    return Plan(registry, labels, hvac_site, (hvac_t0, hvac_t0 + 4.0))


def add_site_events(plan: Plan, hours: float, train_hours: float, rng) -> Plan:
    """``plan`` with the site-wide events of ``--site-events`` (module docstring), drawn from
    ``rng`` alone, so the rest of the fleet is the one without them."""
    site_ids = sorted(set(plan.registry["site_id"]))
    if len(site_ids) < 4:
        raise ValueError(f"site events need at least 4 sites, not {len(site_ids)}")

    def onset(length_h: float) -> float:
        return float(rng.uniform(train_hours + 0.5, max(train_hours + 0.6, hours - length_h)))

    events, spans, rows = [], [], []
    t0 = onset(1.5)
    comms = (t0, t0 + rng.uniform(0.5, 1.0))
    events.append((site_ids[1], "site_communications_loss", *comms))
    spans.append([comms])
    t0 = onset(3.5)
    heat = (t0, t0 + rng.uniform(2.0, 3.0))
    events.append((site_ids[2], "heat_wave", *heat))
    spans.append([heat])
    t0 = onset(1.5)
    cut1 = (t0, t0 + rng.uniform(0.25, 0.42))
    back = cut1[1] + rng.uniform(0.25, 0.42)
    cut2 = (back, back + rng.uniform(0.25, 0.42))
    events.append((site_ids[3], "site_power_loss", cut1[0], cut2[1]))
    spans.append([cut1, cut2])
    reg = plan.registry
    for site, fault, start, end in events:
        if fault == "heat_wave":
            continue
        for dev in reg.loc[reg["site_id"] == site, "device_id"]:
            rows.append((dev, fault, "site", start, end, None))
    # A device fault while the heat wave lasts, on a device of that site without a fault.
    taken = set(plan.labels["device_id"])
    free = [d for d in reg.loc[reg["site_id"] == site_ids[2], "device_id"] if d not in taken]
    if free:
        t0 = float(rng.uniform(heat[0] + 0.25, heat[0] + 1.0))
        rows.append((free[0], "door_left_open", "acute", t0, t0 + rng.uniform(1.0, 1.5), None))
    extra = pd.DataFrame(rows, columns=plan.labels.columns)
    return Plan(
        plan.registry,
        pd.concat([plan.labels, extra], ignore_index=True),
        plan.hvac_site,
        plan.hvac_window,
        pd.DataFrame(events, columns=["site_id", "event", "onset", "end"]),
        spans,
        float(rng.uniform(6.0, 10.0)),
    )


def simulate(plan: Plan, hours: float, cadence_s: float, rng) -> pd.DataFrame:
    """Readings of every device (the contract's columns less vibration), one row per cadence."""
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
    coil_delta, leak, cool = draw("coil_delta"), draw("leak"), draw("cooling")
    amps, cond_delta = draw("amps"), draw("condenser_delta")
    defrost_every = np.array([s.defrost_every_h for s in spec])
    defrost_len = np.array([s.defrost_minutes for s in spec]) / 60.0
    defrost_phase = rng.uniform(0, 1, n) * defrost_every
    door_rate = np.array([s.doors_per_hour for s in spec]) * cadence_s / 3600.0

    # Ambient: the site's level and daily cycle, the room's offset, the HVAC failure.
    site_codes, site_index = np.unique(reg["site_id"], return_inverse=True)
    site_level = rng.uniform(17, 27, len(site_codes))
    site_amp = rng.uniform(1.5, 4.0, len(site_codes))
    site_peak = rng.uniform(12, 18, len(site_codes))
    room = rng.uniform(-1.5, 1.5, n)
    daily = np.cos(2 * np.pi * (t_h[:, None] - site_peak[None, :]) / 24.0)
    ambient = (site_level + site_amp * daily)[:, site_index] + room
    if plan.hvac_site is not None:
        at_site = (reg["site_id"] == plan.hvac_site).to_numpy()
        ambient[:, at_site] += 7.0 * ramp(t_h, *plan.hvac_window, 1.0)[:, None]
    silent = np.zeros((steps, n), dtype=bool)  # a site gateway's outage: nothing arrives
    cut = np.zeros((steps, n), dtype=bool)  # site power cuts drawn as spans, not labels
    if plan.site_events is not None and plan.event_spans is not None:
        for event, spans in zip(plan.site_events.itertuples(), plan.event_spans, strict=True):
            at_site = (reg["site_id"] == event.site_id).to_numpy()
            for t0, t1 in spans:
                inside = ((t_h >= t0) & (t_h < t1))[:, None] & at_site[None, :]
                if event.event == "heat_wave":
                    ambient[:, at_site] += plan.heat_kelvin * ramp(t_h, t0, t1, 0.5)[:, None]
                elif event.event == "site_communications_loss":
                    silent |= inside
                else:
                    cut |= inside

    # Fault effects per step and device (0 = healthy).
    eff = {k: np.zeros((steps, n)) for k in (*DEVICE_FAULTS, "site_power_loss")}
    col = {d: i for i, d in enumerate(reg["device_id"])}
    event_sites = set() if plan.site_events is None else set(plan.site_events["site_id"])
    site_of = dict(zip(reg["device_id"], reg["site_id"], strict=True))
    for row in plan.labels.itertuples():
        if row.category == "site" and site_of[row.device_id] in event_sites:
            continue  # a site event of --site-events: drawn from its spans above
        j = col[row.device_id]
        ramp_h = {"refrigerant_leak": 4.0, "condenser_fouling": 0.5,
                  "evaporator_fan_failure": 0.3, "sensor_drift": 3.0}.get(row.fault_type, 1e-9)  # fmt: skip
        eff[row.fault_type][:, j] = ramp(t_h, row.onset, row.end + 1e-9, ramp_h)
    powered = (eff["site_power_loss"] == 0) & ~cut
    charge = 1.0 - 0.5 * eff["refrigerant_leak"]  # share of the charge left
    airflow = 1.0 - 0.7 * eff["evaporator_fan_failure"]
    cond_extra = 18.0 * eff["condenser_fouling"]
    door_stuck = eff["door_left_open"] > 0

    air = sp + rng.uniform(-band, band)
    coil = air - coil_delta * 0.5
    cond = ambient[0].copy()
    on = rng.random(n) < 0.5
    off_since = np.zeros(n)
    on_since = np.zeros(n)
    door_left = np.zeros(n)
    out = {k: np.empty((steps, n)) for k in ("evap", "cond", "plow", "phigh", "amps")}
    out_door = np.zeros((steps, n), dtype=bool)
    p_low = PSAT(coil)
    p_high = PSAT(cond)
    inrush_chance = min(1.0, 0.5 / cadence_s)
    for i in range(steps):
        amb = ambient[i]
        pw = powered[i]
        in_defrost = ((t_h[i] - defrost_phase) % defrost_every) < defrost_len
        # Doors: Poisson openings of 20-90 s, or held open by the fault.
        opened = rng.random(n) < door_rate
        door_left = np.where(opened, rng.uniform(20, 90, n), np.maximum(door_left - cadence_s, 0))
        door = (door_left > 0) | door_stuck[i]
        # Thermostat with minimum on and off times (anti short-cycle), off in defrost.
        want_on = np.where(on, air > sp - band, air > sp + band)
        start = want_on & ~on & (off_since >= 3.0)
        stop = ~want_on & on & (on_since >= 2.0)
        on = (on | start) & ~stop & ~in_defrost & pw
        on_since = np.where(on, np.where(start, 0.0, on_since + dt), 0.0)
        off_since = np.where(on, 0.0, off_since + dt)
        # Coil: driven below the air while running, heated in defrost, drifts to the air idle.
        coil_target = np.where(
            on,
            air - coil_delta * (1 + 1.2 * (1 - airflow[i])) - 4.0 * (1 - charge[i]),
            np.where(in_defrost & pw, 12.0, air),
        )
        coil += (coil_target - coil) * (1 - np.exp(-dt / np.where(on, 1.5, 3.0)))
        capacity = cool * airflow[i] * charge[i] ** 0.8 * np.maximum(air - coil, 0) * on
        warming = (leak + 0.06 * door) * (amb - air) + 0.02 * (in_defrost & pw)
        air = air + (warming - capacity) * dt
        # Condenser and pressures (propane saturation), current.
        cond_target = np.where(
            on, amb + (cond_delta + cond_extra[i]) * (0.5 + 0.5 * charge[i]), amb
        )
        cond += (cond_target - cond) * (1 - math.exp(-dt / 2.0))
        evap_sat = np.where(on, coil - 2.0 - 10.0 * (1 - charge[i]), coil)
        p_low += (PSAT(evap_sat) - p_low) * (1 - math.exp(-dt / 1.0))
        p_high += (PSAT(cond) - p_high) * (1 - math.exp(-dt / 1.0))
        running = amps * (1 + 0.012 * (cond - 40)) * (0.7 + 0.3 * charge[i])
        inrush = start & (rng.random(n) < inrush_chance)
        current = np.where(on, running * np.where(inrush, 5.0, 1.0), 0.0) + FAN_AMPS * pw
        out["evap"][i], out["cond"][i], out["amps"][i] = coil, cond, current
        out["plow"][i], out["phigh"][i] = p_low, p_high
        out_door[i] = door

    noise = {"evap": 0.15, "cond": 0.2, "plow": 2.0, "phigh": 6.0, "amps": 0.05}
    for k, sd in noise.items():
        out[k] = out[k] + rng.normal(0, sd, out[k].shape)
    out["amps"] = np.maximum(out["amps"], 0.0)
    out["amps"][~powered] = 0.0
    out["phigh"] += 400.0 * eff["sensor_drift"]
    stuck = eff["stuck_sensor"] > 0
    for j in np.flatnonzero(stuck.any(axis=0)):
        first = np.flatnonzero(stuck[:, j])[0]
        out["evap"][stuck[:, j], j] = round(float(out["evap"][first, j]), 1)
    amb_read = ambient + rng.normal(0, 0.1, ambient.shape)

    ts = START + pd.to_timedelta(np.arange(steps) * cadence_s, unit="s")
    frame = pd.DataFrame(
        {
            "device_id": np.tile(reg["device_id"].to_numpy(), steps),
            "ts": np.repeat(ts, n),
            "temperature_evaporator": out["evap"].ravel(),
            "temperature_condenser": out["cond"].ravel(),
            "pressure_low_side": out["plow"].ravel(),
            "pressure_high_side": out["phigh"].ravel(),
            "current_compressor": out["amps"].ravel(),
            "ambient_temperature": amb_read.ravel(),
            "door_open": out_door.ravel(),
        }
    )
    # 0.2 % of the readings lost on the way (radio), as real gateways do.
    kept = rng.random(len(frame)) >= 0.002
    frame = frame[kept & ~silent.ravel()] if silent.any() else frame[kept]
    return frame.sort_values(["device_id", "ts"]).reset_index(drop=True)[READING_COLUMNS]


def write_fleet(home: Path, devices: int, hours: int, train_hours: float, cadence_s: float,
                seed: int, per_site: int = 6, site_events: bool = False) -> Plan:  # fmt: skip
    """Landing files (``<home>/landing/<day>/readings_<hour>.parquet``), the registry
    (``<home>/reference/device_registry.csv``) and the labels
    (``<home>/reference/labels.parquet``) of one fleet; with ``site_events`` the site-wide
    events too (and ``<home>/reference/site_events.parquet``)."""
    rng = np.random.default_rng(seed)
    plan = make_plan(devices, hours, train_hours, per_site, rng)
    if site_events:  # a generator of its own: the fleet without them stays the same
        plan = add_site_events(plan, hours, train_hours, np.random.default_rng([seed, 1]))
    readings = simulate(plan, hours, cadence_s, rng)
    ref = home / "reference"
    ref.mkdir(parents=True, exist_ok=True)
    plan.registry.to_csv(ref / "device_registry.csv", index=False)
    labels = plan.labels.assign(
        onset=START + pd.to_timedelta(plan.labels["onset"], unit="h"),
        end=START + pd.to_timedelta(plan.labels["end"], unit="h"),
    )
    labels.to_parquet(ref / "labels.parquet", index=False)
    if plan.site_events is not None:
        hour = pd.Timedelta(hours=1)
        events = plan.site_events.assign(
            onset=START + plan.site_events["onset"] * hour,
            end=START + plan.site_events["end"] * hour,
        )
        events.to_parquet(ref / "site_events.parquet", index=False)
    hour = readings["ts"].dt.floor("h")
    for h, part in readings.groupby(hour):
        path = home / "landing" / f"{h:%Y-%m-%d}" / f"readings_{h:%Y%m%dT%H}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        part.to_parquet(path, index=False)
    return plan


def site_event_incidents(home: Path, events: pd.DataFrame) -> pd.DataFrame:
    """Per site event (``site_events.parquet``): the incidents an operator sees (not inhibited)
    at its site that overlap it (to one hour after its end), the site's own and its devices',
    by scope, cause and severity, and the devices' own faults labelled there meanwhile."""
    from refrig_assets.core.storage import ParquetStore

    store = ParquetStore(home / "data")
    keys = store.partitions("device_incidents")
    inc = store.read_many("device_incidents", keys) if keys else pd.DataFrame()
    registry = pd.read_csv(home / "reference" / "device_registry.csv")
    labels = pd.read_parquet(home / "reference" / "labels.parquet")
    own = labels[labels["category"] != "site"].merge(registry, on="device_id")
    rows = []
    for e in events.itertuples():
        near = pd.DataFrame()
        if len(inc):
            inc = inc.drop_duplicates("incident_id", keep="last")
            seen = inc[~inc["inhibited"].fillna(False).astype(bool)]
            start = pd.to_datetime(seen["first_window_start"], utc=True)
            end = pd.to_datetime(seen["last_window_end"], utc=True)
            near = seen[
                seen["site_id"].eq(e.site_id)
                & (start <= e.end + pd.Timedelta(hours=1))
                & (end >= e.onset)
            ]
        faults = own[
            (own["site_id"] == e.site_id) & (own["onset"] < e.end) & (own["end"] > e.onset)
        ]
        rows.append(
            {
                "site_id": e.site_id,
                "event": e.event,
                "onset": f"{e.onset:%H:%M}",
                "end": f"{e.end:%H:%M}",
                "site_incidents": int(near["scope"].eq("site").sum()) if len(near) else 0,
                "device_incidents": int(near["scope"].eq("device").sum()) if len(near) else 0,
                "incidents": ", ".join(
                    f"{r.scope}:{r.cause}:{r.severity}" + ("" if r.scope == "site" else f"@{r.device_id}")
                    for r in near.itertuples()
                ) if len(near) else "",
                "device_faults": ", ".join(f"{r.fault_type}@{r.device_id}" for r in faults.itertuples()),
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """Write a fleet, or with ``--score`` print a pipeline run's incidents against it."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, required=True)
    p.add_argument("--devices", type=int, default=24)
    p.add_argument("--hours", type=int, default=12)
    p.add_argument("--train-hours", type=float, default=4)
    p.add_argument("--cadence", type=float, default=30, help="seconds between readings")
    p.add_argument("--per-site", type=int, default=6)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--site-events", action="store_true", help="add the site-wide events")
    p.add_argument("--score", action="store_true")
    a = p.parse_args(argv)
    if a.score:
        per_type, totals = score(a.home, EXPECTED_CAUSES)
        pd.set_option("display.width", 200)
        print(per_type.drop(columns=["category"]).to_string(index=False))
        right = (per_type["cause_accuracy"] * per_type["caught"]).sum()
        totals["cause_accuracy"] = right / per_type["caught"].sum()
        print({k: round(v, 3) for k, v in totals.items()})
        events = a.home / "reference" / "site_events.parquet"
        if events.exists():
            print(site_event_incidents(a.home, pd.read_parquet(events)).to_string(index=False))
        return
    plan = write_fleet(
        a.home, a.devices, a.hours, a.train_hours, a.cadence, a.seed, a.per_site, a.site_events
    )
    print(plan.labels.to_string(index=False))
    print(f"HVAC failure at {plan.hvac_site}: hours {plan.hvac_window}")
    if plan.site_events is not None:
        print(plan.site_events.to_string(index=False))


if __name__ == "__main__":
    main()
