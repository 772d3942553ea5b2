"""Bad inputs to the registry routes get a clear 4xx naming the offending field, never a
500, and a refused request changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import login

BEYOND_64_BITS = 2**63  # SQLite refused to bind it: OverflowError, a 500
BEYOND_32_BITS = 2**31  # past PostgreSQL's INTEGER column: a 500 there


@pytest.fixture
def admin(cad_client: TestClient) -> dict[str, str]:
    return login(cad_client, "admin")


def _site_and_camera(client: TestClient, admin: dict[str, str]) -> tuple[int, int]:
    r = client.post(
        "/api/v1/sites",
        json={"code": "S-IN-1", "name": "Chowk", "kind": "chowk", "lon": 71.55, "lat": 34.0},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    site = r.json()["id"]
    r = client.post(
        "/api/v1/cameras",
        json={
            "code": "C-IN-1",
            "name": "Chowk north",
            "site_code": "S-IN-1",
            "stream_url": "rtsp://cam/1",
            "detect_url": "rtsp://cam/2",
            "heading_deg": 90,
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return site, r.json()["id"]


def _station_and_district(client: TestClient, admin: dict[str, str]) -> tuple[int, int]:
    juris = client.get("/api/v1/geo/jurisdictions", headers=admin).json()
    station = next(j["id"] for j in juris if j["level"] == "station")
    district = next(j["id"] for j in juris if j["level"] == "district")
    return station, district


@pytest.mark.parametrize("big", [BEYOND_64_BITS, BEYOND_32_BITS])
@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/api/v1/sites/{big}", "site_id"),
        ("PATCH", "/api/v1/sites/{big}", "site_id"),
        ("DELETE", "/api/v1/sites/{big}", "site_id"),
        ("GET", "/api/v1/sites?station_id={big}", "station_id"),
        ("GET", "/api/v1/cameras/{big}", "camera_id"),
        ("DELETE", "/api/v1/cameras/{big}", "camera_id"),
        ("GET", "/api/v1/cameras?site_id={big}", "site_id"),
        ("GET", "/api/v1/cameras?station_id={big}", "station_id"),
        ("GET", "/api/v1/units/{big}", "unit_id"),
        ("PATCH", "/api/v1/units/{big}", "unit_id"),
        ("GET", "/api/v1/units?station_id={big}", "station_id"),
        ("PATCH", "/api/v1/officers/{big}", "officer_id"),
        ("DELETE", "/api/v1/officers/{big}", "officer_id"),
        ("GET", "/api/v1/officers?station_id={big}", "station_id"),
        ("PATCH", "/api/v1/agencies/{big}", "agency_id"),
    ],
)
def test_ids_past_the_integer_column_are_refused(
    demo_client: TestClient, method: str, path: str, field: str, big: int
) -> None:
    admin = login(demo_client, "admin")
    body = {} if method == "PATCH" else None
    r = demo_client.request(method, path.format(big=big), json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("sites", ["name", "kind", "lon", "lat"]),
        ("cameras", ["name", "kind", "stream_url", "status"]),
        ("units", ["callsign", "kind", "status", "home_station_id"]),
        ("officers", ["name", "rank"]),
        ("agencies", ["name", "kind"]),
    ],
)
def test_patch_refuses_null_for_required_fields(
    cad_client: TestClient, admin: dict[str, str], kind: str, fields: list[str]
) -> None:
    """Was a 500: null reached the NOT NULL column (IntegrityError), or, for a site's
    lon/lat, the point lookup (TypeError)."""
    site, camera = _site_and_camera(cad_client, admin)
    rows = cad_client.get(f"/api/v1/{kind}", headers=admin).json()
    row_id = {"sites": site, "cameras": camera}.get(kind, rows[0]["id"])
    before = next(r for r in rows if r["id"] == row_id)
    for field in fields:
        r = cad_client.patch(f"/api/v1/{kind}/{row_id}", json={field: None}, headers=admin)
        assert r.status_code == 422, (field, r.text)
        assert field in r.json()["message"] and "null" in r.json()["message"]
    after = next(
        r for r in cad_client.get(f"/api/v1/{kind}", headers=admin).json() if r["id"] == row_id
    )
    assert after == before


def test_patch_still_clears_optional_fields(cad_client: TestClient, admin: dict[str, str]) -> None:
    site, camera = _site_and_camera(cad_client, admin)
    r = cad_client.patch(f"/api/v1/sites/{site}", json={"address": None}, headers=admin)
    assert r.status_code == 200 and r.json()["address"] is None
    r = cad_client.patch(
        f"/api/v1/cameras/{camera}", json={"detect_url": None, "heading_deg": None}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["detect_url"] is None and r.json()["heading_deg"] is None


def test_unit_home_station_must_be_a_station(cad_client: TestClient, admin: dict[str, str]) -> None:
    """Was accepted on update: a unit homed at an unknown id or at a district (create
    refused the district but answered an unknown id with a 404, as if the route were
    missing)."""
    station, district = _station_and_district(cad_client, admin)
    unit = cad_client.get("/api/v1/units", headers=admin).json()[0]
    for bad, words in ((999_999, "does not exist"), (district, "not a police station")):
        r = cad_client.patch(
            f"/api/v1/units/{unit['id']}", json={"home_station_id": bad}, headers=admin
        )
        assert r.status_code == 422, r.text
        assert "home_station_id" in r.json()["message"] and words in r.json()["message"]
        r = cad_client.post(
            "/api/v1/units",
            json={
                "code": "U-IN-1",
                "callsign": "IN-1",
                "kind": "foot",
                "home_station_id": bad,
                "lon": 71.55,
                "lat": 34.0,
            },
            headers=admin,
        )
        assert r.status_code == 422, r.text
        assert "home_station_id" in r.json()["message"] and words in r.json()["message"]
    got = cad_client.get(f"/api/v1/units/{unit['id']}", headers=admin).json()
    assert got["home_station_id"] == unit["home_station_id"]
    r = cad_client.patch(
        f"/api/v1/units/{unit['id']}", json={"home_station_id": station}, headers=admin
    )
    assert r.status_code == 200 and r.json()["home_station_id"] == station


@pytest.mark.parametrize("field", ["station_id", "tehsil_id", "district_id"])
def test_officer_places_must_exist_at_their_level(
    cad_client: TestClient, admin: dict[str, str], field: str
) -> None:
    """Was accepted: an officer posted to a station id that does not exist, or to a
    district id given as his station."""
    station, district = _station_and_district(cad_client, admin)
    wrong_level = station if field != "station_id" else district
    officer = cad_client.get("/api/v1/officers", headers=admin).json()[0]
    for bad in (999_999, wrong_level):
        r = cad_client.post(
            "/api/v1/officers",
            json={"code": "O-IN-1", "name": "Test", "rank": "ASI", field: bad},
            headers=admin,
        )
        assert r.status_code == 422, r.text
        assert field in r.json()["message"]
        r = cad_client.patch(f"/api/v1/officers/{officer['id']}", json={field: bad}, headers=admin)
        assert r.status_code == 422, r.text
        assert field in r.json()["message"]
    codes = {o["code"] for o in cad_client.get("/api/v1/officers", headers=admin).json()}
    assert "O-IN-1" not in codes
    after = next(
        o
        for o in cad_client.get("/api/v1/officers", headers=admin).json()
        if o["id"] == officer["id"]
    )
    assert after == officer


def _fc(*features: Any) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


_POINT = {"type": "Point", "coordinates": [71.55, 34.0]}
_PROPS = {"code": "S-GJ-1", "name": "Gate", "kind": "bank"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (json.dumps({"type": "FeatureCollection", "features": 5}), "features"),
        (json.dumps({"type": "FeatureCollection", "features": {"a": 1}}), "features"),
        (_fc(1), "feature 0"),
        (_fc("x"), "feature 0"),
        (_fc({"geometry": "x", "properties": _PROPS}), "feature 0"),
        (_fc({"geometry": {"type": "Point", "coordinates": 5}}), "feature 0"),
        (_fc({"geometry": {"type": "Point", "coordinates": "7155"}}), "feature 0"),
        (_fc({"geometry": _POINT, "properties": [1, 2]}), "feature 0: properties"),
        (_fc({"geometry": _POINT, "properties": "x"}), "feature 0: properties"),
    ],
)
def test_geojson_import_refuses_malformed_structure(
    cad_client: TestClient, admin: dict[str, str], text: str, words: str
) -> None:
    """Was a 500: a feature, geometry, coordinates or properties of another JSON type."""
    for kind in ("sites", "cameras"):
        r = cad_client.post(
            f"/api/v1/{kind}/import?format=geojson",
            content=text,
            headers={**admin, "content-type": "text/plain"},
        )
        assert r.status_code == 422, r.text
        assert words in r.json()["message"]
    assert cad_client.get("/api/v1/sites", headers=admin).json() == []


def test_csv_import_refuses_a_huge_field(cad_client: TestClient, admin: dict[str, str]) -> None:
    """Was a 500 (csv.Error: field larger than field limit)."""
    text = "code,name,kind,lon,lat\nS-OK,Fine,bank,71.55,34.0\nS-H," + "x" * 200_000
    text += ",bank,71.55,34.0\n"
    r = cad_client.post(
        "/api/v1/sites/import?format=csv",
        content=text,
        headers={**admin, "content-type": "text/plain"},
    )
    assert r.status_code == 422, r.text
    assert "after line 2" in r.json()["message"]
    assert cad_client.get("/api/v1/sites", headers=admin).json() == []


def test_two_requests_storing_one_code_at_once_get_a_conflict(
    cad_client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests with the same code at the same moment both pass the service's check
    (PostgreSQL takes both), and the second insert hits the unique constraint: that was a
    500. The race is made certain here by taking the check away, as if the other request's
    commit came between the second one's check and its insert."""
    from safecity.registry import service as registry_service

    body = {"code": "S-RACE-1", "name": "Race chowk", "kind": "chowk", "lon": 71.55, "lat": 34.0}
    assert cad_client.post("/api/v1/sites", json=body, headers=admin).status_code == 201
    monkeypatch.setattr(registry_service, "_unique_code", lambda *_a, **_k: None)
    r = cad_client.post("/api/v1/sites", json={**body, "name": "Second"}, headers=admin)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "conflict" and "same code" in r.json()["message"]
    stored = [s for s in cad_client.get("/api/v1/sites", headers=admin).json()]
    assert [s["name"] for s in stored if s["code"] == "S-RACE-1"] == ["Race chowk"]
