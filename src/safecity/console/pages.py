"""The command centre console: login, the live map and the live incident list.

A thin NiceGUI layer over the domain services: every read goes through a `service.py`
function, every live change arrives on the event bus. Each connected browser tab has its own
ephemeral bus subscriptions (closed when the tab goes away); incidents outside the operator's
jurisdiction are dropped before they reach the browser.

Everything the browser loads (Vue, Quasar, Leaflet, fonts) is served by this server: the
command centre is air-gapped, so the map shows no basemap unless `basemap_tile_url` names a
local tile server, and the jurisdiction polygons are drawn on a plain background."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, ParamSpec, TypeVar

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from nicegui import app as nicegui_app
from nicegui import core, run, ui
from nicegui.element import Element
from nicegui.elements.mixins.text_element import TextElement
from nicegui.storage import Storage
from starlette.routing import Match, Mount
from starlette.types import Scope

from safecity.core.auth import (
    ROLE_LABELS,
    Principal,
    authenticate_user,
    issue_token,
    principal_for_user,
    principal_from_token,
)
from safecity.core.errors import SafeCityError, Unauthenticated
from safecity.core.runtime import Runtime
from safecity.geo import service as geo
from safecity.incidents import service as incidents
from safecity.incidents.schemas import IncidentOut
from safecity.registry import service as registry

log = logging.getLogger("safecity.console")
P = ParamSpec("P")
R = TypeVar("R")

#: Pakistan Standard Time (UTC+5, no daylight saving): what the control room reads.
PKT = timezone(timedelta(hours=5), "PKT")
#: Rows kept in the live list and red markers kept on the map.
MAX_ROWS = 200
#: Seconds between two pushes of unit positions to a browser (positions are batched).
UNIT_FLUSH_S = 1.0
#: Paths the console never answers, so the API's JSON 404/405 handlers keep them.
_API_PATHS = ("/api/", "/docs", "/redoc", "/openapi.json", "/health")


def _safe_next(target: object) -> str:
    """Where the login sends back to (`next`, set by a page that needed a login): a path on
    this server, never another host."""
    if isinstance(target, str) and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


_FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<path d="M16 2 4 7v8c0 7.5 5.1 13.4 12 15 6.9-1.6 12-7.5 12-15V7z" fill="#0ea5e9"/>'
    '<path d="M16 7v18c4.6-1.4 8-5.5 8-10.5V10z" fill="#075985"/></svg>'
)


@dataclass
class _Console:
    """What the pages need; replaced when `mount` is called again (tests build many apps)."""

    runtime: Runtime | None = None
    categories: dict[str, str] = field(default_factory=dict)
    pages_registered: bool = False
    nicegui_started: bool = False


_STATE = _Console()


async def _in_thread(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run blocking database work off the event loop (NiceGUI's I/O thread pool)."""
    result = await run.io_bound(fn, *args, **kwargs)
    if result is None:  # NiceGUI cancels the call when the server shuts down
        raise asyncio.CancelledError
    return result


def _runtime() -> Runtime:
    if _STATE.runtime is None:  # pragma: no cover - mount() always sets it first
        raise RuntimeError("the console is not mounted")
    return _STATE.runtime


class _ConsoleMount(Mount):
    """The NiceGUI app under `/`, except the API's own paths: a wrong API path or method
    must get the API's JSON 404/405, not an HTML page."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = str(scope.get("path", ""))
        if path == "/api" or path.startswith(_API_PATHS):
            return Match.NONE, {}
        return super().matches(scope)


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Serve the console on `app` (after every API route, so none is shadowed)."""
    _STATE.runtime = runtime
    with runtime.sessions() as session:
        _STATE.categories = {t.code: t.label for t in incidents.list_types(session)}
    if not _STATE.pages_registered:
        _register_pages()
        _STATE.pages_registered = True
    from safecity.video import ui as video_ui  # camera list, wall, events, traffic

    video_ui.register_pages(runtime)
    if _STATE.nicegui_started:
        # NiceGUI is one app per process: a second FastAPI app (tests) serves the same pages,
        # which now read the newest runtime. The API of every app is unaffected.
        app.router.routes.append(_ConsoleMount("", app=core.app))
        return
    storage_dir = runtime.settings.data_dir.resolve() / "console"
    storage_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    Storage.path = storage_dir  # the session store (it holds access tokens) stays private
    secret = hmac.new(
        runtime.settings.signing_key().encode(), b"safecity-console-storage", hashlib.sha256
    ).hexdigest()
    ui.run_with(
        app,
        title="SafeCity",
        favicon=_FAVICON,
        dark=True,
        storage_secret=secret,
        session_middleware_kwargs={"same_site": "lax", "max_age": 14 * 24 * 3600},
        reconnect_timeout=10.0,
        show_welcome_message=False,
    )
    _STATE.nicegui_started = True
    for i, route in enumerate(app.router.routes):
        if isinstance(route, Mount) and route.app is core.app:
            app.router.routes[i] = _ConsoleMount(route.path, app=core.app, name=route.name)


