"""Who is calling the console, and whether they may: identities, sessions, CSRF and the audit.

An API client sends ``Authorization: Bearer <token>`` (exempt from CSRF: a browser never adds
it on its own); a company proxy names the user in the trusted header; a browser signs in once
on ``/login`` with a token and gets a signed session cookie that names the token (so revoking
the token or disabling the user ends the session) and carries a CSRF token, which every
state-changing request must echo in the CSRF header. In single-user mode (loopback only) every
request acts as the local user, an admin.

The identity is the actor of every action: no request field can name another. Every
state-changing request is written to the access audit with its identity and outcome.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from refrig_assets.access.identity import (
    ADMIN,
    VIA_LOCAL,
    VIA_SESSION,
    Forbidden,
    Identity,
    Unauthenticated,
    require_role,
)
from refrig_assets.access.policy import AccessPolicy
from refrig_assets.access.resolve import request_identity
from refrig_assets.access.store import AccessStore
from refrig_assets.console.security import UNSAFE_METHODS

SECRET_ENV = "REFRIG_CONSOLE_SECRET"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is a loopback address or name."""
    return bool(host) and (host in LOOPBACK or str(host).startswith("127."))


@dataclass
class Session:
    """A signed-in browser: the token id behind it and its CSRF token."""

    token_id: str
    csrf: str


class ConsoleAuth:
    """Identities of console requests over one access store and policy.

    ``single_user`` names the local user of single-user mode (None: identities required).
    Sessions are signed with ``REFRIG_CONSOLE_SECRET`` or, when unset, a random key of this
    process (sessions then end when the console restarts).
    """

    def __init__(self, store: AccessStore, policy: AccessPolicy, single_user: str | None = None):
        self.store = store
        self.policy = policy
        self.single_user = single_user
        secret = os.environ.get(SECRET_ENV) or secrets.token_urlsafe(32)
        self.signer = URLSafeTimedSerializer(secret, salt="refrig-console-session")

    # -- sessions ---------------------------------------------------------------------------

    def new_session(self, identity: Identity) -> tuple[str, Session]:
        """A signed cookie value for a token identity, and the session it carries."""
        assert identity.token_id is not None
        session = Session(identity.token_id, secrets.token_urlsafe(24))
        return self.signer.dumps({"t": session.token_id, "c": session.csrf}), session

    def session(self, request: Request) -> Session | None:
        """The valid session of a request's cookie, or None."""
        raw = request.cookies.get(self.policy.session.cookie_name)
        if not raw:
            return None
        try:
            data = self.signer.loads(raw, max_age=int(self.policy.session.max_age_hours * 3600))
        except BadSignature:
            return None
        if not isinstance(data, dict) or not {"t", "c"} <= set(data):
            return None
        return Session(str(data["t"]), str(data["c"]))

    # -- identity ---------------------------------------------------------------------------

    def identify(self, request: Request) -> Identity | None:
        """The identity of a request (cached on ``request.state``), None when anonymous.

        Raises :class:`Unauthenticated` for a bad bearer token or a disabled proxy user, and
        :class:`Forbidden` for a cookie session whose state-changing request lacks the CSRF
        token.
        """
        if hasattr(request.state, "identity"):
            return request.state.identity
        identity = self._identify(request)
        request.state.identity = identity
        return identity

    def _identify(self, request: Request) -> Identity | None:
        peer = request.client.host if request.client else None
        if self.single_user is not None:
            if not is_loopback(peer):
                raise Forbidden("single-user mode answers loopback clients only")
            return Identity(self.single_user, ADMIN, VIA_LOCAL)
        headers = {k.lower(): v for k, v in request.headers.items()}
        identity = request_identity(self.store, self.policy, peer, headers)
        if identity is not None:
            return identity
        session = self.session(request)
        if session is None:
            return None
        identity = self.store.identity_for_token_id(session.token_id, VIA_SESSION)
        if identity is None:
            return None  # token revoked or expired, or user disabled: signed out
        request.state.session = session
        if request.method in UNSAFE_METHODS:
            sent = request.headers.get(self.policy.session.csrf_header, "")
            if not secrets.compare_digest(sent, session.csrf):
                raise Forbidden(
                    f"missing or wrong CSRF token: a signed-in browser sends it in the "
                    f"{self.policy.session.csrf_header} header (reload the page)"
                )
        return identity

    def csrf_token(self, request: Request) -> str:
        """The CSRF token a page embeds for its scripts ('' without a session)."""
        session = getattr(request.state, "session", None)
        return session.csrf if session else ""

    def needs(self, role: str, action: str) -> Callable[[Request], Identity]:
        """A FastAPI dependency: the request's identity when it holds ``role``."""

        def dependency(request: Request) -> Identity:
            return require_role(self.identify(request), role, action)

        dependency.__name__ = f"needs_{role}"
        return dependency

    def audit(self, request: Request, status: int, detail: dict[str, Any] | None = None) -> None:
        """Record one state-changing request with its identity (anonymous when none)."""
        identity = getattr(request.state, "identity", None)
        target = request.url.path
        self.store.record(identity, request.method, target, status, detail)


__all__ = ["ConsoleAuth", "Forbidden", "Session", "Unauthenticated", "is_loopback"]
