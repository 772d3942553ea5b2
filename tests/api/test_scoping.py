"""Jurisdiction scoping: an SHO sees his station only, a district SP his district."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from conftest import login


def _points_by_station(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    import shapely

    fc = client.get("/api/v1/geo/stations", headers=headers).json()
    out = {}
    for f in fc["features"]:
        p = shapely.geometry.shape(f["geometry"]).representative_point()
        out[f["properties"]["name"]] = (f["properties"], p.x, p.y)
    return out


def _post(client: TestClient, headers: dict[str, str], lon: float, lat: float) -> int:
    r = client.post(
        "/api/v1/calls",
        headers=headers,
        json={"caller_number": "03111111111", "lat": lat, "lon": lon, "category": "snatching"},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["incident_id"])


def test_sho_cannot_read_another_stations_incident(demo_client: TestClient) -> None:
    ct = login(demo_client, "calltaker")
    pts = _points_by_station(demo_client, ct)
    own_props, lon, lat = pts["PS Gulbahar"]
    other_name = next(
        n for n, (p, _, _) in pts.items() if p["district_id"] != own_props["district_id"]
    )
    _, olon, olat = pts[other_name]
    mine = _post(demo_client, ct, lon, lat)
    theirs = _post(demo_client, ct, olon, olat)

    sho = login(demo_client, "sho.gulbahar")
    assert demo_client.get(f"/api/v1/incidents/{mine}", headers=sho).status_code == 200
    r = demo_client.get(f"/api/v1/incidents/{theirs}", headers=sho)
    assert r.status_code == 403 and "outside your jurisdiction" in r.json()["message"]
    listed = {
        i["incident_id"]
        for i in demo_client.get("/api/v1/incidents?limit=1000", headers=sho).json()
    }
    assert mine in listed and theirs not in listed
    assert all(
        i["station_id"] == own_props["id"]
        for i in demo_client.get("/api/v1/incidents?limit=1000", headers=sho).json()
    )


def test_district_sp_sees_his_district_only(demo_client: TestClient) -> None:
    ct = login(demo_client, "calltaker")
    pts = _points_by_station(demo_client, ct)
    me = demo_client.get("/api/v1/auth/me", headers=login(demo_client, "sp.peshawar")).json()
    assert me["scope_level"] == "district"
    inside = next(v for v in pts.values() if v[0]["district_id"] == me["scope_id"])
    outside = next(v for v in pts.values() if v[0]["district_id"] != me["scope_id"])
    a = _post(demo_client, ct, inside[1], inside[2])
    b = _post(demo_client, ct, outside[1], outside[2])
    sp = login(demo_client, "sp.peshawar")
    assert demo_client.get(f"/api/v1/incidents/{a}", headers=sp).status_code == 200
    assert demo_client.get(f"/api/v1/incidents/{b}", headers=sp).status_code == 403
    # The admin sees both.
    admin = login(demo_client, "admin")
    assert demo_client.get(f"/api/v1/incidents/{b}", headers=admin).status_code == 200
