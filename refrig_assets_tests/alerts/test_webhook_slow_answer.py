"""A webhook endpoint that answers a byte at a time: each byte comes well within the socket
timeout, so a timeout per read never fires and the POST would last as long as the endpoint
likes, holding the delivery pass and every notification after it. The webhook's timeout bounds
the whole POST: such an answer is a failed attempt (retried later), not a delivery."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from refrig_assets.alerts.notify import DeliveryFailed, WebhookNotifier

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Padding: " + b"a" * 40 + b"\r\n\r\n"
BYTE_EVERY = 0.1  # seconds: the whole answer takes about 7 s, each byte far less than TIMEOUT
TIMEOUT = 1.0


@pytest.fixture
def trickling_endpoint() -> Iterator[tuple[str, list[bytes]]]:
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                received.append(conn.recv(65536))
                for byte in ANSWER:
                    if stop.is_set():
                        break
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break  # the client gave up: what this test wants
                    time.sleep(BYTE_EVERY)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook?token=s3cr3t-token", received
    stop.set()
    thread.join(timeout=10)
    server.close()


def test_an_answer_trickling_past_the_timeout_is_a_failed_attempt(trickling_endpoint):
    url, received = trickling_endpoint
    notifier = WebhookNotifier(url, timeout=TIMEOUT)
    with pytest.raises(DeliveryFailed) as failed:
        notifier.post("alert.created", {"alert_id": "a1"}, "alert.created:a1")
    assert received and received[0].startswith(b"POST /hook")
    assert "no complete answer within 1 s" in str(failed.value)
    assert "s3cr3t-token" not in str(failed.value)


def test_an_answer_inside_the_timeout_is_still_a_delivery():
    """The deadline ends only what runs past it."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(ANSWER)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    WebhookNotifier(url, timeout=5.0).post("alert.created", {"alert_id": "a1"}, "k")
    thread.join(timeout=10)
    server.close()
