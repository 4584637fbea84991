"""A webhook URL that carries its receiver's user and password (``https://user:pass@host/x``, as
curl and most HTTP clients take it) sends them as HTTP Basic authentication.

Was: urllib took ``user:pass@host`` for the host name, so every POST failed with "Name or
service not known" (for 127.0.0.1 too), retried until dead, the error pointing at DNS.
"""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from refrig_assets.alerts.notify import DeliveryFailed, WebhookNotifier


@pytest.fixture
def receiver():
    """A server that records each POST's path and Authorization header; 401 without one."""
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            auth = self.headers.get("Authorization")
            seen.append((self.path, auth))
            self.send_response(200 if auth else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_port, seen
    server.shutdown()
    server.server_close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_user_and_password_in_the_url_are_sent_as_basic_authentication(receiver):
    port, seen = receiver
    # A percent-encoded password ("pa$$ w") is decoded before it is sent.
    hook = WebhookNotifier(f"http://bob:pa%24%24%20w@127.0.0.1:{port}/hook?x=1", timeout=5)

    hook.post("alert.created", {"alert_id": "a1"}, "alert.created:a1")

    assert seen == [("/hook?x=1", _basic("bob", "pa$$ w"))]
    assert "pa$$" not in repr(hook) and "pa%24%24" not in repr(hook)


def test_an_explicit_authorization_header_wins_over_the_url_credentials(receiver):
    port, seen = receiver
    hook = WebhookNotifier(
        f"http://bob:secret@127.0.0.1:{port}/hook", timeout=5, auth_header="Bearer t0ken"
    )

    hook.post("alert.created", {"alert_id": "a1"}, "alert.created:a1")

    assert seen == [("/hook", "Bearer t0ken")]


def test_a_failure_names_neither_the_password_nor_its_basic_header():
    # Nothing listens on port 9 of loopback: the POST is refused.
    hook = WebhookNotifier("http://bob:s3cr3t@127.0.0.1:9/hook", timeout=2)

    with pytest.raises(DeliveryFailed) as failed:
        hook.post("alert.created", {"alert_id": "a1"}, "alert.created:a1")

    text = str(failed.value)
    encoded = base64.b64encode(b"bob:s3cr3t").decode()
    assert "s3cr3t" not in text and encoded not in text
    assert "Name or service not known" not in text
