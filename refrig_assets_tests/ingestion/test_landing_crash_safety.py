"""A run killed while it writes a partition leaves the previous partition whole and readable."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
from support.quality_helpers import KEY, good_rows

from refrig_assets.core.storage import ParquetStore

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timedelta, timezone
    from pathlib import Path
    from refrig_assets.core.contracts import load_contract
    from refrig_assets.core.duck import connect
    from refrig_assets.ingestion.landing.hours import hour_readings
    from refrig_assets.ingestion.landing.index import LandingIndex
    from refrig_assets.core.storage import ParquetStore

    landing, data, key = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    con = connect()
    hour = hour_readings(con, landing, start, start + timedelta(hours=1), key,
                         load_contract("sensor_readings"), LandingIndex(data / "index.json"))
    print("writing", flush=True)
    ParquetStore(data).write_from_duckdb("sensor_readings", key, con, hour.sql)
    """
)


def big_landing_file(path: Path, rows: int) -> None:
    """``rows`` readings of 50,000 devices in the first hour, written by DuckDB."""
    columns = ", ".join(
        f"random() * 10 AS {c}"
        for c in good_rows(1).columns
        if c not in ("device_id", "ts", "door_open")
    )
    duckdb.sql(
        f"COPY (SELECT 'dev-' || (i % 50000) AS device_id, "
        f"TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i // 50000) AS ts, {columns}, "
        f"FALSE AS door_open FROM range({rows}) t(i)) TO '{path}' (FORMAT parquet)"
    )


def test_sigkill_during_a_partition_write_leaves_the_previous_partition_intact(tmp_path):
    landing, data = tmp_path / "landing", tmp_path / "data"
    landing.mkdir()
    store = ParquetStore(data)
    previous = good_rows(5).assign(source_file="old.parquet")
    final = store.write("sensor_readings", KEY, previous)
    big_landing_file(landing / "big.parquet", 1_500_000)

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(landing), str(data), KEY],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    temps: list[Path] = []
    while not temps and proc.poll() is None and time.monotonic() < deadline:
        temps = list(final.parent.glob(f".{final.stem}.*.tmp"))
        time.sleep(0.002)
    assert temps, "the writer never started its temporary file"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    pd.testing.assert_frame_equal(store.read("sensor_readings", KEY), previous)
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{final}')").fetchall()[0][0]
    assert rows == len(previous)
    assert store.partitions("sensor_readings") == ["2026-01-01T00"]  # the half file is hidden
