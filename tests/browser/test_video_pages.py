"""The video pages (cameras, camera wall, event review, camera rules) in a real browser
against a real `safecity demo` whose first demo cameras play the shared real clips
(../shared/media/video, or SAFECITY_SHARED) through the video pipeline inside the server:
live status, live pictures that refresh, events with their snapshots arriving live, and no
request leaving the machine."""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_helpers import DemoServer, api, drawn_chart_js, log_in, record_hosts, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.shared]

SHARED = Path(os.environ.get("SAFECITY_SHARED", Path(__file__).resolve().parents[3] / "shared"))
PKT = timezone(timedelta(hours=5), "PKT")


def _wait(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll the API until `check()` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def video_server(start_demo: Callable[..., DemoServer]) -> DemoServer:
    """`safecity demo` with the simulator on (no simulated calls), its demo cameras playing
    the shared clips; skipped when the clips or the detection model are absent."""
    from safecity.video.demo import CLIPS
    from safecity.vision import modelstore
    from safecity.vision.errors import VisionError

    media = SHARED / "media" / "video"
    if not any((media / c).is_file() for c in CLIPS):
        pytest.skip(f"needs the shared clips in {media} (../shared or SAFECITY_SHARED)")
    try:
        modelstore.resolve(SHARED / "models")
    except VisionError as exc:
        pytest.skip(f"needs the shared detection model (../shared or SAFECITY_SHARED): {exc}")
    server = start_demo(simulate="true", sim_calls_per_minute="0", shared_dir=str(SHARED))
    assert "demo video:" in server.log_tail(100_000), (
        f"the demo started no video:\n{server.log_tail()}"
    )
    return server


@pytest.fixture(scope="module")
def cameras(video_server: DemoServer) -> list[dict[str, Any]]:
    """The demo cameras that play a clip (pointed at the demo's local stream server)."""
    token = video_server.token("admin")
    cams: list[dict[str, Any]] = [
        c
        for c in api(video_server, "GET", "/api/v1/cameras", token)
        if c["stream_url"].startswith("http://127.0.0.1:")
    ]
    assert cams, "no demo camera plays a clip"
    return cams


def _jpeg(data_url: str) -> bytes:
    prefix = "data:image/jpeg;base64,"
    assert data_url.startswith(prefix), data_url[:60]
    jpeg = base64.b64decode(data_url[len(prefix) :])
    assert jpeg[:2] == b"\xff\xd8", "not a JPEG"
    return jpeg


def _pkt(at: str) -> str:
    """An API time (ISO, UTC) as the pages write it."""
    return datetime.fromisoformat(at).astimezone(PKT).strftime("%Y-%m-%d %H:%M:%S")


def _has_live_picture(server: DemoServer, camera_id: int, token: str) -> bool:
    r = httpx.get(
        f"{server.base_url}/api/v1/video/cameras/{camera_id}/live.jpg",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    return r.status_code == 200


def _wait_for_live_picture(server: DemoServer, cam: dict[str, Any], token: str) -> None:
    """Until the worker has written the camera's live picture."""
    _wait(
        f"a live picture of camera {cam['code']}",
        lambda: _has_live_picture(server, cam["id"], token),
    )


def test_video_pages_need_a_login(video_server: DemoServer) -> None:
    for path in ("/video", "/video/wall", "/video/events", "/video/traffic", "/video/camera/1"):
        r = httpx.get(f"{video_server.base_url}{path}", follow_redirects=False, timeout=30)
        assert r.status_code in (302, 303, 307), (path, r.status_code)
        assert r.headers["location"].endswith("/login"), path


def test_camera_rules_page_shows_the_rules_and_refuses_an_analyst(
    page: Any, video_server: DemoServer, cameras: list[dict[str, Any]]
) -> None:
    cam = cameras[0]
    token = video_server.token("analyst")
    rules = api(video_server, "GET", f"/api/v1/video/cameras/{cam['id']}/rules", token)
    _wait_for_live_picture(video_server, cam, token)
    log_in(page, video_server, "analyst")
    page.goto(f"{video_server.base_url}/video")
    page.locator("#camera-table tbody tr", has_text=cam["code"]).first.click()
    page.wait_for_url(f"{video_server.base_url}/video/camera/{cam['id']}")
    picture = page.locator("#rules-picture img").first
    picture.wait_for()
    _jpeg(picture.get_attribute("src"))
    page.wait_for_function(
        "document.querySelector('#rules-picture img').naturalWidth > 0", timeout=10_000
    )
    # The camera's zones and lines are drawn over its picture.
    assert page.locator("#rules-picture svg polygon[stroke=orange]").count() == len(rules["zones"])
    assert page.locator("#rules-picture svg line[stroke=magenta]").count() == len(rules["lines"])
    assert len(rules["zones"]) + len(rules["lines"]) >= 1
    # An analyst may look, not change them.
    page.click("#save-rules")
    page.get_by_text("your role may not change camera rules").wait_for()
    after = api(video_server, "GET", f"/api/v1/video/cameras/{cam['id']}/rules", token)
    assert after == rules


#: What the worker logs when it hands a camera's edited rules to the running analysis
#: (video/worker.py's RULES_APPLIED_IN_PLACE).
RULES_RELOADED = "applying the new rules"


def test_rules_drawn_on_the_picture_are_saved_and_the_worker_counts_on_them(
    page: Any, video_server: DemoServer, cameras: list[dict[str, Any]]
) -> None:
    """An admin clicks a tripwire onto the traffic camera's picture and saves it; the rule
    has the clicked coordinates and the running worker counts vehicles crossing it."""
    cam = next(c for c in cameras if c["stream_url"].endswith("/cam0.ts"))  # the traffic clip
    token = video_server.token("admin")
    url = f"/api/v1/video/cameras/{cam['id']}/rules"
    rules = api(video_server, "GET", url, token)
    _wait_for_live_picture(video_server, cam, token)
    log_in(page, video_server, "admin")
    page.goto(f"{video_server.base_url}/video/camera/{cam['id']}")
    page.wait_for_function(
        "document.querySelector('#rules-picture img')?.naturalWidth > 0", timeout=10_000
    )
    box = page.locator("#rules-picture img").first.bounding_box()

    def click(fx: float, fy: float) -> None:
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])

    try:
        page.get_by_label("Name").fill("west")
        # One point is not a line: refused, nothing added.
        click(0.3, 0.05)
        page.get_by_role("button", name="Add line").click()
        page.get_by_text("a zone needs 3 or more points, a line exactly 2").wait_for()
        click(0.3, 0.95)
        page.get_by_role("button", name="Add line").click()
        page.get_by_text("line: west").wait_for()
        assert page.locator("#rules-picture svg line[stroke=magenta]").count() == (
            len(rules["lines"]) + 1
        )
        page.click("#save-rules")
        page.get_by_text("rules saved").wait_for()
        saved = api(video_server, "GET", url, token)
        assert saved["zones"] == rules["zones"]
        assert [ln["name"] for ln in saved["lines"]] == [
            *(ln["name"] for ln in rules["lines"]),
            "west",
        ]
        west = saved["lines"][-1]
        assert west["a"] == pytest.approx([0.3, 0.05], abs=0.01)
        assert west["b"] == pytest.approx([0.3, 0.95], abs=0.01)
        assert west["direction"] == "any"
        # The worker re-reads its cameras' rules (every 30 s) and counts on the new line
        # (stored per line and minute, the running minute every 10 s).
        counted = _wait(
            "vehicles counted on the line drawn in the console",
            lambda: api(
                video_server,
                "GET",
                f"/api/v1/video/traffic?camera_id={cam['id']}&line=west&minutes=10",
                token,
            )["points"],
            timeout=180,
        )
        assert sum(p["total"] for p in counted) > 0
        assert {k for p in counted for k in p["counts"]} <= {"car", "motorcycle", "bus_truck"}
    finally:
        restore = {k: rules[k] for k in ("zones", "lines", "detect_fps", "incident_kinds")}
        restarts = video_server.log_tail(100_000).count(RULES_RELOADED)
        api(video_server, "PUT", url, token, {**restore, "enabled": rules["enabled"]})
        # The worker takes up the restored rules within 30 s: wait, so that the next test
        # sees the demo's rules at work.
        _wait(
            "the worker taking up the restored rules",
            lambda: video_server.log_tail(100_000).count(RULES_RELOADED) > restarts,
        )


