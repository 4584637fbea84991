"""The notification outbox: queued in the alert change's own transaction, once per dedup key, and
delivered to a real HTTP endpoint that fails, hangs and answers garbage before it recovers —
every notification exactly once after recovery, none lost, retries backing off, dead letters kept
with their last error (secrets masked).

Tests taking ``store`` run on a SQLite file and, when ``REFRIG_TEST_POSTGRES_URL`` is set, on
PostgreSQL too.
"""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from support.incident_world import CAUSES

from refrig_assets.alerts.delivery import deliver_due
from refrig_assets.alerts.notify import WebhookNotifier, mask_secrets, masked_url
from refrig_assets.alerts.severity import alert_policy
from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.contracts import load_contract
from refrig_assets.incidents.repository import IncidentStore
from tools.chaos.webhook import start_webhook, stop_webhook

pytestmark = pytest.mark.fault_injection

CONTRACT = load_contract("device_alerts")
POLICY = alert_policy()
NOTIFY = POLICY.notifications
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POSTGRES_URL = os.environ.get("REFRIG_TEST_POSTGRES_URL")
# Short enough for a test, far shorter than the endpoint's hang.
TIMEOUT = 0.3


# Notifications are per incident: each alert is a streaming firing of a rule whose probable
# cause has the alert's severity, so its incident opens at that severity.
RULE_OF = {"CRITICAL": "total_cooling_loss", "HIGH": "acute_pressure_loss", "MEDIUM": "door_ajar"}


@pytest.fixture(autouse=True)
def causes(monkeypatch):
    monkeypatch.setattr("refrig_assets.incidents.build.cause_table", lambda: CAUSES)


def page(store: AlertStore, alert_id: str) -> str:
    """The dedup key of the page about the incident ``alert_id`` opened."""
    incidents = IncidentStore(store)
    incident = incidents.get(incidents.incident_for_alert(alert_id))
    return f"incident:{incident['incident_id']}:{incident['severity']}"


def make_alerts(severities: list[str], **columns) -> pd.DataFrame:
    """Contract-complete streaming alerts raised at T0, one per severity, each on its own device
    (so each opens an incident of that severity); keyword args override columns."""
    n = len(severities)
    fill = {"string": "x", "timestamp": T0, "float": 0.9, "int": 2, "bool": False}
    frame = pd.DataFrame(
        {c.name: [c.allowed[0] if c.allowed else fill[c.type]] * n for c in CONTRACT.columns}
    )
    frame["alert_id"] = [f"a{i}" for i in range(n)]
    frame["device_id"] = [f"d{i}" for i in range(n)]
    frame["severity"] = severities
    frame["source"] = "streaming"
    frame["explanation"] = [f"{RULE_OF.get(sev, 'unmapped')}: fired" for sev in severities]
    minutes = frame["severity"].map(POLICY.sla_minutes)
    frame["sla_deadline"] = T0 + pd.to_timedelta(minutes, unit="min")
    for name, value in columns.items():
        frame[name] = value
    return frame


class Clock:
    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", *(["postgresql"] if POSTGRES_URL else [])])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}" if request.param == "sqlite" else POSTGRES_URL
    s = AlertStore(url, clock=Clock())
    s.metadata.drop_all(s.engine)
    yield s
    s.metadata.drop_all(s.engine)
    s.close()


@pytest.fixture
def hook():
    h = start_webhook(hang_seconds=1.0)
    yield h
    stop_webhook(h)


def rows(store: AlertStore) -> dict[str, dict]:
    return {r["dedup_key"]: r for r in store.outbox.list()}


# -- queued with the alert change -------------------------------------------------------------


def test_new_critical_and_high_alerts_and_escalations_are_queued_once_per_key(store):
    alerts = make_alerts(["CRITICAL", "HIGH", "MEDIUM", "CRITICAL"], suppressed=[0, 0, 0, 1])
    alerts["suppressed"] = alerts["suppressed"].astype(bool)

    first = store.upsert(alerts, notify=True)
    again = store.upsert(alerts, notify=True)  # a re-run of the same partition
    past_deadline = T0 + timedelta(minutes=POLICY.sla_minutes["CRITICAL"], seconds=1)
    store.check_sla(past_deadline)
    store.check_sla(past_deadline)  # nothing new

    assert (first["queued"], again["queued"]) == (2, 0)
    # one page per incident (a3 was suppressed by an operator: linked, not paged)
    assert sorted(rows(store)) == sorted(
        [page(store, "a0"), page(store, "a1"), "alert.escalated:a0:L2"]
    )
    escalated = rows(store)["alert.escalated:a0:L2"]
    assert (escalated["status"], escalated["attempts"], escalated["alert_id"]) == (
        "pending",
        0,
        "a0",
    )
    assert escalated["payload"]["previous_escalation_level"] == "L1"


