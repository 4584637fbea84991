"""The console's HTML pages, rendered on the server with Jinja2 templates.

Pages read through :class:`ConsoleService` like the API does; their buttons call the JSON API
from ``static/console.js``. Everything works offline: no CDN, charts are inline SVG.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

import pandas as pd
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from refrig_assets.access.identity import OPERATOR, Identity, Unauthenticated
from refrig_assets.console.auth import ConsoleAuth
from refrig_assets.console.incident_views import asked_statuses
from refrig_assets.console.paging import MAX_POSITION
from refrig_assets.console.service import SORT_KEYS, ConsoleService, parse_since
from refrig_assets.operations.feedback import PROPOSED
from refrig_assets.operations.settings import OperationsSettings

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def when(value: Any) -> str:
    """A timestamp as ``2026-01-01 03:30 UTC`` (empty for none)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return f"{pd.Timestamp(value).tz_convert('UTC'):%Y-%m-%d %H:%M} UTC"


def duration(seconds: float | None) -> str:
    """A span as ``2 d 3 h``, ``1 h 05 min`` or ``12 min``."""
    if seconds is None:
        return ""
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins:02d} min"
    return f"{mins} min"


def sla_text(alert: dict[str, Any]) -> str:
    """What an operator needs to know about an alert's SLA, in a few words."""
    state, left = alert["sla_state"], alert["time_left_seconds"]
    if state == "breached":
        return f"breached {duration(-left)} ago" if left is not None and left < 0 else "breached"
    if state == "due":
        return f"{duration(left)} left"
    if state == "acknowledged":
        return f"acknowledged by {alert.get('acknowledged_by') or '?'}"
    return alert["status"].replace("_", " ").lower()


TEMPLATES.env.filters.update(when=when, duration=duration, sla_text=sla_text)


def _service(request: Request) -> ConsoleService:
    return request.app.state.service


def render(request: Request, template: str, status_code: int = 200, **context: Any):
    """A page with the signed-in identity (``me``), its CSRF token and the refresh period."""
    auth: ConsoleAuth | None = getattr(request.app.state, "auth", None)
    me = getattr(request.state, "identity", None)
    base = {
        "nav": template.split(".")[0],
        "me": me,
        "can_act": bool(me and me.can(OPERATOR)),
        "csrf": auth.csrf_token(request) if auth else "",
        "csrf_header": auth.policy.session.csrf_header if auth else "",
        "refresh_seconds": auth.policy.refresh_seconds if auth else 0,
        "single_user": bool(auth and auth.single_user),
    }
    return TEMPLATES.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )


def render_error(request: Request, status: int, message: str) -> HTMLResponse:
    """An error page (unknown alert or device, invalid filter)."""
    return render(request, "error.html", status_code=status, status=status, message=message)


