"""Ctrl-C (SIGINT) during ``refrig pipeline run`` stops the command.

In process, Dagster turns the signal into a failed step and returns a failed result; the
command went on with its next runs (scoring every hour, daily scores, monitoring) and could
exit 0. :func:`stop_if_interrupted` says so and turns such a result back into KeyboardInterrupt
(exit status 130).
"""

from __future__ import annotations

import os
import signal

import dagster as dg
import pytest
import typer
from typer.testing import CliRunner

from refrig_assets.cli.runner import stop_if_interrupted


@dg.asset
def interrupted_by_the_operator() -> None:
    os.kill(os.getpid(), signal.SIGINT)


@dg.asset
def failing_on_its_own() -> None:
    raise ValueError("a bad hour")


def run(asset) -> dg.ExecuteInProcessResult:
    return dg.materialize([asset], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def test_a_run_interrupted_by_sigint_stops_the_command(capsys):
    result = run(interrupted_by_the_operator)

    assert not result.success  # what the command saw before: one more failed step
    with pytest.raises(KeyboardInterrupt, match="interrupted_by_the_operator"):
        stop_if_interrupted(result)
    said = capsys.readouterr().err
    assert "interrupted during interrupted_by_the_operator of Dagster run " in said
    assert "run the same command again to finish" in said


def test_typer_ends_an_interrupted_command_with_status_130():
    app = typer.Typer()

    @app.command()
    def stop() -> None:
        stop_if_interrupted(run(interrupted_by_the_operator))

    assert CliRunner().invoke(app, []).exit_code == 130


def test_a_run_that_failed_on_its_own_lets_the_command_go_on():
    result = run(failing_on_its_own)

    assert not result.success
    stop_if_interrupted(result)
