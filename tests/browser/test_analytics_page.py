"""The crime-analytics page (`/analytics`) in a real browser against a real `safecity demo`
server: an imported incident history (through the `safecity import incidents` and
`safecity eval hotspots --save` commands, beside the running server) and live incidents (calls
posted to the API, copied into the `live` dataset by the server's live mirror) drawn as the
trend chart (ECharts), the Gi* hot spot and forecast layers (Leaflet) and the saved
evaluation; each user sees his own jurisdiction only; nothing is loaded from outside."""

from __future__ import annotations

import csv
import random
import re
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from browser_helpers import DemoServer, api, drawn_chart_js, log_in, record_hosts, screenshot
from shapely.geometry import shape

pytestmark = pytest.mark.browser

PKT = ZoneInfo("Asia/Karachi")
#: Weeks of imported history: the trend model needs 8 weeks before the 8 it watches.
WEEKS = 30
#: Extra incidents at Gulbahar in the last days of the history: an unusual rise.
SPIKE = 45
#: What the page asks of the trend service (analytics/ui.py `_load`, weekly).
TREND_QUERY = "group_by=all&period=week&monitor=8&show=52"

#: The chart as the browser drew it.
CHART = drawn_chart_js("analytics-chart")


# --------------------------------------------------------------------------- data


def _stations(server: DemoServer) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = api(
        server, "GET", "/api/v1/geo/stations", server.token("admin")
    )["features"]
    return features


def _centre(feature: dict[str, Any]) -> tuple[float, float]:
    """(lon, lat) surely inside a station's polygon."""
    p = shape(feature["geometry"]).representative_point()
    return float(p.x), float(p.y)


def _write_history(path: Path, stations: list[dict[str, Any]], gulbahar: dict[str, Any]) -> int:
    """A deterministic history: a cluster of incidents in each station, every week for
    WEEKS weeks up to yesterday (Pakistan time), and a rise at Gulbahar in the last days."""
    rnd = random.Random(20261123)
    yesterday = datetime.now(PKT).date() - timedelta(days=1)
    rows: list[tuple[str, float, float, str]] = []

    def add(day: date, lon: float, lat: float) -> None:
        at = f"{day} {rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}"
        rows.append(
            (
                at,
                round(lon + rnd.gauss(0, 0.0015), 6),
                round(lat + rnd.gauss(0, 0.0015), 6),
                rnd.choice(["robbery", "snatching", "burglary"]),
            )
        )

    for feature in stations:
        lon, lat = _centre(feature)
        for day in range(WEEKS * 7):
            for _ in range(rnd.choice([0, 0, 1, 1, 2])):
                add(yesterday - timedelta(days=day), lon, lat)
    lon, lat = _centre(gulbahar)
    for i in range(SPIKE):
        add(yesterday - timedelta(days=i % 4), lon, lat)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["date", "longitude", "latitude", "type"])
        writer.writerows(rows)
    return len(rows)


