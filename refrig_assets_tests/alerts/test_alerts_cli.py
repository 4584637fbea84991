"""``refrig alerts`` and alert notifications, end to end against a real SQLite file.

The CLI finds its database through ``REFRIG_ALERTS_DB_URL`` / ``REFRIG_HOME`` like in production;
the webhook notifier posts to a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest
from typer.testing import CliRunner

from refrig_assets.alerts.delivery import deliver_due
from refrig_assets.alerts.notify import (
    DeliveryFailed,
    LogNotifier,
    Notifier,
    WebhookNotifier,
    notifier_from_env,
)
from refrig_assets.alerts.store import LIFECYCLE_COLUMNS, AlertStore
from refrig_assets.cli import app
from refrig_assets.core.config import config_path, read_yaml
from refrig_assets.core.contracts import load_contract

ALERT_POLICY = read_yaml(config_path("alerts"))

CONTRACT = load_contract("device_alerts")
SLA_MINUTES = ALERT_POLICY["sla_minutes"]
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
runner = CliRunner()


def make_alerts(severities: list[str], **columns) -> pd.DataFrame:
    """One alert per severity, every device_alerts contract column filled; kwargs override."""
    n = len(severities)
    filler = {
        "string": lambda name, i: f"{name}-{i}",
        "timestamp": lambda name, i: T0,
        "float": lambda name, i: 0.9,
        "int": lambda name, i: 2,
        "bool": lambda name, i: False,
    }
    frame = pd.DataFrame(
        {
            c.name: [c.allowed[0] if c.allowed else filler[c.type](c.name, i) for i in range(n)]
            for c in CONTRACT.columns
        }
    )
    frame["severity"] = severities
    frame["sla_deadline"] = T0 + pd.to_timedelta(frame["severity"].map(SLA_MINUTES), unit="min")
    for name, value in columns.items():
        assert name in CONTRACT.column_names, name
        frame[name] = value
    return frame


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    monkeypatch.setenv("REFRIG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REFRIG_ALERTS_DB_URL", url)
    monkeypatch.delenv("REFRIG_WEBHOOK_URL", raising=False)
    return url


@pytest.fixture
def store(db_url) -> AlertStore:
    s = AlertStore(db_url)
    s.upsert(
        make_alerts(
            ["LOW", "CRITICAL", "HIGH", "MEDIUM"],
            site_id=["s1", "s1", "s2", "s2"],
            suppressed=[False, False, False, True],
        )
    )
    yield s
    s.close()


def refrig(*args: str):
    return runner.invoke(app, ["alerts", *args])


@pytest.fixture
def webhook():
    """A local HTTP server recording every JSON body POSTed to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers["Content-Length"])
            received.append(
                {
                    **json.loads(self.rfile.read(length)),
                    "key": self.headers["Idempotency-Key"],
                }
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):  # keep test output quiet
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


# -- list -----------------------------------------------------------------------------------


def test_list_table_shows_unsuppressed_alerts_most_severe_first(store):
    result = refrig("list")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["Alert", "Severity", "Status"]
    assert "Explanation" in lines[0]
    rows = [line.split() for line in lines[1:] if line.startswith("alert_id-")]
    assert [row[1] for row in rows] == ["CRITICAL", "HIGH", "LOW"]
    assert all("0.90" in row for row in rows)  # scores rounded to 2 decimals
    assert "alert_id-3" not in result.stdout  # suppressed
    assert "3 alert(s)" in result.stdout


def test_list_table_fits_the_terminal_width(store, monkeypatch):
    store.upsert(make_alerts(["HIGH"], alert_id=["alert_id-9"], explanation=["word " * 60]))
    for width in (72, 100, 160):
        monkeypatch.setenv("COLUMNS", str(width))
        lines = refrig("list").stdout.splitlines()
        assert max(len(line) for line in lines) <= width
        # the explanation wraps within the width: every word is there
        assert sum(line.count("word") for line in lines) == 60


def test_list_defaults_to_open_and_acknowledged_like_the_console(store):
    refrig("resolve", "alert_id-1", "--by", "bob")
    assert "alert_id-1" not in refrig("list").stdout
    assert "alert_id-1" in refrig("list", "--status", "all").stdout