def test_camera_wall_pictures_refresh(
    page: Any, video_server: DemoServer, cameras: list[dict[str, Any]]
) -> None:
    outside = record_hosts(page)
    token = video_server.token("analyst")

    _wait(
        "a live picture of every demo camera",
        lambda: all(_has_live_picture(video_server, c["id"], token) for c in cameras),
    )
    log_in(page, video_server, "analyst")
    page.goto(f"{video_server.base_url}/video/wall")
    page.wait_for_selector("[id^=wall-] img")
    tiles = page.eval_on_selector_all("[id^=wall-]", "els => els.map((e) => e.id)")
    assert sorted(tiles) == sorted(f"wall-{c['id']}" for c in cameras)
    for cam in cameras:
        assert page.locator(f"text={cam['code']} · ").count() == 1
    page.wait_for_function(
        "[...document.querySelectorAll('[id^=wall-] img')]"
        ".every((i) => i.src.startsWith('data:image/jpeg') && i.complete && i.naturalWidth > 0)"
    )
    page.evaluate("window.__noReload = true")
    before = page.eval_on_selector_all("[id^=wall-] img", "imgs => imgs.map((i) => i.src)")
    for src in before:
        _jpeg(src)
    # The wall refreshes every second from the worker's live pictures: each tile changes.
    page.wait_for_function(
        """(before) => [...document.querySelectorAll('[id^=wall-] img')]
             .every((img, i) => img.src !== before[i])""",
        arg=before,
        timeout=20_000,
    )
    assert page.evaluate("window.__noReload === true"), "the wall was reloaded"
    screenshot(page, "video-wall.png")
    assert outside == [], f"the camera wall requested hosts outside this machine: {outside}"