@pytest.fixture(scope="module")
def history(demo_server: DemoServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The `history` dataset and its saved evaluation (the commands an analyst runs beside
    the server), and live incidents at Gulbahar and in another district (calls to the API,
    mirrored by the server into the `live` dataset)."""
    stations = _stations(demo_server)
    gulbahar = next(f for f in stations if f["properties"]["name"] == "PS Gulbahar")
    district = gulbahar["properties"]["district_id"]
    near = [f for f in stations if f["properties"]["district_id"] == district and f != gulbahar]
    far = [f for f in stations if f["properties"]["district_id"] != district]
    chosen = [gulbahar, *near[:2], *far[:3]]
    csv_path = tmp_path_factory.mktemp("analytics") / "history.csv"
    rows = _write_history(csv_path, chosen, gulbahar)
    out = demo_server.cli("import", "incidents", str(csv_path), "--tz", "Asia/Karachi")
    assert f"{rows} imported" in out, out
    yesterday = datetime.now(PKT).date() - timedelta(days=1)
    demo_server.cli(
        "eval",
        "hotspots",
        "--incidents",
        str(csv_path),
        "--from",
        str(yesterday - timedelta(days=55)),
        "--to",
        str(yesterday),
        "--tz",
        "Asia/Karachi",
        "--save",
    )

    admin = demo_server.token("admin")
    live = 0
    # Gulbahar has live incidents too, so the SHO's scoped trends and maps have something
    # to compare with the analyst's.
    for feature in (gulbahar, far[0]):
        lon, lat = _centre(feature)
        for i in range(12):
            # Spread over a few hundred metres: several grid cells for the Gi* statistic.
            api(
                demo_server,
                "POST",
                "/api/v1/calls",
                admin,
                {
                    "caller_number": f"0300{i:07d}",
                    "lat": lat + 0.0012 * (i % 4),
                    "lon": lon + 0.0012 * (i // 4),
                    "category": "robbery" if i % 2 else "snatching",
                    "description": "analytics page test",
                    # Each call its own incident (not linked to the one before as a duplicate).
                    "link_duplicates": False,
                },
            )
            live += 1
    deadline = time.monotonic() + 20
    while True:  # the live mirror copies new incidents within about a second
        datasets = {d["dataset"]: d for d in api(demo_server, "GET", _DATASETS, admin)}
        if datasets.get("live", {}).get("incidents", 0) >= live:
            break
        assert time.monotonic() < deadline, f"the live mirror did not copy the calls: {datasets}"
        time.sleep(0.3)
    assert datasets["history"]["incidents"] == rows
    return {"rows": rows, "live": live, "gulbahar": gulbahar}


_DATASETS = "/api/v1/analytics/datasets"


def _analytics(server: DemoServer, token: str, what: str, query: str) -> Any:
    return api(server, "GET", f"/api/v1/analytics/{what}?{query}", token)


# --------------------------------------------------------------------------- page


def _open(page: Any, server: DemoServer, username: str) -> None:
    """Open the analytics page: the login it asks for sends the user back to it."""
    log_in(page, server, username, "/analytics")
    _wait_drawn(page, server)


def _wait_drawn(page: Any, server: DemoServer) -> None:
    try:
        page.wait_for_selector("#analytics-map[data-ready=true]", state="attached", timeout=30_000)
    except Exception as exc:  # playwright's TimeoutError: show why the server failed
        notes = page.locator(".q-notification").all_inner_texts()
        raise AssertionError(
            f"the analytics map was not drawn ({exc}); notifications {notes}; server log:\n"
            f"{server.log_tail()}"
        ) from None


def _chart(page: Any, points: int) -> dict[str, Any]:
    """The drawn chart, once its `count` series has `points` points."""
    page.wait_for_function(
        f"""async () => {{
          const c = await ({CHART})();
          return !!(c && c.series.count && c.series.count.length === {points});
        }}""",
        timeout=15_000,
    )
    chart: dict[str, Any] = page.evaluate(CHART)
    return chart


def _show_layer(page: Any, name: str) -> None:
    box = page.locator("#analytics-map .leaflet-control-layers label", has_text=name)
    box.locator("input").check()


@pytest.mark.parametrize("path", ["/analytics", "/analytics/patrol-sheet?dataset=history"])
def test_the_page_needs_a_login(demo_server: DemoServer, path: str) -> None:
    r = httpx.get(f"{demo_server.base_url}{path}", follow_redirects=False, timeout=30)
    assert r.status_code in (302, 303, 307) and r.headers["location"].endswith("/login")


def test_analyst_sees_trend_hotspots_forecast_and_evaluation(
    page: Any, demo_server: DemoServer, history: dict[str, Any]
) -> None:
    outside = record_hosts(page)
    token = demo_server.token("analyst")
    trends = _analytics(demo_server, token, "trends", f"dataset=history&{TREND_QUERY}")
    hot = _analytics(demo_server, token, "hotspots", "dataset=history")
    forecast = _analytics(demo_server, token, "forecast", "dataset=history&top_fraction=0.01")
    evaluations = api(demo_server, "GET", "/api/v1/analytics/evaluations", token)
    series = trends["series"][0]
    assert series["group"] == "all incidents"
    assert hot["features"], "the history has no Gi* hot spot: the test data is too flat"
    assert forecast["features"] and evaluations
    assert trends["alerts"], "the rise at Gulbahar raised no alert"

    _open(page, demo_server, "analyst")
    assert page.locator("#analytics-dataset").inner_text().splitlines()[-1] == "history"

    # The trend chart: the browser draws exactly the service's weekly counts and band.
    chart = _chart(page, len(series["points"]))
    assert chart["x"] == [p["start"] for p in series["points"]]
    assert chart["series"]["count"] == [p["count"] for p in series["points"]]
    assert chart["series"]["expected"] == [p["expected"] for p in series["points"]]
    assert sum(chart["series"]["count"]) > 0
    alerts_drawn = chart["series"]["alert"]
    assert len(alerts_drawn) == sum(p["alert"] for p in series["points"]) >= 1
    assert page.inner_text(".sca-title >> nth=0") == "all incidents: incidents per week"
    assert page.locator("#analytics-chart canvas").count() >= 1
    # ... and the alert list.
    rows = page.locator("#analytics-alerts table tr")
    assert rows.count() == 1 + min(20, len(trends["alerts"]))
    assert "all incidents" in rows.nth(1).inner_text()

    # Hot spots are shown at once, one polygon per Gi* cell; the forecast on demand.
    assert page.locator("#analytics-map path.sca-hot").count() == len(hot["features"])
    labels = page.locator("#analytics-map .leaflet-control-layers label").all_inner_texts()
    assert [x.strip() for x in labels] == [
        "Hot spots (Gi*)",
        "Forecast (next week)",
        "Emerging hot spots",
        "Patrol cells",
    ]
    assert page.locator("#analytics-map path.sca-forecast").count() == 0
    _show_layer(page, "Forecast (next week)")
    page.wait_for_function(
        "document.querySelectorAll('#analytics-map path.sca-forecast').length === "
        f"{len(forecast['features'])}"
    )
    assert page.locator("#analytics-map .sca-legend").count() == 1
    assert page.locator("#analytics-map .leaflet-tile").count() == 0, "no basemap is configured"

    # The saved evaluation: one row per model, the best one marked.
    result = evaluations[0]["result"]
    table = page.locator("#analytics-evaluation table")
    assert table.locator("tr").count() == 1 + len(result["models"])
    assert table.locator("tr.sca-best td").first.inner_text() == result["best"]
    assert "history.csv" in page.inner_text("#analytics-evaluation")
    # Each model's gain over naive shows the interval the saved run measured.
    other = next(n for n in result["models"] if n != "naive")
    lo, hi = result["meta"]["vs_naive"][other]["pai_1_ci90"]
    row = table.locator("tr", has=page.locator(f"td:text-is('{other}')"))
    assert f"[{lo:+.1%}, {hi:+.1%}]" in row.inner_text()

    page.wait_for_timeout(300)  # let the chart's animation settle for the picture
    screenshot(page, "analytics.png")
    assert outside == [], f"the analytics page requested hosts outside this machine: {outside}"


def test_group_by_type(page: Any, demo_server: DemoServer, history: dict[str, Any]) -> None:
    token = demo_server.token("analyst")
    trends = _analytics(demo_server, token, "trends", TREND_QUERY.replace("all", "type"))
    first = trends["series"][0]
    _open(page, demo_server, "analyst")
    page.click("#analytics-group")
    page.get_by_role("option", name="Type").click()
    page.wait_for_function(
        "document.querySelector('.sca-title').textContent === "
        f"'{first['group']}: incidents per week'"
    )
    chart = _chart(page, len(first["points"]))
    assert chart["series"]["count"] == [p["count"] for p in first["points"]]


def test_young_live_dataset_still_shows_the_maps(
    page: Any, demo_server: DemoServer, history: dict[str, Any]
) -> None:
    """The `live` dataset (the mirror of this system's incidents) is weeks too young for the
    trend model: the page says so and still draws the hot spot and forecast layers."""
    outside = record_hosts(page)
    token = demo_server.token("analyst")
    r = httpx.get(
        f"{demo_server.base_url}/api/v1/analytics/trends?dataset=live&{TREND_QUERY}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 422 and "too little history" in r.json()["message"]
    forecast = _analytics(demo_server, token, "forecast", "dataset=live&top_fraction=0.01")
    assert forecast["features"]

    _open(page, demo_server, "analyst")
    # Mark the map, switch to the live dataset and wait for the page to draw it again.
    page.evaluate("document.getElementById('analytics-map').dataset.ready = 'false'")
    page.click("#analytics-dataset")
    page.get_by_role("option", name="live").click()
    _wait_drawn(page, demo_server)
    page.wait_for_function(
        "[...document.querySelectorAll('.sca-note')]"
        ".some((e) => e.textContent.includes('too little history'))"
    )
    chart = page.evaluate(CHART)
    assert chart is not None and chart["series"] == {}, "the history's chart is still shown"
    assert "No unusual rise" in page.inner_text("#analytics-alerts")
    _show_layer(page, "Forecast (next week)")
    page.wait_for_function(
        "document.querySelectorAll('#analytics-map path.sca-forecast').length === "
        f"{len(forecast['features'])}"
    )
    assert outside == []


@pytest.mark.parametrize("username", ["sho.gulbahar", "calltaker"])
def test_each_user_sees_his_jurisdiction(
    page: Any, demo_server: DemoServer, history: dict[str, Any], username: str
) -> None:
    """Any console user may read analytics (incidents:read), limited to his scope: the SHO
    his station's incidents, the call taker (province-wide) all of them."""
    outside = record_hosts(page)
    mine = demo_server.token(username)
    everyone = demo_server.token("analyst")
    query = f"dataset=history&{TREND_QUERY}"
    trends = _analytics(demo_server, mine, "trends", query)
    all_trends = _analytics(demo_server, everyone, "trends", query)
    hot = _analytics(demo_server, mine, "hotspots", "dataset=history")
    counts = [p["count"] for p in trends["series"][0]["points"]]
    all_counts = [p["count"] for p in all_trends["series"][0]["points"]]
    if username == "sho.gulbahar":
        assert 0 < sum(counts) < sum(all_counts), "the service does not scope the SHO"
    else:
        assert counts == all_counts

    _open(page, demo_server, username)
    assert username in page.inner_text(".sca-header")
    chart = _chart(page, len(counts))
    assert chart["series"]["count"] == counts
    assert page.locator("#analytics-map path.sca-hot").count() == len(hot["features"])
    # The printable patrol sheet behind the header's link is the API's, for his stations.
    href = page.get_attribute("#analytics-patrol-sheet", "href")
    assert href == "/analytics/patrol-sheet?dataset=history"
    sheet = page.request.get(f"{demo_server.base_url}{href}")
    assert sheet.status == 200 and sheet.headers["content-type"].startswith("text/html")
    printed = httpx.get(
        f"{demo_server.base_url}/api/v1/analytics/patrols?dataset=history&format=html",
        headers={"Authorization": f"Bearer {mine}"},
        timeout=60,
    ).text
    assert sheet.text() == printed
    stations = printed.count("<section class='station'>")
    assert stations == 1 if username == "sho.gulbahar" else stations > 1
    if username == "sho.gulbahar":
        assert re.search(r"Station <b>[^<]*Gulbahar", printed), "not the SHO's station"
    unknown = page.request.get(f"{demo_server.base_url}/analytics/patrol-sheet?dataset=nope")
    assert unknown.status == 404 and "nope" in unknown.text()
    assert outside == []


def test_server_logged_no_errors(demo_server: DemoServer) -> None:
    """Last: nothing the page did above made the server log a traceback."""
    log = demo_server.log_tail(100_000)
    assert "Traceback" not in log, log[-5000:]
