"""`make dev`: the Dagster UI (dagster dev) on 127.0.0.1 until Ctrl-C or SIGTERM, then a clean stop.

dagster dev stops cleanly on SIGINT (KeyboardInterrupt: it tells the webserver and daemon to shut
down and waits for them), but a process started from a non-interactive shell (make in a script,
CI, `make dev &`) inherits SIGINT and often SIGTERM as ignored, and then ignores both. This
supervisor resets them for dagster dev, runs it in a session of its own, and turns its own
Ctrl-C or SIGTERM into SIGINT for dagster dev; what is still running after the grace period is
terminated, then killed.

Usage: python scripts/dagster_dev.py [PORT]   (default 3000, or DAGSTER_PORT)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

GRACE_SECONDS = 60


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def main() -> int:
    port = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DAGSTER_PORT", "3000")
    dagster = Path(sys.executable).parent / "dagster"
    command = [
        str(dagster),
        "dev",
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-m",
        "refrig_assets.definitions",
    ]
    child = subprocess.Popen(command, start_new_session=True, preexec_fn=_default_signals)
    stop_by: list[float] = []

    def stop(signum, frame) -> None:
        if not stop_by:
            stop_by.append(time.monotonic() + GRACE_SECONDS)
            os.kill(child.pid, signal.SIGINT)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while True:
        try:
            code = child.wait(timeout=1)
            break
        except subprocess.TimeoutExpired:
            if stop_by and time.monotonic() > stop_by[0]:
                os.killpg(child.pid, signal.SIGKILL)
    # Whatever dagster dev left behind in its session (a code server that did not exit).
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            break
    return 0 if stop_by else code


if __name__ == "__main__":
    sys.exit(main())
