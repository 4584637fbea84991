"""``status=all`` in the JSON API means every status, as on the pages and in the CLI."""

from contextlib import ExitStack

import pytest
from support.console_access import signed_in_client
from support.operator_world import T0, Clock, World, operations, seed_store

from refrig_assets.console import create_app


@pytest.fixture
def client(refrig_home, tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    clock = Clock(T0)
    world = World(url, tmp_path / "data", clock, seed_store(url, clock=clock))
    app = create_app(url, world.data_dir, settings=operations(tmp_path), clock=clock)
    with ExitStack() as stack:
        ana = stack.enter_context(signed_in_client(app, "ana", "operator"))
        yield world, ana


def test_status_all_lists_alerts_of_every_status(client):
    world, ana = client
    resolved = world.id_of("dev-002")
    assert ana.post(f"/api/alerts/{resolved}/resolve", json={}).status_code == 200
    live = {a["alert_id"] for a in ana.get("/api/alerts").json()["alerts"]}
    assert resolved not in live
    for spelling in ("all", "ALL"):
        every = ana.get(f"/api/alerts?status={spelling}")
        assert every.status_code == 200, every.text
        found = {a["alert_id"] for a in every.json()["alerts"]}
        assert found == live | {resolved}


def test_status_all_is_accepted_by_the_incident_list(client):
    _, ana = client
    listing = ana.get("/api/incidents?status=all")
    assert listing.status_code == 200, listing.text
    assert ana.get("/api/incidents?status=closed").status_code == 422


def test_the_pages_status_filter_all_still_lists_every_status(client):
    world, ana = client
    resolved = world.id_of("dev-002")
    assert ana.post(f"/api/alerts/{resolved}/resolve", json={}).status_code == 200
    assert resolved not in ana.get("/alerts").text
    page = ana.get("/alerts?status=ALL")
    assert page.status_code == 200 and resolved in page.text
    assert ana.get("/?status=ALL").status_code == 200
