"""Who may do what in the console's API, and how its web surface refuses the rest.

A real app over a real SQLite alert database; users, tokens and sessions are real. Every
state-changing endpoint is found from the app's own routes, so one added later is covered too.
"""

import dataclasses
import ipaddress
from contextlib import ExitStack
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from support.console_access import (
    CONSOLE_BASE,
    anonymous_client,
    signed_in_client,
    token_for,
)
from support.operator_world import (
    T0,
    Clock,
    World,
    alert_frame,
    db_snapshot,
    operations,
    seed_store,
)

from refrig_assets.access import load_access_policy
from refrig_assets.alerts.store import AlertStore
from refrig_assets.console import create_app


@pytest.fixture
def world(refrig_home, tmp_path) -> World:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    clock = Clock(T0)
    return World(url, tmp_path / "data", clock, seed_store(url, clock=clock))


@pytest.fixture
def policy():
    return dataclasses.replace(
        load_access_policy(),
        trusted_proxies=(ipaddress.ip_network("10.1.0.0/24"),),
        allowed_origins=("https://tickets.example.com",),
    )


@pytest.fixture
def app(world, tmp_path, policy):
    return create_app(
        world.url,
        world.data_dir,
        settings=operations(tmp_path),
        clock=world.clock,
        access=policy,
    )


@pytest.fixture
def as_user(app):
    with ExitStack() as stack:
        yield lambda name, role="operator": stack.enter_context(signed_in_client(app, name, role))


def mutating_paths(app, world) -> list[str]:
    """Every POST route of the API, with ids of real objects filled in."""
    ids = {
        "alert_id": world.id_of("dev-002"),
        "window_id": "1",
        "rule_id": "fr-x",
        "decision": "apply",
        "silence_id": "1",
        "incident_id": "inc-x",
        "action": "acknowledge",
    }
    described = app.openapi()["paths"]
    paths = [p.format(**ids) for p, methods in described.items() if "post" in methods]
    assert len(paths) >= 10
    return paths


def unaudited(snapshot):
    return {k: v for k, v in snapshot.items() if k != "access_audit"}


def test_every_mutating_endpoint_refuses_without_identity_cross_site_or_framed(app, world):
    token = token_for(app, "ana", "admin")
    before = unaudited(db_snapshot(world.url))
    with (
        anonymous_client(app) as anon,
        TestClient(app, base_url=CONSOLE_BASE) as client,
    ):
        for path in mutating_paths(app, world):
            response = anon.post(path, json={"note": "x"})
            assert response.status_code == 401, path
            assert "sign in first" in response.json()["detail"]
            auth = {"Authorization": f"Bearer {token}"}
            evil = client.post(
                path,
                json={"note": "x"},
                headers={**auth, "Origin": "https://evil.example"},
            )
            assert evil.status_code == 403, path
            assert "cross-site request from origin 'https://evil.example'" in evil.text
            framed = client.post(
                path, json={"note": "x"}, headers={**auth, "Sec-Fetch-Dest": "iframe"}
            )
            assert framed.status_code == 403 and "framed" in framed.text, path
    assert unaudited(db_snapshot(world.url)) == before


def test_reading_needs_an_identity_too_and_pages_send_browsers_to_sign_in(app):
    with anonymous_client(app) as anon:
        assert anon.get("/api/alerts").status_code == 401
        page = anon.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=%2F"
        # The API description and its packaged assets are public and need no network.
        assert anon.get("/docs").status_code == 200
        assert anon.get("/static-docs/swagger-ui-bundle.js").status_code == 200


def test_an_allowed_origin_and_the_own_origin_may_act(app, world, as_user):
    ana = as_user("ana")
    dev2, dev3 = world.id_of("dev-002"), world.id_of("dev-003")
    own = ana.post(f"/api/alerts/{dev2}/acknowledge", json={}, headers={"Origin": CONSOLE_BASE})
    assert own.status_code == 200
    listed = ana.post(
        f"/api/alerts/{dev3}/acknowledge",
        json={},
        headers={"Origin": "https://tickets.example.com"},
    )
    assert listed.status_code == 200


