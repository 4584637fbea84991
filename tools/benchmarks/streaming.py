"""Streaming path benchmarks: one sensor tick over a large fleet, and landing → alert latency
with a real ``dagster-daemon``.

:func:`bench_streaming` returns JSON-friendly numbers; every run uses its own temporary
REFRIG_HOME / DAGSTER_HOME (nothing of the project's own state is touched) and loopback only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.settings import Settings, get_settings
from refrig_assets.simulator import FleetSimulator, SimulationConfig
from refrig_assets.simulator.writer import write_frame
from refrig_assets.streaming.tick import process_landed_files, state_path

SENSOR_READY_TIMEOUT_S = 300
ALERT_TIMEOUT_S = 120  # the seed's end-to-end bound
POLL_S = 0.1


# Evaluate sensors in a thread pool, so a slow sensor never holds up the streaming rules.
THREADED_SENSORS = "sensors:\n  use_threads: true\n  num_workers: 4\n"


@contextlib.contextmanager
def isolated_home(root: Path, instance_yaml: str = "") -> Iterator[Settings]:
    """Point REFRIG_HOME and DAGSTER_HOME at ``root`` for the duration (restored afterwards);
    ``instance_yaml`` is added to the temporary dagster.yaml."""
    names = (
        "REFRIG_HOME",
        "DAGSTER_HOME",
        "REFRIG_LANDING_DIR",
        "REFRIG_ALERTS_DB_URL",
        "REFRIG_DATA_DIR",
        "REFRIG_DEVICE_REGISTRY",
    )
    saved = {k: os.environ.get(k) for k in names}
    os.environ["REFRIG_HOME"] = str(root)
    os.environ["DAGSTER_HOME"] = str(root / "dagster")
    for k in names[2:]:
        os.environ.pop(k, None)
    (root / "dagster").mkdir(parents=True, exist_ok=True)
    (root / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n" + instance_yaml)
    try:
        yield get_settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def minute_files(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """An hour of readings as one frame per reading time (files landing every minute)."""
    return [g for _, g in frame.groupby("ts", sort=True)]


def bench_tick(devices: int = 100_000, ticks: int = 10, warmup_minutes: int = 10) -> dict:
    """Median and max wall time of one sensor tick (``process_landed_files``) that finds one new
    file with one reading per device, after ``warmup_minutes`` of files (windows, moving
    averages and buffers filled). Also one tick over a whole hourly file of the same fleet."""
    sim = FleetSimulator(SimulationConfig(devices=devices, hours=2, seed=5))
    warm_hour = sim.hour(0)
    minutes = minute_files(sim.hour(1))
    out: dict = {"devices": devices}
    with tempfile.TemporaryDirectory() as tmp, isolated_home(Path(tmp)) as s:
        write_frame(sim.registry(), s.registry_path)
        store = AlertStore(s.alerts_db_url)
        cursor = None
        write_frame(warm_hour, s.landing_dir / "h0.parquet")
        started = time.perf_counter()
        report = process_landed_files(s, cursor, store)
        out["hourly_file_tick_s"] = round(time.perf_counter() - started, 3)
        out["hourly_file_readings"] = report.readings
        cursor = report.cursor
        seconds, stages = [], []
        for i, frame in enumerate(minutes[: warmup_minutes + ticks]):
            write_frame(frame, s.landing_dir / f"m{i:02d}.parquet")
            started = time.perf_counter()
            report = process_landed_files(s, cursor, store)
            elapsed = time.perf_counter() - started
            cursor = report.cursor
            if i >= warmup_minutes:
                seconds.append(elapsed)
                stages.append(report.stage_seconds)
        out["tick_median_s"] = round(statistics.median(seconds), 3)
        out["tick_max_s"] = round(max(seconds), 3)
        out["tick_stage_median_s"] = {
            k: round(statistics.median(st.get(k, 0.0) for st in stages), 3) for k in stages[0]
        }
        out["state_file_mb"] = round(state_path(s).stat().st_size / 1e6, 1)
        out["readings_per_tick"] = report.readings
    return out


def _overload_file(device: str, at: pd.Timestamp, amps: float) -> pd.DataFrame:
    from refrig_assets.core.contracts import load_contract

    contract = load_contract("sensor_readings")
    healthy = {
        "temperature_evaporator": -20.0,
        "temperature_condenser": 40.0,
        "pressure_low_side": 300.0,
        "pressure_high_side": 1500.0,
        "current_compressor": amps,
        "vibration_compressor": 2.0,
        "ambient_temperature": 22.0,
        "door_open": False,
    }
    frame = pd.DataFrame({"device_id": [device], "ts": [at]})
    for column in contract.column_names:
        if column not in frame:
            frame[column] = healthy.get(column)
    return frame


def _wait(condition, timeout_s: float, proc: subprocess.Popen, log: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-daemon exited ({proc.returncode}); see {log}")
        time.sleep(POLL_S)
    raise TimeoutError(f"nothing after {timeout_s} s; daemon log: {log}")


def measure_landing_to_alert(
    drops: int = 5, gap_s: float = 2.3, instance_yaml: str = "", log_to: Path | None = None
) -> dict:
    """Start ``dagster-daemon run -m refrig_assets.definitions`` on a temporary home, wait until
    the streaming sensor has read a warm-up file, then drop ``drops`` files each with one
    overloaded compressor and time file rename → CRITICAL alert visible in the alert database.
    ``instance_yaml`` configures the temporary Dagster instance (e.g. :data:`THREADED_SENSORS`);
    ``log_to`` keeps a copy of the daemon's log.
    """
    daemon = Path(sys.executable).parent / "dagster-daemon"
    with (
        tempfile.TemporaryDirectory() as tmp,
        isolated_home(Path(tmp), instance_yaml) as s,
    ):
        log = Path(tmp) / "daemon.log"
        write_frame(
            pd.DataFrame({"device_id": ["warm"], "site_id": ["site-0"], "cohort": ["bench"]}),
            s.registry_path,
        )
        started = time.monotonic()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(daemon), "run", "-m", "refrig_assets.definitions", "--log-level", "warning"],
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            now = pd.Timestamp.now(tz="UTC").floor("s")
            write_frame(_overload_file("warm", now, 10.0), s.landing_dir / "warm.parquet")
            state = state_path(s)
            _wait(state.exists, SENSOR_READY_TIMEOUT_S, proc, log)
            ready_s = time.monotonic() - started
            store = AlertStore(s.alerts_db_url)
            latencies = []
            for i in range(drops):
                device = f"overload-{i}"
                frame = _overload_file(device, now + pd.Timedelta(seconds=i + 1), 55.0)
                dropped = time.monotonic()
                write_frame(frame, s.landing_dir / f"drop-{i}.parquet")

                def stored(device: str = device) -> bool:
                    return not store.list(device_id=device, source="streaming").empty

                _wait(stored, ALERT_TIMEOUT_S, proc, log)
                latencies.append(round(time.monotonic() - dropped, 2))
                time.sleep(gap_s)
            store.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if log_to is not None:
                log_to.write_bytes(log.read_bytes())
    return {
        "daemon_ready_s": round(ready_s, 1),
        "latencies_s": latencies,
        "median_s": statistics.median(latencies),
        "max_s": max(latencies),
    }


def bench_streaming(devices: int = 100_000, ticks: int = 10, daemon: bool = True) -> dict:
    """The streaming benchmark: sensor tick over ``devices`` and, with ``daemon``, landing →
    alert latency through a real dagster-daemon, with the default instance (sensors evaluated
    one after the other) and with threaded sensors. Targets: tick ≤ 0.5 s, latency ≤ 30 s."""
    out = {"tick": bench_tick(devices, ticks)}
    if daemon:
        out["landing_to_alert"] = measure_landing_to_alert()
        out["landing_to_alert_threaded_sensors"] = measure_landing_to_alert(
            instance_yaml=THREADED_SENSORS
        )
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(bench_streaming(), indent=2))
