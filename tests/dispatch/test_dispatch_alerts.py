"""Response-time monitoring: each of the four levels fires once, at the right time, is
acknowledgeable, and timers survive a restart (none fires twice)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from conftest import login
from safecity.core.clock import ManualClock
from safecity.core.config import load_settings
from safecity.core.runtime import Runtime, build_runtime
from safecity.dispatch import service


def _gulbahar_call(client: TestClient, category: str = "robbery") -> dict[str, Any]:
    import shapely

    ct = login(client, "calltaker")
    fc = client.get("/api/v1/geo/stations", headers=ct).json()
    f = next(f for f in fc["features"] if f["properties"]["name"] == "PS Gulbahar")
    p = shapely.geometry.shape(f["geometry"]).representative_point()
    r = client.post(
        "/api/v1/calls",
        headers=ct,
        json={"caller_number": "03001234567", "lat": p.y, "lon": p.x, "category": category},
    )
    assert r.status_code == 201
    return dict(r.json())


def _levels(rt: Runtime) -> list[int]:
    with rt.sessions() as s:
        return [a.level for a in service.check_response_times(s, now=rt.clock.now())]


def _target(client: TestClient, priority: int, area: str) -> dict[str, Any]:
    rows = client.get("/api/v1/response-targets", headers=login(client, "admin")).json()
    return next(r for r in rows if r["priority"] == priority and r["area_type"] == area)


def test_each_level_fires_once_at_the_right_time(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    clock = cad_runtime.clock
    assert isinstance(clock, ManualClock)
    inc = _gulbahar_call(cad_client, "robbery")  # P1, serious
    detail = cad_client.get(
        f"/api/v1/incidents/{inc['incident_id']}", headers=login(cad_client, "admin")
    ).json()
    t = _target(cad_client, 1, detail["area_type"])
    start = clock.now()

    def at(seconds: float) -> list[int]:
        clock._now = start + timedelta(seconds=seconds)
        return _levels(cad_runtime)

    due = sorted(
        [(t["acknowledge_s"], 1), (t["dispatch_s"], 2), (t["arrive_s"], 3), (t["unattended_s"], 4)]
    )
    for seconds, level in due:
        assert at(seconds - 1) == []  # not a second early
        assert at(seconds + 1) == [level]  # on time
        assert at(seconds + 2) == []  # and never twice
    fired = {
        a["level"]
        for a in cad_client.get("/api/v1/alerts", headers=login(cad_client, "admin")).json()
    }
    assert fired == {1, 2, 3, 4}
    assert at(t["unattended_s"] * 3) == []


def test_alerts_reach_the_right_level_and_are_acknowledged(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    clock = cad_runtime.clock
    assert isinstance(clock, ManualClock)
    inc = _gulbahar_call(cad_client, "robbery")
    clock.advance(timedelta(hours=2))
    assert sorted(_levels(cad_runtime)) == [1, 2, 3, 4]
    sho = login(cad_client, "sho.gulbahar")
    mine = cad_client.get("/api/v1/alerts", headers=sho).json()
    assert {a["incident_id"] for a in mine} == {inc["incident_id"]}
    level1 = next(a for a in mine if a["level"] == 1)
    assert level1["notify_role"] == "sho"
    r = cad_client.post(f"/api/v1/alerts/{level1['id']}/acknowledge", headers=sho)
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "sho.gulbahar"
    r = cad_client.post(f"/api/v1/alerts/{level1['id']}/acknowledge", headers=sho)
    assert r.status_code == 409
    open_now = cad_client.get("/api/v1/alerts", headers=login(cad_client, "admin")).json()
    assert {a["level"] for a in open_now} == {2, 3, 4}
    timeline = cad_client.get(f"/api/v1/incidents/{inc['incident_id']}", headers=sho).json()
    kinds = [e["kind"] for e in timeline["timeline"]]
    assert {"alert_level_1", "alert_level_4", "alert_acknowledged"} <= set(kinds)


def test_non_serious_type_never_reaches_level_4(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    _gulbahar_call(cad_client, "harassment")  # P2, not serious
    cad_runtime.clock.advance(timedelta(hours=5))  # type: ignore[attr-defined]
    assert sorted(_levels(cad_runtime)) == [1, 2, 3]


def test_acknowledged_and_dispatched_incident_stops_early_levels(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    inc = _gulbahar_call(cad_client, "robbery")
    iid = inc["incident_id"]
    disp = login(cad_client, "dispatcher")
    unit = cad_client.get(f"/api/v1/incidents/{iid}/recommendations", headers=disp).json()[0][
        "unit_id"
    ]
    cad_client.post(f"/api/v1/incidents/{iid}/dispatch", headers=disp, json={"unit_ids": [unit]})
    cad_client.post(f"/api/v1/units/{unit}/status", headers=disp, json={"status": "on_scene"})
    cad_runtime.clock.advance(timedelta(hours=2))  # type: ignore[attr-defined]
    assert _levels(cad_runtime) == []


def test_timers_resume_after_restart_without_firing_twice(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    clock = cad_runtime.clock
    assert isinstance(clock, ManualClock)
    _gulbahar_call(cad_client, "robbery")
    _gulbahar_call(cad_client, "fire")  # elsewhere in time: both open
    clock.advance(timedelta(minutes=2))
    before = _levels(cad_runtime)
    assert 1 in before
    # A "restart": a new runtime (engine, bus, monitor) on the same database.
    url = cad_runtime.settings.sqlalchemy_url
    settings = load_settings(mode="demo", data_dir=cad_runtime.settings.data_dir, database_url=url)
    rt2 = build_runtime(settings, clock=ManualClock(clock.now()))
    try:
        assert _levels(rt2) == []  # nothing fires twice
        rt2.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
        after = _levels(rt2)
        assert after and 1 not in after  # later levels resume from stored timestamps
        assert _levels(rt2) == []
    finally:
        rt2.close()


def test_monitor_thread_fires_alerts(cad_runtime: Runtime, cad_client: TestClient) -> None:
    from safecity.dispatch.monitor import ResponseTimeMonitor

    _gulbahar_call(cad_client, "robbery")
    cad_runtime.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    sub = cad_runtime.bus.subscribe("alerts.response")
    mon = ResponseTimeMonitor(cad_runtime, interval_s=0.05)
    mon.start()
    try:
        got = []
        while len(got) < 4 and (batch := sub.fetch(timeout=5)):
            got += [m.data["level"] for m in batch]
        assert sorted(got) == [1, 2, 3, 4]
    finally:
        mon.stop()
