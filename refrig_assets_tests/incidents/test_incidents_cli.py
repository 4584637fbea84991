"""``refrig incidents``: list, show, ack, resolve, false-positive against a real SQLite file."""

import json

import pandas as pd
import pytest
from support.incident_world import CAUSES, alert, alerts, diagnoses, diagnosis
from typer.testing import CliRunner

from refrig_assets.alerts.store import AlertStore
from refrig_assets.cli import app
from refrig_assets.core.settings import get_settings
from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.repository import IncidentStore

runner = CliRunner()


@pytest.fixture
def stored(refrig_home, monkeypatch):
    """Two incidents: D1 a refrigerant leak (two alerts), D2 of unknown cause."""
    monkeypatch.setattr("refrig_assets.incidents.build.cause_table", lambda: CAUSES)
    store = AlertStore(get_settings().alerts_db_url)
    rows = alerts([alert("D1", 0), alert("D1", 1), alert("D2", 0)])
    store.upsert(rows)
    incidents = IncidentStore(store)
    dx = diagnoses([diagnosis("D1", i, "refrigerant_leak") for i in range(2)])
    build = build_incidents(rows, dx, causes=CAUSES, open_incidents=incidents.open_incidents())
    incidents.apply(build)
    ids = incidents.list()[0].set_index("device_id")["incident_id"].to_dict()
    yield store, incidents, ids, rows
    store.close()


def test_list_prints_live_incidents_most_severe_first_as_json_csv_and_table(stored):
    _, _, ids, _ = stored

    as_json = runner.invoke(app, ["incidents", "list", "--format", "json"])
    as_csv = runner.invoke(app, ["incidents", "list", "--format", "csv"])
    table = runner.invoke(app, ["incidents", "list"], env={"COLUMNS": "220"})

    assert as_json.exit_code == 0, as_json.output
    listed = json.loads(as_json.output)
    assert [i["incident_id"] for i in listed] == [ids["D1"], ids["D2"]]
    assert listed[0]["cause"] == "refrigerant_leak"
    assert list(pd.read_csv(pd.io.common.StringIO(as_csv.output))["severity"]) == ["HIGH", "MEDIUM"]
    assert ids["D1"] in table.output and "refrigerant_leak" in table.output


def test_show_prints_the_evidence_timeline_and_history(stored):
    _, _, ids, rows = stored

    shown = runner.invoke(app, ["incidents", "show", ids["D1"]])
    as_json = json.loads(
        runner.invoke(app, ["incidents", "show", ids["D1"], "--format", "json"]).output
    )

    assert shown.exit_code == 0, shown.output
    assert "evidence (2)" in shown.output and "(repeat)" in shown.output
    assert {e["alert_id"] for e in as_json["evidence"]} == set(rows.loc[:1, "alert_id"])
    assert [h["event"] for h in as_json["history"]] == ["created", "severity"]


def test_ack_acknowledges_the_incident_and_its_alerts(stored):
    store, incidents, ids, rows = stored

    done = runner.invoke(app, ["incidents", "ack", ids["D1"], "--by", "ana", "--note", "going"])

    assert done.exit_code == 0, done.output
    assert "acknowledged by ana" in done.output
    assert incidents.get(ids["D1"])["status"] == "ACKNOWLEDGED"
    assert {store.get(a)["status"] for a in rows.loc[:1, "alert_id"]} == {"ACKNOWLEDGED"}
    assert store.get(rows.loc[2, "alert_id"])["status"] == "OPEN"  # another incident's alert


def test_resolve_and_false_positive_finish_an_incident(stored):
    _, incidents, ids, _ = stored

    resolved = runner.invoke(app, ["incidents", "resolve", ids["D1"], "--by", "ana"])
    no_note = runner.invoke(
        app, ["incidents", "false-positive", ids["D2"], "--by", "ana", "--note", " "]
    )
    marked = runner.invoke(
        app, ["incidents", "false-positive", ids["D2"], "--by", "ana", "--note", "test rig"]
    )

    assert resolved.exit_code == 0 and incidents.get(ids["D1"])["status"] == "RESOLVED"
    assert no_note.exit_code == 1
    assert marked.exit_code == 0 and incidents.get(ids["D2"])["status"] == "FALSE_POSITIVE"
    listed = runner.invoke(app, ["incidents", "list", "--format", "json"])
    assert json.loads(listed.output) == []  # nothing live any more
    everything = runner.invoke(app, ["incidents", "list", "--status", "all", "--format", "json"])
    assert len(json.loads(everything.output)) == 2


def test_errors_are_one_line_and_exit_1(stored):
    _, _, ids, _ = stored
    runner.invoke(app, ["incidents", "resolve", ids["D1"], "--by", "ana"])

    again = runner.invoke(app, ["incidents", "ack", ids["D1"], "--by", "ana"])
    missing = runner.invoke(app, ["incidents", "show", "inc-nope"])
    bad = runner.invoke(app, ["incidents", "list", "--severity", "urgent"])

    assert (again.exit_code, missing.exit_code, bad.exit_code) == (1, 1, 1)
    assert "RESOLVED" in again.output and "no incident" in missing.output
