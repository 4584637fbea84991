"""A large export is imported a part at a time, with the same landing files as whole.

``import.chunk_rows`` of config/ingestion.yaml bounds the rows converted at a time: the source
is read into DuckDB on disk, converted in parts of whole devices, spooled per hour and each
hour's landing file written from its parts. Here a tiny chunk size (a config folder of the
test's) splits small sources into many parts; the landing files must be byte for byte those of
the whole import, the quarantine must hold the same rows and the summary the same counts.
"""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from refrig_assets.core.settings import PROJECT_ROOT
from refrig_assets.ingestion.mapping import import_file, load_mapping, read_source_chunks

WIDE = (
    "layout: wide\n"
    "device_id: {column: device}\n"
    "timestamp: {column: ts, timezone: Europe/Berlin}\n"
    "sensors:\n"
    "  temp: {to: temperature_evaporator}\n"
    "  door: {to: door_open}\n"
    "labels: {column: anomaly}\n"
)


def _source(tmp_path: Path) -> Path:
    """Devices interleaved over three hours around the autumn change, with copies of a reading,
    a malformed line, an unparsable value, a row without a device, an extra column, an id with
    spaces around it and a device whose ids differ in case."""
    lines = ["device,ts,temp,door,anomaly,note"]
    times = ["2026-10-25 01:30:00", "2026-10-25 02:00:00", "2026-10-25 02:30:00"]
    times += ["2026-10-25 02:00:00", "2026-10-25 02:30:00", "2026-10-25 03:00:00"]
    for t in times:
        for d in ["d1", " d2 ", "d3", "D3", "d4", "d5"]:
            lines.append(f"{d},{t},{len(lines) % 7 - 20},{len(lines) % 2},{len(lines) % 5 == 0},x")
    lines.insert(5, "d1,2026-10-25 01:30:00,-3,1,0,x")  # a copy of d1's first reading
    lines.insert(9, "d4,2026-10-25 01:30:00,oops,0,0,x")
    lines.insert(12, "d5,2026-10-25 01:30:00,1,0")  # a field short
    lines.insert(14, ",2026-10-25 01:30:00,1,0,0,x")
    path = tmp_path / "export.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(tmp_path: Path, rows: int) -> Path:
    folder = tmp_path / f"config-{rows}"
    shutil.copytree(PROJECT_ROOT / "config", folder)
    text = (folder / "ingestion.yaml").read_text()
    (folder / "ingestion.yaml").write_text(
        text.replace("chunk_rows: 200000", f"chunk_rows: {rows}")
    )
    return folder


def _imported(tmp_path: Path, monkeypatch, rows: int, mapping_text: str = WIDE, source=None):
    monkeypatch.setenv("REFRIG_CONFIG_DIR", str(_config(tmp_path, rows)))
    out = tmp_path / f"out-{rows}"
    (out / "m.yaml").parent.mkdir(parents=True)
    (out / "m.yaml").write_text(mapping_text)
    result = import_file(
        (source or _source)(tmp_path), load_mapping(out / "m.yaml"), out / "landing",
        out / "quarantine",
        name="export", labels_dir=out / "labels",
    )  # fmt: skip
    files = {
        f.relative_to(out / "landing"): f.read_bytes()
        for f in sorted((out / "landing").rglob("*.parquet"))
    }
    quarantine = pd.read_parquet(result.quarantine_path)
    labels = pd.read_parquet(result.labels_path) if result.labels_path else None
    return result, files, quarantine, labels


def test_the_parts_hold_whole_devices_in_file_order(tmp_path, monkeypatch):
    source = _source(tmp_path)
    mapping_path = tmp_path / "m.yaml"
    mapping_path.write_text(WIDE)
    parts = list(read_source_chunks(source, load_mapping(mapping_path), 7))
    assert len(parts) > 3
    devices = [set(p.frame["device"].str.strip().dropna()) for p in parts]
    assert sum(len(d) for d in devices) == len(set().union(*devices))  # no device in two parts
    for part in parts:
        assert list(part.rows) == sorted(part.rows)
    assert len(parts[0].rejected) == 1 and all(len(p.rejected) == 0 for p in parts[1:])


