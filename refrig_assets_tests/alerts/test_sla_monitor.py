"""The ``alert_sla_monitor`` sensor against a real alert database and a real webhook: it only
records breaches and escalations (and the notifications they cause) and can never be failed by
the endpoint; after a (re)start it waits a grace period, it moves an alert one level per tick,
it sends one digest when many alerts breach at once, and it never pages for a historic backfill."""

from __future__ import annotations

import shutil

import dagster as dg
import pandas as pd
import pytest
import yaml

from refrig_assets.alerts.severity import alert_policy
from refrig_assets.alerts.sla_monitor import MonitorState
from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.config import ConfigError, config_dir
from refrig_assets.core.settings import get_settings
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.streaming.alerts import firings_to_alerts
from refrig_assets.streaming.config import load_streaming_settings
from tools.chaos.webhook import start_webhook, stop_webhook

pytestmark = pytest.mark.fault_injection

SLA = alert_policy().sla_monitor


@pytest.fixture
def webhook(monkeypatch):
    hook = start_webhook(hang_seconds=1.5)
    monkeypatch.setenv("REFRIG_WEBHOOK_URL", hook.url)
    monkeypatch.setenv("REFRIG_WEBHOOK_TIMEOUT", "1")
    yield hook
    stop_webhook(hook)


@pytest.fixture
def store(refrig_home):
    s = AlertStore(get_settings().alerts_db_url)
    yield s
    s.close()


def overdue_alerts(store: AlertStore, devices: int, age: pd.Timedelta) -> list[str]:
    """``devices`` CRITICAL streaming alerts raised ``age`` ago (30 min SLA), stored."""
    at = pd.Timestamp.now(tz="UTC").floor("s") - age
    firings = pd.DataFrame(
        {
            "device_id": [f"d{i:03d}" for i in range(devices)],
            "rule": "compressor_overload",
            "kind": "above",
            "sensor": "current_compressor",
            "ts": at,
            "observed": 55.0,
            "reference": 40.0,
            "threshold": 40.0,
            "span_minutes": 0.0,
            "running": 1,
        }
    )
    alerts = firings_to_alerts(firings, None, load_streaming_settings(), run_id="sensor")
    return store.upsert(alerts)["inserted_ids"]


def sla_tick(cursor: str | None = None):
    from refrig_assets.defs.alerts.sla_monitor import alert_sla_monitor

    context = dg.build_sensor_context(cursor=cursor, resources={"refrig": RefrigResource()})
    return alert_sla_monitor(context), context.cursor


def deliver():
    from refrig_assets.defs.alerts.delivery import alert_notification_delivery

    context = dg.build_sensor_context(resources={"refrig": RefrigResource()})
    return alert_notification_delivery(context)


A_MINUTE = pd.Timedelta(minutes=1)


def running_for(age: pd.Timedelta, last_check: pd.Timedelta = A_MINUTE) -> str:
    """The cursor of a monitor started ``age`` ago that last checked ``last_check`` ago."""
    now = pd.Timestamp.now(tz="UTC")
    return MonitorState(now - age, now - last_check).to_json()


PAST_GRACE = SLA.startup_grace + pd.Timedelta(minutes=1)


def test_a_webhook_answering_garbage_never_fails_the_monitor_after_it_saved_escalations(
    store, webhook
):
    webhook.mode = "garbage"
    [alert_id] = overdue_alerts(store, 1, pd.Timedelta(minutes=45))

    result, _ = sla_tick(running_for(PAST_GRACE))
    delivery = deliver()
    webhook.mode = "ok"
    with store.engine.begin() as conn:  # the retry is due
        conn.execute(store.outbox_table.update().values(next_attempt_at=pd.Timestamp.now(tz="UTC")))
    recovered = deliver()
    deliver()

    assert isinstance(result, dg.SkipReason) and "1 notification(s) queued" in result.skip_message
    assert store.get(alert_id)["escalation_level"] == "L2"
    assert "1 to retry" in delivery.skip_message
    assert "1 delivered" in recovered.skip_message
    assert webhook.keys() == [f"alert.escalated:{alert_id}:L2"]


