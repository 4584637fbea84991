"""The console's JSON API (``/api/...``), described by FastAPI's ``/openapi.json``.

Ticketing and maintenance systems use the same endpoints as the page's buttons. Errors are
``{"detail": "..."}`` with 404 (unknown alert, device, window or rule), 409 (a lifecycle change
the alert's or rule's state does not allow), 422 (bad input: unknown filter value, oversized
note, missing actor, invalid window) or 502 (a work order the webhook refused).
"""

# No `from __future__ import annotations`: FastAPI must see the request models built inside
# build_api() as real classes, not as names it cannot resolve.
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, create_model

from refrig_assets.console.service import ConsoleService
from refrig_assets.core.contracts import load_contract
from refrig_assets.operations.feedback import ACTIVE, REJECTED, REVOKED, RULE_STATUSES
from refrig_assets.operations.settings import OperationsSettings

_PY_TYPES: dict[str, type] = {
    "string": str,
    "timestamp": datetime,
    "float": float,
    "int": int,
    "bool": bool,
}


class ErrorOut(BaseModel):
    """Why a request was refused."""

    detail: Any


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Unknown alert, device, window or rule"},
    409: {"model": ErrorOut, "description": "Not allowed in the current state"},
    422: {"model": ErrorOut, "description": "Invalid input"},
}


def _alert_model() -> type[BaseModel]:
    """The alert as the API returns it: every device_alerts contract column, the lifecycle
    fields and the console's SLA view (built from the contract, never a copied column list)."""
    fields: dict[str, Any] = {}
    for c in load_contract("device_alerts").columns:
        kind = _PY_TYPES[c.type]
        fields[c.name] = (kind | None, None) if c.nullable else (kind, ...)
    fields.update(
        status=(str, ...),
        sla_breached=(bool, ...),
        first_seen_at=(datetime, ...),
        updated_at=(datetime, ...),
        acknowledged_by=(str | None, None),
        acknowledged_at=(datetime | None, None),
        sla_state=(Literal["due", "breached", "acknowledged", "closed"], ...),
        time_left_seconds=(float | None, None),
        contributor=(str, ...),
        suppression_reason=(str | None, None),
    )
    return create_model("Alert", **fields)


Alert = _alert_model()


class Summary(BaseModel):
    by_severity: dict[str, int]
    open: int
    acknowledged: int
    breached: int


class AlertPage(BaseModel):
    alerts: list[Alert]  # type: ignore[valid-type]
    total: int
    offset: int
    limit: int
    summary: Summary


class Transition(BaseModel):
    id: int
    alert_id: str
    event: str
    from_status: str | None
    to_status: str
    actor: str
    at: datetime
    note: str


class AlertDetail(BaseModel):
    alert: Alert  # type: ignore[valid-type]
    chart_until: str = Field(description="End of the device history that shows this alert")
    provenance: dict[str, Any]
    history: list[Transition]
    suppression: dict[str, Any] | None
    work_order: dict[str, Any] | None
    feedback: dict[str, Any]


class ActionResult(BaseModel):
    alert: Alert  # type: ignore[valid-type]
    work_order: dict[str, Any] | None = None
    work_order_error: str | None = None


class FeedbackRule(BaseModel):
    model_config = ConfigDict(extra="allow")
    rule_id: str
    device_id: str
    contributor: str
    kind: str
    min_score: float | None
    status: str
    false_positives: int
    evidence: str
    effective_from: datetime
    expires_at: datetime
    description: str


class FalsePositiveResult(BaseModel):
    alert: Alert  # type: ignore[valid-type]
    false_positives: int = Field(description="Unruled false positives of this device+contributor")
    threshold: int = Field(description="How many make a rule proposal")
    rules: list[FeedbackRule] = Field(description="Rules this mark proposed or applied")


class MaintenanceWindow(BaseModel):
    id: int
    scope: str
    target: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    cancelled_by: str | None = None
    cancelled_at: datetime | None = None