@pytest.mark.parametrize("rows", [1, 7, 19])
def test_an_import_in_parts_writes_the_landing_files_of_the_whole_import(
    tmp_path, monkeypatch, rows
):
    whole, files, quarantine, labels = _imported(tmp_path, monkeypatch, 1_000_000)
    parted, parted_files, parted_quarantine, parted_labels = _imported(tmp_path, monkeypatch, rows)
    assert len(files) == 4 and parted_files == files
    key = ["row", "rule", "column"]
    pd.testing.assert_frame_equal(
        parted_quarantine.sort_values(key, ignore_index=True),
        quarantine.sort_values(key, ignore_index=True),
    )
    rules = {"extra_column", "missing_value", "unparsable_value", "malformed_row"}
    assert set(quarantine["rule"]) == rules
    assert quarantine["rule"].eq("extra_column").sum() == 1  # one note, not one per part
    pd.testing.assert_frame_equal(parted_labels, labels)
    paths = ("quarantine_path", "labels_path")
    summary = {k: v for k, v in whole.summary().items() if k not in paths}
    assert {k: v for k, v in parted.summary().items() if k not in paths} == summary
    assert parted.case_variants == whole.case_variants
    assert whole.case_variants == [["D3", "d3"]]


LONG = (
    "layout: long\n"
    "device_id: {column: device}\n"
    "timestamp: {column: ts, timezone: Europe/Berlin}\n"
    "long: {sensor_column: sensor, value_column: value}\n"
    "sensors:\n"
    "  temp: {to: temperature_evaporator}\n"
    "  door: {to: door_open}\n"
    "  amps: {to: current_compressor}\n"
)


def _long_source(tmp_path: Path) -> Path:
    """One row per device, time and sensor around the autumn change: d3 never reports its
    door (a part without d1 and d2 has no door column), d1 and d2 report ``fan`` (not in the
    mapping), d2 sends one value twice, d4 has an unparsable value."""
    lines = ["device,ts,sensor,value"]
    times = ["2026-10-25 01:30:00", "2026-10-25 02:00:00", "2026-10-25 02:00:00"]
    for t in times:
        for d in ["d1", "d2", "d3", "d4"]:
            lines.append(f"{d},{t},temp,{len(lines) % 9 - 20}")
            if d != "d3":
                lines.append(f"{d},{t},door,{len(lines) % 2}")
            if d in ("d1", "d2"):
                lines += [f"{d},{t},fan,1", f"{d},{t},amps,3.5"]
    lines.insert(6, "d2,2026-10-25 01:30:00,temp,-3")  # a second value of d2's first reading
    lines.insert(9, "d4,2026-10-25 01:30:00,amps,x")
    path = tmp_path / "long.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("rows", [1, 5])
def test_a_long_source_in_parts_writes_the_landing_files_of_the_whole_import(
    tmp_path, monkeypatch, rows
):
    whole, files, quarantine, _ = _imported(tmp_path, monkeypatch, 10**6, LONG, _long_source)
    parted, parted_files, parted_quarantine, _ = _imported(
        tmp_path, monkeypatch, rows, LONG, _long_source
    )
    assert len(files) == 3 and parted_files == files
    key = ["row", "rule", "column"]
    pd.testing.assert_frame_equal(
        parted_quarantine.sort_values(key, ignore_index=True),
        quarantine.sort_values(key, ignore_index=True),
    )
    rules = {"extra_column", "duplicate_reading", "unparsable_value"}
    assert set(quarantine["rule"]) == rules
    fan = quarantine[quarantine["rule"].eq("extra_column")]["message"].tolist()
    assert len(fan) == 1 and "'fan' (6 rows)" in fan[0]  # one note: d1's and d2's rows
    paths = ("quarantine_path", "labels_path")
    summary = {k: v for k, v in whole.summary().items() if k not in paths}
    assert {k: v for k, v in parted.summary().items() if k not in paths} == summary
