"""The streaming sensor over a real landing directory: files in, CRITICAL alerts in the alert
database, a cursor that never reads a file version twice, notifications to a real webhook."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pandas as pd
import pytest

from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.settings import get_settings
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.defs.streaming.sensors import streaming_threshold_rules
from refrig_assets.incidents.repository import IncidentStore
from refrig_assets.simulator.writer import write_frame

T0 = pd.Timestamp("2026-01-01T00:00:00Z")
HEALTHY = {
    "temperature_evaporator": -20.0,
    "temperature_condenser": 40.0,
    "pressure_low_side": 300.0,
    "pressure_high_side": 1500.0,
    "current_compressor": 10.0,
    "vibration_compressor": 2.0,
    "ambient_temperature": 22.0,
    "door_open": False,
}


def minutes(device: str, start: int, n: int, **changes) -> pd.DataFrame:
    """``n`` one-minute readings of a device in the sensor_readings shape."""
    frame = pd.DataFrame(
        {"device_id": device, "ts": [T0 + pd.Timedelta(minutes=start + i) for i in range(n)]}
    )
    for column, value in {**HEALTHY, **changes}.items():
        frame[column] = value
    return frame


@pytest.fixture
def landing(refrig_home):
    """Settings of an isolated home with a registry file (two devices on one site)."""
    s = get_settings()
    registry = pd.DataFrame(
        {"device_id": ["d1", "d2"], "site_id": ["site-7", "site-7"], "cohort": ["reach_in"] * 2}
    )
    write_frame(registry, s.registry_path)
    return s


def drop(settings, name: str, *frames: pd.DataFrame) -> None:
    write_frame(pd.concat(frames, ignore_index=True), settings.landing_dir / name)


def tick(cursor: str | None = None):
    context = dg.build_sensor_context(cursor=cursor, resources={"refrig": RefrigResource()})
    return streaming_threshold_rules(context), context


def streaming_alerts(settings) -> pd.DataFrame:
    return AlertStore(settings.alerts_db_url).list(source="streaming", include_suppressed=True)


def test_a_file_with_an_overload_becomes_one_critical_alert(landing):
    drop(landing, "a.parquet", minutes("d1", 0, 5), minutes("d2", 0, 5, current_compressor=55.0))

    result, context = tick()

    assert isinstance(result, dg.SensorResult)
    alerts = streaming_alerts(landing)
    assert len(alerts) == 1
    alert = alerts.iloc[0]
    assert (alert["device_id"], alert["site_id"], alert["severity"]) == ("d2", "site-7", "CRITICAL")
    assert (alert["source"], alert["alert_type"], alert["status"]) == (
        "streaming",
        "ANOMALY_DETECTED",
        "OPEN",
    )
    assert alert["explanation"].startswith("compressor_overload: current_compressor 55.0 A")
    assert alert["window_end"] == T0
    assert alert["sla_deadline"] == T0 + pd.Timedelta(minutes=30)
    assert alert["run_id"] == "sensor:streaming_threshold_rules:a.parquet"
    assert alert["model_versions"].startswith("streaming_rules@")
    (event,) = result.asset_events
    assert event.asset_key == dg.AssetKey("streaming_alerts")
    assert event.metadata["inserted"].value == 1
    assert json.loads(result.cursor)["files"].keys() == {"a.parquet"}


def test_nothing_new_is_a_skip_and_a_second_tick_never_duplicates(landing):
    drop(landing, "a.parquet", minutes("d2", 0, 3, current_compressor=55.0))
    first, _ = tick()

    again, _ = tick(first.cursor)

    assert isinstance(again, dg.SkipReason)
    assert len(streaming_alerts(landing)) == 1


def test_a_rewritten_file_is_read_again_without_duplicating_alerts(landing):
    frame = minutes("d2", 0, 3, current_compressor=55.0)
    drop(landing, "a.parquet", frame)
    first, _ = tick()
    time.sleep(0.01)
    drop(landing, "a.parquet", frame)  # same content, new mtime

    second, _ = tick(first.cursor)

    assert isinstance(second, dg.SensorResult)
    assert second.asset_events[0].metadata["late_readings"].value == 3
    assert len(streaming_alerts(landing)) == 1


def test_episodes_continue_across_files(landing):
    drop(landing, "h0.parquet", minutes("d2", 0, 10, current_compressor=55.0))
    first, _ = tick()
    drop(landing, "h1.parquet", minutes("d2", 10, 10, current_compressor=55.0))

    tick(first.cursor)

    assert len(streaming_alerts(landing)) == 1


def test_a_file_the_landing_rules_reject_is_skipped_and_reported(landing):
    (landing.landing_dir).mkdir(parents=True, exist_ok=True)
    (landing.landing_dir / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    drop(landing, "good.parquet", minutes("d2", 0, 2, current_compressor=55.0))

    result, _ = tick()

    metadata = result.asset_events[0].metadata
    assert metadata["rejected_files"].value == ["broken.parquet"]
    assert len(streaming_alerts(landing)) == 1


def test_values_outside_the_contract_range_are_glitches_not_overloads(landing):
    drop(landing, "a.parquet", minutes("d2", 0, 3, current_compressor=500.0))
    tick()
    assert streaming_alerts(landing).empty


def test_files_older_than_the_lookback_are_left_to_the_batch_path(landing):
    drop(landing, "old.parquet", minutes("d2", 0, 3, current_compressor=55.0))
    two_days_ago = time.time() - 2 * 86400
    os.utime(landing.landing_dir / "old.parquet", (two_days_ago, two_days_ago))

    result, _ = tick()

    assert isinstance(result, dg.SkipReason)
    assert streaming_alerts(landing).empty


def test_registry_thresholds_apply_per_device(landing):
    registry = pd.DataFrame(
        {
            "device_id": ["d1", "d2"],
            "site_id": ["site-7", "site-7"],
            "cohort": ["reach_in", "reach_in"],
            "current_threshold": [60.0, None],
        }
    )
    write_frame(registry, landing.registry_path)
    drop(
        landing,
        "a.parquet",
        minutes("d1", 0, 3, current_compressor=55.0),
        minutes("d2", 0, 3, current_compressor=55.0),
    )
    tick()
    assert streaming_alerts(landing)["device_id"].tolist() == ["d2"]


@pytest.fixture
def webhook(monkeypatch):
    """A local HTTP server recording every JSON body POSTed to it; REFRIG_WEBHOOK_URL points at it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("REFRIG_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
    yield received
    server.shutdown()
    server.server_close()


def deliver():
    from refrig_assets.defs.alerts.delivery import alert_notification_delivery

    context = dg.build_sensor_context(resources={"refrig": RefrigResource()})
    return alert_notification_delivery(context)


def test_new_streaming_alerts_are_queued_by_the_tick_and_posted_once_to_the_webhook(
    landing, webhook
):
    drop(landing, "a.parquet", minutes("d2", 0, 3, current_compressor=55.0))
    first, _ = tick()
    time.sleep(0.01)
    drop(landing, "a.parquet", minutes("d2", 0, 3, current_compressor=55.0))
    second, _ = tick(first.cursor)
    assert webhook == []  # the tick only queues
    deliver()
    deliver()

    assert first.asset_events[0].metadata["notifications_queued"].value == 1
    assert second.asset_events[0].metadata["notifications_queued"].value == 0

    # notifications are per incident: the alert opened its device's incident, which is paged
    assert len(webhook) == 1
    event = webhook[0]
    assert event["event"] == "incident.opened"
    payload = event["payload"]
    alert = streaming_alerts(landing).iloc[0]
    incidents = IncidentStore(landing.alerts_db_url)
    assert payload["incident_id"] == incidents.incident_for_alert(alert["alert_id"])
    assert (payload["device_id"], payload["site_id"], payload["severity"]) == (
        "d2",
        "site-7",
        "CRITICAL",
    )
    assert payload["cause"] == "compressor_overload"  # what the streaming rule stands for
    assert alert["explanation"] in payload["explanation"]


# -- notifications never fail or stall the tick -----------------------------------------------


@pytest.fixture
def flaky_webhook(monkeypatch):
    """A real endpoint a test can make fail, hang or answer garbage; REFRIG_WEBHOOK_URL names it."""
    from tools.chaos.webhook import start_webhook, stop_webhook

    hook = start_webhook(hang_seconds=1.5)
    monkeypatch.setenv("REFRIG_WEBHOOK_URL", hook.url)
    monkeypatch.setenv("REFRIG_WEBHOOK_TIMEOUT", "1")
    yield hook
    stop_webhook(hook)


def state_file(settings):
    from refrig_assets.streaming.tick import state_path

    return state_path(settings)


def test_a_webhook_answering_garbage_never_fails_the_tick_before_it_saves_its_state(
    landing, flaky_webhook
):
    flaky_webhook.mode = "garbage"
    drop(landing, "a.parquet", minutes("d2", 0, 3, current_compressor=55.0))

    result, _ = tick()
    delivery = deliver()
    flaky_webhook.mode = "ok"
    store = AlertStore(landing.alerts_db_url)
    with store.engine.begin() as conn:  # the retry is due
        conn.execute(store.outbox_table.update().values(next_attempt_at=pd.Timestamp.now(tz="UTC")))
    deliver()
    deliver()

    assert isinstance(result, dg.SensorResult)
    assert len(streaming_alerts(landing)) == 1
    assert state_file(landing).exists()
    assert "1 to retry" in delivery.skip_message
    [alert_id] = streaming_alerts(landing)["alert_id"]
    incident_id = IncidentStore(store).incident_for_alert(alert_id)
    assert flaky_webhook.keys() == [f"incident:{incident_id}:CRITICAL"]


def test_a_hanging_webhook_does_not_stall_the_tick(landing, flaky_webhook):
    flaky_webhook.mode = "hang"
    devices = [minutes(f"d{i}", 0, 3, current_compressor=55.0) for i in range(1, 4)]
    drop(landing, "a.parquet", *devices)

    result, _ = tick()

    assert isinstance(result, dg.SensorResult)
    assert len(streaming_alerts(landing)) == 3
    # The tick only queues (one page per device's incident): it never called the hanging
    # endpoint, so it cannot wait on it (the fold into incidents makes wall time load-dependent).
    assert flaky_webhook.requests == 0
    assert result.asset_events[0].metadata["notifications_queued"].value == 3
