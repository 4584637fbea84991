"""``refrig feedback``: operator labels and the per-device rules repeated false positives propose.

Errors print one line on stderr and exit with status 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.settings import get_settings
from refrig_assets.operations.feedback import (
    ACTIVE,
    REJECTED,
    REVOKED,
    RULE_STATUSES,
    FeedbackLoop,
    RuleDecisionError,
    RuleNotFound,
    describe_rule,
)
from refrig_assets.operations.settings import OperationsConfigError

app = typer.Typer(
    help="False-positive labels and the suppression/threshold rules they propose.",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def _loop() -> Iterator[FeedbackLoop]:
    store = AlertStore(get_settings().alerts_db_url)
    try:
        yield FeedbackLoop(store)
    except (RuleNotFound, RuleDecisionError, OperationsConfigError) as exc:
        _fail(str(exc))
    finally:
        store.close()


@app.command("rules")
def rules(
    status: str | None = typer.Option(None, "--status", help=", ".join(RULE_STATUSES)),
    evaluate: bool = typer.Option(
        True, "--evaluate/--no-evaluate", help="First turn new false positives into proposals."
    ),
) -> None:
    """List rules, newest proposal first (after looking for new proposals)."""
    if status is not None and status.upper() not in RULE_STATUSES:
        _fail(f"--status must be one of {', '.join(RULE_STATUSES)}; got {status!r}")
    with _loop() as loop:
        created = loop.evaluate() if evaluate else []
        frame = loop.rules(status=status.upper() if status else None)
    if created:
        typer.echo(f"{len(created)} new rule(s) from repeated false positives.")
    if frame.empty:
        typer.echo("No feedback rules.")
        return
    for rule in frame.to_dict("records"):
        typer.echo(f"  {rule['rule_id']}  {rule['status']:<10} {describe_rule(rule)}")


def _decide(rule_id: str, to_status: str, by: str | None, note: str) -> None:
    """Decide on a rule as ``--by`` (default REFRIG_ACTOR or the login name); applying obeys
    the four-eyes rule, as in the console."""
    from refrig_assets.access import AccessError
    from refrig_assets.access.four_eyes import check_four_eyes
    from refrig_assets.cli.users import actor

    who = actor(by)
    with _loop() as loop:
        if to_status == ACTIVE:
            try:
                check_four_eyes(loop, rule_id, who)
            except AccessError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from None
        rule = loop.decide(rule_id, to_status, who, note)
    typer.echo(f"Rule {rule_id} is now {rule['status']}: {describe_rule(rule)}")


@app.command("apply")
def apply(
    rule_id: str = typer.Argument(...),
    by: str | None = typer.Option(
        None, "--by", help="Who decides (default: REFRIG_ACTOR or the login name)."
    ),
    note: str = typer.Option("", "--note"),
) -> None:
    """Apply a proposed rule (the next alert runs respect it)."""
    _decide(rule_id, ACTIVE, by, note)


@app.command("reject")
def reject(
    rule_id: str = typer.Argument(...),
    by: str | None = typer.Option(
        None, "--by", help="Who decides (default: REFRIG_ACTOR or the login name)."
    ),
    note: str = typer.Option("", "--note"),
) -> None:
    """Reject a proposed rule."""
    _decide(rule_id, REJECTED, by, note)


@app.command("revoke")
def revoke(
    rule_id: str = typer.Argument(...),
    by: str | None = typer.Option(
        None, "--by", help="Who decides (default: REFRIG_ACTOR or the login name)."
    ),
    note: str = typer.Option("", "--note"),
) -> None:
    """Revoke an applied rule."""
    _decide(rule_id, REVOKED, by, note)


@app.command("labels")
def labels(
    output: str = typer.Option("table", "--format", help="table, csv or json"),
) -> None:
    """Operator labels: confirmed incidents (resolved alerts) and false positives."""
    with _loop() as loop:
        frame = loop.labels()
    if output == "csv":
        typer.echo(frame.to_csv(index=False), nl=False)
    elif output == "json":
        typer.echo(frame.to_json(orient="records", date_format="iso", indent=2))
    elif frame.empty:
        typer.echo("No operator labels yet.")
    else:
        columns = ["label", "alert_id", "device_id", "contributor", "window_start", "labelled_by"]
        typer.echo(frame[columns].to_string(index=False))
