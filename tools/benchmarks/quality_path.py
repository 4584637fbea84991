"""Speed of the hourly ingest + quality path: N simulated devices × 1 hour, as the assets run it.

Simulates one hour of a fleet into a Parquet landing file (skipped when the file is already
there), then, in a fresh process, reads the hour from the landing zone into the sensor_readings
partition and runs the quality step (flags, quarantine, clean_readings partition), printing wall
and CPU seconds per stage and the peak memory of that process.

    .venv/bin/python tools/benchmarks/quality_path.py --devices 100000 --work /tmp/bench_quality
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def simulate(devices: int, landing: Path, registry: Path) -> None:
    from refrig_assets.simulator import FleetSimulator, SimulationConfig

    path = landing / "readings_h0.parquet"
    if path.exists() and registry.exists():
        return
    landing.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    sim = FleetSimulator(SimulationConfig(devices=devices, hours=1))
    sim.hour(0).to_parquet(path, index=False)
    sim.registry()[["device_id"]].to_parquet(registry, index=False)
    print(f"simulated {devices:,} devices × 1 h in {time.perf_counter() - t:.1f} s", flush=True)


def measure(work: Path) -> dict:
    """Ingest + quality of the hour in this process; timings and peak RSS."""
    from datetime import UTC, datetime, timedelta

    import pyarrow.parquet as pq

    from refrig_assets.core.contracts import load_contract
    from refrig_assets.core.duck import connect, sql_str
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.ingestion.landing.hours import hour_readings
    from refrig_assets.ingestion.landing.index import LandingIndex
    from refrig_assets.quality.rules import clean_hour

    def clock():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), r.ru_utime + r.ru_stime

    store = ParquetStore(work / "data")
    key, start = "2026-01-01-00:00", datetime(2026, 1, 1, tzinfo=UTC)
    contract = load_contract("sensor_readings")
    (work / "state").mkdir(exist_ok=True)
    index_path = work / "state" / "landing_index.json"
    index_path.unlink(missing_ok=True)
    out = {}
    w0, c0 = clock()
    con = connect()
    index = LandingIndex(index_path)
    hour = hour_readings(
        con, work / "landing", start, start + timedelta(hours=1), key, contract, index
    )
    path = store.write_from_duckdb("sensor_readings", key, con, hour.sql)
    index.record_hour(key, hour.considered, datetime.now(UTC))
    index.save()
    con.close()
    w1, c1 = clock()
    out["ingest"] = {"wall_s": round(w1 - w0, 2), "cpu_s": round(c1 - c0, 2)}
    con = connect()
    registry = pq.read_table(work / "registry.parquet")
    clean_sql, result = clean_hour(con, f"read_parquet({sql_str(str(path))})", contract, registry)
    store.write_from_duckdb("clean_readings", key, con, clean_sql)
    store.write("quarantined_readings", key, result.quarantine)
    con.close()
    w2, c2 = clock()
    out["quality"] = {"wall_s": round(w2 - w1, 2), "cpu_s": round(c2 - c1, 2)}
    out["total"] = {"wall_s": round(w2 - w0, 2), "cpu_s": round(c2 - c0, 2)}
    out["rows_read"] = result.rows_read
    out["rows_clean"] = result.rows_clean
    out["rows_quarantined"] = result.rows_quarantined
    out["flag_counts"] = result.flag_counts
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_quality"))
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work / f"{args.devices}"
    if args.measure:
        print(json.dumps(measure(work)))
        return
    simulate(args.devices, work / "landing", work / "registry.parquet")
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--devices",
            str(args.devices),
            "--work",
            str(args.work),
            "--measure",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(child.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
