"""The figures of an incident picked from its signals: cause, confidence, evidence, detail,
counts and sources, from this build's signals and from the stored incident they continue."""

import json
from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest
from support.incident_world import CAUSES, T0, WINDOW, alert, alerts, diagnoses, diagnosis

from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.policy import incident_policy


@pytest.fixture
def policy():
    return replace(
        incident_policy(), hysteresis_windows=2, reopen=timedelta(0), cause_change_min_signals=2
    )


def _dx(i: int, cause: str, confidence: float, tag: str) -> dict:
    row = diagnosis("D1", i, cause, confidence=confidence)
    row["evidence"] = json.dumps([{"feature": "x", "value": tag}])
    return row


def test_the_cause_is_the_last_known_with_the_evidence_of_its_most_confident_signal(policy):
    rows = [alert("D1", i) for i in range(4)]
    rows[0]["explanation"] = ""  # the first detail given is the second alert's
    rows[1]["explanation"] = "second"
    dx = [
        _dx(0, "refrigerant_leak", 0.6, "w0"),
        _dx(1, "refrigerant_leak", 0.9, "w1"),
        _dx(2, "refrigerant_leak", 0.9, "w2"),  # as confident: the later one counts
        _dx(3, "unknown", 0.0, "w3"),
    ]

    result = build_incidents(alerts(rows), diagnoses(dx), policy=policy, causes=CAUSES)

    (incident,) = result.incidents.itertuples()
    assert incident.cause == "refrigerant_leak"
    assert incident.cause_confidence == 0.9
    assert json.loads(incident.cause_evidence) == [{"feature": "x", "value": "w2"}]
    assert incident.detail == "second"
    assert (incident.alert_count, incident.evidence_count) == (4, 4)
    assert incident.sources == "batch"


def test_a_stored_incident_continued_adds_its_counts_and_sources_to_the_new_signals(policy):
    first = build_incidents(
        alerts([alert("D1", 0), alert("D1", 1)]), None, policy=policy, causes=CAUSES
    )
    later = [alert("D1", 2, source="streaming", rule="door_open"), alert("D1", 3)]

    result = build_incidents(
        alerts(later), None, policy=policy, causes=CAUSES, open_incidents=first.incidents
    )

    (incident,) = result.incidents.itertuples()
    assert incident.incident_id == first.incidents["incident_id"].iloc[0]
    assert (incident.alert_count, incident.evidence_count) == (4, 4)
    assert incident.sources == "batch,streaming"
    assert incident.first_window_start == first.incidents["first_window_start"].iloc[0]
    assert incident.status == "OPEN" and incident.reopen_count == 0


def test_episodes_returning_within_the_reopen_time_chain_into_one_reopened_incident(policy):
    policy = replace(policy, reopen=timedelta(minutes=30))
    rows = [alert("D1", 0), alert("D1", 4), alert("D1", 8), alert("D2", 0)]

    result = build_incidents(alerts(rows), None, policy=policy, causes=CAUSES)

    d1, d2 = result.incidents.sort_values("device_id").itertuples()
    assert (d1.reopen_count, d1.alert_count, d1.status) == (2, 3, "OPEN")
    assert (d2.reopen_count, d2.alert_count) == (0, 1)
    assert result.evidence.groupby("incident_id").size().to_dict() == {
        d1.incident_id: 3,
        d2.incident_id: 1,
    }


def test_a_stored_incident_closed_recently_is_reopened_under_its_own_id(policy):
    policy = replace(policy, reopen=timedelta(minutes=30))
    first = build_incidents(
        alerts([alert("D1", 0)]), None, policy=policy, causes=CAUSES, as_of=T0 + 4 * WINDOW
    )
    assert first.incidents["status"].tolist() == ["RESOLVED"]

    result = build_incidents(
        alerts([alert("D1", 4)]), None, policy=policy, causes=CAUSES, open_incidents=first.incidents
    )

    (incident,) = result.incidents.itertuples()
    assert incident.incident_id == first.incidents["incident_id"].iloc[0]
    assert (incident.status, incident.reopen_count, incident.alert_count) == ("OPEN", 1, 2)
    assert pd.isna(incident.closed_at)
