"""The operators' console in a real browser against a real `safecity demo` server:
login, the jurisdiction map, live incidents without reload, jurisdiction scoping, and no
request leaving the machine (the command centre is air-gapped)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from browser_helpers import screenshot
from shapely.geometry import shape

pytestmark = pytest.mark.browser

#: The `demo_server` fixture (tests/browser/conftest.py): base_url, password, token(),
#: get(), place_call().
DemoServer = Any

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _record_hosts(page: Any) -> list[str]:
    """Every non-local URL the page requests (data: and blob: URLs have no host)."""
    outside: list[str] = []

    def on_request(request: Any) -> None:
        url = urlparse(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOCAL_HOSTS:
            outside.append(request.url)

    page.on("request", on_request)
    return outside


def _log_in(page: Any, server: DemoServer, username: str, password: str | None = None) -> None:
    page.goto(f"{server.base_url}/")
    page.wait_for_url(f"{server.base_url}/login")
    page.fill("#login-username", username)
    page.fill("#login-password", password or server.password)
    page.click("#login-submit")


def _wait_for_map(page: Any, server: DemoServer) -> None:
    try:
        page.wait_for_selector("#map[data-ready=true]", state="attached")
    except Exception as exc:  # playwright's TimeoutError: show why the server failed
        raise AssertionError(
            f"the command centre map did not load ({exc}); server log:\n{server.log_tail()}"
        ) from None


def _inside_point(feature: dict[str, Any]) -> tuple[float, float]:
    """(lat, lon) of a point surely inside a station's polygon."""
    p = shape(feature["geometry"]).representative_point()
    return float(p.y), float(p.x)


def _stations(server: DemoServer) -> list[dict[str, Any]]:
    doc = server.get("/api/v1/geo/stations", server.token("admin"))
    features: list[dict[str, Any]] = doc["features"]
    return features


def test_login_map_and_live_incident(page: Any, demo_server: DemoServer) -> None:
    outside = _record_hosts(page)
    _log_in(page, demo_server, "admin")
    page.wait_for_url(f"{demo_server.base_url}/")
    _wait_for_map(page, demo_server)
    assert page.inner_text("#current-user") == "admin"
    assert "admin" in page.inner_text("#current-role").lower()

    polygons = page.locator("#map path.sc-jurisdiction").count()
    assert polygons >= 40, f"only {polygons} jurisdiction polygons drawn"
    assert page.locator("#map .leaflet-tile").count() == 0, "no basemap is configured"
    assert page.locator("#map path.sc-site").count() > 0
    assert page.locator("#map path.sc-unit").count() > 0

    # A mark that a page reload would erase.
    page.evaluate("window.__noReload = true")
    markers_before = page.locator("#map path.sc-incident").count()
    station = _stations(demo_server)[0]
    lat, lon = _inside_point(station)
    accepted = demo_server.place_call(
        demo_server.token("admin"), lat=lat, lon=lon, category="robbery"
    )
    posted = time.monotonic()
    row = f'#incident-list tr[data-incident-id="{accepted["incident_id"]}"]'
    page.wait_for_selector(row, timeout=3_000)
    took = time.monotonic() - posted
    assert took < 3.0, f"the incident took {took:.1f} s to appear"
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"
    text = page.inner_text(row)
    assert "Robbery" in text and station["properties"]["name"] in text and "P1" in text
    # Newest first.
    first = page.locator("#incident-list tbody tr").first
    assert first.get_attribute("data-incident-id") == str(accepted["incident_id"])
    page.wait_for_function(
        f"document.querySelectorAll('#map path.sc-incident').length > {markers_before}",
        timeout=3_000,
    )

    # A blank or nearly blank page compresses to a few kB; the map and the list do not.
    screenshot(page, "console.png")
    assert outside == [], f"the console requested hosts outside this machine: {outside}"


def test_wrong_password_stays_on_login(page: Any, demo_server: DemoServer) -> None:
    outside = _record_hosts(page)
    _log_in(page, demo_server, "admin", password="not-the-password")
    error = page.locator("#login-error")
    error.wait_for(state="visible", timeout=5_000)
    assert "wrong username or password" in error.inner_text().lower()
    time.sleep(0.5)
    assert urlparse(page.url).path == "/login"
    # Still not logged in: the command centre sends back to the login page.
    page.goto(f"{demo_server.base_url}/")
    page.wait_for_url(f"{demo_server.base_url}/login")
    assert outside == []


def test_logout(page: Any, demo_server: DemoServer) -> None:
    _log_in(page, demo_server, "dispatcher")
    page.wait_for_url(f"{demo_server.base_url}/")
    page.click("#logout")
    page.wait_for_url(f"{demo_server.base_url}/login")
    page.goto(f"{demo_server.base_url}/")
    page.wait_for_url(f"{demo_server.base_url}/login")


def test_sho_sees_only_his_jurisdiction(page: Any, demo_server: DemoServer) -> None:
    stations = _stations(demo_server)
    gulbahar = next(f for f in stations if f["properties"]["name"] == "PS Gulbahar")
    elsewhere = next(
        f
        for f in stations
        if f["properties"]["district_id"] != gulbahar["properties"]["district_id"]
    )
    outside = _record_hosts(page)
    _log_in(page, demo_server, "sho.gulbahar")
    page.wait_for_url(f"{demo_server.base_url}/")
    _wait_for_map(page, demo_server)
    assert page.locator("#map path.sc-mine").count() == 1  # his station is highlighted

    admin = demo_server.token("admin")
    lat, lon = _inside_point(elsewhere)
    foreign = demo_server.place_call(admin, lat=lat, lon=lon, category="robbery")
    assert foreign["station_id"] == elsewhere["id"]
    lat, lon = _inside_point(gulbahar)
    own = demo_server.place_call(admin, lat=lat, lon=lon, category="snatching")
    assert own["station_id"] == gulbahar["id"]

    # Events arrive in order: once his own is shown, the foreign one has been dropped.
    page.wait_for_selector(
        f'#incident-list tr[data-incident-id="{own["incident_id"]}"]', timeout=3_000
    )
    time.sleep(0.5)
    assert page.locator(f'tr[data-incident-id="{foreign["incident_id"]}"]').count() == 0
    station_ids = page.eval_on_selector_all(
        "#incident-list tbody tr", "rows => rows.map(r => r.dataset.stationId)"
    )
    assert station_ids and set(station_ids) == {str(gulbahar["id"])}

    # The list read at page load is scoped too.
    page.reload()
    _wait_for_map(page, demo_server)
    page.wait_for_selector(f'tr[data-incident-id="{own["incident_id"]}"]', timeout=5_000)
    assert page.locator(f'tr[data-incident-id="{foreign["incident_id"]}"]').count() == 0
    assert outside == []


def test_api_is_not_shadowed_by_the_console(demo_server: DemoServer) -> None:
    base = demo_server.base_url
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "SafeCity"
    assert "swagger" in httpx.get(f"{base}/docs").text.lower()
    r = httpx.get(f"{base}/api/v1/no-such-route")
    assert r.status_code == 404
    assert r.json()["error"] == "http_error"
    r = httpx.get(f"{base}/api/v1/calls")  # POST only
    assert r.status_code == 405
    assert r.json()["error"] == "http_error"
    r = httpx.get(f"{base}/api/v1/incidents")
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    # The console itself answers HTML; unknown console paths are not API errors.
    r = httpx.get(f"{base}/", follow_redirects=False)
    assert r.status_code in (302, 303, 307) and r.headers["location"].endswith("/login")
