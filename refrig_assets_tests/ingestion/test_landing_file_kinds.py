"""Nothing in the landing zone is ignored silently: compressed CSV is read like CSV, any other
file is quarantined as ``unsupported_file``, readings stamped outside any plausible time are
quarantined as ``implausible_timestamp``, and every row of a file is accounted for once across
the hours it touches."""

import gzip
import os
from datetime import timedelta

import duckdb
import pandas as pd
import pytest
from support.quality_helpers import CONTRACT, HOUR, good_rows, quarantine_rows, run_hour

from refrig_assets.ingestion.landing.index import LandingIndex
from refrig_assets.ingestion.landing.readers import landing_rules

pytestmark = pytest.mark.fault_injection

K1 = "2026-01-01-01:00"


def csv_text(df: pd.DataFrame) -> str:
    out = df.copy()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.to_csv(index=False)


def test_gzip_and_zstd_compressed_csv_files_are_read_like_plain_csv(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv.gz").write_bytes(gzip.compress(csv_text(good_rows(3)).encode()))
    plain = tmp_path / "b.csv"
    plain.write_text(csv_text(good_rows(4, device="dev-2")))
    duckdb.sql(
        f"COPY (SELECT * FROM read_csv('{plain}', all_varchar = true)) "
        f"TO '{landing / 'b.csv.zst'}' (FORMAT csv, COMPRESSION zstd)"
    )
    clean, result = run_hour(landing)
    assert clean.groupby("source_file").size().to_dict() == {"a.csv.gz": 3, "b.csv.zst": 4}
    assert clean["quality_mask"].eq(0).all()
    assert quarantine_rows(result) == []


def test_any_other_file_in_the_landing_zone_is_quarantined_as_unsupported(tmp_path):
    landing = tmp_path / "landing"
    (landing / "notes").mkdir(parents=True)
    good_rows(3).to_parquet(landing / "readings_20260101T00.parquet")
    (landing / "readings_20260101T00.csv.bz2").write_bytes(b"BZh91AY&SY")
    (landing / "notes" / "README.txt").write_text("gateway 7 offline\n")
    arrived = (HOUR + timedelta(minutes=30)).timestamp()
    os.utime(landing / "notes" / "README.txt", (arrived, arrived))
    (landing / ".hidden.csv").write_text("ignored")
    (landing / "readings_20260101T00.csv.part").write_text("upload in progress")
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert quarantine_rows(result) == [
        ["notes/README.txt", -1, None, "unsupported_file", None],
        ["readings_20260101T00.csv.bz2", -1, None, "unsupported_file", None],
    ]
    assert result.quarantine["message"].iloc[0] == (
        "notes/README.txt: not a readings file (the landing zone reads .parquet, .csv, "
        ".csv.gz, .csv.zst); not read"
    )


def test_readings_stamped_outside_any_plausible_time_are_quarantined(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = good_rows(5)
    df.loc[1, "ts"] = pd.Timestamp("1970-01-01 00:00:07", tz="UTC")  # clock reset
    df.loc[3, "ts"] = pd.Timestamp("2099-01-01 00:00:00", tz="UTC")
    df.to_parquet(landing / "clock.parquet")
    arrived = (HOUR + timedelta(minutes=59)).timestamp()
    os.utime(landing / "clock.parquet", (arrived, arrived))
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert quarantine_rows(result) == [
        ["clock.parquet", 1, "ts", "implausible_timestamp", "1970-01-01 00:00:07+00"],
        ["clock.parquet", 3, "ts", "implausible_timestamp", "2099-01-01 00:00:00+00"],
    ]
    rule = landing_rules(CONTRACT)["plausible_timestamps"]
    assert result.quarantine["message"].iloc[0] == (
        "clock.parquet row 1: column 'ts' value '1970-01-01 00:00:07+00' is not a plausible "
        f"reading time (not before {rule['earliest']}, at most "
        f"{rule['max_hours_after_arrival']} h after the file arrived at 2026-01-01 00:59:00+00; "
        "contracts/sensor_readings.yaml)"
    )
    assert result.rows_read == result.rows_clean + result.rows_quarantined == 5


def test_a_file_is_indexed_by_the_hours_it_really_touches(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = pd.concat([good_rows(2), good_rows(2, start_minute=180)], ignore_index=True)
    df.loc[0, "ts"] = pd.Timestamp("1970-01-01", tz="UTC")
    df.to_parquet(landing / "gappy.parquet")
    run_hour(landing, index_path=tmp_path / "index.json")
    span = LandingIndex(tmp_path / "index.json").entries["gappy.parquet"]
    assert span.hours == ["2026-01-01-00:00", "2026-01-01-03:00"]


def test_every_row_of_a_file_is_clean_or_quarantined_once_across_the_hours(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = pd.concat([good_rows(4), good_rows(4, start_minute=60)], ignore_index=True)
    df = df.astype({"ts": object})
    df.loc[2, "ts"] = "1970-01-01T00:00:00Z"
    df.loc[5, "ts"] = "2099-06-01T00:00:00Z"
    df.loc[6, "ts"] = "not a time"
    text = csv_text(df.assign(ts=pd.to_datetime(df["ts"], errors="coerce", utc=True)))
    lines = text.splitlines()
    lines[7] = lines[7].replace(lines[7].split(",")[1], "not a time")
    (landing / "both.csv").write_text("\n".join(lines) + "\n")
    results = [
        run_hour(landing, key=key, start=start)[1]
        for key, start in (("2026-01-01-00:00", HOUR), (K1, HOUR + timedelta(hours=1)))
    ]
    assert sum(r.rows_read for r in results) == len(df) == 8
    assert sum(r.rows_clean + r.rows_quarantined for r in results) == 8
    assert all(r.balanced for r in results)
    h0_rules = sorted(q[3] for q in quarantine_rows(results[0]))
    assert h0_rules == ["implausible_timestamp", "implausible_timestamp", "unparsable_value"]
    assert quarantine_rows(results[1]) == []
