"""Console pages of video analytics (NiceGUI), a thin layer over `safecity.video.service`.

- /video: cameras with their live status, frames per second and last frame time;
- /video/wall: a wall of live pictures (boxes drawn by the worker), refreshed every second,
  of one site or all, a page at a time;
- /video/events: event review, newest first, live from the bus, with the snapshot and the
  clip (`?event=ID` opens one event);
- /video/traffic: counts per minute per class, for a camera or a whole site, of one
  counting line or all;
- /video/camera/{id}: a camera's zones and lines, drawn by clicking on its picture.

The console calls `register_pages(runtime)` once it has mounted NiceGUI."""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, get_args
from urllib.parse import urlencode

from fastapi.responses import FileResponse, RedirectResponse, Response
from nicegui import app as nicegui_app
from nicegui import run, ui

from safecity.core.auth import Perm, Principal, principal_from_token
from safecity.core.db import MAX_ROW_ID
from safecity.core.errors import NotFound, SafeCityError, Unauthenticated
from safecity.core.runtime import Runtime
from safecity.registry import service as registry
from safecity.video import service
from safecity.video.schemas import CameraRulesIn, EventKind, LineIn, ZoneIn

log = logging.getLogger("safecity.video.ui")
P = ParamSpec("P")
R = TypeVar("R")
PKT = timezone(timedelta(hours=5), "PKT")
WALL_MAX = 24


@dataclass
class _State:
    runtime: Runtime | None = None
    registered: bool = False


_STATE = _State()


def _rt() -> Runtime:
    if _STATE.runtime is None:  # pragma: no cover - register_pages sets it
        raise RuntimeError("video pages are not registered")
    return _STATE.runtime


