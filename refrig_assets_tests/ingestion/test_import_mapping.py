"""`refrig import SOURCE --mapping FILE`: a fleet's own exports (other names, other units, long
or wide, compressed, epoch or local times) become landing files the pipeline reads as they are;
rows that cannot be readings are quarantined with their rule, never dropped."""

import gzip
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.duck import connect
from refrig_assets.core.settings import PROJECT_ROOT
from refrig_assets.ingestion.landing.readers import open_file
from refrig_assets.ingestion.mapping import (
    MappingError,
    convert_frame,
    load_mapping,
    load_units,
)

EXAMPLES = PROJECT_ROOT / "examples" / "mappings"


def write_mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    return path


def test_every_shipped_example_mapping_loads():
    names = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert len(names) >= 4
    for path in EXAMPLES.glob("*.yaml"):
        assert load_mapping(path).sensors


def test_units_convert_into_the_contract_units():
    units = load_units()
    s = pd.Series([1.0])
    assert units.conversion("bar", "kPa").apply(s)[0] == pytest.approx(100.0)
    assert units.conversion("psi", "kPa").apply(s)[0] == pytest.approx(6.894757)
    assert units.conversion("barg", "kPa").apply(s)[0] == pytest.approx(201.325)
    assert units.conversion("°F", "degC").apply(pd.Series([212.0]))[0] == pytest.approx(100.0)
    assert units.conversion("degF", "degC").apply(pd.Series([32.0]))[0] == pytest.approx(0.0)
    # 1 g RMS at 50 Hz is 9806.65 / (2 pi 50) mm/s RMS.
    assert units.conversion("g", "mm/s").apply(s, 50.0)[0] == pytest.approx(
        9806.65 / (2 * math.pi * 50)
    )
    with pytest.raises(MappingError, match="cannot be converted"):
        units.conversion("furlong", "kPa")


def test_wide_export_with_epoch_ms_fahrenheit_gauge_bar_and_g_is_converted(tmp_path):
    mapping = load_mapping(EXAMPLES / "wide_metric_units.yaml")
    t0 = 1767225600000  # 2026-01-01T00:00:00Z in ms
    raw = pd.DataFrame(
        {
            "asset": ["pump-1", "pump-1", "pump-2"],
            "time_ms": [str(t0), str(t0 + 60_000), str(t0)],
            "evap_temp_F": ["23", "24.8", "-4"],
            "cond_temp_F": ["104", "104", "104"],
            "suction_bar": ["2.0", "2.0", "1.5"],
            "discharge_bar": ["12", "12", "11"],
            "comp_amps": ["8.5", "0", "9"],
            "vib_g_rms": ["0.01", "0.02", "0.01"],
            "room_temp_F": ["68", "68", "68"],
            "door": ["closed", "open", "closed"],
            "firmware": ["1.2", "1.2", "1.3"],
        }
    )
    out = convert_frame(raw, mapping, "export.csv")
    r = out.readings
    assert list(r.columns) == load_contract("sensor_readings").column_names  # all mapped
    assert r["ts"].iloc[0] == pd.Timestamp("2026-01-01T00:00:00Z")
    first = r[(r["device_id"] == "pump-1")].iloc[0]
    assert first["temperature_evaporator"] == pytest.approx(-5.0)
    assert first["temperature_condenser"] == pytest.approx(40.0)
    assert first["pressure_low_side"] == pytest.approx(301.325)  # 2 bar gauge, absolute kPa
    assert first["vibration_compressor"] == pytest.approx(0.01 * 9806.65 / (2 * math.pi * 50))
    assert r["door_open"].tolist() == [False, True, False]
    # The unmapped column is noted once, its rows kept.
    q = out.quarantine
    assert q[["row", "column", "rule"]].values.tolist() == [[-1, "firmware", "extra_column"]]


def test_long_export_in_local_time_is_pivoted_converted_and_checked(tmp_path):
    mapping = load_mapping(EXAMPLES / "long_device_ts_sensor_value.yaml")
    raw = pd.DataFrame(
        {
            "device": ["d1", "d1", "d1", "d1", "d1", "", "d2"],
            "ts": [
                "2026-07-01 12:00:00",  # Berlin summer time: UTC+2
                "2026-07-01 12:00:00",
                "2026-07-01 12:00:00",
                "2026-07-01 12:00:00",
                "2026-07-01 12:00:00",
                "2026-07-01 12:00:00",
                "2026-03-29 02:30:00",  # does not exist in Berlin (clocks jump 02:00 -> 03:00)
            ],
            "sensor": ["T_evap", "P_suction", "P_suction", "humidity", "DOOR", "T_evap", "T_evap"],
            "value": ["-20.5", "30", "31", "55", "1", "-20", "-19"],
        }
    )
    out = convert_frame(raw, mapping, "long.csv")
    r = out.readings
    assert len(r) == 1
    row = r.iloc[0]
    assert row["device_id"] == "d1"
    assert row["ts"] == pd.Timestamp("2026-07-01T10:00:00Z")
    assert row["temperature_evaporator"] == pytest.approx(-20.5)
    assert row["pressure_low_side"] == pytest.approx(30 * 6.894757293168)  # the first value
    assert bool(row["door_open"]) is True
    assert "humidity" not in r.columns
    got = sorted(map(tuple, out.quarantine[["row", "rule"]].values.tolist()))
    assert got == [
        (-1, "extra_column"),  # sensor 'humidity', once
        (2, "duplicate_reading"),
        (5, "missing_value"),  # no device
        (6, "unparsable_value"),  # nonexistent local time
    ]
    assert "humidity" in out.quarantine.set_index("rule").loc["extra_column", "message"]