# --------------------------------------------------------------------------- sessions


def _login(runtime: Runtime, username: str, password: str) -> tuple[str, Principal]:
    """Check the password; return a signed access token for the console session."""
    with runtime.sessions() as session:
        user = authenticate_user(session, username=username, password=password)
        token = issue_token(
            user,
            key=runtime.settings.signing_key(),
            now=runtime.clock.now(),
            minutes=runtime.settings.access_token_minutes,
        )
        return token, principal_for_user(user)


def _principal(runtime: Runtime, token: str) -> Principal:
    """The logged-in operator, re-read each page load (a disabled account is out at once)."""
    with runtime.sessions() as session:
        return principal_from_token(
            session, token, key=runtime.settings.signing_key(), now=runtime.clock.now()
        )


async def _current_principal() -> Principal | None:
    token = nicegui_app.storage.user.get("token")
    if not isinstance(token, str):
        return None
    try:
        return await _in_thread(_principal, _runtime(), token)
    except Unauthenticated as exc:
        nicegui_app.storage.user.clear()
        nicegui_app.storage.user["notice"] = exc.message
        return None


def _logout() -> None:
    nicegui_app.storage.user.clear()
    nicegui_app.storage.user["notice"] = "you have logged out"
    ui.navigate.to("/login")


# --------------------------------------------------------------------------- data


@dataclass
class _Snapshot:
    """Everything the command centre page shows when it opens."""

    jurisdiction_name: str
    stations: dict[str, Any]
    districts: dict[str, Any]
    station_names: dict[int, str]
    sites: list[list[Any]]
    units: list[list[Any]]
    incidents: list[IncidentOut]
    fit: list[list[float]] | None


def _in_scope(principal: Principal, props: dict[str, Any]) -> bool:
    """Whether a station feature lies inside the principal's jurisdiction."""
    level = principal.scope_level
    if level in ("all", "province"):
        return True  # one province per deployment: every station is in it
    key = "id" if level == "station" else f"{level}_id"
    return bool(props.get(key) == principal.scope_id)


def _bounds(features: list[dict[str, Any]]) -> list[list[float]] | None:
    xs: list[float] = []
    ys: list[float] = []

    def walk(coords: Any) -> None:
        if coords and isinstance(coords[0], int | float):
            xs.append(float(coords[0]))
            ys.append(float(coords[1]))
            return
        for c in coords:
            walk(c)

    for f in features:
        walk(f["geometry"]["coordinates"])
    if not xs:
        return None
    return [[min(ys), min(xs)], [max(ys), max(xs)]]


def _snapshot(runtime: Runtime, principal: Principal) -> _Snapshot:
    with runtime.sessions() as session:
        stations = geo.feature_collection(session, level="station", simplify_m=5.0)
        for f in stations["features"]:
            f["properties"]["mine"] = principal.scope_level != "all" and _in_scope(
                principal, f["properties"]
            )
        districts = geo.feature_collection(session, level="district", simplify_m=20.0)
        station_names = {int(f["id"]): str(f["properties"]["name"]) for f in stations["features"]}
        mine = [f for f in stations["features"] if f["properties"]["mine"]]
        fit = _bounds(mine or stations["features"])
        jurisdiction_name = "all jurisdictions"
        if principal.scope_id is not None:
            try:
                j = geo.get_jurisdiction(session, jurisdiction_id=principal.scope_id)
                jurisdiction_name = j.name
            except SafeCityError:
                jurisdiction_name = f"{principal.scope_level} {principal.scope_id}"
        cameras = Counter(c.site_id for c in registry.list_cameras(session))
        sites = [
            [s.id, s.lat, s.lon, s.name, cameras.get(s.id, 0)] for s in registry.list_sites(session)
        ]
        units = [[u.id, u.lat, u.lon, u.callsign, u.status] for u in registry.list_units(session)]
        listed = incidents.list_incidents(session, actor=principal, limit=50)
    return _Snapshot(
        jurisdiction_name, stations, districts, station_names, sites, units, listed, fit
    )


