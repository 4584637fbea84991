"""``refrig evaluate --labels FILE``: alerts, incidents and detector scores against labels."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import typer

from refrig_assets.core.settings import get_settings

# Features listed on the console, best separating first (all of them in separability.csv).
SHOWN_FEATURES = 8


def _time(value: str | None, option: str) -> pd.Timestamp | None:
    """``--start``/``--end`` in UTC (a time without an offset is UTC); refused by name when it
    is no time."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        ts = pd.NaT
    if pd.isna(ts):
        typer.echo(f"{option} {value!r} is not a time: give e.g. 2026-01-01T05:00", err=True)
        raise typer.Exit(2)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def evaluate_command(
    labels: str = typer.Option(
        ...,
        "--labels",
        help="Point labels (device_id, ts, anomaly) or intervals "
        "(device_id, start, end[, kind]); CSV or Parquet.",
    ),
    start: str | None = typer.Option(
        None,
        help="First instant evaluated (default: the labels' first; for intervals, also the "
        "first stored feature hour).",
    ),
    end: str | None = typer.Option(None, help="Last instant evaluated (default: as --start)."),
    labelled_devices_only: bool = typer.Option(
        False,
        "--labelled-devices-only",
        help="Interval labels: evaluate only devices that have a label (default: every device "
        "with feature windows; those without a label count as normal).",
    ),
    out: str | None = typer.Option(
        None,
        help="Folder for metrics.csv, sweep.csv and sweep.png (default: $REFRIG_HOME/evaluation).",
    ),
) -> None:
    """Point-wise F1, false-alarm and missed-alarm rates; event-wise recall, precision and
    detection delay, for alerts, fault incidents, sensor and communications (data-loss)
    tickets and each detector's flags, plus a threshold sweep of
    each detector's score (table and plot)."""
    from refrig_assets.core.model_config import all_model_ids
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.evaluation.labelled import (
        DATA_LOSS_SOURCE,
        EVENT_METRICS,
        POINT_METRICS,
        LabelsError,
        best_thresholds,
        evaluate_store,
        read_labels,
        sweep_plot,
    )
    from refrig_assets.evaluation.separability import stored_separability

    s = get_settings()
    try:
        parsed = read_labels(labels)
    except LabelsError as exc:
        typer.echo(f"labels refused: {exc}", err=True)
        raise typer.Exit(2) from None
    except (OSError, ValueError) as exc:  # a directory, unreadable, not CSV/Parquet at all
        typer.echo(f"labels refused: {labels}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    if parsed.kind == "points" and parsed.frame.empty:
        typer.echo(f"labels refused: {labels}: no labelled points", err=True)
        raise typer.Exit(2)
    first, last = parsed.span
    store = ParquetStore(s.data_dir)
    if parsed.kind == "intervals":  # every stored window counts, not only those of the labels
        stems = store.partitions("device_features")
        if stems:
            hour = pd.Timedelta(hours=1)
            stored = (
                pd.Timestamp(stems[0][:13] + ":00", tz="UTC"),
                pd.Timestamp(stems[-1][:13] + ":00", tz="UTC") + hour,
            )
            # No intervals (a period without faults) leaves the stored hours' span alone.
            first = stored[0] if pd.isna(first) else min(first, stored[0])
            last = stored[1] if pd.isna(last) else max(last, stored[1])
    begin, finish = _time(start, "--start") or first, _time(end, "--end") or last
    if pd.isna(begin) or pd.isna(finish):
        typer.echo(
            f"labels refused: {labels}: no labelled interval and no stored feature windows: "
            "nothing to evaluate",
            err=True,
        )
        raise typer.Exit(2)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            metrics, sweep, sources, by_kind, lost_only = evaluate_store(
                store,
                parsed,
                all_model_ids(),
                begin,
                finish,
                labelled_devices_only=labelled_devices_only,
            )
    except LabelsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    folder = Path(out) if out else s.home / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    metrics.to_csv(folder / "metrics.csv", index=False)
    sweep.to_csv(folder / "sweep.csv", index=False)
    plot = sweep_plot(sweep, folder / "sweep.png")
    fmt = {"float_format": lambda v: f"{v:.3f}"}
    typer.echo(
        f"labels: {labels} ({parsed.kind}, {len(parsed.frame)} rows, "
        f"{len(parsed.devices)} devices), {begin:%Y-%m-%d %H:%M} to {finish:%Y-%m-%d %H:%M} UTC"
    )
    for w in caught:
        if issubclass(w.category, UserWarning):
            typer.echo(f"note: {w.message}", err=True)
    if "incidents" not in sources:
        typer.echo("incidents: none (device_incidents not materialized nor buildable)")
    from refrig_assets.lifecycle.integrity import not_trained_models

    for model_id, reason in not_trained_models(all_model_ids(), s.alerts_db_url).items():
        typer.echo(f"{model_id}: no scores, not trained ({reason})")
    point_cols = ["source", *POINT_METRICS]
    event_cols = ["source", *EVENT_METRICS]
    typer.echo("\npoint-wise:\n" + metrics[point_cols].to_string(index=False, **fmt))
    typer.echo("\nevent-wise:\n" + metrics[event_cols].to_string(index=False, **fmt))
    if DATA_LOSS_SOURCE in sources:
        events = int(metrics["events"].iloc[0]) if len(metrics) else 0
        typer.echo(
            f"\nlabelled events a {DATA_LOSS_SOURCE.removesuffix('s')} touched and no fault "
            f"incident did: {lost_only} of {events} (not counted as detected by incidents)"
        )
    if len(by_kind):
        by_kind.to_csv(folder / "recall_by_kind.csv", index=False)
        table = by_kind.pivot(index="kind", columns="source", values="event_recall")
        typer.echo("\nevent recall by labelled kind:\n" + table.to_string(**fmt))
    best = best_thresholds(sweep)
    if len(best):
        typer.echo(
            "\nbest score threshold per detector (point-wise F1):\n"
            + best[
                ["source", "threshold", "precision", "recall", "f1", "false_alarm_rate"]
            ].to_string(index=False, **fmt)
        )
    separable = stored_separability(store, parsed, begin, finish, labelled_devices_only)
    separable.to_csv(folder / "separability.csv", index=False)
    if len(separable):
        typer.echo(
            "\nfeatures that tell labelled-anomalous windows from normal ones (ROC AUC of the "
            "distance from the device's normal median: 0.5 none, 1.0 all; the detectors read "
            "the features their models/ files name; all in separability.csv):\n"
            + separable.head(SHOWN_FEATURES).to_string(index=False, **fmt)
        )
    typer.echo(
        f"\nwritten: {folder / 'metrics.csv'}, {folder / 'sweep.csv'}, "
        f"{folder / 'separability.csv'}, "
        + (str(plot) if plot else "no sweep plot (matplotlib not installed or no scores)")
    )
