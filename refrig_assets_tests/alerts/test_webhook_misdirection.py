"""A webhook that is misconfigured must fail visibly, never count as delivered.

A receiver that redirects a POST (an ``http://`` URL whose server moved to ``https://``, a
load balancer's login page) would otherwise be followed with a bodiless GET: a page that answers
that GET with 200 would mark the notification delivered while nobody received it. A URL of
another scheme (``file:``, ``ftp:``) would be "delivered" by reading it. A timeout that is not a
number is named with its variable.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from refrig_assets.alerts.notify import DeliveryFailed, WebhookNotifier, notifier_from_env


@pytest.fixture
def redirecting():
    """A server whose POST /hook answers 302 to /moved, and whose GET /moved answers 200."""
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(("POST", self.path))
            self.send_response(302)
            self.send_header("Location", "/moved?token=s3cr3t-t0ken")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):  # noqa: N802
            seen.append(("GET", self.path))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", seen
    server.shutdown()
    server.server_close()


def test_a_redirected_post_is_a_failed_delivery_not_a_silent_get(redirecting):
    url, seen = redirecting
    notifier = WebhookNotifier(url, timeout=2.0)

    with pytest.raises(DeliveryFailed) as failed:
        notifier.post("alert.created", {"alert_id": "a1"}, "alert.created:a1")

    assert seen == [("POST", "/hook")]  # the redirect was not followed
    assert "302" in str(failed.value) and "redirect" in str(failed.value).lower()
    assert "s3cr3t-t0ken" not in str(failed.value)


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://example.com/hook", "hooks.io/x"])
def test_a_webhook_url_that_is_not_http_is_refused_with_its_variable_named(url, monkeypatch):
    monkeypatch.setenv("REFRIG_WEBHOOK_URL", url)

    with pytest.raises(ValueError, match="REFRIG_WEBHOOK_URL.*http"):
        notifier_from_env()


def test_a_timeout_that_is_not_a_number_is_named(monkeypatch):
    monkeypatch.setenv("REFRIG_WEBHOOK_URL", "https://hooks.example.com/x")
    monkeypatch.setenv("REFRIG_WEBHOOK_TIMEOUT", "ten")

    with pytest.raises(ValueError, match="REFRIG_WEBHOOK_TIMEOUT.*'ten'"):
        notifier_from_env()
