"""Bad landing files: each case is quarantined with its file, row, rule and a clear message, the
rest of the hour still materializes, and rows read = rows clean + rows quarantined."""

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from support.quality_helpers import (
    CONTRACT,
    HOUR,
    arrived_in_hour,
    good_rows,
    quarantine_rows,
    run_hour,
)

from refrig_assets.quality.rules import decode_mask


def landing_with_good_file(tmp_path, n=3):
    landing = tmp_path / "landing"
    landing.mkdir()
    good_rows(n).to_parquet(landing / "good.parquet")
    return landing


def csv_text(df: pd.DataFrame) -> str:
    out = df.copy()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.to_csv(index=False)


def test_an_empty_file_is_quarantined_and_the_hour_still_materializes(tmp_path):
    landing = landing_with_good_file(tmp_path)
    (landing / "empty.csv").write_bytes(b"")
    arrived_in_hour(landing / "empty.csv")
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert quarantine_rows(result) == [["empty.csv", -1, None, "empty_file", None]]
    assert result.quarantine["message"].tolist() == ["empty.csv: file is empty (0 bytes)"]
    assert result.rows_read == result.rows_clean + result.rows_quarantined == 3


def test_a_header_only_csv_is_an_empty_file(tmp_path):
    landing = landing_with_good_file(tmp_path)
    (landing / "header_only.csv").write_text(",".join(CONTRACT.column_names) + "\n")
    arrived_in_hour(landing / "header_only.csv")
    _, result = run_hour(landing)
    assert quarantine_rows(result) == [["header_only.csv", -1, None, "empty_file", None]]
    assert result.quarantine["message"].tolist() == ["header_only.csv: file has no data rows"]


def test_a_corrupt_parquet_file_is_quarantined_as_unreadable(tmp_path):
    landing = landing_with_good_file(tmp_path)
    (landing / "corrupt.parquet").write_bytes(b"this is not parquet at all")
    (landing / "binary.csv").write_bytes(bytes(range(256)))
    arrived_in_hour(landing / "corrupt.parquet", landing / "binary.csv")
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert quarantine_rows(result) == [
        ["binary.csv", -1, None, "unreadable_file", None],
        ["corrupt.parquet", -1, None, "unreadable_file", None],
    ]
    binary, parquet = result.quarantine["message"]
    assert binary.startswith("binary.csv: cannot be read as CSV (")
    assert parquet.startswith("corrupt.parquet: cannot be read as Parquet (")


