"""Online scoring benchmark: ``refrig serve`` on loopback under a bounded load generator.

    .venv/bin/python -m tools.benchmarks.serving            # make bench-serving

A temporary project home gets a simulated fleet, every hourly detector trained on its first
hour (production versions), and ``refrig serve --single-user`` on a free 127.0.0.1 port. Then,
each phase bounded in requests and seconds:

* ``single_device``: one device-hour (4 windows × 8 sensors × 15 one-minute readings) per
  request, sequential — end-to-end latency p50 / p99 (targets 20 / 50 ms);
* ``single_device_windows``: the same device's 4 precomputed windows (``device_features``);
* ``hundred_devices``: 100 devices per request — p99 (target 200 ms);
* ``sustained_<n>``: single-device requests on ``n`` concurrent keep-alive connections
  (``--connections``, default 4 and 64), closed loop, bounded in time (``--seconds``) and count
  (``--sustained-requests``) — requests per second (target 200), latency under that load, the
  mean number of requests the server computed in one scoring pass (``requests_per_pass``, its
  ``score_pass_requests`` metric), and the load generator's own CPU per request: it runs in a
  separate process (asyncio on raw sockets, bodies serialised before the clock starts), so its
  CPU is neither hidden in nor charged to the server's.

Latencies are measured by the client (request sent → answer read). The machine's load average
before and after is reported with the numbers: on a shared machine they move with it. So is
the CPU time the server process spent per request in each phase (from /proc, Linux), which the
machine's load moves much less, and — after the server stopped — ``in_process``: the scoring
function (:meth:`ScoringService.score`) called directly, wall and CPU time per call.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


async def _load(
    port: int, bodies: list[bytes], connections: int, seconds: float, max_requests: int
) -> tuple[list[float], int, int, float]:
    """``connections`` keep-alive HTTP/1.1 connections, each sending the next request when its
    answer is read (closed loop), until ``seconds`` pass or ``max_requests`` were sent:
    (latencies ms, failed, not answered, elapsed s)."""
    import asyncio

    heads = [
        (
            f"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n"
        ).encode()
        + b
        for b in bodies
    ]
    took: list[float] = []
    failed = [0]
    lost = [0]
    sent = [0]
    started = time.perf_counter()
    stop = started + seconds

    async def one(k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        try:
            while time.perf_counter() < stop and sent[0] < max_requests:
                sent[0] += 1
                t0 = time.perf_counter()
                writer.write(heads[i % len(heads)])
                try:
                    head = await asyncio.wait_for(
                        reader.readuntil(b"\r\n\r\n"), max(1.0, stop - t0 + 30)
                    )
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    await reader.readexactly(length)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    lost[0] += 1
                    return
                took.append((time.perf_counter() - t0) * 1000.0)
                failed[0] += head[9:12] != b"200"
                i += connections
        finally:
            writer.close()

    await asyncio.gather(*(one(k) for k in range(connections)))
    return took, failed[0], lost[0], time.perf_counter() - started


def load_client(
    port: int, bodies: list[bytes], connections: int, seconds: float, max_requests: int
) -> dict:
    """The load generator's side of a sustained phase, in its own process (see
    :func:`sustained_load`): requests per second, latency under load and its own CPU."""
    import asyncio
    import resource

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    took, failed, lost, elapsed = asyncio.run(
        _load(port, bodies, connections, seconds, max_requests)
    )
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    took.sort()
    answered = len(took)
    return {
        "connections": connections,
        "seconds": round(elapsed, 1),
        "requests": answered,
        "failed": failed,
        "not_answered": lost,
        "rps": round(answered / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(statistics.median(took), 1) if took else None,
        "p99_ms": round(took[min(answered - 1, int(0.99 * answered))], 1) if took else None,
        "client_cpu_ms_per_request": round(used * 1000 / answered, 2) if answered else None,
    }


def sustained_load(
    port: int, bodies: list[dict], connections: int, seconds: float, max_requests: int
) -> dict:
    """Single-device requests from ``connections`` concurrent keep-alive connections for at
    most ``seconds`` and ``max_requests``, driven by a separate process (asyncio on raw
    sockets, bodies serialised once before the clock starts) so that its CPU is not the
    server's and is reported on its own."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(bodies, f)
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "tools.benchmarks.serving",
                "client",
                str(port),
                f.name,
                str(connections),
                str(seconds),
                str(max_requests),
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=seconds + 120,
            check=True,
        )
    finally:
        os.unlink(f.name)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _client_main(argv: list[str]) -> int:
    port, path, connections, seconds, max_requests = argv
    bodies = [json.dumps(b).encode() for b in json.loads(Path(path).read_text())]
    result = load_client(int(port), bodies, int(connections), float(seconds), int(max_requests))
    print(json.dumps(result))
    return 0


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


def pass_sizes(client: httpx.Client) -> tuple[float, float]:
    """(passes, requests) so far of the server's ``score_pass_requests`` histogram."""
    count = total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("score_pass_requests_count"):
            count = float(line.split()[-1])
        elif line.startswith("score_pass_requests_sum"):
            total = float(line.split()[-1])
    return count, total


def run(
    devices: int,
    seed: int,
    requests: int,
    seconds: float,
    connections: list[int],
    sustained_requests: int,
) -> dict:
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
                phases: dict[str, Callable[[], dict]] = {
                    "single_device": lambda: latencies(client, single, requests, seconds),
                    "single_device_windows": lambda: latencies(
                        client, single_windows, requests, seconds
                    ),
                    "hundred_devices": lambda: latencies(
                        client, hundred, max(10, requests // 20), seconds
                    ),
                }
                for n in connections:
                    phases[f"sustained_{n}"] = functools.partial(
                        sustained_load, port, single, n, seconds, sustained_requests
                    )
                result: dict[str, Any] = {}
                for name, phase in phases.items():
                    passes = pass_sizes(client)
                    before = cpu_seconds(server.pid)
                    result[name] = with_server_cpu(server.pid, phase(), before)
                    after = pass_sizes(client)
                    if after[0] > passes[0]:
                        result[name]["requests_per_pass"] = round(
                            (after[1] - passes[1]) / (after[0] - passes[0]), 1
                        )
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
    parser.add_argument(
        "--connections",
        default="4,64",
        help="concurrent connections of each sustained phase (comma-separated); the load "
        "generator runs in its own process",
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-results")
    parser.add_argument(
        "--sustained-requests", type=int, default=6000, help="most requests per sustained phase"
    )
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        return _client_main(argv[1:])
    args = parser.parse_args(argv)
    connections = [int(c) for c in args.connections.split(",") if c.strip()]
    result = run(
        args.devices, args.seed, args.requests, args.seconds, connections, args.sustained_requests
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench-serving.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
