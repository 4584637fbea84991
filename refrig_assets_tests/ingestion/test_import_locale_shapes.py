"""Import of the shapes spreadsheet and historian exports in other locales come in: a semicolon
separator with a decimal comma, a date and a time in two columns, a spreadsheet's serial dates;
and a re-import with a corrected mapping leaves none of the earlier import's hours behind."""

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.settings import PROJECT_ROOT
from refrig_assets.ingestion.mapping import MappingError, import_file, load_mapping

WIDE = (
    "layout: wide\n"
    "device_id: {column: device}\n"
    "timestamp: {column: ts}\n"
    "sensors:\n"
    "  temp: {to: temperature_evaporator}\n"
    "  door: {to: door_open}\n"
)


def _mapping(tmp_path: Path, text: str, name: str = "mapping.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_mapping(path)


def _import(tmp_path: Path, source: Path, mapping, name: str = "src"):
    result = import_file(source, mapping, tmp_path / "landing", tmp_path / "quarantine", name=name)
    files = sorted((tmp_path / "landing" / "imports" / name).rglob("*.parquet"))
    readings = (
        pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        if files
        else pd.DataFrame()
    )
    return result, files, readings


def test_a_decimal_comma_reads_as_the_same_numbers_as_points(tmp_path):
    (tmp_path / "points.csv").write_text(
        "device,ts,temp,door\nd1,2026-01-01T00:00:00Z,-18.5,0\nd1,2026-01-01T00:01:00Z,-18.25,1\n"
    )
    (tmp_path / "commas.csv").write_text(
        "device;ts;temp;door\nd1;2026-01-01T00:00:00Z;-18,5;0\nd1;2026-01-01T00:01:00Z;-18,25;1\n"
    )
    points = _mapping(tmp_path, WIDE, "points.yaml")
    commas = _mapping(tmp_path, WIDE + "csv: {delimiter: ';', decimal: ','}\n", "commas.yaml")
    _r, _f, expected = _import(tmp_path, tmp_path / "points.csv", points, "points")
    result, _f, got = _import(tmp_path, tmp_path / "commas.csv", commas, "commas")
    assert result.quarantined == {}
    pd.testing.assert_frame_equal(got, expected)
    assert got["temperature_evaporator"].tolist() == [-18.5, -18.25]


def test_a_decimal_comma_without_the_setting_is_quarantined_with_a_pointer_to_it(tmp_path):
    (tmp_path / "commas.csv").write_text("device;ts;temp\nd1;2026-01-01T00:00:00Z;-18,5\n")
    mapping = _mapping(tmp_path, WIDE + "csv: {delimiter: ';'}\n")
    result, _f, _r = _import(tmp_path, tmp_path / "commas.csv", mapping)
    assert result.quarantined == {"unparsable_value": 1}
    q = pd.read_parquet(result.quarantine_path)
    assert "set csv: {decimal: ','}" in q["message"].iloc[0]


@pytest.mark.parametrize(
    ("csv", "refusal"),
    [("{decimal: x}", "csv.decimal 'x'"), ("{delimiter: ',', decimal: ','}", "both ','")],
)
def test_a_decimal_mark_that_cannot_work_is_refused(tmp_path, csv, refusal):
    with pytest.raises(MappingError, match=refusal):
        _mapping(tmp_path, WIDE + f"csv: {csv}\n")


def test_a_date_and_a_time_column_make_the_reading_time(tmp_path):
    (tmp_path / "dt.csv").write_text(
        "device;date;time;temp\n"
        "d1;29.03.2026;01:59:30;-18,5\n"  # Berlin winter time (UTC+1)
        "d1;29.03.2026;02:30:00;-18,4\n"  # in the clock change's gap: quarantined
        "d1;29.03.2026;03:00:30;-18,3\n"  # summer time (UTC+2)
        "d1;;03:01:30;-18,2\n"
    )
    mapping = _mapping(
        tmp_path,
        WIDE.replace(
            "timestamp: {column: ts}",
            "timestamp: {column: [date, time], format: '%d.%m.%Y %H:%M:%S', "
            "timezone: Europe/Berlin}",
        )
        + "csv: {delimiter: ';', decimal: ','}\n",
    )
    result, _f, got = _import(tmp_path, tmp_path / "dt.csv", mapping)
    assert got["ts"].tolist() == [
        pd.Timestamp("2026-03-29 00:59:30", tz="UTC"),
        pd.Timestamp("2026-03-29 01:00:30", tz="UTC"),
    ]
    assert got["temperature_evaporator"].tolist() == [-18.5, -18.3]
    q = pd.read_parquet(result.quarantine_path).sort_values("row", ignore_index=True)
    assert q[["row", "column", "rule"]].values.tolist() == [
        [1, "ts", "unparsable_value"],
        [3, "ts", "missing_value"],
    ]
    assert q["value"].iloc[0] == "29.03.2026 02:30:00"


def test_a_missing_time_column_of_a_pair_is_named(tmp_path):
    (tmp_path / "dt.csv").write_text("device,date,temp\nd1,2026-01-01,-18\n")
    mapping = _mapping(tmp_path, WIDE.replace("column: ts", "column: [date, time]"))
    with pytest.raises(MappingError, match="'time'"):
        _import(tmp_path, tmp_path / "dt.csv", mapping)


def test_spreadsheet_serial_dates_are_local_times_in_the_mappings_zone(tmp_path):
    # 46023 is 2026-01-01 in a spreadsheet; .5 is noon, 1/1440 a minute.
    (tmp_path / "serial.csv").write_text(
        "device,ts,temp\nd1,46023.5,-18\nd1,46023.50069444444,-17\nd1,soon,-16\n"
    )
    mapping = _mapping(
        tmp_path,
        WIDE.replace(
            "timestamp: {column: ts}",
            "timestamp: {column: ts, format: excel, timezone: America/New_York}",
        ),
    )
    result, _f, got = _import(tmp_path, tmp_path / "serial.csv", mapping)
    assert got["ts"].tolist() == [
        pd.Timestamp("2026-01-01 17:00:00", tz="UTC"),
        pd.Timestamp("2026-01-01 17:01:00", tz="UTC"),
    ]
    assert result.quarantined == {"unparsable_value": 1}


def test_the_hour_the_autumn_change_repeats_is_told_by_each_devices_file_order(tmp_path):
    # Berlin, 2026-10-25: 02:00-02:59 happens twice (UTC+2, then UTC+1). Both passes of a
    # device were quarantined, two hours of every device's readings a year.
    (tmp_path / "fall.csv").write_text(
        "device,ts,temp\n"
        "d1,2026-10-25 01:30:00,1\n"
        "d2,2026-10-25 02:00:00,9\n"  # d2 has one pass only: cannot be told
        "d1,2026-10-25 02:00:00,2\n"
        "d1,2026-10-25 02:30:00,3\n"
        "h1,2026-10-25 02:00:00,7\n"  # hourly: the repeat is the same wall time
        "d1,2026-10-25 02:00:00,4\n"
        "d1,2026-10-25 02:30:00,5\n"
        "h1,2026-10-25 02:00:00,8\n"
        "d1,2026-10-25 03:00:00,6\n"
    )
    mapping = _mapping(
        tmp_path, WIDE.replace("column: ts}", "column: ts, timezone: Europe/Berlin}")
    )
    result, _f, got = _import(tmp_path, tmp_path / "fall.csv", mapping)
    utc = got.set_index(["device_id", "ts"])["temperature_evaporator"].sort_index()
    expected = {
        ("d1", "2026-10-24 23:30"): 1.0,
        ("d1", "2026-10-25 00:00"): 2.0,
        ("d1", "2026-10-25 00:30"): 3.0,
        ("d1", "2026-10-25 01:00"): 4.0,
        ("d1", "2026-10-25 01:30"): 5.0,
        ("d1", "2026-10-25 02:00"): 6.0,
        ("h1", "2026-10-25 00:00"): 7.0,
        ("h1", "2026-10-25 01:00"): 8.0,
    }
    assert {(d, f"{t:%Y-%m-%d %H:%M}"): v for (d, t), v in utc.items()} == expected
    q = pd.read_parquet(result.quarantine_path)
    assert q[["row", "device_id", "rule"]].values.tolist() == [[1, "d2", "unparsable_value"]]


def test_a_reimport_with_a_corrected_zone_leaves_no_hour_of_the_earlier_one(tmp_path):
    (tmp_path / "berlin.csv").write_text(
        "device,ts,temp\nd1,2026-01-01 00:10:00,-18\nd1,2026-01-01 00:20:00,bad\n"
    )
    wrong = _mapping(tmp_path, WIDE, "wrong.yaml")
    first, files, _r = _import(tmp_path, tmp_path / "berlin.csv", wrong)
    assert [f.name for f in files] == ["readings_20260101T00.parquet"]
    assert first.quarantined == {"unparsable_value": 1}
    (tmp_path / "berlin.csv").write_text("device,ts,temp\nd1,2026-01-01 00:10:00,-18\n")
    right = _mapping(
        tmp_path,
        WIDE.replace("column: ts}", "column: ts, timezone: Europe/Berlin}"),
        "right.yaml",
    )
    second, files, got = _import(tmp_path, tmp_path / "berlin.csv", right)
    # Left in place, the first import's hour 00 held the same reading an hour off.
    assert [f.name for f in files] == ["readings_20251231T23.parquet"]
    assert got["ts"].tolist() == [pd.Timestamp("2025-12-31 23:10:00", tz="UTC")]
    assert second.quarantine_path is None
    assert not (tmp_path / "quarantine" / "src.parquet").exists()
    assert (second.removed_hours, second.replaced_source) == (1, None)


def test_another_file_under_the_same_name_says_what_it_replaced(refrig_home, tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text(WIDE)
    (tmp_path / "a.csv").write_text("device,ts,temp\nd1,2026-01-01T00:10:00Z,-18\n")
    (tmp_path / "b.csv").write_text("device,ts,temp\nd2,2026-01-02T00:10:00Z,-18\n")
    for source in ("a.csv", "b.csv"):
        done = CliRunner().invoke(
            app,
            ["import", str(tmp_path / source), "--mapping", str(mapping), "--name", "site1"],
        )
        assert done.exit_code == 0, done.output
    assert (
        f"removed 1 hour file(s) of the earlier import 'site1' (of {tmp_path / 'a.csv'})"
        in done.output
    )
    imported = refrig_home / "landing" / "imports" / "site1"
    assert [p.name for p in imported.rglob("*.parquet")] == ["readings_20260102T00.parquet"]


def test_the_european_example_mapping_reads_its_export(tmp_path):
    (tmp_path / "export.csv").write_text(
        "Geraet;Datum;Uhrzeit;Verdampfer (°C);Tür\n"
        "kühl-1;01.07.2026;12:00:00;-18,5;zu\n"
        "kühl-1;01.07.2026;12:01:00;-17,25;offen\n"
        "KR-2;01.07.2026;12:00:00;-20;auf\n",
        encoding="utf-8",
    )
    mapping = load_mapping(PROJECT_ROOT / "examples" / "mappings" / "european_spreadsheet.yaml")
    result, _f, got = _import(tmp_path, tmp_path / "export.csv", mapping)
    assert result.quarantined == {}
    got = got.sort_values(["device_id", "ts"])
    assert got[["device_id", "temperature_evaporator", "door_open"]].values.tolist() == [
        ["KR-2", -20.0, True],
        ["kuhl-1", -18.5, False],
        ["kuhl-1", -17.25, True],
    ]
    assert got["ts"].iloc[0] == pd.Timestamp("2026-07-01 10:00:00", tz="UTC")


def test_a_loggers_preamble_is_skipped_and_rows_keep_their_numbers(tmp_path):
    # A data logger's export: model and serial number before the header. Without skip_lines
    # the first preamble line was taken for the header: "not in the file (it has 'Logger: ...')".
    (tmp_path / "logger.csv").write_text(
        "Logger: MX1101\n"
        "Serial Number: 20512345\n"
        "\n"
        "device,ts,temp\n"
        "d1,2026-01-01T00:00:00Z,-18\n"
        "d1,2026-01-01T00:01:00Z,-18,extra\n"
        "d1,2026-01-01T00:02:00Z,bad\n"
        "d1,2026-01-01T00:03:00Z,-17\n"
    )
    mapping = _mapping(tmp_path, WIDE + "csv: {skip_lines: 3}\n")
    result, _f, got = _import(tmp_path, tmp_path / "logger.csv", mapping)
    assert got["temperature_evaporator"].tolist() == [-18.0, -17.0]
    q = pd.read_parquet(result.quarantine_path).sort_values("row", ignore_index=True)
    assert q[["row", "rule"]].values.tolist() == [[1, "malformed_row"], [2, "unparsable_value"]]
    assert q["message"].iloc[0].startswith("line 6:")


def test_a_value_that_fails_with_a_decimal_comma_is_quoted_as_the_file_has_it(tmp_path):
    (tmp_path / "commas.csv").write_text(
        "device;ts;temp\nd1;2026-01-01T00:00:00Z;1.234,5\nd1;2026-01-01T00:01:00Z;-18,5\n"
    )
    mapping = _mapping(tmp_path, WIDE + "csv: {delimiter: ';', decimal: ','}\n")
    result, _f, got = _import(tmp_path, tmp_path / "commas.csv", mapping)
    assert got["temperature_evaporator"].tolist() == [-18.5]
    q = pd.read_parquet(result.quarantine_path)
    assert q[["row", "rule", "value"]].values.tolist() == [[0, "unparsable_value", "1.234,5"]]


def test_epoch_seconds_with_a_decimal_comma(tmp_path):
    (tmp_path / "epoch.csv").write_text("device;ts;temp\nd1;1767225600,5;-18,5\n")
    mapping = _mapping(
        tmp_path,
        WIDE.replace("column: ts}", "column: ts, format: epoch_s}")
        + "csv: {delimiter: ';', decimal: ','}\n",
    )
    result, _f, got = _import(tmp_path, tmp_path / "epoch.csv", mapping)
    assert result.quarantined == {}
    assert got["ts"].tolist() == [pd.Timestamp("2026-01-01 00:00:00.5", tz="UTC")]
