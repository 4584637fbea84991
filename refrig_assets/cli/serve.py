"""``refrig serve``: the online scoring endpoint (POST /v1/score, /health, /metrics)."""

from __future__ import annotations

import typer


def serve(
    host: str | None = typer.Option(
        None,
        "--host",
        help="Interface to listen on (default: service.host in config/serving.yaml).",
    ),
    port: int | None = typer.Option(
        None,
        "--port",
        min=1,
        max=65535,
        help="Port (default: service.port in config/serving.yaml).",
    ),
    single_user: bool = typer.Option(
        False,
        "--single-user",
        help="No token: one operator on this machine. Refused unless the host is loopback.",
    ),
) -> None:
    """Score devices on demand with the batch path's features and detectors.

    Requests need an API token (refrig tokens create; header Authorization: Bearer <token>)
    unless the service runs in single-user mode on loopback.
    """
    import uvicorn

    from refrig_assets.serving.app import create_app
    from refrig_assets.serving.service import ScoringService
    from refrig_assets.serving.settings import load_serving_settings, uvicorn_options

    config = load_serving_settings()
    host = host or config.host
    try:
        service = ScoringService(serving=config, single_user=single_user or None, host=host)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    port = port or config.port
    auth = "single-user (no token)" if service.single_user else "API token"
    typer.echo(f"Scoring on http://{host}:{port}/v1/score  (auth: {auth}; /health, /metrics)")
    uvicorn.run(
        create_app(service, freeze_gc=True),
        host=host,
        port=port,
        **uvicorn_options(config),
    )
