"""Online scoring benchmark: ``refrig serve`` on loopback under a bounded load generator.

    .venv/bin/python -m tools.benchmarks.serving            # make bench-serving

A temporary project home gets a simulated fleet, every hourly detector trained on its first
hour (production versions), and ``refrig serve --single-user`` on a free 127.0.0.1 port. Then,
each phase bounded in requests and seconds:

* ``single_device``: one device-hour (4 windows × 8 sensors × 15 one-minute readings) per
  request, sequential — end-to-end latency p50 / p99 (targets 20 / 50 ms);
* ``single_device_windows``: the same device's 4 precomputed windows (``device_features``);
* ``hundred_devices``: 100 devices per request — p99 (target 200 ms);
* ``sustained``: single-device requests from several client threads for a fixed time —
  requests per second (target 200).

Latencies are measured by the client (request sent → answer read). The machine's load average
before and after is reported with the numbers: on a shared machine they move with it. So is
the CPU time the server process spent per request in each phase (from /proc, Linux), which the
machine's load moves much less, and — after the server stopped — ``in_process``: the scoring
function (:meth:`ScoringService.score`) called directly, wall and CPU time per call.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from refrig_assets.core.settings import PROJECT_ROOT

TARGETS = {
    "single_device_p50_ms": 20.0,
    "single_device_p99_ms": 50.0,
    "hundred_devices_p99_ms": 200.0,
    "sustained_rps": 200.0,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare_home(home: Path, devices: int, seed: int) -> dict[str, list[dict]]:
    """A fleet of ``devices`` × 2 hours; every hourly detector trained on hour 0 and set as
    production. Returns hour 1's readings and windows per device, as JSON records."""
    os.environ["REFRIG_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    from refrig_assets.core.model_config import hourly_model_ids, load_model_config
    from refrig_assets.core.settings import get_settings
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.scoring.score import with_cohort
    from refrig_assets.simulator import FleetSimulator, SimulationConfig
    from refrig_assets.training.fit import train_detector
    from refrig_assets.training.registry import ModelRegistry
    from tools.demos.lifecycle_demo import simulated_features

    settings = get_settings()
    config = SimulationConfig(
        devices=devices, hours=2, start=datetime(2026, 1, 1, tzinfo=UTC), seed=seed
    )
    by_hour, registry_frame, _ = simulated_features(config)
    store = ParquetStore(settings.data_dir)
    store.write("device_registry", None, registry_frame)
    registry = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir)
    first, second = list(by_hour)
    train = with_cohort(by_hour[first], registry_frame)
    for model_id in hourly_model_ids(settings.models_dir):
        detector, lineage, metrics = train_detector(
            load_model_config(model_id), train, first, "bench"
        )
        registry.set_production(model_id, registry.register(detector, lineage, metrics))
    readings = list(FleetSimulator(config).hours())[1][1]
    readings = readings.assign(ts=readings["ts"].map(lambda t: t.isoformat()))
    readings["door_open"] = readings["door_open"].astype(object)
    windows = by_hour[second].copy()
    for c in ("window_start", "window_end"):
        windows[c] = windows[c].map(lambda t: t.isoformat())
    return {
        "readings": _records(readings),
        "windows": _records(windows),
    }


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def by_device(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["device_id"], []).append(r)
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (None off Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_server_cpu(pid: int, phase: dict, before: float | None) -> dict:
    """``phase`` with the server's CPU milliseconds per request since ``before``."""
    after = cpu_seconds(pid)
    if before is not None and after is not None and phase["requests"]:
        phase["server_cpu_ms_per_request"] = round((after - before) * 1000 / phase["requests"], 1)
    return phase


def latencies(
    client: httpx.Client, bodies: list[dict], max_requests: int, max_seconds: float
) -> dict:
    """Sequential requests cycling over ``bodies``: client-side latency percentiles (ms)."""
    took, failed = [], 0
    deadline = time.perf_counter() + max_seconds
    for i in range(max_requests):
        if time.perf_counter() > deadline:
            break
        started = time.perf_counter()
        response = client.post("/v1/score", json=bodies[i % len(bodies)])
        took.append((time.perf_counter() - started) * 1000.0)
        failed += response.status_code != 200
    took.sort()
    return {
        "requests": len(took),
        "failed": failed,
        "p50_ms": round(statistics.median(took), 1),
        "p99_ms": round(took[min(len(took) - 1, int(0.99 * len(took)))], 1),
        "max_ms": round(took[-1], 1),
    }


def sustained(base_url: str, bodies: list[dict], threads: int, seconds: float) -> dict:
    """Single-device requests from ``threads`` clients for ``seconds``: requests per second."""
    done, failed = [0] * threads, [0] * threads
    stop = time.perf_counter() + seconds

    def worker(k: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            i = k
            while time.perf_counter() < stop:
                response = client.post("/v1/score", json=bodies[i % len(bodies)])
                done[k] += 1
                failed[k] += response.status_code != 200
                i += threads

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    return {
        "threads": threads,
        "seconds": round(elapsed, 1),
        "requests": sum(done),
        "failed": sum(failed),
        "rps": round(sum(done) / elapsed, 1),
    }


def timed(call, count: int) -> dict:
    """Wall and CPU milliseconds of ``count`` calls ``call(i)`` (p50, p99 of the wall)."""
    wall, cpu = [], []
    for i in range(count):
        w, c = time.perf_counter(), time.process_time()
        call(i)
        wall.append((time.perf_counter() - w) * 1000.0)
        cpu.append((time.process_time() - c) * 1000.0)
    wall.sort()
    cpu.sort()
    return {
        "calls": count,
        "p50_ms": round(statistics.median(wall), 1),
        "p99_ms": round(wall[min(count - 1, int(0.99 * count))], 1),
        "cpu_p50_ms": round(statistics.median(cpu), 1),
        "cpu_mean_ms": round(statistics.fmean(cpu), 1),
    }


def in_process(data: dict[str, list[dict]], count: int) -> dict:
    """The scoring function alone (no HTTP, no JSON): :meth:`ScoringService.score` on parsed
    tables in this process, for one device's readings, its windows, and 100 devices."""
    from refrig_assets.serving.inputs import table_from_records
    from refrig_assets.serving.service import ScoringService

    readings, windows = by_device(data["readings"]), by_device(data["windows"])
    ids = sorted(readings)
    single = [table_from_records(readings[d], "sensor_readings") for d in ids]
    single_windows = [
        table_from_records(windows[d], "device_features") for d in ids if d in windows
    ]
    hundred = table_from_records([r for d in ids[:100] for r in readings[d]], "sensor_readings")
    service = ScoringService(single_user=True)
    service.start()
    try:
        for table in single[:5]:
            service.score("readings", table)  # warm-up
        return {
            "single_device": timed(
                lambda i: service.score("readings", single[i % len(single)]), count
            ),
            "single_device_no_cause": timed(
                lambda i: service.score("readings", single[i % len(single)], cause=False), count
            ),
            "single_device_windows": timed(
                lambda i: service.score("windows", single_windows[i % len(single_windows)]), count
            ),
            "hundred_devices": timed(
                lambda i: service.score("readings", hundred), max(5, count // 10)
            ),
        }
    finally:
        service.close()


def run(devices: int, seed: int, requests: int, seconds: float, threads: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="refrig-bench-serving-") as tmp:
        home = Path(tmp) / "home"
        (home / "dagster").mkdir(parents=True)
        data = prepare_home(home, devices, seed)
        readings, windows = by_device(data["readings"]), by_device(data["windows"])
        ids = sorted(readings)
        single = [{"readings": readings[d]} for d in ids]
        single_windows = [{"windows": windows[d]} for d in ids if d in windows]
        hundred = [
            {"readings": [r for d in ids[i : i + 100] for r in readings[d]]}
            for i in range(0, max(1, len(ids) - 99), 100)
        ]
        port = free_port()
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from refrig_assets.cli import main; main()",
                "serve",
                "--single-user",
                "--port",
                str(port),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                for _ in range(240):
                    try:
                        if client.get("/health").status_code in (200, 503):
                            break
                    except httpx.TransportError:
                        time.sleep(0.5)
                for body in single[:5]:
                    client.post("/v1/score", json=body)  # warm-up: first connections, caches
                load_before = [round(x, 2) for x in os.getloadavg()]
                phases = {
                    "single_device": lambda: latencies(client, single, requests, seconds),
                    "single_device_windows": lambda: latencies(
                        client, single_windows, requests, seconds
                    ),
                    "hundred_devices": lambda: latencies(
                        client, hundred, max(10, requests // 20), seconds
                    ),
                    "sustained": lambda: sustained(base, single, threads, seconds),
                }
                result: dict[str, Any] = {}
                for name, phase in phases.items():
                    before = cpu_seconds(server.pid)
                    result[name] = with_server_cpu(server.pid, phase(), before)
            load_after = [round(x, 2) for x in os.getloadavg()]
        finally:
            server.terminate()
            server.wait(30)
        result["in_process"] = in_process(data, min(requests, 100))
        result["load_average_in_process"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "devices": devices,
        "readings_per_device_request": len(single[0]["readings"]),
        "targets": TARGETS,
        **result,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmarks.serving", description=__doc__)
    parser.add_argument("--devices", type=int, default=200, help="simulated fleet size")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--requests", type=int, default=300, help="most requests per phase")
    parser.add_argument("--seconds", type=float, default=30.0, help="longest time per phase")
    parser.add_argument("--threads", type=int, default=4, help="clients in the sustained phase")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-results")
    args = parser.parse_args(argv)
    result = run(args.devices, args.seed, args.requests, args.seconds, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench-serving.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
