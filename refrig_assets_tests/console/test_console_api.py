"""The console's JSON API over a real SQLite alert database and real Parquet partitions.

Every endpoint is exercised, including bad input: unknown ids answer 404, changes the alert's
state does not allow answer 409, invalid values answer 422 — each with a readable message, and
each leaving the database exactly as it was.
"""

from contextlib import ExitStack
from datetime import timedelta

import pytest
from support.console_access import signed_in_client
from support.operator_world import (
    T0,
    Clock,
    World,
    db_snapshot,
    operations,
    seed_store,
    write_device_history,
)

from refrig_assets.alerts.store import AlertStore
from refrig_assets.console import create_app


@pytest.fixture
def world(refrig_home, tmp_path) -> World:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    clock = Clock(T0)
    alerts = seed_store(url, clock=clock)
    return World(url, tmp_path / "data", clock, alerts)


@pytest.fixture
def history(world) -> None:
    """Three hours of features and scores of dev-001 (and a neighbour) before T0."""
    write_device_history(world.data_dir, "dev-001", [T0 - timedelta(hours=h) for h in (3, 2, 1)])


@pytest.fixture
def settings(tmp_path):
    return operations(tmp_path, console={"note_max_chars": 200})


@pytest.fixture
def app(world, settings):
    return create_app(world.url, world.data_dir, settings=settings, clock=world.clock)


@pytest.fixture
def as_user(app):
    """``as_user(name, role)``: a client signed in as that user (bearer token)."""
    with ExitStack() as stack:

        def client_for(name: str, role: str = "operator"):
            return stack.enter_context(signed_in_client(app, name, role))

        yield client_for


@pytest.fixture
def client(as_user):
    """Ana, an admin: may do everything (roles are tested in test_console_access.py)."""
    return as_user("ana", "admin")


def stored(world: World, alert_id: str) -> dict:
    store = AlertStore(world.url)
    try:
        return store.get(alert_id)
    finally:
        store.close()


def unaudited(snapshot: dict) -> dict:
    """A database snapshot without the access audit (which records refusals too)."""
    return {k: v for k, v in snapshot.items() if k != "access_audit"}


def refused(client, world, method, path, status, fragment, **kwargs):
    """The request is answered ``status`` with ``fragment`` in the message; nothing changed."""
    before = unaudited(db_snapshot(world.url))
    response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert fragment in str(response.json()["detail"])
    assert unaudited(db_snapshot(world.url)) == before
    return response.json()


# -- listing ---------------------------------------------------------------------------------


def test_open_alerts_come_most_severe_first_then_by_sla_deadline(client, world):
    body = client.get("/api/alerts").json()
    got = [(a["severity"], a["device_id"]) for a in body["alerts"]]
    # dev-003's CRITICAL is 10 h older, so its deadline comes first; the suppressed repeat of
    # dev-001 is left out.
    assert got == [
        ("CRITICAL", "dev-003"),
        ("CRITICAL", "dev-002"),
        ("HIGH", "dev-005"),
        ("MEDIUM", "dev-001"),
        ("LOW", "dev-004"),
    ]
    assert body["total"] == 5


def test_each_alert_says_how_much_time_is_left_and_marks_breaches(client, world):
    alerts = {a["device_id"]: a for a in client.get("/api/alerts").json()["alerts"]}
    breached, due = alerts["dev-003"], alerts["dev-002"]
    assert breached["sla_state"] == "breached" and breached["time_left_seconds"] < 0
    assert due["sla_state"] == "due"
    deadline = world.alerts.set_index("device_id").loc["dev-002", "sla_deadline"]
    assert due["time_left_seconds"] == (deadline - T0).total_seconds()
    summary = client.get("/api/alerts").json()["summary"]
    assert summary["breached"] == 1 and summary["by_severity"]["CRITICAL"] == 2


@pytest.mark.parametrize(
    "query, devices",
    [
        ("site=site-A", {"dev-001", "dev-002"}),
        ("severity=critical", {"dev-002", "dev-003"}),
        ("model=isolation_forest", {"dev-001", "dev-005"}),
        ("device=dev-004", {"dev-004"}),
        ("site=site-A&include_suppressed=true", {"dev-001", "dev-002"}),
    ],
)
def test_filters_by_site_severity_model_and_device(client, query, devices):
    got = {a["device_id"] for a in client.get(f"/api/alerts?{query}").json()["alerts"]}
    assert got == devices