def test_new_alerts_of_a_historic_backfill_are_stored_but_not_queued(store):
    cutoff = NOTIFY.historic_cutoff
    store._clock = Clock(T0 + cutoff + timedelta(minutes=1))  # windows ended at T0: historic
    old = make_alerts(["CRITICAL", "HIGH"], window_end=T0)
    live = make_alerts(["CRITICAL"], window_end=T0 + cutoff)
    live["alert_id"], live["device_id"] = ["live"], ["d9"]

    counts = store.upsert(
        pd.concat([old, live], ignore_index=True), notify=True, hold_historic=True
    )

    assert (counts["inserted"], counts["queued"], counts["held_historic"]) == (3, 1, 2)
    assert sorted(rows(store)) == [page(store, "live")]
    assert store.get("a0")["status"] == "OPEN"
    # without hold_historic (streaming alerts are live by nature) nothing is held back
    other = make_alerts(["CRITICAL"], window_end=T0)
    other["alert_id"] = ["streamed"]
    assert store.upsert(other, notify=True)["queued"] == 1


def test_a_notification_exists_only_if_its_alert_was_committed(tmp_path):
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}", clock=Clock())
    store.outbox.counts()  # creates the tables
    with store.engine.begin() as conn:  # the outbox write fails inside the alert's transaction
        conn.exec_driver_sql(
            "CREATE TRIGGER no_outbox BEFORE INSERT ON notification_outbox "
            "BEGIN SELECT RAISE(ABORT, 'outbox unavailable'); END"
        )

    with pytest.raises(sa.exc.DatabaseError, match="outbox unavailable"):
        store.upsert(make_alerts(["CRITICAL"]), notify=True)

    assert store.get("a0") is None  # rolled back together: no alert without its notification
    assert store.history("a0") == []


def test_more_breaches_than_the_digest_threshold_are_one_digest(store):
    many = POLICY.sla_monitor.digest_above + 1
    store.upsert(make_alerts(["CRITICAL"] * many))

    changed = store.check_sla(T0 + timedelta(minutes=POLICY.sla_minutes["CRITICAL"], seconds=1))

    assert len(changed) == many
    [digest] = store.outbox.list()
    assert digest["event"] == "alert.sla_digest" and digest["alert_id"] is None
    assert digest["payload"]["alerts"] == many
    assert digest["payload"]["by_escalation_level"] == {"L2": many}
    assert {a["notification"] for a in changed} == {digest["dedup_key"]}


# -- delivery -------------------------------------------------------------------------------


def test_every_notification_is_delivered_exactly_once_after_the_endpoint_recovers(store, hook):
    store.upsert(make_alerts(["CRITICAL", "CRITICAL", "HIGH", "HIGH"]), notify=True)
    store.check_sla(T0 + timedelta(minutes=POLICY.sla_minutes["CRITICAL"], seconds=1))
    queued = sorted(rows(store))
    assert len(queued) == 6  # four creations, two escalations
    notifier = WebhookNotifier(hook.url, timeout=TIMEOUT)
    at = T0
    errors: dict[str, list[str]] = {}

    for mode in ("fail", "hang", "garbage"):
        hook.mode = mode
        at += NOTIFY.max_delay  # every retry is due
        started = time.monotonic()
        report = deliver_due(store, notifier, now=at)
        errors[mode] = report.errors
        assert report.delivered == 0
        assert time.monotonic() - started < (NOTIFY.stop_after_failures + 1) * TIMEOUT + 1
    assert hook.accepted == []

    hook.mode = "ok"
    for _ in range(len(queued)):  # passes until nothing is due
        at += NOTIFY.max_delay
        if deliver_due(store, notifier, now=at).delivered == 0:
            break

    assert sorted(hook.keys()) == queued  # each exactly once, none lost
    assert store.outbox.counts() == {"pending": 0, "delivered": len(queued), "dead": 0}
    assert deliver_due(store, notifier, now=at + NOTIFY.max_delay).delivered == 0
    assert hook.requests == sum(r["attempts"] for r in store.outbox.list())
    assert all("HTTP Error 500" in e for e in errors["fail"])
    assert all("timed out" in e for e in errors["hang"])
    assert all("BadStatusLine" in e for e in errors["garbage"])