# --------------------------------------------------------------------------- browser side

_CSS = """
body { background: #0b1220; }
.nicegui-content { padding: 0; gap: 0; }
.sc-header { background: #0f172a; border-bottom: 1px solid #1e293b; }
.sc-main { height: calc(100vh - 48px); width: 100%; }
#map { height: 100%; width: 100%; }
#map.leaflet-container { background: #0d1626; font: 12px/1.4 Roboto, sans-serif; }
#map .leaflet-tooltip { background: #0f172a; color: #e2e8f0; border: 1px solid #334155;
  box-shadow: 0 2px 6px rgba(0,0,0,.5); }
#map .leaflet-tooltip-top:before { border-top-color: #334155; }
#map .leaflet-control-layers, #map .sc-legend { background: #0f172a; color: #cbd5e1;
  border: 1px solid #334155; border-radius: 4px; }
#map .leaflet-control-layers-toggle { filter: invert(85%); }
#map .leaflet-bar a { background: #0f172a; color: #cbd5e1; border-bottom-color: #334155; }
#map .leaflet-control-scale-line { background: rgba(15,23,42,.8); color: #cbd5e1;
  border-color: #64748b; }
#map .leaflet-control-attribution { background: rgba(15,23,42,.8); color: #64748b; }
#map .leaflet-control-attribution a { color: #94a3b8; }
#map .sc-legend { padding: 6px 8px; line-height: 18px; font-size: 11px; }
#map .sc-legend i { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  margin-right: 6px; vertical-align: -1px; }
.sc-side { width: 480px; min-width: 380px; background: #0f172a; border-left: 1px solid #1e293b; }
#incident-list { width: 100%; border-collapse: collapse; font-size: 12px; color: #e2e8f0; }
#incident-list th { position: sticky; top: 0; background: #111c30; color: #94a3b8;
  text-align: left; font-weight: 500; padding: 4px 6px; border-bottom: 1px solid #1e293b; }
#incident-list td { padding: 3px 6px; border-bottom: 1px solid #16213a; white-space: nowrap; }
#incident-list td.sc-cat { max-width: 170px; overflow: hidden; text-overflow: ellipsis; }
#incident-list tr:hover td { background: #16233b; }
.sc-prio { font-weight: 700; border-radius: 3px; padding: 0 5px; }
.sc-p1 { color: #fff; background: #dc2626; }
.sc-p2 { color: #111; background: #f59e0b; }
.sc-p3 { color: #fff; background: #2563eb; }
.sc-p4 { color: #cbd5e1; background: #334155; }
@keyframes sc-flash { from { background: #7f1d1d; } to { background: transparent; } }
tr.sc-new td { animation: sc-flash 4s ease-out; }
.sc-live { width: 8px; height: 8px; border-radius: 50%; background: #22c55e;
  box-shadow: 0 0 6px #22c55e; display: inline-block; }
"""

