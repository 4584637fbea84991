"""Incidents in the alert database: the fold of stored alerts, idempotent re-runs, pages,
the operator lifecycle carried to the evidence, and the list the console reads."""

import os
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
from support.operator_world import Clock

from refrig_assets.alerts.store import AlertStore, InvalidTransition
from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.policy import incident_policy
from refrig_assets.incidents.repository import IncidentNotFound, IncidentStore

POSTGRES_URL = os.environ.get("REFRIG_TEST_POSTGRES_URL")


@pytest.fixture
def clock():
    return Clock((T0 + timedelta(hours=1)).to_pydatetime())


@pytest.fixture(params=["sqlite", *(["postgresql"] if POSTGRES_URL else [])])
def alert_store(request, tmp_path, clock):
    url = f"sqlite:///{tmp_path / 'alerts.db'}" if request.param == "sqlite" else POSTGRES_URL
    s = AlertStore(url, clock=clock)
    s.metadata.drop_all(s.engine)
    yield s
    s.metadata.drop_all(s.engine)
    s.close()


@pytest.fixture
def incidents(alert_store, monkeypatch):
    # The fold inside AlertStore.upsert reads the signature table; give it the test's.
    monkeypatch.setattr("refrig_assets.incidents.build.cause_table", lambda: CAUSES)
    return IncidentStore(alert_store)


def pages(store: AlertStore) -> list[str]:
    return sorted(r["dedup_key"] for r in store.outbox.list() if r["event"].startswith("incident"))


def test_a_stored_streaming_alert_opens_an_incident_at_once_and_batch_alerts_join_it(
    alert_store, incidents
):
    streaming = alerts([alert("D1", 0, source="streaming", rule="total_cooling_loss")])
    alert_store.upsert(streaming, notify=True)

    live, _ = incidents.list(live_only=True)
    assert live[["device_id", "cause", "severity"]].values.tolist() == [
        ["D1", "total_cooling_loss", "CRITICAL"]
    ]

    alert_store.upsert(alerts([alert("D1", 0), alert("D1", 1)]), notify=True)

    live, _ = incidents.list(live_only=True)
    assert len(live) == 1 and live.iloc[0]["alert_count"] == 3
    assert live.iloc[0]["sources"] == "batch,streaming"
    # paged once, when it opened CRITICAL: the batch alerts of the same fault page nothing
    assert pages(alert_store) == [f"incident:{live.iloc[0]['incident_id']}:CRITICAL"]


def test_the_hourly_build_refines_the_cause_of_the_incident_the_fold_opened(alert_store, incidents):
    rows = [alert("D1", 0), alert("D1", 1)]
    alert_store.upsert(alerts(rows), notify=True)
    opened = incidents.list()[0]
    assert opened["cause"].tolist() == ["unknown"]

    dx = [diagnosis("D1", i, "refrigerant_leak") for i in range(2)]
    build = build_incidents(
        alerts(rows),
        diagnoses(dx),
        causes=CAUSES,
        open_incidents=incidents.open_incidents(),
    )
    incidents.apply(build)

    after = incidents.list()[0]
    assert after["incident_id"].tolist() == opened["incident_id"].tolist()
    assert after[["cause", "severity", "alert_count"]].values.tolist() == [
        ["refrigerant_leak", "HIGH", 2]
    ]


def test_re_running_the_same_hour_changes_nothing(alert_store, incidents):
    rows = alerts([alert("D1", 0), alert("D1", 1), alert("D2", 0)])
    dx = diagnoses([diagnosis("D1", 0, "total_cooling_loss"), diagnosis("D2", 0, "unknown")])

    def run():
        build = build_incidents(rows, dx, causes=CAUSES, open_incidents=incidents.open_incidents())
        return build, incidents.apply(build)

    first_build, first = run()
    state = incidents.list()[0].drop(columns=["updated_at"])
    history = {i: incidents.history(i) for i in state["incident_id"]}
    outbox = pages(alert_store)
    again_build, again = run()

    assert sorted(again_build.incidents["incident_id"]) == sorted(
        first_build.incidents["incident_id"]
    )
    assert first["opened"] == 2 and again["opened"] == 0 and again["updated"] == 0
    pd.testing.assert_frame_equal(incidents.list()[0].drop(columns=["updated_at"]), state)
    assert {i: incidents.history(i) for i in state["incident_id"]} == history
    assert pages(alert_store) == outbox


def test_severity_only_rises_while_the_incident_is_open(alert_store, incidents):
    first = alerts([alert("D1", 0)])
    build = build_incidents(
        first, diagnoses([diagnosis("D1", 0, "total_cooling_loss")]), causes=CAUSES
    )
    incidents.apply(build)
    milder = alerts([alert("D1", 1)])
    build = build_incidents(
        milder,
        diagnoses([diagnosis("D1", 1, "unknown")]),
        causes=CAUSES,
        open_incidents=incidents.open_incidents(),
    )
    incidents.apply(build)

    incident = incidents.list()[0].iloc[0]
    assert incident["severity"] == "CRITICAL"
    assert incident["alert_count"] == 2


