"""`refrig import <folder>` imports the CSV and Parquet files below it; an export saved as .xlsx
(or .txt) in the same folder was left out without a word, as if the folder held nothing more.
The import now names the files it does not read."""

from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.settings import PROJECT_ROOT

MAPPING = PROJECT_ROOT / "examples" / "mappings" / "single_device_temperature_door.yaml"


def test_files_of_a_folder_that_are_not_sources_are_named(refrig_home, tmp_path):
    folder = tmp_path / "exports"
    (folder / "week2").mkdir(parents=True)
    (folder / "freezer_1.csv").write_text("epoch,temp_c,door_contact\n1767225600,-18.0,0\n")
    (folder / "week2" / "freezer_2.xlsx").write_bytes(b"PK\x03\x04")
    (folder / ".freezer_1.csv.swp").write_bytes(b"x")  # hidden: an editor's, not an export

    result = CliRunner().invoke(app, ["import", str(folder), "--mapping", str(MAPPING)])

    assert result.exit_code == 0, result.output
    assert '"readings": 1' in result.output
    assert "1 file(s) are not CSV or Parquet" in result.output
    assert "not imported: week2/freezer_2.xlsx" in result.output
    assert ".swp" not in result.output
