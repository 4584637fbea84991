"""The operator console: one FastAPI app serving the HTML pages and the JSON API.

``create_app()`` reads the same alert database as the CLI (``get_settings().alerts_db_url``) and
the Parquet datasets under ``get_settings().data_dir``; tests pass their own database, data
directory, settings and clock. ``refrig console`` serves it with uvicorn on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from refrig_assets.alerts.store import AlertNotFound, InvalidTransition
from refrig_assets.console.api import build_api
from refrig_assets.console.health_endpoint import build_health
from refrig_assets.console.pages import build_pages, render_error
from refrig_assets.console.service import ConsoleService, DeviceNotFound, FilterError
from refrig_assets.core.settings import get_settings
from refrig_assets.operations.feedback import RuleDecisionError, RuleNotFound
from refrig_assets.operations.maintenance import MaintenanceError, WindowCancelled, WindowNotFound
from refrig_assets.operations.settings import OperationsSettings, load_operations_settings
from refrig_assets.operations.workorders import WorkOrderDeliveryError, WorkOrderError

STATIC_DIR = Path(__file__).parent / "static"

# Domain errors → HTTP status. Anything else is a 500 (and a bug).
ERROR_STATUS: dict[type[Exception], int] = {
    AlertNotFound: 404,
    DeviceNotFound: 404,
    WindowNotFound: 404,
    RuleNotFound: 404,
    InvalidTransition: 409,
    RuleDecisionError: 409,
    WorkOrderError: 409,
    WindowCancelled: 409,
    FilterError: 422,
    MaintenanceError: 422,
    WorkOrderDeliveryError: 502,
}


def create_app(
    alerts_db_url: str | None = None,
    data_dir: str | Path | None = None,
    *,
    settings: OperationsSettings | None = None,
    clock: Callable[[], datetime] | None = None,
    work_order_client: Any = None,
) -> FastAPI:
    """The console app over one alert database and data directory (defaults: the configured)."""
    configured = get_settings()
    settings = settings or load_operations_settings()
    service = ConsoleService(
        alerts_db_url=alerts_db_url or configured.alerts_db_url,
        data_dir=Path(data_dir or configured.data_dir),
        settings=settings,
        clock=clock or (lambda: datetime.now(UTC)),
        work_order_client=work_order_client,
    )
    app = FastAPI(
        title="refrig-assets operator console",
        summary="Alerts, devices, maintenance windows and operator feedback for a refrigeration fleet.",
        version="1",
    )
    app.state.service = service
    app.include_router(build_api(settings))
    app.include_router(build_pages(settings))
    app.include_router(build_health(alerts_db_url or configured.alerts_db_url))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    for error_type, status in ERROR_STATUS.items():
        app.add_exception_handler(error_type, _handler(status))
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.router.on_shutdown.append(service.close)
    return app


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api") or request.url.path == "/openapi.json"


def _handler(status: int):
    async def handle(request: Request, exc: Exception):
        if _wants_json(request):
            return JSONResponse({"detail": str(exc)}, status_code=status)
        return render_error(request, status, str(exc))

    return handle


async def _validation_handler(request: Request, exc: RequestValidationError):
    """422 with one readable sentence per problem (field, rule) plus FastAPI's details."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        problems.append(f"{where}: {error.get('msg')}")
    message = "; ".join(problems) or "invalid request"
    if _wants_json(request):
        details = [
            {k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()
        ]
        return JSONResponse({"detail": message, "errors": details}, status_code=422)
    return render_error(request, 422, message)
