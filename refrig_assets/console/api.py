"""The console's JSON API (``/api/...``), described by FastAPI's ``/openapi.json``.

Ticketing and maintenance systems use the same endpoints as the page's buttons. Every call
needs an identity (``Authorization: Bearer <token>``, the trusted proxy header, or a signed-in
browser) and a role: viewer reads, operator acts, admin decides on suppression rules. The
identity is the actor of every action; the request body cannot name one. Every list takes
``limit`` and ``cursor`` and returns ``next_cursor``. Errors are ``{"detail": "..."}`` with 401
(no identity), 403 (role, four-eyes, cross-site or framed request), 404 (unknown alert, device,
window, rule or silence), 409 (a change the current state does not allow), 413 (body too
large), 422 (invalid input) or 502 (a work order the webhook refused).
"""

# No `from __future__ import annotations`: FastAPI must see the request models built inside
# build_api() as real classes, not as names it cannot resolve.
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, create_model

from refrig_assets.access.identity import ADMIN, OPERATOR, VIEWER, Identity
from refrig_assets.console.auth import ConsoleAuth
from refrig_assets.console.incident_views import INCIDENT_SORT_KEYS
from refrig_assets.console.paging import (
    MAX_POSITION,
    decode_cursor,
    encode_cursor,
    page,
    page_limit,
)
from refrig_assets.console.service import (
    BULK_ACTIONS,
    SORT_KEYS,
    ConsoleService,
    FilterError,
    parse_since,
)
from refrig_assets.console.silences import MATCHERS, RECURRENCES
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
    401: {"model": ErrorOut, "description": "No identity: send a token or sign in"},
    403: {
        "model": ErrorOut,
        "description": "Role, four-eyes rule, cross-site or framed request",
    },
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
        silenced_by=(int | None, None),
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
    next_cursor: str | None = Field(description="Pass as cursor= for the next page; null: last")
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
    links: dict[str, Any] = Field(description="The Dagster run and MLflow model versions")
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


class Page(BaseModel):
    """One page of a list: pass ``next_cursor`` as ``cursor`` for the next (null: last page)."""

    items: list[Any]
    limit: int
    total: int | None = Field(description="Items in the whole list (null where not counted)")
    next_cursor: str | None


class BulkResult(BaseModel):
    action: str
    done: list[str] = Field(description="Alerts changed")
    failed: list[dict[str, str]] = Field(description="Alerts left as they were, with why")


class Silence(BaseModel):
    id: int
    matcher: str
    value: str
    starts_at: datetime
    ends_at: datetime
    recurrence: str
    expires_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    cancelled_by: str | None = None
    cancelled_at: datetime | None = None
    active: bool
    state: str
    description: str


def _service(request: Request) -> ConsoleService:
    return request.app.state.service


def _paged(
    request: Request, items: list[Any], limit: int | None, cursor: str | None
) -> dict[str, Any]:
    service = _service(request)
    return page(items, decode_cursor(cursor), page_limit(service.access, limit))


Limit = Annotated[
    int | None,
    Query(ge=1, description="Page size (default and maximum in config/access.yaml)"),
]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


