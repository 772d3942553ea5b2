"""The dispatch board in a real browser against a real `safecity demo` server: a call
reaches the queue live, the dispatcher acknowledges it and sends the recommended unit, a
response-time alert shows up and is acknowledged, district KPIs and the response-time
report (chart and CSV)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import DemoServer, api, log_in, record_hosts, screenshot, unit_by_callsign

pytestmark = pytest.mark.browser

#: The `demo_server` fixture (tests/browser/conftest.py).


def _call(
    server: DemoServer, token: str, *, lat: float, lon: float, category: str
) -> dict[str, Any]:
    body: dict[str, Any] = api(
        server,
        "POST",
        "/api/v1/calls",
        token,
        {
            "caller_number": "03001234567",
            "lat": lat,
            "lon": lon,
            "category": category,
            "description": f"dispatch board test: {category}",
            "link_duplicates": False,
        },
    )
    return body


def _open_board(page: Any, server: DemoServer, username: str) -> None:
    log_in(page, server, username, "/dispatch")  # the login sends back to the board
    try:
        page.wait_for_selector("#board-map[data-ready=true]", state="attached")
    except Exception as exc:  # playwright's TimeoutError: show why the server failed
        raise AssertionError(
            f"the dispatch board did not load ({exc}); server log:\n{server.log_tail()}"
        ) from None


def _incident(**changes: Any) -> Any:
    from safecity.incidents.schemas import IncidentOut

    t0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    row: dict[str, Any] = {
        "id": 7,
        "source": "call",
        "category": "robbery",
        "priority": 1,
        "status": "routed",
        "caller_number": "0300",
        "caller_name": None,
        "description": "",
        "address": None,
        "lon": 71.5,
        "lat": 34.0,
        "station_id": 1,
        "tehsil_id": 2,
        "district_id": 3,
        "province_id": 4,
        "area_type": "urban",
        "inside_jurisdiction": True,
        "call_count": 1,
        "disposition": None,
        "merged_into_id": None,
        "transferred_to": None,
        "received_at": t0,
        "routed_at": t0,
        "acknowledged_at": None,
        "dispatched_at": None,
        "en_route_at": None,
        "on_scene_at": None,
        "resolved_at": None,
        "closed_at": None,
        "updated_at": t0,
    }
    row.update(changes)
    return IncidentOut.model_validate(row)


def test_next_target_follows_the_incident() -> None:
    """The queue's timer: the first milestone not reached, amber under half, red when late."""
    from safecity.console.dispatch_ui import duration, next_target, queue_order, sla_state
    from safecity.incidents.schemas import ResponseTargetOut

    target = ResponseTargetOut(
        priority=1,
        area_type="urban",
        acknowledge_s=60,
        dispatch_s=180,
        arrive_s=600,
        unattended_s=900,
    )
    targets = {(1, "urban"): target}
    inc = _incident()
    t0 = inc.received_at
    nt = next_target(inc, targets)
    assert nt is not None and nt.label == "acknowledge" and nt.due == t0 + timedelta(seconds=60)
    assert sla_state(nt, t0 + timedelta(seconds=29)) == "ok"
    assert sla_state(nt, t0 + timedelta(seconds=31)) == "amber"
    assert sla_state(nt, t0 + timedelta(seconds=60)) == "red"
    acked = _incident(status="acknowledged", acknowledged_at=t0 + timedelta(seconds=5))
    nt = next_target(acked, targets)
    assert nt is not None and nt.label == "dispatch"
    sent = _incident(status="dispatched", dispatched_at=t0 + timedelta(seconds=50))
    nt = next_target(sent, targets)
    assert nt is not None and nt.label == "arrive" and nt.due == t0 + timedelta(seconds=600)
    there = _incident(status="on_scene", dispatched_at=t0, on_scene_at=t0)
    assert next_target(there, targets) is None
    assert sla_state(None, t0) == "none"
    # A rural incident without a rural target is timed by the urban one.
    assert next_target(_incident(area_type="rural"), targets) is not None
    assert next_target(_incident(status="resolved"), targets) is None

    old_p2 = _incident(id=1, priority=2)
    new_p1 = _incident(id=2, received_at=t0 + timedelta(minutes=5))
    old_p1 = _incident(id=3, received_at=t0 - timedelta(minutes=5))
    assert [i.incident_id for i in queue_order([old_p2, new_p1, old_p1])] == [3, 2, 1]
    assert duration(None) == "—" and duration(65) == "1:05" and duration(3725) == "1:02:05"


