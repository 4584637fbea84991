"""Exports with one file per sensor (`d1_temp.csv`, `d1_door.csv`: time and value) imported one
by one became one landing file each with the same devices and times: the pipeline kept the
first file's row of each device and time and quarantined every reading of the other sensor as
duplicate_reading. `refrig import --name X --merge` adds a file's measurements to the readings
the import X holds."""

from pathlib import Path

import pandas as pd
from support.quality_helpers import quarantine_rows, run_hour
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.settings import get_settings

MAPPING = (
    "layout: wide\n"
    "device_id: {{value: d1}}\n"
    "timestamp: {{column: ts}}\n"
    "sensors:\n"
    "  value: {{to: {target}}}\n"
)
TIMES = ["2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"]


def _source(folder: Path, name: str, target: str, values: list[str]) -> tuple[Path, Path]:
    data = folder / f"{name}.csv"
    data.write_text(
        "ts,value\n" + "".join(f"{t},{v}\n" for t, v in zip(TIMES, values, strict=True))
    )
    mapping = folder / f"{name}.yaml"
    mapping.write_text(MAPPING.format(target=target))
    return data, mapping


def _import(data: Path, mapping: Path, *extra: str):
    result = CliRunner().invoke(
        app, ["import", str(data), "--mapping", str(mapping), "--name", "d1", *extra]
    )
    assert result.exit_code == 0, result.output
    return result


def test_per_sensor_files_merged_into_one_import_keep_every_reading(refrig_home, tmp_path):
    temp = _source(tmp_path, "d1_temp", "temperature_evaporator", ["-18.5", "-18.4", "-18.3"])
    door = _source(tmp_path, "d1_door", "door_open", ["0", "1", ""])
    _import(*temp)
    _import(*door, "--merge")
    landing = get_settings().landing_dir
    files = sorted((landing / "imports").rglob("*.parquet"))
    assert [f.relative_to(landing).as_posix() for f in files] == [
        "imports/d1/2026-01-01/readings_20260101T00.parquet"
    ]
    clean, result = run_hour(landing, registered=("d1",), index_path=tmp_path / "index.json")
    assert quarantine_rows(result) == []
    clean = clean.sort_values("ts")
    assert clean["temperature_evaporator"].tolist() == [-18.5, -18.4, -18.3]
    assert clean["door_open"].iloc[:2].tolist() == [False, True]
    assert pd.isna(clean["door_open"].iloc[2])
    # The same file merged again changes nothing.
    before = pd.read_parquet(files[0])
    _import(*door, "--merge")
    pd.testing.assert_frame_equal(pd.read_parquet(files[0]), before)


def test_a_merged_value_that_differs_keeps_the_first_and_is_named(refrig_home, tmp_path):
    first = _source(tmp_path, "a", "temperature_evaporator", ["-18.5", "-18.4", "-18.3"])
    second = _source(tmp_path, "b", "temperature_evaporator", ["-18.5", "-9", ""])
    _import(*first)
    _import(*second, "--merge")
    landing = get_settings().landing_dir
    (only,) = sorted((landing / "imports").rglob("*.parquet"))
    assert pd.read_parquet(only)["temperature_evaporator"].tolist() == [-18.5, -18.4, -18.3]
    q = pd.read_parquet(get_settings().data_dir / "import_quarantine" / "d1+b.parquet")
    assert q[["row", "column", "rule"]].values.tolist() == [
        [-1, "temperature_evaporator", "duplicate_reading"]
    ]
    assert "1 value(s) of temperature_evaporator" in q["message"].iloc[0]


def test_merge_needs_the_import_it_adds_to(refrig_home, tmp_path):
    data, mapping = _source(tmp_path, "a", "temperature_evaporator", ["1", "2", "3"])
    result = CliRunner().invoke(app, ["import", str(data), "--mapping", str(mapping), "--merge"])
    assert result.exit_code == 2
    assert "--merge needs --name" in result.output
