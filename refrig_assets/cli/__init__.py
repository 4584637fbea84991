"""The ``refrig`` command line. Each command group lives in its own module of this package."""

from __future__ import annotations

import typer

from refrig_assets.cli import alerts, models, pipeline, simulate

app = typer.Typer(
    help="refrig-assets: anomaly detection and alerts for refrigeration fleets.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("simulate")(simulate.simulate)
app.add_typer(alerts.app, name="alerts")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(models.app, name="models")

if __name__ == "__main__":  # pragma: no cover
    app()
