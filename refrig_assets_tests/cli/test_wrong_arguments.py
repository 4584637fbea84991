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


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--start", "2026-02-30T25:00"], "--start is not an ISO 8601 time"),
        (["--devices", "-3"], "devices must be at least 1"),
        (["--hours", "0"], "hours must be at least 1"),
        (["--devices", "99999999999999999999"], "error: "),
        (["--format", "xlsx"], "file_format must be one of"),
        (["--cadence-seconds", "7"], "cadence_seconds must divide 3600"),
        (["--sensors", "humidity"], "are not measurements of sensor_readings"),
        (["--fault-fraction", "2"], "fault_fraction must be within"),
    ],
)
def test_simulate_refuses_wrong_settings_naming_them(refrig_home, args, said):
    output = refused_cleanly(run("simulate", "--devices", "2", "--hours", "1", *args), 2)
    assert output.startswith("error: ") and said in output


def test_import_refuses_an_unreadable_mapping_and_skips_corrupt_sources(refrig_home, tmp_path):
    mapping = "examples/mappings/1hz_test_rig.yaml"
    assert "mapping refused" in refused_cleanly(
        run("import", str(tmp_path), "--mapping", str(tmp_path)), 2
    )
    sources = tmp_path / "exports"
    sources.mkdir()
    (sources / "cut.parquet").write_bytes(b"PAR1 cut short")
    (sources / "binary.csv").write_bytes(b"\x00\x01\xff\xfe")

    said = refused_cleanly(run("import", str(sources), "--mapping", mapping), 1)

    for name in ("cut.parquet", "binary.csv"):
        assert f"{sources / name}: not imported: " in said


@pytest.mark.parametrize("partition", ["2026-13-01-05:00", "2026-01-01-05:30", "yesterday"])
def test_quality_report_refuses_a_partition_that_is_not_an_hour(refrig_home, partition):
    said = refused_cleanly(run("quality", "report", "--partition", partition), 2)
    assert said.startswith(f"error: --partition {partition!r} is not an hour")


def test_quality_report_accepts_the_short_forms_of_an_hour(refrig_home):
    said = refused_cleanly(run("quality", "report", "--partition", "2026-01-01T05"), 1)
    assert "no quality summary for partition 2026-01-01-05:00" in said


@pytest.mark.parametrize("name", ["..", "../../x", "site/a", ".hidden", ""])
def test_import_refuses_a_name_that_would_leave_its_folder(refrig_home, tmp_path, name):
    from refrig_assets.core.settings import get_settings

    landing = get_settings().landing_dir
    gateway_file = landing / "2026-01-01" / "readings_20260101T00.parquet"
    gateway_file.parent.mkdir(parents=True)
    gateway_file.write_bytes(b"the gateway's own readings")
    source = tmp_path / "series.csv"
    rows = [f"2026-01-01T00:{m:02d}:00Z,{70 + m / 10:.1f}" for m in range(0, 60, 5)]
    source.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    mapping = "examples/mappings/single_sensor_series.yaml"

    said = refused_cleanly(run("import", str(source), "--mapping", mapping, "--name", name), 2)

    assert f"--name {name!r} must be" in said
    assert gateway_file.read_bytes() == b"the gateway's own readings"
    assert not list(landing.rglob("*.parquet"))[1:]