def test_a_severity_rise_pages_once_more_and_never_twice_for_the_same_level(alert_store, incidents):
    alert_store.upsert(alerts([alert("D1", 0)]), notify=True)  # unknown cause: MEDIUM, no page
    assert pages(alert_store) == []
    rows = alerts([alert("D1", 0), alert("D1", 1)])
    for _ in range(2):
        build = build_incidents(
            rows,
            diagnoses([diagnosis("D1", i, "refrigerant_leak") for i in range(2)]),
            causes=CAUSES,
            open_incidents=incidents.open_incidents(),
        )
        incidents.apply(build)
    stream = alerts([alert("D1", 2, source="streaming", rule="total_cooling_loss")])
    alert_store.upsert(stream, notify=True)

    incident_id = incidents.list()[0].iloc[0]["incident_id"]
    assert pages(alert_store) == [
        f"incident:{incident_id}:CRITICAL",
        f"incident:{incident_id}:HIGH",
    ]
    events = [h["event"] for h in incidents.history(incident_id)]
    assert events == ["created", "severity", "severity"]


def test_closing_by_hysteresis_and_reopening_are_recorded(alert_store, incidents):
    policy = replace(incident_policy(), hysteresis_windows=2, reopen=timedelta(hours=2))
    dx = diagnoses([diagnosis("D1", 0, "refrigerant_leak"), diagnosis("D1", 6, "refrigerant_leak")])
    first = build_incidents(
        alerts([alert("D1", 0)]),
        dx,
        causes=CAUSES,
        policy=policy,
        as_of=T0 + 4 * WINDOW,
    )
    incidents.apply(first)
    incident_id = first.incidents.iloc[0]["incident_id"]
    assert incidents.get(incident_id)["status"] == "RESOLVED"

    later = build_incidents(
        alerts([alert("D1", 6)]),
        dx,
        causes=CAUSES,
        policy=policy,
        open_incidents=incidents.open_incidents(closed_since=T0),
    )
    incidents.apply(later)

    reopened = incidents.get(incident_id)
    assert (reopened["status"], reopened["reopen_count"], reopened["closed_at"]) == (
        "OPEN",
        1,
        None,
    )
    events = [h["event"] for h in incidents.history(incident_id)]
    assert events == ["created", "closed", "reopened"]


def test_acknowledging_an_incident_acknowledges_its_evidence_alerts(alert_store, incidents):
    rows = alerts([alert("D1", 0), alert("D1", 1)])
    alert_store.upsert(rows, notify=True)
    incident_id = incidents.list()[0].iloc[0]["incident_id"]

    incidents.acknowledge(incident_id, "ana", "on my way")

    assert incidents.get(incident_id)["acknowledged_by"] == "ana"
    for alert_id in rows["alert_id"]:
        assert alert_store.get(alert_id)["status"] == "ACKNOWLEDGED"
        assert alert_store.history(alert_id)[-1]["actor"] == "ana"
    assert incidents.history(incident_id)[-1]["note"] == "on my way"

    incidents.false_positive(incident_id, "ana")
    assert {alert_store.get(a)["status"] for a in rows["alert_id"]} == {"FALSE_POSITIVE"}
    with pytest.raises(InvalidTransition, match="FALSE_POSITIVE"):
        incidents.resolve(incident_id, "ana")
    with pytest.raises(IncidentNotFound):
        incidents.acknowledge("inc-missing", "ana")
    with pytest.raises(InvalidTransition, match="actor"):
        incidents.acknowledge(incident_id, " ")


def test_inhibited_incidents_and_sensor_tickets_are_never_paged(alert_store, incidents):
    rows = alerts([alert("D1", 0), alert("D2", 0)])
    dx = diagnoses([diagnosis("D1", 0, "total_cooling_loss"), diagnosis("D2", 0, "sensor_fault")])
    build = build_incidents(rows, dx, causes=CAUSES)
    build.incidents.loc[build.incidents["device_id"].eq("D1"), "inhibited"] = True

    incidents.apply(build)

    assert pages(alert_store) == []


def test_the_list_pages_with_a_cursor_most_severe_first(alert_store, incidents):
    rows = [alert(f"D{i}", i) for i in range(5)]
    causes = ["unknown", "total_cooling_loss", "unknown", "refrigerant_leak", "unknown"]
    dx = diagnoses([diagnosis(f"D{i}", i, c) for i, c in enumerate(causes)])
    alert_store.upsert(alerts(rows))
    prior = incidents.open_incidents()
    incidents.apply(build_incidents(alerts(rows), dx, causes=CAUSES, open_incidents=prior))

    seen, cursor = [], None
    while True:
        page, cursor = incidents.list(limit=2, cursor=cursor)
        seen += page["severity"].tolist()
        if cursor is None:
            break

    assert seen == ["CRITICAL", "HIGH", "MEDIUM", "MEDIUM", "MEDIUM"]
    timeline = incidents.evidence(incidents.list(severity="CRITICAL")[0].iloc[0]["incident_id"])
    assert timeline[["source", "alert_status"]].values.tolist() == [["batch", "OPEN"]]


