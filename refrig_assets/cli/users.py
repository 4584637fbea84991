"""``refrig users``: who may use the operator console and its API, with which role.

Users live in the alert database (``REFRIG_ALERTS_DB_URL``); they sign in with tokens from
``refrig tokens create``, or through the trusted proxy header (``config/access.yaml``). Changes
are recorded in the access audit with who made them (``--by``, default ``REFRIG_ACTOR`` or the
login name).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from refrig_assets.access import ROLES, AccessStore, AccessStoreError
from refrig_assets.core.settings import get_settings

app = typer.Typer(
    help="Console users and their roles (viewer, operator, admin).",
    no_args_is_help=True,
    add_completion=False,
)
BY_HELP = "Who acts (default: REFRIG_ACTOR or the login name)."
BY = typer.Option(None, "--by", help=BY_HELP)


def actor(by: str | None) -> str:
    """Who acts on the command line, the same for every actor-taking command: ``--by``, else
    ``REFRIG_ACTOR``, else the login name."""
    from refrig_assets.lifecycle.promotion import default_actor

    return by or default_actor()


@contextmanager
def access_store() -> Iterator[AccessStore]:
    """The configured access store; a refused request prints one line and exits 1."""
    store = AccessStore(get_settings().alerts_db_url)
    try:
        yield store
    except (AccessStoreError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.alerts.close()


@app.command("add")
def add(
    name: str = typer.Argument(..., help="User name (as the proxy header sends it, if used)."),
    role: str = typer.Option(..., "--role", help=f"One of {', '.join(ROLES)}."),
    by: str | None = BY,
) -> None:
    """Register a user with a role; then give them a token with `refrig tokens create`."""
    with access_store() as store:
        user = store.add_user(name, role, actor(by))
    typer.echo(f"user {user['name']} added as {user['role']}")


@app.command("list")
def list_users() -> None:
    """Every user: role, state and number of live tokens."""
    with access_store() as store:
        users = store.users()
    if not users:
        typer.echo("No users. Add one with: refrig users add NAME --role admin")
        return
    for u in users:
        state = f"disabled by {u['disabled_by']}" if u["disabled"] else "active"
        typer.echo(f"{u['name']:<30} {u['role']:<9} {state:<22} {u['live_tokens']} live token(s)")


@app.command("disable")
def disable(
    name: str = typer.Argument(..., help="The user to disable."), by: str | None = BY
) -> None:
    """Disable a user: their tokens and browser sessions stop working at once."""
    with access_store() as store:
        store.disable_user(name, actor(by))
    typer.echo(f"user {name} disabled")