# The map layers are drawn here, from data the server pushes; Leaflet itself comes with NiceGUI.
_JS = r"""
<script>
window.SafeCity = (() => {
  const maps = {};
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => (
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const unitColor = {available: "#22c55e", dispatched: "#f59e0b", en_route: "#f59e0b",
                     on_scene: "#a855f7", off_duty: "#64748b"};
  function get(id) {
    const el = getElement(id);
    if (!el || !el.map || !window.L) return null;
    if (!maps[id] || maps[id].map !== el.map) maps[id] = {map: el.map, units: new Map(),
                                                          incidents: new Map()};
    return maps[id];
  }
  function unit(c, u) {
    const [id, lat, lon, callsign, status] = u;
    let m = c.units.get(id);
    const color = unitColor[status] || "#22c55e";
    if (!m) {
      m = L.circleMarker([lat, lon], {radius: 3.5, weight: 1, color: "#0b1220",
                                      fillColor: color, fillOpacity: 1, className: "sc-unit"});
      m.bindTooltip(() => `<b>${esc(m.sc.callsign)}</b><br>${esc(m.sc.status)}`);
      c.unitLayer.addLayer(m);
      c.units.set(id, m);
    } else {
      m.setLatLng([lat, lon]);
      m.setStyle({fillColor: color});
    }
    m.sc = {callsign: callsign ?? m.sc?.callsign ?? "", status: status ?? m.sc?.status ?? ""};
    m.setStyle({fillColor: unitColor[m.sc.status] || "#22c55e"});
  }
  function incident(c, i) {
    if (c.incidents.has(i.id)) return;
    const m = L.circleMarker([i.lat, i.lon], {radius: 7, weight: 2, color: "#fecaca",
      fillColor: "#dc2626", fillOpacity: 0.9, className: "sc-incident"});
    m.bindTooltip(`<b>#${i.id} P${i.priority} ${esc(i.label)}</b><br>${esc(i.station)}`
                  + `<br>${esc(i.time)}`);
    c.incidentLayer.addLayer(m);
    c.incidents.set(i.id, m);
    if (c.incidents.size > c.maxIncidents) {
      const oldest = c.incidents.keys().next().value;
      c.incidentLayer.removeLayer(c.incidents.get(oldest));
      c.incidents.delete(oldest);
    }
  }
  return {
    init(id, cfg) {
      const c = get(id);
      if (!c) return false;
      c.maxIncidents = cfg.maxIncidents;
      c.districtLayer = L.geoJSON(cfg.districts, {interactive: false,
        style: {color: "#7dd3fc", weight: 2.5, opacity: 0.9, fill: false,
                className: "sc-district"}});
      c.jurLayer = L.geoJSON(cfg.stations, {
        style: (f) => f.properties.mine
          ? {color: "#fbbf24", weight: 2.5, fillColor: "#fbbf24", fillOpacity: 0.08,
             className: "sc-jurisdiction sc-mine"}
          : {color: "#38bdf8", weight: 1, opacity: 0.7, fillColor: "#38bdf8",
             fillOpacity: 0.04, className: "sc-jurisdiction"},
        onEachFeature: (f, layer) => {
          const p = f.properties;
          layer.bindTooltip(`<b>${esc(p.name)}</b><br>Tehsil ${esc(p.tehsil)}`
                            + `<br>District ${esc(p.district)}`, {sticky: true});
        },
      }).addTo(c.map);
      c.districtLayer.addTo(c.map);
      c.siteLayer = L.layerGroup().addTo(c.map);
      for (const [, lat, lon, name, cams] of cfg.sites) {
        L.circleMarker([lat, lon], {radius: 4, weight: 1.5, color: "#e2e8f0",
                                    fillColor: "#0f172a", fillOpacity: 0.6, className: "sc-site"})
          .bindTooltip(`<b>${esc(name)}</b><br>${cams} camera${cams === 1 ? "" : "s"}`)
          .addTo(c.siteLayer);
      }
      c.unitLayer = L.layerGroup().addTo(c.map);
      cfg.units.forEach((u) => unit(c, u));
      c.incidentLayer = L.layerGroup().addTo(c.map);
      cfg.incidents.forEach((i) => incident(c, i));
      L.control.layers(null, {"Station jurisdictions": c.jurLayer,
                              "District boundaries": c.districtLayer, "Sites (CCTV)": c.siteLayer,
                              "Units": c.unitLayer, "Incidents": c.incidentLayer},
                       {collapsed: true, position: "topright"}).addTo(c.map);
      const legend = L.control({position: "bottomright"});
      legend.onAdd = () => {
        const div = L.DomUtil.create("div", "sc-legend");
        div.innerHTML = '<i style="background:#dc2626"></i>Incident<br>'
          + '<i style="background:#22c55e"></i>Unit available<br>'
          + '<i style="background:#f59e0b"></i>Unit dispatched / en route<br>'
          + '<i style="background:#a855f7"></i>Unit on scene<br>'
          + '<i style="border:1.5px solid #e2e8f0"></i>Site with cameras';
        return div;
      };
      legend.addTo(c.map);
      L.control.scale({imperial: false}).addTo(c.map);
      if (cfg.fit) c.map.fitBounds(cfg.fit, {padding: [24, 24], maxZoom: 13});
      c.ready = true;
      document.getElementById("map").dataset.ready = "true";
      return true;
    },
    units(id, rows) {
      const c = get(id);
      if (c && c.ready) rows.forEach((u) => unit(c, u));
    },
    incidents(id, rows) {
      const c = get(id);
      if (c && c.ready) rows.forEach((i) => incident(c, i));
    },
  };
})();
</script>
"""


