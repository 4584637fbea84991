"""``refrig pipeline``: run the asset graph for a range of hours and summarise what it found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
import typer

from refrig_assets.core.settings import get_settings

if TYPE_CHECKING:
    from refrig_assets.ingestion.landing.index import LandingIndex

app = typer.Typer(
    help="Run the asset graph over a range of hours (recorded in the Dagster instance)."
)
# The hints name plain `refrig`, as the README does once .venv is activated.
COMMANDS_HINT = "(refrig commands: after `source .venv/bin/activate`, or as .venv/bin/refrig)"


def _parse_hour(value: str) -> datetime:
    ts = datetime.fromisoformat(value)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


@app.command("run")
def run(
    start: str = typer.Option("2026-01-01T00:00", help="First hour (UTC)."),
    hours: int = typer.Option(6, help="Number of hours."),
    train_hours: int = typer.Option(2, help="Train the detectors on the first N hours."),
    wait: bool = typer.Option(
        False, "--wait", help="When another pipeline run holds this home, wait for it."
    ),
    hours_per_run: int | None = typer.Option(
        None,
        "--hours-per-run",
        min=1,
        help="Hours per Dagster run (default: config/backfill.yaml); 1: one run per hour.",
    ),
    baseline_first_hours: float | None = typer.Option(
        None,
        "--baseline-first-hours",
        min=0.0,
        help="Per-device baselines: each device trains on its own first H hours of clean "
        "windows within the training hours (a device without them yet uses its cohort's).",
    ),
    normal_periods: str | None = typer.Option(
        None,
        "--normal-periods",
        help="Per-device baselines from a CSV/Parquet file of device_id, start, end periods "
        "marked normal (with --baseline-first-hours: the file's devices use its periods).",
    ),
) -> None:
    """Readings → features for every hour, train on the first hours, then scores and alerts.

    A long range (a history backfill) runs many hours per Dagster run, each hour still its own
    partition with its own checks and metadata. One run per home at a time (it runs in this
    process, outside Dagster's run queue): a second one refuses, naming the first, or waits
    with --wait."""
    from refrig_assets.core.partition_range import hour_keys, record_run_range

    if normal_periods is not None:
        from pathlib import Path

        if not Path(normal_periods).is_file():
            typer.echo(f"--normal-periods: {normal_periods}: no such file", err=True)
            raise typer.Exit(1)
        normal_periods = str(Path(normal_periods).resolve())  # the training op reads it
    begin = _parse_hour(start)
    # Before the definitions load: their partitions are the hours recorded here (make dev too).
    in_force = record_run_range(begin, hours)
    asked = hour_keys(begin, hours)
    if in_force.outside(asked):
        typer.echo(in_force.explain(asked), err=True)
        raise typer.Exit(1)
    from refrig_assets.cli.runner import (
        OutsidePartitions,
        RegistryRefused,
        run_pipeline,
    )
    from refrig_assets.core.home_lock import HomeBusy, HomeLock

    lock = HomeLock(get_settings().home, wait=wait)
    try:
        lock.acquire()
    except HomeBusy as busy:
        typer.echo(f"refused: {busy}", err=True)
        raise typer.Exit(75) from None  # EX_TEMPFAIL: try again later
    from refrig_assets.cli.progress import PipelineProgress, pipeline_steps

    progress = PipelineProgress(pipeline_steps(hours, len({k[:10] for k in asked})))
    try:
        typer.echo(f"Running {hours} hour(s) from {begin:%Y-%m-%d %H:%M} UTC")
        outcome = run_pipeline(
            begin,
            hours,
            train_hours,
            log=progress,
            hours_per_run=hours_per_run,
            baseline_first_hours=baseline_first_hours,
            normal_periods_file=normal_periods,
        )
    except (RegistryRefused, OutsidePartitions) as refused:
        typer.echo(str(refused), err=True)
        raise typer.Exit(1) from None
    finally:
        lock.release()
    typer.echo("")
    typer.echo(summarise(hour_keys(begin, hours)))
    if outcome.get("not_trained"):
        typer.echo(not_trained_line(outcome["not_trained"]))
    from refrig_assets.monitoring.summary import pipeline_run_summary

    typer.echo(pipeline_run_summary(hour_keys(begin, hours)))
    if outcome["failed_steps"]:
        typer.echo(f"failed steps: {outcome['failed_steps']}", err=True)
        raise typer.Exit(1)


def not_trained_line(assets: list[str]) -> str:
    """The summary's line naming the detectors training refused (their reasons are printed under
    the training step), so "batch alerts: none" is not read as a healthy fleet."""
    return (
        f"detectors not trained ({len(assets)}): {', '.join(assets)}; they scored nothing: "
        "see why under the training step above"
    )


# Files named one by one in the summary; the rest are counted.
FILES_NAMED = 5


def files_waiting_lines(index: LandingIndex, keys: list[str]) -> list[str]:
    """Landing files without a usable reading time (rejected whole, or no timestamp that
    parses) belong to the hour their name carries, else the hour they arrived in; where that
    hour is outside ``keys`` and never ran, the run's quarantine does not show them: say so."""
    run = set(keys)
    waiting = [
        (path, span)
        for path, span in sorted(index.entries.items())
        if (span.rejection is not None or span.min_ts is None)
        and span.hours
        and not run & set(span.hours)
        and not any(h in index.hours for h in span.hours)
    ]
    if not waiting:
        return []
    lines = [
        f"landing files without a reading time in these hours: {len(waiting)}, quarantined "
        "when the hour they are placed in (their name's, else their arrival's) runs"
    ]
    for path, span in waiting[:FILES_NAMED]:
        hours = ", ".join(span.hours)
        if span.rejection:
            lines.append(f"  {span.rejection['message']} [{span.rejection['rule']}; {hours}]")
        else:
            lines.append(
                f"  {path}: {span.rows:,} rows, none with a usable reading time (unparsable "
                f"or implausible) [{hours}]"
            )
    if len(waiting) > FILES_NAMED:
        lines.append(f"  ... and {len(waiting) - FILES_NAMED} more")
    return lines