def build_pages(settings: OperationsSettings, auth: ConsoleAuth) -> APIRouter:
    """The HTML routes (left out of the OpenAPI description). Pages need a viewer; a browser
    without identity is sent to ``/login``."""

    def signed_in(request: Request) -> Identity:
        identity = auth.identify(request)
        if identity is None:
            raise SignInRequired(request.url.path)
        return identity

    router = APIRouter(
        include_in_schema=False,
        default_response_class=HTMLResponse,
        dependencies=[Depends(signed_in)],
    )
    public = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    limits = {
        "note_max": settings.console.note_max_chars,
        "actor_max": settings.console.actor_max_chars,
    }

    @public.get("/login")
    def login_page(request: Request, next: str = "/"):
        return render(request, "login.html", next=_local(next), error=None)

    @public.post("/login")
    async def login(request: Request):
        """Sign in with a token (form field ``token``): a session cookie, then the page."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0]
        target = _local((form.get("next") or ["/"])[0])
        identity = auth.store.authenticate(token)
        request.state.identity = identity
        if identity is None:
            message = "That token is unknown, revoked or expired, or its user is disabled."
            return render(request, "login.html", status_code=401, next=target, error=message)
        cookie, _ = auth.new_session(identity)
        response = RedirectResponse(target, status_code=303)
        policy = auth.policy.session
        response.set_cookie(
            policy.cookie_name,
            cookie,
            max_age=int(policy.max_age_hours * 3600),
            httponly=True,
            samesite="strict",
            secure=policy.secure_cookie,
        )
        return response

    @public.post("/logout")
    def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.policy.session.cookie_name)
        return response

    @router.get("/alerts")
    def alerts_page(
        request: Request,
        site: str | None = None,
        severity: str | None = None,
        status: str | None = None,
        model: str | None = None,
        device: str | None = None,
        include_suppressed: bool = False,
        q: str | None = None,
        since: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        page: Annotated[int, Query(ge=1)] = 1,
    ):
        service = _service(request)
        statuses = asked_statuses([status] if status else None)
        size = settings.console.page_size
        listing = service.list_alerts(
            site=site,
            severity=severity,
            status=statuses,
            model=model,
            device=device,
            include_suppressed=include_suppressed,
            q=q,
            since=since,
            sort=sort,
            order=order,
            limit=size,
            offset=min((page - 1) * size, MAX_POSITION),  # past the end: an empty page
        )
        filters = {
            "site": site or "",
            "severity": severity or "",
            "status": status or "",
            "model": model or "",
            "device": device or "",
            "include_suppressed": include_suppressed,
            "q": q or "",
            "since": since or "",
        }

        def sort_url(key: str) -> str:
            flip = "desc" if sort == key and order != "desc" else "asc"
            params = {
                k: v for k, v in request.query_params.items() if k not in ("page", "sort", "order")
            }
            return "/alerts?" + urlencode({**params, "sort": key, "order": flip})

        return render(
            request,
            "alerts.html",
            listing=listing,
            options=service.filter_options(),
            filters=filters,
            page=page,
            pages=max(1, -(-listing["total"] // size)),
            page_url=lambda n: "/alerts?" + urlencode({**request.query_params, "page": n}),
            now=service.now(),
            sort=sort or "",
            order=order or "",
            sort_keys=SORT_KEYS,
            sort_url=sort_url,
        )

    @router.get("/")
    def incidents_page(
        request: Request,
        site: str | None = None,
        severity: str | None = None,
        status: str | None = None,
        cause: str | None = None,
        device: str | None = None,
        q: str | None = None,
        since: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        include_silenced: bool = False,
        cursor: str | None = None,
    ):
        """The main list: incidents (one per fault episode), alerts one click away."""
        service = _service(request)
        statuses = asked_statuses([status] if status else None)
        listing = service.incidents.listing(
            status=statuses,
            severity=severity,
            cause=cause,
            site=site,
            device=device,
            q=q,
            since=parse_since(since, service.now()),
            include_silenced=include_silenced,
            sort=sort,
            order=order,
            limit=settings.console.page_size,
            cursor=cursor,
        )
        filters = {
            "site": site or "",
            "severity": severity or "",
            "status": status or "",
            "cause": cause or "",
            "device": device or "",
            "q": q or "",
            "since": since or "",
            "include_silenced": include_silenced,
        }

        def sort_url(key: str) -> str:
            flip = "desc" if sort == key and order != "desc" else "asc"
            params = {
                k: v
                for k, v in request.query_params.items()
                if k not in ("cursor", "sort", "order")
            }
            return "/?" + urlencode({**params, "sort": key, "order": flip})

        params = {k: v for k, v in request.query_params.items() if k != "cursor"}
        return render(
            request,
            "incidents.html",
            listing=listing,
            options=service.filter_options(),
            filters=filters,
            now=service.now(),
            sort=sort or "",
            order=order or "",
            sort_url=sort_url,
            next_url=(
                "/?" + urlencode({**params, "cursor": listing["next_cursor"]})
                if listing["next_cursor"]
                else None
            ),
        )

    @router.get("/incidents/{incident_id}")
    def incident_page(request: Request, incident_id: str):
        service = _service(request)
        detail = service.incidents.get(incident_id)
        return render(
            request,
            "incident.html",
            d=detail,
            i=detail["incident"],
            limits=limits,
            links=service.links_for_incident(detail),
        )

    @router.get("/sites")
    def sites_page(request: Request):
        service = _service(request)
        return render(request, "sites.html", sites=service.incidents.sites(), now=service.now())

    @router.get("/silences")
    def silences_page(request: Request, include_ended: bool = False):
        service = _service(request)
        return render(
            request,
            "silences.html",
            silences=service.silences.listing(include_ended=include_ended),
            include_ended=include_ended,
            options=service.filter_options(),
            limits=limits,
        )

    @router.get("/alerts/{alert_id}")
    def alert_page(request: Request, alert_id: str):
        service = _service(request)
        detail = service.alert_detail(alert_id)
        return render(request, "alert.html", d=detail, a=detail["alert"], limits=limits)

    @router.get("/devices/{device_id}")
    def device_page(
        request: Request,
        device_id: str,
        hours: Annotated[float | None, Query(gt=0, le=744)] = None,
        until: datetime | None = None,
        feature: Annotated[list[str] | None, Query()] = None,
    ):
        service = _service(request)
        device = service.device(device_id, hours=hours, until=until, features=feature)
        charts = service.device_charts(device)
        return render(request, "device.html", dev=device, charts=charts, limits=limits)

    @router.get("/maintenance")
    def maintenance_page(request: Request, include_cancelled: bool = False):
        service = _service(request)
        windows = service.maintenance(include_cancelled=include_cancelled)
        now = pd.Timestamp(service.now())
        for w in windows:
            if w["cancelled_at"] is not None:
                w["state"] = "cancelled"
            elif pd.Timestamp(w["ends_at"]) <= now:
                w["state"] = "past"
            elif pd.Timestamp(w["starts_at"]) <= now:
                w["state"] = "active"
            else:
                w["state"] = "upcoming"
        return render(
            request,
            "maintenance.html",
            windows=windows,
            include_cancelled=include_cancelled,
            options=service.filter_options(),
            limits=limits,
        )

    @router.get("/feedback")
    def feedback_page(request: Request):
        service = _service(request)
        rules = service.rules()
        labels = service.labels()
        return render(
            request,
            "feedback.html",
            proposed=[r for r in rules if r["status"] == PROPOSED],
            decided=[r for r in rules if r["status"] != PROPOSED],
            audit=service.audit()[:100],
            labels=labels,
            label_counts={
                "confirmed_incident": sum(lab["label"] == "confirmed_incident" for lab in labels),
                "false_positive": sum(lab["label"] == "false_positive" for lab in labels),
            },
            fb=settings.feedback,
            limits=limits,
        )

    public.include_router(router)
    return public


class SignInRequired(Unauthenticated):
    """A page asked for without identity: the browser is sent to the sign-in page."""


def _local(target: str) -> str:
    """A same-site path to go to after signing in (anything else: the alert list)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"
