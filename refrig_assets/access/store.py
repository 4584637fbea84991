"""Users, API tokens and the access audit trail, kept in the alert database.

A token is ``rfa_<id>_<secret>``: the id finds the row, only the SHA-256 of the whole token is
stored, and the token itself is returned once, when created. A token authenticates while it is
neither revoked nor expired and its user is not disabled. Every action through the console (and
every refusal) is written to ``access_audit``, which the database keeps append-only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from refrig_assets.access.identity import VIA_TOKEN, Identity, check_role
from refrig_assets.alerts.operator_tables import OperatorTables, id_column
from refrig_assets.alerts.store import AlertStore, UTCDateTime
from refrig_assets.core.append_only import make_append_only

TOKEN_PREFIX = "rfa"
AUDIT_TABLE = "access_audit"
APPEND_ONLY_MESSAGE = "access audit records are append-only"
# Names appear in audit trails and alert histories: printable, no surrounding spaces.
NAME_PATTERN = re.compile(r"^[\w.@+-][\w .@+-]{0,98}[\w.@+-]$|^[\w.@+-]$")
_TOKEN_PATTERN = re.compile(rf"^{TOKEN_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{20,}})$")

metadata = sa.MetaData()
access_users = sa.Table(
    "access_users",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("disabled", sa.Boolean(), nullable=False, default=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("disabled_by", sa.String(100), nullable=True),
    sa.Column("disabled_at", UTCDateTime(), nullable=True),
)
access_tokens = sa.Table(
    "access_tokens",
    metadata,
    sa.Column("token_id", sa.String(12), primary_key=True),
    sa.Column("user_name", sa.String(100), nullable=False, index=True),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("label", sa.String(200), nullable=False, default=""),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_by", sa.String(100), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)
access_audit = sa.Table(
    AUDIT_TABLE,
    metadata,
    id_column(),
    sa.Column("at", UTCDateTime(), nullable=False, index=True),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("via", sa.String(20), nullable=False),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("outcome", sa.Integer(), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False),
)


class AccessStoreError(ValueError):
    """A user or token request the store refuses (unknown, duplicate, invalid)."""


def token_digest(token: str) -> str:
    """SHA-256 hex digest of a token (tokens carry 256 random bits: no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    """``name`` when it is a valid user name (1-100 printable characters, no outer spaces)."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise AccessStoreError(
            f"user name {name!r} must be 1-100 letters, digits, spaces or . @ + - _, "
            "without leading or trailing spaces"
        )
    return name


class AccessStore(OperatorTables):
    """Users, tokens and the access audit trail over one alert database."""

    metadata = metadata

    def __init__(self, alerts: AlertStore | str, *, clock: Callable[[], datetime] | None = None):
        super().__init__(alerts, clock=clock)

    def _ensure_tables(self) -> None:
        if self._ready:
            return
        super()._ensure_tables()
        with self._writer.begin() as conn:
            make_append_only(conn, AUDIT_TABLE, APPEND_ONLY_MESSAGE)

    # -- users ------------------------------------------------------------------------------

    def add_user(self, name: str, role: str, actor: str) -> dict[str, Any]:
        """Register ``name`` with ``role``; refused when the name exists (even disabled)."""
        check_name(name)
        check_role(role)
        with self.begin() as conn:
            if conn.execute(
                sa.select(access_users.c.name).where(access_users.c.name == name)
            ).first():
                raise AccessStoreError(f"user {name!r} already exists")
            row = {
                "name": name,
                "role": role,
                "disabled": False,
                "created_by": actor,
                "created_at": self.now(),
            }
            conn.execute(access_users.insert().values(row))
            self._audit(conn, actor, "admin", "cli", "users.add", name, 0, {"role": role})
        return self.user(name)

    def user(self, name: str) -> dict[str, Any]:
        """One user; :class:`AccessStoreError` when unknown."""
        with self.begin(write=False) as conn:
            row = conn.execute(sa.select(access_users).where(access_users.c.name == name)).first()
        if row is None:
            raise AccessStoreError(f"no user {name!r} (add one with `refrig users add`)")
        return dict(row._mapping)

    def find_user(self, name: str) -> dict[str, Any] | None:
        """One user, or None when unknown."""
        try:
            return self.user(name)
        except AccessStoreError:
            return None

    def users(self) -> list[dict[str, Any]]:
        """Every user with the number of live tokens, by name."""
        now = self.now()
        live = (
            sa.select(access_tokens.c.user_name, sa.func.count().label("tokens"))
            .where(access_tokens.c.revoked_at.is_(None), access_tokens.c.expires_at > now)
            .group_by(access_tokens.c.user_name)
            .subquery()
        )
        query = (
            sa.select(access_users, sa.func.coalesce(live.c.tokens, 0).label("live_tokens"))
            .outerjoin(live, live.c.user_name == access_users.c.name)
            .order_by(access_users.c.name)
        )
        with self.begin(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def disable_user(self, name: str, actor: str) -> dict[str, Any]:
        """Disable a user: their tokens and sessions stop working at once."""
        self.user(name)
        with self.begin() as conn:
            conn.execute(
                access_users.update()
                .where(access_users.c.name == name)
                .values(disabled=True, disabled_by=actor, disabled_at=self.now())
            )
            self._audit(conn, actor, "admin", "cli", "users.disable", name, 0, {})
        return self.user(name)

    # -- tokens -----------------------------------------------------------------------------

    def create_token(
        self, user: str, actor: str, *, days: float, label: str = ""
    ) -> tuple[dict[str, Any], str]:
        """A new token for ``user`` valid ``days``: (its row, the token itself). The token is
        not stored and cannot be shown again."""
        if days <= 0:
            raise AccessStoreError(f"a token must be valid for more than 0 days; got {days}")
        account = self.user(user)
        if account["disabled"]:
            raise AccessStoreError(f"user {user!r} is disabled")
        token_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        now = self.now()
        row = {
            "token_id": token_id,
            "user_name": user,
            "token_sha256": token_digest(token),
            "label": label[:200],
            "created_by": actor,
            "created_at": now,
            "expires_at": now + timedelta(days=days),
        }
        with self.begin() as conn:
            conn.execute(access_tokens.insert().values(row))
            self._audit(
                conn, actor, "admin", "cli", "tokens.create", user, 0, {"token_id": token_id}
            )
        return self.token(token_id), token

    def token(self, token_id: str) -> dict[str, Any]:
        """One token's row (never the token itself); :class:`AccessStoreError` when unknown."""
        query = sa.select(*[c for c in access_tokens.c if c.name != "token_sha256"]).where(
            access_tokens.c.token_id == token_id
        )
        with self.begin(write=False) as conn:
            row = conn.execute(query).first()
        if row is None:
            raise AccessStoreError(f"no token {token_id!r}")
        return dict(row._mapping)

    def tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        """Token rows (without digests), newest first; those of ``user`` when given."""
        query = sa.select(*[c for c in access_tokens.c if c.name != "token_sha256"])
        if user is not None:
            query = query.where(access_tokens.c.user_name == user)
        with self.begin(write=False) as conn:
            rows = conn.execute(query.order_by(access_tokens.c.created_at.desc()))
            return [dict(r._mapping) for r in rows]

    def revoke_token(self, token_id: str, actor: str) -> dict[str, Any]:
        """Revoke a token (and the browser sessions signed in with it)."""
        token = self.token(token_id)
        if token["revoked_at"] is not None:
            raise AccessStoreError(f"token {token_id} was already revoked")
        with self.begin() as conn:
            conn.execute(
                access_tokens.update()
                .where(access_tokens.c.token_id == token_id)
                .values(revoked_by=actor, revoked_at=self.now())
            )
            self._audit(
                conn,
                actor,
                "admin",
                "cli",
                "tokens.revoke",
                token["user_name"],
                0,
                {"token_id": token_id},
            )
        return self.token(token_id)

    def _live_token(self, token_id: str) -> Any:
        """(name, role, token_sha256) of a live token's enabled user, or None."""
        query = (
            sa.select(access_users.c.name, access_users.c.role, access_tokens.c.token_sha256)
            .select_from(
                access_tokens.join(access_users, access_users.c.name == access_tokens.c.user_name)
            )
            .where(
                access_tokens.c.token_id == token_id,
                access_tokens.c.revoked_at.is_(None),
                access_tokens.c.expires_at > self.now(),
                access_users.c.disabled.is_(False),
            )
        )
        with self.begin(write=False) as conn:
            return conn.execute(query).first()

    def identity_for_token_id(self, token_id: str, via: str = VIA_TOKEN) -> Identity | None:
        """The identity behind a live token id (session cookies carry the id), or None."""
        row = self._live_token(token_id)
        return None if row is None else Identity(row.name, row.role, via, token_id)

    def authenticate(self, token: str | None) -> Identity | None:
        """The identity of a presented token, or None (malformed, unknown, wrong secret,
        revoked, expired, or a disabled user). One query; the comparison is constant-time."""
        token = (token or "").strip()
        match = _TOKEN_PATTERN.match(token)
        if not match:
            return None
        row = self._live_token(match.group(1))
        if row is None or not hmac.compare_digest(row.token_sha256, token_digest(token)):
            return None
        return Identity(row.name, row.role, VIA_TOKEN, match.group(1))

    # -- audit ------------------------------------------------------------------------------

    def _audit(
        self,
        conn: sa.Connection,
        actor: str,
        role: str,
        via: str,
        action: str,
        target: str,
        outcome: int,
        detail: dict[str, Any],
    ) -> None:
        conn.execute(
            access_audit.insert().values(
                at=self.now(),
                actor=actor[:100],
                role=role,
                via=via,
                action=action[:200],
                target=target[:300],
                outcome=outcome,
                detail=json.dumps(detail, default=str, sort_keys=True),
            )
        )

    def record(
        self,
        identity: Identity | None,
        action: str,
        target: str,
        outcome: int,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Audit one action (``outcome``: its HTTP status) with who did it (``anonymous``
        when refused for lack of identity)."""
        with self.begin() as conn:
            self._audit(
                conn,
                identity.name if identity else "anonymous",
                identity.role if identity else "-",
                identity.via if identity else "-",
                action,
                target,
                outcome,
                detail or {},
            )

    def audit(
        self, *, actor: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Audit rows, newest first (``actor``'s only when given)."""
        query = sa.select(access_audit).order_by(access_audit.c.id.desc())
        if actor is not None:
            query = query.where(access_audit.c.actor == actor)
        with self.begin(write=False) as conn:
            rows = conn.execute(query.limit(limit).offset(offset))
            return [dict(r._mapping) for r in rows]


def authenticate_token(token: str | None, alerts_db_url: str | None = None) -> Identity | None:
    """The :class:`Identity` of an API token, or None when it does not authenticate.

    A small stable entry point for every service that accepts ``Authorization: Bearer``
    tokens (the console, ``refrig serve``); the store is the configured alert database unless
    ``alerts_db_url`` is given.
    """
    from refrig_assets.core.settings import get_settings

    store = AccessStore(alerts_db_url or get_settings().alerts_db_url)
    try:
        return store.authenticate(token)
    finally:
        store.alerts.close()
