"""Users, tokens, roles and the proxy header over a real SQLite alert database."""

import dataclasses
import ipaddress
from datetime import timedelta

import pytest
import sqlalchemy as sa
from support.operator_world import T0, Clock

from refrig_assets.access import (
    AccessStore,
    AccessStoreError,
    Forbidden,
    Unauthenticated,
    authenticate_token,
    load_access_policy,
    require_role,
)
from refrig_assets.access.resolve import request_identity
from refrig_assets.access.store import access_tokens


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'alerts.db'}"


@pytest.fixture
def store(url):
    clock = Clock(T0)
    s = AccessStore(url, clock=clock)
    s.clock = clock
    yield s
    s.alerts.close()


def test_a_token_is_shown_once_stored_hashed_and_authenticates_its_user(store, url):
    store.add_user("ana", "operator", actor="root")
    row, token = store.create_token("ana", actor="root", days=3650, label="laptop")
    assert token.startswith(f"rfa_{row['token_id']}_")
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(access_tokens.c.token_sha256)).scalar_one()
    assert token not in stored and len(stored) == 64
    assert "token_sha256" not in row

    identity = store.authenticate(token)
    assert (identity.name, identity.role, identity.via) == ("ana", "operator", "token")
    assert authenticate_token(token, url) == identity
    # A changed secret, a malformed token, nothing at all: no identity.
    assert store.authenticate(token[:-2] + "xx") is None
    assert store.authenticate("hello") is None
    assert store.authenticate(None) is None


def test_revoked_expired_or_disabled_tokens_stop_working(store):
    store.add_user("bo", "viewer", actor="root")
    store.add_user("cy", "admin", actor="root")
    revoked, t1 = store.create_token("bo", actor="root", days=30)
    _, t2 = store.create_token("bo", actor="root", days=1)
    _, t3 = store.create_token("cy", actor="root", days=30)
    store.revoke_token(revoked["token_id"], actor="root")
    assert store.authenticate(t1) is None
    assert store.authenticate(t2) is not None
    store.clock.now = T0 + timedelta(days=2)
    assert store.authenticate(t2) is None
    store.disable_user("cy", actor="root")
    assert store.authenticate(t3) is None
    with pytest.raises(AccessStoreError, match="disabled"):
        store.create_token("cy", actor="root", days=1)
    with pytest.raises(AccessStoreError, match="already revoked"):
        store.revoke_token(revoked["token_id"], actor="root")
    users = {u["name"]: u for u in store.users()}
    assert users["cy"]["disabled"] and users["bo"]["live_tokens"] == 0


def test_users_have_valid_names_known_roles_and_no_duplicates(store):
    store.add_user("dee", "viewer", actor="root")
    with pytest.raises(AccessStoreError, match="already exists"):
        store.add_user("dee", "admin", actor="root")
    with pytest.raises(ValueError, match="role must be one of viewer, operator, admin"):
        store.add_user("eve", "superuser", actor="root")
    with pytest.raises(AccessStoreError, match="user name"):
        store.add_user(" spaced ", "viewer", actor="root")


def test_roles_refuse_with_401_without_identity_and_403_with_too_small_a_role(store):
    store.add_user("vic", "viewer", actor="root")
    _, token = store.create_token("vic", actor="root", days=1)
    viewer = store.authenticate(token)
    with pytest.raises(Unauthenticated, match="sign in first") as none:
        require_role(None, "operator", "acknowledging")
    assert none.value.status == 401
    with pytest.raises(Forbidden, match="vic is a viewer; acknowledging needs the operator role"):
        require_role(viewer, "operator", "acknowledging")
    assert require_role(viewer, "viewer") is viewer


def test_the_proxy_header_counts_only_from_a_trusted_proxy(store):
    policy = dataclasses.replace(
        load_access_policy(), trusted_proxies=(ipaddress.ip_network("10.0.0.0/30"),)
    )
    store.add_user("reg", "admin", actor="root")
    store.add_user("gone", "operator", actor="root")
    store.disable_user("gone", actor="root")
    header = policy.proxy_header.lower()
    # From the proxy: registered users keep their role, others get the default role.
    assert request_identity(store, policy, "10.0.0.2", {header: "reg"}).role == "admin"
    stranger = request_identity(store, policy, "10.0.0.2", {header: "new.person@corp"})
    assert (stranger.name, stranger.role, stranger.via) == ("new.person@corp", "viewer", "proxy")
    with pytest.raises(Unauthenticated, match="disabled"):
        request_identity(store, policy, "10.0.0.2", {header: "gone"})
    # From anywhere else the header is ignored: no identity.
    assert request_identity(store, policy, "10.0.0.9", {header: "reg"}) is None
    assert request_identity(store, policy, None, {header: "reg"}) is None
    # A bearer token that does not authenticate is refused, never ignored.
    with pytest.raises(Unauthenticated, match="bearer token"):
        request_identity(store, policy, "10.0.0.2", {"authorization": "Bearer nope", header: "reg"})


def test_the_access_audit_is_append_only(store):
    store.add_user("ana", "operator", actor="root")
    with store.engine.begin() as conn, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        conn.exec_driver_sql("DELETE FROM access_audit")
    assert [r["action"] for r in store.audit()] == ["users.add"]
