"""The hourly path on both engines: N simulated devices × 1 hour, landing → features.

Simulates one hour of a fleet into a Parquet landing file (skipped when it is already there),
then runs ingestion (landing → typed readings), quality (clean rows, quarantine, stuck-run tails)
and the feature step, each engine in a fresh process: the embedded engine (DuckDB, as the assets
run it) and Spark (:mod:`refrig_assets.engines.spark_hourly`, master ``local[*]`` unless given).
Prints and writes (``--out``) wall and CPU seconds per step with the load average; Spark's CPU is
the driver's plus its JVM's (executors are JVM threads in local mode). The two engines' clean
rows and quarantine are compared (row counts) so a fast wrong answer does not count.

    nice -n 10 .venv/bin/python -m tools.benchmarks.spark_hourly --devices 10000 --work /tmp/bsh
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

KEY = "2026-01-01-00:00"


def simulate(devices: int, landing: Path, registry: Path) -> None:
    """One simulated hour in ``landing`` and the registry's device ids (cached)."""
    from refrig_assets.simulator import FleetSimulator, SimulationConfig

    path = landing / "readings_h0.parquet"
    if path.exists() and registry.exists():
        return
    landing.mkdir(parents=True, exist_ok=True)
    sim = FleetSimulator(SimulationConfig(devices=devices, hours=1))
    sim.hour(0).to_parquet(path, index=False)
    registry.parent.mkdir(parents=True, exist_ok=True)
    sim.registry().to_parquet(registry, index=False)


def _jvm_cpu() -> float:
    """CPU seconds of this process's child JVMs (Spark's driver and local executors)."""
    ticks, me, total = os.sysconf("SC_CLK_TCK"), os.getpid(), 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # ppid
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _clock() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime + r.ru_stime + _jvm_cpu()


def measure(engine: str, work: Path, master: str | None) -> dict:
    """The three steps on ``engine`` in this process: wall and CPU seconds per step."""
    from datetime import UTC, datetime, timedelta

    import pyarrow.parquet as pq

    from refrig_assets.core.contracts import load_contract
    from refrig_assets.core.duck import connect
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.ingestion.landing.hours import hour_readings
    from refrig_assets.ingestion.landing.index import LandingIndex
    from refrig_assets.quality.shards import clean_hour_in_shards

    data = ParquetStore(work / engine)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    contract = load_contract("sensor_readings")
    index_path = work / f"{engine}-index.json"
    index_path.unlink(missing_ok=True)
    index = LandingIndex(index_path)
    landing = work / "landing"
    registry = pq.read_table(work / "registry.parquet", columns=["device_id"])
    out: dict = {"engine": engine}

    def timed(name: str, fn) -> None:
        w0, c0 = _clock()
        fn()
        w1, c1 = _clock()
        out[name] = {"wall_s": round(w1 - w0, 2), "cpu_s": round(c1 - c0, 2)}
        out[name]["load1"] = round(os.getloadavg()[0], 1)
        print(f"{engine:7s} {name:9s} {w1 - w0:7.2f} s wall {c1 - c0:7.2f} s CPU", flush=True)

    if engine == "duckdb":
        from refrig_assets.engines import embedded

        def ingest() -> None:
            con = connect()
            try:
                hour = hour_readings(
                    con, landing, start, start + timedelta(hours=1), KEY, contract, index
                )
                data.write_from_duckdb("sensor_readings", KEY, con, hour.sql)
            finally:
                con.close()

        def quality() -> None:
            _, result = clean_hour_in_shards(
                connect(), data, KEY, data.path("sensor_readings", KEY), contract, registry
            )
            data.write("quarantined_readings", KEY, result.quarantine)

        timed("ingest", ingest)
        timed("quality", quality)
        timed(
            "features", lambda: embedded.write_features(data.path("clean_readings", KEY), data, KEY)
        )
    else:
        from refrig_assets.engines import spark as spark_engine
        from refrig_assets.engines.spark_hourly import write_hour_readings, write_quality_hour

        session: dict = {}
        timed("session", lambda: session.setdefault("s", spark_engine.spark_session(master)))
        spark = session["s"]
        uri = data.root.as_uri()
        readings = f"{uri}/sensor_readings/{data.path('sensor_readings', KEY).name}"

        def spark_ingest() -> None:
            end = start + timedelta(hours=1)
            write_hour_readings(spark, landing, start, end, KEY, contract, index, target=readings)

        def spark_quality() -> None:
            write_quality_hour(
                spark,
                readings,
                contract,
                spark.createDataFrame(registry.to_pandas()),
                clean_target=data.path("clean_readings", KEY),
                tails_target=data.path("stuck_sensor_tails", KEY),
                quarantine_target=data.path("quarantined_readings", KEY),
            )

        timed("ingest", spark_ingest)
        timed("quality", spark_quality)
        timed(
            "features",
            lambda: spark_engine.write_features(spark, data.path("clean_readings", KEY), data, KEY),
        )
        spark.stop()
    out["rows"] = {
        d: pq.read_metadata(data.path(d, KEY)).num_rows
        for d in ("sensor_readings", "clean_readings", "quarantined_readings", "device_features")
    }
    out["peak_rss_mb_driver"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run both engines on one simulated hour and print/write their step times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_spark_hourly"))
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--out", type=Path, default=Path("bench-results/spark_hourly.json"))
    parser.add_argument("--engine", choices=["duckdb", "spark"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    work = args.work / f"fleet-{args.devices}"
    if args.engine:  # the measured child process
        print(json.dumps(measure(args.engine, work, args.master)))
        return 0
    simulate(args.devices, work / "landing", work / "registry.parquet")
    results = {}
    for engine in ("duckdb", "spark"):
        cmd = [sys.executable, "-m", "tools.benchmarks.spark_hourly", "--engine", engine]
        cmd += ["--work", str(args.work)]
        cmd += ["--devices", str(args.devices), "--master", args.master]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[engine] = json.loads(done.stdout.strip().splitlines()[-1])
        for line in done.stdout.strip().splitlines()[:-1]:
            print(line)
    same = results["duckdb"]["rows"] == results["spark"]["rows"]
    summary = {
        "devices": args.devices,
        "master": args.master,
        "cpus": os.cpu_count(),
        "same_row_counts": same,
        **results,
        "spark_over_embedded": {
            step: {
                "wall": round(
                    results["spark"][step]["wall_s"] / results["duckdb"][step]["wall_s"], 1
                ),
                "cpu": round(results["spark"][step]["cpu_s"] / results["duckdb"][step]["cpu_s"], 1),
            }
            for step in ("ingest", "quality", "features")
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["spark_over_embedded"]), "same row counts:", same)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