class _Cell(TextElement):
    """A table cell with text (NiceGUI has no plain <td> element)."""

    def __init__(self, text: str = "", *, tag: str = "td") -> None:
        super().__init__(tag=tag, text=text)


def _local_time(at: datetime | str) -> tuple[str, str]:
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    local = when.astimezone(PKT)
    return local.strftime("%H:%M:%S"), local.strftime("%Y-%m-%d %H:%M:%S PKT")


class _IncidentList:
    """The live list beside the map: newest first, at most MAX_ROWS rows."""

    def __init__(self) -> None:
        with ui.element("table").props("id=incident-list"):
            with ui.element("thead"), ui.element("tr"):
                for title in ("P", "#", "Category", "Station", "Time", "Status"):
                    _Cell(title, tag="th")
            self.body = ui.element("tbody")
        self.rows: dict[int, Element] = {}
        self.status: dict[int, _Cell] = {}

    def add(self, row: dict[str, Any], *, new: bool) -> None:
        incident_id = int(row["id"])
        if incident_id in self.rows:
            return
        with self.body:
            tr = ui.element("tr").classes("sc-incident-row" + (" sc-new" if new else ""))
            tr.props["data-incident-id"] = str(incident_id)
            tr.props["data-station-id"] = str(row["station_id"])
            tr.props["title"] = row["title"]
            with tr:
                with ui.element("td"):
                    prio = int(row["priority"])
                    _Cell(f"P{prio}", tag="span").classes(f"sc-prio sc-p{min(max(prio, 1), 4)}")
                _Cell(str(incident_id))
                _Cell(row["label"]).classes("sc-cat")
                _Cell(row["station"])
                _Cell(row["time"])
                self.status[incident_id] = _Cell(row["status"]).classes("sc-status")
        if new:
            tr.move(target_index=0)
        self.rows[incident_id] = tr
        while len(self.rows) > MAX_ROWS:
            oldest = min(self.rows)
            self.body.remove(self.rows.pop(oldest))
            self.status.pop(oldest, None)

    def set_status(self, incident_id: int, status: str) -> None:
        cell = self.status.get(incident_id)
        if cell is not None:
            cell.set_text(status)


def _row(
    *,
    incident_id: int,
    priority: int,
    category: str,
    station_id: int,
    station: str,
    received_at: datetime | str,
    status: str,
    lat: float,
    lon: float,
    description: str,
) -> dict[str, Any]:
    label = _STATE.categories.get(category, category)
    time, full = _local_time(received_at)
    return {
        "id": incident_id,
        "priority": priority,
        "label": label,
        "station_id": station_id,
        "station": station,
        "time": time,
        "status": status,
        "lat": lat,
        "lon": lon,
        "title": f"{full} — {description}" if description else full,
    }


# --------------------------------------------------------------------------- pages


