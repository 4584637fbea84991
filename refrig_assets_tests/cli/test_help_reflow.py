"""``refrig`` help reads as reflowed plain text: a docstring's line breaks do not cut its
sentences into short lines (Rich's panels kept them: "... or the" / "trusted" / "proxy ...")."""

from typer.testing import CliRunner

from refrig_assets.cli import app


def _help(*args: str) -> list[str]:
    result = CliRunner().invoke(app, [*args, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return [" ".join(line.split()) for line in result.output.splitlines()]


def test_a_groups_command_list_shows_each_summary_on_one_line():
    listed = _help("models")
    summary = (
        "list Every detector: production, pinned and serving version, pause, and its versions."
    )
    assert summary in listed


def test_a_commands_description_is_reflowed():
    console = _help("console")
    assert not [line for line in console if line in ("trusted", "--single-user skips")]
    assert any("or the trusted proxy header" in line for line in console)
