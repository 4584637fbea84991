"""``refrig tokens``: API tokens of console users (stored hashed, shown once)."""

from __future__ import annotations

import typer

from refrig_assets.cli.users import BY, access_store, actor

app = typer.Typer(
    help="API tokens for the console and its JSON API (shown once, stored hashed).",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("create")
def create(
    user: str = typer.Argument(..., help="Whose token."),
    days: float | None = typer.Option(
        None,
        "--days",
        min=0.01,
        help="Valid this many days (default: token_days in config/access.yaml).",
    ),
    label: str = typer.Option("", "--label", help="What it is for (e.g. laptop, ticketing)."),
    by: str | None = BY,
) -> None:
    """Create a token and print it once: it cannot be shown again."""
    from refrig_assets.access import load_access_policy

    lifetime = days if days is not None else load_access_policy().token_days
    with access_store() as store:
        row, token = store.create_token(user, actor(by), days=lifetime, label=label)
    typer.echo(token)
    typer.echo(
        f"token {row['token_id']} for {row['user_name']}, valid until "
        f"{row['expires_at']:%Y-%m-%d %H:%M} UTC. Shown once: store it now. "
        "Use it as 'Authorization: Bearer <token>' or sign in on /login.",
        err=True,
    )


@app.command("list")
def list_tokens(user: str | None = typer.Option(None, "--user", help="Only this user's.")) -> None:
    """Tokens (ids, never the secrets): user, label, expiry, revoked."""
    with access_store() as store:
        tokens = store.tokens(user)
    if not tokens:
        typer.echo("No tokens.")
    for t in tokens:
        state = (
            f"revoked by {t['revoked_by']}"
            if t["revoked_at"]
            else f"expires {t['expires_at']:%Y-%m-%d}"
        )
        typer.echo(f"{t['token_id']}  {t['user_name']:<24} {state:<26} {t['label']}")


@app.command("revoke")
def revoke(
    token_id: str = typer.Argument(..., help="The token id (the part after rfa_)."),
    by: str | None = BY,
) -> None:
    """Revoke a token: requests and browser sessions using it are refused at once."""
    with access_store() as store:
        row = store.revoke_token(token_id, actor(by))
    typer.echo(f"token {row['token_id']} of {row['user_name']} revoked")