def test_call_reaches_the_queue_and_is_dispatched(page: Any, demo_server: DemoServer) -> None:
    outside = record_hosts(page)
    admin = demo_server.token("admin")
    unit = unit_by_callsign(demo_server, admin, "PSR-1")
    # The map's link leads to the board.
    page.goto(f"{demo_server.base_url}/")
    page.wait_for_url(f"{demo_server.base_url}/login")
    page.fill("#login-username", "dispatcher")
    page.fill("#login-password", demo_server.password)
    page.click("#login-submit")
    page.wait_for_url(f"{demo_server.base_url}/")
    page.click("#nav-dispatch")
    page.wait_for_url(f"{demo_server.base_url}/dispatch")
    page.wait_for_selector("#board-map[data-ready=true]", state="attached")
    assert page.inner_text("#current-user") == "dispatcher"
    page.evaluate("window.__noReload = true")

    # A less urgent call first, so the queue has an order to keep.
    other = unit_by_callsign(demo_server, admin, "PSR-5")
    later = _call(demo_server, admin, lat=other["lat"], lon=other["lon"], category="suspicious")
    accepted = _call(demo_server, admin, lat=unit["lat"], lon=unit["lon"], category="robbery")
    posted = time.monotonic()
    incident_id = accepted["incident_id"]
    row = f'#dispatch-queue tr[data-incident-id="{incident_id}"]'
    page.wait_for_selector(row, timeout=3_000)
    took = time.monotonic() - posted
    assert took < 3.0, f"the call took {took:.1f} s to reach the queue"
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"
    text = page.inner_text(row)
    assert "Robbery" in text and "P1" in text and "Routed" in text
    assert page.get_attribute(row, "data-target") == "acknowledge"
    assert page.get_attribute(row, "data-sla") == "ok"
    # The timers tick in the browser.
    page.wait_for_function(
        f"document.querySelector('{row} .sc-age').textContent.match(/^\\d+:\\d\\d$/)",
        timeout=3_000,
    )
    assert re.match(r"^\d+:\d\d$", page.inner_text(f"{row} .sc-left"))
    # Priority first: the P1 robbery is above the later, less urgent suspicious-person call.
    page.wait_for_selector(f'#dispatch-queue tr[data-incident-id="{later["incident_id"]}"]')
    order = page.eval_on_selector_all(
        "#dispatch-queue tr.sc-q-row", "rows => rows.map(r => r.dataset.incidentId)"
    )
    assert order.index(str(incident_id)) < order.index(str(later["incident_id"]))
    priorities = page.eval_on_selector_all(
        "#dispatch-queue tr.sc-q-row", "rows => rows.map(r => Number(r.dataset.priority))"
    )
    assert priorities == sorted(priorities)

    # Select it: the detail shows its timeline and the recommended units.
    page.click(row)
    detail = f'#incident-detail[data-incident-id="{incident_id}"]'
    page.wait_for_selector(detail)
    assert page.locator("#detail-timeline [data-kind=routed]").count() == 1
    page.wait_for_selector("#board-map path.sc-selected-incident", state="attached")
    first = page.locator("#recommendations tbody tr").first
    assert first.get_attribute("data-unit-id") == str(unit["id"])  # it stands on the spot

    page.click("#incident-ack")
    page.wait_for_selector(f"{row}[data-status=acknowledged]", timeout=5_000)
    assert page.get_attribute(row, "data-target") == "dispatch"
    page.wait_for_selector('#detail-status[data-status="acknowledged"]')

    page.click(f"#dispatch-{unit['id']}")
    page.wait_for_selector(f"{row}[data-status=dispatched]", timeout=5_000)
    page.wait_for_selector('#detail-status[data-status="dispatched"]')
    page.wait_for_selector(f'#assignments tr[data-unit-id="{unit["id"]}"]')
    page.wait_for_selector("#detail-timeline [data-kind=unit_dispatched]")
    assert page.get_attribute(row, "data-target") == "arrive"
    # The unit is busy now: it is no longer offered.
    assert page.locator(f"#dispatch-{unit['id']}").count() == 0
    inc = demo_server.get(f"/api/v1/incidents/{incident_id}", admin)
    assert inc["status"] == "dispatched" and inc["acknowledged_at"] is not None
    assignments = demo_server.get(f"/api/v1/incidents/{incident_id}/assignments", admin)
    assert [a["unit_id"] for a in assignments] == [unit["id"]]
    assert assignments[0]["assigned_by"] == "dispatcher"

    page.wait_for_timeout(1_200)  # let the map follow the unit's new status
    screenshot(page, "dispatch-board.png")
    assert page.evaluate("window.__noReload === true")
    assert outside == [], f"the board requested hosts outside this machine: {outside}"


