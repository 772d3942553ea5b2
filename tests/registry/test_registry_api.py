"""Registry over HTTP on a real database: CRUD, bulk import all-or-nothing, clear errors."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from conftest import login
from safecity.core.db import transaction
from safecity.core.runtime import Runtime
from safecity.registry.service import stream_url_without_secrets
from safecity.video import service as video


@pytest.fixture
def admin(demo_client: TestClient) -> dict[str, str]:
    return login(demo_client, "admin")


def test_demo_registry_counts(demo_client: TestClient, admin: dict[str, str]) -> None:
    assert len(demo_client.get("/api/v1/sites", headers=admin).json()) == 125
    assert len(demo_client.get("/api/v1/cameras", headers=admin).json()) >= 700
    assert len(demo_client.get("/api/v1/units", headers=admin).json()) == 200
    assert {a["kind"] for a in demo_client.get("/api/v1/agencies", headers=admin).json()} >= {
        "police",
        "traffic_police",
        "rescue_1122",
        "ctd",
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "rtsp://admin:Secret1@10.0.0.5:554/Streaming/Channels/101",
            "rtsp://admin:***@10.0.0.5:554/Streaming/Channels/101",
        ),
        ("rtsp://10.0.0.5/live", "rtsp://10.0.0.5/live"),
        ("rtsp://viewer@10.0.0.5/live", "rtsp://viewer@10.0.0.5/live"),
        ("rtsp://u:p%40ss@cam.local/a", "rtsp://u:***@cam.local/a"),
        (
            "http://10.0.0.9/cgi-bin/mjpg?user=op&pwd=x1&channel=2",
            "http://10.0.0.9/cgi-bin/mjpg?user=op&pwd=***&channel=2",
        ),
        ("https://nvr/stream.ts?token=abc.def", "https://nvr/stream.ts?token=***"),
        ("file:///srv/clips/gate.mp4", "file:///srv/clips/gate.mp4"),
    ],
)
def test_stream_url_secrets_are_hidden(url: str, shown: str) -> None:
    assert stream_url_without_secrets(url) == shown


def test_only_camera_admins_see_stream_logins(
    demo_client: TestClient, admin: dict[str, str]
) -> None:
    """Analysts, dispatchers and station officers see cameras (status, place, live pictures)
    but not the camera's login inside its stream URL; those who configure cameras do."""
    site = demo_client.get("/api/v1/sites", headers=admin).json()[0]
    url = "rtsp://admin:Hik12345@10.9.9.9:554/Streaming/Channels/101?token=t0k"
    cam = demo_client.post(
        "/api/v1/cameras",
        headers=admin,
        json={"code": "T-CAM-SECRET", "name": "Gate", "site_code": site["code"], "stream_url": url},
    )
    assert cam.status_code == 201, cam.text
    cam_id = cam.json()["id"]
    assert cam.json()["stream_url"] == url
    assert demo_client.get(f"/api/v1/cameras/{cam_id}", headers=admin).json()["stream_url"] == url
    hidden = "rtsp://admin:***@10.9.9.9:554/Streaming/Channels/101?token=***"
    for user in ("analyst", "dispatcher"):
        who = login(demo_client, user)
        one = demo_client.get(f"/api/v1/cameras/{cam_id}", headers=who)
        assert one.status_code == 200, one.text
        assert one.json()["stream_url"] == hidden
        listed = demo_client.get("/api/v1/cameras", headers=who).json()
        mine = [c for c in listed if c["id"] == cam_id]
        assert mine and mine[0]["stream_url"] == hidden
        assert not any("Hik12345" in c["stream_url"] for c in listed)
    # What is stored is untouched: the admin still reads the full URL.
    assert demo_client.get(f"/api/v1/cameras/{cam_id}", headers=admin).json()["stream_url"] == url
    assert demo_client.delete(f"/api/v1/cameras/{cam_id}", headers=admin).status_code == 204


