"""Users, tokens, API keys and role checks on a real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from safecity.core.auth import Role, create_user
from safecity.core.runtime import Runtime


def _admin(runtime: Runtime) -> None:
    with runtime.sessions() as s, s.begin():
        create_user(
            s, username="root", password="root-password", role=Role.ADMIN, now=runtime.clock.now()
        )


def _token(client: TestClient, user: str, pw: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/token", data={"username": user, "password": pw})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_password_is_stored_as_argon2(runtime: Runtime) -> None:
    from sqlalchemy import select

    from safecity.core.models import User

    _admin(runtime)
    with runtime.sessions() as s:
        h = s.scalar(select(User.password_hash).where(User.username == "root"))
    assert h is not None and h.startswith("$argon2id$") and "root-password" not in h


def test_token_expires(runtime: Runtime, client: TestClient) -> None:
    _admin(runtime)
    headers = _token(client, "root", "root-password")
    assert client.get("/api/v1/auth/me", headers=headers).json()["role"] == "admin"
    runtime.clock.advance(timedelta(minutes=runtime.settings.access_token_minutes + 1))  # type: ignore[attr-defined]
    r = client.get("/api/v1/auth/me", headers=headers)
    assert r.status_code == 401 and "expired" in r.json()["message"]


def test_admin_creates_users_and_service_accounts(runtime: Runtime, client: TestClient) -> None:
    _admin(runtime)
    admin = _token(client, "root", "root-password")
    r = client.post(
        "/api/v1/auth/users",
        headers=admin,
        json={"username": "ct1", "password": "password-1", "role": "call_taker"},
    )
    assert r.status_code == 201
    ct = _token(client, "ct1", "password-1")
    assert client.get("/api/v1/auth/users", headers=ct).status_code == 403
    r = client.post(
        "/api/v1/auth/users",
        headers=admin,
        json={"username": "ct1", "password": "password-1", "role": "call_taker"},
    )
    assert r.status_code == 409
    r = client.post(
        "/api/v1/auth/users",
        headers=admin,
        json={"username": "x1", "password": "password-1", "role": "wizard"},
    )
    assert r.status_code == 422 and "role" in r.json()["message"]
    r = client.post(
        "/api/v1/auth/users",
        headers=admin,
        json={"username": "x2", "password": "password-1", "role": "sho", "scope_level": "station"},
    )
    assert r.status_code == 422 and "scope_id" in r.json()["message"]

    r = client.post(
        "/api/v1/auth/service-accounts", headers=admin, json={"name": "pbx", "role": "telephony"}
    )
    assert r.status_code == 201
    key = r.json()["api_key"]
    me = client.get("/api/v1/auth/me", headers={"X-API-Key": key}).json()
    assert me["role"] == "telephony" and "calls:create" in me["permissions"]
    # A telephony system may post calls but not read incidents.
    assert client.get("/api/v1/incidents", headers={"X-API-Key": key}).status_code == 403
    bad = client.get("/api/v1/auth/me", headers={"X-API-Key": key[:-2] + "xx"})
    assert bad.status_code == 401 and bad.json()["message"] == "unknown API key"
    assert client.get("/api/v1/auth/me", headers={"X-API-Key": "nonsense"}).status_code == 401


@pytest.mark.parametrize("password", ["short", ""])
def test_weak_password_refused(runtime: Runtime, password: str) -> None:
    from safecity.core.errors import InvalidInput

    with runtime.sessions() as s, pytest.raises(InvalidInput, match="8 characters"):
        create_user(s, username="u", password=password, role="analyst", now=runtime.clock.now())
