"""Signed-in clients of the operator console for tests: a registered user with a role and a
real API token, sent as ``Authorization: Bearer`` to the console's own host name."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

# A host name the shipped config/access.yaml allows (the test client's default is refused).
CONSOLE_BASE = "http://127.0.0.1"


def token_for(app: FastAPI, name: str, role: str) -> str:
    """A token of user ``name`` with ``role`` in the app's access store (added if missing)."""
    store = app.state.auth.store
    if store.find_user(name) is None:
        store.add_user(name, role, actor="test-admin")
    _, token = store.create_token(name, actor="test-admin", days=3650)
    return token


def signed_in_client(app: FastAPI, name: str = "ana", role: str = "operator") -> TestClient:
    """A test client acting as ``name`` (``role``) through a bearer token."""
    token = token_for(app, name, role)
    return TestClient(app, base_url=CONSOLE_BASE, headers={"Authorization": f"Bearer {token}"})


def anonymous_client(app: FastAPI) -> TestClient:
    """A test client without identity, on an allowed host."""
    return TestClient(app, base_url=CONSOLE_BASE)