def test_suppressed_alerts_are_listed_only_on_request(client, world):
    default = client.get("/api/alerts?device=dev-001").json()["alerts"]
    everything = client.get("/api/alerts?device=dev-001&include_suppressed=true").json()["alerts"]
    assert len(default) == 1 and len(everything) == 2
    assert any(a["suppressed"] for a in everything)


def test_status_filter_shows_closed_alerts_only_when_asked(client, world):
    dev4 = world.id_of("dev-004")
    client.post(f"/api/alerts/{dev4}/resolve", json={"note": "fixed fan"})
    assert dev4 not in {a["alert_id"] for a in client.get("/api/alerts").json()["alerts"]}
    resolved = client.get("/api/alerts?status=RESOLVED").json()["alerts"]
    assert [a["alert_id"] for a in resolved] == [dev4]


def test_pages_with_limit_and_offset(client):
    first = client.get("/api/alerts?limit=2").json()
    second = client.get("/api/alerts?limit=2&offset=2").json()
    assert first["total"] == second["total"] == 5
    assert len(first["alerts"]) == 2
    assert not {a["alert_id"] for a in first["alerts"]} & {a["alert_id"] for a in second["alerts"]}


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("severity=URGENT", "severity must be one of CRITICAL, HIGH, MEDIUM, LOW"),
        ("status=CLOSED", "status must be one of"),
        ("model=random_forest", "model must be one of"),
        ("limit=0", "limit"),
    ],
)
def test_unknown_filter_values_are_refused(client, world, query, fragment):
    refused(client, world, "GET", f"/api/alerts?{query}", 422, fragment)


def test_filter_options_list_sites_severities_statuses_and_models(client):
    options = client.get("/api/filters").json()
    assert options["sites"] == ["site-A", "site-B"]
    assert options["severities"] == ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    assert "FALSE_POSITIVE" in options["statuses"]
    assert {"isolation_forest", "statistical_baseline"} <= set(options["models"])


# -- detail ----------------------------------------------------------------------------------


def test_alert_detail_has_explanation_provenance_and_history(client, world):
    alert_id = world.id_of("dev-001")
    body = client.get(f"/api/alerts/{alert_id}").json()
    assert "vibration_compressor" in body["alert"]["explanation"]
    assert body["provenance"]["models"] == [
        {"model_id": "isolation_forest", "version": "2"},
        {"model_id": "statistical_baseline", "version": "3"},
    ]
    window = body["provenance"]["feature_window"]
    assert window["start"].startswith("2026-03-02T11:00") and window["end"].startswith(
        "2026-03-02T11:15"
    )
    assert body["provenance"]["run_id"] == "run-1"
    assert [h["event"] for h in body["history"]] == ["created"]


def test_unknown_alert_is_404(client, world):
    body = refused(client, world, "GET", "/api/alerts/nope", 404, "no alert with id 'nope'")
    assert body == {"detail": "no alert with id 'nope'"}


# -- actions ---------------------------------------------------------------------------------


def test_acknowledge_is_stored_and_shows_in_history(client, world):
    alert_id = world.id_of("dev-002")
    response = client.post(f"/api/alerts/{alert_id}/acknowledge", json={"note": "on my way"})
    assert response.status_code == 200
    assert response.json()["alert"]["status"] == "ACKNOWLEDGED"
    row = stored(world, alert_id)
    assert row["status"] == "ACKNOWLEDGED" and row["acknowledged_by"] == "ana"
    history = client.get(f"/api/alerts/{alert_id}").json()["history"]
    assert (history[-1]["to_status"], history[-1]["actor"], history[-1]["note"]) == (
        "ACKNOWLEDGED",
        "ana",
        "on my way",
    )


def test_resolve_records_a_confirmed_incident(client, world, as_user):
    alert_id = world.id_of("dev-003")
    as_user("bo").post(f"/api/alerts/{alert_id}/resolve", json={"note": "bad bearing"})
    labels = client.get("/api/labels").json()["items"]
    assert [(lab["alert_id"], lab["label"]) for lab in labels] == [(alert_id, "confirmed_incident")]