def build_api(settings: OperationsSettings, auth: ConsoleAuth) -> APIRouter:
    """The ``/api`` router; request limits (note length) come from ``settings``, identities
    and roles from ``auth``. Request bodies refuse unknown fields, ``actor`` included: the
    actor is always the authenticated identity."""
    console = settings.console
    strict = ConfigDict(extra="forbid")
    note_field = Field("", max_length=console.note_max_chars, description="Free-text note")
    required_note = Field(
        min_length=1,
        max_length=console.note_max_chars,
        pattern=r"\S",
        description="Why (required: kept with the label)",
    )
    ActionRequest = create_model("ActionRequest", __config__=strict, note=(str, note_field))
    FalsePositiveRequest = create_model(
        "FalsePositiveRequest", __config__=strict, note=(str, required_note)
    )
    EmptyRequest = create_model("EmptyRequest", __config__=strict)
    BulkRequest = create_model(
        "BulkRequest",
        __config__=strict,
        action=(Literal[BULK_ACTIONS], Field(description="acknowledge or resolve")),  # type: ignore[valid-type]
        alert_ids=(list[str], Field(min_length=1, description="The alerts to act on")),
        note=(str, note_field),
    )
    IncidentBulkRequest = create_model(
        "IncidentBulkRequest",
        __config__=strict,
        action=(Literal[BULK_ACTIONS], Field(description="acknowledge or resolve")),  # type: ignore[valid-type]
        incident_ids=(
            list[str],
            Field(min_length=1, description="The incidents to act on"),
        ),
        note=(str, note_field),
    )
    MaintenanceRequest = create_model(
        "MaintenanceRequest",
        __config__=strict,
        scope=(
            Literal["device", "site"],
            Field(description="A device or a whole site"),
        ),
        target=(
            str,
            Field(min_length=1, max_length=200, description="device_id or site_id"),
        ),
        starts_at=(datetime, Field(description="ISO 8601; naive times are UTC")),
        ends_at=(datetime, Field(description="ISO 8601; naive times are UTC")),
        reason=(
            str,
            Field(min_length=1, max_length=console.note_max_chars, pattern=r"\S"),
        ),
    )
    SilenceRequest = create_model(
        "SilenceRequest",
        __config__=strict,
        matcher=(
            Literal[MATCHERS],
            Field(description="What to match: " + ", ".join(MATCHERS)),
        ),  # type: ignore[valid-type]
        value=(str, Field(min_length=1, max_length=200, pattern=r"\S")),
        minutes=(
            float,
            Field(gt=0, description="How long (each occurrence when recurring)"),
        ),
        reason=(
            str,
            Field(min_length=1, max_length=console.note_max_chars, pattern=r"\S"),
        ),
        starts_at=(datetime | None, Field(None, description="Default: now")),
        recurrence=(Literal[tuple(RECURRENCES)], "none"),  # type: ignore[valid-type]
        until=(
            datetime | None,
            Field(None, description="Expiry of a recurring silence"),
        ),
    )

    viewer = Depends(auth.needs(VIEWER, "reading the console"))
    # Declares the bearer scheme in the API description, so /docs offers "Authorize" and sends
    # the token; the identity itself comes from ``auth`` (token, proxy header or session).
    bearer = Depends(
        HTTPBearer(
            auto_error=False,
            scheme_name="token",
            description="An API token from `refrig tokens create`",
        )
    )
    router = APIRouter(prefix="/api", responses=ERRORS, dependencies=[viewer, bearer])

    def acting(role: str, action: str) -> Any:
        return Depends(auth.needs(role, action))

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
        include_suppressed: Annotated[
            bool, Query(description="Include suppressed and silenced alerts")
        ] = False,
        q: Annotated[str | None, Query(max_length=200, description="Free-text search")] = None,
        since: Annotated[
            str | None,
            Query(description="Window ends after: 30m, 24h, 7d, 2w or ISO time"),
        ] = None,
        sort: Annotated[str | None, Query(description=", ".join(SORT_KEYS))] = None,
        order: Annotated[Literal["asc", "desc"] | None, Query()] = None,
        limit: Limit = None,
        offset: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
        cursor: Cursor = None,
    ):
        """Alerts, most severe first, then by SLA deadline (time left; breached marked)."""
        service = _service(request)
        return service.list_alerts(
            site=site,
            severity=severity,
            status=status,
            model=model,
            device=device,
            include_suppressed=include_suppressed,
            q=q,
            since=since,
            sort=sort,
            order=order,
            limit=page_limit(service.access, limit),
            offset=offset,
            cursor=cursor,
        )

    @router.get("/incidents", tags=["incidents"])
    def list_incidents(
        request: Request,
        status: Annotated[
            list[str] | None, Query(description="Default: OPEN and ACKNOWLEDGED")
        ] = None,
        severity: Annotated[str | None, Query(description="CRITICAL, HIGH, MEDIUM or LOW")] = None,
        cause: Annotated[
            str | None, Query(description="Probable cause, e.g. refrigerant_leak")
        ] = None,
        site: Annotated[str | None, Query(description="Only this site_id")] = None,
        device: Annotated[str | None, Query(description="Only this device_id")] = None,
        q: Annotated[str | None, Query(max_length=200, description="Free-text search")] = None,
        since: Annotated[
            str | None,
            Query(description="Last window ends after: 30m, 24h, 7d, 2w or ISO time"),
        ] = None,
        include_silenced: Annotated[bool, Query(description="Include silenced incidents")] = False,
        sort: Annotated[str | None, Query(description=", ".join(INCIDENT_SORT_KEYS))] = None,
        order: Annotated[Literal["asc", "desc"] | None, Query()] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        """Incidents (one per fault episode: cause, severity, site, evidence), most severe
        first, then newest. Alerts stay reachable at /api/alerts and from each incident."""
        service = _service(request)
        return service.incidents.listing(
            status=status,
            severity=severity,
            cause=cause,
            site=site,
            device=device,
            q=q,
            since=parse_since(since, service.now()),
            include_silenced=include_silenced,
            sort=sort,
            order=order,
            limit=page_limit(service.access, limit),
            cursor=cursor,
        )

    @router.get("/incidents/{incident_id}", tags=["incidents"])
    def incident_detail(request: Request, incident_id: str) -> dict[str, Any]:
        """One incident with its evidence timeline (alerts, diagnoses, quality and site
        events, oldest first) and its history."""
        return _service(request).incidents.get(incident_id)

    @router.post("/incidents/{incident_id}/false-positive", tags=["incidents"])
    def incident_false_positive(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "marking a false positive")],
        incident_id: str,
        body: FalsePositiveRequest,  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        """OPEN/ACKNOWLEDGED → FALSE_POSITIVE (a note is required); its alerts follow."""
        return _service(request).incidents.act(incident_id, "false_positive", who.name, body.note)

    incident_actions = {
        "acknowledge": ("acknowledge", "acknowledging an incident"),
        "resolve": ("resolve", "resolving an incident"),
    }

    @router.post("/incidents/{incident_id}/{action}", tags=["incidents"])
    def act_on_incident(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "acting on an incident")],
        incident_id: str,
        action: Literal["acknowledge", "resolve"],
        body: ActionRequest,  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        """OPEN → ACKNOWLEDGED, or OPEN/ACKNOWLEDGED → RESOLVED; its alerts follow."""
        method, _ = incident_actions[action]
        return _service(request).incidents.act(incident_id, method, who.name, body.note)

    @router.post("/incidents/bulk", tags=["incidents"])
    def bulk_incidents(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "acting on incidents")],
        body: IncidentBulkRequest,  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        """Acknowledge or resolve many incidents at once; each that cannot change is reported."""
        return _service(request).incidents.bulk(body.action, body.incident_ids, who.name, body.note)

    @router.get("/filters", tags=["alerts"])
    def filters(request: Request) -> dict[str, list[str]]:
        """Values the alert filters accept."""
        return _service(request).filter_options()

    @router.get("/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"])
    def alert_detail(request: Request, alert_id: str):
        """One alert: explanation, provenance, lifecycle history, suppression, work order."""
        return _service(request).alert_detail(alert_id)

    @router.post("/alerts/{alert_id}/acknowledge", response_model=ActionResult, tags=["actions"])
    def acknowledge(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "acknowledging")],
        alert_id: str,
        body: ActionRequest,  # type: ignore[valid-type]
    ):
        """OPEN → ACKNOWLEDGED (stops SLA escalation)."""
        return _service(request).acknowledge(alert_id, who.name, body.note)

    @router.post("/alerts/{alert_id}/resolve", response_model=ActionResult, tags=["actions"])
    def resolve(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "resolving")],
        alert_id: str,
        body: ActionRequest,  # type: ignore[valid-type]
    ):
        """OPEN/ACKNOWLEDGED → RESOLVED: a confirmed incident."""
        return _service(request).resolve(alert_id, who.name, body.note)

    @router.post(
        "/alerts/{alert_id}/false-positive",
        response_model=FalsePositiveResult,
        tags=["actions"],
    )
    def false_positive(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "marking a false positive")],
        alert_id: str,
        body: FalsePositiveRequest,  # type: ignore[valid-type]
    ):
        """OPEN/ACKNOWLEDGED → FALSE_POSITIVE (a note is required); repeated ones propose a
        per-device rule."""
        return _service(request).false_positive(alert_id, who.name, body.note)

    @router.post("/alerts/{alert_id}/work-order", tags=["actions"])
    def work_order(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "sending a work order")],
        alert_id: str,
        body: EmptyRequest | None = None,  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        """Hand an ACKNOWLEDGED alert off as a work order (once; a failed one can be retried)."""
        return _service(request).send_work_order(alert_id, who.name)

    @router.post("/alerts/bulk", response_model=BulkResult, tags=["actions"])
    def bulk(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "acting on alerts")],
        body: BulkRequest,  # type: ignore[valid-type]
    ):
        """Acknowledge or resolve many alerts at once; each that cannot change is reported."""
        return _service(request).bulk(body.action, body.alert_ids, who.name, body.note)

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

    @router.get("/maintenance", response_model=Page, tags=["maintenance"])
    def maintenance(
        request: Request,
        device: str | None = None,
        site: str | None = None,
        include_cancelled: bool = False,
        limit: Limit = None,
        cursor: Cursor = None,
    ):
        """Maintenance windows (those of a device or site when given), earliest first."""
        windows = _service(request).maintenance(device, site, include_cancelled)
        return _paged(request, windows, limit, cursor)

    @router.post(
        "/maintenance",
        response_model=MaintenanceResult,
        status_code=201,
        tags=["maintenance"],
    )
    def add_maintenance(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "declaring maintenance")],
        body: MaintenanceRequest,  # type: ignore[valid-type]
    ):
        """Declare a window; alerts inside it are suppressed (kept, marked). A window that
        starts in the past needs an admin."""
        return _service(request).add_maintenance(
            body.scope, body.target, body.starts_at, body.ends_at, body.reason, who
        )

    @router.post(
        "/maintenance/{window_id}/cancel",
        response_model=MaintenanceResult,
        tags=["maintenance"],
    )
    def cancel_maintenance(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "cancelling maintenance")],
        window_id: int,
        body: EmptyRequest | None = None,  # type: ignore[valid-type]
    ):
        """Cancel a window; the alerts it suppressed come back."""
        return _service(request).cancel_maintenance(window_id, who.name)

    @router.get("/silences", response_model=Page, tags=["silences"])
    def list_silences(
        request: Request,
        include_ended: Annotated[bool, Query(description="Also expired and cancelled")] = False,
        limit: Limit = None,
        cursor: Cursor = None,
    ):
        """Silences, newest first."""
        items = _service(request).silences.listing(include_ended=include_ended)
        return _paged(request, items, limit, cursor)

    @router.post("/silences", response_model=Silence, status_code=201, tags=["silences"])
    def add_silence(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "silencing alerts")],
        body: SilenceRequest,  # type: ignore[valid-type]
    ):
        """Hide the alerts of a device, site, cause or lead contributor for a while
        (optionally every day or week until ``until``)."""
        return _service(request).add_silence(
            body.matcher,
            body.value,
            body.starts_at,
            body.minutes,
            body.reason,
            who.name,
            body.recurrence,
            body.until,
        )

    @router.post("/silences/{silence_id}/cancel", response_model=Silence, tags=["silences"])
    def cancel_silence(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "cancelling a silence")],
        silence_id: int,
        body: EmptyRequest | None = None,  # type: ignore[valid-type]
    ):
        """End a silence now; its alerts show again."""
        return _service(request).silences.cancel(silence_id, who.name)

    @router.get("/feedback/rules", response_model=Page, tags=["feedback"])
    def rules(
        request: Request,
        status: Annotated[str | None, Query(description=", ".join(RULE_STATUSES))] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ):
        """Feedback rules, newest proposal first."""
        if status is not None and status not in RULE_STATUSES:
            raise FilterError(f"status must be one of {', '.join(RULE_STATUSES)}; got {status!r}")
        return _paged(request, _service(request).rules(status), limit, cursor)

    decisions = {"apply": ACTIVE, "reject": REJECTED, "revoke": REVOKED}

    @router.post(
        "/feedback/rules/{rule_id}/{decision}",
        response_model=FeedbackRule,
        tags=["feedback"],
    )
    def decide(
        request: Request,
        who: Annotated[Identity, acting(OPERATOR, "deciding on a rule")],
        rule_id: str,
        decision: Literal["apply", "reject", "revoke"],
        body: ActionRequest,  # type: ignore[valid-type]
    ):
        """Apply or reject a proposed rule, or revoke an applied one (audited). Applying and
        revoking need an admin; whoever marked one of a rule's false positives cannot apply
        it (four eyes)."""
        if decision in ("apply", "revoke"):
            auth.needs(
                ADMIN,
                f"{'applying' if decision == 'apply' else 'revoking'} a suppression rule",
            )(request)
        return _service(request).decide_rule(rule_id, decisions[decision], who.name, body.note)

    @router.get("/feedback/audit", response_model=Page, tags=["feedback"])
    def audit(request: Request, limit: Limit = None, cursor: Cursor = None):
        """The feedback audit trail, newest first."""
        return _paged(request, _service(request).audit(), limit, cursor)

    @router.get("/labels", response_model=Page, tags=["feedback"])
    def labels(request: Request, limit: Limit = None, cursor: Cursor = None):
        """Operator labels: confirmed incidents (resolved) and false positives."""
        return _paged(request, _service(request).labels(), limit, cursor)

    @router.get("/sites", response_model=Page, tags=["alerts"])
    def sites(request: Request, limit: Limit = None, cursor: Cursor = None):
        """Open incidents per site, most urgent site first (breached, then by severity)."""
        return _paged(request, _service(request).incidents.sites(), limit, cursor)

    @router.get("/access/audit", response_model=Page, tags=["access"])
    def access_audit(
        request: Request,
        who: Annotated[Identity, acting(ADMIN, "reading the access audit")],
        limit: Limit = None,
        cursor: Cursor = None,
    ):
        """Every state-changing request with its identity and outcome, newest first."""
        size = page_limit(_service(request).access, limit)
        position = decode_cursor(cursor)
        rows = auth.store.audit(limit=size + 1, offset=position)
        return {
            "items": rows[:size],
            "limit": size,
            "total": None,
            "next_cursor": encode_cursor(position + size) if len(rows) > size else None,
        }

    @router.get("/me", tags=["access"])
    def me(request: Request) -> dict[str, Any]:
        """Who you are to the console: name, role and how you signed in."""
        identity = auth.identify(request)
        assert identity is not None
        return {"name": identity.name, "role": identity.role, "via": identity.via}

    @router.get("/healthz", tags=["meta"])
    def healthz(request: Request) -> dict[str, Any]:
        """The console is up and can read the alert database."""
        _service(request).summary()
        return {"status": "ok"}

    return router