def test_list_all_includes_suppressed_alerts(store):
    assert "alert_id-3" in refrig("list", "--all").stdout


def test_list_json_carries_every_column_in_order(store):
    result = refrig("list", "--format", "json")

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["alert_id"] for r in rows] == ["alert_id-1", "alert_id-2", "alert_id-0"]
    assert set(rows[0]) == set(CONTRACT.column_names) | set(LIFECYCLE_COLUMNS)
    assert rows[0]["status"] == "OPEN"
    assert pd.Timestamp(rows[0]["sla_deadline"]) == T0 + timedelta(minutes=SLA_MINUTES["CRITICAL"])


def test_list_csv_is_machine_readable(store):
    result = refrig("list", "--format", "csv", "--all")

    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert list(frame["severity"]) == ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    assert set(frame.columns) == set(CONTRACT.column_names) | set(LIFECYCLE_COLUMNS)


def test_list_filters_are_case_insensitive_and_combine(store):
    result = refrig("list", "--severity", "high", "--status", "open", "--format", "json")
    assert [r["alert_id"] for r in json.loads(result.stdout)] == ["alert_id-2"]

    by_site = json.loads(refrig("list", "--site", "s1", "--format", "json").stdout)
    assert [r["alert_id"] for r in by_site] == ["alert_id-1", "alert_id-0"]
    by_device = json.loads(refrig("list", "--device", "device_id-0", "--format", "json").stdout)
    assert [r["alert_id"] for r in by_device] == ["alert_id-0"]
    limited = json.loads(refrig("list", "--limit", "1", "--format", "json").stdout)
    assert [r["alert_id"] for r in limited] == ["alert_id-1"]


def test_list_on_an_empty_database_says_so(db_url):
    result = refrig("list")
    assert result.exit_code == 0
    assert "No alerts match." in result.stdout


def test_list_rejects_an_unknown_severity(store):
    result = refrig("list", "--severity", "urgent")
    assert result.exit_code == 1
    assert "--severity must be one of CRITICAL, HIGH, MEDIUM, LOW" in result.stderr


def test_default_database_lives_under_refrig_home(tmp_path, monkeypatch):
    monkeypatch.delenv("REFRIG_ALERTS_DB_URL", raising=False)
    monkeypatch.setenv("REFRIG_HOME", str(tmp_path / "home"))
    assert refrig("list").exit_code == 0
    assert (tmp_path / "home" / "alerts.db").exists()


# -- lifecycle ------------------------------------------------------------------------------


def test_ack_then_resolve_through_the_cli(store):
    ack = refrig("ack", "alert_id-1", "--by", "alice", "--note", "technician dispatched")
    assert ack.exit_code == 0, ack.output
    assert "acknowledged by alice" in ack.stdout
    alert = store.get("alert_id-1")
    assert (alert["status"], alert["acknowledged_by"]) == ("ACKNOWLEDGED", "alice")

    resolved = refrig("resolve", "alert_id-1", "--by", "bob")
    assert resolved.exit_code == 0, resolved.output
    assert store.get("alert_id-1")["status"] == "RESOLVED"
    trail = [(h["actor"], h["to_status"], h["note"]) for h in store.history("alert_id-1")]
    assert trail[1:] == [
        ("alice", "ACKNOWLEDGED", "technician dispatched"),
        ("bob", "RESOLVED", ""),
    ]


def test_false_positive_through_the_cli(store):
    result = refrig("false-positive", "alert_id-2", "--by", "carol", "--note", "defrost cycle")
    assert result.exit_code == 0, result.output
    assert store.get("alert_id-2")["status"] == "FALSE_POSITIVE"
    assert store.history("alert_id-2")[-1]["note"] == "defrost cycle"


def test_show_prints_the_alert_and_its_history(store):
    refrig("ack", "alert_id-1", "--by", "alice", "--note", "looking")
    result = refrig("show", "alert_id-1")

    assert result.exit_code == 0, result.output
    assert "severity" in result.stdout and "CRITICAL" in result.stdout
    assert "history:" in result.stdout
    assert "OPEN -> ACKNOWLEDGED" in result.stdout and "alice  looking" in result.stdout


