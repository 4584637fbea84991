"""`refrig simulate --cadence-seconds 0` simulated a fleet at the default 60 s without a word
(0 read as "not given"); it is refused, as any other cadence that cannot be."""

from typer.testing import CliRunner

from refrig_assets.cli import app


def test_a_zero_cadence_is_refused_and_nothing_is_simulated(refrig_home):
    result = CliRunner().invoke(
        app, ["simulate", "--devices", "1", "--hours", "1", "--cadence-seconds", "0"]
    )
    assert result.exit_code == 2, result.output
    assert "--cadence-seconds must be at least 1, got 0" in result.output
    assert not (refrig_home / "landing").exists()
