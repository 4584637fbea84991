"""Who sent a request: a bearer token, or the trusted proxy's user header.

Framework-neutral: callers pass the request's headers and the TCP peer address. A header set by
anyone but a configured proxy is ignored (a client cannot name itself), and a bearer token that
does not authenticate is refused rather than ignored, so a typo never silently falls back.
"""

from __future__ import annotations

from collections.abc import Mapping

from refrig_assets.access.identity import VIA_PROXY, Identity, Unauthenticated
from refrig_assets.access.policy import AccessPolicy
from refrig_assets.access.store import AccessStore, AccessStoreError, check_name

UNKNOWN_TOKEN = "the bearer token is unknown, revoked or expired, or its user is disabled"


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def proxy_identity(
    store: AccessStore, policy: AccessPolicy, peer: str | None, headers: Mapping[str, str]
) -> Identity | None:
    """The identity named by the proxy header when ``peer`` is a trusted proxy, else None.

    A registered user keeps their role; an unregistered one gets ``proxy.default_role``; a
    disabled one is refused (:class:`Unauthenticated`).
    """
    value = headers.get(policy.proxy_header.lower())
    if not value or not policy.trusts_proxy(peer):
        return None
    name = value.strip()
    try:
        check_name(name)
    except AccessStoreError as exc:
        raise Unauthenticated(f"the proxy header {policy.proxy_header}: {exc}") from None
    user = store.find_user(name)
    if user is not None and user["disabled"]:
        raise Unauthenticated(f"user {name!r} is disabled")
    role = user["role"] if user is not None else policy.proxy_default_role
    return Identity(name, role, VIA_PROXY)


def request_identity(
    store: AccessStore, policy: AccessPolicy, peer: str | None, headers: Mapping[str, str]
) -> Identity | None:
    """The identity of a request from its bearer token or the trusted proxy header; None
    when it carries neither. ``headers`` keys are lower-case."""
    token = bearer_token(headers)
    if token is not None:
        return token_identity(store, token)
    return proxy_identity(store, policy, peer, headers)


def token_identity(store: AccessStore, token: str) -> Identity:
    """The identity of a bearer token; one that does not authenticate is refused
    (:class:`Unauthenticated` saying so), never taken for an absent one."""
    identity = store.authenticate(token)
    if identity is None:
        raise Unauthenticated(UNKNOWN_TOKEN)
    return identity
