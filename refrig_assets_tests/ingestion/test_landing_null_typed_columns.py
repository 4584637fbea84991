"""A Parquet column without a single value is written with Arrow's ``null`` type (pandas does so
for an all-None column: a sensor absent for the whole hour, or an empty hour's file). It holds a
missing value of every contract type: the file's readings are read, not rejected as
``wrong_type``."""

import pyarrow.parquet as pq
import pytest
from support.quality_helpers import good_rows, quarantine_rows, run_hour

pytestmark = pytest.mark.fault_injection


def test_an_all_none_sensor_column_keeps_the_files_readings(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    rows = good_rows(3)
    rows["pressure_high_side"] = None
    rows["door_open"] = None
    path = landing / "readings_20260101T00.parquet"
    rows.to_parquet(path)
    assert str(pq.read_schema(path).field("pressure_high_side").type) == "null"
    clean, result = run_hour(landing)
    assert quarantine_rows(result) == []
    assert len(clean) == 3
    assert clean["pressure_high_side"].isna().all()
    assert clean["door_open"].isna().all()
    expected = rows["temperature_evaporator"].tolist()
    assert clean.sort_values("ts")["temperature_evaporator"].tolist() == expected


def test_a_zero_row_parquet_written_from_an_empty_frame_is_an_empty_file(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    good_rows(3).iloc[:0].astype({"device_id": object}).to_parquet(
        landing / "readings_20260101T00.parquet"
    )
    good_rows(2, device="dev-2").to_parquet(landing / "gateway_20260101T00.parquet")
    clean, result = run_hour(landing)
    assert len(clean) == 2
    assert quarantine_rows(result) == [
        ["readings_20260101T00.parquet", -1, None, "empty_file", None]
    ]


def test_a_null_typed_device_id_quarantines_each_row_not_the_file(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    rows = good_rows(2)
    rows["device_id"] = None
    rows.to_parquet(landing / "readings_20260101T00.parquet")
    good_rows(2, device="dev-2").to_parquet(landing / "b_20260101T00.parquet")
    clean, result = run_hour(landing)
    assert clean["device_id"].tolist() == ["dev-2", "dev-2"]
    assert quarantine_rows(result) == [
        ["readings_20260101T00.parquet", 0, "device_id", "missing_value", None],
        ["readings_20260101T00.parquet", 1, "device_id", "missing_value", None],
    ]
