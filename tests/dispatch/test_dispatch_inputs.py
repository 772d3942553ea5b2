"""Bad inputs to the dispatch API are refused with a clear 4xx naming what is wrong (never a
500), and accepted inputs are stored as sent: ids past the integer columns, dates past the
calendar, blank names, half a position, GPS fixes from a broken clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import _client, login, open_incident
from safecity.core.auth import Principal, Role
from safecity.core.events_api import in_scope
from safecity.core.runtime import Runtime
from safecity.dispatch import service
from safecity.geo import service as geo
from safecity.registry import service as registry

#: Past SQLite's 64-bit INTEGER (the driver overflows) and past PostgreSQL's `integer`.
TOO_BIG = [2**63, 2**31]


@pytest.fixture
def raw_client(cad_runtime: Runtime) -> Iterator[TestClient]:
    """A client that answers a server error with its 500 instead of raising it."""
    for client in _client(cad_runtime):
        client.raise_server_exceptions = False
        yield client


def _id_requests(iid: int, unit_id: int, big: int) -> list[tuple[str, str, Any, str]]:
    """(method, path, JSON body, the field the refusal must name)."""
    return [
        ("GET", f"/api/v1/incidents/{big}/recommendations", None, "incident_id"),
        ("POST", f"/api/v1/incidents/{big}/dispatch", {"unit_ids": [unit_id]}, "incident_id"),
        ("POST", f"/api/v1/incidents/{iid}/dispatch", {"unit_ids": [big]}, "unit_ids"),
        ("GET", f"/api/v1/incidents/{big}/assignments", None, "incident_id"),
        ("GET", f"/api/v1/units/{big}/assignments", None, "unit_id"),
        ("POST", f"/api/v1/units/{big}/status", {"status": "en_route"}, "unit_id"),
        (
            "POST",
            f"/api/v1/units/{unit_id}/status",
            {"status": "en_route", "incident_id": big},
            "incident_id",
        ),
        ("POST", f"/api/v1/units/{big}/location", {"lat": 34.0, "lon": 71.5}, "unit_id"),
        (
            "POST",
            "/api/v1/units/locations",
            [{"unit_id": big, "lat": 34.0, "lon": 71.5}],
            "unit_id",
        ),
        ("POST", f"/api/v1/alerts/{big}/acknowledge", None, "alert_id"),
        ("GET", f"/api/v1/alerts/{big}/cap", None, "alert_id"),
    ]


@pytest.mark.parametrize("big", TOO_BIG)
def test_ids_past_the_integer_columns_are_refused_naming_the_field(
    raw_client: TestClient, big: int
) -> None:
    disp = login(raw_client, "dispatcher")
    unit = raw_client.get("/api/v1/units", headers=disp).json()[0]
    iid = open_incident(raw_client, unit["lon"], unit["lat"])
    for method, path, body, field in _id_requests(iid, unit["id"], big):
        r = raw_client.request(method, path, headers=disp, json=body)
        assert r.status_code == 422, (path, body, r.status_code, r.text)
        assert field in r.json()["message"], (path, r.text)
    # Nothing was sent anywhere meanwhile.
    assert raw_client.get(f"/api/v1/incidents/{iid}/assignments", headers=disp).json() == []


@pytest.mark.parametrize("since", ["2026-01-01", "9999-12-31"])
def test_a_report_up_to_the_last_day_of_the_calendar_is_refused(
    raw_client: TestClient, since: str
) -> None:
    """`to` is inclusive: the day after 9999-12-31 overflowed into a 500."""
    disp = login(raw_client, "dispatcher")
    r = raw_client.get(
        "/api/v1/reports/response-times",
        headers=disp,
        params={"from": since, "to": "9999-12-31"},
    )
    assert r.status_code == 422, r.text
    assert "`to`" in r.json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "  ", "name": "Bank gate"}, "code"),
        ({"code": "BANK-1", "name": " \t "}, "name"),
        ({"code": "BANK-1", "name": "Bank gate", "lat": 34.0}, "lon"),
        ({"code": "BANK-1", "name": "Bank gate", "lon": 71.5}, "lat"),
    ],
)
def test_panic_device_needs_a_code_a_name_and_a_whole_position(
    raw_client: TestClient, body: dict[str, Any], field: str
) -> None:
    admin = login(raw_client, "admin")
    r = raw_client.post(
        "/api/v1/panic-devices",
        headers=admin,
        json={"kind": "bank", "phone": "0915551234", **body},
    )
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lat": 35.0}, "lon"),
        ({"lon": 72.0}, "lat"),
        ({"accuracy_m": 1e308}, "accuracy_m"),
    ],
)
def test_a_panic_press_with_half_a_position_is_refused_not_mixed_with_the_registered_one(
    raw_client: TestClient, body: dict[str, Any], field: str
) -> None:
    """A press that sent only its latitude used to be placed at the sent latitude and the
    registered longitude: a point neither the device nor its address is at."""
    admin = login(raw_client, "admin")
    unit = raw_client.get("/api/v1/units", headers=admin).json()[0]
    r = raw_client.post(
        "/api/v1/panic-devices",
        headers=admin,
        json={
            "code": "BANK-1",
            "name": "Bank gate",
            "kind": "bank",
            "phone": "0915551234",
            "lat": unit["lat"],
            "lon": unit["lon"],
        },
    )
    key = r.json()["device_key"]
    r = raw_client.post("/api/v1/panic", headers={"X-Device-Key": key}, json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]


@pytest.mark.parametrize(
    "age",
    [timedelta(days=8), timedelta(days=7168), timedelta(days=365 * 2025)],  # 7168: GPS rollover
)
def test_gps_fixes_from_a_broken_clock_are_refused(
    raw_client: TestClient, cad_runtime: Runtime, age: timedelta
) -> None:
    """A fix dated years back (a receiver's week-number rollover, an unset clock) was
    taken and moved the unit's live position and last-seen time back to that date."""
    disp = login(raw_client, "dispatcher")
    unit = raw_client.get("/api/v1/units/1", headers=disp).json()
    at = (cad_runtime.clock.now() - age).isoformat()
    fix = {"lat": unit["lat"] + 0.01, "lon": unit["lon"], "at": at}
    for r in (
        raw_client.post("/api/v1/units/locations", headers=disp, json=[{"unit_id": 1, **fix}]),
        raw_client.post("/api/v1/units/1/location", headers=disp, json=fix),
    ):
        assert r.status_code == 422, r.text
        assert "position time" in r.json()["message"]
    assert raw_client.get("/api/v1/units/1", headers=disp).json() == unit


def test_a_day_old_fix_from_a_gateway_catching_up_is_still_taken(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    disp = login(cad_client, "dispatcher")
    unit = cad_client.get("/api/v1/units/1", headers=disp).json()
    at = (cad_runtime.clock.now() - timedelta(days=1)).isoformat()
    r = cad_client.post(
        "/api/v1/units/locations",
        headers=disp,
        json=[{"unit_id": 1, "lat": unit["lat"], "lon": unit["lon"], "at": at}],
    )
    assert r.status_code == 202 and r.json()["accepted"] == 1


def test_an_older_fix_arriving_late_does_not_move_the_unit_back(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    """A fix that arrives after a newer one (a gateway catching up, batches overtaking each
    other) is kept as history; it moved the unit back and told every map so."""
    from sqlalchemy import select

    from safecity.dispatch.models import UnitPosition

    disp = login(cad_client, "dispatcher")
    unit = cad_client.get("/api/v1/units/1", headers=disp).json()
    other = cad_client.get("/api/v1/units/2", headers=disp).json()
    now = cad_runtime.clock.now()
    moves = cad_runtime.bus.subscribe("units.location")

    def fix(unit_id: int, lat: float, lon: float, age_s: int) -> dict[str, Any]:
        at = (now - timedelta(seconds=age_s)).isoformat()
        return {"unit_id": unit_id, "lat": lat, "lon": lon, "at": at}

    newer = fix(1, unit["lat"] + 0.01, unit["lon"], 10)
    r = cad_client.post("/api/v1/units/locations", headers=disp, json=[newer])
    assert r.status_code == 202
    # The late fix of unit 1 in one batch with a fresh one of unit 2.
    late = fix(1, unit["lat"] - 0.01, unit["lon"], 60)
    fresh = fix(2, other["lat"] + 0.01, other["lon"], 5)
    r = cad_client.post("/api/v1/units/locations", headers=disp, json=[late, fresh])
    assert r.status_code == 202
    after = cad_client.get("/api/v1/units/1", headers=disp).json()
    assert after["lat"] == pytest.approx(newer["lat"])
    assert cad_client.get("/api/v1/units/2", headers=disp).json()["lat"] == pytest.approx(
        fresh["lat"]
    )
    published = [(m.data["id"], m.data["lat"]) for m in moves.fetch(batch=100, timeout=1.0)]
    assert published == [(1, pytest.approx(newer["lat"])), (2, pytest.approx(fresh["lat"]))]
    # The late fix is kept in the unit's history all the same.
    with cad_runtime.sessions() as s:
        lats = s.scalars(select(UnitPosition.lat).where(UnitPosition.unit_id == 1)).all()
    assert pytest.approx(late["lat"]) in list(lats)


def test_response_time_alerts_reach_a_province_scoped_live_stream(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    """Alert events named station, tehsil and district but not the province, so the live
    stream's scope check dropped every alert for a province-scoped caller."""
    unit = cad_client.get("/api/v1/units/1", headers=login(cad_client, "admin")).json()
    iid = open_incident(cad_client, unit["lon"], unit["lat"])
    sub = cad_runtime.bus.subscribe("alerts.>")
    cad_runtime.clock.advance(timedelta(hours=2))  # type: ignore[attr-defined]
    with cad_runtime.sessions() as s:
        fired = service.check_response_times(s, now=cad_runtime.clock.now())
        assert fired
        province = geo.list_jurisdictions(s, level="province")[0].id
        service.acknowledge_alert(
            s, alert_id=fired[0].id, actor=service.SYSTEM, now=cad_runtime.clock.now()
        )
        s.commit()
    msgs = sub.fetch(batch=100, timeout=1.0)
    sub.close()
    assert {m.subject for m in msgs} == {"alerts.response", "alerts.acknowledged"}
    who = Principal(
        subject="p", name="p", role=Role.DISTRICT_SP, scope_level="province", scope_id=province
    )
    other = Principal(
        subject="q", name="q", role=Role.DISTRICT_SP, scope_level="province", scope_id=province + 1
    )
    assert all(m.data["incident_id"] == iid for m in msgs)
    assert all(in_scope(who, m.data) for m in msgs)
    assert not any(in_scope(other, m.data) for m in msgs)


@pytest.mark.parametrize("second_ends", ["cancelled", "merged"])
def test_a_queued_job_whose_incident_ended_is_not_started(
    cad_client: TestClient, second_ends: str
) -> None:
    """A unit clearing its job was sent on to its next queued one even when that incident
    had been cancelled or merged meanwhile: the unit was marked dispatched to an incident
    nobody would ever see again, and was not free for the next call."""
    disp = login(cad_client, "dispatcher")
    unit = cad_client.get("/api/v1/units", headers=disp).json()[0]
    first = open_incident(cad_client, unit["lon"], unit["lat"])
    second = open_incident(cad_client, unit["lon"] + 0.01, unit["lat"])
    third = open_incident(cad_client, unit["lon"] + 0.02, unit["lat"])
    for iid in (first, second, third):
        r = cad_client.post(
            f"/api/v1/incidents/{iid}/dispatch", headers=disp, json={"unit_ids": [unit["id"]]}
        )
        assert r.status_code == 201, r.text
    if second_ends == "cancelled":
        r = cad_client.post(
            f"/api/v1/incidents/{second}/status",
            headers=disp,
            json={"status": "cancelled", "note": "caller rang back: all fine"},
        )
    else:
        r = cad_client.post(
            f"/api/v1/incidents/{second}/merge", headers=disp, json={"into_incident_id": third}
        )
    assert r.status_code == 200, r.text
    r = cad_client.post(
        f"/api/v1/units/{unit['id']}/status", headers=disp, json={"status": "cleared"}
    )
    assert r.status_code == 200, r.text
    active = cad_client.get(f"/api/v1/units/{unit['id']}/assignments", headers=disp).json()
    assert [(a["incident_id"], a["status"]) for a in active] == [(third, "assigned")]
    assert cad_client.get(f"/api/v1/incidents/{third}", headers=disp).json()["status"] == (
        "dispatched"
    )
    assert cad_client.get(f"/api/v1/units/{unit['id']}", headers=disp).json()["status"] == (
        "dispatched"
    )


def test_unit_events_reach_tehsil_and_province_scoped_live_streams(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    """Unit events named only the station and district, so the live stream's scope check
    dropped every unit movement and status for a tehsil- or province-scoped caller."""
    disp = login(cad_client, "dispatcher")
    unit = cad_client.get("/api/v1/units/1", headers=disp).json()
    sub = cad_runtime.bus.subscribe("units.>")
    at = cad_runtime.clock.now().isoformat()
    fix = {"unit_id": 1, "lat": unit["lat"], "lon": unit["lon"], "at": at}
    assert cad_client.post("/api/v1/units/locations", headers=disp, json=[fix]).status_code == 202
    with cad_runtime.sessions() as s:
        registry.set_unit_status(s, unit_id=1, status="off_duty", now=cad_runtime.clock.now())
        s.commit()
        station = geo.ids_of(s, jurisdiction_id=unit["station_id"])
    msgs = sub.fetch(batch=100, timeout=1.0)
    sub.close()
    assert {m.subject for m in msgs} == {"units.location", "units.status"}
    for level in ("tehsil", "district", "province"):
        scope_id = getattr(station, f"{level}_id")
        assert scope_id is not None
        who = Principal(
            subject="p", name="p", role=Role.DISTRICT_SP, scope_level=level, scope_id=scope_id
        )
        other = Principal(
            subject="q", name="q", role=Role.DISTRICT_SP, scope_level=level, scope_id=scope_id + 999
        )
        assert all(in_scope(who, m.data) for m in msgs), level
        assert not any(in_scope(other, m.data) for m in msgs), level


@pytest.mark.parametrize("monitor_starts", ["before", "after"])
def test_cancelling_an_incident_releases_its_units(
    cad_client: TestClient, cad_runtime: Runtime, monitor_starts: str
) -> None:
    """Units sent to an incident that was then cancelled stayed dispatched (or en route) to
    it until each crew cleared by hand. The monitor releases them: from the change it sees
    (`before`) or from its first look at every sent unit (`after`, a restart)."""
    from safecity.dispatch.monitor import ResponseTimeMonitor

    disp = login(cad_client, "dispatcher")
    units = cad_client.get("/api/v1/units", headers=disp).json()[:2]
    iid = open_incident(cad_client, units[0]["lon"], units[0]["lat"])
    kept = open_incident(cad_client, units[0]["lon"] + 0.01, units[0]["lat"])
    for target, unit in ((iid, units[0]), (iid, units[1]), (kept, units[1])):
        r = cad_client.post(
            f"/api/v1/incidents/{target}/dispatch", headers=disp, json={"unit_ids": [unit["id"]]}
        )
        assert r.status_code == 201, r.text
    r = cad_client.post(
        f"/api/v1/units/{units[0]['id']}/status", headers=disp, json={"status": "en_route"}
    )
    assert r.status_code == 200, r.text
    monitor = ResponseTimeMonitor(cad_runtime) if monitor_starts == "before" else None
    r = cad_client.post(
        f"/api/v1/incidents/{iid}/status",
        headers=disp,
        json={"status": "cancelled", "note": "caller rang back: all fine"},
    )
    assert r.status_code == 200, r.text
    if monitor is None:
        monitor = ResponseTimeMonitor(cad_runtime)
    try:
        monitor.check_once()
    finally:
        monitor.stop()

    def unit_status(unit: dict[str, Any]) -> str:
        return str(cad_client.get(f"/api/v1/units/{unit['id']}", headers=disp).json()["status"])

    jobs = cad_client.get(f"/api/v1/incidents/{iid}/assignments", headers=disp).json()
    assert len(jobs) == 2 and {j["status"] for j in jobs} == {"cleared"}
    # The first unit is free; the second goes on to its queued job.
    assert unit_status(units[0]) == "available"
    assert unit_status(units[1]) == "dispatched"
    active = cad_client.get(f"/api/v1/units/{units[1]['id']}/assignments", headers=disp).json()
    assert [(a["incident_id"], a["status"]) for a in active] == [(kept, "assigned")]
    # The incident says so; it stays cancelled.
    detail = cad_client.get(f"/api/v1/incidents/{iid}", headers=disp).json()
    assert detail["status"] == "cancelled"
    assert sum(e["kind"] == "unit_released" for e in detail["timeline"]) == 2
