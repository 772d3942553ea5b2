"""The incident lifecycle over HTTP on a real database: every step stamped and audited,
illegal steps refused, duplicates linked, transfer, merge and split."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import login
from safecity.core.runtime import Runtime
from safecity.incidents.lifecycle import TRANSITIONS, Status, check_transition


def _points(client: TestClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    import shapely

    out = {}
    for f in client.get("/api/v1/geo/stations", headers=headers).json()["features"]:
        p = shapely.geometry.shape(f["geometry"]).representative_point()
        out[f["properties"]["name"]] = {**f["properties"], "lon": p.x, "lat": p.y}
    return out


def _call(
    client: TestClient,
    headers: dict[str, str],
    lon: float,
    lat: float,
    category: str = "robbery",
    **extra: Any,
) -> dict[str, Any]:
    r = client.post(
        "/api/v1/calls",
        headers=headers,
        json={
            "caller_number": extra.pop("caller_number", "03001112223"),
            "lat": lat,
            "lon": lon,
            "category": category,
            "description": "test",
            **extra,
        },
    )
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


ALL_PAIRS = [(a, b) for a in Status for b in Status]


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS)
def test_state_machine_table(current: Status, target: Status) -> None:
    if target in TRANSITIONS[current]:
        assert check_transition(current, target, incident_id=1) is target
    else:
        from safecity.core.errors import Conflict

        with pytest.raises(Conflict, match="Allowed next"):
            check_transition(current, target, incident_id=1)


def test_full_lifecycle_with_timestamps_and_audit(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    ct = login(cad_client, "calltaker")
    pts = _points(cad_client, ct)
    gul = pts["PS Gulbahar"]
    inc = _call(cad_client, ct, gul["lon"], gul["lat"])
    iid = inc["incident_id"]
    assert inc["station_id"] == gul["id"] and inc["status"] == "routed"
    clock = cad_runtime.clock
    sho = login(cad_client, "sho.gulbahar")
    clock.advance(30)  # type: ignore[attr-defined]
    r = cad_client.post(
        f"/api/v1/incidents/{iid}/status",
        headers=sho,
        json={"status": "acknowledged", "note": "on it"},
    )
    assert r.status_code == 200, r.text
    disp = login(cad_client, "dispatcher")
    recs = cad_client.get(f"/api/v1/incidents/{iid}/recommendations", headers=disp).json()
    assert recs and recs == sorted(recs, key=lambda x: x["eta_s"])
    unit = recs[0]["unit_id"]
    clock.advance(60)  # type: ignore[attr-defined]
    r = cad_client.post(
        f"/api/v1/incidents/{iid}/dispatch", headers=disp, json={"unit_ids": [unit]}
    )
    assert r.status_code == 201 and r.json()[0]["status"] == "assigned"
    assert cad_client.get(f"/api/v1/units/{unit}", headers=disp).json()["status"] == "dispatched"
    for step in ("en_route", "on_scene"):
        clock.advance(120)  # type: ignore[attr-defined]
        r = cad_client.post(f"/api/v1/units/{unit}/status", headers=sho, json={"status": step})
        assert r.status_code == 200, r.text
    clock.advance(600)  # type: ignore[attr-defined]
    r = cad_client.post(
        f"/api/v1/units/{unit}/status",
        headers=sho,
        json={"status": "cleared", "disposition": "arrested"},
    )
    assert r.status_code == 200
    assert cad_client.get(f"/api/v1/units/{unit}", headers=disp).json()["status"] == "available"
    r = cad_client.post(f"/api/v1/incidents/{iid}/status", headers=sho, json={"status": "closed"})
    assert r.status_code == 200
    detail = cad_client.get(f"/api/v1/incidents/{iid}", headers=disp).json()
    assert detail["status"] == "closed" and detail["disposition"] == "arrested"
    stamps = [
        detail[k]
        for k in (
            "received_at",
            "routed_at",
            "acknowledged_at",
            "dispatched_at",
            "en_route_at",
            "on_scene_at",
            "resolved_at",
            "closed_at",
        )
    ]
    assert all(stamps) and stamps == sorted(stamps)
    kinds = [e["kind"] for e in detail["timeline"]]
    for k in (
        "received",
        "routed",
        "acknowledged",
        "unit_dispatched",
        "dispatched",
        "unit_en_route",
        "en_route",
        "unit_on_scene",
        "on_scene",
        "unit_cleared",
        "resolved",
        "closed",
    ):
        assert k in kinds, (k, kinds)
    actors = {e["kind"]: e["actor"] for e in detail["timeline"]}
    assert actors["acknowledged"] == "sho.gulbahar" and actors["unit_dispatched"] == "dispatcher"


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        ("on_scene", 409, "Allowed next"),
        ("closed", 409, "cannot become closed"),
        ("resolved", 409, "Allowed next"),
        ("flying", 409, "unknown status"),
    ],
)
def test_illegal_transitions_are_refused(
    cad_client: TestClient, status: str, code: int, words: str
) -> None:
    ct = login(cad_client, "calltaker")
    gul = _points(cad_client, ct)["PS Gulbahar"]
    iid = _call(cad_client, ct, gul["lon"], gul["lat"])["incident_id"]
    r = cad_client.post(
        f"/api/v1/incidents/{iid}/status",
        headers=login(cad_client, "admin"),
        json={"status": status},
    )
    assert r.status_code == code and words in r.json()["message"]


def test_resolve_needs_a_disposition_and_cancel_is_final(cad_client: TestClient) -> None:
    ct, admin = login(cad_client, "calltaker"), login(cad_client, "admin")
    gul = _points(cad_client, ct)["PS Gulbahar"]
    iid = _call(cad_client, ct, gul["lon"], gul["lat"])["incident_id"]
    r = cad_client.post(
        f"/api/v1/incidents/{iid}/status",
        headers=admin,
        json={"status": "cancelled", "note": "caller withdrew"},
    )
    assert r.status_code == 200
    r = cad_client.post(f"/api/v1/incidents/{iid}/status", headers=admin, json={"status": "routed"})
    assert r.status_code == 409 and "final" in r.json()["message"]


def test_other_station_sho_cannot_act(cad_client: TestClient) -> None:
    ct = login(cad_client, "calltaker")
    pts = _points(cad_client, ct)
    gul = pts["PS Gulbahar"]
    iid = _call(cad_client, ct, gul["lon"], gul["lat"])["incident_id"]
    other = next(n for n in pts if n != "PS Gulbahar")
    username = "sho." + other.removeprefix("PS ").lower().replace(" ", "_").replace("-", "_")
    r = cad_client.post(
        "/api/v1/auth/token", data={"username": username, "password": "demo-password-1"}
    )
    if r.status_code != 200:
        pytest.skip(f"no demo login {username}")
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = cad_client.post(
        f"/api/v1/incidents/{iid}/status", headers=h, json={"status": "acknowledged"}
    )
    assert r.status_code == 403


def test_duplicate_calls_are_linked_and_can_be_split(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    ct = login(cad_client, "calltaker")
    gul = _points(cad_client, ct)["PS Gulbahar"]
    first = _call(cad_client, ct, gul["lon"], gul["lat"], "robbery")
    # 100 m away a minute later, a compatible type: the same event.
    cad_runtime.clock.advance(60)  # type: ignore[attr-defined]
    near = _call(
        cad_client, ct, gul["lon"] + 0.001, gul["lat"], "snatching", caller_number="03119998887"
    )
    assert near["linked_to_existing"] is True and near["incident_id"] == first["incident_id"]
    # Far away, or an incompatible type: new incidents.
    far = _call(cad_client, ct, gul["lon"] + 0.01, gul["lat"], "robbery")
    assert far["incident_id"] != first["incident_id"] and not far["linked_to_existing"]
    other = _call(cad_client, ct, gul["lon"], gul["lat"], "traffic_accident")
    assert other["incident_id"] != first["incident_id"]
    # After the window: new incident.
    cad_runtime.clock.advance(timedelta(minutes=16))  # type: ignore[attr-defined]
    late = _call(cad_client, ct, gul["lon"], gul["lat"], "robbery")
    assert late["incident_id"] != first["incident_id"]
    detail = cad_client.get(f"/api/v1/incidents/{first['incident_id']}", headers=ct).json()
    assert detail["call_count"] == 2 and len(detail["calls"]) == 2
    assert "call_linked" in [e["kind"] for e in detail["timeline"]]
    # The call taker splits the linked call off again.
    r = cad_client.post(f"/api/v1/calls/{near['call_id']}/split", headers=ct)
    assert r.status_code == 201, r.text
    split = r.json()
    assert split["incident_id"] not in (first["incident_id"], far["incident_id"])
    # Received when its caller called (16 minutes before the split), not at the split.
    own = cad_client.get(f"/api/v1/incidents/{split['incident_id']}", headers=ct).json()
    assert [c["id"] for c in own["calls"]] == [near["call_id"]]
    split_at = next(e["at"] for e in own["timeline"] if e["kind"] == "split_from")
    assert own["received_at"] == own["calls"][0]["received_at"] < split_at
    assert (
        cad_client.get(f"/api/v1/incidents/{first['incident_id']}", headers=ct).json()["call_count"]
        == 1
    )
    r = cad_client.post(f"/api/v1/calls/{first['call_id']}/split", headers=ct)
    assert r.status_code == 409


def test_repeat_prank_caller_is_flagged(cad_client: TestClient) -> None:
    ct = login(cad_client, "calltaker")
    gul = _points(cad_client, ct)["PS Gulbahar"]
    flags = [
        _call(cad_client, ct, gul["lon"], gul["lat"], "prank", caller_number="03451234567")[
            "repeat_prank_caller"
        ]
        for _ in range(3)
    ]
    assert flags == [False, False, True]
    other = _call(cad_client, ct, gul["lon"], gul["lat"], "prank", caller_number="03000000001")
    assert other["repeat_prank_caller"] is False


def test_transfer_between_stations_and_to_an_agency(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    ct, disp = login(cad_client, "calltaker"), login(cad_client, "dispatcher")
    pts = _points(cad_client, ct)
    gul = pts["PS Gulbahar"]
    dest = next(v for n, v in pts.items() if n != "PS Gulbahar")
    iid = _call(cad_client, ct, gul["lon"], gul["lat"])["incident_id"]
    sub = cad_runtime.bus.subscribe("incidents.updated")
    r = cad_client.post(
        f"/api/v1/incidents/{iid}/transfer",
        headers=disp,
        json={"station_id": dest["id"], "reason": "address is across the road"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["station_id"] == dest["id"] and r.json()["status"] == "routed"
    events = [m.data for m in sub.fetch(timeout=1) if m.data["incident_id"] == iid]
    assert {e["station_id"] for e in events} == {gul["id"], dest["id"]}  # both sides see it
    sho = login(cad_client, "sho.gulbahar")
    assert cad_client.get(f"/api/v1/incidents/{iid}", headers=sho).status_code == 403
    r = cad_client.post(
        f"/api/v1/incidents/{iid}/transfer",
        headers=disp,
        json={"agency_code": "R1122", "reason": "injured, ambulance needed"},
    )
    assert r.status_code == 200 and r.json()["status"] == "transferred"
    assert r.json()["transferred_to"] == "Rescue 1122"
    r = cad_client.post(
        f"/api/v1/incidents/{iid}/transfer",
        headers=disp,
        json={"agency_code": "NOPE", "reason": "xxx"},
    )
    assert r.status_code == 422 and "R1122" in r.json()["message"]


def test_merge_moves_calls(cad_client: TestClient) -> None:
    ct, disp = login(cad_client, "calltaker"), login(cad_client, "dispatcher")
    gul = _points(cad_client, ct)["PS Gulbahar"]
    a = _call(cad_client, ct, gul["lon"], gul["lat"], "fire")["incident_id"]
    b = _call(cad_client, ct, gul["lon"] + 0.02, gul["lat"], "fire")["incident_id"]
    r = cad_client.post(f"/api/v1/incidents/{b}/merge", headers=disp, json={"into_incident_id": a})
    assert r.status_code == 200 and r.json()["status"] == "merged"
    assert cad_client.get(f"/api/v1/incidents/{a}", headers=disp).json()["call_count"] == 2
    r = cad_client.post(f"/api/v1/incidents/{a}/merge", headers=disp, json={"into_incident_id": a})
    assert r.status_code == 422
