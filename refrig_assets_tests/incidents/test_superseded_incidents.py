"""One incident per fault when a sensor cannot be read: the alerts of a window whose device
carries a sensor-health flag belong to that flag's ticket, and an incident whose evidence all
moved to another one is closed as superseded (kept, linked, audited, never paged again)."""

import json
from datetime import timedelta

import pandas as pd
import pytest
from support.incident_world import (
    CAUSES,
    T0,
    alert,
    alerts,
    diagnoses,
    diagnosis,
    feature_window,
)
from support.operator_world import Clock

from refrig_assets.alerts.store import AlertStore
from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.repository import IncidentStore

STUCK = "STUCK_SENSOR"


@pytest.fixture
def alert_store(tmp_path):
    s = AlertStore(
        f"sqlite:///{tmp_path / 'alerts.db'}",
        clock=Clock((T0 + timedelta(hours=1)).to_pydatetime()),
    )
    yield s
    s.close()


@pytest.fixture
def incidents(alert_store, monkeypatch):
    monkeypatch.setattr("refrig_assets.incidents.build.cause_table", lambda: CAUSES)
    return IncidentStore(alert_store)


def stuck_windows(device: str, n: int = 4) -> pd.DataFrame:
    return pd.DataFrame([feature_window(device, i, flags=STUCK) for i in range(n)])


def stuck_diagnosis(device: str, i: int) -> dict:
    row = diagnosis(device, i, "sensor_fault")
    row["evidence"] = json.dumps(
        [{"feature": "quality_flags", "value": STUCK, "reference": "flags", "baseline": [STUCK]}]
    )
    return row


def test_unknown_cause_alerts_of_a_stuck_sensor_window_join_its_ticket():
    # the detectors flag the frozen reading itself; nothing names a machine cause
    rows = [alert("D1", i, models=3) for i in range(4)]
    dx = [diagnosis("D1", i, "unknown") for i in range(4)]

    built = build_incidents(
        alerts(rows), diagnoses(dx), quality=stuck_windows("D1"), causes=CAUSES
    ).incidents

    assert built[["kind", "track", "severity", "alert_count"]].values.tolist() == [
        ["sensor", f"sensor:{STUCK}", "LOW", 4]
    ]


def test_an_alert_with_a_machine_cause_in_a_stuck_sensor_window_stays_a_machine_incident():
    rows = [alert("D1", i) for i in range(4)]
    dx = [diagnosis("D1", i, "refrigerant_leak") for i in range(4)]

    built = build_incidents(
        alerts(rows), diagnoses(dx), quality=stuck_windows("D1"), causes=CAUSES
    ).incidents

    assert sorted(built["kind"]) == ["refrigeration", "sensor"]


def test_the_incident_the_fold_opened_is_superseded_when_its_alerts_join_the_sensor_ticket(
    alert_store, incidents
):
    rows = [alert("D1", i, models=3) for i in range(4)]
    alert_store.upsert(alerts(rows), notify=True)  # cause unknown until diagnosed
    (folded,) = incidents.list()[0]["incident_id"]

    build = build_incidents(
        alerts(rows),
        diagnoses([stuck_diagnosis("D1", i) for i in range(4)]),
        quality=stuck_windows("D1"),
        causes=CAUSES,
        open_incidents=incidents.open_incidents(),
        as_of=T0 + timedelta(hours=1),
    )
    incidents.apply(build)

    every, _ = incidents.list()
    live = every[every["status"].isin(["OPEN", "ACKNOWLEDGED"])]
    assert live[["kind", "alert_count"]].values.tolist() == [["sensor", 4]]
    ticket = live.iloc[0]["incident_id"]
    old = incidents.get(folded)
    assert old["status"] == "RESOLVED" and old["closed_at"] is not None
    assert old["alert_count"] == 0 and old["evidence_count"] == 0
    # kept and linked to the incident that took its evidence, like an inhibited one
    assert old["inhibited"] and old["parent_incident_id"] == ticket
    events = [(h["event"], h["note"]) for h in incidents.history(folded)]
    assert events[-1][0] == "superseded" and ticket in events[-1][1]
    assert incidents.linked_alerts([r["alert_id"] for r in rows]) == {r["alert_id"] for r in rows}

    # a later hour's build, with the superseded incident among the stored ones, keeps it so
    later = build_incidents(
        None,
        None,
        quality=stuck_windows("D1"),
        causes=CAUSES,
        open_incidents=incidents.open_incidents(closed_since=T0.to_pydatetime()),
        as_of=T0 + timedelta(hours=2),
    )
    incidents.apply(later)
    again = incidents.get(folded)
    assert again["status"] == "RESOLVED" and again["inhibited"]
    assert again["parent_incident_id"] == ticket
    assert [h["event"] for h in incidents.history(folded)].count("superseded") == 1
