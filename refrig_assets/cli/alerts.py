"""``refrig alerts``: list, inspect and act on alerts in the alert database.

The database is ``get_settings().alerts_db_url`` (``REFRIG_ALERTS_DB_URL``; a SQLite file under
``REFRIG_HOME`` by default). Errors print one line on stderr and exit with status 1.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
import typer

from refrig_assets.alerts.store import (
    ACKNOWLEDGED,
    FALSE_POSITIVE,
    OPEN,
    RESOLVED,
    STATUSES,
    AlertNotFound,
    AlertStore,
    InvalidTransition,
)
from refrig_assets.cli.records import (
    OutputFormat,
    choice,
    echo_fields,
    echo_history,
    fail,
    opened_store,
)
from refrig_assets.cli.users import BY_HELP, actor
from refrig_assets.core.settings import get_settings

app = typer.Typer(
    help="Inspect alerts and move them through their lifecycle (ack, resolve, false positive).",
    no_args_is_help=True,
    add_completion=False,
)

# The table's columns (header, alert field); --format json/csv carry every column.
TABLE_COLUMNS = [
    ("Alert", "alert_id"),
    ("Severity", "severity"),
    ("Status", "status"),
    ("SLA deadline", "sla_deadline"),
    ("Device", "device_id"),
    ("Site", "site_id"),
    ("Score", "max_score"),
    ("Explanation", "explanation"),
]
ALL_STATUSES = "ALL"
# The explanation column keeps at least this many characters on a narrow terminal.
EXPLANATION_MIN = 24


def _store() -> AbstractContextManager[AlertStore]:
    """The configured store for one command; errors become one line + exit 1."""
    return opened_store(
        lambda: AlertStore(get_settings().alerts_db_url), (AlertNotFound, InvalidTransition)
    )


@app.command("list")
def list_alerts(
    severity: str | None = typer.Option(None, "--severity", help="CRITICAL, HIGH, MEDIUM or LOW."),
    status: str | None = typer.Option(
        None,
        "--status",
        help="OPEN, ACKNOWLEDGED, RESOLVED, FALSE_POSITIVE or ALL (default: OPEN and "
        "ACKNOWLEDGED, as in the console).",
    ),
    site: str | None = typer.Option(None, "--site", help="Only alerts of this site_id."),
    device: str | None = typer.Option(None, "--device", help="Only alerts of this device_id."),
    include_suppressed: bool = typer.Option(
        False,
        "--all",
        help="Include suppressed (duplicates, maintenance, rules) and silenced alerts.",
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many alerts."),
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table, json or csv.")
    ] = OutputFormat.table,
) -> None:
    """List alerts, most severe first, then by SLA deadline.

    Same default as the console: OPEN and ACKNOWLEDGED alerts, neither suppressed nor hidden
    by an active silence. The table fits the terminal; json and csv carry every column.
    """
    from refrig_assets.console.silences import SilenceStore, silence_for

    with _store() as store:
        wanted = (
            list(STATUSES)
            if status is not None and status.upper() == ALL_STATUSES
            else choice(status, STATUSES, "--status") or [OPEN, ACKNOWLEDGED]
        )
        frame = store.list(
            severity=choice(severity, store.severities, "--severity"),
            status=wanted,
            site_id=site,
            device_id=device,
            include_suppressed=include_suppressed,
        )
        if not include_suppressed and len(frame):
            active = SilenceStore(store).active()
            silenced = [silence_for(a, active) is not None for a in frame.to_dict("records")]
            frame = frame[[not s for s in silenced]]
        if limit is not None:
            frame = frame.head(limit)
    if output is OutputFormat.json:
        typer.echo(frame.to_json(orient="records", date_format="iso", indent=2))
    elif output is OutputFormat.csv:
        typer.echo(frame.to_csv(index=False), nl=False)
    elif frame.empty:
        typer.echo("No alerts match.")
    else:
        _print_table(frame)


def _print_table(frame: pd.DataFrame) -> None:
    """Alerts as a table as wide as the terminal: scores to 2 decimals and the explanation
    wrapped in the space left. On a narrow terminal the site, then the deadline, then the
    status columns give way so the explanation keeps at least ``EXPLANATION_MIN`` characters."""
    from rich.console import Console
    from rich.table import Table

    now = pd.Timestamp.now(tz="UTC")
    rows = []
    for row in frame.to_dict("records"):
        deadline = pd.Timestamp(row["sla_deadline"])
        late = row["status"] == OPEN and (bool(row["sla_breached"]) or deadline < now)
        cells = {
            "sla_deadline": f"{deadline:%m-%d %H:%M}" + (" late" if late else ""),
            "max_score": f"{float(row['max_score']):.2f}",
        }
        rows.append(
            {f: cells.get(f, str(row[f] if row[f] is not None else "")) for _, f in TABLE_COLUMNS}
        )
    console = Console(soft_wrap=False)
    columns = list(TABLE_COLUMNS)

    def natural(field: str, header: str) -> int:
        return max([len(header), *(len(r[field]) for r in rows)])

    for optional in ("site_id", "sla_deadline", "status"):
        fixed = sum(natural(f, h) + 1 for h, f in columns if f != "explanation")
        if fixed + EXPLANATION_MIN <= console.width:
            break
        columns = [c for c in columns if c[1] != optional]
    table = Table(box=None, pad_edge=False, header_style="bold", collapse_padding=True)
    for header, field in columns:
        if field == "explanation":
            table.add_column(header, ratio=1, min_width=EXPLANATION_MIN, overflow="fold")
        else:
            table.add_column(
                header, no_wrap=True, justify="right" if field == "max_score" else "left"
            )
    for row in rows:
        table.add_row(*(row[f] for _, f in columns))
    console.print(table)
    console.print(f"\n{len(frame)} alert(s)")


@app.command("show")
def show(alert_id: str = typer.Argument(..., help="The alert to show.")) -> None:
    """Show one alert with every field and its full history."""
    with _store() as store:
        alert = store.get(alert_id)
        if alert is None:
            raise AlertNotFound(f"no alert with id {alert_id!r}")
        history = store.history(alert_id)
    echo_fields(alert)
    echo_history(history)


def _transition(action: Callable[[AlertStore], dict[str, Any]], verb: str) -> None:
    with _store() as store:
        alert = action(store)
    typer.echo(f"Alert {alert['alert_id']} {verb}; status is now {alert['status']}.")


@app.command("ack")
def ack(
    alert_id: str = typer.Argument(..., help="The alert to acknowledge."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    note: str = typer.Option("", "--note", help="Free-text note for the audit trail."),
) -> None:
    """Acknowledge an OPEN alert (stops SLA escalation)."""
    who = actor(by)
    _transition(lambda s: s.transition(alert_id, ACKNOWLEDGED, who, note), f"acknowledged by {who}")


@app.command("resolve")
def resolve(
    alert_id: str = typer.Argument(..., help="The alert to resolve."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    note: str = typer.Option("", "--note", help="Free-text note for the audit trail."),
) -> None:
    """Resolve an OPEN or ACKNOWLEDGED alert."""
    who = actor(by)
    _transition(lambda s: s.transition(alert_id, RESOLVED, who, note), f"resolved by {who}")


@app.command("false-positive")
def false_positive(
    alert_id: str = typer.Argument(..., help="The alert to mark."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    note: str = typer.Option(..., "--note", help="Why it was not a real fault (required)."),
) -> None:
    """Mark an OPEN or ACKNOWLEDGED alert as a false positive (a note is required)."""
    if not note.strip():
        fail("--note must say why this is a false positive: it is kept with the label")
    who = actor(by)
    _transition(
        lambda s: s.transition(alert_id, FALSE_POSITIVE, who, note),
        f"marked false positive by {who}",
    )


@app.command("check-sla")
def check_sla(
    now: str | None = typer.Option(None, "--now", help="Evaluate at this UTC time (ISO 8601)."),
    notify: bool = typer.Option(
        True,
        "--notify/--no-notify",
        help="Queue escalation notifications and deliver what is due (REFRIG_WEBHOOK_URL or log).",
    ),
) -> None:
    """Flag unacknowledged alerts past their SLA deadline and escalate them one level per period."""
    from refrig_assets.alerts.delivery import deliver_due
    from refrig_assets.alerts.notify import notifier_from_env

    at = _utc_option(now, "--now") or datetime.now(UTC)
    with _store() as store:
        escalated = store.check_sla(at, notify=notify)
        report = deliver_due(store, notifier_from_env()) if notify and escalated else None
    if not escalated:
        typer.echo(f"No new SLA breaches at {at.isoformat()}.")
        return
    typer.echo(f"{len(escalated)} alert(s) breached or escalated at {at.isoformat()}:")
    for a in escalated:
        typer.echo(
            f"  {a['alert_id']}  {a['severity']:<8} {a['previous_escalation_level']} -> "
            f"{a['escalation_level']}  deadline {a['sla_deadline']:%Y-%m-%d %H:%M}  "
            f"device {a['device_id']}{'' if a['paged'] else '  (backfill, not paged)'}"
        )
    if report is not None:
        typer.echo(f"Notifications: {report.summary()}.")


@app.command("deliver")
def deliver(
    now: str | None = typer.Option(None, "--now", help="Deliver what is due at this UTC time."),
) -> None:
    """Send the due notifications of the outbox once (what alert_notification_delivery does)."""
    from refrig_assets.alerts.delivery import deliver_due
    from refrig_assets.alerts.notify import notifier_from_env

    at = _utc_option(now, "--now")
    with _store() as store:
        report = deliver_due(store, notifier_from_env(), now=at)
    typer.echo(f"{report.summary()}.")
    for error in report.errors:
        typer.echo(f"  {error}")


@app.command("outbox")
def outbox(
    status: str | None = typer.Option(None, "--status", help="pending, delivered or dead."),
    limit: int | None = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    retry: bool = typer.Option(False, "--retry-dead", help="Give every dead letter new attempts."),
) -> None:
    """List queued notifications (--status dead: the dead letters, with their last error)."""
    from refrig_assets.alerts.store.schema import OUTBOX_STATUSES

    wanted = None if status is None else status.lower()
    if wanted is not None and wanted not in OUTBOX_STATUSES:
        fail(f"--status must be one of {', '.join(OUTBOX_STATUSES)}; got {status!r}")
    with _store() as store:
        if retry:
            typer.echo(f"{store.outbox.requeue_dead(datetime.now(UTC))} dead letter(s) requeued.")
        rows = store.outbox.list(status=wanted, limit=limit)
        counts = store.outbox.counts()
    typer.echo(", ".join(f"{n} {s}" for s, n in counts.items()) + ".")
    for r in rows:
        typer.echo(
            f"  #{r['id']}  {r['status']:<9} {r['event']:<16} attempts {r['attempts']}  "
            f"{r['dedup_key']}  next {r['next_attempt_at']:%Y-%m-%d %H:%M:%S}"
            + (f"\n      last error: {r['last_error']}" if r["last_error"] else "")
        )


def _utc_option(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 option as an aware UTC time (naive is UTC); None when not given."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} is not an ISO 8601 time: {value!r}")
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
