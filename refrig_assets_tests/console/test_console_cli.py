"""``refrig console`` serves the console: a real server process on a free port of 127.0.0.1."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.operator_world import free_port, seed_store

from refrig_assets.core.settings import get_settings

pytestmark = pytest.mark.slow


def test_refrig_console_serves_the_configured_alert_database(refrig_home):
    seed_store(get_settings().alerts_db_url)
    port = free_port()
    refrig = Path(sys.executable).parent / "refrig"
    process = subprocess.Popen(
        [str(refrig), "console", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    try:
        body = None
        deadline = time.monotonic() + 60
        while body is None and time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/alerts", timeout=2) as r:
                    body = json.load(r)
            except OSError:
                time.sleep(0.3)
        assert body is not None, process.stdout.read().decode() if process.poll() else "no answer"
        assert body["total"] == 5
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert "refrig" in r.read().decode()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
