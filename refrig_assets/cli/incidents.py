"""``refrig incidents``: list, inspect and act on incidents in the alert database.

An incident is one fault episode of a device (its alerts kept as evidence), a site event or a
sensor-health ticket (docs/incidents.md). The database is ``get_settings().alerts_db_url``.
Errors print one line on stderr and exit with status 1.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any

import pandas as pd
import typer

from refrig_assets.alerts.store import STATUSES, InvalidTransition
from refrig_assets.cli.records import (
    OutputFormat,
    choice,
    echo_fields,
    echo_history,
    fail,
    iso,
    opened_store,
)
from refrig_assets.cli.users import BY_HELP, actor
from refrig_assets.core.settings import get_settings
from refrig_assets.incidents.repository import IncidentNotFound, IncidentStore

app = typer.Typer(
    help="Inspect incidents (one per fault episode, site event or sensor ticket) and move them "
    "through their lifecycle; acknowledging an incident acknowledges its alerts.",
    no_args_is_help=True,
    add_completion=False,
)

# The table's columns (header, incident field); --format json/csv carry every column.
TABLE_COLUMNS = [
    ("Incident", "incident_id"),
    ("Severity", "severity"),
    ("Status", "status"),
    ("Device/site", "where"),
    ("Cause", "cause"),
    ("Since", "first_window_start"),
    ("Alerts", "alert_count"),
    ("Note", "note"),
]
ALL_STATUSES = "ALL"


def _store() -> AbstractContextManager[IncidentStore]:
    """The configured store for one command; errors become one line + exit 1."""
    return opened_store(
        lambda: IncidentStore(get_settings().alerts_db_url),
        (IncidentNotFound, InvalidTransition, ValueError),
    )


def _emit(frame: pd.DataFrame, output: OutputFormat, empty: str) -> None:
    if output is OutputFormat.json:
        typer.echo(frame.to_json(orient="records", date_format="iso", indent=2))
    elif output is OutputFormat.csv:
        typer.echo(frame.to_csv(index=False), nl=False)
    elif frame.empty:
        typer.echo(empty)
    else:
        _print_table(frame)


@app.command("list")
def list_incidents(
    status: str | None = typer.Option(
        None,
        "--status",
        help="OPEN, ACKNOWLEDGED, RESOLVED, FALSE_POSITIVE or ALL (default: live incidents, "
        "OPEN or ACKNOWLEDGED and not closed).",
    ),
    severity: str | None = typer.Option(None, "--severity", help="CRITICAL, HIGH, MEDIUM, LOW."),
    kind: str | None = typer.Option(
        None, "--kind", help="refrigeration, operational, sensor, site or unknown."
    ),
    cause: str | None = typer.Option(None, "--cause", help="A probable cause name."),
    site: str | None = typer.Option(None, "--site", help="Only incidents of this site_id."),
    device: str | None = typer.Option(None, "--device", help="Only incidents of this device."),
    hide_inhibited: bool = typer.Option(
        False, "--hide-inhibited", help="Leave out incidents explained by a site incident."
    ),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many incidents."),
    cursor: str | None = typer.Option(None, "--cursor", help="Next page (printed by a list)."),
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table, json or csv.")
    ] = OutputFormat.table,
) -> None:
    """List incidents, most severe first, then newest first."""
    with _store() as store:
        everything = status is not None and status.upper() == ALL_STATUSES
        frame, next_cursor = store.list(
            status=None if everything else choice(status, STATUSES, "--status"),
            severity=choice(severity, store.policy.severities, "--severity"),
            kind=kind,
            cause=cause,
            site_id=site,
            device_id=device,
            include_inhibited=not hide_inhibited,
            live_only=status is None,
            limit=limit,
            cursor=cursor,
        )
    _emit(frame, output, "No incidents match.")
    if next_cursor and output is OutputFormat.table:
        typer.echo(f"More: --cursor {next_cursor}")


def _print_table(frame: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold", collapse_padding=True)
    for header, field in TABLE_COLUMNS:
        if field == "note":
            table.add_column(header, overflow="fold", ratio=1, min_width=20)
        else:
            table.add_column(header, no_wrap=field in ("incident_id", "severity", "status"))
    for r in frame.to_dict("records"):
        where = r["device_id"] if r["scope"] == "device" else f"site {r['site_id']}"
        note = r["explanation"]
        if r["inhibited"]:
            note = f"inhibited by {r['parent_incident_id']}. {note}"
        cells = {
            "where": str(where),
            "cause": f"{r['cause']} ({float(r['cause_confidence']):.2f})",
            "first_window_start": f"{pd.Timestamp(r['first_window_start']):%m-%d %H:%M}",
            "note": str(note),
        }
        table.add_row(*(cells.get(f, str(r.get(f, ""))) for _, f in TABLE_COLUMNS))
    console = Console(soft_wrap=False)
    console.print(table)
    console.print(f"\n{len(frame)} incident(s)")


@app.command("show")
def show(
    incident_id: str = typer.Argument(..., help="The incident to show."),
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table (text), json or csv (evidence).")
    ] = OutputFormat.table,
) -> None:
    """Show one incident: every field, its evidence timeline and its history."""
    with _store() as store:
        incident = store.get(incident_id)
        if incident is None:
            raise IncidentNotFound(f"no incident with id {incident_id!r}")
        evidence = store.evidence(incident_id)
        history = store.history(incident_id)
    if output is OutputFormat.json:
        import json

        doc = {
            "incident": {k: iso(v) for k, v in incident.items()},
            "evidence": json.loads(evidence.to_json(orient="records", date_format="iso")),
            "history": [{k: iso(v) for k, v in h.items()} for h in history],
        }
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    if output is OutputFormat.csv:
        typer.echo(evidence.to_csv(index=False), nl=False)
        return
    echo_fields(incident)
    typer.echo(f"\nevidence ({len(evidence)}):")
    for e in evidence.to_dict("records"):
        what = e["explanation"] if isinstance(e["explanation"], str) else e["detail"]
        repeat = " (repeat)" if e["repeat"] else ""
        typer.echo(
            f"  {e['window_start']:%Y-%m-%d %H:%M}  {e['source']:<10} {e['severity'] or '-':<8} "
            f"{e['cause']}{repeat}  {what}"
        )
    echo_history(history)


def _transition(action: Callable[[IncidentStore], dict[str, Any]], verb: str) -> None:
    with _store() as store:
        incident = action(store)
    typer.echo(f"Incident {incident['incident_id']} {verb}; status is now {incident['status']}.")


@app.command("ack")
def ack(
    incident_id: str = typer.Argument(..., help="The incident to acknowledge."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    note: str = typer.Option("", "--note", help="Free-text note for the audit trail."),
) -> None:
    """Acknowledge an OPEN incident and its OPEN alerts (stops SLA escalation)."""
    who = actor(by)
    _transition(lambda s: s.acknowledge(incident_id, who, note), f"acknowledged by {who}")


@app.command("resolve")
def resolve(
    incident_id: str = typer.Argument(..., help="The incident to resolve."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    note: str = typer.Option("", "--note", help="Free-text note for the audit trail."),
) -> None:
    """Resolve an OPEN or ACKNOWLEDGED incident and its alerts."""
    who = actor(by)
    _transition(lambda s: s.resolve(incident_id, who, note), f"resolved by {who}")


@app.command("false-positive")
def false_positive(
    incident_id: str = typer.Argument(..., help="The incident to mark."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    note: str = typer.Option(..., "--note", help="Why it was not a real fault (required)."),
) -> None:
    """Mark an OPEN or ACKNOWLEDGED incident and its alerts as a false positive."""
    if not note.strip():
        fail("--note must say why this is a false positive: it is kept with the label")
    who = actor(by)
    _transition(
        lambda s: s.false_positive(incident_id, who, note), f"marked false positive by {who}"
    )