def _register_pages() -> None:
    from safecity.console import dispatch_ui, mobile_ui  # they build on this module

    dispatch_ui.register()
    mobile_ui.register()
    from safecity.analytics import ui as analytics_ui

    analytics_ui.register_pages(_runtime)

    @ui.page("/login", title="SafeCity — log in")
    async def login_page() -> RedirectResponse | None:
        if await _current_principal() is not None:
            return RedirectResponse("/", status_code=303)
        notice = nicegui_app.storage.user.pop("notice", None)
        ui.add_css(_CSS)
        ui.query("body").classes("bg-slate-950")
        with (
            ui.column().classes("w-full items-center justify-center").style("min-height: 90vh"),
            ui.card().classes("w-96 bg-slate-900 border border-slate-700 shadow-xl"),
        ):
            with ui.row().classes("items-center gap-2"):
                ui.icon("shield", size="md").classes("text-sky-500")
                ui.label("SafeCity").classes("text-2xl font-bold text-slate-100")
            ui.label("Command and control: authorised police staff only").classes(
                "text-xs text-slate-400"
            )
            username = ui.input("Username").props("for=login-username dense outlined autofocus")
            username.classes("w-full")
            password = ui.input("Password", password=True).props(
                "for=login-password dense outlined"
            )
            password.classes("w-full")
            error = ui.label("").props("id=login-error role=alert")
            error.classes("text-sm text-red-400")
            error.set_visibility(False)
            if isinstance(notice, str):
                error.set_text(notice[:1].upper() + notice[1:] + ".")
                error.classes(replace="text-sm text-slate-300")
                error.set_visibility(True)

            async def submit() -> None:
                name = (username.value or "").strip()
                if not name or not password.value:
                    error.set_text("Enter your username and password.")
                    error.classes(replace="text-sm text-red-400")
                    error.set_visibility(True)
                    return
                button.disable()
                try:
                    token, who = await _in_thread(_login, _runtime(), name, password.value)
                except Unauthenticated as exc:
                    log.warning("console login refused for %r: %s", name[:64], exc.message)
                    error.set_text(f"Login refused: {exc.message}.")
                    error.classes(replace="text-sm text-red-400")
                    error.set_visibility(True)
                    password.set_value("")
                    return
                finally:
                    button.enable()
                log.info("console login: %s (%s)", who.name, who.role.value)
                target = nicegui_app.storage.user.pop("next", "/")
                nicegui_app.storage.user.update(token=token, username=who.name)
                ui.navigate.to(_safe_next(target))

            password.on("keydown.enter", submit)
            button = ui.button("Log in", on_click=submit).props("id=login-submit unelevated")
            button.classes("w-full bg-sky-700")
        return None

    @ui.page("/")
    async def command_centre() -> RedirectResponse | None:
        principal = await _current_principal()
        if principal is None:
            return RedirectResponse("/login", status_code=303)
        runtime = _runtime()
        client = ui.context.client
        # Subscribe before reading the list, so nothing published in between is missed.
        incident_sub = runtime.bus.subscribe("incidents.>")
        unit_sub = runtime.bus.subscribe("units.location")

        def close_subscriptions() -> None:
            incident_sub.close()
            unit_sub.close()

        client.on_delete(close_subscriptions)
        try:
            snap = await _in_thread(_snapshot, runtime, principal)
        except BaseException:
            close_subscriptions()
            raise
        ui.add_css(_CSS)
        ui.add_head_html(_JS)
        role = ROLE_LABELS.get(principal.role, principal.role.value)
        with ui.header().classes("sc-header items-center px-3 py-0 h-12 gap-3"):
            ui.icon("shield").classes("text-sky-500 text-xl")
            ui.label("SafeCity").classes("text-lg font-bold tracking-wide text-slate-100")
            ui.label("Command & Control").classes("text-xs text-slate-400 uppercase")
            ui.link("Dispatch board", "/dispatch").props("id=nav-dispatch").classes(
                "text-sm text-sky-300 ml-3"
            )
            ui.link("Analytics", "/analytics").props("id=nav-analytics").classes(
                "text-sm text-sky-300 ml-3"
            )
            ui.link("Cameras", "/video").props("id=nav-video").classes("text-sm text-sky-300 ml-3")
            ui.space()
            with ui.row().classes("items-center gap-1"):
                ui.element("span").classes("sc-live")
                ui.label("live").classes("text-xs text-green-400 uppercase")
            ui.label(principal.name).props("id=current-user").classes(
                "text-sm font-medium text-slate-100"
            )
            ui.label(f"{role} · {snap.jurisdiction_name}").props("id=current-role").classes(
                "text-xs text-slate-400"
            )
            ui.button("Log out", icon="logout", on_click=_logout).props(
                "id=logout flat dense no-caps size=sm color=grey-4"
            )

        station_names = snap.station_names
        initial = [
            _row(
                incident_id=i.incident_id,
                priority=i.priority,
                category=i.category,
                station_id=i.station_id,
                station=station_names.get(i.station_id, f"station {i.station_id}"),
                received_at=i.received_at,
                status=i.status,
                lat=i.lat,
                lon=i.lon,
                description=i.description,
            )
            for i in snap.incidents
        ]
        with ui.row().classes("sc-main no-wrap gap-0"):
            with ui.element("div").classes("flex-grow h-full relative"):
                center = (34.0, 71.6)
                fmap = ui.leaflet(
                    center=center, zoom=10, options={"zoomSnap": 0.25, "zoomDelta": 0.5}
                )
                fmap.props("id=map").classes("h-full w-full")
                fmap.clear_layers()  # drop NiceGUI's default OpenStreetMap tiles (internet)
                tile_url = runtime.settings.basemap_tile_url
                if tile_url:
                    fmap.tile_layer(url_template=tile_url, options={"maxZoom": 19})
            with ui.column().classes("sc-side h-full gap-0"):
                with ui.row().classes("w-full items-center px-3 py-2 gap-2"):
                    ui.label("Incidents").classes("text-sm font-semibold text-slate-200")
                    count = (
                        ui.label("").props("id=incident-count").classes("text-xs text-slate-400")
                    )
                    ui.space()
                    ui.label("newest first · PKT").classes("text-xs text-slate-500")
                with ui.scroll_area().classes("w-full flex-grow"):
                    table = _IncidentList()
                    for r in initial:
                        table.add(r, new=False)
                    empty = ui.label(f"No incidents in {snap.jurisdiction_name} yet.")
                    empty.props("id=incident-empty").classes("text-xs text-slate-500 px-3 py-2")

        def show_count() -> None:
            count.set_text(f"{len(table.rows)} shown")
            empty.set_visibility(not table.rows)

        show_count()

        map_config = {
            "stations": snap.stations,
            "districts": snap.districts,
            "sites": snap.sites,
            "units": snap.units,
            "incidents": [_marker(r) for r in reversed(initial)],
            "fit": snap.fit,
            "maxIncidents": MAX_ROWS,
        }

        async def draw_map() -> None:
            await fmap.initialized()
            ui.run_javascript(f"SafeCity.init({fmap.id}, {json.dumps(map_config)})")

        ui.timer(0.0, draw_map, once=True)

        async def pump_incidents() -> None:
            msgs = await incident_sub.fetch_async(batch=100, timeout=1.0)
            fresh: list[dict[str, Any]] = []
            for msg in msgs:
                data = msg.data
                try:
                    if incidents.visible_to(principal, data):
                        _apply_incident(table, msg.subject, data, fresh)
                except (KeyError, TypeError, ValueError):
                    log.warning("console: malformed %s event %r", msg.subject, data)
                msg.ack()
            if fresh:
                show_count()
                markers = json.dumps([_marker(r) for r in fresh])
                ui.run_javascript(f"SafeCity.incidents({fmap.id}, {markers})")

        pending_units: dict[int, list[Any]] = {}

        async def pump_units() -> None:
            for msg in await unit_sub.fetch_async(batch=1000, timeout=1.0):
                d = msg.data
                try:
                    pending_units[int(d["id"])] = [
                        int(d["id"]),
                        float(d["lat"]),
                        float(d["lon"]),
                        d.get("callsign"),  # GPS batches carry neither: keep what is shown
                        d.get("status"),
                    ]
                except (KeyError, TypeError, ValueError):
                    log.warning("console: malformed units.location event %r", d)
                msg.ack()

        def flush_units() -> None:
            if pending_units:
                rows = json.dumps(list(pending_units.values()))
                pending_units.clear()
                ui.run_javascript(f"SafeCity.units({fmap.id}, {rows})")

        ui.timer(0.05, pump_incidents)
        ui.timer(0.05, pump_units)
        ui.timer(UNIT_FLUSH_S, flush_units)
        return None


def _marker(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "lat", "lon", "priority", "label", "station", "time")
    return {k: row[k] for k in keys}


def _apply_incident(
    table: _IncidentList, subject: str, data: dict[str, Any], fresh: list[dict[str, Any]]
) -> None:
    incident_id = int(data["incident_id"])
    if subject == "incidents.created":
        row = _row(
            incident_id=incident_id,
            priority=int(data["priority"]),
            category=str(data["category"]),
            station_id=int(data["station_id"]),
            station=str(data.get("station_name") or f"station {data['station_id']}"),
            received_at=str(data["received_at"]),
            status=str(data.get("status", "")),
            lat=float(data["lat"]),
            lon=float(data["lon"]),
            description=str(data.get("description", "")),
        )
        if incident_id not in table.rows:
            table.add(row, new=True)
            fresh.append(row)
    elif "status" in data:
        table.set_status(incident_id, str(data["status"]))
