"""The phone pages in a real (phone-sized, touch) browser against a real `safecity demo`
server: the field officer's app follows a job from dispatch to clearing while the board
watches, and the panic page raises a P1 incident with the phone's position."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import DemoServer, api, record_hosts, screenshot, unit_by_callsign
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = pytest.mark.browser

#: The `demo_server` fixture (tests/browser/conftest.py).
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


def _crew_login(server: DemoServer, token: str, username: str, unit: dict[str, Any]) -> None:
    """Make sure an officer of `unit` logs in as `username` (the registry's link between a
    login and a unit's crew); the demo loader may already have made it."""
    officers: list[dict[str, Any]] = api(server, "GET", "/api/v1/officers", token)
    if any(o["username"] == username and o["unit_id"] == unit["id"] for o in officers):
        return
    api(
        server,
        "POST",
        "/api/v1/officers",
        token,
        {
            "code": f"T-{username}"[:32],
            "name": "Test Crew Officer",
            "rank": "ASI",
            "station_id": unit["home_station_id"],
            "unit_code": unit["code"],
            "username": username,
        },
    )


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A new phone-sized touch context factory; every context is closed afterwards."""
    contexts: list[Any] = []

    def make(**kwargs: Any) -> Any:
        context = browser.new_context(**PHONE, **kwargs)
        contexts.append(context)
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        return pg

    try:
        yield make
    finally:
        for c in contexts:
            c.close()


def test_phone_positions_are_checked() -> None:
    from safecity.console.mobile_ui import distance_bearing, parse_fix

    fix = parse_fix({"lat": 34.0, "lon": 71.5, "accuracy": 12.5, "speed": 10})
    assert (fix.lat, fix.lon, fix.accuracy_m, fix.error) == (34.0, 71.5, 12.5, None)
    assert fix.speed_kmh == 36.0
    assert parse_fix({"lat": 34.0, "lon": 71.5, "speed": None}).speed_kmh is None
    assert parse_fix({"lat": 34.0, "lon": 71.5, "accuracy": -1}).accuracy_m is None
    assert parse_fix({"error": "User denied Geolocation"}).error == "User denied Geolocation"
    assert parse_fix(None).error and parse_fix("x").error
    assert parse_fix({"lat": 95, "lon": 71.5}).error
    assert parse_fix({"lat": "abc", "lon": 71.5}).error
    metres, direction = distance_bearing(34.0, 71.5, 34.01, 71.5)
    assert 1100 < metres < 1125 and direction == "N"
    assert distance_bearing(34.0, 71.5, 33.99, 71.49)[1] == "SW"


def _field_login(page: Any, server: DemoServer, username: str) -> None:
    page.goto(f"{server.base_url}/m/field")
    page.fill("#field-username", username)
    page.fill("#field-password", server.password)
    page.tap("#field-login")


def test_field_officer_follows_a_job(page: Any, phone: Any, demo_server: DemoServer) -> None:
    admin = demo_server.token("admin")
    unit = unit_by_callsign(demo_server, admin, "PSR-1")
    _crew_login(demo_server, admin, "officer.psr1", unit)
    here = {"latitude": unit["lat"], "longitude": unit["lon"], "accuracy": 12}
    field = phone(geolocation=here, permissions=["geolocation"])
    outside = record_hosts(field)
    _field_login(field, demo_server, "officer.psr1")
    field.wait_for_selector("#field-no-job")
    assert field.inner_text("#field-unit") == "PSR-1"
    assert field.get_attribute("#field-unit-status", "data-status") == "available"
    field.evaluate("window.__noReload = true")

    # The dispatcher's board, beside the phone.
    board = page
    board.goto(f"{demo_server.base_url}/dispatch")
    board.fill("#login-username", "dispatcher")
    board.fill("#login-password", demo_server.password)
    board.click("#login-submit")
    board.wait_for_url(f"{demo_server.base_url}/dispatch")
    board.wait_for_selector("#board-map[data-ready=true]", state="attached")

    accepted = api(
        demo_server,
        "POST",
        "/api/v1/calls",
        admin,
        {
            "caller_number": "03009876543",
            "caller_name": "Shopkeeper",
            "lat": unit["lat"] + 0.002,
            "lon": unit["lon"] + 0.001,
            "category": "snatching",
            "description": "mobile phone snatched near the bus stop",
            "address": "Qissa Khwani Bazaar",
            "link_duplicates": False,
        },
    )
    incident_id = accepted["incident_id"]
    row = f'#dispatch-queue tr[data-incident-id="{incident_id}"]'
    board.wait_for_selector(row, timeout=3_000)
    board.click(row)
    board.wait_for_selector(f"#dispatch-{unit['id']}")
    board.click(f"#dispatch-{unit['id']}")
    board.wait_for_selector(f"{row}[data-status=dispatched]", timeout=5_000)

    # The job reaches the phone without a reload.
    job = f'#field-job[data-incident-id="{incident_id}"]'
    sent = time.monotonic()
    field.wait_for_selector(job, timeout=5_000)
    assert time.monotonic() - sent < 5.0
    assert field.evaluate("window.__noReload === true"), "the field page was reloaded"
    text = field.inner_text(job)
    assert "Snatching" in text and "Qissa Khwani Bazaar" in text and "bus stop" in text
    assert field.get_attribute("#field-job-status", "data-status") == "assigned"
    assert field.locator("#field-timeline").inner_text().count("dispatched") >= 1
    assert "m " in field.inner_text("#field-distance")  # e.g. "240 m N"
    # Big touch targets.
    box = field.locator("#step-en_route").bounding_box()
    assert box["height"] >= 56 and box["width"] >= 140
    screenshot(field, "field.png", full_page=True, min_bytes=20_000)

    _tap_until(
        field,
        "#step-en_route",
        lambda: field.wait_for_selector('#field-job-status[data-status="en_route"]', timeout=3_000),
    )
    board.wait_for_selector(f"{row}[data-status=en_route]", timeout=5_000)
    assert field.locator("#step-en_route").is_disabled()

    _tap_until(
        field,
        "#step-on_scene",
        lambda: field.wait_for_selector('#field-job-status[data-status="on_scene"]', timeout=3_000),
    )
    board.wait_for_selector(f"{row}[data-status=on_scene]", timeout=5_000)

    # Clearing asks for a disposition first.
    _tap_until(
        field,
        "#step-cleared",
        lambda: field.wait_for_selector("text=Choose a disposition first.", timeout=3_000),
    )
    assert field.locator(job).count() == 1
    field.locator("#field-disposition").get_by_text("Arrested").tap()
    chosen = '#field-disposition button[aria-pressed="true"]'
    field.wait_for_selector(chosen, timeout=3_000)
    # A second caller about the same event: the page re-renders on it, and the officer's
    # choice must still be there (a re-render had dropped it).
    api(
        demo_server,
        "POST",
        "/api/v1/calls",
        admin,
        {
            "caller_number": "03001112223",
            "lat": unit["lat"] + 0.002,
            "lon": unit["lon"] + 0.001,
            "category": "snatching",
            "description": "a second caller about the snatching",
        },
    )
    field.wait_for_function(
        "document.querySelector('#field-timeline').innerText.includes('03001112223')",
        timeout=5_000,
    )
    assert "Arrested" in field.inner_text(chosen)
    _tap_until(
        field, "#step-cleared", lambda: field.wait_for_selector("#field-no-job", timeout=3_000)
    )
    board.wait_for_selector(row, state="detached", timeout=5_000)  # resolved: off the queue
    field.wait_for_selector("#field-no-job", timeout=5_000)
    inc = demo_server.get(f"/api/v1/incidents/{incident_id}", admin)
    assert inc["status"] == "resolved" and inc["disposition"] == "arrested"
    assert inc["en_route_at"] and inc["on_scene_at"] and inc["resolved_at"]
    assert unit_by_callsign(demo_server, admin, "PSR-1")["status"] == "available"

    # The phone's position goes to the unit (the board's map and recommendations use it).
    field.context.set_geolocation({"latitude": unit["lat"] + 0.01, "longitude": unit["lon"]})
    field.tap("#send-position")
    field.wait_for_function(
        "document.querySelector('#position-status').textContent.includes('sent')"
    )
    moved = unit_by_callsign(demo_server, admin, "PSR-1")
    assert abs(moved["lat"] - (unit["lat"] + 0.01)) < 1e-6
    assert outside == [], f"the field app requested hosts outside this machine: {outside}"


def test_field_login_without_a_unit(phone: Any, demo_server: DemoServer) -> None:
    field = phone()
    _field_login(field, demo_server, "dispatcher")
    field.wait_for_selector("#field-no-unit")
    assert "not linked" in field.inner_text("#field-no-unit")


def test_field_login_refused(phone: Any, demo_server: DemoServer) -> None:
    field = phone()
    field.goto(f"{demo_server.base_url}/m/field")
    field.fill("#field-username", "officer.psr1")
    field.fill("#field-password", "not-the-password")
    field.tap("#field-login")
    field.wait_for_function(
        "document.querySelector('#field-login-error').textContent.includes('wrong')"
    )


def _register_device(
    server: DemoServer, token: str, *, code: str, lat: float, lon: float
) -> dict[str, Any]:
    body: dict[str, Any] = api(
        server,
        "POST",
        "/api/v1/panic-devices",
        token,
        {
            "code": code,
            "name": "Embassy of Testland",
            "kind": "diplomatic_mission",
            "phone": "+92 91 5550100",
            "lat": lat,
            "lon": lon,
        },
    )
    return body


def test_panic_with_the_phones_position(phone: Any, demo_server: DemoServer) -> None:
    admin = demo_server.token("admin")
    registered = unit_by_callsign(demo_server, admin, "PSR-5")  # the mission's registered address
    there = unit_by_callsign(demo_server, admin, "PSR-10")  # where the phone is now
    device = _register_device(
        demo_server, admin, code="PD-TEST-GPS", lat=registered["lat"], lon=registered["lon"]
    )
    gps = {"latitude": there["lat"] + 0.0005, "longitude": there["lon"], "accuracy": 20}
    pg = phone(geolocation=gps, permissions=["geolocation"])
    outside = record_hosts(pg)
    pg.goto(f"{demo_server.base_url}/m/panic?key={device['device_key']}")
    pg.wait_for_function(
        "document.querySelector('#panic-device').textContent.includes('Embassy of Testland')"
    )
    assert "key=" not in pg.url, "the device key must not stay in the address bar"
    box = pg.locator("#panic-button").bounding_box()
    assert box["width"] >= 200 and box["height"] >= 200

    pg.tap("#panic-button")
    pg.wait_for_selector("#panic-ack", state="visible", timeout=15_000)
    assert "Help is coming" in pg.inner_text("#panic-ack")
    incident_id = int(pg.inner_text("#panic-incident").split()[0].lstrip("#"))
    inc = demo_server.get(f"/api/v1/incidents/{incident_id}", admin)
    assert inc["priority"] == 1 and inc["category"] == "panic" and inc["source"] == "panic"
    assert abs(inc["lat"] - gps["latitude"]) < 1e-6 and abs(inc["lon"] - gps["longitude"]) < 1e-6
    stations = demo_server.get("/api/v1/geo/stations", admin)["features"]
    station = next(f for f in stations if f["id"] == inc["station_id"])
    assert pg.inner_text("#panic-station") == station["properties"]["name"]
    assert "min away" in pg.inner_text("#panic-eta")
    assert "phone's location" in pg.inner_text("#panic-status")
    screenshot(pg, "panic.png", full_page=True, min_bytes=20_000)

    # The key stays on the phone: after a reload the button is armed at once.
    pg.reload()
    pg.wait_for_function(
        "document.querySelector('#panic-device').textContent.includes('Embassy of Testland')"
    )
    assert pg.locator("#panic-button").is_enabled()
    assert pg.locator("#panic-setup").is_hidden()
    assert outside == [], f"the panic page requested hosts outside this machine: {outside}"


def _tap_until(page: Any, selector: str, arrived: Any, tries: int = 5) -> None:
    """Tap, and tap again if nothing came of it: the field page re-renders its buttons on
    every live event, and a tap can land on a button being replaced."""
    for attempt in range(tries):
        page.tap(selector)
        try:
            arrived()
            return
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise


def test_panic_without_location_uses_the_registered_address(
    phone: Any, demo_server: DemoServer
) -> None:
    admin = demo_server.token("admin")
    registered = unit_by_callsign(demo_server, admin, "PSR-11")
    device = _register_device(
        demo_server, admin, code="PD-TEST-NOGPS", lat=registered["lat"], lon=registered["lon"]
    )
    pg = phone()  # location permission not granted
    pg.goto(f"{demo_server.base_url}/m/panic")
    pg.wait_for_selector("#panic-setup", state="visible")
    assert pg.locator("#panic-button").is_disabled()
    pg.fill("#panic-key", "pd_nonsense_key")
    pg.tap("#panic-key-save")
    pg.wait_for_function(
        "document.querySelector('#panic-key-error').textContent.includes('nknown')"
    )
    pg.fill("#panic-key", device["device_key"])
    pg.tap("#panic-key-save")
    pg.wait_for_selector("#panic-setup", state="hidden")
    pg.tap("#panic-button")
    pg.wait_for_selector("#panic-ack", state="visible", timeout=20_000)
    assert "registered address" in pg.inner_text("#panic-status")
    incident_id = int(pg.inner_text("#panic-incident").split()[0].lstrip("#"))
    inc = demo_server.get(f"/api/v1/incidents/{incident_id}", admin)
    assert abs(inc["lat"] - registered["lat"]) < 1e-6
    assert abs(inc["lon"] - registered["lon"]) < 1e-6


def test_server_logged_no_errors(demo_server: DemoServer) -> None:
    """Last: nothing the phone pages did above made the server log a traceback."""
    log = demo_server.log_tail(100_000)
    assert "Traceback" not in log, log[-5000:]