def test_site_and_camera_lifecycle(demo_client: TestClient, admin: dict[str, str]) -> None:
    r = demo_client.post(
        "/api/v1/sites",
        headers=admin,
        json={
            "code": "T-SITE-1",
            "name": "Test Chowk",
            "kind": "chowk",
            "lat": 34.005,
            "lon": 71.56,
        },
    )
    assert r.status_code == 201, r.text
    site = r.json()
    assert site["station_id"] is not None and site["district_id"] is not None
    dup = demo_client.post(
        "/api/v1/sites",
        headers=admin,
        json={"code": "T-SITE-1", "name": "Again", "kind": "chowk", "lat": 34.0, "lon": 71.5},
    )
    assert dup.status_code == 409 and "already exists" in dup.json()["message"]

    cam = demo_client.post(
        "/api/v1/cameras",
        headers=admin,
        json={
            "code": "T-CAM-1",
            "name": "Test cam",
            "site_code": "T-SITE-1",
            "kind": "ptz",
            "stream_url": "rtsp://10.0.0.1/stream",
            "heading_deg": 90,
        },
    )
    assert cam.status_code == 201, cam.text
    assert cam.json()["lat"] == pytest.approx(34.005)
    cam_id = cam.json()["id"]
    r = demo_client.patch(f"/api/v1/cameras/{cam_id}", headers=admin, json={"status": "offline"})
    assert r.json()["status"] == "offline"
    r = demo_client.delete(f"/api/v1/sites/{site['id']}", headers=admin)
    assert r.status_code == 409 and "camera" in r.json()["message"]
    assert demo_client.delete(f"/api/v1/cameras/{cam_id}", headers=admin).status_code == 204
    assert demo_client.delete(f"/api/v1/sites/{site['id']}", headers=admin).status_code == 204
    assert demo_client.get(f"/api/v1/sites/{site['id']}", headers=admin).status_code == 404


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"stream_url": "ftp://x"}, ["stream_url"]),
        ({"kind": "thermal"}, ["kind", "fixed"]),
        ({"site_code": "NOPE"}, ["site 'NOPE' is not known"]),
        ({"heading_deg": 400}, ["heading_deg"]),
    ],
)
def test_bad_camera_input(
    demo_client: TestClient, admin: dict[str, str], body: dict[str, object], words: list[str]
) -> None:
    payload = {
        "code": "T-CAM-X",
        "name": "x",
        "site_code": "SITE-001",
        "stream_url": "rtsp://h/s",
        **body,
    }
    r = demo_client.post("/api/v1/cameras", headers=admin, json=payload)
    assert r.status_code == 422
    for w in words:
        assert w in r.json()["message"]


def test_csv_import_is_all_or_nothing(demo_client: TestClient, admin: dict[str, str]) -> None:
    good = (
        "code,name,kind,lat,lon\n"
        "CSV-1,Firdous test,market,34.01,71.57\n"
        "CSV-2,Gate,embassy,34.0,71.55\n"
    )
    bad = good + "CSV-3,Broken,chowk,134.0,71.5\nCSV-4,,chowk,34.0,71.5\n"
    r = demo_client.post(
        "/api/v1/sites/import?format=csv",
        headers={**admin, "Content-Type": "text/plain"},
        content=bad,
    )
    assert r.status_code == 422
    msg = r.json()["message"]
    assert "row 4" in msg and "lat" in msg and "row 5" in msg and "name" in msg
    codes = {s["code"] for s in demo_client.get("/api/v1/sites", headers=admin).json()}
    assert "CSV-1" not in codes  # nothing half-imported
    r = demo_client.post(
        "/api/v1/sites/import?format=csv",
        headers={**admin, "Content-Type": "text/plain"},
        content=good,
    )
    assert r.json() == {"created": 2, "updated": 0}
    r = demo_client.post(
        "/api/v1/sites/import?format=csv",
        headers={**admin, "Content-Type": "text/plain"},
        content=good,
    )
    assert r.json() == {"created": 0, "updated": 2}


