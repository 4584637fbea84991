"""`refrig import` of a CSV export compressed with bzip2 or xz (what many loggers and archive
scripts write), or in UTF-16 with its byte order mark (a spreadsheet's "Unicode text" export),
imports the same readings as the plain UTF-8 file; an Excel workbook is named as one. Was:
"column(s) ... named in the mapping are not in the file (it has 'column0')" (or "it has ''",
"it has 'PK...'"), false: DuckDB reads none of them."""

from __future__ import annotations

import bz2
import lzma
import zipfile
from pathlib import Path

import pytest

from refrig_assets.ingestion.mapping import MappingError, load_mapping, read_source

MAPPING = """\
layout: wide
device_id: {column: dev}
timestamp: {column: t}
sensors:
  evap: {to: temperature_evaporator, unit: degC}
"""
CSV = "dev,t,evap\nA1,2026-01-01T00:00:00Z,-18.5\nA1,2026-01-01T00:01:00Z,-18.25\nbroken\n"


def _mapping(tmp_path: Path):
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING)
    return load_mapping(path)


@pytest.mark.parametrize("suffix, compress", [(".bz2", bz2.compress), (".xz", lzma.compress)])
def test_a_bzip2_or_xz_export_reads_as_the_plain_file(tmp_path: Path, suffix, compress):
    mapping = _mapping(tmp_path)
    plain = tmp_path / "export.csv"
    plain.write_text(CSV)
    packed = tmp_path / f"export.csv{suffix}"
    packed.write_bytes(compress(CSV.encode()))

    expected, got = read_source(plain, mapping), read_source(packed, mapping)

    assert got.frame.equals(expected.frame)
    assert list(got.rows) == list(expected.rows) == [0, 1]
    # The malformed last line is quarantined under the compressed file's own name.
    assert got.rejected["rule"].tolist() == ["malformed_row"]
    assert set(got.rejected["source_file"]) == {str(packed)}


def test_a_damaged_bzip2_export_is_named_not_misread(tmp_path: Path):
    packed = tmp_path / "export.csv.bz2"
    packed.write_bytes(bz2.compress(CSV.encode())[:20])

    with pytest.raises(MappingError, match="export.csv.bz2: cannot be decompressed"):
        read_source(packed, _mapping(tmp_path))


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_a_utf16_export_reads_as_the_utf8_file(tmp_path: Path, encoding):
    mapping = _mapping(tmp_path)
    plain = tmp_path / "export.csv"
    plain.write_text(CSV)
    wide = tmp_path / "unicode.csv"
    wide.write_bytes(("\ufeff" + CSV).encode(encoding))

    expected, got = read_source(plain, mapping), read_source(wide, mapping)

    assert got.frame.equals(expected.frame)
    assert list(got.rows) == [0, 1]
    assert got.rejected["rule"].tolist() == ["malformed_row"]
    assert set(got.rejected["source_file"]) == {str(wide)}


def test_a_file_that_only_starts_like_utf16_is_named(tmp_path: Path):
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"\xff\xfe" + "dev,t".encode("utf-16-le") + b"\x00\xd8")  # lone surrogate

    with pytest.raises(MappingError, match="broken.csv: starts as UTF-16 but cannot be decoded"):
        read_source(broken, _mapping(tmp_path))


def test_an_excel_workbook_is_named_as_such(tmp_path: Path):
    # Was: "columns ... are not in the file (it has 'PK\x03\x04...')".
    workbook = tmp_path / "fleet.xlsx"
    with zipfile.ZipFile(workbook, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")

    with pytest.raises(MappingError, match="fleet.xlsx: is a ZIP archive .*export the sheet"):
        read_source(workbook, _mapping(tmp_path))
