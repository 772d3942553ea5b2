"""The golden path over HTTP: a call becomes an incident routed to the right station."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import login


def _call(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "caller_number": "03001234567",
        "lat": 34.0,
        "lon": 71.55,
        "category": "robbery",
        "description": "two men on a motorcycle snatched a bag",
    }
    body.update(over)
    return body


def test_health(demo_client: TestClient) -> None:
    assert demo_client.get("/health").json() == {"status": "ok"}
    assert demo_client.get("/openapi.json").json()["info"]["title"] == "SafeCity"


def test_call_inside_every_station_routes_to_that_station(
    demo_client: TestClient, demo_runtime: Any
) -> None:
    from safecity.geo import service as geo

    headers = login(demo_client, "calltaker")
    with demo_runtime.sessions() as session:
        points = geo.representative_points(session, level="station")
    assert len(points) >= 40
    for station_id, lon, lat in points:
        r = demo_client.post("/api/v1/calls", json=_call(lon=lon, lat=lat), headers=headers)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["station_id"] == station_id
        assert body["inside_jurisdiction"] is True
        loc = demo_client.get(
            "/api/v1/geo/locate", params={"lat": lat, "lon": lon}, headers=headers
        ).json()
        assert loc["station_id"] == station_id and loc["inside"] is True
        assert loc["district_id"] is not None and loc["tehsil_id"] is not None


def test_point_outside_every_jurisdiction_goes_to_nearest_station(
    demo_client: TestClient, demo_runtime: Any
) -> None:
    import shapely

    headers = login(demo_client, "calltaker")
    fc = demo_client.get("/api/v1/geo/stations", headers=headers).json()
    geoms = {f["properties"]["id"]: shapely.geometry.shape(f["geometry"]) for f in fc["features"]}
    union = shapely.union_all(list(geoms.values()))
    _, miny, maxx, maxy = union.bounds
    point = shapely.Point(maxx + 0.05, (miny + maxy) / 2)  # east of the province
    nearest = min(geoms, key=lambda k: geoms[k].distance(point))
    loc = demo_client.get(
        "/api/v1/geo/locate", params={"lat": point.y, "lon": point.x}, headers=headers
    ).json()
    assert loc["inside"] is False
    assert loc["station_id"] == nearest
    r = demo_client.post("/api/v1/calls", json=_call(lon=point.x, lat=point.y), headers=headers)
    assert r.status_code == 201
    assert r.json()["station_id"] == nearest and r.json()["inside_jurisdiction"] is False
    detail = demo_client.get(f"/api/v1/incidents/{r.json()['incident_id']}", headers=headers)
    assert "outside every jurisdiction" in detail.json()["timeline"][1]["note"]


def test_incident_has_status_and_timeline_and_is_published(
    demo_client: TestClient, demo_runtime: Any
) -> None:
    sub = demo_runtime.bus.subscribe("incidents.created")
    headers = login(demo_client, "calltaker")
    r = demo_client.post("/api/v1/calls", json=_call(), headers=headers)
    assert r.status_code == 201
    inc_id = r.json()["incident_id"]
    got = demo_client.get(f"/api/v1/incidents/{inc_id}", headers=login(demo_client, "admin"))
    assert got.status_code == 200
    body = got.json()
    assert body["status"] == "routed"
    assert body["category"] == "robbery" and body["priority"] == 1
    assert [e["kind"] for e in body["timeline"]] == ["received", "routed"]
    assert body["timeline"][0]["actor"] == "calltaker"
    events = [m for m in sub.fetch(timeout=1) if m.data["incident_id"] == inc_id]
    assert len(events) == 1 and events[0].data["station_id"] == body["station_id"]
    sub.close()


def test_same_external_id_twice_makes_one_incident(demo_client: TestClient) -> None:
    headers = login(demo_client, "calltaker")
    first = demo_client.post("/api/v1/calls", json=_call(external_id="PBX-000777"), headers=headers)
    again = demo_client.post("/api/v1/calls", json=_call(external_id="PBX-000777"), headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["incident_id"] == again.json()["incident_id"]
    assert again.json()["duplicate_of_external_id"] is True


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"lat": 95.0}, ["lat", "less than or equal to 90"]),
        ({"lon": -200.0}, ["lon", "greater than or equal to -180"]),
        ({"category": "alien_invasion"}, ["unknown category", "robbery"]),
        ({"caller_number": "call me"}, ["caller_number"]),
        ({"lat": "north"}, ["lat", "valid number"]),
        ({"colour": "red"}, ["colour", "Extra inputs"]),
    ],
)
def test_bad_calls_get_clear_errors(
    demo_client: TestClient, over: dict[str, Any], words: list[str]
) -> None:
    r = demo_client.post(
        "/api/v1/calls", json=_call(**over), headers=login(demo_client, "calltaker")
    )
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_input"
    for w in words:
        assert w in body["message"]
    assert "Traceback" not in r.text


def test_malformed_json_body_gets_a_clear_error(demo_client: TestClient) -> None:
    r = demo_client.post(
        "/api/v1/calls",
        content=b"{not json",
        headers={**login(demo_client, "calltaker"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and "JSON" in r.json()["message"]


def test_unauthenticated_and_wrong_password(demo_client: TestClient) -> None:
    r = demo_client.post("/api/v1/calls", json=_call())
    assert r.status_code == 401 and "log in" in r.json()["message"]
    r = demo_client.post("/api/v1/auth/token", data={"username": "admin", "password": "nope-nope"})
    assert r.status_code == 401 and r.json()["message"] == "wrong username or password"
    r = demo_client.get("/api/v1/incidents", headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 401


def test_role_without_permission_is_refused(demo_client: TestClient) -> None:
    r = demo_client.post("/api/v1/calls", json=_call(), headers=login(demo_client, "analyst"))
    assert r.status_code == 403 and "calls:create" in r.json()["message"]
    r = demo_client.post(
        "/api/v1/sites",
        headers=login(demo_client, "calltaker"),
        json={"code": "X", "name": "X", "kind": "chowk", "lat": 34, "lon": 71.5},
    )
    assert r.status_code == 403
