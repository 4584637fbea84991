"""``refrig console``: serve the operator console (alerts page, device drill-down, JSON API)."""

from __future__ import annotations

import typer


def console(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
) -> None:
    """Serve the operator console over the configured alert database and data directory.

    It has no login: keep it on 127.0.0.1 (the default) or behind an authenticating proxy.
    """
    import uvicorn

    from refrig_assets.console import create_app
    from refrig_assets.core.secrets import masked_url
    from refrig_assets.core.settings import get_settings

    settings = get_settings()
    typer.echo(
        f"Operator console on http://{host}:{port}  (alerts: {masked_url(settings.alerts_db_url)}, "
        f"data: {settings.data_dir}; API description at /docs)"
    )
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
