"""Running one hour of a landing directory through ingestion and quality, as the assets do."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.duck import connect
from refrig_assets.ingestion.landing.hours import hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex
from refrig_assets.quality.rules import QualityResult, clean_hour

HOUR = datetime(2026, 1, 1, 0, tzinfo=UTC)
KEY = "2026-01-01-00:00"
CONTRACT = load_contract("sensor_readings")


def good_rows(n=3, device="dev-1", start_minute=0, value=10.0, step=0.01) -> pd.DataFrame:
    """``n`` one-minute readings of one device, every sensor in range and never repeating."""
    ts = pd.date_range(HOUR + timedelta(minutes=start_minute), periods=n, freq="1min")
    df = pd.DataFrame({"device_id": device, "ts": ts})
    for i, s in enumerate(CONTRACT.sensor_columns):
        rng = CONTRACT.column(s).extra.get("operating_range") or CONTRACT.column(s).range
        base = max(value, float(rng[0]) + 1.0) + i
        df[s] = [base + step * k for k in range(n)]
    df["door_open"] = False
    return df


def arrived_in_hour(*paths: Path, hour: datetime = HOUR) -> None:
    """Give files the mtime of a delivery in ``hour``: a file rejected as a whole (or without
    any usable timestamp) belongs to the hour its name carries, else to its mtime hour."""
    at = (hour + timedelta(minutes=30)).timestamp()
    for path in paths:
        os.utime(path, (at, at))


def run_hour(
    landing: Path,
    registered=("dev-1", "dev-2"),
    index_path: Path | None = None,
    key: str = KEY,
    start: datetime = HOUR,
    tails: tuple[Path | None, Path] | None = None,
) -> tuple[pd.DataFrame, QualityResult]:
    """Clean rows (as a frame) and the quality result of one hour of ``landing``.

    ``tails`` = (previous hour's stuck-run tails or None, where to write this hour's)."""
    index = LandingIndex(index_path or landing.parent / "index.json")
    con = connect()
    try:
        hour = hour_readings(con, landing, start, start + timedelta(hours=1), key, CONTRACT, index)
        con.execute(f"CREATE OR REPLACE TEMP TABLE readings AS {hour.sql}")
        index.record_hour(key, hour.considered, datetime.now(UTC))
        index.save()
        reg = pa.table({"device_id": pa.array(list(registered), pa.string())})
        previous = f"read_parquet('{tails[0]}')" if tails and tails[0] else None
        clean_sql, result = clean_hour(con, "readings", CONTRACT, reg, previous_tails=previous)
        clean = con.execute(clean_sql).df()
        if tails:
            con.execute(f"COPY ({result.tails_sql}) TO '{tails[1]}' (FORMAT parquet)")
    finally:
        con.close()
    return clean, result


def quarantine_rows(result: QualityResult) -> list[list]:
    """(file, row, column, rule, value) of every quarantine entry, in order."""
    q = result.quarantine
    return q[["source_file", "row", "column", "rule", "value"]].values.tolist()