def test_cancel_leaves_the_queue(page: Any, demo_server: DemoServer) -> None:
    admin = demo_server.token("admin")
    unit = unit_by_callsign(demo_server, admin, "PSR-10")
    _open_board(page, demo_server, "dispatcher")
    accepted = _call(demo_server, admin, lat=unit["lat"], lon=unit["lon"], category="vehicle_theft")
    row = f'#dispatch-queue tr[data-incident-id="{accepted["incident_id"]}"]'
    page.wait_for_selector(row, timeout=3_000)
    page.click(row)
    page.wait_for_selector(f'#incident-detail[data-incident-id="{accepted["incident_id"]}"]')
    page.click("#incident-cancel")
    page.fill("#cancel-reason", "caller rang back: all is well")
    page.click("#cancel-confirm")
    page.wait_for_selector(row, state="detached", timeout=5_000)
    page.wait_for_selector('#detail-status[data-status="cancelled"]')
    inc = demo_server.get(f"/api/v1/incidents/{accepted['incident_id']}", admin)
    assert inc["status"] == "cancelled"


def test_transfer_to_another_agency(page: Any, demo_server: DemoServer) -> None:
    admin = demo_server.token("admin")
    unit = unit_by_callsign(demo_server, admin, "PSR-11")
    _open_board(page, demo_server, "dispatcher")
    accepted = _call(demo_server, admin, lat=unit["lat"], lon=unit["lon"], category="suspicious")
    row = f'#dispatch-queue tr[data-incident-id="{accepted["incident_id"]}"]'
    page.wait_for_selector(row, timeout=3_000)
    page.click(row)
    page.wait_for_selector(f'#incident-detail[data-incident-id="{accepted["incident_id"]}"]')
    page.click("#incident-transfer")
    page.locator("#transfer-kind").get_by_text("Another agency").click()
    page.click("#transfer-agency")
    page.get_by_role("option", name="Rescue 1122").click()
    page.fill("#transfer-reason", "injured person: ambulance needed")
    page.click("#transfer-confirm")
    page.wait_for_selector(row, state="detached", timeout=5_000)
    page.wait_for_selector('#detail-status[data-status="transferred"]')
    inc = demo_server.get(f"/api/v1/incidents/{accepted['incident_id']}", admin)
    assert inc["status"] == "transferred" and inc["transferred_to"] == "Rescue 1122"


def test_analyst_cannot_dispatch(page: Any, demo_server: DemoServer) -> None:
    admin = demo_server.token("admin")
    unit = unit_by_callsign(demo_server, admin, "PSR-2")
    _open_board(page, demo_server, "analyst")
    accepted = _call(demo_server, admin, lat=unit["lat"], lon=unit["lon"], category="vehicle_theft")
    row = f'#dispatch-queue tr[data-incident-id="{accepted["incident_id"]}"]'
    page.wait_for_selector(row, timeout=3_000)
    page.click(row)
    page.wait_for_selector("#recommendations")
    assert page.locator("#recommendations button").count() == 0
    assert page.locator("#incident-ack, #incident-cancel, #incident-transfer").count() == 0


