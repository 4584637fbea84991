"""The help of every ``refrig`` command reads as plain text: no reStructuredText markup (double
backticks) from the docstrings it is made of."""

import click
import typer

from refrig_assets.cli import app


def _commands(command: click.Command, path: str = "refrig"):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, f"{path} {name}")


def test_no_command_help_shows_double_backticks():
    root = typer.main.get_command(app)
    assert isinstance(root, click.Group)
    marked = [
        path
        for path, command in _commands(root)
        if "``"
        in (command.help or "")
        + " ".join(str(getattr(p, "help", "") or "") for p in command.params)
    ]
    assert marked == []
