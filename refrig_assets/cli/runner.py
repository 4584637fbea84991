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
import typer
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG as RANGE_END_TAG
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG as RANGE_START_TAG

from refrig_assets.core.partition_range import hour_keys
from refrig_assets.defs.shared.event_log import pipeline_instance
from refrig_assets.defs.shared.instance import write_instance_settings
from refrig_assets.defs.shared.partitions import hourly_partitions

# The console logger prints every Dagster event; the runs are in the instance for the UI anyway,
# and the steps' warnings (held scoring, ...) are summarised by the runner's own lines.
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
SILENT = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
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
        lines.append(_step_error(failure))
    return "device registry refused, nothing was run on it\n" + "\n".join(lines)


def _step_error(failure) -> str:
    """The exception a failed step raised (``ValueError: <file>: required registry column
    'site_id' is missing``), not Dagster's "Execution of step ... failed" around it."""
    error = getattr(failure.event_specific_data, "error", None)
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message.strip() if error is not None else str(failure.message)


def run_tags() -> dict[str, str]:
    """Tags of every run this process executes in process (who ran it, which pid)."""
    return {LAUNCHER_TAG: LAUNCHER, PID_TAG: str(os.getpid())}


# What Dagster turns a SIGINT/SIGTERM into inside a step (the run then just "fails").
_INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def stop_if_interrupted(result) -> None:
    """Raise KeyboardInterrupt when ``result``'s run failed because the process was interrupted
    (Ctrl-C, SIGTERM): in process, Dagster records that as a failed step and returns, and a
    command going on with its next runs would ignore the operator's stop."""
    for event in result.all_events:
        if not (event.is_step_failure or event.is_run_failure):
            continue
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cls_name not in _INTERRUPTS:
            error = error.cause
        if error is not None or (event.is_run_failure and "interrupted" in (event.message or "")):
            where = event.step_key or "the run"
            typer.echo(
                f"interrupted during {where} of Dagster run {result.run_id}: stopped (hours "
                "already written are kept; run the same command again to finish)",
                err=True,
            )
            raise KeyboardInterrupt(f"interrupted during {where}")


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


def _execute(
    defs: dg.Definitions, instance, selection: list[str], partition_key: str | None, last=None
):
    """One run of ``selection``: of the hour ``partition_key``, or of the hours
    ``partition_key``..``last`` (each step loops over them, see defs/shared/ranges.py).
    Returns (success, failed step keys, {(asset, hour)} materialized)."""
    job = defs.resolve_job_def("hourly_pipeline" if partition_key else "train_detectors")
    ranged = last is not None and last != partition_key
    range_tags = {RANGE_START_TAG: partition_key, RANGE_END_TAG: last} if ranged else {}
    result = job.execute_in_process(
        instance=instance,
        partition_key=None if ranged else partition_key,
        asset_selection=[dg.AssetKey(k) for k in selection],
        run_config=QUIET,
        tags=run_tags() | range_tags,
        raise_on_error=False,
    )
    stop_if_interrupted(result)
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    done = {
        (e.asset_key.to_user_string(), e.partition)
        for e in result.get_asset_materialization_events()
        if e.asset_key is not None
    }
    return result.success, failed, done


def chunked(keys: list[str], per_run: int) -> list[list[str]]:
    """``keys`` in consecutive runs of at most ``per_run`` hours."""
    return [keys[i : i + per_run] for i in range(0, len(keys), per_run)]


def run_hours(
    defs: dg.Definitions,
    instance,
    selection: list[str],
    runs: list[list[str]],
    on_hour,
    before=None,
) -> list[str]:
    """Run ``selection`` over each list of consecutive hours of ``runs``, one Dagster run each,
    in order. When a run fails, its hours from the first one that not every asset recorded are
    run again one by one, so a bad hour fails alone and is named (hours already recorded are not
    processed twice). ``on_hour(key, success, failed_steps)`` is called for every hour, in order;
    the failed steps it returns are counted. ``before(last_hour)``, if given, is called before
    each run of ``runs``."""
    failures: list[str] = []
    for hours in runs:
        if before is not None:
            before(hours[-1])
        success, failed, done = _execute(defs, instance, selection, hours[0], hours[-1])
        if len(hours) == 1 or success:
            for k in hours:
                failures += on_hour(k, success, failed)
            continue
        complete = [all((a, k) in done for a in selection) for k in hours]
        first = complete.index(False) if False in complete else len(hours)
        for k in hours[:first]:
            failures += on_hour(k, True, [])
        for k in hours[first:]:
            failures += on_hour(k, *_execute(defs, instance, selection, k)[:2])
    return failures


