"""One writer per project home: an exclusive lock that in-process pipeline runs take.

``refrig pipeline run`` executes the graph in its own process, outside Dagster's run queue, so
two of them on one ``REFRIG_HOME`` would race: both create the MLflow store (leaving
half-migrated tables), both write the same partitions. The lock is an ``flock`` on
``<home>/.pipeline.lock``; the holder writes its pid, command and start time there, so the one
that waits or refuses can say who holds it. The kernel releases the lock when the holder dies,
so a killed run never leaves the home locked.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

LOCK_FILE = ".pipeline.lock"


class HomeBusy(RuntimeError):
    """Another process holds the home's lock."""


class HomeLock:
    """``with HomeLock(home, wait=False):`` — refuse (or wait) while another run holds it."""

    def __init__(self, home: Path, wait: bool = False, poll_seconds: float = 0.5):
        self.path = Path(home) / LOCK_FILE
        self.wait = wait
        self.poll_seconds = poll_seconds
        self._file: IO[str] | None = None

    def holder(self) -> dict[str, Any]:
        """What the current holder wrote (empty when unknown)."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not self.wait:
                    handle.close()
                    raise HomeBusy(self._busy_message()) from None
                time.sleep(self.poll_seconds)
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "command": " ".join(sys.argv),
                    "since": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            )
        )
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def _busy_message(self) -> str:
        who = self.holder()
        by = (
            f"pid {who.get('pid')} ({who.get('command', '?')}) since {who.get('since', '?')}"
            if who
            else "another process"
        )
        return (
            f"{self.path.parent} is in use by {by}: one pipeline run per home at a time. "
            "Wait for it, or pass --wait to start when it is done."
        )

    def __enter__(self) -> HomeLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
