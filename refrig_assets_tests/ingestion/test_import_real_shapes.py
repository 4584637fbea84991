"""Import of the shapes public machine datasets come in: a folder of 1 Hz experiments numbered per
sub-folder (the same file name in several folders), semicolon-separated local times and gauge
pressures below zero; a single ``timestamp,value`` series."""

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.settings import PROJECT_ROOT
from refrig_assets.ingestion.mapping import convert_frame, file_device_id, load_mapping

EXAMPLES = PROJECT_ROOT / "examples" / "mappings"
RIG_HEADER = (
    "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;"
    "Voltage;Volume Flow RateRMS;anomaly;changepoint"
)


def rig_file(path: Path, start: str, pressures: list[float]) -> None:
    t0 = pd.Timestamp(start)
    lines = [RIG_HEADER]
    for i, p in enumerate(pressures):
        ts = (t0 + pd.Timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{ts};0.0265;0.0401;1.33;{p};79.3;26.0;233.0;32.0;0.0;0.0")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_file_device_id_takes_the_enclosing_folders():
    assert file_device_id("/x/data/valve1/0.csv") == "0"
    assert file_device_id("/x/data/valve1/0.csv", 1) == "valve1-0"
    assert file_device_id("/x/data/valve1/0.csv.gz", 2) == "data-valve1-0"
    assert file_device_id("0.csv", 3) == "0"


def test_a_folder_of_experiments_with_the_same_file_names_imports_one_device_per_file(
    refrig_home, tmp_path
):
    # valve1/0.csv and valve2/0.csv fall in the same hour: named by file name alone they were
    # one device and the second import replaced the first one's landing file.
    data = tmp_path / "data"
    rig_file(data / "valve1" / "0.csv", "2020-03-09 10:14:33", [0.05, -0.27, 0.38])
    rig_file(data / "valve2" / "0.csv", "2020-03-09 10:20:00", [0.10, 0.20])
    mapping = EXAMPLES / "1hz_test_rig.yaml"
    result = CliRunner().invoke(app, ["import", str(data), "--mapping", str(mapping)])
    assert result.exit_code == 0, result.output
    # 2020 is before the contract's earliest plausible reading: the import says so.
    assert result.output.count("implausible_timestamp unless REFRIG_PARTITION_START is set") == 2
    imports = refrig_home / "landing" / "imports"
    assert sorted(p.name for p in imports.iterdir()) == ["valve1_0", "valve2_0"]
    frames = [pd.read_parquet(f) for f in sorted(imports.rglob("*.parquet"))]
    readings = pd.concat(frames)
    assert readings.groupby("device_id").size().to_dict() == {"rig-valve1-0": 3, "rig-valve2-0": 2}
    # Moscow local time (UTC+3) to UTC; gauge bar to absolute kPa, below-zero gauge kept positive.
    first = readings[readings["device_id"] == "rig-valve1-0"].sort_values("ts")
    assert first["ts"].iloc[0] == pd.Timestamp("2020-03-09 07:14:33", tz="UTC")
    assert first["pressure_low_side"].round(3).tolist() == [106.325, 74.325, 139.325]
    quarantine = refrig_home / "data" / "import_quarantine"
    assert sorted(p.name for p in quarantine.iterdir()) == ["valve1_0.parquet", "valve2_0.parquet"]
    notes = pd.read_parquet(quarantine / "valve1_0.parquet")
    assert set(notes["rule"]) == {"extra_column"}
    assert sorted(notes["column"]) == sorted(
        ["Accelerometer2RMS", "Voltage", "Volume Flow RateRMS", "anomaly", "changepoint"]
    )


def test_a_single_timestamp_value_series_becomes_one_device():
    mapping = load_mapping(EXAMPLES / "single_sensor_series.yaml")
    raw = pd.DataFrame(
        {"timestamp": ["2013-12-02 21:15:00", "2013-12-02 21:20:00"], "value": ["73.4", "212"]}
    )
    out = convert_frame(raw, mapping, "machine_temperature.csv")
    assert out.readings["device_id"].tolist() == ["machine-temperature"] * 2
    assert out.readings["ts"].tolist() == [
        pd.Timestamp("2013-12-02 21:15:00", tz="UTC"),
        pd.Timestamp("2013-12-02 21:20:00", tz="UTC"),
    ]
    assert out.readings["temperature_condenser"].round(6).tolist() == [23.0, 100.0]
    assert len(out.quarantine) == 0
