"""A real webhook receiver on 127.0.0.1 whose behaviour a test switches while it runs.

``mode`` is one of:

* ``"ok"``: answers 204 and records the event (its ``Idempotency-Key``, raw body and headers);
* ``"fail"``: answers 500;
* ``"hang"``: holds the request ``hang_seconds`` (past the client's timeout), then closes the
  connection without an answer;
* ``"garbage"``: answers raw bytes that are not HTTP, then closes the connection.

(A refused connection needs no server: post to a port nothing listens on.)

Every request is counted in ``requests``; only those answered 2xx land in ``accepted``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GARBAGE = b"\x00\x17NOT-HTTP garbage from a misbehaving endpoint\r\n\r\n"


@dataclass
class Webhook:
    """The receiver: ``url`` to post to, what it received, and its current ``mode``."""

    mode: str = "ok"
    hang_seconds: float = 1.0
    requests: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def keys(self) -> list[str]:
        """Idempotency keys of the accepted events, in arrival order."""
        return [e["key"] for e in self.accepted]

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Accepted bodies (``{"event": ..., "payload": ...}``), optionally of one event."""
        return [e["body"] for e in self.accepted if name is None or e["body"]["event"] == name]


def start_webhook(hang_seconds: float = 1.0) -> Webhook:
    hook = Webhook(hang_seconds=hang_seconds)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                hook.requests += 1
                mode = hook.mode
            if mode == "hang":
                time.sleep(hook.hang_seconds)
                self.close_connection = True
                return
            if mode == "garbage":
                self.wfile.write(GARBAGE)
                self.wfile.flush()
                self.close_connection = True
                return
            if mode == "fail":
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with lock:
                hook.accepted.append(
                    {
                        "key": self.headers.get("Idempotency-Key"),
                        "body": json.loads(body),
                        "raw": body,
                        "headers": dict(self.headers.items()),
                    }
                )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    hook.server = server
    return hook


def stop_webhook(hook: Webhook) -> None:
    if hook.server is not None:
        hook.server.shutdown()
        hook.server.server_close()
