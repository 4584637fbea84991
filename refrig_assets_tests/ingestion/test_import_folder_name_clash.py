"""`refrig import <folder>` names each file's import by its path without suffixes, so `a.csv`
and `a.csv.gz` (or `x/a.csv` and `x_a.csv`) were the same import: the second replaced the
first's landing files in silence. Such a folder is refused, naming the files."""

import gzip

from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets_tests.support.import_mappings import TEMPERATURE_MAPPING


def test_two_files_that_would_be_one_import_are_refused(refrig_home, tmp_path):
    data = tmp_path / "data"
    (data / "x").mkdir(parents=True)
    (data / "a.csv").write_text("device,ts,temp\nd1,2026-01-01T00:00:00Z,-18\n")
    (data / "a.csv.gz").write_bytes(gzip.compress(b"device,ts,temp\nd2,2026-01-01T05:00:00Z,-18\n"))
    (data / "x" / "b.csv").write_text("device,ts,temp\nd3,2026-01-01T00:00:00Z,-18\n")
    (data / "x_b.csv").write_text("device,ts,temp\nd4,2026-01-01T00:00:00Z,-18\n")
    (data / "c.csv").write_text("device,ts,temp\nd5,2026-01-01T00:00:00Z,-18\n")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(TEMPERATURE_MAPPING)
    result = CliRunner().invoke(app, ["import", str(data), "--mapping", str(mapping)])
    assert result.exit_code == 2, result.output
    assert f"'a': {data / 'a.csv'}, {data / 'a.csv.gz'}" in result.output
    assert f"'x_b': {data / 'x' / 'b.csv'}, {data / 'x_b.csv'}" in result.output
    assert not (refrig_home / "landing" / "imports").exists()


def test_a_folder_of_distinct_names_still_imports(refrig_home, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("device,ts,temp\nd1,2026-01-01T00:00:00Z,-18\n")
    (data / "b.csv").write_text("device,ts,temp\nd2,2026-01-01T00:00:00Z,-18\n")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(TEMPERATURE_MAPPING)
    result = CliRunner().invoke(app, ["import", str(data), "--mapping", str(mapping)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (refrig_home / "landing" / "imports").iterdir()) == ["a", "b"]
