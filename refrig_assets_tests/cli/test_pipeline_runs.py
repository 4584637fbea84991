"""``refrig pipeline run`` runs outside Dagster's run queue: it holds the home (a concurrent one
is refused with a clear message) and marks failed the runs a killed run left STARTED."""

import os
import subprocess
import sys

import dagster as dg
import pytest
from dagster._core.utils import make_new_run_id
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.cli.runner import LAUNCHER, LAUNCHER_TAG, PID_TAG, fail_abandoned_runs
from refrig_assets.core.home_lock import HomeLock

pytestmark = pytest.mark.fault_injection


def test_a_concurrent_pipeline_run_is_refused_naming_the_one_in_progress(refrig_home):
    with HomeLock(refrig_home):
        result = CliRunner().invoke(app, ["pipeline", "run", "--hours", "1"])
    assert result.exit_code == 75
    assert f"in use by pid {os.getpid()}" in result.output
    assert "--wait" in result.output


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _run(instance, status, pid: int) -> dg.DagsterRun:
    run = dg.DagsterRun(
        job_name="hourly_pipeline",
        run_id=make_new_run_id(),
        status=status,
        tags={LAUNCHER_TAG: LAUNCHER, PID_TAG: str(pid)},
    )
    return instance.add_run(run)


def test_runs_left_started_by_a_killed_process_are_marked_failed(refrig_home):
    with dg.instance_for_test(temp_dir=str(refrig_home / "dagster")) as instance:
        abandoned = _run(instance, dg.DagsterRunStatus.STARTED, _dead_pid())
        live = _run(instance, dg.DagsterRunStatus.STARTED, os.getpid())
        done = _run(instance, dg.DagsterRunStatus.SUCCESS, _dead_pid())

        assert fail_abandoned_runs(instance) == [abandoned.run_id]

        assert instance.get_run_by_id(abandoned.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
        assert instance.get_run_by_id(done.run_id).status == dg.DagsterRunStatus.SUCCESS
        messages = [
            e.message
            for e in instance.all_logs(abandoned.run_id)
            if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"
        ]
        assert any("abandoned" in (m or "") for m in messages)


def test_a_registry_with_a_device_listed_twice_stops_the_run_naming_the_rows(refrig_home):
    import pandas as pd

    from refrig_assets.core.settings import get_settings

    registry = get_settings().registry_path
    registry.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"device_id": ["a", "b", "a"], "site_id": ["s", "s", "s"], "cohort": ["c", "c", "c"]}
    ).to_csv(registry, index=False)
    result = CliRunner().invoke(app, ["pipeline", "run", "--hours", "1"])
    assert result.exit_code == 1
    assert "device registry refused" in result.output
    assert "device_id 'a' is on rows 1, 3" in result.output
