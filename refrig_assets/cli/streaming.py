"""``refrig streaming run``: one pass of the streaming threshold rules over the landing zone.

What the ``streaming_threshold_rules`` sensor does every few seconds under the Dagster daemon,
for use without the daemon (``make run``) or to catch up after an outage. Readings already
evaluated (behind each device's watermark in the streaming state) are never evaluated again,
so a pass over files the sensor has read raises nothing twice.
"""

from __future__ import annotations

import json

import typer

from refrig_assets.core.settings import get_settings
from refrig_assets.streaming.tick import run_once

app = typer.Typer(
    help="Streaming threshold rules (compressor overload, vibration spike, acute pressure "
    "loss, total cooling loss) over the landing zone.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("run")
def run(
    as_json: bool = typer.Option(False, "--json", help="Print the pass report as JSON."),
) -> None:
    """Evaluate the rules on every landing file of the lookback, store and notify alerts."""
    report = run_once(get_settings())
    if as_json:
        typer.echo(json.dumps(report.metadata(), indent=2))
        return
    typer.echo(
        f"{len(report.files)} file(s), {report.readings} new readings "
        f"({report.late_readings} already evaluated), {report.inserted} new alert(s) "
        f"({report.suppressed} suppressed) in {report.seconds:.2f} s"
    )