def test_a_disallowed_transition_exits_1_with_a_clear_message(store):
    refrig("resolve", "alert_id-1", "--by", "bob")
    result = refrig("ack", "alert_id-1", "--by", "alice")

    assert result.exit_code == 1
    assert "alert alert_id-1 is RESOLVED; cannot move it to ACKNOWLEDGED" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["show", "nope"],
        ["ack", "nope", "--by", "alice"],
        ["resolve", "nope", "--by", "alice"],
        ["false-positive", "nope", "--by", "alice", "--note", "door"],
    ],
)
def test_an_unknown_alert_id_exits_1(store, args):
    result = refrig(*args)
    assert result.exit_code == 1
    assert "no alert with id 'nope'" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_actor_falls_back_to_refrig_actor(store, monkeypatch):
    monkeypatch.setenv("REFRIG_ACTOR", "night-shift")
    assert refrig("ack", "alert_id-1").exit_code == 0
    assert store.get("alert_id-1")["acknowledged_by"] == "night-shift"
    assert refrig("resolve", "alert_id-2").exit_code == 0
    assert store.history("alert_id-2")[-1]["actor"] == "night-shift"


def test_a_false_positive_needs_a_note(store):
    result = refrig("false-positive", "alert_id-2", "--by", "carol", "--note", " ")
    assert result.exit_code == 1 and "--note must say why" in result.stderr
    assert store.get("alert_id-2")["status"] == "OPEN"


def test_an_unreachable_database_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REFRIG_ALERTS_DB_URL", "nosuchdialect://x")
    result = refrig("list")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")


# -- SLA ------------------------------------------------------------------------------------