PREP = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]
ALERT_STEPS = ["device_alerts", "device_incidents", "device_status"]
ALERT_RANGE_JOB = "alerts_incidents_status_range"


def prepare_hours(defs: dg.Definitions, instance, keys: list[str], per_run: int, log) -> list:
    """Readings → features of every hour, in runs of ``per_run`` hours; the failed steps."""

    def prepared(k: str, success: bool, failed: list[str]) -> list[str]:
        log(f"  {k}: readings → features {'ok' if success else 'FAILED ' + ','.join(failed)}")
        return failed

    return run_hours(defs, instance, PREP, chunked(keys, per_run), prepared)


def score_hours(
    defs: dg.Definitions,
    instance,
    keys: list[str],
    per_run: int,
    scores: list[str],
    log,
    stream: "StreamingReplay | None" = None,
) -> list[str]:
    """The ``scores`` assets of every hour (runs of ``per_run`` hours), then alerts → incidents
    → status of every hour (:func:`alert_ranges`; one run per hour when ``per_run`` is 1, the
    hourly schedule's way); the failed steps. The alerts run whatever scores
    exist (what the alerts_despite_failed_scoring sensor does under the daemon). The alerts of
    ``stream`` enter the store with the hours they meet, before those hours' alert steps."""
    failures: list[str] = []
    score_failures: dict[str, list[str]] = {}

    def scored(k: str, success: bool, failed: list[str]) -> list[str]:
        score_failures[k] = failed
        return failed

    if scores:  # scores read features and models only: every hour first
        failures += run_hours(defs, instance, scores, chunked(keys, per_run), scored)

    def alerted(k: str, success: bool, failed: list[str]) -> list[str]:
        steps = score_failures.get(k, []) + failed
        log(f"  {k}: scores → incidents {'FAILED ' + ','.join(steps) if steps else 'ok'}")
        return failed

    before = stream.store_through if stream is not None else None
    if per_run > 1:
        return failures + alert_ranges(defs, instance, keys, per_run, alerted, before)
    return failures + run_hours(defs, instance, ALERT_STEPS, chunked(keys, 1), alerted, before)


def alert_ranges(
    defs: dg.Definitions, instance, keys: list[str], per_run: int, on_hour, before=None
) -> list[str]:
    """Alerts → incidents → status of every hour in runs of ``per_run`` hours, each run one step
    that goes hour by hour (:mod:`refrig_assets.defs.shared.hour_chain`), so that no hour's incidents
    see a later hour's alerts. ``before(key)``, if given, is called just before each hour.
    When a run fails, its hours from the first one that not every asset recorded are run again
    one by one as the hourly schedule runs them, so a bad hour fails alone and is named.
    ``on_hour(key, success, failed_steps)`` is called for every hour, in order; the failed
    steps it returns are counted."""
    from refrig_assets.defs.shared.hour_chain import hour_chain_job

    steps = [defs.resolve_assets_def(dg.AssetKey(a)) for a in ALERT_STEPS]
    job = hour_chain_job(ALERT_RANGE_JOB, steps, before)
    failures: list[str] = []
    for chunk in chunked(keys, per_run):
        hours = chunk
        while hours:
            result = job.execute_in_process(
                instance=instance,
                run_config=QUIET
                | {"ops": {ALERT_RANGE_JOB: {"config": {"first": hours[0], "last": hours[-1]}}}},
                tags=run_tags() | {RANGE_START_TAG: hours[0], RANGE_END_TAG: hours[-1]},
                raise_on_error=False,
            )
            stop_if_interrupted(result)
            if result.success:
                for k in hours:
                    failures += on_hour(k, True, [])
                break
            blocked = _blocked(result)
            if blocked is not None:  # as a one-hour run: recorded, downstream skipped, go on
                at = hours.index(blocked[0])
                for k in hours[:at]:
                    failures += on_hour(k, True, [])
                failures += on_hour(blocked[0], False, [blocked[1]])
                hours = hours[at + 1 :]
                continue
            done = {
                (e.asset_key.to_user_string(), e.partition)
                for e in result.get_asset_materialization_events()
                if e.asset_key is not None
            }
            complete = [all((a, k) in done for a in ALERT_STEPS) for k in hours]
            first = complete.index(False) if False in complete else len(hours)
            for k in hours[:first]:
                failures += on_hour(k, True, [])
            for k in hours[first:]:
                if before is not None:
                    before(k)
                failures += on_hour(k, *_execute(defs, instance, ALERT_STEPS, k)[:2])
            break
    return failures


