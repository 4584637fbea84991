"""Where an alert came from: a batch alert links to its Dagster run, a streaming alert names
the streaming pass over its landing file and links nowhere (it was made by no Dagster run)."""

from contextlib import ExitStack
from datetime import timedelta

import pytest
from support.console_access import signed_in_client
from support.operator_world import T0, Clock, alert_frame, operations, seed_store

from refrig_assets.console import create_app

STREAMED = "cli:2026-03-02/readings_20260302T09.parquet"


@pytest.fixture
def alerts(refrig_home, tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    clock = Clock(T0)
    start = T0 - timedelta(hours=1)
    row = {"device_id": "dev-001", "site_id": "site-A", "window_start": start}
    row |= {"severity": "CRITICAL", "max_score": 1.0, "top_contributors": "current_compressor"}
    batch = alert_frame([row], run_id="6fbdcba9-9f26-40e8-90cd-b1d4f7ad224c")
    streamed = alert_frame([{**row, "source": "streaming"}], run_id=STREAMED)
    seed_store(url, batch, clock=clock)
    seed_store(url, streamed, clock=clock)
    app = create_app(url, tmp_path / "data", settings=operations(tmp_path), clock=clock)
    with ExitStack() as stack:
        client = stack.enter_context(signed_in_client(app, "vera", "viewer"))
        yield app, client, batch["alert_id"].iat[0], streamed["alert_id"].iat[0]


def test_a_streaming_alert_links_to_no_dagster_run_and_a_batch_alert_does(alerts):
    _, client, batch_id, streamed_id = alerts
    batch = client.get(f"/api/alerts/{batch_id}").json()["links"]
    assert batch["dagster_run"].endswith("/runs/6fbdcba9-9f26-40e8-90cd-b1d4f7ad224c")
    streamed = client.get(f"/api/alerts/{streamed_id}").json()["links"]
    assert streamed["dagster_run"] is None


def test_the_runs_behind_an_incident_say_which_were_streaming_passes(alerts):
    app, _, batch_id, streamed_id = alerts
    detail = {"timeline": [{"alert_id": batch_id}, {"alert_id": streamed_id}]}
    runs = {r["run_id"]: r for r in app.state.service.links_for_incident(detail)["runs"]}
    assert runs[STREAMED]["url"] is None and runs[STREAMED]["streaming"] is True
    dagster = runs["6fbdcba9-9f26-40e8-90cd-b1d4f7ad224c"]
    assert dagster["url"].endswith("/runs/6fbdcba9-9f26-40e8-90cd-b1d4f7ad224c")
    assert dagster["streaming"] is False
