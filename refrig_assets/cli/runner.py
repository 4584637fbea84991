"""Run the graph for a range of hours in this process, recorded in the Dagster instance.

Used by ``refrig pipeline run`` (and so ``make run``): the runs show up in the UI afterwards.
These runs bypass Dagster's run queue, so they hold the home's lock
(:mod:`refrig_assets.core.home_lock`) and carry tags naming their process: a run left STARTED
by a killed process is marked failed by the next one instead of blocking its hour forever.
"""

import logging
import os
from datetime import datetime
from pathlib import Path

# MLflow narrates every registration and download; the summary says what matters.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import dagster as dg

from refrig_assets.core.partition_range import hour_keys
from refrig_assets.defs.shared.partitions import hourly_partitions

# The console logger prints every Dagster event; the runs are in the instance for the UI anyway,
# and the steps' warnings (held scoring, ...) are summarised by the runner's own lines.
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
LAUNCHER_TAG = "refrig/launcher"
PID_TAG = "refrig/pid"
LAUNCHER = "pipeline-cli"
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class OutsidePartitions(ValueError):
    """The hours asked for are not partitions of the loaded definitions (the message says why)."""


class RegistryRefused(RuntimeError):
    """The device registry failed its checks; nothing was run on it."""


def registry_problems(result) -> str:
    """What the failed device_registry run found, from its check evaluations."""
    lines = []
    for check in result.get_asset_check_evaluations():
        if check.passed:
            continue
        problems = check.metadata.get("problems") or check.metadata.get("failures_by_check")
        text = getattr(problems, "value", problems)
        lines.append(f"{check.check_name} failed" + (f":\n{text}" if text else ""))
    failure = next((e for e in result.all_events if e.is_step_failure), None)
    if not lines and failure is not None:
        lines.append(str(failure.message))
    return "device registry refused, nothing was run on it\n" + "\n".join(lines)


def run_tags() -> dict[str, str]:
    """Tags of every run this process executes in process (who ran it, which pid)."""
    return {LAUNCHER_TAG: LAUNCHER, PID_TAG: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the unfinished in-process runs whose process is gone (killed, crashed);
    returns their run ids. Called while holding the home lock, so no live pipeline run of
    this home can be among them; runs launched by the daemon are left to Dagster's run
    monitoring."""
    abandoned = []
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=UNFINISHED, tags={LAUNCHER_TAG: LAUNCHER})
    )
    for run in runs:
        pid = int(run.tags.get(PID_TAG, "0") or 0)
        if pid and _alive(pid):
            continue
        instance.report_run_failed(
            run,
            message=f"abandoned: the process that ran it (pid {pid or '?'}) is gone; "
            "marked failed by the next refrig pipeline run",
        )
        abandoned.append(run.run_id)
    return abandoned


def _execute(defs: dg.Definitions, instance, selection: list[str], partition_key: str | None):
    job = defs.resolve_job_def("hourly_pipeline" if partition_key else "train_detectors")
    result = job.execute_in_process(
        instance=instance,
        partition_key=partition_key,
        asset_selection=[dg.AssetKey(k) for k in selection],
        run_config=QUIET,
        tags=run_tags(),
        raise_on_error=False,
    )
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    return result.success, failed


def run_pipeline(start: datetime, hours: int, train_hours: int, log=print) -> dict[str, object]:
    """Registry → readings..features for every hour → train on the first ``train_hours`` →
    scores and alerts for every hour. Returns a summary of run outcomes."""
    from refrig_assets.definitions import defs

    logging.getLogger("mlflow").setLevel(logging.ERROR)

    if os.environ.get("DAGSTER_HOME"):
        _without_telemetry_banner(Path(os.environ["DAGSTER_HOME"]))
        instance = dg.DagsterInstance.get()
    else:
        instance = _project_instance()
    keys = hour_keys(start, hours)
    if any(not hourly_partitions.has_partition_key(k) for k in keys):
        from refrig_assets.defs.shared.partitions import partition_range_in_force

        raise OutsidePartitions(partition_range_in_force.explain(keys))
    for run_id in fail_abandoned_runs(instance):
        log(f"  run {run_id} was left unfinished by a process that is gone: marked failed")
    failures: list[str] = []
    registry = defs.resolve_job_def("refresh_device_registry").execute_in_process(
        instance=instance, run_config=QUIET, tags=run_tags(), raise_on_error=False
    )
    if not registry.success:
        raise RegistryRefused(registry_problems(registry))
    prep = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]
    for k in keys:
        success, failed = _execute(defs, instance, prep, k)
        log(f"  {k}: readings → features {'ok' if success else 'FAILED ' + ','.join(failed)}")
        failures += failed
    # What the streaming_threshold_rules sensor does under the daemon, before the batch alerts
    # that confirm or soften its alerts.
    from refrig_assets.streaming.tick import run_once

    stream = run_once()
    log(f"  streaming rules over {len(stream.files)} landing file(s): {stream.inserted} alert(s)")
    train_keys = keys[: max(1, train_hours)]
    train_job = defs.resolve_job_def("train_detectors")
    training_assets = [k.to_user_string() for k in train_job.asset_layer.executable_asset_keys]
    hourly_models = [a for a in training_assets if _is_hourly(a)]
    result = train_job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(a) for a in training_assets],
        run_config=QUIET
        | {
            "ops": {
                a: {"config": {"start_partition": train_keys[0], "end_partition": train_keys[-1]}}
                for a in training_assets
            }
        },
        tags=run_tags(),
        raise_on_error=False,
    )
    log(
        f"  trained {', '.join(training_assets)} on {train_keys[0]}..{train_keys[-1]}: "
        f"{'ok' if result.success else 'FAILED'}"
    )
    score = [a.replace("_model", "_scores") for a in hourly_models]
    score += ["device_alerts", "device_incidents", "device_status"]
    for k in keys:
        success, failed = _execute(defs, instance, score, k)
        if any(f.endswith("_scores") for f in failed) and "device_alerts" not in failed:
            # What the alerts_despite_failed_scoring sensor does under the daemon.
            failed += _execute(defs, instance, ["device_alerts", "device_incidents"], k)[1]
        log(f"  {k}: scores → incidents {'ok' if success else 'FAILED ' + ','.join(failed)}")
        failures += failed
    from refrig_assets.cli.evaluation_runner import run_daily_scores_and_backtest

    failures += run_daily_scores_and_backtest(defs, instance, keys, log, QUIET)
    from refrig_assets.cli.monitoring_runner import run_monitoring

    failures += run_monitoring(defs, instance, keys, log, QUIET)
    return {"hours": keys, "failed_steps": failures}


def _project_instance() -> dg.DagsterInstance:
    """The instance under $REFRIG_HOME/dagster (what `make dev` shows) when DAGSTER_HOME is unset."""
    from refrig_assets.core.settings import get_settings

    home = get_settings().dagster_home
    home.mkdir(parents=True, exist_ok=True)
    _without_telemetry_banner(home)
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def _without_telemetry_banner(dagster_home: Path) -> None:
    """An instance without configuration gets telemetry and the UI's welcome pop-up off (as
    `make` writes it): Dagster otherwise prints its telemetry banner into the run's output."""
    config = dagster_home / "dagster.yaml"
    if dagster_home.is_dir() and (not config.exists() or not config.read_text().strip()):
        config.write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")


def _is_hourly(training_asset: str) -> bool:
    from refrig_assets.core.model_config import load_model_config

    return load_model_config(training_asset.removesuffix("_model")).schedule == "hourly"
