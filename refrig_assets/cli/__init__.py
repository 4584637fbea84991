"""The ``refrig`` command line. Each command group lives in its own module of this package."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from datetime import UTC, datetime

import typer

from refrig_assets.cli import (
    alerts,
    console,
    db,
    evaluate,
    feedback,
    importer,
    incidents,
    maintenance,
    metrics,
    models,
    monitor,
    pipeline,
    quality,
    serve,
    simulate,
    streaming,
    tokens,
    users,
)

app = typer.Typer(
    help="refrig-assets: anomaly detection and alerts for refrigeration fleets.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("simulate")(simulate.simulate)
app.command("import")(importer.import_command)
app.command("evaluate")(evaluate.evaluate_command)
app.add_typer(alerts.app, name="alerts")
app.add_typer(incidents.app, name="incidents")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(models.app, name="models")
app.command("console")(console.console)
app.add_typer(maintenance.app, name="maintenance")
app.add_typer(feedback.app, name="feedback")
app.add_typer(monitor.app, name="monitor")
app.add_typer(quality.app, name="quality")
app.add_typer(streaming.app, name="streaming")
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(tokens.app, name="tokens")
app.command("serve")(serve.serve)
app.add_typer(metrics.app, name="metrics")

# Command groups that read what runs stored under the home. On a home that does not exist
# (a mistyped REFRIG_HOME) they would create it empty and answer "No alerts match."; the
# alert and incident groups read the operational database, which may live elsewhere.
READ_THE_HOME = ("alerts", "incidents", "quality", "models", "monitor", "evaluate")
READ_THE_DATABASE = ("alerts", "incidents")


def missing_home(args: list[str]) -> str | None:
    """Why ``refrig <args>`` should not run: a reading command on a home that does not exist
    (None when it may run). Help is always shown."""
    if not args or args[0] not in READ_THE_HOME or "--help" in args:
        return None
    from refrig_assets.core.settings import get_settings

    home = get_settings().home
    if home.exists():
        return None
    if args[0] in READ_THE_DATABASE and os.environ.get("REFRIG_ALERTS_DB_URL"):
        return None
    return (
        f"the home {home} does not exist (REFRIG_HOME, default .refrig in the project): "
        "nothing has run there. Check the path, or run `refrig pipeline run` first."
    )


# Help as plain text reflowed to the terminal: Rich's panels keep every line break of a
# docstring, cutting sentences into one-word lines.
for _typer in (app, *(group.typer_instance for group in app.registered_groups)):
    if _typer is not None:
        _typer.rich_markup_mode = None


def report_crash(exc: BaseException) -> None:
    """Say what failed in one line on stderr (secrets masked) and keep the traceback in
    ``$REFRIG_HOME/logs/refrig-errors.log`` for whoever diagnoses it."""
    from refrig_assets.core.secrets import mask_secrets

    first = (str(exc).strip().splitlines() or [""])[0]
    typer.echo(mask_secrets(f"error: {type(exc).__name__}: {first}"), err=True)
    try:
        from refrig_assets.core.settings import get_settings

        path = get_settings().home / "logs" / "refrig-errors.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        trace = "".join(traceback.format_exception(exc))
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        command = " ".join(["refrig", *sys.argv[1:]])
        with path.open("a") as log:
            log.write(mask_secrets(f"--- {stamp} {command}\n{trace}"))
        typer.echo(f"(traceback in {path})", err=True)
    except Exception:  # noqa: BLE001 - the one line above is what matters
        pass


def main() -> None:  # pragma: no cover (process exit)
    """Console entry point: run the command, then exit without interpreter teardown.

    DuckDB's bindings print pages of reference-leak diagnostics when the interpreter shuts
    down; everything the command wrote is committed and flushed before this point.
    """
    try:
        refusal = missing_home(sys.argv[1:])  # reads the settings: may fail like any command
        if refusal is not None:
            typer.echo(refusal, err=True)
            os._exit(2)
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:  # noqa: BLE001 - an operator reads one line, not a traceback
        report_crash(exc)
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