def _wall_tiles(page: Any) -> list[int]:
    page.wait_for_selector("[id^=wall-] img")
    ids = page.eval_on_selector_all("[id^=wall-]", "els => els.map((e) => e.id)")
    return sorted(int(i.removeprefix("wall-")) for i in ids)


def test_camera_wall_by_site_and_page(
    page: Any, video_server: DemoServer, cameras: list[dict[str, Any]]
) -> None:
    """Hundreds of cameras do not fit one wall: it shows a page at a time, of one site or
    all."""
    token = video_server.token("analyst")
    _wait(
        "a live picture of every demo camera",
        lambda: all(_has_live_picture(video_server, c["id"], token) for c in cameras),
    )
    ids = sorted(c["id"] for c in cameras)
    assert len(ids) >= 3
    log_in(page, video_server, "analyst")
    page.goto(f"{video_server.base_url}/video/wall?per_page=2")
    assert _wall_tiles(page) == ids[:2]
    assert page.inner_text("#camera-wall-range") == f"cameras 1-2 of {len(ids)}"
    assert page.locator("#camera-wall-prev").is_disabled()
    page.click("#camera-wall-next")
    page.wait_for_url(re.compile(r"page=2"))
    assert _wall_tiles(page) == ids[2:4]
    # One site: its cameras only, all on one page.
    cam = cameras[0]
    site_ids = sorted(c["id"] for c in cameras if c["site_id"] == cam["site_id"])
    assert len(site_ids) < len(ids)
    page.get_by_label("Site", exact=True).click()
    sites = api(video_server, "GET", "/api/v1/sites", token)
    site_name = next(s["name"] for s in sites if s["id"] == cam["site_id"])
    page.get_by_role("option", name=site_name, exact=True).click()
    page.wait_for_url(re.compile(rf"site={cam['site_id']}&page=1"))
    page.get_by_label("Pictures").click()
    page.get_by_role("option", name="9 a page").click()
    page.wait_for_url(re.compile(r"per_page=9"))
    assert _wall_tiles(page) == site_ids
    assert page.inner_text("#camera-wall-range") == f"cameras 1-{len(site_ids)} of {len(site_ids)}"
    # A site (from a link) none of whose cameras has a live picture: said so.
    dark = next(s for s in sites if s["id"] not in {c["site_id"] for c in cameras})
    page.goto(f"{video_server.base_url}/video/wall?site={dark['id']}")
    page.get_by_text("No camera of this site has a live picture").wait_for()
    assert page.inner_text("#camera-wall-range") == "no camera"
    shown = page.get_by_label("Site", exact=True).input_value()
    assert shown == f"{dark['name']} (no live picture)", shown