def _blocked(result) -> tuple[str, str] | None:
    """(hour, asset) where a blocking check stopped an alert range run, if one did."""
    from refrig_assets.defs.shared.hour_chain import BLOCKED_ASSET, BLOCKED_HOUR

    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data.user_failure_data
        metadata = data.metadata if data is not None else {}
        if BLOCKED_HOUR in metadata:
            return metadata[BLOCKED_HOUR].value, metadata[BLOCKED_ASSET].value
    return None


class StreamingReplay:
    """The streaming rules over the landing files of a replay, their alerts stored in time order
    with the hourly steps.

    Under the daemon a streaming alert is stored minutes after its readings, so the batch alerts
    and incidents of the hours before it never see it. A replay evaluates every landing file at
    once; storing all its alerts first would fold a 09:47 alert into an incident that the
    incident steps of 00:00..09:00 already find, and the batch alerts of the same fault from
    07:30 would open (and page) a second one. So each alert is stored just before the run of the
    first hour its window meets (:meth:`store_through`), and the rules' state is saved once every
    alert is stored (:meth:`finish`), as a streaming pass saves it after its alerts."""

    def __init__(self, settings=None, run_id_prefix: str = "cli"):
        from refrig_assets.alerts.store import AlertStore
        from refrig_assets.core.settings import get_settings
        from refrig_assets.streaming.tick import TickReport, evaluate_landed_files

        self.settings = settings or get_settings()
        self.store = AlertStore(self.settings.alerts_db_url)
        evaluated = evaluate_landed_files(self.settings, None, self.store, run_id_prefix)
        self.evaluated = None if isinstance(evaluated, TickReport) else evaluated
        self.report = evaluated if isinstance(evaluated, TickReport) else evaluated.report
        alerts = self.evaluated.alerts if self.evaluated is not None else None
        if alerts is None:
            import pandas as pd

            alerts = pd.DataFrame({"window_start": [], "window_end": []})
        self.pending = alerts.sort_values("window_start", kind="stable")

    def store_through(self, key: str) -> None:
        """Store (notifications queued) the pending alerts whose window starts before the end of
        the hour ``key``; one delivery pass of the outbox follows, as after a streaming pass."""
        if self.evaluated is None or self.pending.empty:
            return
        due = self.pending["window_start"].lt(_hour_span(key)[1])
        if not due.any():
            return
        self.evaluated.store(self.store, self.pending[due], notify=True)
        self.pending = self.pending[~due]
        self._deliver()

    def finish(self):
        """Store what is left, save the rules' state and close; the pass's report."""
        try:
            if self.evaluated is None:
                return self.report
            if len(self.pending):
                self.evaluated.store(self.store, self.pending, notify=True)
                self.pending = self.pending.iloc[:0]
                self._deliver()
            return self.evaluated.finish()
        finally:
            self.store.close()

    def _deliver(self) -> None:
        from refrig_assets.alerts.delivery import deliver_due
        from refrig_assets.alerts.notify import notifier_from_env

        try:
            deliver_due(self.store, notifier_from_env())
        except Exception as exc:  # noqa: BLE001 - queued notifications wait for the next pass
            logging.getLogger(__name__).warning("notification delivery failed: %s", exc)


def _hour_span(key: str):
    import pandas as pd

    start = pd.Timestamp(datetime.strptime(key, "%Y-%m-%d-%H:%M"), tz="UTC")
    return start, start + pd.Timedelta(hours=1)


def training_op_config(
    train_keys: list[str],
    baseline_first_hours: float | None = None,
    normal_periods_file: str | None = None,
) -> dict[str, object]:
    """One training op's config (``TrainingConfig`` in defs/training): the hours to train on
    and, when given, per-device baselines (each device's own first hours, and/or the normal
    periods of a file)."""
    config: dict[str, object] = {"start_partition": train_keys[0], "end_partition": train_keys[-1]}
    if baseline_first_hours:
        config["baseline_first_hours"] = float(baseline_first_hours)
    if normal_periods_file:
        config["normal_periods_file"] = str(normal_periods_file)
    return config


