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


def test_a_folder_holding_the_home_does_not_import_the_landing_zone_into_itself(
    refrig_home, tmp_path
):
    """`refrig import .` where the home (.refrig) lies below: the landing files, earlier imports
    included, are not sources."""
    folder = refrig_home.parent
    (folder / "freezer_1.csv").write_text("epoch,temp_c,door_contact\n1767225600,-18.0,0\n")
    first = CliRunner().invoke(app, ["import", str(folder), "--mapping", str(MAPPING)])
    again = CliRunner().invoke(app, ["import", str(folder), "--mapping", str(MAPPING)])

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert again.output == first.output
    assert again.output.count('"source"') == 1