def test_a_failing_notification_backs_off_then_is_dead_with_its_last_error(store, hook):
    hook.mode = "fail"
    store.upsert(make_alerts(["CRITICAL"]), notify=True)
    secret_url = f"{hook.url}/T0123/B0456/AbCdEfGhIjKlMnOpQrStUvWx?token=s3cr3t-t0ken"
    notifier = WebhookNotifier(secret_url, timeout=TIMEOUT)
    at = T0
    delays = []

    for attempt in range(1, NOTIFY.max_attempts + 1):
        [row] = store.outbox.list()
        early = deliver_due(store, notifier, now=row["next_attempt_at"] - timedelta(seconds=1))
        assert early.delivered + early.retrying + early.dead == 0  # not before its time
        at = row["next_attempt_at"]
        report = deliver_due(store, notifier, now=at)
        [row] = store.outbox.list()
        assert row["attempts"] == attempt
        if row["status"] == "pending":
            delays.append((row["next_attempt_at"] - at).total_seconds())

    expected = [NOTIFY.retry_delay(n).total_seconds() for n in range(1, NOTIFY.max_attempts)]
    assert delays == expected
    assert delays[:2] == [NOTIFY.base_delay.total_seconds(), 2 * NOTIFY.base_delay.total_seconds()]
    assert max(delays) <= NOTIFY.max_delay.total_seconds()
    assert (report.dead, report.dead_letters) == (1, 1)
    [dead] = store.outbox.list(status="dead")
    assert dead["last_error"].startswith(f"attempt {NOTIFY.max_attempts}/{NOTIFY.max_attempts}")
    assert "HTTP Error 500" in dead["last_error"]
    assert "AbCdEfGhIjKlMnOpQrStUvWx" not in dead["last_error"]
    assert "s3cr3t-t0ken" not in dead["last_error"]
    assert "/T0123/B0456/***?token=***" in dead["last_error"]
    assert deliver_due(store, notifier, now=at + NOTIFY.max_delay).retrying == 0  # never again
    assert hook.requests == NOTIFY.max_attempts


def test_a_refused_connection_is_one_failed_attempt_not_an_error(store):
    store.upsert(make_alerts(["CRITICAL"]), notify=True)

    report = deliver_due(store, WebhookNotifier("http://127.0.0.1:9/hook", TIMEOUT), now=T0)

    assert (report.delivered, report.retrying) == (0, 1)
    assert "refused" in store.outbox.list()[0]["last_error"].lower()


def test_a_hanging_endpoint_costs_one_pass_a_few_timeouts_and_the_rest_wait(store, hook):
    hook.mode = "hang"
    store.upsert(make_alerts(["CRITICAL"] * 10), notify=True)

    started = time.monotonic()
    report = deliver_due(store, WebhookNotifier(hook.url, timeout=TIMEOUT), now=T0)

    assert time.monotonic() - started < (NOTIFY.stop_after_failures + 1) * TIMEOUT + 1
    assert report.retrying == NOTIFY.stop_after_failures
    assert report.left_for_next_pass == 10 - NOTIFY.stop_after_failures
    untried = [r for r in store.outbox.list() if r["attempts"] == 0]
    assert len(untried) == 10 - NOTIFY.stop_after_failures


def test_a_pass_stops_at_its_time_budget(store, hook):
    store.upsert(make_alerts(["CRITICAL"] * 3), notify=True)
    no_time = dataclasses.replace(NOTIFY, pass_budget_seconds=0.0)

    report = deliver_due(store, WebhookNotifier(hook.url, TIMEOUT), now=T0, policy=no_time)

    assert report.delivered == 1 and report.left_for_next_pass == 2


def test_a_claimed_notification_is_sent_by_one_deliverer_only_and_retried_if_it_died(store, hook):
    store.upsert(make_alerts(["CRITICAL"]), notify=True)
    [row] = store.outbox.due(T0, 10)
    retry_at = T0 + NOTIFY.retry_delay(1)

    assert store.outbox.claim(row, T0, retry_at)  # a deliverer takes it, then dies mid-send
    assert not store.outbox.claim(row, T0, retry_at)  # a second one cannot take it again
    notifier = WebhookNotifier(hook.url, timeout=TIMEOUT)
    assert deliver_due(store, notifier, now=T0).delivered == 0
    assert deliver_due(store, notifier, now=retry_at).delivered == 1

    assert hook.keys() == [page(store, "a0")]
    assert store.outbox.list()[0]["attempts"] == 2