def test_false_positive_reports_progress_towards_a_rule(client, world):
    alert_id = world.id_of("dev-001")
    body = client.post(
        f"/api/alerts/{alert_id}/false-positive",
        json={"note": "technician testing the compressor"},
    ).json()
    assert body["alert"]["status"] == "FALSE_POSITIVE"
    assert body["false_positives"] == 1 and body["threshold"] == 3 and body["rules"] == []


def test_resolving_a_false_positive_is_409_and_changes_nothing(client, world):
    alert_id = world.id_of("dev-004")
    client.post(f"/api/alerts/{alert_id}/false-positive", json={"note": "door"})
    refused(
        client,
        world,
        "POST",
        f"/api/alerts/{alert_id}/resolve",
        409,
        "is FALSE_POSITIVE; cannot move it to RESOLVED",
        json={},
    )


def test_acknowledging_twice_is_409(client, world):
    alert_id = world.id_of("dev-002")
    client.post(f"/api/alerts/{alert_id}/acknowledge", json={})
    refused(
        client,
        world,
        "POST",
        f"/api/alerts/{alert_id}/acknowledge",
        409,
        "is ACKNOWLEDGED; cannot move it to ACKNOWLEDGED",
        json={},
    )


@pytest.mark.parametrize("action", ["acknowledge", "resolve", "false-positive", "work-order"])
def test_actions_on_an_unknown_alert_are_404(client, world, action):
    refused(
        client,
        world,
        "POST",
        f"/api/alerts/does-not-exist/{action}",
        404,
        "no alert with id 'does-not-exist'",
        json={"note": "x"} if action != "work-order" else {},
    )


def test_an_oversized_note_is_422_and_changes_nothing(client, world):
    alert_id = world.id_of("dev-002")
    body = refused(
        client,
        world,
        "POST",
        f"/api/alerts/{alert_id}/false-positive",
        422,
        "note: String should have at most 200 characters",
        json={"note": "x" * 201},
    )
    assert body["errors"][0]["loc"] == ["body", "note"]


@pytest.mark.parametrize("action", ["acknowledge", "resolve", "false-positive", "work-order"])
def test_no_request_field_can_name_the_actor(client, world, action):
    alert_id = world.id_of("dev-002")
    refused(
        client,
        world,
        "POST",
        f"/api/alerts/{alert_id}/{action}",
        422,
        "actor: not accepted; actions are recorded under your identity",
        json={"actor": "system", "note": "x"},
    )


def test_a_work_order_needs_an_acknowledged_alert(client, world):
    alert_id = world.id_of("dev-002")
    refused(
        client,
        world,
        "POST",
        f"/api/alerts/{alert_id}/work-order",
        409,
        "only an ACKNOWLEDGED alert becomes a work order",
        json={},
    )
    client.post(f"/api/alerts/{alert_id}/acknowledge", json={})
    record = client.post(f"/api/alerts/{alert_id}/work-order", json={}).json()
    assert record["status"] == "sent" and record["work_order_id"] == f"wo-{alert_id}"
    detail = client.get(f"/api/alerts/{alert_id}").json()
    assert detail["work_order"]["payload"]["device_id"] == "dev-002"
    assert detail["history"][-1]["event"] == "work_order"


# -- devices ---------------------------------------------------------------------------------


def test_device_returns_feature_and_score_history_and_past_alerts(client, world, history):
    body = client.get("/api/devices/dev-001?hours=2").json()
    assert body["site_id"] == "site-A"
    assert body["period"]["end"].startswith("2026-03-02T12:00")
    assert body["period"]["hours"] == 2
    assert {f["device_id"] for f in body["features"]} == {"dev-001"}
    assert len(body["features"]) == 8  # 2 hours x 4 windows
    assert {s["model_id"] for s in body["scores"]} >= {"isolation_forest", "statistical_baseline"}
    assert len(body["alerts"]) == 2  # the alert and its suppressed repeat
    # The device's lead contributor comes first among the charted features.
    assert body["features_shown"][0] == "vibration_compressor_mean"


