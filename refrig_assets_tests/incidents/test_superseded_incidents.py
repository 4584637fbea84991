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


# -- an unexplained episode just before a sensor's first flagged window ------------------------
# A frozen value is STUCK_SENSOR only once it has lasted the contract's stuck_sensor_minutes
# (30): the detectors can flag the frozen windows before that, so an unknown-cause episode that
# starts within that lead and runs into the ticket is the same failure seen early.


def quiet_windows(device: str, windows: range) -> list[dict]:
    return [feature_window(device, i) for i in windows]


def two_hours(
    incidents: IncidentStore, first: list[dict], dx_first: list[dict], second: list[dict] = ()
) -> None:
    """The first hour (windows 0-3, none flagged) with ``first`` alerts, then the second (4-7,
    every window STUCK_SENSOR; the first hour's windows read again, as the step does)."""
    hour1 = build_incidents(
        alerts(first),
        diagnoses(dx_first),
        quality=pd.DataFrame(quiet_windows("D1", range(4))),
        causes=CAUSES,
        open_incidents=incidents.open_incidents(),
        as_of=T0 + timedelta(hours=1),
    )
    incidents.apply(hour1)
    flagged = [feature_window("D1", i, flags=STUCK) for i in range(4, 8)]
    hour2 = build_incidents(
        alerts(second) if second else None,
        diagnoses([diagnosis("D1", r_i, "unknown") for r_i in range(4, 8)]) if second else None,
        quality=pd.DataFrame(quiet_windows("D1", range(4)) + flagged),
        causes=CAUSES,
        open_incidents=incidents.open_incidents(closed_since=T0.to_pydatetime()),
        as_of=T0 + timedelta(hours=2),
    )
    incidents.apply(hour2)


def test_an_unknown_episode_running_into_the_stuck_flag_an_hour_later_is_one_ticket(incidents):
    # window 3 (15 minutes before the flag): the frozen vibration already looks odd
    before = [alert("D1", 3, models=3)]
    after = [alert("D1", i, models=3) for i in (4, 5)]
    two_hours(incidents, before, [diagnosis("D1", 3, "unknown")], after)

    every, _ = incidents.list()
    live = every[~every["inhibited"].astype(bool)]
    assert live[["kind", "track", "severity", "alert_count"]].values.tolist() == [
        ["sensor", f"sensor:{STUCK}", "LOW", 3]
    ]
    ticket = live.iloc[0]["incident_id"]
    (early,) = every.loc[every["kind"].eq("unknown"), "incident_id"]
    old = incidents.get(early)
    assert old["status"] == "RESOLVED" and old["evidence_count"] == 0
    assert old["inhibited"] and old["parent_incident_id"] == ticket
    assert incidents.incident_for_alert(before[0]["alert_id"]) == ticket


def test_an_unknown_episode_that_began_before_the_sensor_could_have_frozen_stays_apart(
    incidents,
):
    # alerts from window 0: an hour before the flag, longer than a frozen value needs to be
    # flagged; something else was wrong first
    before = [alert("D1", i, models=3) for i in range(4)]
    two_hours(incidents, before, [diagnosis("D1", i, "unknown") for i in range(4)])

    every, _ = incidents.list()
    live = every[~every["inhibited"].astype(bool)]
    assert sorted(live["kind"]) == ["sensor", "unknown"]


def test_a_diagnosed_fault_just_before_the_stuck_flag_stays_a_machine_incident(incidents):
    two_hours(incidents, [alert("D1", 3)], [diagnosis("D1", 3, "refrigerant_leak")])

    every, _ = incidents.list()
    live = every[~every["inhibited"].astype(bool)]
    assert sorted(live["kind"]) == ["refrigeration", "sensor"]


def test_within_one_build_the_alert_before_the_first_flagged_window_joins_the_ticket():
    quality = pd.DataFrame(
        quiet_windows("D1", range(3)) + [feature_window("D1", i, flags=STUCK) for i in range(3, 7)]
    )
    built = build_incidents(
        alerts([alert("D1", 2, models=3)]),
        diagnoses([diagnosis("D1", 2, "unknown")]),
        quality=quality,
        causes=CAUSES,
    )

    assert built.incidents[["kind", "alert_count", "first_window_start"]].values.tolist() == [
        ["sensor", 1, T0 + 2 * pd.Timedelta(minutes=15)]
    ]
    assert built.absorbed == {}