async def _io(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    result = await run.io_bound(fn, *args, **kwargs)
    if result is None:
        raise asyncio.CancelledError
    return result


def _principal_sync(token: str) -> Principal:
    rt = _rt()
    with rt.sessions() as s:
        return principal_from_token(s, token, key=rt.settings.signing_key(), now=rt.clock.now())


async def _operator() -> Principal | None:
    token = nicegui_app.storage.user.get("token")
    if not isinstance(token, str):
        return None
    try:
        p = await _io(_principal_sync, token)
    except Unauthenticated:
        return None
    return p if p.has(Perm.REGISTRY_READ) else None


def _login_then(path: str) -> RedirectResponse:
    """To the login page, and back to `path` after it."""
    nicegui_app.storage.user["next"] = path
    return RedirectResponse("/login", status_code=303)


def _when(at: datetime | None) -> str:
    return at.astimezone(PKT).strftime("%Y-%m-%d %H:%M:%S") if at else "never"


def _data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


def _nav(title: str) -> None:
    with ui.header().classes("items-center px-3 py-0 h-12 gap-4"):
        ui.label(f"SafeCity · {title}").classes("text-lg font-medium")
        for text, href in (
            ("Command centre", "/"),
            ("Cameras", "/video"),
            ("Camera wall", "/video/wall"),
            ("Events", "/video/events"),
            ("Traffic", "/video/traffic"),
        ):
            ui.link(text, href).classes("text-white")


# --------------------------------------------------------------------------- data


def _statuses(actor: Principal) -> list[dict[str, Any]]:
    with _rt().sessions() as s:
        sites = {x.id: x.name for x in registry.list_sites(s)}
        return [
            {
                "id": c.camera_id,
                "code": c.code,
                "name": c.name,
                "site": sites.get(c.site_id, str(c.site_id)),
                "site_id": c.site_id,
                "status": c.status,
                "fps": round(c.fps, 1),
                "last": _when(c.last_frame_at),
                "reason": c.reason,
            }
            for c in service.camera_statuses(s, actor=actor)
        ]


def _live(camera_id: int) -> bytes | None:
    p = service.live_root(_rt().settings.data_dir) / f"{camera_id}.jpg"
    try:
        return p.read_bytes()
    except OSError:
        return None


def _live_pictures(camera_ids: list[int]) -> dict[int, bytes]:
    """The cameras' live pictures that exist (one thread hop for a whole wall)."""
    out = {}
    for cid in camera_ids:
        jpeg = _live(cid)
        if jpeg:
            out[cid] = jpeg
    return out


def _cameras_with_live_picture() -> set[int]:
    """Ids of the cameras a worker has written a live picture of (one directory listing,
    not a read of every picture)."""
    root = service.live_root(_rt().settings.data_dir)
    try:
        names = [e.name for e in os.scandir(root) if e.is_file()]
    except OSError:
        return set()
    return {int(n[:-4]) for n in names if n.endswith(".jpg") and n[:-4].isdigit()}


def _camera_codes(actor: Principal) -> dict[int, str]:
    with _rt().sessions() as s:
        return {c.id: c.code for c in registry.list_cameras(s, actor=actor)}


def _events(
    alerts_only: bool, camera_id: int | None, kind: str | None, actor: Principal
) -> list[dict[str, Any]]:
    codes = _camera_codes(actor)
    with _rt().sessions() as s:
        events = service.list_events(
            s,
            alerts_only=alerts_only,
            camera_id=camera_id,
            kind=kind,
            limit=EVENT_ROWS_SHOWN,
            actor=actor,
        )
        return [
            _event_row(e.model_dump(), codes.get(e.camera_id, str(e.camera_id))) for e in events
        ]


def _visible_cameras(actor: Principal) -> set[int] | None:
    with _rt().sessions() as s:
        return registry.cameras_visible_to(s, actor=actor)


def _event_row(e: dict[str, Any], code: str) -> dict[str, Any]:
    at = e["at"] if isinstance(e["at"], datetime) else datetime.fromisoformat(e["at"])
    return {
        "id": e["id"],
        "time": _when(at),
        "camera": code,
        "kind": e["kind"],
        "rule": e["rule"],
        "class": e["class_name"],
        "conf": round(e["confidence"], 2),
        "alert": "yes" if e["alert"] else "",
        "incident": e.get("incident_id") or "",
    }


#: Rows the event review page keeps (the newest events).
EVENT_ROWS_SHOWN = 200


def _newest_events_first(*row_lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of all lists, each event once, newest (highest id) first, at most
    `EVENT_ROWS_SHOWN`. An event can come both from the database (a reload reads it after
    its commit) and from the bus (published after that commit, fetched after the reload):
    a table whose rows repeat a key is drawn wrong by the browser (stale rows stay on the
    page whatever the filter), so each event is shown once."""
    by_id: dict[Any, dict[str, Any]] = {}
    for rows in row_lists:
        for r in rows:
            by_id.setdefault(r["id"], r)
    return sorted(by_id.values(), key=lambda r: int(r["id"]), reverse=True)[:EVENT_ROWS_SHOWN]


@dataclass
class _EventDetail:
    row: dict[str, Any]
    jpeg: bytes
    has_clip: bool


def _event_detail(event_id: int, actor: Principal) -> _EventDetail:
    """An event for review: its row, its snapshot (b"" when none) and whether its clip is
    on disk (NotFound / Forbidden as the API)."""
    with _rt().sessions() as s:
        ev = service.get_event(s, event_id=event_id, actor=actor)
        code = registry.get_camera(s, camera_id=ev.camera_id).code
    jpeg = b""
    if ev.snapshot_path and Path(ev.snapshot_path).is_file():
        jpeg = Path(ev.snapshot_path).read_bytes()
    row = _event_row(ev.model_dump(), code)
    return _EventDetail(row=row, jpeg=jpeg, has_clip=service.clip_file(ev) is not None)


def _clip(event_id: int, actor: Principal) -> tuple[Path, str] | None:
    with _rt().sessions() as s:
        return service.clip_file(service.get_event(s, event_id=event_id, actor=actor))


def _counting_lines(camera_ids: list[int]) -> list[str]:
    """The names of the cameras' counting lines (alert lines are events, not counts)."""
    with _rt().sessions() as s:
        return sorted(
            {
                ln.name
                for cid in camera_ids
                for ln in service.get_rules(s, camera_id=cid).lines
                if not ln.alert
            }
        )


def _traffic(
    camera_id: int | None, site_id: int | None, line: str | None, minutes: int, actor: Principal
) -> dict[str, Any]:
    rt = _rt()
    with rt.sessions() as s:
        series = service.traffic(
            s,
            camera_id=camera_id,
            site_id=site_id,
            since=rt.clock.now() - timedelta(minutes=minutes),
            line=line,
            actor=actor,
        )
    groups = sorted({g for p in series.points for g in p.counts})
    x = [p.minute.astimezone(PKT).strftime("%H:%M") for p in series.points]
    return {
        "tooltip": {"trigger": "axis"},
        # Readable on the console's dark background.
        "legend": {"data": groups, "textStyle": {"color": "#cbd5e1"}},
        "xAxis": {"type": "category", "data": x, "axisLabel": {"color": "#94a3b8"}},
        "yAxis": {
            "type": "value",
            "name": "per min",
            "nameTextStyle": {"color": "#94a3b8"},
            "axisLabel": {"color": "#94a3b8"},
            "splitLine": {"lineStyle": {"color": "#1e293b"}},
        },
        "series": [
            {
                "name": g,
                "type": "bar",
                "stack": "all",
                "data": [p.counts.get(g, 0) for p in series.points],
            }
            for g in groups
        ],
    }


# --------------------------------------------------------------------------- pages


def register_pages(runtime: Runtime) -> None:
    """Serve the video pages (once per process; a later call only swaps the runtime)."""
    _STATE.runtime = runtime
    if _STATE.registered:
        return
    _STATE.registered = True

    @ui.page("/video", title="SafeCity — cameras")
    async def cameras_page() -> RedirectResponse | None:
        who = await _operator()
        if who is None:
            return _login_then("/video")
        _nav("cameras")
        columns = [
            {"name": k, "label": label, "field": k, "sortable": True}
            for k, label in (
                ("code", "Camera"),
                ("name", "Name"),
                ("site", "Site"),
                ("status", "Status"),
                ("fps", "fps"),
                ("last", "Last frame (PKT)"),
                ("reason", "Why"),
            )
        ]
        summary = ui.label().props("id=camera-summary")
        with ui.row().classes("items-center gap-4"):
            status_sel = (
                ui.select({"": "every status"}, value="", label="Status")
                .classes("w-48")
                .props("id=camera-status")
            )
            search = ui.input("Search (code, name, site)").classes("w-64").props("clearable")
        table = (
            ui.table(columns=columns, rows=[], row_key="id", pagination=50)
            .classes("w-full")
            .props("id=camera-table dense")
        )
        table.bind_filter_from(search, "value")
        table.add_slot(
            "body-cell-status",
            """
            <q-td :props="props"><q-badge :color="{online:'positive',offline:'negative',
            frozen:'warning',tampered:'deep-orange'}[props.value] || 'grey'"
            :label="props.value"/></q-td>""",
        )
        table.on("rowClick", lambda e: ui.navigate.to(f"/video/camera/{e.args[1]['id']}"))

        async def refresh() -> None:
            rows = await _io(_statuses, who)
            by: dict[str, int] = {}
            for r in rows:
                by[r["status"]] = by.get(r["status"], 0) + 1
            summary.set_text(
                f"{len(rows)} cameras: " + ", ".join(f"{n} {k}" for k, n in sorted(by.items()))
            )
            # The dead cameras of a city are found by status (a status no camera has any
            # more stays choosable while chosen).
            chosen = status_sel.value or ""
            options = {"": "every status", **{k: f"{k} ({n})" for k, n in sorted(by.items())}}
            if chosen and chosen not in options:
                options[chosen] = f"{chosen} (0)"
            if options != status_sel.options:  # re-set, it would close an open list
                status_sel.set_options(options, value=chosen)
            table.rows = [r for r in rows if not chosen or r["status"] == chosen]
            table.update()

        status_sel.on_value_change(lambda _: refresh())
        await refresh()
        ui.timer(5.0, refresh)
        return None

    @ui.page("/video/wall", title="SafeCity — camera wall")
    async def wall_page(
        site: int | None = None, page: int = 1, per_page: int = WALL_MAX
    ) -> RedirectResponse | None:
        """The live pictures of the cameras a worker analyses: of one site or all, a page
        of `per_page` (1-24) at a time (`?site=ID&page=N&per_page=9`)."""
        who = await _operator()
        if who is None:
            return _login_then("/video/wall")
        _nav("camera wall")
        per_page = min(max(per_page, 1), WALL_MAX)
        rows = await _io(_statuses, who)
        with_picture = await run.io_bound(_cameras_with_live_picture) or set()
        live_rows = [r for r in rows if r["id"] in with_picture]
        sites: dict[int, str] = {r["site_id"]: r["site"] for r in live_rows}
        if site is not None and site not in sites:
            # A site chosen by link whose cameras no worker shows: said, not "all sites".
            names = {r["site_id"]: r["site"] for r in rows}
            sites[site] = f"{names.get(site, f'site {site}')} (no live picture)"
        shown = [r for r in live_rows if site is None or r["site_id"] == site]
        pages = max(1, math.ceil(len(shown) / per_page))
        page = min(max(page, 1), pages)
        first = (page - 1) * per_page

        def go(**change: Any) -> None:
            query = {"site": site, "page": page, "per_page": per_page, **change}
            ui.navigate.to(
                "/video/wall?" + urlencode({k: v for k, v in query.items() if v is not None})
            )

        with ui.row().classes("items-center gap-4"):
            ui.select(
                {0: "all sites", **sites},
                value=site or 0,
                label="Site",
                with_input=True,
                on_change=lambda e: go(site=e.value or None, page=1),
            ).classes("w-64").props("id=camera-wall-site")
            ui.select(
                {n: f"{n} a page" for n in sorted({1, 4, 9, 16, WALL_MAX, per_page})},
                value=per_page,
                label="Pictures",
                on_change=lambda e: go(per_page=e.value, page=1),
            ).classes("w-32").props("id=camera-wall-per-page")
            ui.button(icon="chevron_left", on_click=lambda: go(page=page - 1)).props(
                "flat dense id=camera-wall-prev" + (" disable" if page <= 1 else "")
            )
            ui.label(
                f"cameras {first + 1}-{min(first + per_page, len(shown))} of {len(shown)}"
                if shown
                else "no camera"
            ).props("id=camera-wall-range")
            ui.button(icon="chevron_right", on_click=lambda: go(page=page + 1)).props(
                "flat dense id=camera-wall-next" + (" disable" if page >= pages else "")
            )
        if not shown:
            ui.label(
                "No camera of this site has a live picture: no worker analyses them."
                if site is not None
                else "No live pictures yet: start `safecity worker` to analyse cameras."
            )
            return None
        images: dict[int, Any] = {}
        columns = min(math.ceil(math.sqrt(per_page)), 6)
        with ui.grid(columns=columns).classes("w-full gap-2"):
            for r in shown[first : first + per_page]:
                with ui.card().classes("p-1"):
                    images[r["id"]] = (
                        ui.image()
                        .classes("w-full")
                        .props(f"id=wall-{r['id']} no-transition no-spinner")
                    )
                    ui.label(f"{r['code']} · {r['site']}").classes("text-xs")

        async def refresh() -> None:
            pictures = await _io(_live_pictures, list(images))
            for cid, jpeg in pictures.items():
                images[cid].set_source(_data_url(jpeg))

        await refresh()
        ui.timer(1.0, refresh)
        return None

    @nicegui_app.get("/video/events/{event_id}/clip", include_in_schema=False)
    async def event_clip(event_id: int) -> Response:
        """The event's clip for the console's player (the console's login, not a token)."""
        who = await _operator()
        if who is None:
            return Response("log in to the console first", status_code=401)
        try:
            found = await run.io_bound(_clip, event_id, who)
        except SafeCityError as exc:
            return Response(exc.message, status_code=exc.status)
        if found is None:
            return Response(
                f"video event {event_id} has no clip (not an alert, still being written, or "
                "past retention)",
                status_code=404,
            )
        return FileResponse(found[0], media_type=found[1])

    @ui.page("/video/events", title="SafeCity — video events")
    async def events_page(event: int | None = None) -> RedirectResponse | None:
        """Event review; `?event=ID` opens that event (a link from an alert or incident)."""
        who = await _operator()
        if who is None:
            return _login_then("/video/events" + (f"?event={event}" if event else ""))
        _nav("video events")
        rt = _rt()
        # The cameras this operator may see, as the page opens (a camera added later
        # shows after a reload).
        visible = await run.io_bound(_visible_cameras, who)
        sub = rt.bus.subscribe("vision.events.>")
        client = ui.context.client
        # On delete, not on disconnect: a websocket that drops and reconnects (a busy
        # network, a laptop waking) keeps its page, and the page its live events.
        client.on_delete(sub.close)
        codes = await _io(_camera_codes, who)
        with ui.row().classes("items-center gap-4"):
            alerts = ui.switch("Alerts only", value=False)
            camera_sel = (
                ui.select({0: "all cameras", **codes}, value=0, label="Camera", with_input=True)
                .classes("w-48")
                .props("id=event-camera")
            )
            kind_sel = (
                ui.select(
                    {"": "all kinds", **{k: k.replace("_", " ") for k in get_args(EventKind)}},
                    value="",
                    label="Kind",
                )
                .classes("w-48")
                .props("id=event-kind")
            )
        columns = [
            {"name": k, "label": k.capitalize(), "field": k}
            for k in ("time", "camera", "kind", "rule", "class", "conf", "alert", "incident")
        ]
        # The event's number, as its detail and the API name it (an operator quotes it).
        columns.append({"name": "id", "label": "Event", "field": "id"})
        with ui.row().classes("w-full no-wrap gap-4"):
            table = (
                ui.table(columns=columns, rows=[], row_key="id", pagination=25)
                .classes("w-2/3")
                .props("id=event-table dense")
            )
            with ui.column().classes("w-1/3"):
                picture = ui.image().classes("w-full").props("id=event-snapshot")
                detail = ui.label("Click an event to see its snapshot and clip.")
                player = ui.video("", controls=True).classes("w-full").props("id=event-clip")
                player.set_visibility(False)
                clip_note = ui.label("").props("id=event-clip-note")

        # Each reload is numbered: a slower one that finishes after a later one (filters
        # changed quickly) is dropped. Live rows that arrive while a reload reads the
        # database are kept for it: the read may have missed them.
        loads = {"started": 0}
        arrived_during_load: list[dict[str, Any]] = []

        async def load() -> None:
            loads["started"] += 1
            mine = loads["started"]
            arrived_during_load.clear()
            rows = await _io(
                _events, bool(alerts.value), camera_sel.value or None, kind_sel.value or None, who
            )
            if mine != loads["started"]:
                return
            table.rows = _newest_events_first(rows, arrived_during_load)
            table.update()

        async def show(event_id: int) -> None:
            try:
                d = await _io(_event_detail, event_id, who)
            except SafeCityError as exc:
                ui.notify(exc.message, type="negative")
                return
            row = d.row
            picture.set_source(_data_url(d.jpeg) if d.jpeg else "")
            detail.set_text(
                f"#{row['id']} {row['kind']} {row['rule']} {row['class']} on "
                f"{row['camera']} at {row['time']}"
                + (f"; incident {row['incident']}" if row["incident"] else "")
            )
            player.set_source(f"/video/events/{event_id}/clip" if d.has_clip else "")
            player.set_visibility(d.has_clip)
            clip_note.set_text(
                ""
                if d.has_clip
                else "No clip: only alerts keep one, a few seconds after the event."
                if row["alert"]
                else "No clip: only alerts keep one."
            )

        table.on("rowClick", lambda e: show(int(e.args[1]["id"])))
        for w in (alerts, camera_sel, kind_sel):
            w.on_value_change(lambda _: load())
        await load()
        if event is not None:
            await show(event)

        async def pump() -> None:
            while not client.is_deleted:
                msgs = await sub.fetch_async(batch=100, timeout=5.0)
                fresh = []
                for m in msgs:
                    m.ack()
                    if "id" not in m.data:
                        # A counting line's crossing: counted, not stored as an event (and
                        # without an id its row would raise and end this loop).
                        continue
                    if alerts.value and not m.data.get("alert"):
                        continue
                    if camera_sel.value and m.data.get("camera_id") != camera_sel.value:
                        continue
                    if kind_sel.value and m.data.get("kind") != kind_sel.value:
                        continue
                    if visible is not None and m.data.get("camera_id") not in visible:
                        continue
                    try:
                        fresh.append(_event_row(m.data, m.data.get("camera_code", "")))
                    except (KeyError, TypeError, ValueError):
                        # One malformed message must not end the page's live events.
                        log.warning("event review: unreadable event %s", m.data.get("id"))
                if fresh:
                    arrived_during_load[:] = _newest_events_first(fresh, arrived_during_load)
                    table.rows = _newest_events_first(fresh, table.rows)
                    table.update()

        task = asyncio.create_task(pump())
        client.on_delete(task.cancel)
        return None

    @ui.page("/video/traffic", title="SafeCity — traffic counts")
    async def traffic_page() -> RedirectResponse | None:
        who = await _operator()
        if who is None:
            return _login_then("/video/traffic")
        _nav("traffic counts")
        rows = await _io(_statuses, who)
        cams = {r["id"]: f"{r['code']} ({r['site']})" for r in rows}
        sites = {r["site_id"]: r["site"] for r in rows}
        with ui.row().classes("items-center gap-4"):
            by = ui.toggle(["camera", "site"], value="camera").props("id=traffic-by")
            cam_sel = (
                ui.select(cams, label="Camera", with_input=True, value=next(iter(cams), None))
                .classes("w-64")
                .props("id=traffic-camera")
            )
            site_sel = (
                ui.select(sites, label="Site", with_input=True)
                .classes("w-64")
                .props("id=traffic-site")
            )
            line_sel = (
                ui.select({"": "all lines"}, label="Counting line", value="")
                .classes("w-48")
                .props("id=traffic-line")
            )
            minutes = ui.select({60: "last hour", 360: "6 hours", 1440: "24 hours"}, value=60)
        chart = (
            ui.echart({"xAxis": {"type": "category"}, "yAxis": {"type": "value"}, "series": []})
            .classes("w-full h-96")
            .props("id=traffic-chart")
        )

        async def relist_lines() -> None:
            """The counting lines of the chosen camera, or of the chosen site's cameras."""
            if by.value == "camera":
                ids = [cam_sel.value] if cam_sel.value is not None else []
            else:
                ids = [r["id"] for r in rows if r["site_id"] == site_sel.value]
            names = await _io(_counting_lines, ids)
            line_sel.set_options({"": "all lines", **{n: n for n in names}}, value="")

        async def refresh() -> None:
            cid = cam_sel.value if by.value == "camera" else None
            sid = site_sel.value if by.value == "site" else None
            if cid is None and sid is None:
                return
            line = line_sel.value or None
            chart.options.clear()
            chart.options.update(await _io(_traffic, cid, sid, line, int(minutes.value), who))
            chart.update()

        async def chosen() -> None:
            await relist_lines()
            await refresh()

        for w in (by, cam_sel, site_sel):
            w.on_value_change(lambda _: chosen())
        for w in (line_sel, minutes):
            w.on_value_change(lambda _: refresh())
        await relist_lines()
        await refresh()
        ui.timer(10.0, refresh)  # workers store the running minute every 10 s
        return None

    @ui.page("/video/camera/{camera_id}", title="SafeCity — camera rules")
    async def camera_page(camera_id: int) -> RedirectResponse | None:
        who = await _operator()
        if who is None:
            return _login_then(f"/video/camera/{camera_id}")
        rt = _rt()

        def load() -> tuple[Any, Any]:
            if not 1 <= camera_id <= MAX_ROW_ID:  # (the query would fail)
                raise NotFound(f"camera {camera_id} does not exist")
            with rt.sessions() as s:
                return (
                    registry.visible_camera(s, camera_id=camera_id, actor=who),
                    service.get_rules(s, camera_id=camera_id),
                )

        try:
            cam, rules = await _io(load)
        except SafeCityError as exc:
            ui.label(exc.message)
            return None
        _nav(f"camera {cam.code}")
        jpeg = await _io(lambda: _live(camera_id) or b"")
        if not jpeg:
            ui.label(
                "No picture of this camera yet (no worker analyses it); rules can still "
                "be edited below as coordinates 0..1."
            )
        zones = [z.model_dump() for z in rules.zones]
        lines = [ln.model_dump() for ln in rules.lines]
        points: list[tuple[float, float]] = []
        size = {"w": 1.0, "h": 1.0}
        if jpeg:
            import cv2
            import numpy as np

            img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_2)
            if img is not None:
                size["w"], size["h"] = img.shape[1] * 2.0, img.shape[0] * 2.0

        def svg() -> str:
            w, h = size["w"], size["h"]
            out = []
            for z in zones:
                pts = " ".join(f"{x * w},{y * h}" for x, y in z["polygon"])
                out.append(
                    f'<polygon points="{pts}" fill="orange" fill-opacity="0.2" '
                    f'stroke="orange" stroke-width="2"/>'
                )
            for ln in lines:
                (ax, ay), (bx, by_) = ln["a"], ln["b"]
                out.append(
                    f'<line x1="{ax * w}" y1="{ay * h}" x2="{bx * w}" y2="{by_ * h}" '
                    'stroke="magenta" stroke-width="3"/>'
                )
            for x, y in points:
                out.append(f'<circle cx="{x * w}" cy="{y * h}" r="4" fill="yellow"/>')
            return "".join(out)

        def clicked(e: Any) -> None:
            points.append(
                (
                    min(max(e.image_x / size["w"], 0.0), 1.0),
                    min(max(e.image_y / size["h"], 0.0), 1.0),
                )
            )
            picture.set_content(svg())

        with ui.row().classes("w-full no-wrap gap-4"):
            picture = (
                ui.interactive_image(
                    _data_url(jpeg) if jpeg else None,
                    on_mouse=clicked,
                    events=["click"],
                    content=svg(),
                    cross=True,
                )
                .classes("w-2/3")
                .props("id=rules-picture")
            )
            with ui.column().classes("w-1/3"):
                ui.label(
                    "Click the picture to place points, then add them as a zone (3+ "
                    "points) or a line (2 points)."
                )
                name = ui.input("Name").props("id=rule-name")
                loiter = ui.number("Loitering after (s, zones)", value=None, min=1)
                alert = ui.checkbox("Hits are alerts (perimeter, restricted area)")
                direction = ui.select(
                    ["any", "in", "out"], value="any", label="Line direction counted"
                ).classes("w-full")
                kinds = ui.select(
                    [
                        "zone_enter",
                        "loitering",
                        "line_cross",
                        "congestion",
                        "camera_offline",
                        "camera_tampered",
                    ],
                    multiple=True,
                    value=list(rules.incident_kinds),
                    label="Alerts that open an incident",
                ).classes("w-full")
                listing = ui.column()

                def relist() -> None:
                    listing.clear()
                    with listing:
                        for coll, what in ((zones, "zone"), (lines, "line")):
                            for item in list(coll):
                                with ui.row().classes("items-center"):
                                    ui.label(f"{what}: {item['name']}")
                                    ui.button(
                                        icon="delete", on_click=partial(drop, coll, item)
                                    ).props("flat dense")

                def drop(coll: list[dict[str, Any]], item: dict[str, Any]) -> None:
                    coll.remove(item)
                    relist()
                    picture.set_content(svg())

                def add(kind: str) -> None:
                    n = (name.value or "").strip()
                    if not n:
                        ui.notify("give the rule a name", type="warning")
                        return
                    if kind == "zone" and len(points) >= 3:
                        zones.append(
                            {
                                "name": n,
                                "polygon": list(points),
                                "classes": None,
                                "loiter_s": loiter.value,
                                "alert": bool(alert.value),
                            }
                        )
                    elif kind == "line" and len(points) == 2:
                        lines.append(
                            {
                                "name": n,
                                "a": points[0],
                                "b": points[1],
                                "direction": direction.value,
                                "classes": None,
                                "alert": bool(alert.value),
                            }
                        )
                    else:
                        ui.notify("a zone needs 3 or more points, a line exactly 2", type="warning")
                        return
                    points.clear()
                    picture.set_content(svg())
                    relist()

                def clear() -> None:
                    points.clear()
                    picture.set_content(svg())

                async def save() -> None:
                    if not who.has(Perm.REGISTRY_WRITE):
                        ui.notify("your role may not change camera rules", type="negative")
                        return
                    try:
                        body = CameraRulesIn(
                            zones=[ZoneIn(**z) for z in zones],
                            lines=[LineIn(**ln) for ln in lines],
                            detect_fps=rules.detect_fps,
                            incident_kinds=kinds.value or [],
                            enabled=rules.enabled,
                        )
                    except ValueError as exc:
                        ui.notify(str(exc), type="negative")
                        return

                    def write() -> bool:
                        with rt.sessions() as s:
                            service.set_rules(
                                s, camera_id=camera_id, rules=body, now=rt.clock.now()
                            )
                            s.commit()
                        return True

                    try:
                        await _io(write)
                    except SafeCityError as exc:
                        ui.notify(exc.message, type="negative")
                        return
                    ui.notify("rules saved; the worker picks them up within 30 s", type="positive")

                with ui.row():
                    ui.button("Add zone", on_click=lambda: add("zone"))
                    ui.button("Add line", on_click=lambda: add("line"))
                    ui.button("Clear points", on_click=clear).props("flat")
                ui.button("Save rules", on_click=save).props("id=save-rules color=primary")
                relist()
        return None
