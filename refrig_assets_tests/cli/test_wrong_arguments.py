"""A wrong argument or an unreadable input file is one line on stderr and a non-zero exit,
never a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def refused_cleanly(result, code: int) -> str:
    """The message of a refusal that exited ``code`` without an exception escaping."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, result.output
    return result.output


def test_cancelling_a_maintenance_window_id_beyond_the_database_integer(refrig_home):
    said = refused_cleanly(run("maintenance", "cancel", "99999999999999999999"), 1)
    assert said.startswith("error: ")


@pytest.mark.parametrize(
    "content",
    [b"device_id,ts\ndev-1,2026-01-01\ndev-2,2026-01-01,1,extra\n", b"PAR1\x00\x01 truncated"],
    ids=["not-a-csv", "corrupt-parquet"],
)
def test_evaluate_names_a_labels_file_it_cannot_read(refrig_home, tmp_path, content):
    name = "labels.parquet" if content.startswith(b"PAR1") else "labels.csv"
    path = tmp_path / name
    path.write_bytes(content)

    said = refused_cleanly(run("evaluate", "--labels", str(path)), 2)

    assert said.startswith(f"labels refused: {path}: ")


def test_evaluate_refuses_a_directory_given_as_labels(refrig_home, tmp_path):
    said = refused_cleanly(run("evaluate", "--labels", str(tmp_path)), 2)
    assert "labels refused" in said