def test_check_sla_reports_escalations_and_posts_them(store, webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv("REFRIG_WEBHOOK_URL", url)
    just_after = T0 + timedelta(minutes=SLA_MINUTES["CRITICAL"], seconds=1)

    result = refrig("check-sla", "--now", just_after.isoformat())

    assert result.exit_code == 0, result.output
    assert "1 alert(s) breached or escalated" in result.stdout
    assert "alert_id-1" in result.stdout and "L1 -> L2" in result.stdout
    assert [(r["event"], r["payload"]["alert_id"]) for r in received] == [
        ("alert.escalated", "alert_id-1")
    ]
    assert received[0]["payload"]["escalation_level"] == "L2"

    again = refrig("check-sla", "--now", just_after.isoformat())
    assert "No new SLA breaches" in again.stdout


def test_check_sla_rejects_a_malformed_time(store):
    result = refrig("check-sla", "--now", "yesterday")
    assert result.exit_code == 1
    assert "--now is not an ISO 8601 time" in result.stderr


# -- notifications --------------------------------------------------------------------------


# Notifications are per incident: a streaming firing of a rule whose probable cause is CRITICAL
# (HIGH, MEDIUM) opens an incident of that severity on its device.
RULE_OF = {"CRITICAL": "total_cooling_loss", "HIGH": "acute_pressure_loss", "MEDIUM": "door_ajar"}


def paging_alerts(severities: list[str], **columns) -> pd.DataFrame:
    """Streaming alerts, one per severity and device, that open incidents of that severity."""
    explanations = [f"{RULE_OF.get(s, 'unmapped')}: fired" for s in severities]
    return make_alerts(severities, source="streaming", explanation=explanations, **columns)


@pytest.fixture
def causes(monkeypatch):
    from support.incident_world import CAUSES

    monkeypatch.setattr("refrig_assets.incidents.build.cause_table", lambda: CAUSES)


def test_new_critical_and_high_incidents_are_queued_with_the_alert_and_posted_once(
    db_url, webhook, causes
):
    url, received = webhook
    store = AlertStore(db_url)
    alerts = paging_alerts(
        ["CRITICAL", "HIGH", "MEDIUM", "LOW", "CRITICAL"],
        suppressed=[False, False, False, False, True],
    )

    assert store.upsert(alerts, notify=True)["queued"] == 2
    report = deliver_due(store, WebhookNotifier(url, timeout=5))

    assert report.delivered == 2
    assert [r["event"] for r in received] == ["incident.opened", "incident.opened"]
    received.sort(key=lambda r: r["payload"]["device_id"])
    first = received[0]["payload"]
    assert (first["device_id"], first["site_id"], first["severity"], first["cause"]) == (
        "device_id-0",
        "site_id-0",
        "CRITICAL",
        "total_cooling_loss",
    )
    assert received[0]["key"] == f"incident:{first['incident_id']}:CRITICAL"
    assert received[1]["payload"]["severity"] == "HIGH"
    assert deliver_due(store, WebhookNotifier(url, timeout=5)).delivered == 0


def test_only_incidents_new_to_the_store_are_notified(db_url, webhook, causes):
    url, received = webhook
    store = AlertStore(db_url)
    frame = paging_alerts(["CRITICAL", "HIGH"])
    store.upsert(frame.iloc[:1])  # without notify: a caller that does not page

    result = store.upsert(frame, notify=True)
    deliver_due(store, WebhookNotifier(url, timeout=5))

    assert result["queued"] == 1
    assert [r["payload"]["device_id"] for r in received] == ["device_id-1"]


def test_a_refused_webhook_raises_a_delivery_failure_without_its_secrets():
    # Port 9 (discard) on localhost: nothing listens, the connection is refused at once.
    notifier = WebhookNotifier(
        "http://127.0.0.1:9/hooks/T0123/XyZsecretTokenValue42?token=abc123", 1
    )

    with pytest.raises(DeliveryFailed) as failed:
        notifier.post("alert.created", {"alert_id": "a"}, key="alert.created:a")

    message = str(failed.value)
    assert "refused" in message.lower()
    assert "XyZsecretTokenValue42" not in message and "abc123" not in message
    assert "POST http://127.0.0.1:9/hooks/T0123/***?token=***: " in message


def test_notifier_from_env_is_log_only_unless_a_webhook_is_set(monkeypatch, caplog):
    monkeypatch.delenv("REFRIG_WEBHOOK_URL", raising=False)
    notifier = notifier_from_env()
    assert isinstance(notifier, LogNotifier) and isinstance(notifier, Notifier)
    with caplog.at_level(logging.INFO):
        notifier.post("alert.escalated", {"alert_id": "a", "escalation_level": "L3"}, key="k1")
    assert "alert.escalated [k1]" in caplog.text and '"escalation_level": "L3"' in caplog.text

    monkeypatch.setenv("REFRIG_WEBHOOK_URL", "http://127.0.0.1:1/x")
    webhook = notifier_from_env()
    assert isinstance(webhook, WebhookNotifier)
    assert webhook.timeout == ALERT_POLICY["notifications"]["timeout_seconds"]
    monkeypatch.setenv("REFRIG_WEBHOOK_TIMEOUT", "0.5")
    assert notifier_from_env().timeout == 0.5


# -- the outbox on the command line ---------------------------------------------------------


def test_deliver_sends_what_is_due_and_outbox_lists_dead_letters(db_url, monkeypatch, causes):
    store = AlertStore(db_url)
    store.upsert(paging_alerts(["CRITICAL"]), notify=True)
    monkeypatch.setenv("REFRIG_WEBHOOK_URL", "http://127.0.0.1:9/hook?token=abcdef123")
    attempts = ALERT_POLICY["notifications"]["max_attempts"]
    later = datetime.now(UTC)

    for _ in range(attempts):  # each --now is past any backoff
        later += timedelta(days=1)
        result = refrig("deliver", "--now", later.isoformat())
        assert result.exit_code == 0, result.output

    assert "0 delivered, 0 to retry, 1 dead this pass" in result.stdout
    dead = refrig("outbox", "--status", "dead")
    assert dead.exit_code == 0, dead.output
    assert "0 pending, 0 delivered, 1 dead." in dead.stdout
    assert "incident.opened" in dead.stdout and "incident:inc-" in dead.stdout
    assert f"attempts {attempts}" in dead.stdout
    assert "last error: attempt" in dead.stdout and "abcdef123" not in dead.stdout

    requeued = refrig("outbox", "--retry-dead")
    assert "1 dead letter(s) requeued." in requeued.stdout
    assert store.outbox.counts() == {"pending": 1, "delivered": 0, "dead": 0}


def test_outbox_rejects_an_unknown_status(db_url):
    result = refrig("outbox", "--status", "lost")
    assert result.exit_code == 1
    assert "--status must be one of pending, delivered, dead" in result.stderr
