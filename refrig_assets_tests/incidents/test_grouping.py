"""Grouping window-level signals into incidents: one per fault episode."""

from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest
from support.incident_world import (
    CAUSES,
    T0,
    WINDOW,
    alert,
    alerts,
    diagnoses,
    diagnosis,
)

from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.policy import incident_policy


@pytest.fixture
def policy():
    """Two normal windows close an incident; no reopening unless a test asks for it."""
    return replace(
        incident_policy(),
        hysteresis_windows=2,
        reopen=timedelta(0),
        cause_change_min_signals=2,
    )


def build(alert_rows, diagnosis_rows=(), **kwargs):
    kwargs.setdefault("causes", CAUSES)
    return build_incidents(alerts(alert_rows), diagnoses(diagnosis_rows), **kwargs)


def test_adjacent_windows_of_one_device_are_one_incident_with_every_alert_as_evidence(
    policy,
):
    result = build([alert("D1", 0), alert("D1", 1), alert("D1", 2)], policy=policy)

    assert len(result.incidents) == 1
    incident = result.incidents.iloc[0]
    assert (incident["first_window_start"], incident["last_window_end"]) == (
        T0,
        T0 + 3 * WINDOW,
    )
    assert incident["alert_count"] == 3
    assert len(result.evidence) == 3
    # the seed's dedup becomes "a repeat inside the incident": kept, marked
    assert result.evidence["repeat"].tolist() == [False, True, True]


def test_fewer_normal_windows_than_the_hysteresis_continue_the_incident(policy):
    result = build([alert("D1", 0), alert("D1", 2)], policy=policy)  # one normal window between

    assert len(result.incidents) == 1


def test_a_gap_just_over_the_hysteresis_closes_the_incident_and_opens_another(policy):
    result = build([alert("D1", 0), alert("D1", 3)], policy=policy)  # two normal windows

    first, second = result.incidents.sort_values("first_window_start").itertuples()
    assert first.status == "RESOLVED"
    assert first.closed_at == T0 + 3 * WINDOW  # window end + two windows of hysteresis
    assert second.status == "OPEN" and pd.isna(second.closed_at)


def test_the_same_cause_returning_within_the_reopen_time_reopens_the_incident(policy):
    policy = replace(policy, reopen=timedelta(minutes=30))
    rows = [alert("D1", 0), alert("D1", 4)]
    dx = [
        diagnosis("D1", 0, "refrigerant_leak"),
        diagnosis("D1", 4, "refrigerant_leak"),
    ]

    result = build(rows, dx, policy=policy)

    assert len(result.incidents) == 1
    assert result.incidents.iloc[0]["reopen_count"] == 1
    assert result.incidents.iloc[0]["alert_count"] == 2


def test_another_cause_returning_within_the_reopen_time_is_a_new_incident(policy):
    policy = replace(policy, reopen=timedelta(minutes=30))
    dx = [
        diagnosis("D1", 0, "refrigerant_leak"),
        diagnosis("D1", 4, "condenser_fouling"),
    ]

    result = build([alert("D1", 0), alert("D1", 4)], dx, policy=policy)

    assert sorted(result.incidents["cause"]) == [
        "condenser_fouling",
        "refrigerant_leak",
    ]


def test_a_cause_change_that_holds_starts_a_new_incident(policy):
    rows = [alert("D1", i) for i in range(4)]
    dx = [diagnosis("D1", i, c) for i, c in enumerate(["refrigerant_leak"] * 2 + ["door_ajar"] * 2)]

    result = build(rows, dx, policy=policy)

    by_cause = result.incidents.set_index("cause")
    assert sorted(by_cause.index) == ["door_ajar", "refrigerant_leak"]
    assert by_cause.loc["door_ajar", "first_window_start"] == T0 + 2 * WINDOW
    assert by_cause.loc["refrigerant_leak", "alert_count"] == 2


def test_a_one_window_flicker_of_another_cause_stays_in_the_incident(policy):
    causes = [
        "refrigerant_leak",
        "condenser_fouling",
        "refrigerant_leak",
        "refrigerant_leak",
    ]
    rows = [alert("D1", i) for i in range(4)]

    result = build(rows, [diagnosis("D1", i, c) for i, c in enumerate(causes)], policy=policy)

    assert result.incidents["cause"].tolist() == ["refrigerant_leak"]