def test_a_last_attempt_whose_outcome_was_never_recorded_is_dead(store):
    store.upsert(make_alerts(["CRITICAL"]), notify=True)
    with store.engine.begin() as conn:
        conn.execute(store.outbox_table.update().values(attempts=NOTIFY.max_attempts))

    report = deliver_due(store, WebhookNotifier("http://127.0.0.1:9/x", TIMEOUT), now=T0)

    assert report.dead == 1
    assert "interrupted" in store.outbox.list(status="dead")[0]["last_error"]


def test_secrets_of_webhook_urls_are_masked():
    slack = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
    assert masked_url(slack) == "https://hooks.slack.com/services/T00000000/B00000000/***"
    assert masked_url("https://bot:pw@example.com:8443/h?token=abc&x=1#frag") == (
        "https://bot:***@example.com:8443/h?token=***&x=***"
    )
    assert masked_url("https://sk_live_abc@example.com/h") == "https://***@example.com/h"
    text = f"POST {slack}: boom, token XXXXXXXXXXXXXXXXXXXXXXXX"
    assert "XXXXXXXXXXXXXXXXXXXXXXXX" not in mask_secrets(text, ["XXXXXXXXXXXXXXXXXXXXXXXX"])


# -- the delivery sensor ----------------------------------------------------------------------


def test_the_delivery_sensor_delivers_and_counts_dead_letters(refrig_home, hook, monkeypatch):
    from refrig_assets.core.settings import get_settings
    from refrig_assets.defs.alerts.delivery import alert_notification_delivery
    from refrig_assets.defs.shared.resources import RefrigResource

    monkeypatch.setenv("REFRIG_WEBHOOK_URL", hook.url)
    store = AlertStore(get_settings().alerts_db_url)
    alerts = make_alerts(["CRITICAL", "HIGH"])
    store.upsert(alerts.iloc[:1], notify=True)
    hook.mode = "fail"
    later = datetime.now(UTC)
    for _ in range(NOTIFY.max_attempts):  # the first alert's notification dies
        later += NOTIFY.max_delay
        deliver_due(store, WebhookNotifier(hook.url, TIMEOUT), now=later)
    assert store.outbox.counts()["dead"] == 1
    store.upsert(alerts, notify=True)  # the second alert's is due at once
    hook.mode = "ok"

    context = dg.build_sensor_context(resources={"refrig": RefrigResource()})
    result = alert_notification_delivery(context)

    assert isinstance(result, dg.SkipReason)
    assert "1 delivered" in result.skip_message
    assert "1 dead" in result.skip_message
    assert "refrig alerts outbox --status dead" in result.skip_message
    assert hook.keys() == [page(store, "a1")]


def test_webhooks_authenticate_by_header_and_signature_without_secrets_in_urls(
    store, hook, monkeypatch, caplog
):
    import hmac

    from refrig_assets.alerts.notify import notifier_from_env

    token, secret = "Bearer tok-3f9a1c0e77d2", "sig-secret-5b2e9d41"
    monkeypatch.setenv("REFRIG_WEBHOOK_URL", hook.url)
    monkeypatch.setenv(NOTIFY.auth_header_env or "", token)
    monkeypatch.setenv(NOTIFY.signing_secret_env or "", secret)
    store.upsert(make_alerts(["CRITICAL", "HIGH"]), notify=True)
    notifier = notifier_from_env()

    hook.mode = "fail"
    deliver_due(store, notifier, now=T0)
    hook.mode = "ok"
    deliver_due(store, notifier, now=T0 + timedelta(hours=1))

    assert len(hook.accepted) == 2
    for received in hook.accepted:
        headers = received["headers"]
        assert headers["Authorization"] == token
        stamp = headers["X-Refrig-Timestamp"]
        expected = hmac.new(secret.encode(), f"{stamp}.".encode() + received["raw"], "sha256")
        assert headers["X-Refrig-Signature"] == f"sha256={expected.hexdigest()}"
    stored = str(store.outbox.list()) + caplog.text
    assert "failed" in caplog.text or any(r["last_error"] for r in store.outbox.list())
    assert token not in stored and "tok-3f9a1c0e77d2" not in stored and secret not in stored