def test_geojson_camera_import(demo_client: TestClient, admin: dict[str, str]) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [71.571, 34.011]},
                "properties": {
                    "code": "GJ-CAM-1",
                    "name": "gj",
                    "site_code": "SITE-001",
                    "kind": "anpr",
                    "stream_url": "rtsp://10.1.1.1/1",
                },
            }
        ],
    }
    r = demo_client.post(
        "/api/v1/cameras/import?format=geojson",
        headers={**admin, "Content-Type": "text/plain"},
        content=json.dumps(doc),
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 1
    doc["features"][0]["properties"]["site_code"] = "MISSING"
    doc["features"][0]["properties"]["code"] = "GJ-CAM-2"
    r = demo_client.post(
        "/api/v1/cameras/import?format=geojson",
        headers={**admin, "Content-Type": "text/plain"},
        content=json.dumps(doc),
    )
    assert r.status_code == 422 and "MISSING" in r.json()["message"]


def test_camera_sub_stream_for_analysis(
    demo_client: TestClient, demo_runtime: Runtime, admin: dict[str, str]
) -> None:
    """A camera's sub-stream (`detect_url`) is what the video workers analyse; a CSV import
    sets it, a file without the column keeps it, the API clears it, and only camera admins
    read its login."""
    site = demo_client.get("/api/v1/sites", headers=admin).json()[1]
    main = "rtsp://op:Main99@10.7.7.7:554/Streaming/Channels/101"
    subs = "rtsp://op:Main99@10.7.7.7:554/Streaming/Channels/102"
    csv_text = (
        "code,name,site_code,stream_url,detect_url\n"
        f"T-SUB-1,Gate,{site['code']},{main},{subs}\n"
        f"T-SUB-2,Yard,{site['code']},{main.replace('7.7', '7.8')},\n"
    )
    csv_headers = {**admin, "Content-Type": "text/plain"}
    r = demo_client.post("/api/v1/cameras/import?format=csv", headers=csv_headers, content=csv_text)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2
    cams = {c["code"]: c for c in demo_client.get("/api/v1/cameras", headers=admin).json()}
    one, two = cams["T-SUB-1"], cams["T-SUB-2"]
    assert one["detect_url"] == subs and two["detect_url"] is None
    with transaction(demo_runtime.sessions) as s:
        work = {a.camera_id: (a.stream_url, a.record_url) for a in video.assignments(s)}
    assert work[one["id"]] == (subs, main)  # the sub-stream analysed, clips from the main
    assert work[two["id"]] == (two["stream_url"], None)  # no sub-stream: the main one
    analyst = login(demo_client, "analyst")
    seen = demo_client.get(f"/api/v1/cameras/{one['id']}", headers=analyst).json()
    assert seen["detect_url"] == "rtsp://op:***@10.7.7.7:554/Streaming/Channels/102"
    # A file without the column changes the rest and keeps the sub-stream.
    again = f"code,name,site_code,stream_url\nT-SUB-1,Gate 2,{site['code']},{main}\n"
    r = demo_client.post("/api/v1/cameras/import?format=csv", headers=csv_headers, content=again)
    assert r.status_code == 200 and r.json()["updated"] == 1, r.text
    one = demo_client.get(f"/api/v1/cameras/{one['id']}", headers=admin).json()
    assert one["name"] == "Gate 2" and one["detect_url"] == subs
    bad = demo_client.patch(
        f"/api/v1/cameras/{one['id']}", headers=admin, json={"detect_url": "ftp://x/y"}
    )
    assert bad.status_code == 422 and "detect_url" in bad.text
    r = demo_client.patch(f"/api/v1/cameras/{one['id']}", headers=admin, json={"detect_url": None})
    assert r.status_code == 200 and r.json()["detect_url"] is None
    for c in (one, two):
        assert demo_client.delete(f"/api/v1/cameras/{c['id']}", headers=admin).status_code == 204


def test_units_and_officers(demo_client: TestClient, admin: dict[str, str]) -> None:
    station = demo_client.get("/api/v1/geo/jurisdictions?level=station", headers=admin).json()[0]
    r = demo_client.post(
        "/api/v1/units",
        headers=admin,
        json={
            "code": "T-U-1",
            "callsign": "TST-1",
            "kind": "motorcycle",
            "home_station_id": station["id"],
            "lon": station["lon"],
            "lat": station["lat"],
        },
    )
    assert r.status_code == 201, r.text
    r = demo_client.post(
        "/api/v1/officers",
        headers=admin,
        json={
            "code": "T-O-1",
            "name": "Gul Khan",
            "rank": "ASI",
            "station_id": station["id"],
            "unit_code": "T-U-1",
        },
    )
    assert r.status_code == 201 and r.json()["unit_id"] is not None
    district = demo_client.get("/api/v1/geo/jurisdictions?level=district", headers=admin).json()[0]
    r = demo_client.post(
        "/api/v1/units",
        headers=admin,
        json={
            "code": "T-U-2",
            "callsign": "TST-2",
            "kind": "foot",
            "home_station_id": district["id"],
            "lon": 71.5,
            "lat": 34.0,
        },
    )
    assert r.status_code == 422 and "not a police station" in r.json()["message"]
    r = demo_client.post(
        "/api/v1/officers", headers=admin, json={"code": "T-O-2", "name": "X", "rank": "General"}
    )
    assert r.status_code == 422 and "rank" in r.json()["message"]


def test_agency_and_officer_updates(demo_client: TestClient, admin: dict[str, str]) -> None:
    r = demo_client.post(
        "/api/v1/agencies",
        headers=admin,
        json={"code": "T-AG", "name": "Test agency", "kind": "other"},
    )
    assert r.status_code == 201
    ag = r.json()["id"]
    r = demo_client.patch(f"/api/v1/agencies/{ag}", headers=admin, json={"phone": "1234"})
    assert r.status_code == 200 and r.json()["phone"] == "1234"
    assert demo_client.delete(f"/api/v1/agencies/{ag}", headers=admin).status_code == 204
    kpp = next(
        a for a in demo_client.get("/api/v1/agencies", headers=admin).json() if a["code"] == "KPP"
    )
    r = demo_client.delete(f"/api/v1/agencies/{kpp['id']}", headers=admin)
    assert r.status_code == 409 and "unit" in r.json()["message"]
    officer = demo_client.get("/api/v1/officers", headers=admin).json()[0]
    r = demo_client.patch(
        f"/api/v1/officers/{officer['id']}", headers=admin, json={"rank": "Inspector"}
    )
    assert r.status_code == 200 and r.json()["rank"] == "Inspector"
    r = demo_client.patch(
        f"/api/v1/officers/{officer['id']}", headers=admin, json={"rank": "Field Marshal"}
    )
    assert r.status_code == 422
