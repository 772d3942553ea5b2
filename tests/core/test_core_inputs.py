"""Bad inputs to the auth and live-event routes are refused with a clear 4xx naming the
field (never a 500, never silently taken): scope ids past the integer column or below 1,
blank names, garbled credentials, malformed subject filters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from safecity.app import create_app
from safecity.core.auth import Role, create_user
from safecity.core.runtime import Runtime


@pytest.fixture
def raw_client(runtime: Runtime) -> Iterator[TestClient]:
    """A client that answers a server error with its 500 instead of raising it."""
    app = create_app(runtime, with_console=False, with_monitor=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def admin(runtime: Runtime, raw_client: TestClient) -> dict[str, str]:
    with runtime.sessions() as s, s.begin():
        create_user(
            s, username="root", password="root-password", role=Role.ADMIN, now=runtime.clock.now()
        )
    r = raw_client.post(
        "/api/v1/auth/token", data={"username": "root", "password": "root-password"}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.mark.parametrize("scope_id", [2**63, 2**31, 0, -5])
def test_a_scope_id_outside_the_id_column_is_refused(
    raw_client: TestClient, admin: dict[str, str], scope_id: int
) -> None:
    r = raw_client.post(
        "/api/v1/auth/users",
        headers=admin,
        json={
            "username": "sho1",
            "password": "password-1",
            "role": "sho",
            "scope_level": "station",
            "scope_id": scope_id,
        },
    )
    assert r.status_code == 422, r.text
    assert "scope_id" in r.json()["message"]
    assert [u["username"] for u in raw_client.get("/api/v1/auth/users", headers=admin).json()] == [
        "root"
    ]


@pytest.mark.parametrize("name", ["  ", " \t\n "])
def test_a_blank_service_account_name_is_refused(
    raw_client: TestClient, admin: dict[str, str], name: str
) -> None:
    r = raw_client.post(
        "/api/v1/auth/service-accounts", headers=admin, json={"name": name, "role": "telephony"}
    )
    assert r.status_code == 422, r.text
    assert "name" in r.json()["message"]


def test_names_are_stored_without_surrounding_blanks(
    raw_client: TestClient, admin: dict[str, str]
) -> None:
    r = raw_client.post(
        "/api/v1/auth/service-accounts",
        headers=admin,
        json={"name": "  pbx-1 ", "role": "telephony"},
    )
    assert r.status_code == 201 and r.json()["name"] == "pbx-1", r.text
    r = raw_client.post(
        "/api/v1/auth/users",
        headers=admin,
        json={"username": "ct1", "password": "password-1", "role": "call_taker", "full_name": "  "},
    )
    assert r.status_code == 201 and r.json()["full_name"] == "ct1", r.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer abc.def.ghi"},
        {"Authorization": "Bearer "},
        {"Authorization": b"Bearer \xc3\xa9\xff.a.b"},
        {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.x"},
        {"X-API-Key": "sc_nope_nope"},
        {"X-API-Key": "not-a-key"},
        {"X-API-Key": b"sc_\xff_\xfe"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/v1/auth/me"), ("POST", "/api/v1/units/locations")]
)
def test_garbled_credentials_are_a_401(
    raw_client: TestClient, admin: dict[str, str], headers: dict[str, Any], method: str, path: str
) -> None:
    r = raw_client.request(method, path, headers=headers, json=[])
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthenticated"


@pytest.mark.parametrize(
    "subject",
    ["incidents.>.created", "incidents*", "incidents.cr*", "inc>", "incidents.>>", "a..b", "a b"],
)
def test_a_malformed_subject_filter_is_refused(
    raw_client: TestClient, admin: dict[str, str], subject: str
) -> None:
    """`incidents.>.created` used to stream every incidents event (`>` ends the match where
    it stands) and `incidents*` none at all (a literal token): a 200 either way."""
    with raw_client.stream(
        "GET", "/api/v1/events/stream", params={"subjects": subject}, headers=admin
    ) as r:
        assert r.status_code == 422
        assert "subject" in r.read().decode()
