"""The ``device_alerts`` asset end to end on one hour: scores on disk → alerts in the database,
new CRITICAL/HIGH alerts queued in the outbox and posted to a real webhook once by the delivery
sensor, streaming alerts of the hour confirmed or softened, and a re-run that changes nothing."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pandas as pd
import pytest
import yaml

from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.config import config_dir, read_yaml
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.alerts.assets import device_alerts
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.ingestion.device_registry import conform_registry
from refrig_assets.streaming.alerts import firings_to_alerts
from refrig_assets.streaming.config import load_streaming_settings

HOUR = "2026-01-01-10:00"
H10 = pd.Timestamp("2026-01-01T10:00:00Z")
WINDOW = pd.Timedelta(minutes=15)
DETAIL = "pressure_low_side_running_mean 5.0σ below this device's baseline, given the rest"


def scores_for(device: str, values: list[float], model: str, flag_above: float = 0.7):
    return [
        {
            "device_id": device,
            "window_start": H10 + i * WINDOW,
            "window_end": H10 + (i + 1) * WINDOW,
            "model_id": model,
            "model_version": "3",
            "granularity": "device",
            "anomaly_score": v,
            "anomaly_flag": v > flag_above,
            "top_contributors": "pressure_low_side,temperature_evaporator",
            "contributor_detail": DETAIL,
            "confidence": 1.0,
            "scored_at": H10,
        }
        for i, v in enumerate(values)
    ]


@pytest.fixture
def webhook(monkeypatch):
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv("REFRIG_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
    yield received
    server.shutdown()
    server.server_close()


@pytest.fixture
def hour(refrig_home):
    """Registry, one hour of statistical_baseline scores, and two streaming alerts of the hour."""
    s = get_settings()
    store = ParquetStore(s.data_dir)
    devices = ["d1", "d2", "d3", "d4"]
    store.write(
        "device_registry",
        None,
        conform_registry(pd.DataFrame({"device_id": devices, "site_id": "s1", "cohort": "c"})),
    )
    rows = (
        scores_for("d1", [0.97, 0.97, 0.5, 0.5], "statistical_baseline")  # confirms d1
        + scores_for("d2", [0.1, 0.2, 0.1, 0.2], "statistical_baseline")  # softens d2
        + scores_for("d3", [0.75, 0.2, 0.2, 0.2], "statistical_baseline")  # MEDIUM by score
        + scores_for("d4", [0.3, 0.3, 0.3, 0.3], "statistical_baseline")
    )
    store.write("statistical_baseline_scores", HOUR, pd.DataFrame(rows))
    firings = pd.DataFrame(
        {
            "device_id": ["d1", "d2"],
            "rule": ["acute_pressure_loss"] * 2,
            "kind": ["drop_within"] * 2,
            "sensor": ["pressure_low_side"] * 2,
            "ts": [H10 + pd.Timedelta(minutes=20)] * 2,
            "observed": [100.0, 120.0],
            "reference": [200.0, 200.0],
            "threshold": [0.3, 0.3],
            "span_minutes": [5.0, 5.0],
            "running": [1, 1],
        }
    )
    alerts = AlertStore(s.alerts_db_url)
    streaming = firings_to_alerts(firings, None, load_streaming_settings(), run_id="sensor")
    alerts.upsert(streaming)
    return s, alerts, dict(zip(streaming["device_id"], streaming["alert_id"], strict=True))


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def materialize(instance):
    result = dg.materialize(
        [device_alerts],
        partition_key=HOUR,
        resources={"refrig": RefrigResource()},
        instance=instance,
    )
    assert result.success
    return result.asset_materializations_for_node("device_alerts")[0].metadata


def test_streaming_alerts_of_the_hour_are_confirmed_or_softened(hour, webhook, instance):
    _, store, streaming = hour

    metadata = materialize(instance)

    assert store.get(streaming["d1"])["alert_type"] == "ANOMALY_SUSTAINED"
    assert store.get(streaming["d2"])["alert_type"] == "ANOMALY_RESOLVED"
    assert store.get(streaming["d2"])["status"] == "OPEN"  # softened, not closed for the operator
    note = store.history(streaming["d2"])[-1]
    assert (note["event"], note["actor"]) == ("alert_type", "reconciliation")
    assert "transient" in note["note"]
    assert metadata["streaming_reconciled"].value == {
        "ANOMALY_SUSTAINED": 1,
        "ANOMALY_RESOLVED": 1,
    }


@pytest.fixture
def live_hour(hour, tmp_path, monkeypatch):
    """``hour``, with a notification cut-off long enough that the hour counts as live."""
    config = tmp_path / "config"
    shutil.copytree(config_dir(), config)
    policy = read_yaml(config / "alerts.yaml")
    policy["notifications"]["historic_cutoff_hours"] = 1_000_000
    (config / "alerts.yaml").write_text(yaml.safe_dump(policy))
    monkeypatch.setenv("REFRIG_CONFIG_DIR", str(config))
    return hour


def test_new_alerts_of_a_historic_hour_are_stored_but_held_back(hour, webhook, instance):
    _, store, _ = hour  # the hour ended long before now: a backfill

    metadata = materialize(instance)
    deliver()

    batch = store.list(source="batch")
    assert "CRITICAL" in set(batch["severity"])
    assert metadata["notifications_queued"].value == 0
    assert metadata["notifications_held_historic"].value == 1
    assert [e for e in webhook if e["event"] == "alert.created"] == []


def test_new_batch_alerts_fold_into_incidents_and_are_not_paged_one_by_one(
    live_hour, webhook, instance
):
    # Notifications are per incident: a batch alert joins its device's incident when it is
    # stored; its cause (and so its severity by impact) comes from device_incidents, which pages.
    from refrig_assets.incidents.repository import IncidentStore

    _, store, _ = live_hour

    first = materialize(instance)
    again = materialize(instance)
    deliver()

    batch = store.list(source="batch", include_suppressed=True)
    assert set(batch["severity"]) == {"CRITICAL", "MEDIUM"}  # d1 0.97 CRITICAL, d3 0.75 MEDIUM
    assert batch["suppressed"].sum() == 1  # d1's second window repeats its first
    incidents = IncidentStore(store)
    assert incidents.linked_alerts(batch["alert_id"]) == set(batch["alert_id"])
    assert len({incidents.incident_for_alert(a) for a in batch["alert_id"]}) == 2  # d1, d3
    assert [e for e in webhook if e["event"] == "alert.created"] == []
    assert (first["inserted"].value, again["inserted"].value) == (len(batch), 0)
    assert again["notifications_queued"].value == 0


def deliver():
    from refrig_assets.defs.alerts.delivery import alert_notification_delivery

    context = dg.build_sensor_context(resources={"refrig": RefrigResource()})
    return alert_notification_delivery(context)


def test_sla_monitor_escalates_overdue_alerts_one_level_per_tick_and_notifies_each_once(
    refrig_home, webhook
):
    from refrig_assets.alerts.sla_monitor import MonitorState
    from refrig_assets.defs.alerts.sla_monitor import alert_sla_monitor

    s = get_settings()
    store = AlertStore(s.alerts_db_url)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    firing = pd.DataFrame(
        {
            "device_id": ["d1"],
            "rule": ["compressor_overload"],
            "kind": ["above"],
            "sensor": ["current_compressor"],
            # Past its 30 min deadline by more than two further SLA periods: top level is due.
            "ts": [now - pd.Timedelta(hours=2)],
            "observed": [55.0],
            "reference": [40.0],
            "threshold": [40.0],
            "span_minutes": [0.0],
            "running": [1],
        }
    )
    (alert_id,) = store.upsert(
        firings_to_alerts(firing, None, load_streaming_settings(), run_id="sensor")
    )["inserted_ids"]
    # A monitor that has been running for an hour, past its start-up grace period.
    running = MonitorState(now - pd.Timedelta(hours=1), now - pd.Timedelta(minutes=1))
    cursor = running.to_json()

    def tick():
        nonlocal cursor
        context = dg.build_sensor_context(cursor=cursor, resources={"refrig": RefrigResource()})
        result = alert_sla_monitor(context)
        cursor = context.cursor
        return result

    first, second, third = tick(), tick(), tick()
    deliver()
    deliver()

    assert "1 alert(s)" in first.skip_message and "1 alert(s)" in second.skip_message
    assert "0 alert(s)" in third.skip_message
    alert = store.get(alert_id)
    assert (alert["sla_breached"], alert["escalation_level"]) == (True, "L3")
    steps = [
        (
            e["payload"]["alert_id"],
            e["payload"]["previous_escalation_level"],
            e["payload"]["escalation_level"],
        )
        for e in webhook
    ]
    assert [e["event"] for e in webhook] == ["alert.escalated"] * 2
    assert steps == [(alert_id, "L1", "L2"), (alert_id, "L2", "L3")]
