"""Limits of the landing format (contracts/sensor_readings.yaml): device ids of bounded length and
shape, files of bounded width and size, and one notice per file for its extra columns. Every
breach is quarantined with its own rule and a message naming file, row, column and the limit."""

import dataclasses
import time

import pandas as pd
import pytest
import support.quality_helpers as helpers
from support.quality_helpers import CONTRACT, arrived_in_hour, good_rows, quarantine_rows, run_hour

from refrig_assets.ingestion.landing import readers
from refrig_assets.ingestion.landing.readers import landing_rules

pytestmark = pytest.mark.fault_injection

DEVICE = CONTRACT.column("device_id").extra
MAX_COLUMNS = int(landing_rules(CONTRACT)["max_columns"])


def csv_text(df: pd.DataFrame) -> str:
    out = df.copy()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.to_csv(index=False)


def with_landing(monkeypatch, **rules) -> None:
    """Run the hour under a contract whose ``landing:`` block has ``rules`` changed."""
    settings = {**CONTRACT.settings, "landing": {**landing_rules(CONTRACT), **rules}}
    monkeypatch.setattr(helpers, "CONTRACT", dataclasses.replace(CONTRACT, settings=settings))


def wide_csv(extra: int, rows: int = 3) -> str:
    """A CSV of ``rows`` good readings and ``extra`` columns the contract does not know."""
    df = good_rows(rows)
    wide = pd.concat([df, pd.DataFrame({f"x{i}": ["v"] * rows for i in range(extra)})], axis=1)
    return csv_text(wide)


def test_the_contract_limits_device_ids():
    assert DEVICE["max_length"] == 64
    assert DEVICE["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._:-]*$"


@pytest.mark.parametrize("most_listed", [None, 0], ids=["values_looked_up", "rows_tested"])
def test_device_ids_too_long_or_of_the_wrong_shape_are_quarantined(
    tmp_path, monkeypatch, most_listed
):
    # the file's breaking values are listed once and looked up per row; a file with more of
    # them than listed has each row tested: the same rows are quarantined either way
    if most_listed is not None:
        monkeypatch.setattr(readers, "MOST_BREAKS_LISTED", most_listed)
    landing = tmp_path / "landing"
    landing.mkdir()
    long_id = "d" * 65
    df = pd.concat(
        [
            good_rows(1, device="dev-1"),
            good_rows(1, device=long_id, start_minute=1),
            good_rows(1, device="bad id;drop", start_minute=2),
            good_rows(1, device="-leading-dash", start_minute=3),
            good_rows(1, device="gw:01/x", start_minute=4),
            good_rows(1, device="a" * 64, start_minute=5),
            good_rows(1, device="site.7:unit_3-b", start_minute=6),
        ],
        ignore_index=True,
    )
    (landing / "ids.csv").write_text(csv_text(df))
    df.assign(ts=df["ts"] + pd.Timedelta(minutes=10)).to_parquet(landing / "ids.parquet")
    _, result = run_hour(landing, registered=("dev-1", "a" * 64, "site.7:unit_3-b"))
    assert quarantine_rows(result) == [
        [f, row, "device_id", "invalid_device_id", value]
        for f in ("ids.csv", "ids.parquet")
        for row, value in [(1, long_id), (2, "bad id;drop"), (3, "-leading-dash"), (4, "gw:01/x")]
    ]
    messages = result.quarantine["message"].tolist()
    assert messages[0] == (
        f"ids.csv row 1: column 'device_id' value '{long_id}' is longer than 64 characters "
        "(max_length in contracts/sensor_readings.yaml)"
    )
    assert messages[1] == (
        "ids.csv row 2: column 'device_id' value 'bad id;drop' does not match the pattern "
        "'^[A-Za-z0-9][A-Za-z0-9._:-]*$' (pattern in contracts/sensor_readings.yaml)"
    )
    assert result.rows_clean == 6  # 3 valid ids in each of the 2 files
    assert result.rows_read == result.rows_clean + result.rows_quarantined


def test_a_file_over_the_size_limit_is_quarantined_whole_without_being_read(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    landing.mkdir()
    good_rows(3).to_parquet(landing / "good.parquet")
    (landing / "huge.csv").write_text(csv_text(good_rows(59, device="dev-2")) * 4)
    arrived_in_hour(landing / "huge.csv")
    size = (landing / "huge.csv").stat().st_size
    assert (landing / "good.parquet").stat().st_size < size - 1
    with_landing(monkeypatch, max_file_bytes=size - 1)
    clean, result = run_hour(landing)
    assert len(clean) == 3
    assert quarantine_rows(result) == [["huge.csv", -1, None, "file_too_large", None]]
    assert result.quarantine["message"].tolist() == [
        f"huge.csv: {size} bytes, more than the {size - 1} allowed (landing.max_file_bytes in "
        "contracts/sensor_readings.yaml); not read"
    ]
    assert result.rows_read == result.rows_clean + result.rows_quarantined == 3


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_file_over_the_column_cap_is_quarantined_whole_once(tmp_path, kind):
    landing = tmp_path / "landing"
    landing.mkdir()
    good_rows(3).to_parquet(landing / "good.parquet")
    extra = 3000
    assert len(CONTRACT.columns) + extra > MAX_COLUMNS
    path = landing / f"wide.{kind}"
    if kind == "csv":
        path.write_text(wide_csv(extra))
    else:
        pd.read_csv(pd.io.common.StringIO(wide_csv(extra))).to_parquet(path)
    arrived_in_hour(path)
    started = time.monotonic()
    clean, result = run_hour(landing)
    assert time.monotonic() - started < 20
    assert len(clean) == 3
    assert quarantine_rows(result) == [[path.name, -1, None, "too_many_columns", None]]
    assert result.quarantine["message"].tolist() == [
        f"{path.name}: {len(CONTRACT.columns) + extra} columns, more than the {MAX_COLUMNS} "
        "allowed (landing.max_columns in contracts/sensor_readings.yaml); not read"
    ]


def test_many_extra_columns_make_one_notice_and_the_rows_are_kept(tmp_path, monkeypatch):
    """3,000 extra columns under a raised cap: one notice naming the count and the first few
    names, the readings kept, and no per-column cost."""
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "wide.csv").write_text(wide_csv(3000))
    with_landing(monkeypatch, max_columns=5000)
    started = time.monotonic()
    clean, result = run_hour(landing)
    assert time.monotonic() - started < 20
    assert len(clean) == 3
    assert quarantine_rows(result) == [["wide.csv", -1, "x0", "extra_column", None]]
    assert result.quarantine["message"].tolist() == [
        "wide.csv: 3000 columns are not in contracts/sensor_readings.yaml ('x0', 'x1', 'x2', "
        "'x3', 'x4' and 2995 more); their values are ignored, the rows are kept"
    ]
    assert result.rows_read == result.rows_clean + result.rows_quarantined == 3