def test_unknown_windows_are_compatible_with_the_incident_cause(policy):
    causes = ["unknown", "refrigerant_leak", "unknown", "refrigerant_leak"]
    rows = [alert("D1", i) for i in range(4)]

    result = build(rows, [diagnosis("D1", i, c) for i, c in enumerate(causes)], policy=policy)

    assert result.incidents["cause"].tolist() == ["refrigerant_leak"]
    assert result.incidents["alert_count"].tolist() == [4]


def test_a_streaming_alert_and_the_batch_alerts_of_the_same_event_are_one_incident(
    policy,
):
    rows = [
        alert("D1", 0, source="streaming", rule="total_cooling_loss", minutes=2),
        alert("D1", 0),
        alert("D1", 1),
    ]

    result = build(rows, policy=policy)

    assert len(result.incidents) == 1
    incident = result.incidents.iloc[0]
    assert incident["sources"] == "batch,streaming"
    assert incident["cause"] == "total_cooling_loss"  # the streaming rule's cause


def test_devices_never_share_an_incident(policy):
    result = build([alert("D1", 0), alert("D2", 0)], policy=policy)

    assert sorted(result.incidents["device_id"]) == ["D1", "D2"]


def test_standalone_causes_raise_an_incident_without_an_alert(policy):
    dx = [diagnosis("D1", i, "door_ajar", standalone=True) for i in range(3)]
    dx += [diagnosis("D2", 0, "condenser_fouling")]  # not standalone: needs an alert

    result = build([], dx, policy=policy)

    assert result.incidents["cause"].tolist() == ["door_ajar"]
    assert result.incidents.iloc[0]["alert_count"] == 0
    assert set(result.evidence["evidence_type"]) == {"diagnosis"}


def test_incidents_quiet_by_the_data_time_close(policy):
    rows = [alert("D1", 0), alert("D2", 3)]

    result = build(rows, policy=policy, as_of=T0 + 4 * WINDOW)

    status = result.incidents.set_index("device_id")["status"]
    assert status.to_dict() == {"D1": "RESOLVED", "D2": "OPEN"}


def test_an_empty_hour_builds_nothing(policy):
    result = build([], [], policy=policy)

    assert result.incidents.empty and result.evidence.empty


def test_a_site_event_does_not_reopen_an_earlier_unexplained_incident_of_its_device(policy):
    # A device's short unexplained episode, closed, then the site's power cut an hour later:
    # the power loss is the site's event, not that episode come back.
    policy = replace(policy, reopen=timedelta(minutes=120))
    rows = [
        alert("D1", 0),
        alert("D1", 5, source="streaming", rule="power_loss", minutes=5),
    ]

    result = build(rows, policy=policy)

    by_cause = result.incidents.set_index("cause")
    assert sorted(by_cause.index) == ["power_loss", "unknown"]
    assert by_cause.loc["power_loss", "first_window_start"] > T0 + 5 * WINDOW
    assert by_cause.loc["unknown", "last_window_end"] == T0 + WINDOW
    assert result.incidents["reopen_count"].tolist() == [0, 0]


def test_an_unexplained_episode_soon_after_a_site_event_still_reopens_it(policy):
    # The pull-down once the power is back is the aftermath of the cut, not a new fault.
    policy = replace(policy, reopen=timedelta(minutes=120))
    rows = [
        alert("D1", 0, source="streaming", rule="power_loss", minutes=5),
        alert("D1", 5),
    ]

    result = build(rows, policy=policy)

    assert result.incidents["cause"].tolist() == ["power_loss"]
    assert result.incidents["reopen_count"].tolist() == [1]


def test_an_unexplained_episode_returning_as_a_diagnosed_device_fault_still_reopens(policy):
    # Within the machine, an early unexplained episode of a fault later diagnosed is one incident.
    policy = replace(policy, reopen=timedelta(minutes=120))
    dx = [diagnosis("D1", 0, "unknown"), diagnosis("D1", 5, "refrigerant_leak")]

    result = build([alert("D1", 0), alert("D1", 5)], dx, policy=policy)

    assert result.incidents["cause"].tolist() == ["refrigerant_leak"]
    assert result.incidents["reopen_count"].tolist() == [1]
