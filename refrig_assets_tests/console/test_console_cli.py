"""``refrig console`` serves the console: a real server process on a free port of 127.0.0.1,
reached with a token made by ``refrig users add`` and ``refrig tokens create``."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.operator_world import free_port, seed_store

from refrig_assets.core.settings import get_settings

pytestmark = pytest.mark.slow
REFRIG = Path(sys.executable).parent / "refrig"


def refrig(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REFRIG), *args], capture_output=True, text=True, env=os.environ.copy(), timeout=120
    )


def get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_refrig_console_serves_the_alerts_to_a_token_holder_only(refrig_home):
    seed_store(get_settings().alerts_db_url)
    assert refrig("users", "add", "ana", "--role", "viewer", "--by", "root").returncode == 0
    created = refrig("tokens", "create", "ana", "--label", "test")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("rfa_") and "Shown once" in created.stderr
    listed = refrig("users", "list").stdout
    assert "ana" in listed and "viewer" in listed and "1 live token" in listed
    assert token not in refrig("tokens", "list").stdout

    port = free_port()
    process = subprocess.Popen(
        [str(REFRIG), "console", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        ready = False
        deadline = time.monotonic() + 60
        while not ready and time.monotonic() < deadline and process.poll() is None:
            try:
                ready = get(f"{base}/docs")[0] == 200
            except OSError:
                time.sleep(0.3)
        assert ready, process.stdout.read().decode() if process.poll() else "no answer"
        status, body = get(f"{base}/api/alerts")
        assert status == 401 and "sign in first" in body
        status, body = get(f"{base}/api/alerts", token)
        assert status == 200 and json.loads(body)["total"] == 5
        token_id = token.split("_")[1]
        assert refrig("tokens", "revoke", token_id).returncode == 0
        assert get(f"{base}/api/alerts", token)[0] == 401
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def test_single_user_mode_refuses_to_listen_beyond_loopback(refrig_home):
    result = refrig("console", "--single-user", "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "--single-user listens on a loopback address only" in result.stderr
