"""The console's analytics page (`/analytics`, NiceGUI): trend charts with anomaly markers
and the alert list, hotspot / emerging / forecast / patrol layers on the map, the
hotspot evaluation table, and the printable patrol sheet of the user's stations
(`/analytics/patrol-sheet?dataset=NAME`, the API's `format=html`).

The console calls `register_pages(runtime)` once when it registers its own pages (`runtime`
is the Runtime, or a function returning the current one). Like the rest of the console it
reads everything through `analytics.service`, logs in through the console's session token,
and loads no asset from the internet (Leaflet and ECharts come with NiceGUI)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from nicegui import app as nicegui_app
from nicegui import run, ui

from safecity.analytics import service
from safecity.core.auth import Principal, principal_from_token
from safecity.core.errors import SafeCityError, Unauthenticated
from safecity.core.runtime import Runtime

PATH = "/analytics"
#: The printable patrol sheet, `?dataset=NAME`.
SHEET_PATH = "/analytics/patrol-sheet"

_CSS = """
body { background: #0b1220; color: #e2e8f0; }
.nicegui-content { padding: 0; gap: 0; }
.sca-header { background: #0f172a; border-bottom: 1px solid #1e293b; }
.sca-main { height: calc(100vh - 52px); width: 100%; }
#analytics-map { height: 100%; width: 100%; }
#analytics-map.leaflet-container { background: #0d1626; }
.sca-side { width: 46%; min-width: 420px; background: #0f172a; border-left: 1px solid #1e293b;
  overflow-y: auto; }
.sca-box { border-bottom: 1px solid #1e293b; padding: 8px 12px; width: 100%; }
.sca-title { font-size: 13px; font-weight: 600; color: #cbd5e1; }
.sca-note { font-size: 11px; color: #94a3b8; }
table.sca-table { width: 100%; border-collapse: collapse; font-size: 12px; }
table.sca-table th { text-align: left; color: #94a3b8; font-weight: 500; padding: 2px 6px;
  border-bottom: 1px solid #1e293b; }
table.sca-table td { padding: 2px 6px; border-bottom: 1px solid #16213a; }
table.sca-table tr.sca-best td { color: #4ade80; font-weight: 600; }
#analytics-map .sca-legend { background: #0f172a; color: #cbd5e1; padding: 6px 8px;
  border: 1px solid #334155; border-radius: 4px; font-size: 11px; line-height: 17px; }
#analytics-map .sca-legend i { display: inline-block; width: 10px; height: 10px;
  margin-right: 6px; vertical-align: -1px; }
"""

_JS = r"""
<script>
window.SafeCityAnalytics = (() => {
  const state = {};
  const binColor = {"3": "#b91c1c", "2": "#ef4444", "1": "#fca5a5",
                    "-1": "#93c5fd", "-2": "#3b82f6", "-3": "#1d4ed8"};
  const catColor = {new: "#facc15", consecutive: "#fb923c", intensifying: "#dc2626",
    persistent: "#a855f7", diminishing: "#22d3ee", sporadic: "#f472b6",
    oscillating: "#84cc16", historical: "#64748b"};
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => (
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  function layer(data, style, tip) {
    return L.geoJSON(data, {style, onEachFeature: (f, l) => l.bindTooltip(tip(f.properties))});
  }
  return {
    show(id, cfg) {
      const el = getElement(id);
      if (!el || !el.map || !window.L) return false;
      const map = el.map;
      const s = state[id] || (state[id] = {});
      if (s.control) { map.removeControl(s.control); }
      for (const l of s.layers || []) map.removeLayer(l);
      const gi = layer(cfg.hotspots, (f) => ({color: binColor[f.properties.bin] || "#888",
          weight: 0.5, fillOpacity: 0.55, className: "sca-hot"}),
        (p) => `Gi* z ${p.z.toFixed(2)} (bin ${p.bin})<br>${p.count} incidents`);
      const maxE = Math.max(1e-9, ...cfg.forecast.features.map((f) => f.properties.expected));
      const fc = layer(cfg.forecast, (f) => ({color: "#f59e0b", weight: 0.5,
          fillOpacity: 0.15 + 0.7 * f.properties.expected / maxE, className: "sca-forecast"}),
        (p) => `forecast rank ${p.rank}<br>${p.expected.toFixed(2)} expected this week`);
      const em = layer(cfg.emerging, (f) => ({color: catColor[f.properties.category] || "#888",
          weight: 0.5, fillOpacity: 0.6, className: "sca-emerging"}),
        (p) => `${esc(p.category)} hot spot<br>trend z ${p.trend_z.toFixed(2)}`);
      const pl = layer(cfg.patrols, () => ({color: "#22c55e", weight: 1.5, fillOpacity: 0.25,
          className: "sca-patrol"}),
        (p) => `${esc(p.station)}: ${esc(p.shift)} shift, #${p.rank}<br>`
               + `${p.expected.toFixed(2)} expected`);
      gi.addTo(map);
      s.layers = [gi, fc, em, pl];
      s.control = L.control.layers(null, {"Hot spots (Gi*)": gi, "Forecast (next week)": fc,
        "Emerging hot spots": em, "Patrol cells": pl}, {collapsed: false}).addTo(map);
      if (!s.legend) {
        s.legend = L.control({position: "bottomleft"});
        s.legend.onAdd = () => {
          const div = L.DomUtil.create("div", "sca-legend");
          div.innerHTML = '<i style="background:#b91c1c"></i>hot 99%<br>'
            + '<i style="background:#ef4444"></i>hot 95%<br>'
            + '<i style="background:#fca5a5"></i>hot 90%<br>'
            + '<i style="background:#3b82f6"></i>cold spot<br>'
            + '<i style="background:#f59e0b"></i>forecast<br>'
            + '<i style="background:#22c55e"></i>patrol cell';
          return div;
        };
        s.legend.addTo(map);
      }
      const all = L.featureGroup([gi, fc, em]);
      if (all.getLayers().length && all.getBounds().isValid()) map.fitBounds(all.getBounds());
      document.getElementById("analytics-map").dataset.ready = "true";
      return true;
    },
  };
})();
</script>
"""


def _principal(runtime: Runtime, token: str) -> Principal:
    with runtime.sessions() as session:
        return principal_from_token(
            session, token, key=runtime.settings.signing_key(), now=runtime.clock.now()
        )


def _load(
    runtime: Runtime, principal: Principal, dataset: str, group_by: str, period: str
) -> dict[str, Any]:
    """Everything the page shows, in one worker-thread call."""
    with runtime.sessions() as session:
        datasets = [d.dataset for d in service.list_datasets(session, actor=principal)]
        if not datasets:
            return {"datasets": []}
        if dataset not in datasets:
            dataset = datasets[0]
        out: dict[str, Any] = {"datasets": datasets, "dataset": dataset}
        try:
            report = service.trend_report(
                session,
                actor=principal,
                dataset=dataset,
                group_by=group_by,  # type: ignore[arg-type]
                period=period,  # type: ignore[arg-type]
                monitor=8 if period == "week" else 28,
                show=52 if period == "week" else 120,
            )
            out["trends"] = report.model_dump(mode="json")
        except SafeCityError as exc:
            # Too little history to learn what is normal (a young `live` dataset): say so
            # and still show the maps.
            out["trends"] = {"series": [], "alerts": []}
            out["trend_note"] = exc.message
        layers: dict[str, Callable[[], dict[str, Any]]] = {
            "hotspots": lambda: service.hotspot_layer(session, actor=principal, dataset=dataset),
            "forecast": lambda: service.forecast_layer(
                session, actor=principal, dataset=dataset, top_fraction=0.01
            ),
            "emerging": lambda: service.emerging_layer(session, actor=principal, dataset=dataset),
        }
        out["layer_notes"] = []
        for key, make in layers.items():
            try:
                out[key] = make()
            except SafeCityError as exc:
                # Too few incidents for this layer (Gi* on a handful of cells): the rest shows.
                out[key] = {"type": "FeatureCollection", "features": []}
                out["layer_notes"].append(exc.message)
        try:
            from safecity.analytics.patrol import plan_geojson

            plan = service.patrol_plan(session, actor=principal, dataset=dataset, top=5)
            out["patrols"] = plan_geojson(plan)
        except SafeCityError:
            out["patrols"] = {"type": "FeatureCollection", "features": []}
        out["evaluations"] = [
            e.model_dump(mode="json")
            for e in service.list_evaluations(session, actor=principal, limit=1)
        ]
        return out


def _chart_options(series: dict[str, Any]) -> dict[str, Any]:
    pts = series["points"]
    x = [p["start"] for p in pts]
    low = [p["low"] for p in pts]
    width = [max(p["high"] - p["low"], 0) for p in pts]
    alerts = [[p["start"], p["count"]] for p in pts if p["alert"]]
    return {
        "backgroundColor": "transparent",
        "tooltip": {"trigger": "axis"},
        "legend": {
            "data": ["count", "expected", "alert"],
            "top": 0,
            "textStyle": {"color": "#cbd5e1"},
        },
        "grid": {"left": 40, "right": 12, "top": 30, "bottom": 40},
        "xAxis": {"type": "category", "data": x, "axisLabel": {"color": "#94a3b8"}},
        "yAxis": {
            "type": "value",
            "axisLabel": {"color": "#94a3b8"},
            "splitLine": {"lineStyle": {"color": "#1e293b"}},
        },
        "series": [
            {
                "name": "band low",
                "type": "line",
                "data": low,
                "stack": "band",
                "lineStyle": {"opacity": 0},
                "symbol": "none",
                "tooltip": {"show": False},
            },
            {
                "name": "99% band",
                "type": "line",
                "data": width,
                "stack": "band",
                "lineStyle": {"opacity": 0},
                "symbol": "none",
                "areaStyle": {"color": "rgba(56,189,248,0.18)"},
                "tooltip": {"show": False},
            },
            {
                "name": "expected",
                "type": "line",
                "data": [p["expected"] for p in pts],
                "symbol": "none",
                "lineStyle": {"type": "dashed", "color": "#38bdf8"},
            },
            {
                "name": "count",
                "type": "line",
                "data": [p["count"] for p in pts],
                "symbolSize": 3,
                "lineStyle": {"color": "#e2e8f0"},
                "itemStyle": {"color": "#e2e8f0"},
            },
            {
                "name": "alert",
                "type": "scatter",
                "data": alerts,
                "symbolSize": 12,
                "itemStyle": {"color": "#ef4444"},
            },
        ],
    }


def _patrol_sheet(runtime: Runtime, principal: Principal, dataset: str) -> str:
    """The printable patrol sheet of the user's stations (the API's `format=html`)."""
    from safecity.analytics.patrol import render_html

    with runtime.sessions() as session:
        return render_html(service.patrol_plan(session, actor=principal, dataset=dataset))


async def _console_principal(rt: Runtime, back_to: str) -> Principal | None:
    """The console's logged-in user; None (after noting where to come back) when none."""
    token = nicegui_app.storage.user.get("token")
    principal: Principal | None = None
    if isinstance(token, str):
        try:
            principal = await run.io_bound(_principal, rt, token)
        except Unauthenticated as exc:
            nicegui_app.storage.user.clear()
            nicegui_app.storage.user["notice"] = exc.message
    if principal is None:
        nicegui_app.storage.user["next"] = back_to
    return principal


def register_pages(runtime: Runtime | Callable[[], Runtime]) -> None:
    """Add `/analytics` to the console. Call once, before the console starts."""
    from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse

    def current() -> Runtime:
        return runtime() if callable(runtime) else runtime

    @ui.page(PATH, title="SafeCity — Analytics")
    async def analytics_page() -> Any:
        rt = current()
        principal = await _console_principal(rt, PATH)
        if principal is None:
            return RedirectResponse("/login", status_code=303)
        await _Page(rt, principal).build()
        return None

    @nicegui_app.get(SHEET_PATH, include_in_schema=False)
    async def patrol_sheet(dataset: str = "history") -> Any:
        """The printable patrol sheet for the console's user (its login, no token)."""
        rt = current()
        principal = await _console_principal(rt, f"{SHEET_PATH}?dataset={quote(dataset)}")
        if principal is None:
            return RedirectResponse("/login", status_code=303)
        try:
            sheet = await run.io_bound(_patrol_sheet, rt, principal, dataset)
        except SafeCityError as exc:
            return PlainTextResponse(exc.message, status_code=exc.status)
        return HTMLResponse(sheet)


class _Page:
    def __init__(self, runtime: Runtime, principal: Principal) -> None:
        self.runtime = runtime
        self.principal = principal
        self.dataset = "history"
        self.group_by = "all"
        self.period = "week"
        self.data: dict[str, Any] = {}

    async def build(self) -> None:
        ui.add_css(_CSS)
        ui.add_head_html(_JS)
        with ui.header().classes("sca-header items-center px-3 py-1 gap-3"):
            ui.icon("insights").classes("text-sky-500 text-xl")
            ui.label("SafeCity Analytics").classes("text-lg font-bold text-slate-100")
            ui.link("Command centre", "/").classes("text-sm text-sky-300")
            ui.space()
            self.dataset_select = (
                ui.select([], label="Dataset", on_change=lambda e: self._set("dataset", e.value))
                .props("id=analytics-dataset dense dark outlined")
                .classes("w-40")
            )
            ui.select(
                {"all": "All", "district": "District", "station": "Station", "type": "Type"},
                value="all",
                label="Group by",
                on_change=lambda e: self._set("group_by", e.value),
            ).props("id=analytics-group dense dark outlined").classes("w-32")
            ui.select(
                {"week": "Weekly", "day": "Daily"},
                value="week",
                label="Period",
                on_change=lambda e: self._set("period", e.value),
            ).props("id=analytics-period dense dark outlined").classes("w-28")
            self.sheet_link = (
                ui.link("Patrol sheet", f"{SHEET_PATH}?dataset={quote(self.dataset)}", new_tab=True)
                .classes("text-sm text-sky-300")
                .props("id=analytics-patrol-sheet")
            )
            ui.label(self.principal.name).classes("text-sm text-slate-300")
        with ui.row().classes("sca-main no-wrap gap-0"):
            with ui.element("div").classes("flex-grow h-full"):
                self.map = ui.leaflet(center=(34.0, 71.6), zoom=11)
                self.map.props("id=analytics-map").classes("h-full w-full")
                self.map.clear_layers()
                tile_url = self.runtime.settings.basemap_tile_url
                if tile_url:
                    self.map.tile_layer(url_template=tile_url, options={"maxZoom": 19})
            with ui.column().classes("sca-side h-full gap-0"):
                with ui.column().classes("sca-box gap-1"):
                    self.chart_title = ui.label("Trend").classes("sca-title")
                    self.chart_note = ui.label("").classes("sca-note")
                    self.chart = ui.echart({}).props("id=analytics-chart").classes("w-full h-64")
                    self.series_select = (
                        ui.select([], label="Series", on_change=lambda e: self._draw_chart(e.value))
                        .props("dense dark outlined")
                        .classes("w-64")
                    )
                with ui.column().classes("sca-box gap-1"):
                    ui.label("Alerts: unusual rises").classes("sca-title")
                    self.alerts = ui.html("").props("id=analytics-alerts")
                with ui.column().classes("sca-box gap-1"):
                    ui.label("Hotspot forecast evaluation").classes("sca-title")
                    self.evaluation = ui.html("").props("id=analytics-evaluation")
        ui.timer(0.0, self.refresh, once=True)

    async def _set(self, what: str, value: Any) -> None:
        if value is None or getattr(self, what) == value:
            return
        setattr(self, what, value)
        await self.refresh()

    async def refresh(self) -> None:
        try:
            data = await run.io_bound(
                _load, self.runtime, self.principal, self.dataset, self.group_by, self.period
            )
        except SafeCityError as exc:
            ui.notify(exc.message, type="warning")
            return
        if data is None:  # NiceGUI cancels the call when the server shuts down
            return
        self.data = data
        if not self.data or not self.data.get("datasets"):
            self.chart_note.set_text(
                "No incident history yet: import one with safecity import incidents FILE.csv"
            )
            return
        self.dataset = self.data["dataset"]
        self.dataset_select.set_options(self.data["datasets"], value=self.dataset)
        self.sheet_link.props["href"] = f"{SHEET_PATH}?dataset={quote(self.dataset)}"
        self.sheet_link.update()
        groups = [s["group"] for s in self.data["trends"]["series"]]
        self.series_select.set_options(groups, value=groups[0] if groups else None)
        if groups:
            self._draw_chart(groups[0])
        else:
            self.chart_title.set_text("Trend")
            self.chart_note.set_text(self.data.get("trend_note") or "No trend to show.")
            self.chart.options.clear()
            self.chart.update()
        self._draw_alerts()
        self._draw_evaluation()
        await self.map.initialized()
        cfg = {k: self.data[k] for k in ("hotspots", "forecast", "emerging", "patrols")}
        ui.run_javascript(f"SafeCityAnalytics.show({self.map.id}, {json.dumps(cfg)})")
        for note in dict.fromkeys(self.data.get("layer_notes", [])):
            ui.notify(note, type="info")

    def _draw_chart(self, group: str | None) -> None:
        series = next(
            (s for s in self.data.get("trends", {}).get("series", []) if s["group"] == group), None
        )
        if series is None:
            return
        self.chart_title.set_text(f"{series['group']}: incidents per {series['period']}")
        self.chart_note.set_text(
            f"{series['model']}; band: 99% of counts expected; red: alert (FDR 5%)"
        )
        self.chart.options.clear()
        self.chart.options.update(_chart_options(series))
        self.chart.update()

    def _draw_alerts(self) -> None:
        alerts = self.data["trends"]["alerts"]
        if not alerts:
            self.alerts.set_content("<span class='sca-note'>No unusual rise.</span>")
            return
        rows = "".join(
            f"<tr><td>{_esc(a['group'])}</td><td>{a['start']}</td><td>{a['count']}</td>"
            f"<td>{a['expected']:.1f}</td><td>{a['ratio']:.1f}x</td><td>{a['q_value']:.3g}</td></tr>"
            for a in alerts[:20]
        )
        self.alerts.set_content(
            "<table class='sca-table'><tr><th>Group</th><th>From</th><th>Count</th>"
            f"<th>Expected</th><th>Ratio</th><th>q</th></tr>{rows}</table>"
        )

    def _draw_evaluation(self) -> None:
        evals = self.data.get("evaluations") or []
        if not evals:
            self.evaluation.set_content(
                "<span class='sca-note'>No saved evaluation: run safecity eval hotspots "
                "--incidents FILE.csv --from DATE --to DATE --save</span>"
            )
            return
        ev = evals[0]
        result = ev["result"]
        best = result.get("best")
        naive = result["models"].get("naive", {})
        meta = result.get("meta", {})
        intervals = meta.get("vs_naive") or {}
        rows = []
        for name, r in result["models"].items():
            g1 = r["pai_1"] / naive["pai_1"] - 1 if naive.get("pai_1") else 0.0
            g5 = r["pai_5"] / naive["pai_5"] - 1 if naive.get("pai_5") else 0.0
            cls = " class='sca-best'" if name == best else ""
            ci = intervals.get(name, {})
            rows.append(
                f"<tr{cls}><td>{_esc(name)}</td><td>{r['hit_1']:.1%}</td><td>{r['pai_1']:.2f}</td>"
                f"<td>{g1:+.1%}{_interval(ci.get('pai_1_ci90'))}</td><td>{r['hit_5']:.1%}</td>"
                f"<td>{r['pai_5']:.2f}</td><td>{g5:+.1%}{_interval(ci.get('pai_5_ci90'))}</td></tr>"
            )
        self.evaluation.set_content(
            f"<div class='sca-note'>{_esc(ev['source'])}: {meta.get('from', '')} to "
            f"{meta.get('to', '')}, {meta.get('incidents', '')} incidents, "
            f"{meta.get('cell_m', '')} m cells, weekly forecasts from earlier incidents only"
            "; [90% interval of the gain over the weeks]</div>"
            "<table class='sca-table'><tr><th>Model</th><th>Hit 1%</th><th>PAI 1%</th>"
            "<th>vs naive</th><th>Hit 5%</th><th>PAI 5%</th><th>vs naive</th></tr>"
            + "".join(rows)
            + "</table>"
        )


def _interval(ci: list[float] | None) -> str:
    """A gain's 90% interval over the weeks, small beside the gain (older saved runs have
    none)."""
    if not ci:
        return ""
    return f" <span class='sca-note'>[{ci[0]:+.1%}, {ci[1]:+.1%}]</span>"


def _esc(s: Any) -> str:
    import html

    return html.escape(str(s))