def test_a_viewer_reads_but_cannot_act_an_operator_can(app, world, as_user):
    viewer, operator = as_user("vera", "viewer"), as_user("otto", "operator")
    alert_id = world.id_of("dev-002")
    assert viewer.get("/api/alerts").status_code == 200
    refused = viewer.post(f"/api/alerts/{alert_id}/acknowledge", json={})
    assert refused.status_code == 403
    assert refused.json()["detail"] == "vera is a viewer; acknowledging needs the operator role"
    done = operator.post(f"/api/alerts/{alert_id}/acknowledge", json={"note": "on it"})
    assert done.status_code == 200 and done.json()["alert"]["acknowledged_by"] == "otto"
    # The audit names who did what, refusals included.
    with TestClient(app, base_url=CONSOLE_BASE) as admin:
        admin.headers["Authorization"] = f"Bearer {token_for(app, 'root', 'admin')}"
        audit = admin.get("/api/access/audit").json()["items"]
    rows = [(a["actor"], a["role"], a["action"], a["outcome"]) for a in audit]
    path = f"/api/alerts/{alert_id}/acknowledge"
    assert ("otto", "operator", "POST", 200) in [(r[0], r[1], r[2], r[3]) for r in rows]
    assert ("vera", "viewer", "POST", 403) in rows
    assert all(a["target"] == path for a in audit if a["action"] == "POST")


def test_four_eyes_the_admin_who_marked_the_false_positives_cannot_apply_the_rule(
    app, world, as_user
):
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
    ana, lead, otto = as_user("ana", "admin"), as_user("lead", "admin"), as_user("otto")
    for alert_id in ids:
        body = ana.post(f"/api/alerts/{alert_id}/false-positive", json={"note": "cleaning"})
    (rule,) = body.json()["rules"]
    path = f"/api/feedback/rules/{rule['rule_id']}/apply"
    own = ana.post(path, json={})
    assert own.status_code == 403 and "four-eyes rule: ana marked false positives" in own.text
    operator = otto.post(path, json={})
    assert operator.status_code == 403 and "needs the admin role" in operator.text
    applied = lead.post(path, json={"note": "agreed"})
    assert applied.status_code == 200 and applied.json()["decided_by"] == "lead"


def test_a_false_positive_needs_a_note_on_the_server(world, as_user):
    response = as_user("otto").post(
        f"/api/alerts/{world.id_of('dev-002')}/false-positive", json={"note": "   "}
    )
    assert response.status_code == 422 and "note" in response.json()["detail"]


def test_backdated_maintenance_needs_an_admin(world, as_user):
    body = {
        "scope": "site",
        "target": "site-B",
        "starts_at": (T0 - timedelta(days=2)).isoformat(),
        "ends_at": (T0 + timedelta(hours=1)).isoformat(),
        "reason": "quiet please",
    }
    refused = as_user("otto").post("/api/maintenance", json=body)
    assert refused.status_code == 403 and "backdated" in refused.json()["detail"]
    now = {**body, "starts_at": T0.isoformat()}
    assert as_user("otto").post("/api/maintenance", json=now).status_code == 201
    assert as_user("root", "admin").post("/api/maintenance", json=body).status_code == 201


