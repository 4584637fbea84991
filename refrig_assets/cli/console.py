"""``refrig console``: serve the operator console (alerts page, device drill-down, JSON API)."""

from __future__ import annotations

import typer


def console(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    single_user: bool = typer.Option(
        False,
        "--single-user",
        help="No sign-in: every request acts as you (REFRIG_ACTOR or the login name), an admin. "
        "Loopback addresses only.",
    ),
) -> None:
    """Serve the operator console over the configured alert database and data directory.

    Every request needs an identity: an API token (`refrig tokens create`) or the trusted
    proxy header of config/access.yaml. For one person on this machine, --single-user skips
    the sign-in and only listens on a loopback address.
    """
    import uvicorn

    from refrig_assets.console import create_app
    from refrig_assets.console.auth import is_loopback
    from refrig_assets.core.secrets import masked_url
    from refrig_assets.core.settings import get_settings
    from refrig_assets.lifecycle.promotion import default_actor

    local_user = None
    if single_user:
        if not is_loopback(host):
            typer.echo(
                f"error: --single-user listens on a loopback address only (got --host {host}); "
                "for a team, create users and tokens (refrig users add, refrig tokens create)",
                err=True,
            )
            raise typer.Exit(2)
        local_user = default_actor()
    settings = get_settings()
    if local_user is None:
        import sqlalchemy as sa

        from refrig_assets.access import AccessStore

        try:
            store = AccessStore(settings.alerts_db_url)
            try:
                nobody = not store.users()
            finally:
                store.alerts.close()
        except sa.exc.SQLAlchemyError as exc:
            # The console still starts: its pages report the database as it comes back.
            nobody = False
            typer.echo(
                f"warning: alert database {masked_url(settings.alerts_db_url)} not reachable "
                f"now ({type(getattr(exc, 'orig', None) or exc).__name__}); console users "
                "cannot sign in until it is",
                err=True,
            )
        if nobody:
            typer.echo(
                "No console users yet: `refrig users add NAME --role admin` and "
                "`refrig tokens create NAME` give someone a way in; "
                "`refrig console --single-user` serves you alone on this machine."
            )
    mode = (
        f"single-user mode as {local_user}"
        if local_user
        else "sign in with a token (refrig tokens create)"
    )
    typer.echo(
        f"Operator console on http://{host}:{port}  ({mode}; alerts: "
        f"{masked_url(settings.alerts_db_url)}, data: {settings.data_dir}; API description at /docs)"
    )
    uvicorn.run(
        create_app(single_user=local_user),
        host=host,
        port=port,
        log_level="warning",
        # The trusted proxy header is checked against the TCP peer, never X-Forwarded-For.
        proxy_headers=False,
    )
