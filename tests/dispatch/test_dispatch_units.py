"""Units: recommendation, stacked assignment, GPS ingest (single and batch), panic alerts,
response-time reports and KPIs."""

from __future__ import annotations

import csv
import io
from datetime import UTC, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import login, open_incident
from safecity.core.runtime import Runtime


def _station_point(client: TestClient, name: str = "PS Gulbahar") -> tuple[float, float, int]:
    import shapely

    fc = client.get("/api/v1/geo/stations", headers=login(client, "admin")).json()
    f = next(f for f in fc["features"] if f["properties"]["name"] == name)
    p = shapely.geometry.shape(f["geometry"]).representative_point()
    return p.x, p.y, int(f["properties"]["id"])


def test_recommendation_prefers_the_nearest_available_unit(cad_client: TestClient) -> None:
    lon, lat, _ = _station_point(cad_client)
    iid = open_incident(cad_client, lon, lat)
    disp = login(cad_client, "dispatcher")
    # Put one unit right at the scene: it must come first.
    unit = cad_client.get("/api/v1/units", headers=disp).json()[-1]
    r = cad_client.post(
        f"/api/v1/units/{unit['id']}/location", headers=disp, json={"lat": lat + 0.0001, "lon": lon}
    )
    assert r.status_code == 202
    recs = cad_client.get(f"/api/v1/incidents/{iid}/recommendations?limit=10", headers=disp).json()
    assert recs[0]["unit_id"] == unit["id"] and recs[0]["distance_m"] < 50
    assert [r["eta_s"] for r in recs] == sorted(r["eta_s"] for r in recs)
    # A dispatched unit is no longer recommended.
    cad_client.post(
        f"/api/v1/incidents/{iid}/dispatch", headers=disp, json={"unit_ids": [unit["id"]]}
    )
    recs = cad_client.get(f"/api/v1/incidents/{iid}/recommendations?limit=50", headers=disp).json()
    assert unit["id"] not in [r["unit_id"] for r in recs]


def test_stacked_assignment_starts_when_the_unit_clears(cad_client: TestClient) -> None:
    lon, lat, _ = _station_point(cad_client)
    first = open_incident(cad_client, lon, lat, "robbery")
    second = open_incident(cad_client, lon + 0.01, lat, "assault")
    disp = login(cad_client, "dispatcher")
    unit = cad_client.get(f"/api/v1/incidents/{first}/recommendations", headers=disp).json()[0][
        "unit_id"
    ]
    a1 = cad_client.post(
        f"/api/v1/incidents/{first}/dispatch", headers=disp, json={"unit_ids": [unit]}
    ).json()[0]
    a2 = cad_client.post(
        f"/api/v1/incidents/{second}/dispatch", headers=disp, json={"unit_ids": [unit]}
    ).json()[0]
    assert a1["status"] == "assigned" and a2["status"] == "queued"
    assert cad_client.get(f"/api/v1/incidents/{second}", headers=disp).json()["status"] == "routed"
    again = cad_client.post(
        f"/api/v1/incidents/{first}/dispatch", headers=disp, json={"unit_ids": [unit]}
    )
    assert again.status_code == 409 and "already assigned" in again.json()["message"]
    for step in ("en_route", "on_scene"):
        assert (
            cad_client.post(
                f"/api/v1/units/{unit}/status", headers=disp, json={"status": step}
            ).status_code
            == 200
        )
    r = cad_client.post(
        f"/api/v1/units/{unit}/status",
        headers=disp,
        json={"status": "cleared", "disposition": "advised"},
    )
    assert r.status_code == 200
    assert cad_client.get(f"/api/v1/incidents/{first}", headers=disp).json()["status"] == "resolved"
    # The queued job is now the unit's active one, and its incident is dispatched.
    active = cad_client.get(f"/api/v1/units/{unit}/assignments", headers=disp).json()
    assert [(a["incident_id"], a["status"]) for a in active] == [(second, "assigned")]
    assert (
        cad_client.get(f"/api/v1/incidents/{second}", headers=disp).json()["status"] == "dispatched"
    )
    assert cad_client.get(f"/api/v1/units/{unit}", headers=disp).json()["status"] == "dispatched"
    r = cad_client.post(f"/api/v1/units/{unit}/status", headers=disp, json={"status": "on_scene"})
    assert r.status_code == 200
    r = cad_client.post(f"/api/v1/units/{unit}/status", headers=disp, json={"status": "en_route"})
    assert r.status_code == 409 and "cannot go back" in r.json()["message"]


