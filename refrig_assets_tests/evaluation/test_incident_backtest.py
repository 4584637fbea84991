"""Incident-level backtest: per labelled fault type the share caught by an incident, the delay,
how many incidents one fault became, whether the first one named the right cause and its
severity; incidents that belong to no fault are false incidents per 1,000 device-days."""

import pandas as pd
import pytest

from refrig_assets.evaluation.backtest import incident_backtest
from refrig_assets.simulator.faults import FAULT_CAUSES

T0 = pd.Timestamp("2026-01-01T00:00Z")


def at(minutes):
    return T0 + pd.Timedelta(minutes=minutes)


def label(device, fault_type, category, onset, end):
    return dict(
        device_id=device,
        fault_type=fault_type,
        category=category,
        onset=at(onset),
        end=at(end),
        sensor=None,
    )


def incident(key, cause, severity, start, end, scope="device", inhibited=False, site=None):
    return dict(
        incident_id=f"inc-{key}-{start}",
        scope=scope,
        device_id=key if scope == "device" else None,
        site_id=site or (key if scope == "site" else "site-0"),
        cause=cause,
        severity=severity,
        first_window_start=at(start),
        last_window_end=at(end),
        inhibited=inhibited,
    )


DEVICES = pd.DataFrame(
    {
        "device_id": [f"dev-{i}" for i in range(10)],
        "site_id": ["site-0"] * 3 + ["site-1"] * 2 + ["site-2"] * 5,
    }
)
LABELS = pd.DataFrame(
    [
        label("dev-1", "refrigerant_leak", "gradual", 120, 360),
        label("dev-2", "door_left_open", "operational", 180, 240),
        label("dev-3", "site_power_loss", "site", 180, 225),
        label("dev-4", "site_power_loss", "site", 180, 225),
        label("dev-5", "stuck_sensor", "sensor", 60, 120),
    ]
)
INCIDENTS = pd.DataFrame(
    [
        incident("dev-1", "refrigerant_leak", "HIGH", 135, 360),
        incident("dev-1", "unknown", "MEDIUM", 240, 270),
        incident("dev-2", "door_ajar", "HIGH", 195, 240),
        incident("site-1", "power_loss", "CRITICAL", 180, 225, scope="site"),
        incident("dev-3", "power_loss", "CRITICAL", 180, 225, inhibited=True, site="site-1"),
        incident("dev-9", "mechanical_wear", "MEDIUM", 60, 90, site="site-2"),
    ]
)


@pytest.fixture(scope="module")
def figures():
    return incident_backtest(
        INCIDENTS, LABELS, device_hours=60.0, devices=DEVICES, expected_causes=FAULT_CAUSES
    )


def row(figures, fault_type):
    per_type, _ = figures
    return per_type.set_index("fault_type").loc[fault_type]


def test_a_fault_split_into_two_incidents_counts_both(figures):
    leak = row(figures, "refrigerant_leak")
    assert (leak["faults"], leak["caught"], leak["recall"]) == (1, 1, 1.0)
    assert leak["incidents_per_fault"] == 2.0
    # The first incident named the right cause; the delay runs to the end of its first window.
    assert leak["cause_accuracy"] == 1.0
    assert leak["median_delay_min"] == 30.0
    assert leak["causes_named"] == "refrigerant_leak 1"


def test_a_site_wide_fault_is_one_event_caught_by_the_site_incident(figures):
    power = row(figures, "site_power_loss")
    assert (power["faults"], power["caught"]) == (1, 1)
    # The inhibited device incident is kept as evidence but not what operators work with.
    assert power["incidents_per_fault"] == 1.0
    assert power["severity_mix"] == "CRITICAL 1"


def test_an_uncaught_fault_lowers_recall(figures):
    stuck = row(figures, "stuck_sensor")
    assert (stuck["caught"], stuck["recall"]) == (0, 0.0)


def test_an_incident_without_a_fault_is_false(figures):
    _, totals = figures
    assert totals["incidents"] == 5  # the inhibited one is not counted
    assert totals["false_incidents"] == 1
    assert totals["false_incidents_per_1000_device_days"] == pytest.approx(1 / 2.5 * 1000)
    assert totals["share_critical"] == pytest.approx(1 / 5)


def test_a_wrong_cause_counts_against_cause_accuracy():
    wrong = INCIDENTS.assign(cause=INCIDENTS["cause"].replace({"door_ajar": "total_cooling_loss"}))
    per_type, _ = incident_backtest(
        wrong, LABELS, device_hours=60.0, devices=DEVICES, expected_causes=FAULT_CAUSES
    )
    assert per_type.set_index("fault_type").loc["door_left_open", "cause_accuracy"] == 0.0


def test_on_a_fault_free_fleet_every_incident_is_false():
    per_type, totals = incident_backtest(
        INCIDENTS, LABELS.iloc[0:0], device_hours=60.0, devices=DEVICES
    )
    assert per_type.empty
    assert totals["false_incidents"] == 5


def test_a_devices_own_fault_at_a_site_during_its_power_cut_is_not_an_incident_of_the_cut():
    labels = pd.DataFrame(
        [
            label("dev-3", "site_power_loss", "site", 180, 225),
            label("dev-4", "site_power_loss", "site", 180, 225),
            label("dev-4", "refrigerant_leak", "gradual", 60, 300),
        ]
    )
    incidents = pd.DataFrame(
        [
            incident("site-1", "power_loss", "CRITICAL", 180, 225, scope="site"),
            # leaking before the cut and after it: not explained by it, so in sight
            incident("dev-4", "refrigerant_leak", "HIGH", 75, 300, site="site-1"),
        ]
    ).assign(kind=["site", "refrigeration"])

    per_type, totals = incident_backtest(
        incidents, labels, device_hours=60.0, devices=DEVICES, expected_causes=FAULT_CAUSES
    )

    by_type = per_type.set_index("fault_type")
    assert by_type.loc["site_power_loss", ["incidents_per_fault", "cause_accuracy"]].tolist() == [
        1.0,
        1.0,
    ]
    assert by_type.loc["refrigerant_leak", ["caught", "cause_accuracy"]].tolist() == [1, 1.0]
    assert totals["false_incidents"] == 0
