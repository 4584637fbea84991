"""One pipeline run per project home: a second one is refused with the holder named, or waits;
a holder that dies releases the home."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from refrig_assets.core.home_lock import HomeBusy, HomeLock

pytestmark = pytest.mark.fault_injection


def test_a_second_holder_is_refused_with_the_first_named(tmp_path):
    with HomeLock(tmp_path):
        with pytest.raises(HomeBusy, match=rf"in use by pid {os.getpid()} .*--wait"):
            HomeLock(tmp_path).acquire()
    with HomeLock(tmp_path) as again:
        assert again.holder()["pid"] == os.getpid()


def test_a_waiting_holder_starts_when_the_first_is_done(tmp_path):
    first = HomeLock(tmp_path)
    first.acquire()
    got = []
    waiter = threading.Thread(
        target=lambda: (HomeLock(tmp_path, wait=True, poll_seconds=0.05).acquire(), got.append(1))
    )
    waiter.start()
    time.sleep(0.3)
    assert got == []
    first.release()
    waiter.join(timeout=10)
    assert got == [1]


def test_a_killed_holder_leaves_the_home_free(tmp_path):
    script = (
        "import sys, time; from pathlib import Path\n"
        "from refrig_assets.core.home_lock import HomeLock\n"
        "lock = HomeLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(HomeBusy, match=f"pid {holder.pid}"):
            HomeLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with HomeLock(tmp_path):
        pass
