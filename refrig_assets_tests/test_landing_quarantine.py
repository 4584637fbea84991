"""Bad landing files never crash the graph silently and lose no rows."""

from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from refrig_assets.contracts import load_contract
from refrig_assets.landing import LandingIndex, read_hour
from refrig_assets.quality import clean_hour, decode_mask

HOUR = datetime(2026, 1, 1, 0, tzinfo=UTC)
KEY = "2026-01-01-00:00"
CONTRACT = load_contract("sensor_readings")


def good_rows(n=3, device="dev-1", start_minute=0):
    ts = pd.date_range(HOUR + timedelta(minutes=start_minute), periods=n, freq="1min")
    df = pd.DataFrame({"device_id": device, "ts": ts})
    for s in CONTRACT.sensor_columns:
        df[s] = 10.0
    df["door_open"] = False
    return df


def run_hour(landing, registered=("dev-1", "dev-2")):
    index = LandingIndex(landing.parent / "index.json")
    readings, files, rejected = read_hour(
        landing, HOUR, HOUR + timedelta(hours=1), CONTRACT, index, KEY
    )
    con = duckdb.connect()
    import pyarrow as pa

    reg = pa.table({"device_id": list(registered)})
    clean_sql, result = clean_hour(con, readings, CONTRACT, reg, rejected)
    clean = con.execute(clean_sql).df()
    return clean, result


def test_a_file_missing_a_required_column_is_quarantined_by_name(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    good_rows().to_parquet(landing / "good.parquet")
    good_rows().drop(columns=["device_id"]).to_parquet(landing / "no_device.parquet")
    clean, result = run_hour(landing)
    assert len(clean) == 3
    q = result.quarantine
    assert q[["source_file", "row", "column", "rule"]].values.tolist() == [
        ["no_device.parquet", -1, "device_id", "missing_column"]
    ]
    assert "no_device.parquet" in q["message"].iloc[0] and "'device_id'" in q["message"].iloc[0]


def test_unparsable_values_are_quarantined_with_file_row_column_and_value(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = good_rows(4).astype({"pressure_low_side": object})
    df.loc[2, "pressure_low_side"] = "abc"
    df.to_csv(landing / "mixed.csv", index=False)
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert result.rows_read == result.rows_clean + result.rows_quarantined == 4
    row = result.quarantine.iloc[0]
    assert (row.source_file, row.row, row.column, row.rule, row.value) == (
        "mixed.csv",
        2,
        "pressure_low_side",
        "unparsable_value",
        "abc",
    )
    assert "mixed.csv row 2" in row.message


def test_duplicates_are_kept_once_and_the_copy_is_quarantined(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    good_rows(3).to_parquet(landing / "a.parquet")
    good_rows(1).to_parquet(landing / "b_redelivered.parquet")
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert result.quarantine["rule"].tolist() == ["duplicate_reading"]
    assert result.quarantine["source_file"].tolist() == ["b_redelivered.parquet"]


def test_empty_and_corrupt_files_are_rejected_without_stopping_the_hour(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    good_rows().to_parquet(landing / "good.parquet")
    (landing / "empty.csv").write_bytes(b"")
    (landing / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    clean, result = run_hour(landing)
    assert len(clean) == 3
    rules = dict(zip(result.quarantine["source_file"], result.quarantine["rule"], strict=True))
    assert rules == {"corrupt.parquet": "unreadable_file", "empty.csv": "empty_file"}


def test_flags_mark_dropout_out_of_range_and_unregistered_devices(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = pd.concat([good_rows(3), good_rows(1, device="dev-new")], ignore_index=True)
    df.loc[0, "pressure_low_side"] = None
    df.loc[1, "pressure_low_side"] = -50.0
    df.to_parquet(landing / "f.parquet")
    clean, _ = run_hour(landing)
    flags = {(r.device_id, r.ts.minute): decode_mask(r.quality_mask) for r in clean.itertuples()}
    assert flags[("dev-1", 0)] == ["SENSOR_DROPOUT"]
    assert flags[("dev-1", 1)] == ["OUT_OF_RANGE"]
    assert flags[("dev-1", 2)] == []
    assert flags[("dev-new", 0)] == ["UNREGISTERED_DEVICE"]
    assert clean.loc[1, "pressure_low_side"] == -50.0  # kept as delivered, only flagged


def test_readings_are_assigned_to_the_hour_of_their_timestamp(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    pd.concat([good_rows(2, start_minute=58), good_rows(2, start_minute=60)]).to_parquet(
        landing / "spanning.parquet"
    )
    clean, result = run_hour(landing)
    assert clean["ts"].dt.hour.tolist() == [0, 0]
    assert result.rows_read == 2