def test_browser_sessions_need_the_csrf_token_header_tokens_do_not(app, world):
    token = token_for(app, "ana", "operator")
    with TestClient(app, base_url=CONSOLE_BASE) as browser:
        bad = browser.post(
            "/login",
            content="token=nope",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert bad.status_code == 401 and "unknown, revoked or expired" in bad.text
        signed = browser.post(
            "/login",
            content=f"token={token}&next=/sites",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/sites"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and token not in cookie
        page = browser.get("/").text
        csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
        assert csrf and "ana" in page
        alert_id = world.id_of("dev-002")
        missing = browser.post(f"/api/alerts/{alert_id}/acknowledge", json={})
        assert missing.status_code == 403 and "CSRF" in missing.json()["detail"]
        ok = browser.post(
            f"/api/alerts/{alert_id}/acknowledge",
            json={},
            headers={"X-CSRF-Token": csrf},
        )
        assert ok.status_code == 200 and ok.json()["alert"]["acknowledged_by"] == "ana"
        # Revoking the token ends the session at once.
        store = app.state.auth.store
        store.revoke_token(store.tokens("ana")[0]["token_id"], actor="root")
        assert browser.get("/api/alerts").status_code == 401


def test_the_proxy_header_is_honoured_only_from_a_trusted_proxy(app, world, policy):
    header = {policy.proxy_header: "pat@corp"}
    with TestClient(app, base_url=CONSOLE_BASE, client=("10.1.0.7", 4000)) as proxied:
        me = proxied.get("/api/me", headers=header).json()
        assert me == {"name": "pat@corp", "role": "viewer", "via": "proxy"}
    with TestClient(app, base_url=CONSOLE_BASE, client=("10.9.9.9", 4000)) as direct:
        assert direct.get("/api/me", headers=header).status_code == 401


def test_host_body_size_and_content_type_are_checked(app, world, as_user):
    ana = as_user("ana")
    with TestClient(app, base_url="http://rebound.example") as rebound:
        response = rebound.get("/api/alerts")
        assert response.status_code == 400 and "not served here" in response.json()["detail"]
    big = ana.post(
        f"/api/alerts/{world.id_of('dev-002')}/acknowledge",
        json={"note": "x" * (load_access_policy().max_body_bytes + 1)},
    )
    assert big.status_code == 413
    plain = ana.post(
        f"/api/alerts/{world.id_of('dev-002')}/acknowledge",
        content='{"note": "no content type"}',
        headers={"Content-Type": "text/plain"},
    )
    assert plain.status_code == 422
    headers = ana.get("/api/alerts").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


def test_every_list_endpoint_pages_with_limit_and_cursor(app, world, as_user):
    admin = as_user("root", "admin")
    # Give every list at least two entries.
    for device in ("dev-002", "dev-003"):
        admin.post(f"/api/alerts/{world.id_of(device)}/resolve", json={"note": "fixed"})
        admin.post(
            "/api/maintenance",
            json={
                "scope": "device",
                "target": device,
                "starts_at": T0.isoformat(),
                "ends_at": (T0 + timedelta(hours=1)).isoformat(),
                "reason": "check",
            },
        )
        admin.post(
            "/api/silences",
            json={
                "matcher": "device",
                "value": device,
                "minutes": 30,
                "reason": "noisy",
            },
        )
    seed_store(
        world.url,
        alert_frame(
            [
                {
                    "device_id": f"dev-02{i}",
                    "site_id": "site-A",
                    "window_start": T0 - timedelta(hours=6 * i),
                    "severity": "LOW",
                    "max_score": 0.8,
                    "top_contributors": "door_open_fraction",
                }
                for i in range(1, 4)
            ]
        ),
        world.clock,
    )
    admin.post(f"/api/alerts/{world.id_of('dev-001')}/false-positive", json={"note": "door"})
    lists = [
        path
        for path, methods in app.openapi()["paths"].items()
        if "get" in methods
        and "cursor" in {p["name"] for p in methods["get"].get("parameters", [])}
    ]
    assert {
        "/api/alerts",
        "/api/maintenance",
        "/api/feedback/rules",
        "/api/feedback/audit",
        "/api/labels",
        "/api/silences",
        "/api/sites",
        "/api/access/audit",
    } <= set(lists)
    for path in lists:
        first = admin.get(f"{path}?limit=1").json()
        key = "alerts" if path == "/api/alerts" else "items"
        full = admin.get(f"{path}?limit=1000").json()[key]
        seen, cursor = list(first[key]), first["next_cursor"]
        while cursor:
            nxt = admin.get(f"{path}?limit=1&cursor={cursor}").json()
            assert len(nxt[key]) == 1
            seen += nxt[key]
            cursor = nxt["next_cursor"]
        if path != "/api/access/audit":  # the audit grows while we read it
            assert seen == full, path
        assert len(first[key]) <= 1, path
    bad = admin.get("/api/labels?cursor=garbage")
    assert bad.status_code == 422 and "cursor" in bad.json()["detail"]


def test_bulk_acknowledge_acts_on_each_and_reports_the_rest(world, as_user):
    otto = as_user("otto")
    ids = [world.id_of(d) for d in ("dev-002", "dev-003", "dev-005")]
    otto.post(f"/api/alerts/{ids[0]}/resolve", json={})
    body = otto.post(
        "/api/alerts/bulk", json={"action": "acknowledge", "alert_ids": [*ids, "nope"]}
    ).json()
    assert body["done"] == ids[1:]
    assert [f["alert_id"] for f in body["failed"]] == [ids[0], "nope"]
    store = AlertStore(world.url)
    assert [store.get(i)["acknowledged_by"] for i in ids[1:]] == ["otto", "otto"]
    store.close()


def test_a_silence_hides_matching_alerts_until_it_expires(world, as_user, app):
    otto = as_user("otto")
    created = otto.post(
        "/api/silences",
        json={
            "matcher": "site",
            "value": "site-B",
            "minutes": 60,
            "reason": "defrost test",
        },
    )
    assert created.status_code == 201 and created.json()["created_by"] == "otto"
    sites = {a["site_id"] for a in otto.get("/api/alerts").json()["alerts"]}
    assert sites == {"site-A"}
    shown = otto.get("/api/alerts?include_suppressed=true").json()["alerts"]
    silenced = [a for a in shown if a["silenced_by"]]
    assert silenced and "defrost test" in silenced[0]["suppression_reason"]
    world.clock.now = T0 + timedelta(minutes=61)
    assert "site-B" in {a["site_id"] for a in otto.get("/api/alerts").json()["alerts"]}
    assert otto.get("/api/silences").json()["items"] == []


def test_a_recurring_silence_hides_alerts_every_night(world, as_user):
    otto = as_user("otto")
    body = {
        "matcher": "contributor",
        "value": "current_compressor",
        "minutes": 120,
        "reason": "nightly cleaning",
        "recurrence": "daily",
        "starts_at": (T0 - timedelta(hours=1)).isoformat(),
        "until": (T0 + timedelta(days=7)).isoformat(),
    }
    assert otto.post("/api/silences", json=body).status_code == 201

    def devices():
        return {a["device_id"] for a in otto.get("/api/alerts").json()["alerts"]}

    assert "dev-003" not in devices()
    world.clock.now = T0 + timedelta(hours=3)
    assert "dev-003" in devices()
    world.clock.now = T0 + timedelta(days=1)
    assert "dev-003" not in devices()
    no_until = otto.post("/api/silences", json={**body, "until": None})
    assert no_until.status_code == 422 and "needs 'until'" in no_until.json()["detail"]


def test_search_time_range_and_sorting(world, as_user):
    otto = as_user("otto")
    found = otto.get("/api/alerts?q=DEV-003").json()["alerts"]
    assert {a["device_id"] for a in found} == {"dev-003"}
    found = otto.get("/api/alerts?q=current_comp").json()["alerts"]
    assert found and all("current_compressor" in a["top_contributors"] for a in found)
    recent = otto.get("/api/alerts?since=2h").json()["alerts"]
    assert recent and all(a["window_end"] >= "2026-03-02T10:00" for a in recent)
    scores = [
        a["max_score"] for a in otto.get("/api/alerts?sort=score&order=desc").json()["alerts"]
    ]
    assert scores == sorted(scores, reverse=True)
    bad = otto.get("/api/alerts?sort=colour")
    assert bad.status_code == 422 and "sort must be one of" in bad.json()["detail"]
    assert otto.get("/api/alerts?since=yesterday").status_code == 422


def test_an_alert_links_to_its_dagster_run_and_mlflow_versions(world, as_user):
    links = as_user("vera", "viewer").get(f"/api/alerts/{world.id_of('dev-003')}").json()["links"]
    assert links["dagster_run"].endswith("/runs/run-1")
    assert any(
        m["url"].endswith("/#/models/statistical_baseline/versions/3") for m in links["models"]
    )


def test_single_user_mode_acts_as_the_local_admin_from_loopback_only(world, tmp_path, policy):
    app = create_app(
        world.url,
        world.data_dir,
        settings=operations(tmp_path),
        clock=world.clock,
        access=policy,
        single_user="local-ana",
    )
    with TestClient(app, base_url=CONSOLE_BASE, client=("127.0.0.1", 5000)) as local:
        assert local.get("/api/me").json() == {
            "name": "local-ana",
            "role": "admin",
            "via": "single-user",
        }
        done = local.post(f"/api/alerts/{world.id_of('dev-002')}/acknowledge", json={})
        assert done.json()["alert"]["acknowledged_by"] == "local-ana"
    with TestClient(app, base_url=CONSOLE_BASE, client=("10.1.0.7", 5000)) as remote:
        assert remote.get("/api/me").status_code == 403


def test_the_main_list_shows_incidents_with_their_alerts_one_step_away(world, as_user):
    otto, vera = as_user("otto"), as_user("vera", "viewer")
    listing = vera.get("/api/incidents").json()
    assert listing["total"] == 5 and not listing["truncated"]
    first = listing["items"][0]
    assert {"cause", "severity", "site_id", "explanation", "alert_count"} <= set(first)
    detail = vera.get(f"/api/incidents/{first['incident_id']}").json()
    alert_ids = [e["alert_id"] for e in detail["timeline"] if e["alert_id"]]
    assert alert_ids and vera.get(f"/api/alerts/{alert_ids[0]}").status_code == 200
    page = vera.get("/").text
    assert first["incident_id"] in page and 'href="/alerts"' in page
    refused = vera.post(f"/api/incidents/{first['incident_id']}/acknowledge", json={})
    assert refused.status_code == 403
    done = otto.post(f"/api/incidents/{first['incident_id']}/acknowledge", json={"note": "on it"})
    assert done.json()["incident"]["acknowledged_by"] == "otto"
    # Its alerts follow, named after the same identity.
    assert vera.get(f"/api/alerts/{alert_ids[0]}").json()["alert"]["acknowledged_by"] == "otto"
    fp = otto.post(f"/api/incidents/{first['incident_id']}/false-positive", json={"note": ""})
    assert fp.status_code == 422
    rest = [i["incident_id"] for i in listing["items"][1:4]]
    bulk = otto.post("/api/incidents/bulk", json={"action": "acknowledge", "incident_ids": rest})
    assert bulk.json()["done"] == rest
    site_b = vera.get("/api/incidents?site=site-B&sort=started&order=asc").json()["items"]
    starts = [i["first_window_start"] for i in site_b]
    assert {i["site_id"] for i in site_b} == {"site-B"} and starts == sorted(starts)
    silenced = otto.post(
        "/api/silences",
        json={"matcher": "site", "value": "site-B", "minutes": 60, "reason": "site visit"},
    )
    assert silenced.status_code == 201
    assert {i["site_id"] for i in vera.get("/api/incidents").json()["items"]} == {"site-A"}
    sites = vera.get("/api/sites").json()["items"]
    assert [s["site_id"] for s in sites] == ["site-A"]
