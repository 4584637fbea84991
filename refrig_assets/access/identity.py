"""Who is acting: an authenticated :class:`Identity` and the roles that decide what it may do.

Three roles, each including the one before: ``viewer`` reads; ``operator`` acknowledges,
resolves, marks false positives, declares maintenance for now or the future, silences and sends
work orders; ``admin`` also applies and revokes suppression rules, backdates maintenance and
manages settings. A missing identity is :class:`Unauthenticated` (HTTP 401), a too-small role
:class:`Forbidden` (HTTP 403); both carry a sentence saying what is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)

# How an identity was established (recorded with every audited action).
VIA_TOKEN = "token"
VIA_SESSION = "session"
VIA_PROXY = "proxy"
VIA_LOCAL = "single-user"


class AccessError(PermissionError):
    """A request was refused for lack of identity or role; ``status`` is its HTTP status."""

    status = 403


class Unauthenticated(AccessError):
    """No valid identity: no token, an unknown/revoked/expired token, or a disabled user."""

    status = 401


class Forbidden(AccessError):
    """An identity whose role does not allow the action, or a rule it may not break."""

    status = 403


@dataclass(frozen=True)
class Identity:
    """An authenticated user: ``name`` (the actor of every action), ``role`` and ``via``
    (token, session, proxy or single-user), plus the token id when a token was used."""

    name: str
    role: str
    via: str
    token_id: str | None = None

    def can(self, role: str) -> bool:
        """Whether this identity holds ``role`` or a larger one."""
        return has_role(self.role, role)


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`, else ValueError naming them."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    return role


def has_role(held: str, needed: str) -> bool:
    """Whether a holder of ``held`` may do what needs ``needed`` (roles are ordered)."""
    return ROLES.index(check_role(held)) >= ROLES.index(check_role(needed))


def require_role(identity: Identity | None, needed: str, action: str = "this") -> Identity:
    """The identity when it holds ``needed``; otherwise :class:`Unauthenticated` (none) or
    :class:`Forbidden` (role too small), each with a message naming ``action`` and the role."""
    if identity is None:
        raise Unauthenticated(
            f"sign in first: {action} needs the {needed} role "
            "(send 'Authorization: Bearer <token>' or sign in on /login)"
        )
    if not identity.can(needed):
        raise Forbidden(f"{identity.name} is a {identity.role}; {action} needs the {needed} role")
    return identity
