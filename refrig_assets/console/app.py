"""The operator console: one FastAPI app serving the HTML pages and the JSON API.

``create_app()`` reads the same alert database as the CLI (``get_settings().alerts_db_url``) and
the Parquet datasets under ``get_settings().data_dir``; tests pass their own database, data
directory, settings, access policy and clock. ``refrig console`` serves it with uvicorn on
127.0.0.1. Every request needs an identity (see :mod:`refrig_assets.console.auth`) unless the
app is built for single-user mode; :mod:`refrig_assets.console.security` guards the web surface.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from refrig_assets.access.identity import AccessError, Forbidden, Unauthenticated
from refrig_assets.access.policy import AccessPolicy, load_access_policy
from refrig_assets.access.store import AccessStore
from refrig_assets.alerts.store import AlertNotFound, InvalidTransition
from refrig_assets.console.api import build_api
from refrig_assets.console.auth import ConsoleAuth
from refrig_assets.console.health_endpoint import build_health
from refrig_assets.console.pages import SignInRequired, build_pages, render_error
from refrig_assets.console.paging import CursorError
from refrig_assets.console.security import UNSAFE_METHODS, SecurityMiddleware
from refrig_assets.console.service import ConsoleService, DeviceNotFound, FilterError
from refrig_assets.console.silences import SilenceError, SilenceNotFound
from refrig_assets.core.settings import get_settings
from refrig_assets.incidents.repository import IncidentNotFound
from refrig_assets.operations.feedback import RuleDecisionError, RuleNotFound
from refrig_assets.operations.maintenance import (
    MaintenanceError,
    WindowCancelled,
    WindowNotFound,
)
from refrig_assets.operations.settings import (
    OperationsSettings,
    load_operations_settings,
)
from refrig_assets.operations.workorders import WorkOrderDeliveryError, WorkOrderError

STATIC_DIR = Path(__file__).parent / "static"
# Swagger UI and ReDoc shipped inside a Python package: /docs works without a network.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"

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
    SilenceNotFound: 404,
    IncidentNotFound: 404,
    SilenceError: 422,
    CursorError: 422,
    Unauthenticated: 401,
    Forbidden: 403,
    AccessError: 403,
}


def create_app(
    alerts_db_url: str | None = None,
    data_dir: str | Path | None = None,
    *,
    settings: OperationsSettings | None = None,
    clock: Callable[[], datetime] | None = None,
    work_order_client: Any = None,
    access: AccessPolicy | None = None,
    single_user: str | None = None,
) -> FastAPI:
    """The console app over one alert database and data directory (defaults: the configured).

    ``access`` is the access policy (default ``config/access.yaml``). ``single_user`` names
    the local user of single-user mode: every loopback request acts as that user (an admin)
    and other clients are refused; serve such an app on a loopback address only.
    """
    configured = get_settings()
    settings = settings or load_operations_settings()
    access = access or load_access_policy()
    clock = clock or (lambda: datetime.now(UTC))
    service = ConsoleService(
        alerts_db_url=alerts_db_url or configured.alerts_db_url,
        data_dir=Path(data_dir or configured.data_dir),
        settings=settings,
        clock=clock,
        work_order_client=work_order_client,
        access=access,
    )
    auth = ConsoleAuth(AccessStore(service.store, clock=clock), access, single_user)
    app = FastAPI(
        title="refrig-assets operator console",
        summary="Alerts, devices, maintenance windows and operator feedback for a refrigeration fleet.",
        version="1",
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.state.auth = auth
    app.include_router(build_api(settings, auth))
    app.include_router(build_pages(settings, auth))
    app.include_router(build_health(alerts_db_url or configured.alerts_db_url))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/static-docs", StaticFiles(directory=DOCS_ASSETS), name="static-docs")
    _add_docs(app)

    for error_type, status in ERROR_STATUS.items():
        app.add_exception_handler(error_type, _handler(status))
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(SignInRequired, _sign_in)

    @app.middleware("http")
    async def audit_actions(request: Request, call_next):
        """Every state-changing request goes to the access audit with its identity."""
        response = await call_next(request)
        if request.method in UNSAFE_METHODS:
            auth.audit(request, response.status_code)
        return response

    app.add_middleware(SecurityMiddleware, policy=access)
    app.router.on_shutdown.append(service.close)
    return app


def _add_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from the packaged assets, not a CDN."""

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url="/static-docs/swagger-ui-bundle.js",
            swagger_css_url="/static-docs/swagger-ui.css",
            swagger_favicon_url="/static-docs/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API",
            redoc_js_url="/static-docs/redoc.standalone.js",
            redoc_favicon_url="/static-docs/favicon.png",
            with_google_fonts=False,
        )


async def _sign_in(request: Request, exc: Exception) -> Response:
    """A page without identity: to the sign-in page, coming back afterwards."""
    return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api") or request.url.path == "/openapi.json"


def _handler(status: int):
    async def handle(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status", status) if isinstance(exc, AccessError) else status
        if _wants_json(request):
            headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
            return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)
        if code == 401:
            return render_error(request, 401, str(exc))
        return render_error(request, code, str(exc))

    return handle


async def _validation_handler(request: Request, exc: RequestValidationError):
    """422 with one readable sentence per problem (field, rule) plus FastAPI's details."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        if error.get("type") == "extra_forbidden" and where == "actor":
            problems.append("actor: not accepted; actions are recorded under your identity")
            continue
        problems.append(f"{where}: {error.get('msg')}")
    message = "; ".join(problems) or "invalid request"
    if _wants_json(request):
        details = [
            {k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()
        ]
        return JSONResponse({"detail": message, "errors": details}, status_code=422)
    return render_error(request, 422, message)
