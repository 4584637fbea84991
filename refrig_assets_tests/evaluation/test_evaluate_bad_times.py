"""`refrig evaluate --start garbage` died on pandas' DateParseError (a traceback in the error
log); a start or end that is no time is refused by option name, exit 2."""

import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app


@pytest.mark.parametrize(
    ("option", "value"), [("--start", "garbage"), ("--end", "2026-13-40"), ("--start", "")]
)
def test_a_start_or_end_that_is_no_time_is_refused_by_name(refrig_home, tmp_path, option, value):
    labels = tmp_path / "labels.csv"
    labels.write_text("device_id,ts,anomaly\nd1,2026-01-01T00:00:00Z,1\n")
    result = CliRunner().invoke(
        app, ["evaluate", "--labels", str(labels), option, value, "--out", str(tmp_path / "e")]
    )
    assert result.exit_code == 2, result.output
    assert f"{option} {value!r} is not a time" in result.output
