"""An unexpected failure of a ``refrig`` command is one line on stderr (secrets masked) and
exit 1; the traceback goes to ``$REFRIG_HOME/logs/refrig-errors.log``, never to the terminal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from refrig_assets.cli import report_crash
from refrig_assets.core.settings import PROJECT_ROOT, cadence_override


def refrig(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The ``refrig`` entry point in a child process (it ends with os._exit)."""
    return subprocess.run(
        [sys.executable, "-c", "from refrig_assets.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **env},
        timeout=300,
    )


def test_a_failing_command_prints_one_line_and_exits_1(refrig_home):
    done = refrig("models", "list", REFRIG_CADENCE_SECONDS="sixty")

    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip() == (
        "error: ValueError: REFRIG_CADENCE_SECONDS must be whole seconds above 0, got 'sixty'"
    )


def test_the_traceback_is_kept_in_the_home_with_secrets_masked(refrig_home, capsys):
    try:
        raise RuntimeError("cannot reach postgresql://refrig:hunter22@db:5432/alerts\nmore")
    except RuntimeError as exc:
        report_crash(exc)

    said = capsys.readouterr().err
    log = (refrig_home / "logs" / "refrig-errors.log").read_text()
    assert said.splitlines()[0] == (
        "error: RuntimeError: cannot reach postgresql://refrig:***@db:5432/alerts"
    )
    assert "refrig-errors.log" in said
    assert "Traceback (most recent call last)" in log and "test_crash_report.py" in log
    assert "hunter22" not in said + log


@pytest.mark.parametrize("value", ["abc", "0", "-60", "1.5"])
def test_a_cadence_that_is_not_whole_positive_seconds_is_named(monkeypatch, value):
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", value)
    with pytest.raises(ValueError, match=f"REFRIG_CADENCE_SECONDS .* got '{value}'"):
        cadence_override()


def test_a_cadence_in_whole_seconds_is_read(monkeypatch):
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", " 300 ")
    assert cadence_override() == 300
    monkeypatch.delenv("REFRIG_CADENCE_SECONDS")
    assert cadence_override() is None