def test_kpis_and_response_time_report(page: Any, demo_server: DemoServer) -> None:
    admin = demo_server.token("admin")
    unit = unit_by_callsign(demo_server, admin, "PSR-1")
    _call(demo_server, admin, lat=unit["lat"], lon=unit["lon"], category="assault")
    _open_board(page, demo_server, "admin")

    page.click("#tab-kpis")
    page.wait_for_selector("#kpi-cards .sc-kpi", timeout=5_000)
    kpis = demo_server.get("/api/v1/kpis", admin)
    card = page.locator(f"#kpi-{kpis[0]['district_id']}")
    assert card.locator("[data-kpi=calls]").inner_text() == str(kpis[0]["calls_today"])
    assert card.locator("[data-kpi=incidents]").inner_text() == str(kpis[0]["incidents_today"])
    screenshot(page, "dispatch-kpis.png")

    page.click("#tab-reports")
    page.wait_for_selector("#report-chart canvas", timeout=10_000)
    assert page.locator("#report-table tbody tr").count() >= 1
    assert "incidents" in page.inner_text("#report-summary")
    page.wait_for_timeout(500)
    screenshot(page, "dispatch-report.png")
    with page.expect_download() as info:
        page.click("#report-csv")
    download = info.value
    assert download.suggested_filename.startswith("response-times_")
    csv_text = Path(download.path()).read_text()
    header, *lines = csv_text.strip().splitlines()
    assert header.startswith("group_id,group_name,incidents")
    assert lines, "the report has no rows"


def test_response_alert_is_shown_and_acknowledged(page: Any, demo_server: DemoServer) -> None:
    """Last in this module: it shortens the P1 targets to 10 s (restored afterwards)."""
    admin = demo_server.token("admin")
    before = demo_server.get("/api/v1/response-targets", admin)
    short = {"acknowledge_s": 10, "dispatch_s": 10, "arrive_s": 10, "unattended_s": 10}
    try:
        for area in ("urban", "rural"):
            api(demo_server, "PUT", f"/api/v1/response-targets/1/{area}", admin, short)
        _open_board(page, demo_server, "dispatcher")
        unit = unit_by_callsign(demo_server, admin, "PSR-3")
        accepted = _call(demo_server, admin, lat=unit["lat"], lon=unit["lon"], category="robbery")
        incident_id = accepted["incident_id"]
        row = f'#dispatch-queue tr[data-incident-id="{incident_id}"]'
        page.wait_for_selector(row, timeout=3_000)
        page.wait_for_selector(f"{row}[data-sla=amber]", timeout=8_000)
        page.wait_for_selector(f"{row}[data-sla=red]", timeout=8_000)
        page.wait_for_function(
            f"document.querySelector('{row} .sc-left').textContent.endsWith('late')"
        )

        card = f'#alert-list [data-incident-id="{incident_id}"][data-level="1"]'
        page.wait_for_selector(card, timeout=20_000)
        alert_id = page.get_attribute(card, "data-alert-id")
        assert "not acknowledged" in page.inner_text(card)
        page.wait_for_function(
            f"document.querySelector('{row} .sc-alert-cell').textContent.startsWith('L')"
        )
        page.wait_for_timeout(300)
        screenshot(page, "dispatch-alerts.png")
        page.click(f"#ack-alert-{alert_id}")
        page.wait_for_selector(f'#alert-list [data-alert-id="{alert_id}"]', state="detached")
        alerts = demo_server.get("/api/v1/alerts?open_only=false", admin)
        mine = next(a for a in alerts if str(a["id"]) == alert_id)
        assert mine["acknowledged_by"] == "dispatcher" and mine["level"] == 1
    finally:
        for t in before:
            if t["priority"] == 1:
                body = {k: t[k] for k in short}
                api(demo_server, "PUT", f"/api/v1/response-targets/1/{t['area_type']}", admin, body)


def test_server_logged_no_errors(demo_server: DemoServer) -> None:
    """Last: nothing the board did above made the server log a traceback."""
    log = demo_server.log_tail(100_000)
    assert "Traceback" not in log, log[-5000:]