def summarise(keys: list[str]) -> str:
    """Quality counts, alerts by severity and the backtest for the given hours."""
    from refrig_assets.core.secrets import masked_url
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.evaluation.backtest import backtest

    s = get_settings()
    store = ParquetStore(s.data_dir)
    lines = ["== Summary =="]
    clean = sum(pq_rows(store.path("clean_readings", k)) for k in keys)
    quarantine = store.read_many("quarantined_readings", keys)
    lines.append(f"clean readings: {clean:,}   quarantined rows/files: {len(quarantine):,}")
    if len(quarantine):
        for rule, n in quarantine["rule"].value_counts().items():
            lines.append(f"  quarantined [{rule}]: {n}")
    from refrig_assets.ingestion.landing.index import LandingIndex, landing_index_path

    lines.extend(files_waiting_lines(LandingIndex(landing_index_path(s)), keys))
    import sqlalchemy as sa

    try:
        lines.append(alert_database_line(keys))
        lines.extend(incident_lines(keys, store, s.labels_path))
    except sa.exc.SQLAlchemyError as exc:
        lines.append(
            f"alerts and incidents: alert database {masked_url(s.alerts_db_url)} not reachable "
            f"({type(getattr(exc, 'orig', None) or exc).__name__})"
        )
    alerts = store.read_many("device_alerts", keys)
    if alerts.empty:
        lines += ["batch alerts: none", COMMANDS_HINT]
        return "\n".join(lines)
    active = alerts[~alerts["suppressed"]]
    by_sev = active["severity"].value_counts()
    order = ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    lines.append(
        f"batch alerts: {len(active)} active, {int(alerts['suppressed'].sum())} suppressed as "
        "repeats  (" + ", ".join(f"{sev} {int(by_sev.get(sev, 0))}" for sev in order) + ")"
    )
    if s.labels_path.exists():
        labels = pd.read_parquet(s.labels_path)
        devices = store.read("device_registry")["device_id"].nunique()
        per_type, totals = backtest(alerts, labels, device_hours=devices * len(keys))
        lines.append(
            f"injected machine faults caught by batch alerts alone: {int(per_type['caught'].sum())}/{int(per_type['incidents'].sum())}"
            f"  (recall {totals['recall']:.2f}, alert precision {totals['precision']:.2f}, "
            f"{totals['false_alerts_per_1000_device_days']:.1f} false alerts per 1,000 device-days)"
        )
        lines.append(
            "  by category: "
            + ", ".join(
                f"{k.removeprefix('recall_')} recall {v:.2f}"
                for k, v in totals.items()
                if k.startswith("recall_")
            )
        )
        lines.append(per_type.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        lines.append(detector_quality(store, labels, keys, devices * len(keys)))
    database = masked_url(s.alerts_db_url)
    lines.append(f"list them: refrig alerts list --severity HIGH   (database: {database})")
    lines.append(COMMANDS_HINT)
    return "\n".join(lines)


def alert_database_line(keys: list[str]) -> str:
    """What the console lists for these hours: unsuppressed alerts in the alert database whose
    window meets them, by source (batch, streaming, fallback) and severity."""
    from refrig_assets.alerts.store import AlertStore

    start = datetime.strptime(keys[0], "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
    end = datetime.strptime(keys[-1], "%Y-%m-%d-%H:%M").replace(tzinfo=UTC) + timedelta(hours=1)
    store = AlertStore(get_settings().alerts_db_url)
    try:
        found = store.overlapping(start, end)
    finally:
        store.close()
    shown = found[~found["suppressed"].astype(bool)] if len(found) else found
    if shown.empty:
        return "alerts (as the console lists them): none"
    by_source = ", ".join(
        f"{s} {n}" for s, n in shown["source"].value_counts().sort_index().items()
    )
    by_sev = shown["severity"].value_counts()
    order = ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    return (
        f"alerts (as the console lists them): {len(shown)}  ({by_source}; "
        + ", ".join(f"{sev} {int(by_sev.get(sev, 0))}" for sev in order)
        + ")"
    )


def incident_lines(keys: list[str], store, labels_path) -> list[str]:
    """The incidents of these hours (severity, kind, causes), how many of them the console and
    ``refrig incidents list`` show by default (those still open or acknowledged) and, on a
    simulated fleet with labels, the incident-level backtest: per fault type recall, delay,
    incidents per fault and whether the probable cause was right."""
    from refrig_assets.evaluation.backtest import incident_backtest
    from refrig_assets.incidents.repository import IncidentStore
    from refrig_assets.simulator.faults import FAULT_CAUSES

    start = datetime.strptime(keys[0], "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
    end = datetime.strptime(keys[-1], "%Y-%m-%d-%H:%M").replace(tzinfo=UTC) + timedelta(hours=1)
    incidents_db = IncidentStore(get_settings().alerts_db_url)
    try:
        found, _ = incidents_db.list()
        live, _ = incidents_db.list(live_only=True)
    finally:
        incidents_db.close()
    if len(found):
        first = pd.to_datetime(found["first_window_start"], utc=True)
        last = pd.to_datetime(found["last_window_end"], utc=True)
        found = found[(first < end) & (last > start)]
    if found.empty:
        return ["incidents: none"]
    listed = int(found["incident_id"].isin(live["incident_id"]).sum())
    inhibited = found["inhibited"].fillna(False).astype(bool)
    # inhibited without evidence: superseded (its evidence moved to the incident that explains it)
    superseded = inhibited & found["evidence_count"].fillna(0).eq(0)
    shown = found[~inhibited]
    by_sev = shown["severity"].value_counts()
    order = ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    kinds = ", ".join(f"{k} {n}" for k, n in shown["kind"].value_counts().items())
    causes = ", ".join(f"{c} {n}" for c, n in shown["cause"].value_counts().head(6).items())
    lines = [
        f"incidents: {len(found)}  ("
        + ", ".join(f"{sev} {int(by_sev.get(sev, 0))}" for sev in order)
        + f"; {kinds}; {int((inhibited & ~superseded).sum())} more inhibited by a site incident"
        + (
            f", {int(superseded.sum())} superseded by another incident)"
            if superseded.any()
            else ")"
        ),
        f"  probable causes: {causes}",
        f"  the console lists the {listed} still open or acknowledged: refrig incidents list"
        f"  (--status ALL for all {len(found)})",
    ]
    if labels_path.exists():
        labels = pd.read_parquet(labels_path)
        registry = store.read("device_registry")
        device_hours = registry["device_id"].nunique() * len(keys)
        per_type, totals = incident_backtest(
            found, labels, device_hours, devices=registry, expected_causes=FAULT_CAUSES
        )
        lines.append(
            f"injected faults as incidents: recall {totals['recall']:.2f}, "
            f"{totals['incidents_per_fault']:.2f} incidents per fault, "
            f"{totals['false_incidents_per_1000_device_days']:.1f} false incidents per 1,000 "
            f"device-days, {totals['share_critical']:.0%} CRITICAL"
        )
        columns = ["fault_type", "faults", "caught", "recall", "median_delay_min"]
        columns += ["incidents_per_fault", "cause_accuracy"]
        lines.append(per_type[columns].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return lines


def detector_quality(store, labels: pd.DataFrame, keys: list[str], device_hours: float) -> str:
    """Each detector's own flags against the labels (daily detectors once their day is scored)."""
    from refrig_assets.core.model_config import all_model_ids
    from refrig_assets.core.storage import partition_file_name
    from refrig_assets.evaluation.backtest import fleet_flagged_scores, score_backtest

    stems = [partition_file_name(k) for k in keys]
    flagged, counts = fleet_flagged_scores(store, all_model_ids(), stems)
    table = score_backtest(flagged, labels, device_hours, rows_scored=counts)
    if table.empty:
        return "per detector: no scores"
    shown = table[
        ["model_id", "rows_scored", "incidents_caught", "recall", "median_delay_min"]
        + ["flag_precision", "false_flags_per_1000_device_days"]
    ]
    return "per detector (its own flags):\n" + shown.to_string(
        index=False, float_format=lambda v: f"{v:.2f}"
    )


def pq_rows(path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0