class MaintenanceResult(BaseModel):
    window: MaintenanceWindow
    suppressed_alerts: list[str] = []
    restored_alerts: list[str] = []


class Label(BaseModel):
    model_config = ConfigDict(extra="allow")
    alert_id: str
    label: Literal["confirmed_incident", "false_positive"]
    device_id: str
    window_start: datetime
    window_end: datetime
    contributor: str


def _service(request: Request) -> ConsoleService:
    return request.app.state.service


def build_api(settings: OperationsSettings) -> APIRouter:
    """The ``/api`` router; request limits (note and actor length) come from ``settings``."""
    console = settings.console
    actor_field = Field(
        min_length=1,
        max_length=console.actor_max_chars,
        pattern=r"\S",
        description="Who acts (operator name)",
    )
    note_field = Field("", max_length=console.note_max_chars, description="Free-text note")
    ActionRequest = create_model("ActionRequest", actor=(str, actor_field), note=(str, note_field))
    WorkOrderRequest = create_model("WorkOrderRequest", actor=(str, actor_field))
    MaintenanceRequest = create_model(
        "MaintenanceRequest",
        scope=(Literal["device", "site"], Field(description="A device or a whole site")),
        target=(str, Field(min_length=1, max_length=200, description="device_id or site_id")),
        starts_at=(datetime, Field(description="ISO 8601; naive times are UTC")),
        ends_at=(datetime, Field(description="ISO 8601; naive times are UTC")),
        reason=(str, Field(min_length=1, max_length=console.note_max_chars)),
        actor=(str, actor_field),
    )
    CancelRequest = create_model("CancelRequest", actor=(str, actor_field))

    router = APIRouter(prefix="/api", responses=ERRORS)

    @router.get("/alerts", response_model=AlertPage, tags=["alerts"])
    def list_alerts(
        request: Request,
        site: Annotated[str | None, Query(description="Only this site_id")] = None,
        severity: Annotated[str | None, Query(description="CRITICAL, HIGH, MEDIUM or LOW")] = None,
        status: Annotated[
            list[str] | None, Query(description="Default: OPEN and ACKNOWLEDGED")
        ] = None,
        model: Annotated[str | None, Query(description="Only alerts this model flagged")] = None,
        device: Annotated[str | None, Query(description="Only this device_id")] = None,
        include_suppressed: Annotated[bool, Query(description="Include suppressed alerts")] = False,
        limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
    ):
        """Alerts, most severe first, then by SLA deadline (time left; breached marked)."""
        return _service(request).list_alerts(
            site=site,
            severity=severity,
            status=status,
            model=model,
            device=device,
            include_suppressed=include_suppressed,
            limit=limit,
            offset=offset,
        )

    @router.get("/filters", tags=["alerts"])
    def filters(request: Request) -> dict[str, list[str]]:
        """Values the alert filters accept."""
        return _service(request).filter_options()

    @router.get("/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"])
    def alert_detail(request: Request, alert_id: str):
        """One alert: explanation, provenance, lifecycle history, suppression, work order."""
        return _service(request).alert_detail(alert_id)

    @router.post("/alerts/{alert_id}/acknowledge", response_model=ActionResult, tags=["actions"])
    def acknowledge(request: Request, alert_id: str, body: ActionRequest):  # type: ignore[valid-type]
        """OPEN → ACKNOWLEDGED (stops SLA escalation)."""
        return _service(request).acknowledge(alert_id, body.actor, body.note)

    @router.post("/alerts/{alert_id}/resolve", response_model=ActionResult, tags=["actions"])
    def resolve(request: Request, alert_id: str, body: ActionRequest):  # type: ignore[valid-type]
        """OPEN/ACKNOWLEDGED → RESOLVED: a confirmed incident."""
        return _service(request).resolve(alert_id, body.actor, body.note)

    @router.post(
        "/alerts/{alert_id}/false-positive", response_model=FalsePositiveResult, tags=["actions"]
    )
    def false_positive(request: Request, alert_id: str, body: ActionRequest):  # type: ignore[valid-type]
        """OPEN/ACKNOWLEDGED → FALSE_POSITIVE; repeated ones propose a per-device rule."""
        return _service(request).false_positive(alert_id, body.actor, body.note)

    @router.post("/alerts/{alert_id}/work-order", tags=["actions"])
    def work_order(request: Request, alert_id: str, body: WorkOrderRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        """Hand an ACKNOWLEDGED alert off as a work order (once; a failed one can be retried)."""
        return _service(request).send_work_order(alert_id, body.actor)

    @router.get("/devices/{device_id}", tags=["devices"])
    def device(
        request: Request,
        device_id: str,
        hours: Annotated[float | None, Query(gt=0, le=744, description="History length")] = None,
        until: Annotated[
            datetime | None, Query(description="End of the history (default: newest)")
        ] = None,
        feature: Annotated[
            list[str] | None, Query(description="device_features columns to return")
        ] = None,
    ) -> dict[str, Any]:
        """A device: registry entry, feature and score history, alerts, maintenance, rules."""
        return _service(request).device(device_id, hours=hours, until=until, features=feature)

    @router.get("/maintenance", response_model=list[MaintenanceWindow], tags=["maintenance"])
    def maintenance(
        request: Request,
        device: str | None = None,
        site: str | None = None,
        include_cancelled: bool = False,
    ):
        """Maintenance windows (those of a device or site when given), earliest first."""
        return _service(request).maintenance(device, site, include_cancelled)

    @router.post(
        "/maintenance", response_model=MaintenanceResult, status_code=201, tags=["maintenance"]
    )
    def add_maintenance(request: Request, body: MaintenanceRequest):  # type: ignore[valid-type]
        """Declare a window; alerts inside it are suppressed (kept, marked)."""
        return _service(request).add_maintenance(
            body.scope, body.target, body.starts_at, body.ends_at, body.reason, body.actor
        )

    @router.post(
        "/maintenance/{window_id}/cancel", response_model=MaintenanceResult, tags=["maintenance"]
    )
    def cancel_maintenance(request: Request, window_id: int, body: CancelRequest):  # type: ignore[valid-type]
        """Cancel a window; the alerts it suppressed come back."""
        return _service(request).cancel_maintenance(window_id, body.actor)

    @router.get("/feedback/rules", response_model=list[FeedbackRule], tags=["feedback"])
    def rules(
        request: Request,
        status: Annotated[str | None, Query(description=", ".join(RULE_STATUSES))] = None,
    ):
        """Feedback rules, newest proposal first."""
        if status is not None and status not in RULE_STATUSES:
            from refrig_assets.console.service import FilterError

            raise FilterError(f"status must be one of {', '.join(RULE_STATUSES)}; got {status!r}")
        return _service(request).rules(status)

    decisions = {"apply": ACTIVE, "reject": REJECTED, "revoke": REVOKED}

    @router.post(
        "/feedback/rules/{rule_id}/{decision}", response_model=FeedbackRule, tags=["feedback"]
    )
    def decide(
        request: Request,
        rule_id: str,
        decision: Literal["apply", "reject", "revoke"],
        body: ActionRequest,  # type: ignore[valid-type]
    ):
        """Apply or reject a proposed rule, or revoke an applied one (audited)."""
        return _service(request).decide_rule(rule_id, decisions[decision], body.actor, body.note)

    @router.get("/feedback/audit", tags=["feedback"])
    def audit(request: Request) -> list[dict[str, Any]]:
        """The feedback audit trail, newest first."""
        return _service(request).audit()

    @router.get("/labels", response_model=list[Label], tags=["feedback"])
    def labels(request: Request):
        """Operator labels: confirmed incidents (resolved) and false positives."""
        return _service(request).labels()

    @router.get("/healthz", tags=["meta"])
    def healthz(request: Request) -> dict[str, Any]:
        """The console is up and can read the alert database."""
        _service(request).summary()
        return {"status": "ok"}

    return router