def test_the_first_tick_after_a_start_waits_the_grace_period(store, webhook):
    overdue_alerts(store, 202, pd.Timedelta(hours=2))

    result, cursor = sla_tick()  # the daemon just started: no cursor

    assert "grace period" in result.skip_message
    assert set(store.list()["escalation_level"]) == {"L1"}
    assert not store.list()["sla_breached"].any()
    assert store.outbox.list() == []
    state = MonitorState.from_json(cursor)
    assert state.started_at == state.last_check_at
    again, _ = sla_tick(cursor)  # a minute later it is still the same start
    assert "grace period" in again.skip_message


def test_a_gap_longer_than_the_restart_gap_is_a_restart_with_a_new_grace_period(store, webhook):
    overdue_alerts(store, 3, pd.Timedelta(hours=2))
    gap = SLA.restart_gap + pd.Timedelta(minutes=1)

    result, cursor = sla_tick(running_for(pd.Timedelta(days=1), last_check=gap))

    assert "grace period" in result.skip_message
    assert MonitorState.from_json(cursor).started_at > pd.Timestamp.now(tz="UTC") - gap
    assert set(store.list()["escalation_level"]) == {"L1"}


def test_after_the_grace_a_storm_of_breaches_is_one_digest_and_one_level_per_tick(store, webhook):
    ids = overdue_alerts(store, 202, pd.Timedelta(hours=2))
    cursor = running_for(PAST_GRACE)

    first, cursor = sla_tick(cursor)
    levels_after_first = set(store.list()["escalation_level"])
    second, cursor = sla_tick(cursor)
    third, cursor = sla_tick(cursor)
    deliver()

    assert levels_after_first == {"L2"}  # breached, one level, not straight to L3
    assert set(store.list()["escalation_level"]) == {"L3"}
    assert "202 alert(s) breached or escalated, 1 notification(s) queued (one digest)" in (
        first.skip_message
    )
    assert "(one digest)" in second.skip_message and "0 alert(s)" in third.skip_message
    digests = webhook.events("alert.sla_digest")
    assert len(webhook.accepted) == len(digests) == 2
    assert [d["payload"]["by_escalation_level"] for d in digests] == [{"L2": 202}, {"L3": 202}]
    assert set(digests[0]["payload"]["alert_ids"]) <= set(ids)


def test_a_few_breaches_are_notified_one_by_one(store, webhook):
    few = SLA.digest_above
    ids = overdue_alerts(store, few, pd.Timedelta(minutes=45))

    result, _ = sla_tick(running_for(PAST_GRACE))
    deliver()

    assert f"{few} notification(s) queued" in result.skip_message
    assert sorted(webhook.keys()) == sorted(f"alert.escalated:{i}:L2" for i in ids)


def test_a_backfill_of_old_windows_is_marked_breached_but_never_pages(store, webhook):
    overdue_alerts(store, 202, SLA.historic_cutoff + pd.Timedelta(hours=1))

    result, cursor = sla_tick(running_for(PAST_GRACE))
    again, _ = sla_tick(cursor)
    deliver()

    alerts = store.list()
    assert alerts["sla_breached"].all() and set(alerts["escalation_level"]) == {"L1"}
    assert "202 backfilled alert(s) marked breached, not paged" in result.skip_message
    assert "0 alert(s)" in again.skip_message
    assert store.outbox.list() == [] and webhook.accepted == []


def test_a_historic_cutoff_shorter_than_the_longest_escalation_fails_at_load(tmp_path, monkeypatch):
    copy = tmp_path / "config"
    shutil.copytree(config_dir(), copy)
    policy = yaml.safe_load((copy / "alerts.yaml").read_text())
    policy["sla_monitor"]["historic_cutoff_hours"] = 24  # LOW escalates until 48 h
    (copy / "alerts.yaml").write_text(yaml.safe_dump(policy))
    monkeypatch.setenv("REFRIG_CONFIG_DIR", str(copy))

    with pytest.raises(ConfigError, match=r"sla_monitor.historic_cutoff_hours: must exceed"):
        alert_policy()
