"""The hourly partitions cover the hours the project ran on (or what the operator configured),
not every hour since a default start."""

import json
import subprocess
import sys
from datetime import UTC, datetime

from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.partition_range import (
    ENV_START,
    partition_range,
    range_file,
    record_run_range,
)


def test_a_run_records_its_hours_and_a_later_run_widens_them(refrig_home, monkeypatch):
    monkeypatch.delenv(ENV_START, raising=False)
    record_run_range(datetime(2026, 3, 3, 10, tzinfo=UTC), 48)
    assert json.loads(range_file().read_text()) == {
        "start": "2026-03-03-10:00",
        "end": "2026-03-05-10:00",
    }
    widened = record_run_range(datetime(2026, 3, 2, 22, tzinfo=UTC), 4)
    assert (widened.start, widened.end) == ("2026-03-02-22:00", "2026-03-05-10:00")
    assert widened.daily_start == "2026-03-02" and widened.daily_end == "2026-03-06"


def test_definitions_loaded_after_a_run_hold_exactly_its_hours(refrig_home, monkeypatch):
    monkeypatch.delenv(ENV_START, raising=False)
    record_run_range(datetime(2026, 3, 3, 10, tzinfo=UTC), 6)
    probe = (
        "from refrig_assets.defs.shared.partitions import daily_partitions, hourly_partitions\n"
        "print(hourly_partitions.get_partition_keys()[0], len(hourly_partitions.get_partition_keys()),"
        " len(daily_partitions.get_partition_keys()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["2026-03-03-10:00", "6", "1"]


def test_a_configured_start_wins_and_is_not_overwritten(refrig_home, monkeypatch):
    monkeypatch.setenv(ENV_START, "2026-01-01-00:00")
    in_force = record_run_range(datetime(2026, 3, 3, tzinfo=UTC), 2)
    assert (in_force.start, in_force.end, in_force.source) == ("2026-01-01-00:00", None, ENV_START)
    assert not range_file().exists()
    assert partition_range().outside(["2025-12-31-23:00", "2026-01-01-00:00"]) == [
        "2025-12-31-23:00"
    ]


def test_a_run_before_the_configured_start_explains_how_to_change_it(refrig_home, monkeypatch):
    monkeypatch.setenv(ENV_START, "2026-01-01-00:00")
    result = CliRunner().invoke(
        app, ["pipeline", "run", "--start", "2025-12-31T22:00", "--hours", "3"]
    )
    assert result.exit_code == 1
    assert "2025-12-31-22:00, 2025-12-31-23:00 are outside the hourly partitions" in result.output
    assert f"set {ENV_START} to the first hour" in result.output
