"""Operational faults, site events and the heat wave of the simulator: each is visible in the
readings where its label says, they leave a seed's machine and sensor faults as they were, and
the heat wave is weather, not a fault (no label)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.simulator import FleetSimulator, SimulationConfig
from refrig_assets.simulator.events import HEAT_WAVE_DELTA

READINGS = load_contract("sensor_readings")
RUNNING_ABOVE = READINGS.column("current_compressor").extra["running_above"]
DEFROST_ABOVE = READINGS.column("temperature_evaporator").extra["defrost_above"]
MINUTE = pd.Timedelta(minutes=1)
EVENTS = SimulationConfig(
    devices=120,
    hours=6,
    seed=11,
    fault_fraction=0.0,
    sensor_fault_fraction=0.0,
    operational_fault_fraction=0.2,
)


def readings(sim: FleetSimulator) -> pd.DataFrame:
    frame = pd.concat([df for _, df in sim.hours()], ignore_index=True)
    return frame.sort_values(["device_id", "ts"], kind="stable").set_index("ts")


@pytest.fixture(scope="module")
def events():
    sim = FleetSimulator(EVENTS)
    return readings(sim), sim.labels(), sim.registry()


def rows_of(events, fault_type):
    frame, labels, _ = events
    rows = labels[labels["fault_type"] == fault_type]
    assert len(rows) > 0
    for row in rows.itertuples():
        yield row, frame[frame["device_id"] == row.device_id]


def starts(d: pd.DataFrame) -> int:
    run = (d["current_compressor"] > RUNNING_ABOVE).to_numpy()
    return int((run[1:] & ~run[:-1]).sum())


def test_a_door_left_open_stays_open_for_45_to_120_minutes(events):
    for row, d in rows_of(events, "door_left_open"):
        assert pd.Timedelta(minutes=45) <= row.end - row.onset <= pd.Timedelta(minutes=120) or (
            row.end == pd.Timestamp(EVENTS.end)
        )
        assert d.loc[row.onset : row.end - MINUTE, "door_open"].all()


def test_short_cycling_starts_the_compressor_far_more_often(events):
    for row, d in rows_of(events, "short_cycling"):
        during = d.loc[row.onset : row.end - MINUTE]
        before = d.loc[: row.onset - MINUTE]
        per_hour_during = starts(during) / (len(during) / 60)
        per_hour_before = starts(before) / (len(before) / 60)
        assert per_hour_during > 3 * max(per_hour_before, 1.0)


def test_a_site_power_loss_darkens_every_device_of_one_site(events):
    _, labels, registry = events
    lost = labels[labels["fault_type"] == "site_power_loss"]
    sites = registry.set_index("device_id").loc[lost["device_id"], "site_id"]
    assert sites.nunique() == 1
    assert lost["onset"].nunique() == 1 and lost["end"].nunique() == 1
    for row, d in rows_of(events, "site_power_loss"):
        during = d.loc[row.onset : row.end - MINUTE]
        assert (during["current_compressor"] == 0).all()
        assert (
            during["vibration_compressor"].max()
            < 0.2 * d.loc[: row.onset - MINUTE]["vibration_compressor"].min()
        )


def test_a_defrost_failure_stops_the_defrosts_and_ices_the_coil():
    config = SimulationConfig(
        devices=30,
        hours=40,
        seed=5,
        fault_fraction=0.0,
        sensor_fault_fraction=0.0,
        operational_fault_fraction=0.3,
        power_loss_sites=0,
    )
    sim = FleetSimulator(config)
    frame, labels = readings(sim), sim.labels()
    failures = labels[labels["fault_type"] == "defrost_failure"]
    assert len(failures) >= 3
    for row in failures.itertuples():
        d = frame[frame["device_id"] == row.device_id]
        defrosting = (d["current_compressor"] <= RUNNING_ABOVE) & (
            d["temperature_evaporator"] > DEFROST_ABOVE
        )
        assert defrosting.loc[: row.onset - MINUTE].any()
        assert not defrosting.loc[row.onset :].any()
        assert row.end == pd.Timestamp(config.end)


def test_operational_faults_and_site_events_leave_the_machine_faults_of_a_seed_alone():
    base = dict(devices=300, hours=4, seed=3)
    without = FleetSimulator(
        SimulationConfig(**base, operational_fault_fraction=0.0, power_loss_sites=0)
    ).labels()
    labels = FleetSimulator(SimulationConfig(**base)).labels()
    machine = labels[labels["category"].isin(["gradual", "acute", "sensor"])]
    pd.testing.assert_frame_equal(machine.reset_index(drop=True), without)
    assert labels["device_id"].is_unique


def test_a_heat_wave_warms_half_the_sites_and_is_not_labelled():
    config = SimulationConfig(devices=60, hours=6, seed=2, faults=False, heat_wave=True)
    sim = FleetSimulator(config)
    calm = FleetSimulator(SimulationConfig(devices=60, hours=6, seed=2, faults=False))
    assert sim.labels().empty
    hot, cool = sim.hour(5), calm.hour(5)
    site = sim.registry().set_index("device_id")["site_id"]
    warmer = (
        (hot["ambient_temperature"] - cool["ambient_temperature"])
        .groupby(hot["device_id"].map(site))
        .mean()
    )
    assert np.isclose(warmer, HEAT_WAVE_DELTA, atol=0.5).sum() == max(1, config.n_sites // 2)
    assert np.isclose(warmer, 0.0, atol=0.5).sum() == config.n_sites - max(1, config.n_sites // 2)