def test_batch_gps_ingest_updates_units_and_keeps_history(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    disp = login(cad_client, "dispatcher")
    units = cad_client.get("/api/v1/units", headers=disp).json()[:50]
    now = cad_runtime.clock.now()
    sub = cad_runtime.bus.subscribe("units.location")
    batch = [
        {
            "unit_id": u["id"],
            "lat": u["lat"] + 0.001 * k,
            "lon": u["lon"],
            "at": (now - timedelta(seconds=10 - k)).isoformat(),
        }
        for u in units
        for k in range(3)
    ]
    r = cad_client.post("/api/v1/units/locations", headers=disp, json=batch)
    assert r.status_code == 202 and r.json() == {"accepted": 150}
    after = {u["id"]: u for u in cad_client.get("/api/v1/units", headers=disp).json()}
    for u in units:
        assert after[u["id"]]["lat"] == pytest.approx(u["lat"] + 0.002)
        assert after[u["id"]]["station_id"] is not None
    assert len(sub.fetch(batch=1000, timeout=1)) == 50  # one live position per unit
    from sqlalchemy import func, select

    from safecity.dispatch.models import UnitPosition

    with cad_runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(UnitPosition)) == 150


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ([{"unit_id": 999999, "lat": 34.0, "lon": 71.5}], 404, "unknown unit"),
        ([{"unit_id": 1, "lat": 134.0, "lon": 71.5}], 422, "lat"),
        ([{"unit_id": 1, "lat": 34.0, "lon": 71.5, "at": "2099-01-01T00:00:00Z"}], 422, "future"),
        ([{"unit_id": 1, "lat": 34.0, "lon": 71.5, "at": "2026-01-01T00:00:00"}], 422, "time zone"),
    ],
)
def test_bad_gps_batches_are_refused_whole(
    cad_client: TestClient, body: list[dict[str, Any]], code: int, words: str
) -> None:
    disp = login(cad_client, "dispatcher")
    before = cad_client.get("/api/v1/units/1", headers=disp).json()
    r = cad_client.post(
        "/api/v1/units/locations",
        headers=disp,
        json=[{"unit_id": 2, "lat": 34.01, "lon": 71.55}, *body],
    )
    assert r.status_code == code and words in r.json()["message"], r.text
    assert cad_client.get("/api/v1/units/1", headers=disp).json()["lat"] == before["lat"]


