"""``refrig quality``: the data-quality report of one hourly partition."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer

from refrig_assets.core.settings import get_settings

app = typer.Typer(
    help="Data quality of the hourly partitions: rows read, clean and quarantined, flag rates, "
    "freshness.",
    no_args_is_help=True,
    add_completion=False,
)


class Format(StrEnum):
    text = "text"
    json = "json"


def _partition_key(value: str) -> str:
    """Accept ``2026-01-01-05:00``, ``2026-01-01T05`` or ``2026-01-01T05:00``."""
    v = value.strip().replace("T", "-")
    if len(v) == 13:
        v += ":00"
    try:
        hour = datetime.strptime(v, "%Y-%m-%d-%H:%M")
    except ValueError:
        hour = None
    if hour is None or hour.minute:
        typer.echo(
            f"error: --partition {value!r} is not an hour: give e.g. 2026-01-01-05:00", err=True
        )
        raise typer.Exit(2)
    return v


@app.command("report")
def report(
    partition: Annotated[str, typer.Option(help="Hourly partition, e.g. 2026-01-01-05:00.")],
    format: Annotated[Format, typer.Option("--format", help="text or json.")] = Format.text,
) -> None:
    """Rows read, clean and quarantined (by rule and by file), flag rates per sensor and the
    freshness of each dataset of one partition."""
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.quality.report import format_report, quality_report

    store = ParquetStore(get_settings().data_dir)
    try:
        result = quality_report(store, _partition_key(partition))
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if format is Format.json:
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
    else:
        typer.echo(format_report(result))