def run_pipeline(
    start: datetime,
    hours: int,
    train_hours: int,
    log=print,
    hours_per_run: int | None = None,
    baseline_first_hours: float | None = None,
    normal_periods_file: str | None = None,
) -> dict[str, object]:
    """Registry → readings..features for every hour → train on the first ``train_hours`` →
    scores and alerts for every hour. Returns a summary of run outcomes.

    The hourly steps run ``hours_per_run`` hours per Dagster run (default:
    config/backfill.yaml), every hour still its own partition with its own checks. With
    ``baseline_first_hours`` and/or ``normal_periods_file`` each detector trains on per-device
    baselines taken from the training hours (see :func:`training_op_config`)."""
    from refrig_assets.core.backfill import hours_per_run as configured_hours_per_run
    from refrig_assets.definitions import defs

    per_run = hours_per_run or configured_hours_per_run()

    logging.getLogger("mlflow").setLevel(logging.ERROR)

    instance = _project_instance()
    keys = hour_keys(start, hours)
    if any(not hourly_partitions.has_partition_key(k) for k in keys):
        from refrig_assets.defs.shared.partitions import partition_range_in_force

        raise OutsidePartitions(partition_range_in_force.explain(keys))
    for run_id in fail_abandoned_runs(instance):
        log(f"  run {run_id} was left unfinished by a process that is gone: marked failed")
    failures: list[str] = []
    # A refused registry is said in one line (RegistryRefused), not a stack trace; the run's
    # error stays in the Dagster instance.
    registry = defs.resolve_job_def("refresh_device_registry").execute_in_process(
        instance=instance, run_config=SILENT, tags=run_tags(), raise_on_error=False
    )
    stop_if_interrupted(registry)
    if not registry.success:
        raise RegistryRefused(registry_problems(registry))
    failures += prepare_hours(defs, instance, keys, per_run, log)
    # What the streaming_threshold_rules sensor does under the daemon: its alerts are stored
    # with the hours they fall in, before those hours' batch alerts confirm or soften them.
    stream = StreamingReplay()
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
                a: {
                    "config": training_op_config(
                        train_keys, baseline_first_hours, normal_periods_file
                    )
                }
                for a in training_assets
            }
        },
        tags=run_tags(),
        raise_on_error=False,
    )
    stop_if_interrupted(result)
    if not result.success:  # a crashed training: the hours are scored by older versions, or none
        failures += [e.step_key for e in result.all_events if e.is_step_failure] or [
            "train_detectors"
        ]
    log(
        f"  trained {', '.join(training_assets)} on {train_keys[0]}..{train_keys[-1]}: "
        f"{'ok' if result.success else 'FAILED'}"
    )
    from refrig_assets.cli.evaluation_runner import held_assets

    held = held_assets(result)
    for asset, why in held.items():  # a detector the fleet is too small for
        log(f"    {asset} {why}")
    score = [a.replace("_model", "_scores") for a in hourly_models]
    try:
        failures += score_hours(defs, instance, keys, per_run, score, log, stream)
    finally:
        report = stream.finish()
    log(f"  streaming rules over {len(report.files)} landing file(s): {report.inserted} alert(s)")
    from refrig_assets.cli.evaluation_runner import run_daily_scores_and_backtest

    failures += run_daily_scores_and_backtest(defs, instance, keys, log, QUIET)
    from refrig_assets.cli.monitoring_runner import run_monitoring

    failures += run_monitoring(defs, instance, keys, log, QUIET)
    not_trained = [a for a, why in held.items() if why.startswith("not trained")]
    return {"hours": keys, "failed_steps": failures, "not_trained": not_trained}


def _project_instance() -> dg.DagsterInstance:
    """The instance of $DAGSTER_HOME, else the one under $REFRIG_HOME/dagster (what `make dev`
    shows); a home that does not exist yet is created with the project's settings."""
    from refrig_assets.core.settings import get_settings

    if not os.environ.get("DAGSTER_HOME"):
        os.environ.pop("DAGSTER_HOME", None)  # set but empty reads as unset
    home = get_settings().dagster_home
    home.mkdir(parents=True, exist_ok=True)
    _without_telemetry_banner(home)
    os.environ["DAGSTER_HOME"] = str(home)
    return pipeline_instance()


def _without_telemetry_banner(dagster_home: Path) -> None:
    """An instance without configuration gets the project's settings, as `make` writes them:
    telemetry and the UI's welcome pop-up off (Dagster otherwise prints its telemetry banner
    into the run's output) and the batched event log, which runs the daemon launches in this
    home later use too."""
    if dagster_home.is_dir():
        write_instance_settings(dagster_home)


def _is_hourly(training_asset: str) -> bool:
    from refrig_assets.core.model_config import load_model_config

    return load_model_config(training_asset.removesuffix("_model")).schedule == "hourly"
