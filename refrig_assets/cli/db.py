"""``refrig db``: the schema of the operational database, run as its owner."""

from __future__ import annotations

import typer

from refrig_assets.core.settings import get_settings

app = typer.Typer(help="The operational database: tables, triggers and the application role.")


@app.command("migrate")
def migrate(
    app_role: str | None = typer.Option(
        None,
        "--app-role",
        help="PostgreSQL role of the services: granted exactly the row privileges it needs.",
    ),
) -> None:
    """Create every table and append-only trigger of the alert and lifecycle databases
    (REFRIG_ALERTS_DB_URL, REFRIG_LIFECYCLE_DB_URL) as the connecting owner role; safe to
    run again. With --app-role, grant that role SELECT/INSERT/UPDATE (DELETE where a store
    deletes rows; SELECT/INSERT only on append-only tables) and USAGE on the sequences."""
    from refrig_assets.lifecycle.audit import lifecycle_db_url
    from refrig_assets.operations.database import migrate as run_migrate

    alerts_url = get_settings().alerts_db_url
    try:
        report = run_migrate(alerts_url, lifecycle_db_url(alerts_url), app_role)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for database, tables in report.tables.items():
        typer.echo(f"{database}: {len(tables)} tables ({', '.join(sorted(tables))})")
        for table, privileges in sorted(report.grants.get(database, {}).items()):
            typer.echo(f"  {app_role} on {table}: {', '.join(privileges)}")