def test_panic_alert_creates_a_routed_p1_incident(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    lon, lat, station_id = _station_point(cad_client)
    admin = login(cad_client, "admin")
    r = cad_client.post(
        "/api/v1/panic-devices",
        headers=admin,
        json={
            "code": "EMB-01",
            "name": "Embassy gate 1",
            "kind": "diplomatic_mission",
            "phone": "0915551234",
            "lat": lat,
            "lon": lon,
        },
    )
    assert r.status_code == 201, r.text
    key = r.json()["device_key"]
    sub = cad_runtime.bus.subscribe("incidents.created")
    r = cad_client.post(
        "/api/v1/panic",
        headers={"X-Device-Key": key},
        json={"lat": lat, "lon": lon, "accuracy_m": 12},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["priority"] == 1 and body["station_id"] == station_id
    assert len(body["recommended_units"]) >= 1 and "Help is coming" in body["message"]
    assert [m.data["incident_id"] for m in sub.fetch(timeout=1)] == [body["incident_id"]]
    detail = cad_client.get(f"/api/v1/incidents/{body['incident_id']}", headers=admin).json()
    assert detail["source"] == "panic" and detail["category"] == "panic"
    assert "recommended" in [e["kind"] for e in detail["timeline"]]
    # Without a position the registered location is used; a wrong key is refused. A
    # second press beside the open robbery and the first press is still its own P1 incident.
    robbery = open_incident(cad_client, lon, lat)
    again = cad_client.post("/api/v1/panic", headers={"X-Device-Key": key}, json={})
    assert again.status_code == 201 and again.json()["priority"] == 1
    assert again.json()["incident_id"] not in (body["incident_id"], robbery)
    again_detail = cad_client.get(
        f"/api/v1/incidents/{again.json()['incident_id']}", headers=admin
    ).json()
    assert (again_detail["lon"], again_detail["lat"]) == (lon, lat)
    bad = cad_client.post("/api/v1/panic", headers={"X-Device-Key": key[:-3] + "xyz"}, json={})
    assert bad.status_code == 401
    assert cad_client.post("/api/v1/panic", json={}).status_code == 422


@pytest.mark.parametrize("page", [10_000, 2])
def test_response_time_report_and_kpis(
    cad_client: TestClient, cad_runtime: Runtime, page: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reports read every incident of the period a page at a time (a province's month is
    hundreds of thousands; a fixed limit cut them short): with 2 a page, the three
    incidents take two pages and all count."""
    from safecity.incidents import service as incidents_service

    monkeypatch.setattr(incidents_service, "PAGE", page)
    lon, lat, _ = _station_point(cad_client)
    disp = login(cad_client, "dispatcher")
    clock = cad_runtime.clock
    for delay_dispatch, delay_scene in ((60, 300), (120, 600), (400, 2000)):
        iid = open_incident(cad_client, lon, lat)
        unit = cad_client.get(f"/api/v1/incidents/{iid}/recommendations", headers=disp).json()[0][
            "unit_id"
        ]
        clock.advance(delay_dispatch)  # type: ignore[attr-defined]
        cad_client.post(
            f"/api/v1/incidents/{iid}/dispatch", headers=disp, json={"unit_ids": [unit]}
        )
        clock.advance(delay_scene)  # type: ignore[attr-defined]
        cad_client.post(f"/api/v1/units/{unit}/status", headers=disp, json={"status": "on_scene"})
        cad_client.post(
            f"/api/v1/units/{unit}/status",
            headers=disp,
            json={"status": "cleared", "disposition": "advised"},
        )
    day = clock.now().astimezone(UTC).strftime("%Y-%m-%d")
    rows = cad_client.get(
        f"/api/v1/reports/response-times?from={day}&to={day}", headers=disp
    ).json()
    row = next(r for r in rows if r["incidents"] == 3)
    assert row["answer_to_dispatch_median_s"] == 120
    assert row["dispatch_to_scene_median_s"] == 600
    assert row["answer_to_dispatch_p90_s"] == 400
    assert row["sla_breaches"] >= 1
    text = cad_client.get(
        f"/api/v1/reports/response-times?from={day}&to={day}&format=csv&group_by=station",
        headers=disp,
    ).text
    table = list(csv.DictReader(io.StringIO(text)))
    assert table and table[0]["group_name"] == "PS Gulbahar"
    bad = cad_client.get(
        "/api/v1/reports/response-times?from=yesterday&to=2026-01-01", headers=disp
    )
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.json()["message"]
    kpis = cad_client.get("/api/v1/kpis", headers=disp).json()
    k = next(k for k in kpis if k["incidents_today"] == 3)
    assert k["by_type"] == {"robbery": 3} and k["calls_today"] == 3
    assert k["answer_to_dispatch_median_s"] == 120 and k["dispatch_to_scene_median_s"] == 600


def test_field_officer_reports_on_his_units_job_in_another_station(
    cad_client: TestClient,
) -> None:
    """Mutual aid: a unit sent across a station boundary still reports its own steps."""
    admin = login(cad_client, "admin")
    me = cad_client.get("/api/v1/auth/me", headers=login(cad_client, "officer.psr1")).json()
    officers = cad_client.get("/api/v1/officers", headers=admin).json()
    mine = next(o for o in officers if o["username"] == "officer.psr1")
    assert mine["unit_id"] is not None and me["scope_level"] == "station"
    stations = cad_client.get("/api/v1/geo/jurisdictions?level=station", headers=admin).json()
    other = next(s for s in stations if s["id"] != me["scope_id"])
    iid = open_incident(cad_client, other["lon"], other["lat"])
    disp = login(cad_client, "dispatcher")
    r = cad_client.post(
        f"/api/v1/incidents/{iid}/dispatch", headers=disp, json={"unit_ids": [mine["unit_id"]]}
    )
    assert r.status_code == 201, r.text
    field = login(cad_client, "officer.psr1")
    r = cad_client.post(
        f"/api/v1/units/{mine['unit_id']}/status", headers=field, json={"status": "en_route"}
    )
    assert r.status_code == 200, r.text
    # His assignment lets him report his unit's steps, not run the other station's incident.
    r = cad_client.post(
        f"/api/v1/incidents/{iid}/status", headers=field, json={"status": "cancelled"}
    )
    assert r.status_code == 403
