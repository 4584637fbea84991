"""The streaming rules on simulated fleets: acute faults caught within two minutes of onset, a
healthy fleet left alone for a whole day."""

from datetime import timedelta

import pytest

from refrig_assets.simulator import FleetSimulator, SimulationConfig
from refrig_assets.streaming.replay import detection_by_fault, replay

ACUTE = ("compressor_overload", "rapid_pressure_loss", "total_cooling_loss")


@pytest.fixture(scope="module")
def faulty_fleet():
    sim = FleetSimulator(SimulationConfig(devices=1500, hours=8, seed=11, fault_fraction=0.3))
    firings = replay((frame for _, frame in sim.hours()), sim.registry())
    return sim, firings


def test_acute_faults_are_caught_within_two_minutes_of_onset(faulty_fleet):
    sim, firings = faulty_fleet
    labels = sim.labels()
    found = detection_by_fault(
        firings, labels[labels["fault_type"].isin(ACUTE)], timedelta(minutes=2)
    )

    recall = found.groupby("fault_type")["detected"].mean()
    assert set(recall.index) == set(ACUTE)
    assert (found.groupby("fault_type").size() >= 40).all()  # enough faults to measure
    assert (recall >= 0.95).all(), recall.to_dict()


def test_streaming_alerts_on_a_faulty_fleet_concern_faulty_devices_only(faulty_fleet):
    sim, firings = faulty_fleet
    labels = sim.labels()
    machine = labels[labels["category"] != "sensor"]
    assert set(firings["device_id"]) <= set(labels["device_id"])
    assert firings["device_id"].isin(machine["device_id"]).mean() > 0.95


def test_a_healthy_fleet_raises_no_streaming_alert_in_a_day():
    sim = FleetSimulator(SimulationConfig(devices=1000, hours=24, faults=False))
    firings = replay((frame for _, frame in sim.hours()), sim.registry())
    assert firings.empty, firings.groupby("rule").size().to_dict()
