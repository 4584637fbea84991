"""``refrig maintenance``: declare, list, import and cancel maintenance windows.

Windows are kept in the alert database (``get_settings().alerts_db_url``). Alerts inside a window
are suppressed (kept, marked) and its feature windows are left out of training. Errors print one
line on stderr and exit with status 1.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated

import typer

from refrig_assets.alerts.store import AlertStore
from refrig_assets.cli.records import fail, opened_store
from refrig_assets.cli.users import actor
from refrig_assets.core.settings import get_settings
from refrig_assets.operations.maintenance import DEVICE, SITE, MaintenanceError, WindowNotFound
from refrig_assets.operations.settings import OperationsConfigError

app = typer.Typer(
    help="Maintenance windows: alerts inside them are suppressed and training skips them.",
    no_args_is_help=True,
    add_completion=False,
)


def _store() -> AbstractContextManager[AlertStore]:
    """The alert database; refusals and any other failure are one line on stderr, exit 1."""
    return opened_store(
        lambda: AlertStore(get_settings().alerts_db_url),
        (MaintenanceError, WindowNotFound, OperationsConfigError),
    )


def _print(window: dict) -> None:
    state = f"  cancelled by {window['cancelled_by']}" if window.get("cancelled_by") else ""
    typer.echo(
        f"  #{window['id']:<4} {window['scope']:<6} {window['target']:<14} "
        f"{window['starts_at']:%Y-%m-%d %H:%M} → {window['ends_at']:%Y-%m-%d %H:%M} UTC  "
        f"{window['reason']}  ({window['created_by']}){state}"
    )


@app.command("add")
def add(
    device: str | None = typer.Option(None, "--device", help="The device under maintenance."),
    site: str | None = typer.Option(None, "--site", help="A whole site under maintenance."),
    start: str = typer.Option(..., "--start", help="Start, ISO 8601 (UTC when no offset)."),
    end: str = typer.Option(..., "--end", help="End, ISO 8601 (UTC when no offset)."),
    reason: str = typer.Option(..., "--reason", help="What is being done."),
    by: str | None = typer.Option(
        None, "--by", help="Who acts (default: REFRIG_ACTOR or the login name)."
    ),
) -> None:
    """Declare a window for one device or a whole site; suppresses stored alerts inside it."""
    from refrig_assets.operations.maintenance import MaintenanceCalendar
    from refrig_assets.operations.suppression import suppress_stored_alerts

    if (device is None) == (site is None):
        fail("give exactly one of --device or --site")
    scope, target = (DEVICE, device) if device else (SITE, site)
    with _store() as store:
        window = MaintenanceCalendar(store).add(scope, target, start, end, reason, actor(by))
        suppressed = suppress_stored_alerts(store, window)
    typer.echo(
        f"Declared maintenance window #{window['id']}; {len(suppressed)} alert(s) suppressed."
    )
    _print(window)
    unknown = not_in_registry(scope, str(target))
    if unknown:
        typer.echo(unknown, err=True)


def not_in_registry(scope: str, target: str) -> str | None:
    """A warning when the last registry the pipeline read has no such device or site (a typo
    suppresses nothing of the machine meant); None when it has, or when none was read yet."""
    from refrig_assets.core.storage import ParquetStore

    store = ParquetStore(get_settings().data_dir)
    if not store.exists("device_registry"):
        return None
    column = "device_id" if scope == DEVICE else "site_id"
    known = set(store.read("device_registry")[column].astype(str))
    if target in known:
        return None
    return (
        f"warning: {column} {target!r} is not in the device registry: the window suppresses "
        "nothing until such a device reports (check the name)"
    )


@app.command("import")
def import_file(
    path: Annotated[Path, typer.Argument(help="CSV or YAML file of windows.")],
    by: str | None = typer.Option(
        None, "--by", help="Who acts (default: REFRIG_ACTOR or the login name)."
    ),
) -> None:
    """Declare every window in a file (all or nothing; identical windows are skipped).

    Columns/keys: scope, target (or device_id / site_id), starts_at, ends_at, reason.
    """
    from refrig_assets.operations.maintenance import MaintenanceCalendar
    from refrig_assets.operations.suppression import suppress_stored_alerts

    with _store() as store:
        result = MaintenanceCalendar(store).import_file(path, actor(by))
        suppressed = sum(len(suppress_stored_alerts(store, w)) for w in result["added"])
    typer.echo(
        f"Declared {len(result['added'])} window(s) from {path} ({result['skipped']} already "
        f"declared); {suppressed} alert(s) suppressed."
    )
    for window in result["added"]:
        _print(window)


@app.command("list")
def list_windows(
    device: str | None = typer.Option(None, "--device", help="Windows applying to this device."),
    site: str | None = typer.Option(None, "--site", help="Windows applying to this site."),
    include_cancelled: bool = typer.Option(False, "--all", help="Include cancelled windows."),
) -> None:
    """List maintenance windows, earliest first."""
    from refrig_assets.operations.maintenance import MaintenanceCalendar

    with _store() as store:
        frame = MaintenanceCalendar(store).windows(
            device_id=device, site_id=site, include_cancelled=include_cancelled
        )
    if frame.empty:
        typer.echo("No maintenance windows.")
        return
    for window in frame.to_dict("records"):
        _print(window)


@app.command("cancel")
def cancel(
    window_id: int = typer.Argument(..., help="The window to cancel."),
    by: str | None = typer.Option(
        None, "--by", help="Who acts (default: REFRIG_ACTOR or the login name)."
    ),
) -> None:
    """Cancel a window (kept on record); the alerts it suppressed come back."""
    from refrig_assets.operations.maintenance import MaintenanceCalendar
    from refrig_assets.operations.suppression import restore_stored_alerts

    with _store() as store:
        window = MaintenanceCalendar(store).cancel(window_id, actor(by))
        restored = restore_stored_alerts(store, window)
    typer.echo(f"Cancelled maintenance window #{window_id}; {len(restored)} alert(s) restored.")