def test_event_review_live_with_snapshot(
    page: Any, video_server: DemoServer, cameras: list[dict[str, Any]]
) -> None:
    outside = record_hosts(page)
    token = video_server.token("analyst")

    def newest_alert() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = api(
            video_server, "GET", "/api/v1/video/events?alerts_only=true&limit=1", token
        )
        return [e for e in events if e["snapshot_path"]]

    _wait("an alert event with a snapshot (the perimeter zone of a people clip)", newest_alert)
    log_in(page, video_server, "analyst")
    page.goto(f"{video_server.base_url}/video/events")
    page.wait_for_selector("#event-table tbody tr")
    page.evaluate("window.__noReload = true")
    opened = api(video_server, "GET", "/api/v1/video/events?limit=1", token)[0]["at"]

    # New events reach the open page from the bus (among the counting lines' crossings,
    # which are not stored events): the newest row keeps moving on.
    def rows_move_on(after: str) -> None:
        later = _pkt((datetime.fromisoformat(after) + timedelta(seconds=8)).isoformat())
        try:
            page.wait_for_function(
                """(later) => {
                  const cell = document.querySelector('#event-table tbody tr td');
                  return !!cell && cell.textContent.trim() >= later;
                }""",
                arg=later,
                timeout=30_000,
            )
        except Exception as exc:  # playwright's TimeoutError
            top = page.locator("#event-table tbody tr").first.inner_text()
            newest = api(video_server, "GET", "/api/v1/video/events?limit=1", token)[0]["at"]
            raise AssertionError(
                f"new events stopped reaching the open page ({exc}): its newest row "
                f"{top!r}, the newest stored event at {_pkt(newest)} PKT"
            ) from None

    rows_move_on(opened)

    # Each event once, newest first: an event the page read from the database the bus
    # delivers too (published after its commit); repeated row keys left stale rows.
    def events_shown() -> list[int]:
        ids: list[int] = page.evaluate(
            """() => [...document.querySelectorAll('#event-table tbody tr')]
                 .map((r) => Number(r.querySelectorAll('td')[8].textContent.trim()))"""
        )
        return ids

    shown = events_shown()
    assert shown == sorted(set(shown), reverse=True), shown
    # The page's connection drops and comes back (a busy network): its live events go on.
    page.evaluate("window.socket.io.engine.close()")
    page.wait_for_function("window.socket.connected && window.did_handshake", timeout=30_000)
    rows_move_on(api(video_server, "GET", "/api/v1/video/events?limit=1", token)[0]["at"])
    assert page.evaluate("window.__noReload === true"), "the event list was reloaded"
    shown = events_shown()
    assert shown == sorted(set(shown), reverse=True), shown

    # Alerts only.
    page.get_by_text("Alerts only").click()
    page.wait_for_function(
        """() => {
          const rows = [...document.querySelectorAll('#event-table tbody tr')];
          return rows.length > 0 && rows.every((r) => r.querySelectorAll('td')[6]
            && r.querySelectorAll('td')[6].textContent.trim() === 'yes');
        }""",
        timeout=15_000,
    )

    # Review one: its snapshot is the one the API serves for it.
    page.locator("#event-table tbody tr").first.click()
    detail = page.get_by_text(re.compile(r"^#\d+ "))
    detail.wait_for()
    event_id = int(re.match(r"^#(\d+) ", detail.inner_text()).group(1))
    event = api(video_server, "GET", f"/api/v1/video/events/{event_id}", token)
    assert event["alert"] is True
    code = next(c["code"] for c in cameras if c["id"] == event["camera_id"])
    assert f"{event['kind']} {event['rule']}" in detail.inner_text()
    assert f"on {code} at {_pkt(event['at'])}" in detail.inner_text()
    page.wait_for_function(
        "() => { const i = document.querySelector('#event-snapshot img');"
        " return !!i && i.src.startsWith('data:image/jpeg') && i.complete"
        " && i.naturalWidth > 0; }",
        timeout=10_000,
    )
    shown = _jpeg(page.get_attribute("#event-snapshot img", "src"))
    r = httpx.get(
        f"{video_server.base_url}/api/v1/video/events/{event_id}/snapshot",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200 and r.content == shown
    screenshot(page, "video-events.png")

    # One camera's events of one kind (the reviewed one's).
    page.get_by_label("Camera", exact=True).click()
    page.get_by_role("option", name=code, exact=True).click()
    page.get_by_label("Kind", exact=True).click()
    page.get_by_role("option", name=event["kind"].replace("_", " "), exact=True).click()
    page.wait_for_function(
        """([code, kind]) => {
          const rows = [...document.querySelectorAll('#event-table tbody tr')];
          return rows.length > 0 && rows.every((r) => {
            const td = r.querySelectorAll('td');
            return td.length > 2 && td[1].textContent.trim() === code
              && td[2].textContent.trim() === kind;
          });
        }""",
        arg=[code, event["kind"]],
        timeout=15_000,
    )
    assert outside == [], f"event review requested hosts outside this machine: {outside}"


def test_event_clip_plays_in_review(
    page: Any, video_server: DemoServer, cameras: list[dict[str, Any]]
) -> None:
    """A link to one alert event opens it with its clip, which the browser plays from the
    console (the console's login, no token); an unknown event is named, not a blank page."""
    token = video_server.token("analyst")

    def alert_with_clip() -> dict[str, Any] | None:
        for e in api(video_server, "GET", "/api/v1/video/events?alerts_only=true&limit=20", token):
            r = httpx.get(
                f"{video_server.base_url}/api/v1/video/events/{e['id']}/clip",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            if r.status_code == 200:
                return {"event": e, "clip": r.content}
        return None

    found = _wait("an alert event with its clip written", alert_with_clip, timeout=90)
    event = found["event"]
    console_clip = f"{video_server.base_url}/video/events/{event['id']}/clip"
    assert httpx.get(console_clip, timeout=30).status_code == 401
    outside = record_hosts(page)
    log_in(page, video_server, "analyst")
    page.goto(f"{video_server.base_url}/video/events?event={event['id']}")
    page.get_by_text(re.compile(rf"^#{event['id']} {event['kind']} ")).wait_for()
    page.wait_for_function(
        "() => { const i = document.querySelector('#event-snapshot img');"
        " return !!i && i.src.startsWith('data:image/jpeg') && i.naturalWidth > 0; }",
        timeout=10_000,
    )
    # The player has the clip: the browser read its length and its first picture.
    page.wait_for_function(
        """() => {
          const v = document.querySelector('video');
          return !!v && v.readyState >= 2 && v.duration > 1 && v.videoWidth > 0;
        }""",
        timeout=20_000,
    )
    src = page.eval_on_selector("video", "v => v.currentSrc")
    assert src == console_clip, src
    served = page.request.get(console_clip)
    assert served.status == 200 and served.body() == found["clip"]
    assert served.headers["content-type"] == "video/mp4"
    screenshot(page, "video-event-clip.png")
    # An event that does not exist.
    page.goto(f"{video_server.base_url}/video/events?event=987654321")
    page.get_by_text("video event 987654321 does not exist").wait_for()
    assert outside == [], f"event review requested hosts outside this machine: {outside}"


def test_camera_incident_links_to_its_video_event(
    page: Any, video_server: DemoServer, cameras: list[dict[str, Any]]
) -> None:
    """An incident a camera alert opened (loitering in a demo perimeter zone) shows, on the
    dispatch board, a link to the alert's event review."""
    token = video_server.token("dispatcher")

    def alert_with_incident() -> dict[str, Any] | None:
        events = api(video_server, "GET", "/api/v1/video/events?alerts_only=true&limit=500", token)
        return next((e for e in events if e["incident_id"]), None)

    event = _wait("a camera alert that opened an incident", alert_with_incident, timeout=120)
    log_in(page, video_server, "dispatcher")
    page.goto(f"{video_server.base_url}/dispatch")
    row = f'#dispatch-queue tr[data-incident-id="{event["incident_id"]}"]'
    page.wait_for_selector(row, timeout=15_000)
    page.click(row)
    page.wait_for_selector(f'#incident-detail[data-incident-id="{event["incident_id"]}"]')
    page.click(f"#detail-video-{event['id']}")
    page.wait_for_url(f"{video_server.base_url}/video/events?event={event['id']}")
    page.get_by_text(re.compile(rf"^#{event['id']} {event['kind']} .*; incident ")).wait_for()


#: Every row of the camera table as {column label: cell text}.
ROWS = """() => {
  const head = [...document.querySelectorAll('#camera-table thead th')]
    .map((th) => th.textContent.replace('arrow_upward', '').trim());
  return [...document.querySelectorAll('#camera-table tbody tr')].map((tr) =>
    Object.fromEntries([...tr.querySelectorAll('td')]
      .map((td, i) => [head[i], td.textContent.trim()])));
}"""


def test_camera_list_shows_live_status(
    page: Any, video_server: DemoServer, cameras: list[dict[str, Any]]
) -> None:
    outside = record_hosts(page)
    token = video_server.token("analyst")
    statuses = api(video_server, "GET", "/api/v1/video/cameras/status", token)
    log_in(page, video_server, "analyst")
    page.click("#nav-video")
    page.wait_for_url(f"{video_server.base_url}/video")
    page.wait_for_selector("#camera-table tbody tr")
    summary = page.inner_text("#camera-summary")
    assert summary.startswith(f"{len(statuses)} cameras: "), summary

    # Every camera that plays a clip turns online with frames per second and a recent last
    # frame (the worker reports its health every few seconds, the table refreshes every 5 s).
    codes = [c["code"] for c in cameras]
    page.wait_for_function(
        f"""() => {{
          const rows = ({ROWS})();
          return {codes!r}.every((code) => rows.some((r) => r.Camera === code
            && r.Status === 'online' && parseFloat(r.fps) > 0
            && r['Last frame (PKT)'] !== 'never'));
        }}""",
        timeout=60_000,
    )
    rows = {r["Camera"]: r for r in page.evaluate(ROWS)}
    now = datetime.now(PKT).replace(tzinfo=None)
    for cam in cameras:
        row = rows[cam["code"]]
        last = datetime.strptime(row["Last frame (PKT)"], "%Y-%m-%d %H:%M:%S")
        assert abs((now - last).total_seconds()) < 120, row
        assert row["Name"] == cam["name"]
    # A camera no worker analyses: its registry status, never a frame.
    idle = next(s for s in statuses if s["code"] not in codes and s["code"] in rows)
    assert rows[idle["code"]]["Last frame (PKT)"] == "never"
    assert rows[idle["code"]]["Status"] == idle["status"]
    online = int(re.search(r"(\d+) online", page.inner_text("#camera-summary")).group(1))
    assert online >= len(cameras)
    screenshot(page, "video-cameras.png")

    # Cameras found by status (the others are left out) and by name.
    assert len({s["status"] for s in statuses}) >= 2
    page.get_by_label("Status", exact=True).click()
    page.get_by_role("option", name=re.compile(r"^online \(\d+\)$")).click()
    page.wait_for_function(
        f"""() => {{
          const rows = ({ROWS})();
          return rows.length > 0 && rows.every((r) => r.Status === 'online');
        }}""",
        timeout=15_000,
    )
    page.get_by_label("Search (code, name, site)").fill(cameras[0]["code"])
    page.wait_for_function(
        f"""(code) => {{
          const rows = ({ROWS})();
          return rows.length === 1 && rows[0].Camera === code;
        }}""",
        arg=cameras[0]["code"],
        timeout=15_000,
    )
    assert outside == [], f"the camera list requested hosts outside this machine: {outside}"


TRAFFIC_CHART = drawn_chart_js("traffic-chart")


def _traffic_as_drawn(server: DemoServer, token: str, query: str) -> dict[str, dict[str, int]]:
    """The API's counts per minute in the chart's terms (PKT "HH:MM", zeros left out)."""
    points = api(server, "GET", f"/api/v1/video/traffic?minutes=60&{query}", token)["points"]
    return {
        datetime.fromisoformat(p["minute"]).astimezone(PKT).strftime("%H:%M"): {
            g: n for g, n in p["counts"].items() if n
        }
        for p in points
    }


def _drawn_traffic(page: Any) -> dict[str, dict[str, int]] | None:
    """The traffic chart in the same terms: {"HH:MM": {group: count}} (zeros left out)."""
    chart = page.evaluate(TRAFFIC_CHART)
    if chart is None:
        return None
    out: dict[str, dict[str, int]] = {m: {} for m in chart["x"]}
    for name, data in chart["series"].items():
        for m, n in zip(chart["x"], data, strict=True):
            if n:
                out[m][name] = n
    return out


def _chart_shows(page: Any, server: DemoServer, token: str, query: str) -> dict[str, Any]:
    """Until the chart draws what the API answers for `query` (the worker adds to the
    running minute every 10 s and the page redraws every 10 s, so the two can differ for a
    moment); the counts."""
    return _wait(  # type: ignore[no-any-return]
        f"the traffic chart drawing /traffic?{query}",
        lambda: (
            (drawn := _drawn_traffic(page)) == _traffic_as_drawn(server, token, query) and drawn
        ),
        timeout=90,
    )


def test_traffic_counts_per_camera_line_and_site(
    page: Any, video_server: DemoServer, cameras: list[dict[str, Any]]
) -> None:
    """The traffic page charts the counts per minute and class of a camera (all lines or
    one), and of a whole site, as the API has them."""
    cam = next(c for c in cameras if c["stream_url"].endswith("/cam0.ts"))  # the traffic clip
    token = video_server.token("analyst")
    _wait(
        "traffic counts of the traffic camera",
        lambda: _traffic_as_drawn(video_server, token, f"camera_id={cam['id']}"),
        timeout=120,
    )
    outside = record_hosts(page)
    log_in(page, video_server, "analyst")
    page.goto(f"{video_server.base_url}/video/traffic")
    page.get_by_label("Camera", exact=True).click()
    site = next(
        s["name"]
        for s in api(video_server, "GET", "/api/v1/sites", token)
        if s["id"] == cam["site_id"]
    )
    page.get_by_role("option", name=f"{cam['code']} ({site})").click()
    every = _chart_shows(page, video_server, token, f"camera_id={cam['id']}")
    assert {g for m in every.values() for g in m} <= {"car", "motorcycle", "bus_truck"}
    assert sum(n for m in every.values() for n in m.values()) > 0
    # One counting line: the demo's "count" (an earlier test's line is gone from the rules,
    # its counts are not).
    page.get_by_label("Counting line").click()
    page.get_by_role("option", name="count", exact=True).click()
    _chart_shows(page, video_server, token, f"camera_id={cam['id']}&line=count")
    # The camera's whole site.
    page.locator("#traffic-by").get_by_text("site").click()
    page.get_by_label("Site", exact=True).click()
    page.get_by_role("option", name=site, exact=True).click()
    _chart_shows(page, video_server, token, f"site_id={cam['site_id']}")
    screenshot(page, "video-traffic.png", min_bytes=15_000)  # a chart of a few bars
    assert outside == [], f"the traffic page requested hosts outside this machine: {outside}"


def test_server_logged_no_errors(video_server: DemoServer) -> None:
    """Last: nothing the pages did above made the server log a traceback."""
    log = video_server.log_tail(100_000)
    assert "Traceback" not in log, log[-5000:]
