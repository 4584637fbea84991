"""A work-order webhook URL's secrets (a token in its path or query, a password) never reach the
delivery record, the alert's history (shown by the console and ``refrig alerts show``) or the
error raised when delivery fails."""

from __future__ import annotations

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.operator_world import T0, Clock, operations, seed_store

from refrig_assets.alerts.store import AlertStore
from refrig_assets.operations.workorders import WorkOrderDeliveryError, WorkOrderExporter

SECRETS = ("AbCdEfGhIjKlMnOpQrStUvWx", "s3cr3t-t0ken", "hunter22")


@pytest.fixture
def receiver():
    """A server answering every POST with the status in ``state["status"]``."""
    state = {"status": 201}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(state["status"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    state["url"] = (
        f"http://bot:hunter22@127.0.0.1:{port}/hooks/AbCdEfGhIjKlMnOpQrStUvWx?token=s3cr3t-t0ken"
    )
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def acknowledged(refrig_home, tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    alert_id = seed_store(url).set_index("device_id").loc["dev-002", "alert_id"]
    store = AlertStore(url, clock=Clock(T0 + timedelta(minutes=5)))
    store.acknowledge(alert_id, "ana", "on my way")
    yield store, alert_id
    store.close()


def sender(store, tmp_path, url):
    settings = operations(tmp_path, work_orders={"url": url, "timeout_seconds": 2, "attempts": 1})
    return WorkOrderExporter(store, clock=Clock(T0 + timedelta(minutes=6)), settings=settings)


def shown(store, exporter, alert_id) -> str:
    record = exporter.get(alert_id)
    return " ".join(str(v) for v in record.values()) + str(store.history(alert_id))


def test_a_delivered_work_order_records_the_url_masked(acknowledged, tmp_path, receiver):
    store, alert_id = acknowledged
    exporter = sender(store, tmp_path, receiver["url"])

    assert exporter.send(alert_id, "ana")["status"] == "sent"

    text = shown(store, exporter, alert_id)
    assert "/hooks/***?token=***" in text
    assert not [s for s in SECRETS if s in text]


def test_a_failed_work_order_names_the_error_without_the_secrets(acknowledged, tmp_path, receiver):
    store, alert_id = acknowledged
    receiver["status"] = 500
    exporter = sender(store, tmp_path, receiver["url"])

    with pytest.raises(WorkOrderDeliveryError) as failed:
        exporter.send(alert_id, "ana")

    text = str(failed.value) + shown(store, exporter, alert_id)
    assert "HTTP 500" in text
    assert not [s for s in SECRETS if s in text]