def test_device_features_can_be_chosen(client, history):
    body = client.get("/api/devices/dev-001?feature=duty_cycle&feature=door_open_fraction").json()
    assert body["features_shown"] == ["duty_cycle", "door_open_fraction"]
    assert "duty_cycle" in body["features"][0]


def test_unknown_device_is_404_and_unknown_feature_422(client, world, history):
    refused(client, world, "GET", "/api/devices/dev-999", 404, "no device 'dev-999'")
    refused(client, world, "GET", "/api/devices/dev-001?feature=flux", 422, "unknown feature")


# -- maintenance -----------------------------------------------------------------------------


def window_body(**overrides):
    body = {
        "scope": "device",
        "target": "dev-001",
        "starts_at": (T0 - timedelta(hours=2)).isoformat(),
        "ends_at": (T0 + timedelta(hours=1)).isoformat(),
        "reason": "compressor replacement",
    }
    return {**body, **overrides}


def test_declaring_maintenance_suppresses_the_alerts_inside_it(client, world):
    response = client.post("/api/maintenance", json=window_body())
    assert response.status_code == 201
    body = response.json()
    # The visible alert and its repeat (already suppressed) now carry the window as reason.
    both = {world.id_of("dev-001"), world.id_of("dev-001", suppressed=True)}
    assert set(body["suppressed_alerts"]) == both
    assert stored(world, world.id_of("dev-001"))["suppressed"] is True
    listed = client.get("/api/alerts?include_suppressed=true&device=dev-001").json()["alerts"]
    reasons = {a["alert_id"]: a["suppression_reason"] for a in listed}
    assert "compressor replacement" in reasons[world.id_of("dev-001")]
    assert [w["id"] for w in client.get("/api/maintenance?device=dev-001").json()["items"]] == [
        body["window"]["id"]
    ]
    detail = client.get(f"/api/alerts/{world.id_of('dev-001')}").json()
    assert detail["suppression"]["kind"] == "maintenance"


def test_cancelling_maintenance_restores_the_alerts(client, world, as_user):
    window = client.post("/api/maintenance", json=window_body()).json()["window"]
    body = as_user("bo").post(f"/api/maintenance/{window['id']}/cancel", json={}).json()
    assert set(body["restored_alerts"]) == {
        world.id_of("dev-001"),
        world.id_of("dev-001", suppressed=True),
    }
    # Each gets back what it had: the visible alert shows again, the repeat stays suppressed.
    assert stored(world, world.id_of("dev-001"))["suppressed"] is False
    assert stored(world, world.id_of("dev-001", suppressed=True))["suppressed"] is True
    assert client.get("/api/maintenance").json()["items"] == []
    refused(
        client,
        world,
        "POST",
        f"/api/maintenance/{window['id']}/cancel",
        409,
        "already cancelled",
        json={},
    )


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"ends_at": (T0 - timedelta(hours=3)).isoformat()}, "must be after starts_at"),
        (
            {"ends_at": (T0 + timedelta(days=30)).isoformat()},
            "longer than maintenance.max_window_days",
        ),
        ({"scope": "fleet"}, "scope: Input should be 'device' or 'site'"),
        ({"reason": ""}, "reason: String should have at least 1 character"),
        ({"starts_at": "yesterday"}, "starts_at: Input should be a valid datetime"),
    ],
)
def test_invalid_maintenance_windows_are_422(client, world, overrides, fragment):
    refused(client, world, "POST", "/api/maintenance", 422, fragment, json=window_body(**overrides))


def test_cancelling_an_unknown_window_is_404(client, world):
    refused(
        client,
        world,
        "POST",
        "/api/maintenance/77/cancel",
        404,
        "no maintenance window",
        json={},
    )


# -- feedback --------------------------------------------------------------------------------