def test_an_unacknowledged_incident_past_its_sla_escalates_one_level_per_check(
    alert_store, incidents, clock
):
    alert_store.upsert(
        alerts([alert("D1", 3, source="streaming", rule="total_cooling_loss")]), notify=True
    )
    incident = incidents.list()[0].iloc[0]
    deadline = incident["sla_deadline"]

    assert incidents.check_sla(deadline - timedelta(seconds=1)) == []
    changed = incidents.check_sla(deadline + timedelta(seconds=1))
    assert incidents.check_sla(deadline + timedelta(seconds=1)) == []  # one level per period

    assert [(c["previous_escalation_level"], c["escalation_level"]) for c in changed] == [
        ("L1", "L2")
    ]
    assert f"incident:{incident['incident_id']}:escalated:L2" in {
        r["dedup_key"] for r in alert_store.outbox.list()
    }
    incidents.acknowledge(incident["incident_id"], "ana")
    assert incidents.check_sla(deadline + timedelta(days=1)) == []  # acknowledged: no escalation


def test_an_hour_without_new_signals_keeps_the_incident_and_its_warmest_reading(
    alert_store, incidents
):
    from support.incident_world import feature_window

    warm = pd.DataFrame(
        [feature_window("D1", 0, evaporator=-18.0), feature_window("D1", 1, evaporator=-15.0)]
    )
    first = build_incidents(
        alerts([alert("D1", 0), alert("D1", 1)]), None, quality=warm, causes=CAUSES
    )
    incidents.apply(first)
    stored = incidents.list()[0].iloc[0]

    quiet = build_incidents(None, None, causes=CAUSES, open_incidents=incidents.open_incidents())
    counts = incidents.apply(quiet)

    assert counts["updated"] == 0
    after = incidents.get(stored["incident_id"])
    assert (after["evaporator_start_c"], after["evaporator_peak_c"]) == (-18.0, -15.0)


def test_a_site_losing_power_is_paged_once_for_the_site_not_per_device(alert_store, incidents):
    rows = [alert(d, 3, source="streaming", rule="power_loss") for d in ("D1", "D2", "D3")]

    alert_store.upsert(alerts(rows), notify=True)

    live = incidents.list(live_only=True)[0]
    site = live[live["scope"].eq("site")]
    assert site["cause"].tolist() == ["power_loss"]
    assert live[live["scope"].eq("device")]["inhibited"].all()
    assert pages(alert_store) == [f"incident:{site.iloc[0]['incident_id']}:CRITICAL"]


def test_a_site_outage_that_goes_on_in_a_later_batch_stays_one_site_incident_paged_once(
    alert_store, incidents
):
    # the next hour's power-loss alerts of the same site are stored in a later fold: they join
    # the site's live incident instead of opening a second one (and paging the site again)
    first = [alert(d, 3, source="streaming", rule="power_loss") for d in ("D1", "D2", "D3")]
    alert_store.upsert(alerts(first), notify=True)
    later = [alert(d, 4, source="streaming", rule="power_loss") for d in ("D1", "D2", "D3")]

    alert_store.upsert(alerts(later), notify=True)

    every = incidents.list()[0]
    site = every[every["scope"].eq("site")]
    assert site["cause"].tolist() == ["power_loss"]
    assert pages(alert_store) == [f"incident:{site.iloc[0]['incident_id']}:CRITICAL"]


def test_a_device_incident_a_site_incident_explains_stays_explained_when_it_goes_on_later(
    alert_store, incidents
):
    # the power comes back and the device pulls its temperature down: an unexplained alert
    # soon after continues the device's power-loss incident; the fold that stores it builds with
    # that device's incidents only, the site incident is not among them
    rows = [alert(d, 3, source="streaming", rule="power_loss") for d in ("D1", "D2", "D3")]
    alert_store.upsert(alerts(rows), notify=True)
    site = incidents.list()[0].query("scope == 'site'").iloc[0]["incident_id"]

    alert_store.upsert(alerts([alert("D1", 4, models=2)]), notify=True)

    every = incidents.list()[0]
    d1 = every[every["device_id"].eq("D1")]
    assert d1[["cause", "alert_count"]].values.tolist() == [["power_loss", 2]]
    assert d1["inhibited"].all() and d1["parent_incident_id"].tolist() == [site]
    assert pages(alert_store) == [f"incident:{site}:CRITICAL"]
