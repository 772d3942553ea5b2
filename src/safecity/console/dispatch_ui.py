"""The dispatch board (`/dispatch`): the queue of open incidents with live response timers,
the selected incident with its timeline, recommended units and one-click dispatch, the
response-time alerts, per-district KPIs and the response-time report.

A thin layer over `incidents.service` and `dispatch.service`, like the command centre page:
each browser tab subscribes to the bus (`incidents.>`, `dispatch.>`, `alerts.>`, `units.>`)
and re-reads only what an event touched; rows outside the operator's jurisdiction are dropped
before they reach the browser. The timers tick in the browser from the timestamps the server
sends, so a hundred open incidents cost no server traffic per second."""

from __future__ import annotations

import functools
import json
import logging
import time as time_
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Concatenate, ParamSpec

from fastapi.responses import RedirectResponse
from nicegui import app as nicegui_app
from nicegui import events, ui
from nicegui.element import Element
from sqlalchemy.orm import Session

from safecity.console import pages as base
from safecity.core.auth import ROLE_LABELS, JurisdictionIds, Perm, Principal
from safecity.core.errors import InvalidInput, SafeCityError
from safecity.core.runtime import Runtime
from safecity.dispatch import service as dispatch
from safecity.dispatch.schemas import (
    AlertOut,
    AssignmentOut,
    DistrictKpi,
    Recommendation,
    ResponseTimeRow,
)
from safecity.geo import service as geo
from safecity.incidents import service as incidents
from safecity.incidents.lifecycle import OPEN, TRANSITIONS, Status
from safecity.incidents.schemas import IncidentDetail, IncidentOut, ResponseTargetOut
from safecity.registry import service as registry
from safecity.video import service as video

log = logging.getLogger("safecity.console.dispatch")
P = ParamSpec("P")

#: Open incidents read into the queue when the board opens.
MAX_QUEUE = 500
#: Seconds between two refreshes of the KPI cards while their tab is shown.
KPI_REFRESH_S = 30.0
#: Units offered for one incident.
RECOMMEND = 6
#: Seconds between two re-reads of the selected incident's recommendations while units move.
RECOMMEND_REFRESH_S = 3.0

Targets = dict[tuple[int, str], ResponseTargetOut]
_OPEN = frozenset(s.value for s in OPEN)
#: Where units can still be sent (dispatch.service.dispatch_units refuses the rest).
_DISPATCHABLE = frozenset({"routed", "acknowledged", "dispatched", "en_route", "on_scene"})
_TRANSFERABLE = frozenset({"routed", "acknowledged"})  # incidents.service.transfer to a station

STATUS_LABELS = {
    "received": "Received",
    "routed": "Routed",
    "acknowledged": "Acknowledged",
    "dispatched": "Dispatched",
    "en_route": "En route",
    "on_scene": "On scene",
    "resolved": "Resolved",
    "closed": "Closed",
    "cancelled": "Cancelled",
    "merged": "Merged",
    "transferred": "Transferred",
}
ASSIGNMENT_LABELS = {
    "queued": "Queued (busy)",
    "assigned": "Dispatched",
    "en_route": "En route",
    "on_scene": "On scene",
    "cleared": "Cleared",
}
_NOTIFY_ROLE = {
    "sho": "SHO",
    "sdpo": "SDPO",
    "district_sp": "District SP",
    "central_command": "Central command",
}
_TARGET_LABELS = {"acknowledge": "ack", "dispatch": "dispatch", "arrive": "arrive"}
_KIND_LABELS = {"patrol_car": "Patrol car", "motorcycle": "Motorcycle", "foot": "Foot"}


# --------------------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class NextTarget:
    """The next response target an open incident must meet: `label` is acknowledge,
    dispatch or arrive; the clock runs from `start` to `due`."""

    label: str
    start: datetime
    due: datetime


def next_target(inc: IncidentOut, targets: Targets) -> NextTarget | None:
    """The first milestone not reached yet, timed as the response-time monitor times it;
    None once a unit is on scene or when no target applies."""
    t = targets.get((inc.priority, inc.area_type)) or targets.get((inc.priority, "urban"))
    if t is None or inc.status not in _OPEN:
        return None
    if inc.acknowledged_at is None and inc.dispatched_at is None:
        start = inc.routed_at or inc.received_at
        return NextTarget("acknowledge", start, start + timedelta(seconds=t.acknowledge_s))
    if inc.dispatched_at is None:
        return NextTarget(
            "dispatch", inc.received_at, inc.received_at + timedelta(seconds=t.dispatch_s)
        )
    if inc.on_scene_at is None:
        return NextTarget(
            "arrive", inc.received_at, inc.received_at + timedelta(seconds=t.arrive_s)
        )
    return None


def sla_state(target: NextTarget | None, now: datetime) -> str:
    """`ok`, `amber` (less than half the time left), `red` (breached) or `none`."""
    if target is None:
        return "none"
    left = (target.due - now).total_seconds()
    if left <= 0:
        return "red"
    span = max((target.due - target.start).total_seconds(), 1.0)
    return "amber" if left / span < 0.5 else "ok"


def queue_order(incs: list[IncidentOut]) -> list[IncidentOut]:
    """Most urgent first: priority, then the oldest."""
    return sorted(incs, key=lambda i: (i.priority, i.received_at, i.incident_id))


