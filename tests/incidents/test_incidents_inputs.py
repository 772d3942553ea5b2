"""Bad inputs to the incident routes and services get a clear 4xx naming the offending
field, never a 500, and a refused request changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import login
from safecity.core.auth import Principal, Role
from safecity.core.errors import NotFound
from safecity.core.runtime import Runtime
from safecity.incidents import service

BEYOND_64_BITS = 2**63  # SQLite refused to bind it: OverflowError, a 500
BEYOND_32_BITS = 2**31  # past PostgreSQL's INTEGER column: a 500 there
ADMIN = Principal(subject="user:admin", name="admin", role=Role.ADMIN)


def _call(client: TestClient, headers: dict[str, str], **over: Any) -> dict[str, Any]:
    body = {
        "caller_number": "03001234567",
        "lat": 34.0,
        "lon": 71.55,
        "category": "robbery",
        "link_duplicates": False,
    }
    r = client.post("/api/v1/calls", json=body | over, headers=headers)
    assert r.status_code == 201, r.text
    accepted: dict[str, Any] = r.json()
    return accepted


def _status(client: TestClient, headers: dict[str, str], incident_id: int) -> str:
    r = client.get(f"/api/v1/incidents/{incident_id}", headers=headers)
    assert r.status_code == 200, r.text
    status: str = r.json()["status"]
    return status


@pytest.mark.parametrize("big", [BEYOND_64_BITS, BEYOND_32_BITS])
@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", "/api/v1/incidents/{big}", None, "incident_id"),
        ("GET", "/api/v1/incidents/{big}/eido", None, "incident_id"),
        ("GET", "/api/v1/incidents?station_id={big}", None, "station_id"),
        ("GET", "/api/v1/incidents?district_id={big}", None, "district_id"),
        ("POST", "/api/v1/incidents/{big}/status", {"status": "acknowledged"}, "incident_id"),
        ("POST", "/api/v1/calls/{big}/split", None, "call_id"),
        ("POST", "/api/v1/incidents/{inc}/merge", {"into_incident_id": "{big}"}, "into_incident"),
        (
            "POST",
            "/api/v1/incidents/{inc}/transfer",
            {"station_id": "{big}", "reason": "wrong area"},
            "station_id",
        ),
    ],
)
def test_ids_past_the_integer_column_are_refused(
    demo_client: TestClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    field: str,
    big: int,
) -> None:
    admin = login(demo_client, "admin")
    inc = _call(demo_client, admin)["incident_id"]
    url = path.format(big=big, inc=inc)
    if body is not None:
        body = {k: big if v == "{big}" else v for k, v in body.items()}
    r = demo_client.request(method, url, json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]
    assert _status(demo_client, admin, inc) == "routed"
    # Closed again: an open incident in the shared demo database would take other tests'
    # calls at the same place as duplicates.
    r = demo_client.post(
        f"/api/v1/incidents/{inc}/status", json={"status": "cancelled"}, headers=admin
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("big", [BEYOND_64_BITS, BEYOND_32_BITS, 0])
def test_services_treat_ids_past_the_column_as_unknown(demo_runtime: Runtime, big: int) -> None:
    """The services are called with ids from elsewhere too (dispatch, the CLI)."""
    now = demo_runtime.clock.now()
    with demo_runtime.sessions() as session:
        with pytest.raises(NotFound):
            service.get_incident(session, incident_id=big, actor=ADMIN)
        with pytest.raises(NotFound):
            service.incident_for_system(session, incident_id=big)
        with pytest.raises(NotFound):
            service.split_call(session, call_id=big, actor=ADMIN, now=now)
        with pytest.raises(NotFound):
            service.merge(session, incident_id=1, into_id=big, actor=ADMIN, now=now)


@pytest.mark.parametrize("name", ["since", "until"])
def test_list_refuses_a_time_without_a_zone(demo_client: TestClient, name: str) -> None:
    """Was a 500 (the UTC column refuses naive datetimes deep in the query)."""
    admin = login(demo_client, "admin")
    r = demo_client.get("/api/v1/incidents", params={name: "2024-01-01T00:00:00"}, headers=admin)
    assert r.status_code == 422, r.text
    assert name in r.json()["message"] and "time zone" in r.json()["message"]
    r = demo_client.get(
        "/api/v1/incidents", params={name: "2024-01-01T00:00:00+05:00"}, headers=admin
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("status", "route"), [("merged", "merge"), ("transferred", "transfer")])
def test_status_route_refuses_merged_and_transferred(
    cad_client: TestClient, status: str, route: str
) -> None:
    """Was accepted: the incident became merged with no `merged_into_id` (its calls left
    behind), or transferred with no agency, both final."""
    admin = login(cad_client, "admin")
    inc = _call(cad_client, admin)["incident_id"]
    r = cad_client.post(f"/api/v1/incidents/{inc}/status", json={"status": status}, headers=admin)
    assert r.status_code == 422, r.text
    assert "status" in r.json()["message"] and f"/{route}" in r.json()["message"]
    assert _status(cad_client, admin, inc) == "routed"


def test_unknown_status_is_still_a_conflict(cad_client: TestClient) -> None:
    admin = login(cad_client, "admin")
    inc = _call(cad_client, admin)["incident_id"]
    r = cad_client.post(f"/api/v1/incidents/{inc}/status", json={"status": "flying"}, headers=admin)
    assert r.status_code == 409 and "unknown status" in r.json()["message"]


def test_resolve_refuses_a_blank_disposition(cad_client: TestClient) -> None:
    """Was accepted: a disposition of spaces counted as one."""
    admin = login(cad_client, "admin")
    inc = _call(cad_client, admin)["incident_id"]
    for step in ("acknowledged", "dispatched", "on_scene"):
        r = cad_client.post(f"/api/v1/incidents/{inc}/status", json={"status": step}, headers=admin)
        assert r.status_code == 200, r.text
    r = cad_client.post(
        f"/api/v1/incidents/{inc}/status",
        json={"status": "resolved", "disposition": "   "},
        headers=admin,
    )
    assert r.status_code == 422, r.text
    assert "disposition" in r.json()["message"]
    assert _status(cad_client, admin, inc) == "on_scene"


def test_transfer_refuses_a_blank_reason(cad_client: TestClient) -> None:
    """Was accepted: the incident handed to another agency (final) with a reason of spaces."""
    admin = login(cad_client, "admin")
    inc = _call(cad_client, admin)["incident_id"]
    r = cad_client.post(
        f"/api/v1/incidents/{inc}/transfer",
        json={"agency_code": "R1122", "reason": "     "},
        headers=admin,
    )
    assert r.status_code == 422, r.text
    assert "reason" in r.json()["message"]
    assert _status(cad_client, admin, inc) == "routed"


@pytest.mark.parametrize(
    ("code", "body", "field"),
    [
        ("a" * 33, {"label": "Long", "apco_code": "ABC", "priority": 2}, "code"),
        ("nice_code", {"label": "   ", "apco_code": "ABC", "priority": 2}, "label"),
    ],
)
def test_incident_type_refuses_unusable_codes_and_blank_labels(
    cad_client: TestClient, code: str, body: dict[str, Any], field: str
) -> None:
    """Was accepted: a type code longer than a call's `category` may be (32), which no
    call could ever name (and past the column on PostgreSQL), and a label of spaces."""
    admin = login(cad_client, "admin")
    r = cad_client.put(f"/api/v1/incident-types/{code}", json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]
    codes = {t["code"] for t in cad_client.get("/api/v1/incident-types", headers=admin).json()}
    assert code not in codes
    r = cad_client.put(
        "/api/v1/incident-types/" + "b" * 32,
        json={"label": "Long", "apco_code": "ABC", "priority": 2},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    _call(cad_client, admin, category="b" * 32)
