"""The console's web-surface defences, as one ASGI middleware in front of every route.

- **Host**: only the names in ``allowed_hosts`` (port ignored) are answered (400 otherwise),
  so a DNS-rebinding page cannot talk to a console bound to 127.0.0.1.
- **Origin**: a state-changing request (POST, PUT, PATCH, DELETE) whose ``Origin`` is neither
  the console's own nor in ``allowed_origins`` is refused (403), as is one a browser marks
  ``Sec-Fetch-Site: cross-site`` or sends from a frame (``Sec-Fetch-Dest: iframe``...).
- **Body limit**: a declared or streamed body over ``max_body_bytes`` is refused (413) before
  the application reads it.
- **Headers**: a Content-Security-Policy with ``frame-ancestors 'none'`` (and the older
  ``X-Frame-Options: DENY``), ``nosniff`` and a same-origin referrer policy on every answer.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from refrig_assets.access.policy import AccessPolicy

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FRAMED_DESTINATIONS = frozenset({"iframe", "frame", "embed", "object", "fencedframe"})
# Pages: scripts and styles from the console only. Swagger UI's page bootstraps with one inline
# script, so /docs and /redoc allow inline scripts (still only from this origin otherwise).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; base-uri 'none'; "
    "object-src 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")


class BodyTooLarge(Exception):
    """A streamed request body passed the limit."""


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _host_name(host: str) -> str:
    """``host`` of a Host header without its port (IPv6 brackets removed)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SecurityMiddleware:
    """Host, Origin, frame and body-size checks plus security headers (see the module)."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            await self._reply(send, *refusal, scope=scope)
            return
        path = scope.get("path", "")
        csp = DOCS_CSP if path.startswith(DOCS_PATHS) else PAGE_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + _security_headers(csp)
            await send(message)

        limit = self.policy.max_body_bytes
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            await self._reply(send, 413, self._too_large(), scope=scope)

    def _too_large(self) -> str:
        return f"request body over {self.policy.max_body_bytes} bytes (max_body_bytes in config/access.yaml)"

    def refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, reason) when the request must be refused before routing, else None."""
        host = _host_name(headers.get("host", ""))
        if host not in self.policy.allowed_hosts:
            return (
                400,
                f"host {host!r} is not served here (allowed_hosts in config/access.yaml)",
            )
        declared = headers.get("content-length")
        if declared is not None:
            try:
                if int(declared) > self.policy.max_body_bytes:
                    return 413, self._too_large()
            except ValueError:
                return 400, "invalid Content-Length"
        if scope["method"] not in UNSAFE_METHODS:
            return None
        if headers.get("sec-fetch-dest", "") in FRAMED_DESTINATIONS:
            return 403, "state-changing requests from a framed page are refused"
        origin = headers.get("origin")
        if origin is not None:
            own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
            if origin.rstrip("/").lower() not in (own, *self.policy.allowed_origins):
                return 403, f"cross-site request from origin {origin!r} refused"
        elif headers.get("sec-fetch-site") == "cross-site":
            return 403, "cross-site request refused"
        return None

    async def _reply(self, send: Send, status: int, detail: str, *, scope: Scope) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *_security_headers(PAGE_CSP),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _security_headers(csp: str) -> list[tuple[bytes, bytes]]:
    pairs: list[tuple[str, Any]] = [
        ("content-security-policy", csp),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ]
    return [(k.encode(), v.encode()) for k, v in pairs]