def duration(seconds: float | None) -> str:
    """`m:ss` (or `h:mm:ss`); an em dash for no value."""
    if seconds is None:
        return "—"
    s = round(abs(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    text = f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
    return f"-{text}" if seconds < 0 else text


def _ms(at: datetime) -> str:
    return str(round(at.timestamp() * 1000))


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def report_chart(rows: list[ResponseTimeRow]) -> dict[str, Any]:
    """ECharts options: median and 90th percentile of both intervals per group, minutes."""
    axis = {"color": "#94a3b8"}
    series = [
        ("Answer → dispatch, median", "answer_to_dispatch_median_s", "#38bdf8"),
        ("Answer → dispatch, p90", "answer_to_dispatch_p90_s", "#0369a1"),
        ("Dispatch → scene, median", "dispatch_to_scene_median_s", "#f59e0b"),
        ("Dispatch → scene, p90", "dispatch_to_scene_p90_s", "#b45309"),
    ]
    return {
        "backgroundColor": "transparent",
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "textStyle": {"color": "#cbd5e1"}},
        "grid": {"left": 50, "right": 20, "top": 40, "bottom": 70},
        "xAxis": {
            "type": "category",
            "data": [r.group_name for r in rows],
            "axisLabel": {**axis, "rotate": 30 if len(rows) > 6 else 0, "interval": 0},
        },
        "yAxis": {
            "type": "value",
            "name": "minutes",
            "nameTextStyle": axis,
            "axisLabel": axis,
            "splitLine": {"lineStyle": {"color": "#1e293b"}},
        },
        "series": [
            {
                "name": name,
                "type": "bar",
                "itemStyle": {"color": color},
                "data": [_minutes(getattr(r, key)) for r in rows],
            }
            for name, key, color in series
        ],
    }


# --------------------------------------------------------------------------- reads


@dataclass
class _Board:
    """What the board shows when it opens."""

    jurisdiction_name: str
    targets: Targets
    queue: list[IncidentOut]
    alerts: list[AlertOut]
    station_names: dict[int, str]
    stations: dict[str, Any]
    fit: list[list[float]] | None
    units: list[dict[str, Any]]
    agencies: dict[str, str]
    now: datetime


def _board(runtime: Runtime, principal: Principal) -> _Board:
    with runtime.sessions() as session:
        stations = geo.feature_collection(session, level="station", simplify_m=10.0)
        for f in stations["features"]:
            f["properties"]["mine"] = principal.scope_level != "all" and base._in_scope(
                principal, f["properties"]
            )
        mine = [f for f in stations["features"] if f["properties"]["mine"]]
        name = "all jurisdictions"
        if principal.scope_id is not None:
            try:
                name = geo.get_jurisdiction(session, jurisdiction_id=principal.scope_id).name
            except SafeCityError:
                name = f"{principal.scope_level} {principal.scope_id}"
        return _Board(
            jurisdiction_name=name,
            targets={(t.priority, t.area_type): t for t in incidents.list_targets(session)},
            queue=incidents.list_incidents(
                session, actor=principal, open_only=True, limit=MAX_QUEUE
            ),
            alerts=dispatch.list_alerts(session, actor=principal, open_only=True),
            station_names={
                int(f["id"]): str(f["properties"]["name"]) for f in stations["features"]
            },
            stations=stations,
            fit=base._bounds(mine or stations["features"]),
            units=[
                _unit_row(u.id, u.lat, u.lon, u.callsign, u.status)
                for u in registry.list_units(session)
            ],
            agencies={a.code: a.name for a in registry.list_agencies(session)},
            now=runtime.clock.now(),
        )


def _unit_row(
    unit_id: int, lat: Any, lon: Any, callsign: Any = None, status: Any = None
) -> dict[str, Any]:
    return {
        "id": int(unit_id),
        "lat": None if lat is None else float(lat),
        "lon": None if lon is None else float(lon),
        "callsign": None if callsign is None else str(callsign),
        "status": None if status is None else str(status),
    }


def _covers(principal: Principal, inc: IncidentOut) -> bool:
    return principal.covers(
        JurisdictionIds(inc.station_id, inc.tehsil_id, inc.district_id, inc.province_id)
    )


def _read_incidents(
    runtime: Runtime, principal: Principal, ids: list[int]
) -> dict[int, IncidentOut | None]:
    """The open incidents among `ids` that the operator may see (None: drop from queue)."""
    out: dict[int, IncidentOut | None] = {}
    with runtime.sessions() as session:
        for incident_id in ids:
            try:
                inc = incidents.incident_for_system(session, incident_id=incident_id)
            except SafeCityError:
                out[incident_id] = None
                continue
            visible = inc.status in _OPEN and _covers(principal, inc)
            out[incident_id] = inc if visible else None
    return out


@dataclass
class _Detail:
    inc: IncidentDetail
    station_name: str
    assignments: list[tuple[AssignmentOut, str]]
    recommendations: list[Recommendation]


def _detail(runtime: Runtime, principal: Principal, incident_id: int) -> _Detail:
    with runtime.sessions() as session:
        inc = incidents.get_incident(session, incident_id=incident_id, actor=principal)
        assignments = [
            (a, registry.get_unit(session, unit_id=a.unit_id).callsign)
            for a in dispatch.assignments_of(session, incident_id=incident_id)
        ]
        recs = (
            dispatch.recommend_units(
                session, incident_id=incident_id, actor=principal, limit=RECOMMEND
            )
            if inc.status in _DISPATCHABLE
            else []
        )
        station = geo.get_jurisdiction(session, jurisdiction_id=inc.station_id).name
    return _Detail(inc, station, assignments, recs)


def apply_change(runtime: Runtime, change: Callable[[Session, datetime], object]) -> bool:
    """Run one change through the services and commit it (events go out after the commit)."""
    with runtime.sessions() as session:
        change(session, runtime.clock.now())
        session.commit()
    return True


def _kpis(runtime: Runtime, principal: Principal) -> list[DistrictKpi]:
    with runtime.sessions() as session:
        return dispatch.district_kpis(session, actor=principal, now=runtime.clock.now())


def _report(
    runtime: Runtime, principal: Principal, since: datetime, until: datetime, group_by: str
) -> list[ResponseTimeRow]:
    with runtime.sessions() as session:
        return dispatch.response_time_report(
            session, actor=principal, since=since, until=until, group_by=group_by
        )


def _stations(runtime: Runtime) -> dict[int, str]:
    with runtime.sessions() as session:
        rows = geo.list_jurisdictions(session, level="station")
        return {j.id: j.name for j in sorted(rows, key=lambda j: j.name)}


def in_page(
    handler: Callable[Concatenate[Any, P], Awaitable[None]],
) -> Callable[Concatenate[Any, P], Awaitable[None]]:
    """Run a page object's handler in its page's own content, not in the element that was
    clicked: a live update may delete that element (a rebuilt panel, an acknowledged alert)
    while the handler still awaits the database, and NiceGUI then has no place for the
    notification or dialog that follows."""

    async def wrapper(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> None:
        with self.client:
            await handler(self, *args, **kwargs)

    functools.update_wrapper(wrapper, handler)  # NiceGUI reads the signature for its arguments
    return wrapper


# --------------------------------------------------------------------------- browser side

CSS = """
.sc-board { height: calc(100vh - 48px); width: 100%; }
.sc-board .q-tab-panels, .sc-board .q-tab-panel { background: transparent; padding: 0;
  height: 100%; }
.sc-board .q-scrollarea__content { padding: 0; }
.sc-pane { background: #0f172a; border-right: 1px solid #1e293b; }
.sc-pane-title { font-size: 13px; font-weight: 600; color: #e2e8f0; }
.sc-table { width: 100%; border-collapse: collapse; font-size: 12px; color: #e2e8f0; }
.sc-table th { position: sticky; top: 0; background: #111c30; color: #94a3b8; z-index: 1;
  text-align: left; font-weight: 500; padding: 4px 6px; border-bottom: 1px solid #1e293b; }
.sc-table td { padding: 4px 6px; border-bottom: 1px solid #16213a; white-space: nowrap; }
#dispatch-queue tr.sc-q-row { cursor: pointer; }
#dispatch-queue tr.sc-q-row:hover td { background: #16233b; }
#dispatch-queue tr.sc-selected td { background: #1e3a5f; }
#dispatch-queue td.sc-cat { max-width: 140px; overflow: hidden; text-overflow: ellipsis; }
#dispatch-queue td.sc-station { max-width: 110px; overflow: hidden; text-overflow: ellipsis; }
.sc-age, .sc-left { font-variant-numeric: tabular-nums; }
.sc-tlabel { color: #64748b; margin-right: 4px; font-size: 11px; }
tr[data-sla=ok] .sc-left { color: #4ade80; }
tr[data-sla=amber] .sc-left { color: #fbbf24; font-weight: 700; }
tr[data-sla=red] .sc-left { color: #f87171; font-weight: 700; }
tr[data-sla=red] td:first-child { box-shadow: inset 3px 0 0 #dc2626; }
tr[data-sla=amber] td:first-child { box-shadow: inset 3px 0 0 #f59e0b; }
.sc-chip { border-radius: 3px; padding: 0 5px; font-size: 11px; background: #1e293b;
  color: #cbd5e1; }
.sc-st-routed, .sc-st-received { background: #7f1d1d; color: #fecaca; }
.sc-st-acknowledged { background: #78350f; color: #fde68a; }
.sc-st-dispatched, .sc-st-en_route { background: #713f12; color: #fde68a; }
.sc-st-on_scene { background: #581c87; color: #e9d5ff; }
.sc-st-resolved, .sc-st-closed { background: #14532d; color: #bbf7d0; }
.sc-alevel { font-weight: 700; border-radius: 3px; padding: 0 4px; font-size: 11px; }
.sc-al1 { background: #facc15; color: #111; }
.sc-al2 { background: #f97316; color: #111; }
.sc-al3 { background: #dc2626; color: #fff; }
.sc-al4 { background: #7e22ce; color: #fff; }
.sc-alert { border: 1px solid #334155; border-left-width: 4px; border-radius: 4px;
  padding: 6px 8px; background: #111c30; width: 100%; }
.sc-alert.sc-l1 { border-left-color: #facc15; }
.sc-alert.sc-l2 { border-left-color: #f97316; }
.sc-alert.sc-l3 { border-left-color: #dc2626; }
.sc-alert.sc-l4 { border-left-color: #a855f7; }
.sc-detail h2 { font-size: 16px; font-weight: 700; color: #f1f5f9; }
.sc-section { font-size: 11px; text-transform: uppercase; letter-spacing: .06em;
  color: #64748b; margin-top: 8px; }
.sc-kv { display: grid; grid-template-columns: 110px 1fr; gap: 1px 8px; font-size: 12px; }
.sc-kv .k { color: #64748b; } .sc-kv .v { color: #e2e8f0; }
.sc-miles { display: grid; grid-template-columns: repeat(5, 1fr); gap: 4px; width: 100%; }
.sc-mile { background: #111c30; border: 1px solid #1e293b; border-radius: 4px;
  padding: 3px 6px; font-size: 11px; color: #94a3b8; }
.sc-mile b { display: block; color: #e2e8f0; font-size: 12px; font-weight: 600; }
.sc-mile.sc-done { border-color: #166534; }
.sc-tl { font-size: 12px; color: #cbd5e1; border-left: 2px solid #334155;
  padding: 1px 0 3px 8px; }
.sc-tl .t { color: #64748b; font-variant-numeric: tabular-nums; margin-right: 6px; }
.sc-tl .kind { color: #7dd3fc; margin-right: 6px; }
.sc-tl .who { color: #64748b; margin-left: 6px; font-size: 11px; }
.sc-map { height: 100%; width: 100%; }
.sc-map.leaflet-container { background: #0d1626; font: 12px/1.4 Roboto, sans-serif; }
.sc-map .leaflet-tooltip { background: #0f172a; color: #e2e8f0; border: 1px solid #334155; }
.sc-map .leaflet-tooltip.sc-rec-label { background: #0c4a6e; border-color: #38bdf8;
  padding: 0 4px; font-size: 11px; }
.sc-map .leaflet-bar a { background: #0f172a; color: #cbd5e1; border-bottom-color: #334155; }
.sc-map .leaflet-control-attribution { display: none; }
.sc-kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr));
  gap: 12px; padding: 12px; width: 100%; }
.sc-kpi { background: #0f172a; border: 1px solid #1e293b; border-radius: 6px;
  padding: 10px 12px; color: #e2e8f0; }
.sc-kpi .big { font-size: 24px; font-weight: 700; line-height: 1.1; }
.sc-kpi .lbl { font-size: 11px; color: #64748b; text-transform: uppercase; }
.sc-kpi .bad { color: #f87171; }
.sc-nav a { color: #94a3b8; font-size: 13px; padding: 4px 8px; border-radius: 4px;
  text-decoration: none; }
.sc-nav a.sc-active { color: #f1f5f9; background: #1e293b; }
"""

JS = r"""
<script>
window.SafeCityBoard = (() => {
  const maps = {};
  let skew = 0;
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => (
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const unitColor = {available: "#22c55e", dispatched: "#f59e0b", en_route: "#f59e0b",
                     on_scene: "#a855f7", off_duty: "#64748b"};
  const prioColor = {1: "#dc2626", 2: "#f59e0b", 3: "#2563eb", 4: "#64748b"};
  const two = (n) => String(n).padStart(2, "0");
  function dur(ms, up) {
    let s = (up ? Math.ceil : Math.floor)(Math.abs(ms) / 1000);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    s %= 60;
    return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
  }
  function tick() {
    const now = Date.now() + skew;
    for (const tr of document.querySelectorAll("tr.sc-q-row")) {
      const d = tr.dataset;
      const age = tr.querySelector(".sc-age");
      if (age) age.textContent = dur(now - Number(d.received));
      const left = tr.querySelector(".sc-left");
      if (!left) continue;
      if (!d.due) { left.textContent = "—"; tr.dataset.sla = "none"; continue; }
      const due = Number(d.due), start = Number(d.start), rem = due - now;
      tr.dataset.sla = rem <= 0 ? "red" : rem / Math.max(1, due - start) < 0.5 ? "amber" : "ok";
      left.textContent = rem <= 0 ? `+${dur(rem)} late` : dur(rem, true);
    }
    for (const el of document.querySelectorAll("[data-since]")) {
      el.textContent = dur(now - Number(el.dataset.since));
    }
  }
  setInterval(tick, 500);

  function get(id) {
    const el = getElement(id);
    if (!el || !el.map || !window.L) return null;
    if (!maps[id] || maps[id].map !== el.map) maps[id] = {map: el.map, units: new Map(),
                                                          incidents: new Map()};
    return maps[id];
  }
  function unit(c, u) {
    let m = c.units.get(u.id);
    if (!m) {
      if (u.lat == null || u.lon == null) return;
      m = L.circleMarker([u.lat, u.lon], {radius: 4, weight: 1, color: "#0b1220",
                                          fillOpacity: 1, className: "sc-unit"});
      m.sc = {callsign: "", status: "available"};
      m.bindTooltip(() => `<b>${esc(m.sc.callsign)}</b><br>${esc(m.sc.status.replace("_", " "))}`);
      c.unitLayer.addLayer(m);
      c.units.set(u.id, m);
    } else if (u.lat != null && u.lon != null) {
      m.setLatLng([u.lat, u.lon]);
    }
    if (u.callsign) m.sc.callsign = u.callsign;
    if (u.status) m.sc.status = u.status;
    m.setStyle({fillColor: unitColor[m.sc.status] || "#22c55e"});
  }
  function incident(c, i) {
    let m = c.incidents.get(i.id);
    if (!m) {
      m = L.circleMarker([i.lat, i.lon], {radius: 6, weight: 1.5, color: "#fecaca",
        fillOpacity: 0.9, className: "sc-incident"});
      m.on("click", () => emitEvent("sc_board_select", i.id));
      c.incidentLayer.addLayer(m);
      c.incidents.set(i.id, m);
    }
    m.setStyle({fillColor: prioColor[i.priority] || "#dc2626"});
    m.bindTooltip(`<b>#${i.id} P${i.priority} ${esc(i.label)}</b><br>${esc(i.station)}`);
  }
  function drawSelection(c) {
    c.selLayer.clearLayers();
    const s = c.sel;
    if (!s) return null;
    const pts = [[s.lat, s.lon]];
    s.assigned.forEach((uid) => {
      const m = c.units.get(uid);
      if (!m) return;
      const ll = m.getLatLng();
      pts.push([ll.lat, ll.lng]);
      L.polyline([ll, [s.lat, s.lon]], {color: "#f59e0b", weight: 2, dashArray: "6 4",
                                        className: "sc-assign-line"}).addTo(c.selLayer);
    });
    s.recommended.forEach((uid, k) => {
      const m = c.units.get(uid);
      if (!m) return;
      const ll = m.getLatLng();
      pts.push([ll.lat, ll.lng]);
      L.circleMarker(ll, {radius: 9, weight: 2, color: "#38bdf8", fill: false,
                          className: "sc-rec"})
        .bindTooltip(esc(m.sc.callsign), {permanent: k < 3, direction: "right",
                                          className: "sc-rec-label"})
        .addTo(c.selLayer);
    });
    L.circleMarker([s.lat, s.lon], {radius: 10, weight: 3, color: "#f8fafc",
      fillColor: prioColor[s.priority] || "#dc2626", fillOpacity: 1,
      className: "sc-selected-incident"})
      .bindTooltip(`#${s.id} ${esc(s.label)}`, {permanent: true, direction: "top",
                                               offset: [0, -10]})
      .addTo(c.selLayer);
    return pts;
  }
  return {
    setNow(ms) { skew = ms - Date.now(); tick(); },
    init(id, cfg) {
      const c = get(id);
      if (!c) return false;
      L.geoJSON(cfg.stations, {interactive: false,
        style: (f) => f.properties.mine
          ? {color: "#fbbf24", weight: 2, fillColor: "#fbbf24", fillOpacity: 0.06,
             className: "sc-jurisdiction sc-mine"}
          : {color: "#38bdf8", weight: 0.8, opacity: 0.5, fillColor: "#38bdf8",
             fillOpacity: 0.03, className: "sc-jurisdiction"}}).addTo(c.map);
      c.unitLayer = L.layerGroup().addTo(c.map);
      c.incidentLayer = L.layerGroup().addTo(c.map);
      c.selLayer = L.layerGroup().addTo(c.map);
      cfg.units.forEach((u) => unit(c, u));
      cfg.incidents.forEach((i) => incident(c, i));
      L.control.scale({imperial: false}).addTo(c.map);
      if (cfg.fit) c.map.fitBounds(cfg.fit, {padding: [16, 16], maxZoom: 13});
      c.ready = true;
      c.map.getContainer().dataset.ready = "true";
      return true;
    },
    units(id, rows) {
      const c = get(id);
      if (!c || !c.ready) return;
      rows.forEach((u) => unit(c, u));
      if (c.sel) drawSelection(c);
    },
    incidents(id, rows, removed) {
      const c = get(id);
      if (!c || !c.ready) return;
      rows.forEach((i) => incident(c, i));
      removed.forEach((k) => {
        const m = c.incidents.get(k);
        if (m) { c.incidentLayer.removeLayer(m); c.incidents.delete(k); }
      });
    },
    select(id, sel, fit) {
      const c = get(id);
      if (!c || !c.ready) return;
      c.sel = sel;
      const pts = drawSelection(c);
      if (pts && fit) c.map.fitBounds(pts, {padding: [40, 40], maxZoom: 15});
    },
  };
})();
</script>
"""


# --------------------------------------------------------------------------- widgets


def _text(text: str, *, tag: str = "span", classes: str = "") -> base._Cell:
    cell = base._Cell(text, tag=tag)
    if classes:
        cell.classes(classes)
    return cell


def _prio(priority: int) -> None:
    _text(f"P{priority}", classes=f"sc-prio sc-p{min(max(priority, 1), 4)}")


def _status_chip(status: str, *, element_id: str | None = None) -> base._Cell:
    chip = _text(STATUS_LABELS.get(status, status), classes=f"sc-chip sc-st-{status}")
    chip.props["data-status"] = status
    if element_id:
        chip.props["id"] = element_id
    return chip


def header(principal: Principal, jurisdiction_name: str, active: str) -> None:
    """The top bar shared by the board pages: navigation, the operator, log out."""
    role = ROLE_LABELS.get(principal.role, principal.role.value)
    with ui.header().classes("sc-header items-center px-3 py-0 h-12 gap-3"):
        ui.icon("shield").classes("text-sky-500 text-xl")
        ui.label("SafeCity").classes("text-lg font-bold tracking-wide text-slate-100")
        with ui.row().classes("sc-nav items-center gap-1 ml-2"):
            for path, label, key in (("/", "Map", "map"), ("/dispatch", "Dispatch", "dispatch")):
                link = ui.link(label, path).props(f"id=nav-{key}")
                if key == active:
                    link.classes("sc-active")
        ui.space()
        with ui.row().classes("items-center gap-1"):
            ui.element("span").classes("sc-live")
            ui.label("live").classes("text-xs text-green-400 uppercase")
        ui.label(principal.name).props("id=current-user").classes(
            "text-sm font-medium text-slate-100"
        )
        ui.label(f"{role} · {jurisdiction_name}").props("id=current-role").classes(
            "text-xs text-slate-400"
        )
        ui.button("Log out", icon="logout", on_click=base._logout).props(
            "id=logout flat dense no-caps size=sm color=grey-4"
        )


class _Queue:
    """Open incidents, most urgent first, each with its age and the time left to its next
    response target (the browser ticks both)."""

    def __init__(self, on_select: Callable[[int], Awaitable[None]]) -> None:
        self.on_select = on_select
        with ui.element("table").props("id=dispatch-queue").classes("sc-table"):
            with ui.element("thead"), ui.element("tr"):
                for title in ("P", "#", "Type", "Station", "Status", "Age", "Next target", ""):
                    base._Cell(title, tag="th")
            self.body = ui.element("tbody")
        self.incs: dict[int, IncidentOut] = {}
        self.rows: dict[int, Element] = {}
        self.cells: dict[int, dict[str, base._Cell]] = {}
        self.alert_levels: dict[int, int] = {}
        self.selected: int | None = None

    @staticmethod
    def _props(inc: IncidentOut, target: NextTarget | None, now: datetime) -> dict[str, str]:
        return {
            "data-incident-id": str(inc.incident_id),
            "data-priority": str(inc.priority),
            "data-status": inc.status,
            "data-station-id": str(inc.station_id),
            "data-received": _ms(inc.received_at),
            "data-target": target.label if target else "",
            "data-start": _ms(target.start) if target else "",
            "data-due": _ms(target.due) if target else "",
            "data-sla": sla_state(target, now),
        }

    def upsert(
        self, inc: IncidentOut, *, target: NextTarget | None, station: str, now: datetime
    ) -> None:
        incident_id = inc.incident_id
        props = self._props(inc, target, now)
        label = base._STATE.categories.get(inc.category, inc.category)
        self.incs[incident_id] = inc
        if incident_id in self.rows:
            tr = self.rows[incident_id]
            tr.props.update(props)
            tr.update()
            cells = self.cells[incident_id]
            cells["status"].set_text(STATUS_LABELS.get(inc.status, inc.status))
            cells["status"].classes(replace=f"sc-chip sc-st-{inc.status}")
            cells["tlabel"].set_text(_TARGET_LABELS[target.label] if target else "on scene")
            return
        with self.body:
            tr = ui.element("tr").classes("sc-q-row")
            tr.props.update(props)
            tr.props["title"] = f"{label} — {inc.description[:200]}"
            with tr:
                with ui.element("td"):
                    _prio(inc.priority)
                base._Cell(str(incident_id))
                base._Cell(label).classes("sc-cat")
                base._Cell(station).classes("sc-station")
                with ui.element("td"):
                    status = _status_chip(inc.status)
                with ui.element("td"):
                    _text("", classes="sc-age")
                with ui.element("td").classes("sc-target"):
                    tlabel = _text(
                        _TARGET_LABELS[target.label] if target else "on scene", classes="sc-tlabel"
                    )
                    _text("", classes="sc-left")
                alert = base._Cell("").classes("sc-alert-cell")
        tr.on("click", lambda: self.on_select(incident_id))
        self.rows[incident_id] = tr
        self.cells[incident_id] = {"status": status, "tlabel": tlabel, "alert": alert}
        self._show_alert(incident_id)
        if incident_id == self.selected:
            tr.classes(add="sc-selected")

    def remove(self, incident_id: int) -> None:
        self.incs.pop(incident_id, None)
        self.cells.pop(incident_id, None)
        tr = self.rows.pop(incident_id, None)
        if tr is not None:
            self.body.remove(tr)

    def resort(self) -> None:
        want = [self.rows[i.incident_id] for i in queue_order(list(self.incs.values()))]
        children = self.body.default_slot.children
        if children != want:
            children[:] = want
            self.body.update()

    def select(self, incident_id: int | None) -> None:
        if self.selected in self.rows:
            self.rows[self.selected].classes(remove="sc-selected")
        self.selected = incident_id
        if incident_id in self.rows:
            self.rows[incident_id].classes(add="sc-selected")

    def set_alert_levels(self, levels: dict[int, int]) -> None:
        changed = set(levels) ^ set(self.alert_levels) | {
            k for k in levels if self.alert_levels.get(k) != levels[k]
        }
        self.alert_levels = levels
        for incident_id in changed:
            self._show_alert(incident_id)

    def _show_alert(self, incident_id: int) -> None:
        cells = self.cells.get(incident_id)
        if cells is None:
            return
        level = self.alert_levels.get(incident_id)
        cells["alert"].set_text(f"L{level}" if level else "")
        cells["alert"].classes(replace=f"sc-alert-cell sc-alevel sc-al{level}" if level else "")


class _AlertPanel:
    """Open response-time alerts in the operator's area, newest first."""

    def __init__(
        self,
        *,
        can_ack: bool,
        on_ack: Callable[[int], Awaitable[None]],
        on_open: Callable[[int], Awaitable[None]],
        station_names: dict[int, str],
    ) -> None:
        self.can_ack = can_ack
        self.on_ack = on_ack
        self.on_open = on_open
        self.station_names = station_names
        self.list = ui.column().props("id=alert-list").classes("w-full gap-1 px-2 pb-2")
        with self.list:
            self.empty = ui.label("No open alerts.").props("id=alert-empty")
            self.empty.classes("text-xs text-slate-500 px-1")
        self.alerts: dict[int, AlertOut] = {}
        self.cards: dict[int, Element] = {}
        self.on_change: Callable[[], None] = lambda: None

    def levels(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for a in self.alerts.values():
            out[a.incident_id] = max(out.get(a.incident_id, 0), a.level)
        return out

    def add(self, alert: AlertOut) -> None:
        if alert.id in self.cards or alert.acknowledged_at is not None:
            return
        self.alerts[alert.id] = alert
        fired, full = base._local_time(alert.fired_at)
        station = self.station_names.get(alert.station_id or -1, "")
        with self.list:
            card = ui.element("div").classes(f"sc-alert sc-l{alert.level}")
            card.props.update(
                {
                    "data-alert-id": str(alert.id),
                    "data-incident-id": str(alert.incident_id),
                    "data-level": str(alert.level),
                    "title": f"fired {full}, due {base._local_time(alert.due_at)[1]}",
                }
            )
            with card:
                with ui.row().classes("items-center gap-2 no-wrap w-full"):
                    _text(f"L{alert.level}", classes=f"sc-alevel sc-al{alert.level}")
                    link = ui.link(f"#{alert.incident_id}").classes("text-sky-300 text-xs")
                    link.props(f"id=open-alert-{alert.id}")
                    link.on("click.prevent", lambda: self.on_open(alert.incident_id))
                    ui.label(station).classes("text-xs text-slate-400 truncate")
                    ui.space()
                    ui.label(fired).classes("text-xs text-slate-500")
                    if self.can_ack:
                        ui.button("Ack", on_click=lambda: self.on_ack(alert.id)).props(
                            f"id=ack-alert-{alert.id} dense unelevated size=sm no-caps "
                            "color=amber-9"
                        )
                ui.label(alert.reason).classes("text-xs text-slate-200")
                ui.label(f"to {_NOTIFY_ROLE.get(alert.notify_role, alert.notify_role)}").classes(
                    "text-xs text-slate-500"
                )
        card.move(target_index=0)
        self.cards[alert.id] = card
        self._changed()

    def remove(self, alert_id: int) -> None:
        self.alerts.pop(alert_id, None)
        card = self.cards.pop(alert_id, None)
        if card is not None:
            self.list.remove(card)
            self._changed()

    def _changed(self) -> None:
        self.empty.set_visibility(not self.cards)
        self.on_change()


def _render_kpis(container: Element, kpis: list[DistrictKpi]) -> None:
    container.clear()
    with container:
        if not kpis:
            ui.label("No incidents today in your area.").classes("text-sm text-slate-400")
        for k in kpis:
            card = ui.element("div").classes("sc-kpi").props(f"id=kpi-{k.district_id}")
            card.props["data-district"] = k.district
            with card:
                ui.label(k.district).classes("text-sm font-semibold text-slate-100")
                with ui.row().classes("w-full gap-6 mt-1 no-wrap"):
                    for value, lbl, key in (
                        (k.calls_today, "calls today", "calls"),
                        (k.incidents_today, "incidents", "incidents"),
                        (k.open_incidents, "open now", "open"),
                        (k.sla_breaches_today, "SLA breaches", "breaches"),
                    ):
                        with ui.column().classes("gap-0"):
                            big = _text(str(value), tag="div", classes="big")
                            big.props["data-kpi"] = key
                            if key == "breaches" and value:
                                big.classes(add="bad")
                            _text(lbl, tag="div", classes="lbl")
                with ui.element("div").classes("sc-kv mt-2"):
                    for lbl, med, p90 in (
                        (
                            "answer → dispatch",
                            k.answer_to_dispatch_median_s,
                            k.answer_to_dispatch_p90_s,
                        ),
                        (
                            "dispatch → scene",
                            k.dispatch_to_scene_median_s,
                            k.dispatch_to_scene_p90_s,
                        ),
                    ):
                        _text(lbl, tag="div", classes="k")
                        _text(
                            f"median {duration(med)} · p90 {duration(p90)}", tag="div", classes="v"
                        )
                types = list(k.by_type.items())[:6]
                if types:
                    with ui.row().classes("gap-1 mt-2"):
                        for code, n in types:
                            label = base._STATE.categories.get(code, code)
                            _text(f"{label} {n}", classes="sc-chip")


# --------------------------------------------------------------------------- the page


def register() -> None:
    """Add `/dispatch` to the console (called once by `pages._register_pages`)."""

    @ui.page("/dispatch", title="SafeCity — Dispatch")
    async def dispatch_board() -> RedirectResponse | None:
        principal = await base._current_principal()
        if principal is None:
            nicegui_app.storage.user["next"] = "/dispatch"
            return RedirectResponse("/login", status_code=303)
        runtime = base._runtime()
        await _BoardPage(runtime, principal).build()
        return None


@dataclass
class _Live:
    """Work the bus left for the next flush."""

    incidents: set[int] = field(default_factory=set)
    units: dict[int, dict[str, Any]] = field(default_factory=dict)
    detail: bool = False
    recommendations: bool = False


class _BoardPage:
    """One browser tab of the dispatch board."""

    def __init__(self, runtime: Runtime, principal: Principal) -> None:
        self.runtime = runtime
        self.principal = principal
        self.can_update = principal.has(Perm.INCIDENTS_UPDATE)
        self.live = _Live()
        self.generation = 0
        self.detail_at = 0.0
        self.map_ready = False
        self.detail_data: _Detail | None = None
        self.station_choices: dict[int, str] | None = None

    async def build(self) -> None:
        runtime, principal = self.runtime, self.principal
        client = self.client = ui.context.client
        # Subscribe before reading, so nothing published in between is missed.
        subs = {
            "incidents": runtime.bus.subscribe("incidents.>"),
            "dispatch": runtime.bus.subscribe("dispatch.>"),
            "alerts": runtime.bus.subscribe("alerts.>"),
            "units": runtime.bus.subscribe("units.>"),
        }

        def close() -> None:
            for sub in subs.values():
                sub.close()

        client.on_delete(close)
        if not principal.has(Perm.INCIDENTS_READ):
            close()
            ui.label("Your role cannot read incidents.").classes("text-slate-300 p-6")
            return
        try:
            board = await base._in_thread(_board, runtime, principal)
        except BaseException:
            close()
            raise
        self.board = board
        ui.add_css(base._CSS + CSS)
        ui.add_head_html(JS)
        header(principal, board.jurisdiction_name, "dispatch")

        with ui.column().classes("sc-board gap-0 no-wrap"):
            with (
                ui.tabs()
                .props(
                    "dense inline-label align=left no-caps "
                    "active-color=light-blue-4 indicator-color=light-blue-4"
                )
                .classes("w-full bg-slate-900 text-slate-400 border-b border-slate-800") as tabs
            ):
                ui.tab("board", "Board", icon="view_list").props("id=tab-board")
                ui.tab("kpis", "District KPIs", icon="insights").props("id=tab-kpis")
                ui.tab("reports", "Reports", icon="bar_chart").props("id=tab-reports")
            with ui.tab_panels(tabs, value="board").classes("w-full flex-grow min-h-0") as panels:
                with ui.tab_panel("board"):
                    self._build_board()
                with ui.tab_panel("kpis"):
                    self.kpi_box = ui.element("div").classes("sc-kpis").props("id=kpi-cards")
                with ui.tab_panel("reports"):
                    self.reports = _Reports(runtime, principal, board.now)
        self.panels = panels
        panels.on_value_change(self._tab_changed)

        now = board.now
        for inc in board.queue:
            self.queue.upsert(
                inc,
                target=next_target(inc, board.targets),
                station=self._station(inc.station_id),
                now=now,
            )
        self.queue.resort()
        for alert in reversed(board.alerts):
            self.alerts.add(alert)
        self._show_count()
        ui.run_javascript(f"SafeCityBoard.setNow({round(now.timestamp() * 1000)})")

        ui.on("sc_board_select", self._map_select)
        ui.timer(0.0, self._draw_map, once=True)
        for name, sub in subs.items():
            ui.timer(0.05, self._pump(name, sub))
        ui.timer(0.25, self._flush)
        ui.timer(base.UNIT_FLUSH_S, self._flush_units)
        ui.timer(KPI_REFRESH_S, self._refresh_kpis_if_shown)

    # ----------------------------------------------------------------- layout

    def _build_board(self) -> None:
        with ui.row().classes("w-full h-full no-wrap gap-0"):
            with (
                ui.column().classes("sc-pane h-full gap-0").style("width: 560px; min-width: 460px")
            ):
                with ui.row().classes("w-full items-center px-3 py-2 gap-2"):
                    ui.label("Queue").classes("sc-pane-title")
                    self.count = ui.label("").props("id=queue-count")
                    self.count.classes("text-xs text-slate-400")
                    ui.space()
                    ui.label("priority, then oldest").classes("text-xs text-slate-500")
                with ui.scroll_area().classes("w-full flex-grow"):
                    self.queue = _Queue(self._select)
                    self.queue_empty = ui.label(
                        f"No open incidents in {self.board.jurisdiction_name}."
                    ).props("id=queue-empty")
                    self.queue_empty.classes("text-xs text-slate-500 px-3 py-2")
            with (
                ui.column().classes("sc-pane h-full gap-0 flex-grow").style("min-width: 420px"),
                ui.scroll_area().classes("w-full h-full"),
            ):
                self.detail = ui.column().props("id=incident-detail")
                self.detail.classes("sc-detail w-full gap-1 px-3 py-2")
                with self.detail:
                    ui.label("Select an incident in the queue.").classes(
                        "text-sm text-slate-500 py-6"
                    )
            with ui.column().classes("h-full gap-0").style("width: 400px; min-width: 340px"):
                with ui.element("div").classes("w-full relative").style("height: 52%"):
                    self.map = ui.leaflet(center=(34.0, 71.6), zoom=10, options={"zoomSnap": 0.25})
                    self.map.props("id=board-map").classes("sc-map")
                    self.map.clear_layers()  # no internet tiles: the centre is air-gapped
                    tile_url = self.runtime.settings.basemap_tile_url
                    if tile_url:
                        self.map.tile_layer(url_template=tile_url, options={"maxZoom": 19})
                with (
                    ui.column()
                    .classes("sc-pane w-full gap-0 flex-grow")
                    .style("border-top: 1px solid #1e293b; min-height: 0")
                ):
                    with ui.row().classes("w-full items-center px-3 py-2 gap-2"):
                        ui.icon("notifications_active").classes("text-amber-400")
                        ui.label("Response-time alerts").classes("sc-pane-title")
                        self.alert_count = ui.label("").props("id=alert-count")
                        self.alert_count.classes("text-xs text-slate-400")
                    with ui.scroll_area().classes("w-full flex-grow"):
                        self.alerts = _AlertPanel(
                            can_ack=self.can_update,
                            on_ack=self._ack_alert,
                            on_open=self._select,
                            station_names=self.board.station_names,
                        )
                        self.alerts.on_change = self._alerts_changed

    def _station(self, station_id: int) -> str:
        return self.board.station_names.get(station_id, f"station {station_id}")

    def _label(self, category: str) -> str:
        return base._STATE.categories.get(category, category)

    def _show_count(self) -> None:
        n = len(self.queue.incs)
        self.count.set_text(f"{n} open")
        self.queue_empty.set_visibility(n == 0)

    def _alerts_changed(self) -> None:
        self.alert_count.set_text(f"{len(self.alerts.cards)} open")
        self.queue.set_alert_levels(self.alerts.levels())

    def _marker(self, inc: IncidentOut) -> dict[str, Any]:
        return {
            "id": inc.incident_id,
            "lat": inc.lat,
            "lon": inc.lon,
            "priority": inc.priority,
            "label": self._label(inc.category),
            "station": self._station(inc.station_id),
        }

    async def _draw_map(self) -> None:
        await self.map.initialized()
        cfg = {
            "stations": self.board.stations,
            "fit": self.board.fit,
            "units": self.board.units,
            "incidents": [self._marker(i) for i in self.queue.incs.values()],
        }
        ui.run_javascript(f"SafeCityBoard.init({self.map.id}, {json.dumps(cfg)})")
        self.map_ready = True
        if self.detail_data is not None:
            self._map_selection(self.detail_data, fit=True)

    # ----------------------------------------------------------------- live

    def _pump(self, name: str, sub: Any) -> Callable[[], Awaitable[None]]:
        handle = {
            "incidents": self._on_incident,
            "dispatch": self._on_dispatch,
            "alerts": self._on_alert,
            "units": self._on_unit,
        }[name]

        async def pump() -> None:
            for msg in await sub.fetch_async(batch=500, timeout=1.0):
                try:
                    handle(msg.subject, msg.data)
                except (KeyError, TypeError, ValueError):
                    log.warning("dispatch board: malformed %s event %r", msg.subject, msg.data)
                msg.ack()

        return pump

    def _on_incident(self, _subject: str, data: dict[str, Any]) -> None:
        incident_id = int(data["incident_id"])
        if incident_id in self.queue.incs or incidents.visible_to(self.principal, data):
            self.live.incidents.add(incident_id)

    def _on_dispatch(self, _subject: str, data: dict[str, Any]) -> None:
        if not incidents.visible_to(self.principal, data):
            return
        incident_id = int(data["incident_id"])
        self.live.incidents.add(incident_id)
        if self.queue.selected is not None:
            self.live.recommendations = True  # units sent elsewhere are no longer free

    def _on_alert(self, subject: str, data: dict[str, Any]) -> None:
        alert = AlertOut.model_validate(data)
        # With the province the event carries (the alert row keeps none): without it a
        # province-scoped board never showed an alert.
        where = JurisdictionIds(
            alert.station_id, alert.tehsil_id, alert.district_id, data.get("province_id")
        )
        if not self.principal.covers(where):
            return
        if subject == "alerts.acknowledged" or alert.acknowledged_at is not None:
            self.alerts.remove(alert.id)
        else:
            self.alerts.add(alert)
        if alert.incident_id == self.queue.selected:
            self.live.detail = True

    def _on_unit(self, subject: str, data: dict[str, Any]) -> None:
        unit_id = int(data["id"])
        row = _unit_row(
            unit_id, data.get("lat"), data.get("lon"), data.get("callsign"), data.get("status")
        )
        old = self.live.units.get(unit_id)
        if old is not None:
            row = {k: v if v is not None else old.get(k) for k, v in row.items()}
        self.live.units[unit_id] = row
        if subject == "units.status" and self.queue.selected is not None:
            self.live.recommendations = True

    async def _flush(self) -> None:
        live = self.live
        if live.incidents:
            ids = sorted(live.incidents)
            live.incidents.clear()
            fresh = await base._in_thread(_read_incidents, self.runtime, self.principal, ids)
            now = self.runtime.clock.now()
            shown: list[dict[str, Any]] = []
            gone: list[int] = []
            for incident_id, inc in fresh.items():
                if inc is None:
                    if incident_id in self.queue.incs:
                        self.queue.remove(incident_id)
                        gone.append(incident_id)
                else:
                    self.queue.upsert(
                        inc,
                        target=next_target(inc, self.board.targets),
                        station=self._station(inc.station_id),
                        now=now,
                    )
                    shown.append(self._marker(inc))
            self.queue.resort()
            self._show_count()
            if self.map_ready and (shown or gone):
                ui.run_javascript(
                    f"SafeCityBoard.incidents({self.map.id}, {json.dumps(shown)}, "
                    f"{json.dumps(gone)})"
                )
            if self.queue.selected in fresh:
                live.detail = True
        if self.queue.selected is None:
            live.detail = live.recommendations = False
            return
        # The incident itself changed: at once. Only units moved: at most every few seconds
        # (a busy province changes some unit's status many times a second).
        stale = time_.monotonic() - self.detail_at >= RECOMMEND_REFRESH_S
        if live.detail or (live.recommendations and stale):
            live.detail = live.recommendations = False
            await self._load_detail(self.queue.selected, fit=False)

    def _flush_units(self) -> None:
        if self.live.units and self.map_ready:
            rows = json.dumps(list(self.live.units.values()))
            self.live.units.clear()
            ui.run_javascript(f"SafeCityBoard.units({self.map.id}, {rows})")

    # ----------------------------------------------------------------- selection

    @in_page
    async def _map_select(self, e: events.GenericEventArguments) -> None:
        try:
            incident_id = int(e.args)
        except (TypeError, ValueError):
            return
        await self._select(incident_id)

    @in_page
    async def _select(self, incident_id: int) -> None:
        self.panels.set_value("board")
        self.queue.select(incident_id)
        await self._load_detail(incident_id, fit=True)

    async def _load_detail(self, incident_id: int, *, fit: bool) -> None:
        self.detail_at = time_.monotonic()
        self.generation += 1
        generation = self.generation
        try:
            d = await base._in_thread(_detail, self.runtime, self.principal, incident_id)
        except SafeCityError as exc:
            if generation == self.generation:
                self.detail.clear()
                with self.detail:
                    ui.label(exc.message).classes("text-sm text-red-300 py-6")
            return
        if generation != self.generation or self.queue.selected != incident_id:
            return  # a newer selection won
        self.detail_data = d
        self._render_detail(d)
        self._map_selection(d, fit=fit)

    def _map_selection(self, d: _Detail, *, fit: bool) -> None:
        if not self.map_ready:
            return
        sel = {
            "id": d.inc.incident_id,
            "lat": d.inc.lat,
            "lon": d.inc.lon,
            "priority": d.inc.priority,
            "label": self._label(d.inc.category),
            "recommended": [r.unit_id for r in d.recommendations],
            "assigned": [
                a.unit_id for a, _ in d.assignments if a.status in ("assigned", "en_route")
            ],
        }
        ui.run_javascript(
            f"SafeCityBoard.select({self.map.id}, {json.dumps(sel)}, {json.dumps(fit)})"
        )

    def _render_detail(self, d: _Detail) -> None:
        inc = d.inc
        allowed = {s.value for s in TRANSITIONS[Status(inc.status)]}
        self.detail.clear()
        self.detail.props["data-incident-id"] = str(inc.incident_id)
        self.detail.props["data-status"] = inc.status
        self.detail.update()
        with self.detail:
            with ui.row().classes("items-center gap-2 w-full no-wrap"):
                _prio(inc.priority)
                _text(f"#{inc.incident_id} · {self._label(inc.category)}", tag="h2")
                _status_chip(inc.status, element_id="detail-status")
            if self.can_update:
                with ui.row().classes("items-center gap-2 w-full"):
                    self._action_buttons(inc, allowed)
            full = base._local_time(inc.received_at)[1]
            with ui.element("div").classes("sc-kv w-full"):
                rows = [
                    (
                        "Station",
                        d.station_name
                        + ("" if inc.inside_jurisdiction else " (outside every jurisdiction)"),
                    ),
                    ("Received", f"{full} ({inc.source}, {inc.call_count} call(s))"),
                    ("Caller", " · ".join(x for x in (inc.caller_name, inc.caller_number) if x)),
                    (
                        "Location",
                        (inc.address + " · " if inc.address else "")
                        + f"{inc.lat:.5f}, {inc.lon:.5f} ({inc.area_type})",
                    ),
                    ("Description", inc.description or "—"),
                ]
                if inc.disposition:
                    rows.append(("Disposition", inc.disposition.replace("_", " ")))
                if inc.transferred_to:
                    rows.append(("Transferred to", inc.transferred_to))
                for k, v in rows:
                    _text(k, tag="div", classes="k")
                    _text(v, tag="div", classes="v")
                # A camera alert: its snapshot and clip are one click away.
                seen = [e for c in inc.calls if (e := video.event_id_of_call(c.external_id))]
                if seen:
                    _text("Video", tag="div", classes="k")
                    with ui.element("div").classes("v"):
                        for event_id in seen:
                            ui.link(
                                f"event {event_id}: snapshot and clip",
                                f"/video/events?event={event_id}",
                            ).props(f"id=detail-video-{event_id}")
            self._milestones(inc)
            self._recommendations(d, inc.status in _DISPATCHABLE)
            self._assignments(d)
            _text("Timeline", tag="div", classes="sc-section")
            with ui.column().classes("w-full gap-0").props("id=detail-timeline"):
                for entry in reversed(inc.timeline):
                    t, full_t = base._local_time(entry.at)
                    row = ui.element("div").classes("sc-tl")
                    row.props.update({"title": full_t, "data-kind": entry.kind})
                    with row:
                        _text(t, classes="t")
                        _text(entry.kind.replace("_", " "), classes="kind")
                        _text(entry.note)
                        _text(entry.actor, classes="who")

    def _milestones(self, inc: IncidentDetail) -> None:
        with ui.element("div").classes("sc-miles mt-1"):
            for label, at in (
                ("Received", inc.received_at),
                ("Acknowledged", inc.acknowledged_at),
                ("Dispatched", inc.dispatched_at),
                ("En route", inc.en_route_at),
                ("On scene", inc.on_scene_at),
            ):
                box = ui.element("div").classes("sc-mile" + (" sc-done" if at else ""))
                with box:
                    _text(label)
                    _text(base._local_time(at)[0] if at else "—", tag="b")
                    if at is not None and at != inc.received_at:
                        _text(f"+{duration((at - inc.received_at).total_seconds())}")

    def _action_buttons(self, inc: IncidentDetail, allowed: set[str]) -> None:
        iid = inc.incident_id
        if "acknowledged" in allowed:
            ui.button("Acknowledge", icon="done", on_click=lambda: self._acknowledge(iid)).props(
                "id=incident-ack dense unelevated no-caps color=light-blue-9"
            )
        if inc.status in _TRANSFERABLE or "transferred" in allowed:
            ui.button("Transfer", icon="swap_horiz", on_click=lambda: self._transfer(iid)).props(
                "id=incident-transfer dense outline no-caps color=grey-4"
            )
        if "cancelled" in allowed:
            ui.button("Cancel", icon="close", on_click=lambda: self._cancel(iid)).props(
                "id=incident-cancel dense outline no-caps color=red-4"
            )

    def _recommendations(self, d: _Detail, dispatchable: bool) -> None:
        _text("Recommended units", tag="div", classes="sc-section")
        if not dispatchable:
            ui.label("Units can no longer be sent to this incident.").classes(
                "text-xs text-slate-500"
            )
            return
        if not d.recommendations:
            ui.label("No unit is available.").props("id=no-recommendation").classes(
                "text-xs text-amber-300"
            )
            return
        with ui.element("table").classes("sc-table").props("id=recommendations"):
            with ui.element("thead"), ui.element("tr"):
                for title in ("Unit", "Kind", "ETA", "Distance", "", ""):
                    base._Cell(title, tag="th")
            with ui.element("tbody"):
                for r in d.recommendations:
                    tr = ui.element("tr").props(f"data-unit-id={r.unit_id}")
                    with tr:
                        base._Cell(r.callsign).classes("font-semibold")
                        base._Cell(_KIND_LABELS.get(r.kind, r.kind))
                        base._Cell(f"{r.eta_s / 60:.0f} min" if r.eta_s >= 60 else "< 1 min")
                        base._Cell(
                            f"{r.distance_m / 1000:.1f} km"
                            if r.distance_m >= 1000
                            else f"{r.distance_m:.0f} m"
                        )
                        base._Cell("own station" if r.same_station else "").classes(
                            "text-xs text-slate-400"
                        )
                        with ui.element("td"):
                            if self.can_update:
                                ui.button(
                                    "Dispatch",
                                    icon="send",
                                    on_click=lambda r=r: self._dispatch(d.inc.incident_id, r),
                                ).props(
                                    f"id=dispatch-{r.unit_id} dense unelevated no-caps size=sm "
                                    "color=green-8"
                                )

    def _assignments(self, d: _Detail) -> None:
        if not d.assignments:
            return
        _text("Units on this incident", tag="div", classes="sc-section")
        with ui.element("table").classes("sc-table").props("id=assignments"):
            with ui.element("thead"), ui.element("tr"):
                for title in ("Unit", "Status", "Sent", "ETA", "By"):
                    base._Cell(title, tag="th")
            with ui.element("tbody"):
                for a, callsign in d.assignments:
                    tr = ui.element("tr")
                    tr.props.update({"data-unit-id": str(a.unit_id), "data-status": a.status})
                    with tr:
                        base._Cell(callsign).classes("font-semibold")
                        base._Cell(ASSIGNMENT_LABELS.get(a.status, a.status))
                        base._Cell(base._local_time(a.assigned_at)[0])
                        base._Cell(f"{a.eta_s / 60:.0f} min" if a.eta_s is not None else "—")
                        base._Cell(a.assigned_by)

    # ----------------------------------------------------------------- actions

    async def _act(self, change: Callable[[Session, datetime], object], done: str) -> bool:
        try:
            await base._in_thread(apply_change, self.runtime, change)
        except SafeCityError as exc:
            ui.notify(exc.message, type="negative", position="top")
            return False
        ui.notify(done, type="positive", position="top")
        self.live.detail = True
        return True

    @in_page
    async def _dispatch(self, incident_id: int, rec: Recommendation) -> None:
        def change(session: Session, now: datetime) -> object:
            return dispatch.dispatch_units(
                session,
                incident_id=incident_id,
                unit_ids=[rec.unit_id],
                actor=self.principal,
                now=now,
            )

        await self._act(change, f"{rec.callsign} dispatched to incident {incident_id}")
        self.live.incidents.add(incident_id)

    @in_page
    async def _acknowledge(self, incident_id: int) -> None:
        def change(session: Session, now: datetime) -> object:
            return incidents.change_status(
                session,
                incident_id=incident_id,
                status="acknowledged",
                actor=self.principal,
                now=now,
            )

        await self._act(change, f"incident {incident_id} acknowledged")
        self.live.incidents.add(incident_id)

    @in_page
    async def _cancel(self, incident_id: int) -> None:
        with ui.dialog() as dialog, ui.card().classes("bg-slate-900 w-96"):
            ui.label(f"Cancel incident #{incident_id}").classes("text-base font-semibold")
            reason = ui.input("Reason (required)").props("for=cancel-reason outlined dense")
            reason.classes("w-full")
            with ui.row().classes("w-full justify-end"):
                ui.button("Back", on_click=dialog.close).props("flat no-caps")
                ui.button("Cancel incident", on_click=lambda: dialog.submit(reason.value)).props(
                    "id=cancel-confirm unelevated no-caps color=red-8"
                )
        note = await dialog
        dialog.delete()
        if not isinstance(note, str):
            return
        if len(note.strip()) < 3:
            ui.notify("Give a reason to cancel.", type="warning", position="top")
            return

        def change(session: Session, now: datetime) -> object:
            return incidents.change_status(
                session,
                incident_id=incident_id,
                status="cancelled",
                actor=self.principal,
                now=now,
                note=note.strip(),
            )

        await self._act(change, f"incident {incident_id} cancelled")
        self.live.incidents.add(incident_id)

    @in_page
    async def _transfer(self, incident_id: int) -> None:
        if self.station_choices is None:
            self.station_choices = await base._in_thread(_stations, self.runtime)
        with ui.dialog() as dialog, ui.card().classes("bg-slate-900 w-[28rem]"):
            ui.label(f"Transfer incident #{incident_id}").classes("text-base font-semibold")
            to = ui.toggle(
                {"station": "Another police station", "agency": "Another agency"},
                value="station",
            ).props("id=transfer-kind no-caps")
            station = (
                ui.select(self.station_choices, label="Station", with_input=True)
                .props("id=transfer-station outlined dense")
                .classes("w-full")
            )
            agency = (
                ui.select(self.board.agencies, label="Agency")
                .props("id=transfer-agency outlined dense")
                .classes("w-full")
            )
            station.bind_visibility_from(to, "value", value="station")
            agency.bind_visibility_from(to, "value", value="agency")
            reason = ui.input("Reason (required)").props("for=transfer-reason outlined dense")
            reason.classes("w-full")
            with ui.row().classes("w-full justify-end"):
                ui.button("Back", on_click=dialog.close).props("flat no-caps")
                ui.button(
                    "Transfer",
                    on_click=lambda: dialog.submit(
                        (to.value, station.value, agency.value, reason.value)
                    ),
                ).props("id=transfer-confirm unelevated no-caps color=light-blue-9")
        result = await dialog
        dialog.delete()
        if not isinstance(result, tuple):
            return
        kind, station_id, agency_code, note = result
        agency_name = self.board.agencies.get(agency_code) if kind == "agency" else None

        def change(session: Session, now: datetime) -> object:
            if kind == "station" and station_id is None:
                raise InvalidInput("choose the station to transfer to")
            if kind == "agency" and agency_name is None:
                raise InvalidInput("choose the agency to transfer to")
            return incidents.transfer(
                session,
                incident_id=incident_id,
                actor=self.principal,
                now=now,
                reason=str(note or "").strip(),
                station_id=int(station_id) if kind == "station" else None,
                agency_name=agency_name,
            )

        if len(str(note or "").strip()) < 3:
            ui.notify("Give a reason for the transfer.", type="warning", position="top")
            return
        await self._act(change, f"incident {incident_id} transferred")
        self.live.incidents.add(incident_id)

    @in_page
    async def _ack_alert(self, alert_id: int) -> None:
        def change(session: Session, now: datetime) -> object:
            return dispatch.acknowledge_alert(
                session, alert_id=alert_id, actor=self.principal, now=now
            )

        if await self._act(change, f"alert {alert_id} acknowledged"):
            self.alerts.remove(alert_id)

    # ----------------------------------------------------------------- KPIs

    @in_page
    async def _tab_changed(self, e: events.ValueChangeEventArguments[Any]) -> None:
        if e.value == "kpis":
            await self._refresh_kpis()
        elif e.value == "reports" and not self.reports.ran:
            await self.reports.run()

    async def _refresh_kpis_if_shown(self) -> None:
        if self.panels.value == "kpis":
            await self._refresh_kpis()

    async def _refresh_kpis(self) -> None:
        try:
            kpis = await base._in_thread(_kpis, self.runtime, self.principal)
        except SafeCityError as exc:
            ui.notify(exc.message, type="negative", position="top")
            return
        _render_kpis(self.kpi_box, kpis)


class _Reports:
    """The response-time report for a range of days (PKT), as a chart, a table and CSV."""

    def __init__(self, runtime: Runtime, principal: Principal, now: datetime) -> None:
        self.runtime = runtime
        self.principal = principal
        self.ran = False
        self.rows: list[ResponseTimeRow] = []
        today = now.astimezone(base.PKT).date()
        with ui.column().classes("w-full gap-2 p-3"):
            with ui.row().classes("items-end gap-3"):
                self.since = ui.input("From", value=(today - timedelta(days=6)).isoformat())
                self.since.props("type=date for=report-from outlined dense stack-label")
                self.until = ui.input("To (inclusive)", value=today.isoformat())
                self.until.props("type=date for=report-to outlined dense stack-label")
                self.group = ui.select(
                    {"district": "By district", "station": "By station"}, value="district"
                ).props("id=report-group outlined dense")
                ui.button("Run report", icon="play_arrow", on_click=self.run).props(
                    "id=report-run unelevated no-caps color=light-blue-9"
                )
                self.csv = ui.button("Download CSV", icon="download", on_click=self.download)
                self.csv.props("id=report-csv outline no-caps color=grey-4")
                ui.label("days are Pakistan time (PKT)").classes("text-xs text-slate-500")
            self.summary = ui.label("").props("id=report-summary").classes("text-xs text-slate-400")
            self.chart_box = ui.element("div").classes("w-full").style("height: 380px")
            self.table_box = ui.column().classes("w-full")

    def _range(self) -> tuple[date, date]:
        try:
            first = date.fromisoformat(str(self.since.value))
            last = date.fromisoformat(str(self.until.value))
        except ValueError:
            raise InvalidInput("choose both days of the report") from None
        return first, last

    async def run(self) -> None:
        try:
            first, last = self._range()
            since = datetime.combine(first, time(), base.PKT)
            until = datetime.combine(last + timedelta(days=1), time(), base.PKT)
            rows = await base._in_thread(
                _report, self.runtime, self.principal, since, until, str(self.group.value)
            )
        except SafeCityError as exc:
            ui.notify(exc.message, type="negative", position="top")
            return
        self.ran = True
        self.rows = rows
        total = sum(r.incidents for r in rows)
        breaches = sum(r.sla_breaches for r in rows)
        self.summary.set_text(
            f"{first.isoformat()} to {last.isoformat()}: {total} incidents, "
            f"{breaches} SLA breaches, {len(rows)} {self.group.value}s"
        )
        self.chart_box.clear()
        with self.chart_box:
            ui.echart(report_chart(rows)).props("id=report-chart").classes("w-full h-full")
        self.table_box.clear()
        with self.table_box, ui.element("table").classes("sc-table").props("id=report-table"):
            with ui.element("thead"), ui.element("tr"):
                for title in (
                    str(self.group.value).capitalize(),
                    "Incidents",
                    "Answer→dispatch median",
                    "p90",
                    "Dispatch→scene median",
                    "p90",
                    "SLA breaches",
                ):
                    base._Cell(title, tag="th")
            with ui.element("tbody"):
                for r in rows:
                    with ui.element("tr").props(f"data-group-id={r.group_id}"):
                        base._Cell(r.group_name)
                        base._Cell(str(r.incidents))
                        base._Cell(duration(r.answer_to_dispatch_median_s))
                        base._Cell(duration(r.answer_to_dispatch_p90_s))
                        base._Cell(duration(r.dispatch_to_scene_median_s))
                        base._Cell(duration(r.dispatch_to_scene_p90_s))
                        base._Cell(str(r.sla_breaches))

    async def download(self) -> None:
        await self.run()
        if not self.ran:
            return
        first, last = self._range()
        ui.download.content(
            dispatch.report_csv(self.rows),
            f"response-times_{first.isoformat()}_{last.isoformat()}.csv",
            "text/csv",
        )
