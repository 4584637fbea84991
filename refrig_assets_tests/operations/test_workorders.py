"""Work-order hand-off to a real HTTP server on 127.0.0.1 (and to files when no URL is set)."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.console_access import signed_in_client
from support.operator_world import T0, Clock, db_snapshot, operations, seed_store, standard_alerts

from refrig_assets.alerts.store import AlertNotFound, AlertStore
from refrig_assets.operations.workorders import (
    WorkOrderDeliveryError,
    WorkOrderError,
    WorkOrderExporter,
    work_order_payload,
)


class Receiver:
    """A maintenance system stand-in: a real HTTP server recording each POST it gets.

    ``statuses`` are answered in turn (the last one repeats)."""

    def __init__(self, statuses=(201,)):
        self.requests: list[dict] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers["Content-Length"])
                receiver.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                status = (
                    receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ticket": "T-1"}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/work-orders"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(refrig_home, tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    alerts = seed_store(url)
    store = AlertStore(url, clock=Clock(T0 + timedelta(minutes=5)))
    alert_id = alerts.set_index("device_id").loc["dev-002", "alert_id"]
    store.acknowledge(alert_id, "ana", "on my way")
    yield store, alert_id
    store.close()


def exporter(store, tmp_path, url=None, **work):
    settings = operations(tmp_path, work_orders={"url": url, "timeout_seconds": 2, **work})
    return WorkOrderExporter(store, clock=Clock(T0 + timedelta(minutes=6)), settings=settings)


def test_the_payload_names_device_site_explanation_severity_and_deadline(world, tmp_path):
    store, alert_id = world
    settings = operations(tmp_path, work_orders={"console_url": "http://console.local:8080/"})
    payload = work_order_payload(store.get(alert_id), settings, "ana")
    assert payload["work_order_id"] == f"wo-{alert_id}"
    assert (payload["device_id"], payload["site_id"], payload["severity"]) == (
        "dev-002",
        "site-A",
        "CRITICAL",
    )
    assert "pressure_low_side" in payload["explanation"]
    assert payload["top_contributors"] == ["pressure_low_side", "temperature_evaporator"]
    # acknowledged at T0 + 5 min, CRITICAL work due 4 h later (work_orders.due_hours)
    assert payload["deadline"] == (T0 + timedelta(minutes=5, hours=4)).isoformat()
    assert payload["link"] == f"http://console.local:8080/alerts/{alert_id}"
    assert payload["title"] == "CRITICAL: pressure_low_side anomaly on dev-002 at site-A"


def test_an_acknowledged_alert_is_posted_once_to_the_webhook(world, tmp_path):
    store, alert_id = world
    with Receiver() as receiver:
        sender = exporter(store, tmp_path, receiver.url)
        record = sender.send(alert_id, "ana")
        again = sender.send(alert_id, "bo")
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request["path"] == "/work-orders"
    assert request["headers"]["Idempotency-Key"] == f"wo-{alert_id}"
    assert request["body"]["device_id"] == "dev-002" and request["body"]["requested_by"] == "ana"
    assert (record["status"], record["response_code"], record["attempts"]) == ("sent", 201, 1)
    assert again == record
    history = store.history(alert_id)
    assert history[-1]["event"] == "work_order" and receiver.url in history[-1]["note"]


def test_a_failing_webhook_is_retried_recorded_and_can_be_sent_again(world, tmp_path):
    store, alert_id = world
    with Receiver(statuses=(503,)) as receiver:
        sender = exporter(store, tmp_path, receiver.url, attempts=3)
        with pytest.raises(WorkOrderDeliveryError, match="HTTP 503"):
            sender.send(alert_id, "ana")
        assert len(receiver.requests) == 3
        failed = sender.get(alert_id)
        assert (failed["status"], failed["attempts"]) == ("failed", 3)
        receiver.statuses = [200]
        assert sender.send(alert_id, "ana")["status"] == "sent"
    assert sender.get(alert_id)["attempts"] == 4


def test_a_refusing_webhook_is_not_retried(world, tmp_path):
    store, alert_id = world
    with Receiver(statuses=(400,)) as receiver:
        with pytest.raises(WorkOrderDeliveryError, match="HTTP 400"):
            exporter(store, tmp_path, receiver.url, attempts=3).send(alert_id, "ana")
    assert len(receiver.requests) == 1


def test_an_unreachable_webhook_is_a_recorded_failure(world, tmp_path):
    from support.operator_world import free_port

    store, alert_id = world
    sender = exporter(store, tmp_path, f"http://127.0.0.1:{free_port()}/wo", attempts=2)
    with pytest.raises(WorkOrderDeliveryError, match="ConnectError"):
        sender.send(alert_id, "ana")
    assert sender.get(alert_id)["status"] == "failed"


def test_without_a_url_work_orders_are_written_as_files(world, tmp_path, refrig_home):
    store, alert_id = world
    record = exporter(store, tmp_path).send(alert_id, "ana")
    path = refrig_home / "work_orders" / f"wo-{alert_id}.json"
    assert record["destination"] == str(refrig_home / "work_orders")
    assert json.loads(path.read_text())["alert_id"] == alert_id


def test_only_acknowledged_alerts_become_work_orders(world, tmp_path):
    store, _ = world
    open_id = standard_alerts().set_index("device_id").loc["dev-003", "alert_id"]
    sender = exporter(store, tmp_path)
    sender.get("x")  # tables exist
    before = db_snapshot(store.url)
    with pytest.raises(WorkOrderError, match="is OPEN; only an ACKNOWLEDGED alert"):
        sender.send(open_id, "ana")
    with pytest.raises(AlertNotFound):
        sender.send("nope", "ana")
    with pytest.raises(WorkOrderError, match="must be named"):
        sender.send(open_id, " ")
    assert db_snapshot(store.url) == before


def test_the_console_sends_a_work_order_on_acknowledge_when_configured(refrig_home, tmp_path):
    from refrig_assets.console import create_app

    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    alert_id = seed_store(url).set_index("device_id").loc["dev-005", "alert_id"]
    with Receiver() as receiver:
        settings = operations(tmp_path, work_orders={"url": receiver.url, "on_acknowledge": True})
        app = create_app(url, tmp_path / "data", settings=settings, clock=Clock(T0))
        with signed_in_client(app, "ana", "operator") as client:
            body = client.post(f"/api/alerts/{alert_id}/acknowledge", json={}).json()
    assert body["alert"]["status"] == "ACKNOWLEDGED"
    assert body["work_order"]["status"] == "sent"
    assert [r["body"]["alert_id"] for r in receiver.requests] == [alert_id]
