"""``refrig metrics serve``: Prometheus exporter of the batch runs and the alert pipeline."""

from __future__ import annotations

import typer

from refrig_assets.monitoring.exporter import ROW_KEYS, BatchStep

app = typer.Typer(help="Prometheus metrics of the batch path and the alert pipeline.")


def dagster_steps(instance, recent_runs: int) -> list[BatchStep]:
    """Step executions of the ``recent_runs`` newest runs of the Dagster instance, with the rows
    each successful step's materialization reported."""
    import dagster as dg

    steps: list[BatchStep] = []
    runs = instance.get_runs(limit=recent_runs)
    for run in runs:
        for stat in instance.get_run_step_stats(run.run_id):
            start, end = stat.start_time, stat.end_time
            steps.append(
                BatchStep(
                    stat.step_key,
                    stat.status.value if stat.status is not None else "UNKNOWN",
                    start,
                    (end - start) if start and end else None,
                )
            )
    keys = {dg.AssetKey(s.step) for s in steps}
    latest = instance.get_latest_materialization_events(list(keys)) if keys else {}
    rows: dict[str, float] = {}
    for key, event in latest.items():
        if event is None or event.asset_materialization is None:
            continue
        meta = event.asset_materialization.metadata
        found = next((meta[k] for k in ROW_KEYS if k in meta), None)
        value = getattr(found, "value", found)
        if isinstance(value, int | float):
            rows[key.to_user_string()] = float(value)
    return [
        BatchStep(s.step, s.status, s.started_at, s.duration_s, rows.get(s.step))
        if s.status == "SUCCESS"
        else s
        for s in steps
    ]


@app.command("serve")
def serve(
    host: str | None = typer.Option(
        None, "--host", help="Default: exporter.host in config/serving.yaml."
    ),
    port: int | None = typer.Option(
        None,
        "--port",
        min=1,
        max=65535,
        help="Default: exporter.port in config/serving.yaml.",
    ),
) -> None:
    """Serve /metrics: alerts and incidents opened, notifications delivered, failing and
    dead-lettered, outbox depth (alert database) and per step the batch runs' outcomes,
    durations and rows (Dagster instance), read at every scrape."""
    import time

    import dagster as dg
    from prometheus_client import start_http_server

    from refrig_assets.core.settings import get_settings
    from refrig_assets.monitoring.exporter import pipeline_registry
    from refrig_assets.serving.settings import load_serving_settings

    config = load_serving_settings()
    settings = get_settings()
    instance = dg.DagsterInstance.get()
    registry = pipeline_registry(
        settings.alerts_db_url,
        lambda: dagster_steps(instance, config.exporter_recent_runs),
    )
    host, port = host or config.exporter_host, port or config.exporter_port
    start_http_server(port, addr=host, registry=registry)
    typer.echo(f"Pipeline metrics on http://{host}:{port}/metrics")
    while True:
        time.sleep(3600)
