"""``refrig evaluate --labels FILE``: alerts, incidents and detector scores against labels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from refrig_assets.core.settings import get_settings


def _time(value: str | None) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def evaluate_command(
    labels: str = typer.Option(
        ...,
        "--labels",
        help="Point labels (device_id, ts, anomaly) or intervals "
        "(device_id, start, end[, kind]); CSV or Parquet.",
    ),
    start: str | None = typer.Option(None, help="First instant evaluated (default: labels')."),
    end: str | None = typer.Option(None, help="Last instant evaluated (default: labels')."),
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
    detection delay, for alerts, incidents and each detector's flags, plus a threshold sweep of
    each detector's score (table and plot)."""
    from refrig_assets.core.model_config import all_model_ids
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.evaluation.labelled import (
        LabelsError,
        best_thresholds,
        evaluate,
        read_labels,
        stored_predictions,
        sweep_plot,
        threshold_sweep,
    )

    s = get_settings()
    try:
        parsed = read_labels(labels)
    except LabelsError as exc:
        typer.echo(f"labels refused: {exc}", err=True)
        raise typer.Exit(2) from None
    first, last = parsed.span
    begin, finish = _time(start) or first, _time(end) or last
    store = ParquetStore(s.data_dir)
    flagged, scores, windows = stored_predictions(store, all_model_ids(), begin, finish)
    if parsed.kind == "intervals":
        t = pd.to_datetime(windows["window_start"], utc=True)
        windows = windows[(t >= begin) & (t <= finish)]
        if labelled_devices_only:
            windows = windows[windows["device_id"].astype(str).isin(parsed.devices)]
        if windows.empty:
            typer.echo(
                f"no feature windows between {begin} and {finish}: run the pipeline "
                "over the labelled hours first",
                err=True,
            )
            raise typer.Exit(1)
    elif start or end:
        keep = (parsed.frame["ts"] >= begin) & (parsed.frame["ts"] <= finish)
        parsed.frame = parsed.frame[keep].reset_index(drop=True)
    metrics = evaluate(parsed, flagged, windows)
    sweep = threshold_sweep(parsed, scores, windows)
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
    if "incidents" not in flagged:
        typer.echo("incidents: none stored (device_incidents not materialized)")
    point_cols = [
        "source",
        "points",
        "anomalous_points",
        "precision",
        "recall",
        "f1",
        "false_alarm_rate",
        "missed_alarm_rate",
    ]
    event_cols = [
        "source",
        "events",
        "events_detected",
        "event_recall",
        "predicted_events",
        "event_precision",
        "median_delay_min",
        "max_delay_min",
    ]
    typer.echo("\npoint-wise:\n" + metrics[point_cols].to_string(index=False, **fmt))
    typer.echo("\nevent-wise:\n" + metrics[event_cols].to_string(index=False, **fmt))
    best = best_thresholds(sweep)
    if len(best):
        typer.echo(
            "\nbest score threshold per detector (point-wise F1):\n"
            + best[
                ["source", "threshold", "precision", "recall", "f1", "false_alarm_rate"]
            ].to_string(index=False, **fmt)
        )
    typer.echo(
        f"\nwritten: {folder / 'metrics.csv'}, {folder / 'sweep.csv'}, "
        + (str(plot) if plot else "no sweep plot (matplotlib not installed or no scores)")
    )
