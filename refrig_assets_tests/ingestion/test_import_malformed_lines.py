"""`refrig import` of a CSV export with lines that are no rows (a field short, one too many, the
last line cut short): each such line is quarantined as `malformed_row` with its row and text,
the other rows are imported as without it and keep their own row numbers in the quarantine."""

import gzip
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.settings import PROJECT_ROOT

EXAMPLES = PROJECT_ROOT / "examples" / "mappings"
T0 = 1767225600  # 2026-01-01T00:00:00Z


def _good_lines() -> list[str]:
    return [f"{T0 + 300 * i},{-18 + 0.1 * i:.1f},0" for i in range(24)]


def _import(source: Path) -> tuple[int, str]:
    mapping = EXAMPLES / "single_device_temperature_door.yaml"
    result = CliRunner().invoke(app, ["import", str(source), "--mapping", str(mapping)])
    return result.exit_code, result.output


def _landed(home: Path, name: str) -> pd.DataFrame:
    files = sorted((home / "landing" / "imports" / name).rglob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_malformed_lines_of_an_export_are_quarantined_and_the_rest_imported(refrig_home, tmp_path):
    good = _good_lines()
    clean = tmp_path / "clean" / "freezer_7.csv"
    clean.parent.mkdir()
    clean.write_text("\n".join(["epoch,temp_c,door_contact", *good]) + "\n")
    assert _import(clean)[0] == 0
    expected = _landed(refrig_home, "freezer_7")

    broken = tmp_path / "broken" / "freezer_7.csv.gz"
    broken.parent.mkdir()
    lines = ["epoch,temp_c,door_contact", *good[:5], f"{T0 + 1},-17.0", *good[5:10]]
    lines += [f"{T0 + 2},-17.0,0,9", *good[10:], f"{T0 + 300 * 24},n/a,0", f"{T0 + 300 * 25},-1"]
    with gzip.open(broken, "wt") as fh:
        fh.write("\n".join(lines))  # no newline at the end: the last line is cut short

    code, output = _import(broken)
    assert code == 0, output
    pd.testing.assert_frame_equal(_landed(refrig_home, "freezer_7"), expected)
    q = pd.read_parquet(refrig_home / "data" / "import_quarantine" / "freezer_7.parquet")
    assert q[["row", "rule", "value"]].values.tolist() == [
        [5, "malformed_row", f"{T0 + 1},-17.0"],
        [11, "malformed_row", f"{T0 + 2},-17.0,0,9"],
        # Data row 26, not 24: the two malformed lines before it still count as rows.
        [26, "unparsable_value", "n/a"],
        [27, "malformed_row", f"{T0 + 300 * 25},-1"],
    ]
    assert q["message"].iloc[0].startswith("line 7: malformed line")
    assert '"source_rows": 28' in output


def test_an_empty_export_is_named_empty(refrig_home, tmp_path):
    """Not "columns ... are not in the file (it has 'column0')"."""
    empty = tmp_path / "freezer_8.csv"
    empty.write_bytes(b"")
    code, output = _import(empty)
    assert code == 1
    assert f"{empty}: not imported: {empty}: file is empty (0 bytes)" in output