def test_unparsable_values_and_bad_device_ids_are_quarantined_with_the_raw_value(tmp_path):
    mapping = load_mapping(EXAMPLES / "wide_metric_units.yaml")
    raw = pd.DataFrame(
        {
            "asset": ["ok-1", "bad id/with slash", "ok-1", "ok-1"],
            "time_ms": ["1767225600000", "1767225600000", "yesterday", "1767225660000"],
            "evap_temp_F": ["23", "23", "23", "warm"],
        }
    )
    out = convert_frame(raw, mapping, "partial.csv")
    assert len(out.readings) == 1
    q = out.quarantine.sort_values("row")
    assert q[["row", "rule", "value"]].values.tolist() == [
        [1, "invalid_device_id", "bad id/with slash"],
        [2, "unparsable_value", "yesterday"],
        [3, "unparsable_value", "warm"],
    ]
    assert q.iloc[2]["column"] == "temperature_evaporator"


def test_a_mapping_naming_unknown_units_or_columns_is_refused(tmp_path):
    bad_unit = write_mapping(
        tmp_path,
        "device_id: {column: d}\ntimestamp: {column: t}\n"
        "sensors:\n  p: {to: pressure_low_side, unit: inHg}\n",
    )
    with pytest.raises(MappingError, match="inHg"):
        load_mapping(bad_unit)
    bad_target = write_mapping(
        tmp_path,
        "device_id: {column: d}\ntimestamp: {column: t}\nsensors:\n  p: {to: humidity}\n",
    )
    with pytest.raises(MappingError, match="humidity"):
        load_mapping(bad_target)
    no_freq = write_mapping(
        tmp_path,
        "device_id: {column: d}\ntimestamp: {column: t}\n"
        "sensors:\n  v: {to: vibration_compressor, unit: g}\n",
    )
    with pytest.raises(MappingError, match="frequency_hz"):
        load_mapping(no_freq)


def test_import_of_a_gzipped_single_device_file_writes_hourly_landing_files_the_pipeline_reads(
    refrig_home, tmp_path
):
    source = tmp_path / "freezer_7.csv.gz"
    t0 = 1767225600  # 2026-01-01T00:00:00Z
    lines = ["epoch,temp_c,door_contact"]
    lines += [f"{t0 + 300 * i},{-18 + 0.1 * i:.1f},{1 if i == 3 else 0}" for i in range(24)]
    lines.append(f"{t0 + 300 * 24},n/a,0")
    with gzip.open(source, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    mapping = EXAMPLES / "single_device_temperature_door.yaml"
    result = CliRunner().invoke(app, ["import", str(source), "--mapping", str(mapping)])
    assert result.exit_code == 0, result.output
    landing = refrig_home / "landing"
    files = sorted((landing / "imports" / "freezer_7").rglob("*.parquet"))
    assert [f.name for f in files] == [
        "readings_20260101T00.parquet",
        "readings_20260101T01.parquet",
    ]
    contract = load_contract("sensor_readings")
    con = connect()
    for f in files:
        layout, rejection = open_file(con, f, landing, contract, "t")
        assert rejection is None
    first = pd.read_parquet(files[0])
    assert len(first) == 12 and set(first["device_id"]) == {"cab-freezer_7"}
    assert first["door_open"].sum() == 1
    q = pd.read_parquet(refrig_home / "data" / "import_quarantine" / "freezer_7.parquet")
    assert q[["row", "rule", "value"]].values.tolist() == [[24, "unparsable_value", "n/a"]]
    # Importing again replaces the same files (an import has an identity: its name).
    again = CliRunner().invoke(app, ["import", str(source), "--mapping", str(mapping)])
    assert again.exit_code == 0
    assert sorted((landing / "imports" / "freezer_7").rglob("*.parquet")) == files


def test_import_of_a_parquet_long_file_with_a_bad_mapping_column_says_which(refrig_home, tmp_path):
    source = tmp_path / "long.parquet"
    pd.DataFrame(
        {"device": ["a"], "when": ["2026-01-01T00:00:00Z"], "sensor": ["T_evap"], "value": [1.0]}
    ).to_parquet(source)
    mapping = EXAMPLES / "long_device_ts_sensor_value.yaml"
    result = CliRunner().invoke(app, ["import", str(source), "--mapping", str(mapping)])
    assert result.exit_code == 1
    assert "'ts'" in result.output


def _temperature_door_export(tmp_path):
    source = tmp_path / "freezer_7.csv"
    t0 = 1767225600
    lines = ["epoch,temp_c,door_contact"]
    lines += [f"{t0 + 300 * i},{-18 + 0.1 * i:.1f},0" for i in range(12)]
    source.write_text("\n".join(lines) + "\n")
    return source, EXAMPLES / "single_device_temperature_door.yaml"


def test_an_import_short_of_the_sensors_refrig_sensors_names_says_they_will_be_dropouts(
    refrig_home, tmp_path, monkeypatch
):
    source, mapping = _temperature_door_export(tmp_path)
    monkeypatch.setenv("REFRIG_SENSORS", "temperature_evaporator,door_open,current_compressor")

    result = CliRunner().invoke(app, ["import", str(source), "--mapping", str(mapping)])

    assert result.exit_code == 0, result.output
    assert "REFRIG_SENSORS names current_compressor" in result.output


def test_an_import_without_refrig_sensors_leaves_the_fleet_sensors_to_its_data(
    refrig_home, tmp_path, monkeypatch
):
    source, mapping = _temperature_door_export(tmp_path)
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)

    result = CliRunner().invoke(app, ["import", str(source), "--mapping", str(mapping)])

    assert result.exit_code == 0, result.output
    assert "REFRIG_SENSORS" not in result.output
