"""``refrig monitor``: the daily monitoring's findings and the retraining it requested."""

from __future__ import annotations

import typer

from refrig_assets.core.settings import get_settings

app = typer.Typer(help="Drift, pipeline health and retraining requests from daily monitoring.")


@app.command("requests")
def requests(
    model: str | None = typer.Option(None, help="Only this detector."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per request."),
) -> None:
    """Every retraining request recorded, oldest first, with its trigger and reason."""
    from refrig_assets.monitoring.retraining_trigger import RetrainingLog

    log = RetrainingLog(get_settings().alerts_db_url)
    rows = log.list(model)
    log.close()
    if rows.empty:
        typer.echo("no retraining requested")
        return
    for r in rows.itertuples():
        if as_json:
            typer.echo(rows.loc[[r.Index]].to_json(orient="records", date_format="iso")[1:-1])
        else:
            typer.echo(f"{r.requested_at:%Y-%m-%d %H:%M} [{r.trigger}] {r.reason}")


@app.command("summary")
def summary(day: str = typer.Argument(..., help="UTC day, e.g. 2026-01-01.")) -> None:
    """Drift report paths, top drifting features, score drift, health alerts and retraining
    due for one day (what `refrig pipeline run` ends with)."""
    from refrig_assets.monitoring.summary import pipeline_run_summary

    typer.echo(pipeline_run_summary([f"{day}-00:00"]))
