"""`refrig import` of a CSV export compressed with bzip2 or xz (what many loggers and archive
scripts write) imports the same readings as the plain file. Was: "column(s) ... named in the
mapping are not in the file (it has 'column0')", false, since DuckDB does not read either."""

from __future__ import annotations

import bz2
import lzma
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


@pytest.mark.parametrize("suffix, compress", [(".bz2", bz2.compress), (".xz", lzma.compress)])
def test_a_bzip2_or_xz_export_reads_as_the_plain_file(tmp_path: Path, suffix, compress):
    mapping_path = tmp_path / "mapping.yaml"
    mapping_path.write_text(MAPPING)
    mapping = load_mapping(mapping_path)
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
    mapping_path = tmp_path / "mapping.yaml"
    mapping_path.write_text(MAPPING)
    packed = tmp_path / "export.csv.bz2"
    packed.write_bytes(bz2.compress(CSV.encode())[:20])

    with pytest.raises(MappingError, match="export.csv.bz2: cannot be decompressed"):
        read_source(packed, load_mapping(mapping_path))