def test_a_truncated_parquet_file_is_quarantined_as_truncated(tmp_path):
    landing = landing_with_good_file(tmp_path)
    whole = (landing / "good.parquet").read_bytes()
    (landing / "cut.parquet").write_bytes(whole[: len(whole) // 2])
    arrived_in_hour(landing / "cut.parquet")
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert quarantine_rows(result) == [["cut.parquet", -1, None, "truncated_file", None]]
    assert result.quarantine["message"].tolist() == [
        "cut.parquet: Parquet file is truncated (it ends before the closing 'PAR1' footer)"
    ]


def test_a_csv_cut_off_mid_line_quarantines_only_the_partial_last_row(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    text = csv_text(good_rows(4))
    cut = text[: text.rstrip("\n").rfind(",", 0, len(text) - 30)]  # last line loses columns
    (landing / "cut.csv").write_text(cut)
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert quarantine_rows(result) == [["cut.csv", 3, None, "truncated_row", cut.splitlines()[-1]]]
    assert result.quarantine["message"].iloc[0] == (
        f"cut.csv row 3: last line is cut short (file truncated): {cut.splitlines()[-1]}"
    )
    assert result.quarantine["ts"].iloc[0] == HOUR + pd.Timedelta(minutes=3)
    assert result.rows_read == result.rows_clean + result.rows_quarantined == 4


def test_lines_of_a_non_utf8_csv_that_cannot_be_decoded_are_quarantined(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = good_rows(3)
    df.loc[1, "device_id"] = "kühl-1"
    (landing / "latin1.csv").write_bytes(csv_text(df).encode("latin-1"))
    clean, result = run_hour(landing, registered=("dev-1", "kühl-1"))
    assert clean["device_id"].tolist() == ["dev-1", "dev-1"]
    [[file, row, column, rule, value]] = quarantine_rows(result)
    assert (file, row, column, rule) == ("latin1.csv", 1, None, "not_utf8")
    assert value.endswith(",False") and "2026-01-01T00:01:00Z" in value
    assert (
        result.quarantine["message"]
        .iloc[0]
        .startswith("latin1.csv row 1: line is not valid UTF-8: ")
    )
    assert result.rows_read == result.rows_clean + result.rows_quarantined == 3


def test_a_utf16_csv_is_quarantined_naming_its_encoding(tmp_path):
    landing = landing_with_good_file(tmp_path)
    (landing / "export.csv").write_bytes(csv_text(good_rows(2)).encode("utf-16"))
    arrived_in_hour(landing / "export.csv")
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert quarantine_rows(result) == [["export.csv", -1, None, "not_utf8", None]]
    [message] = result.quarantine["message"].tolist()
    assert message.startswith("export.csv: is UTF-16 text (byte order mark FF FE)")
    assert "refrig import" in message


def test_a_csv_with_another_delimiter_is_quarantined_as_wrong_delimiter(tmp_path):
    landing = landing_with_good_file(tmp_path)
    good_rows(2, device="dev-2").to_csv(landing / "semicolons.csv", sep=";", index=False)
    arrived_in_hour(landing / "semicolons.csv")
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert quarantine_rows(result) == [["semicolons.csv", -1, None, "wrong_delimiter", None]]
    header = ";".join(CONTRACT.column_names)
    assert result.quarantine["message"].tolist() == [
        f"semicolons.csv: header is a single column {header!r}; the file looks ';'-delimited "
        "but contracts/sensor_readings.yaml expects ','"
    ]


def test_a_file_missing_columns_is_quarantined_naming_them(tmp_path):
    landing = landing_with_good_file(tmp_path)
    good_rows().drop(columns=["device_id", "ambient_temperature"]).to_parquet(
        landing / "no_device.parquet"
    )
    arrived_in_hour(landing / "no_device.parquet")
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert quarantine_rows(result) == [
        ["no_device.parquet", -1, "device_id", "missing_column", None]
    ]
    message = result.quarantine["message"].iloc[0]
    # Measurements are optional (a fleet may lack a sensor): only device_id is named.
    assert message.startswith(
        "no_device.parquet: missing column(s) 'device_id' required by "
        "contracts/sensor_readings.yaml (file has ["
    )


def test_a_file_without_some_measurements_is_read_with_them_missing(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    measurements = [c.name for c in CONTRACT.columns if c.extra.get("optional")]
    kept = ["temperature_evaporator", "door_open"]
    good_rows(3).drop(columns=[m for m in measurements if m not in kept]).to_parquet(
        landing / "temp_door.parquet"
    )
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert clean["temperature_evaporator"].notna().all()
    assert clean["pressure_low_side"].isna().all()
    assert quarantine_rows(result) == []


def test_a_file_without_any_measurement_is_quarantined(tmp_path):
    landing = landing_with_good_file(tmp_path)
    measurements = [c.name for c in CONTRACT.columns if c.extra.get("optional")]
    good_rows(2, device="dev-2").drop(columns=measurements).to_parquet(landing / "ids.parquet")
    arrived_in_hour(landing / "ids.parquet")
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert quarantine_rows(result)[0][:4] == ["ids.parquet", -1, measurements[0], "missing_column"]
    assert "(min_measurements)" in result.quarantine["message"].iloc[0]


def test_extra_columns_are_reported_and_the_rows_kept(tmp_path):
    """Decision: a column beyond the contract is noted in the quarantine (row -1, rule
    extra_column) and ignored; the file's readings are kept (``extra_columns: report``)."""
    landing = tmp_path / "landing"
    landing.mkdir()
    good_rows(3).assign(firmware="1.2.3").to_parquet(landing / "extra.parquet")
    clean, result = run_hour(landing)
    assert len(clean) == 3 and "firmware" not in clean.columns
    assert quarantine_rows(result) == [["extra.parquet", -1, "firmware", "extra_column", None]]
    assert result.quarantine["message"].tolist() == [
        "extra.parquet: column 'firmware' is not in contracts/sensor_readings.yaml; its values "
        "are ignored, the rows are kept"
    ]
    assert result.rows_read == result.rows_clean == 3 and result.rows_quarantined == 0


def test_text_that_is_not_a_number_is_quarantined_with_row_column_and_value(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = good_rows(4).astype({"pressure_low_side": object})
    df.loc[2, "pressure_low_side"] = "abc"
    (landing / "mixed.csv").write_text(csv_text(df))
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert result.rows_read == result.rows_clean + result.rows_quarantined == 4
    assert quarantine_rows(result) == [
        ["mixed.csv", 2, "pressure_low_side", "unparsable_value", "abc"]
    ]
    assert result.quarantine["message"].tolist() == [
        "mixed.csv row 2: column 'pressure_low_side' value 'abc' cannot be parsed as float"
    ]


def test_a_parquet_column_of_the_wrong_type_quarantines_the_file(tmp_path):
    landing = landing_with_good_file(tmp_path)
    df = good_rows(2, device="dev-2")
    df["ts"] = df["ts"].astype("int64") // 10**9  # epoch seconds: no unit, no zone
    df.to_parquet(landing / "epoch.parquet")
    arrived_in_hour(landing / "epoch.parquet")
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert quarantine_rows(result) == [["epoch.parquet", -1, "ts", "wrong_type", None]]
    assert result.quarantine["message"].tolist() == [
        "epoch.parquet: column 'ts' has type BIGINT, which cannot hold a timestamp "
        "(contracts/sensor_readings.yaml)"
    ]


def test_a_nan_storm_file_is_quarantined_row_by_row_with_the_share_missing(tmp_path):
    landing = landing_with_good_file(tmp_path)
    storm = good_rows(10, device="dev-2")
    for s in CONTRACT.sensor_columns:
        storm[s] = np.nan
    storm.loc[0, "pressure_low_side"] = 300.0  # 1 of 70 values present
    storm.to_parquet(landing / "storm.parquet")
    clean, result = run_hour(landing)
    assert clean["device_id"].unique().tolist() == ["dev-1"]
    assert quarantine_rows(result) == [
        ["storm.parquet", r, None, "nan_storm", None] for r in range(10)
    ]
    assert result.quarantine["message"].iloc[4] == (
        "storm.parquet row 4: NaN storm, 98.6% of the file's sensor values in this hour are "
        "missing (limit 80% in contracts/sensor_readings.yaml); all its rows are quarantined"
    )
    assert result.nan_storm_files == {"storm.parquet": 69 / 70}
    assert result.rows_read == result.rows_clean + result.rows_quarantined == 13


def test_a_file_delivered_twice_under_another_name_is_read_once(tmp_path):
    landing = landing_with_good_file(tmp_path)
    (landing / "again.parquet").write_bytes((landing / "good.parquet").read_bytes())
    later = (landing / "good.parquet").stat().st_mtime_ns + 10**9
    os.utime(landing / "again.parquet", ns=(later, later))
    clean, result = run_hour(landing)
    assert len(clean) == 3 and clean["quality_mask"].eq(0).all()
    assert quarantine_rows(result) == [["again.parquet", -1, None, "duplicate_file", None]]
    assert result.quarantine["message"].tolist() == [
        "again.parquet: same content as good.parquet (delivered twice); not read again"
    ]


def test_duplicate_readings_keep_the_first_copy_flagged_and_quarantine_the_others(tmp_path):
    landing = landing_with_good_file(tmp_path)
    good_rows(1).to_parquet(landing / "resent.parquet")  # same reading, different file bytes
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert decode_mask(int(clean.loc[0, "quality_mask"])) == ["DUPLICATE"]
    assert quarantine_rows(result) == [
        ["resent.parquet", 0, None, "duplicate_reading", "2026-01-01 00:00:00+00"]
    ]
    assert result.quarantine["message"].tolist() == [
        "resent.parquet row 0: duplicate reading for device dev-1 at 2026-01-01T00:00:00Z "
        "(kept: good.parquet row 0)"
    ]


def test_rows_without_device_or_timestamp_are_quarantined_as_missing_values(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = good_rows(3)
    df.loc[1, "device_id"] = None
    df.to_parquet(landing / "holes.parquet")
    clean, result = run_hour(landing)
    assert len(clean) == 2
    assert quarantine_rows(result) == [["holes.parquet", 1, "device_id", "missing_value", None]]
    assert result.quarantine["message"].tolist() == [
        "holes.parquet row 1: required column 'device_id' is empty"
    ]


def test_readings_are_assigned_to_the_hour_of_their_timestamp(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    pd.concat([good_rows(2, start_minute=58), good_rows(2, start_minute=60)]).to_parquet(
        landing / "spanning.parquet"
    )
    clean, result = run_hour(landing)
    assert clean["ts"].dt.hour.tolist() == [0, 0]
    assert result.rows_read == 2


def test_a_mixed_landing_directory_accounts_for_every_row(tmp_path):
    """Good and bad files together: every delivered row is clean or quarantined, once."""
    landing = tmp_path / "landing"
    (landing / "sub").mkdir(parents=True)
    good_rows(20).to_parquet(landing / "a.parquet")
    good_rows(20, device="dev-2").to_parquet(landing / "sub" / "b.parquet")
    bad = good_rows(10, device="dev-3").astype({"current_compressor": object})
    bad.loc[[2, 5], "current_compressor"] = "n/a"
    text = csv_text(bad)
    (landing / "c.csv").write_text(text + "dev-3,2026-01-01T00:30:00Z,1,2\n")  # malformed
    good_rows(5).to_parquet(landing / "resent.parquet")  # 5 duplicate readings
    storm = good_rows(12, device="dev-4")
    storm[CONTRACT.sensor_columns] = np.nan
    storm.to_parquet(landing / "storm.parquet")
    (landing / "empty.parquet").write_bytes(b"")
    (landing / "corrupt.csv").write_bytes(b"\x00\x01\x02")
    good_rows(3, device="dev-5").drop(columns=["ts"]).to_parquet(landing / "no_ts.parquet")
    arrived_in_hour(*(landing / f for f in ("empty.parquet", "corrupt.csv", "no_ts.parquet")))

    clean, result = run_hour(landing, registered=("dev-1", "dev-2", "dev-3"))

    delivered = 20 + 20 + 11 + 5 + 12
    assert result.rows_read == delivered
    assert result.rows_read == result.rows_clean + result.rows_quarantined
    assert result.rows_clean == len(clean) == 20 + 20 + 8
    rules = result.quarantine.groupby("rule").size().to_dict()
    assert rules == {
        "duplicate_reading": 5,
        "empty_file": 1,
        "malformed_row": 1,
        "missing_column": 1,
        "nan_storm": 12,
        "unparsable_value": 2,
        "unreadable_file": 1,
    }
    file_rows = result.quarantine[result.quarantine["row"] == -1]
    assert sorted(file_rows["source_file"]) == ["corrupt.csv", "empty.parquet", "no_ts.parquet"]
    assert not clean.duplicated(["device_id", "ts"]).any()


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


def test_nan_in_a_parquet_float_column_is_a_dropout_not_out_of_range(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = good_rows(3)
    df.loc[1, "vibration_compressor"] = np.nan
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), landing / "nan.parquet")
    clean, _ = run_hour(landing)
    assert decode_mask(int(clean.loc[1, "quality_mask"])) == ["SENSOR_DROPOUT"]
    assert pd.isna(clean.loc[1, "vibration_compressor"])