def test_rules_can_be_applied_rejected_and_revoked_over_the_api(client, world, tmp_path, as_user):
    from support.operator_world import alert_frame

    rows = [
        {
            "device_id": "dev-010",
            "site_id": "site-A",
            "window_start": T0 - timedelta(hours=6 * i),
            "severity": "MEDIUM",
            "max_score": 0.85,
            "top_contributors": "door_open_fraction",
        }
        for i in range(1, 4)
    ]
    ids = seed_store(world.url, alert_frame(rows), world.clock)["alert_id"]
    for alert_id in ids:
        body = client.post(
            f"/api/alerts/{alert_id}/false-positive", json={"note": "cleaning"}
        ).json()
    (rule,) = body["rules"]
    assert rule["status"] == "PROPOSED" and rule["contributor"] == "door_open_fraction"
    assert [
        r["rule_id"] for r in client.get("/api/feedback/rules?status=PROPOSED").json()["items"]
    ] == [rule["rule_id"]]
    refused(
        client,
        world,
        "POST",
        f"/api/feedback/rules/{rule['rule_id']}/revoke",
        409,
        "only a ACTIVE rule can become REVOKED",
        json={},
    )
    lead = as_user("lead", "admin")
    applied = lead.post(
        f"/api/feedback/rules/{rule['rule_id']}/apply", json={"note": "agreed"}
    ).json()
    assert applied["status"] == "ACTIVE" and applied["decided_by"] == "lead"
    revoked = lead.post(f"/api/feedback/rules/{rule['rule_id']}/revoke", json={}).json()
    assert revoked["status"] == "REVOKED"
    events = [e["event"] for e in client.get("/api/feedback/audit").json()["items"]]
    assert events == ["revoked", "applied", "proposed"]  # newest first


def test_rule_decisions_on_unknown_rules_or_verbs_are_refused(client, world):
    refused(
        client,
        world,
        "POST",
        "/api/feedback/rules/fr-x/apply",
        404,
        "no feedback rule",
        json={},
    )
    refused(
        client,
        world,
        "POST",
        "/api/feedback/rules/fr-x/bless",
        422,
        "decision",
        json={},
    )
    refused(client, world, "GET", "/api/feedback/rules?status=MAYBE", 422, "status must be one of")


# -- description and pages -------------------------------------------------------------------


def test_openapi_describes_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/api/alerts",
        "/api/alerts/{alert_id}",
        "/api/alerts/{alert_id}/acknowledge",
        "/api/alerts/{alert_id}/resolve",
        "/api/alerts/{alert_id}/false-positive",
        "/api/alerts/{alert_id}/work-order",
        "/api/devices/{device_id}",
        "/api/maintenance",
        "/api/maintenance/{window_id}/cancel",
        "/api/feedback/rules",
        "/api/feedback/rules/{rule_id}/{decision}",
        "/api/labels",
        "/api/filters",
    } <= paths
    alert = spec["components"]["schemas"]["Alert"]["properties"]
    assert {"sla_deadline", "explanation", "model_versions", "time_left_seconds"} <= set(alert)
    note = spec["components"]["schemas"]["ActionRequest"]["properties"]["note"]
    assert note["maxLength"] == 200
    assert "/" not in paths  # HTML pages are not part of the API description
    assert spec["components"]["securitySchemes"]["token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token from `refrig tokens create`",
    }


def test_html_pages_render_and_unknown_ids_get_a_404_page(client, world, history):
    for path in (
        "/",
        "/?site=site-B",
        "/alerts",
        "/alerts?site=site-B&sort=score&order=desc",
        "/sites",
        "/silences",
        f"/alerts/{world.id_of('dev-001')}",
        "/devices/dev-001",
        "/maintenance",
        "/feedback",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
    assert "<svg" in client.get("/devices/dev-001").text
    missing = client.get("/alerts/nope")
    assert missing.status_code == 404 and "no alert with id" in missing.text
    assert client.get("/?severity=URGENT").status_code == 422
    assert client.get("/alerts?severity=URGENT").status_code == 422


def test_the_device_history_can_end_around_an_alert(client, world, history):
    detail = client.get(f"/api/alerts/{world.id_of('dev-001')}").json()
    # alert window ends 11:15; a quarter of the 24 h default span later
    assert detail["chart_until"] == "2026-03-02T17:15:00Z"
    body = client.get(f"/api/devices/dev-001?until={detail['chart_until']}&hours=2").json()
    # the newest features end at 12:00: the history is not stretched into the future
    assert body["period"]["end"].startswith("2026-03-02T12:00")
    earlier = client.get("/api/devices/dev-001?until=2026-03-02T11:00:00&hours=1").json()
    assert earlier["period"]["end"].startswith("2026-03-02T11:00")
    assert len(earlier["features"]) == 4
