"""A reading command given a home that does not exist (a mistyped REFRIG_HOME) created it empty
and answered "No alerts match." with exit 0: an operator took a typo for a quiet fleet. It is
refused, naming the path, and nothing is created."""

import os
import subprocess
import sys

import pytest


def _refrig(args, home, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REFRIG_")}
    environment.update(REFRIG_HOME=str(home), PYTHONWARNINGS="ignore", **env)
    code = "from refrig_assets.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("args", [["alerts", "list"], ["models", "list"]])
def test_a_reading_command_on_a_missing_home_is_refused_and_creates_nothing(tmp_path, args):
    home = tmp_path / "typo"
    done = _refrig(args, home)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"the home {home} does not exist" in done.stderr
    assert not home.exists()


def test_help_and_commands_that_make_a_home_still_run(tmp_path):
    home = tmp_path / "new"
    assert _refrig(["alerts", "list", "--help"], home).returncode == 0
    assert not home.exists()
    done = _refrig(["users", "list"], home)
    assert done.returncode == 0, done.stderr


def test_alerts_in_a_database_of_their_own_are_listed_without_the_home(tmp_path):
    home = tmp_path / "absent"
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    done = _refrig(["alerts", "list"], home, REFRIG_ALERTS_DB_URL=url)
    assert done.returncode == 0, done.stderr
    assert "No alerts match." in done.stdout
