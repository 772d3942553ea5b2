"""Patrol planning: the cells each station should patrol in each shift, and a printable
sheet.

The week's forecast (expected incidents per cell, from any forecast model) is split over
the shifts by each cell's share of incidents in that shift's hours: the share is counted
over the last two years in a Gaussian neighbourhood (600 m) of the cell and shrunk towards
the city-wide share (a prior worth 30 incidents), so a quiet cell gets the city's daily
rhythm and a busy one its own. For each station (cells whose centre lies in its polygon)
and shift, the `top` cells by expected incidents are the patrol list."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from scipy import ndimage

from safecity.analytics.events import Incidents, day_number
from safecity.analytics.forecast import History, make_model
from safecity.analytics.grid import FloatArray, Grid, IntArray, project_geometry
from safecity.core.errors import InvalidInput

SHIFT_HISTORY_DAYS = 730.0
SHIFT_BANDWIDTH_M = 600.0
SHIFT_PRIOR = 30.0


@dataclass(frozen=True)
class Shift:
    name: str
    start_hour: int
    end_hour: int  # exclusive; may be below start_hour (over midnight)

    @property
    def hours(self) -> str:
        return f"{self.start_hour:02d}:00-{self.end_hour % 24:02d}:00"

    def holds(self, hour: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        if self.start_hour < self.end_hour:
            return (hour >= self.start_hour) & (hour < self.end_hour)
        return (hour >= self.start_hour) | (hour < self.end_hour)


DEFAULT_SHIFTS = (Shift("morning", 6, 14), Shift("evening", 14, 22), Shift("night", 22, 6))


def parse_shifts(text: str) -> list[Shift]:
    """`morning=6-14,evening=14-22,night=22-6`: the shifts must cover the day once."""
    shifts = []
    for part in text.split(","):
        try:
            name, span = part.split("=")
            a, b = span.split("-")
            shifts.append(Shift(name.strip(), int(a) % 24, int(b) % 24 or 24))
        except ValueError:
            raise InvalidInput(
                f"cannot read the shift {part!r}; write shifts as name=from-to hours, e.g. "
                "morning=6-14,evening=14-22,night=22-6"
            ) from None
    cover = np.zeros(24, dtype=np.int64)
    for s in shifts:
        cover += s.holds(np.arange(24))
    if not (cover == 1).all():
        raise InvalidInput("the shifts must cover each hour of the day exactly once")
    return shifts


def shift_shares(history: History, start: float, shifts: Sequence[Shift]) -> FloatArray:
    """(shifts x cells) share of each cell's incidents in each shift (rows sum to 1)."""
    grid = history.grid
    recent = history.t >= start - SHIFT_HISTORY_DAYS
    hour = (np.floor((history.t - np.floor(history.t)) * 24)).astype(np.int64)
    counts = np.zeros((len(shifts), grid.n))
    for i, s in enumerate(shifts):
        c = history.counts(mask=recent & s.holds(hour))
        counts[i] = ndimage.gaussian_filter(
            c.reshape(grid.shape), SHIFT_BANDWIDTH_M / grid.cell_m, mode="constant"
        ).ravel()
    total = counts.sum(axis=0)
    city = counts.sum(axis=1)
    city = city / city.sum() if city.sum() > 0 else np.full(len(shifts), 1.0 / len(shifts))
    return np.asarray((counts + SHIFT_PRIOR * city[:, None]) / (total + SHIFT_PRIOR), np.float64)


@dataclass
class PlanCell:
    rank: int
    cell: int
    lon: float
    lat: float
    x: float
    y: float
    expected: float
    share: float


@dataclass
class StationShift:
    station: str
    station_id: int | None
    shift: Shift
    expected_total: float
    cells: list[PlanCell]


@dataclass
class PatrolPlan:
    title: str
    week_start: datetime
    model: str
    grid: Grid
    top: int
    stations: list[StationShift] = field(default_factory=list)


def plan(
    grid: Grid,
    forecast: FloatArray,
    shares: FloatArray,
    station_of_cell: IntArray,
    stations: Sequence[tuple[str, int | None]],
    shifts: Sequence[Shift],
    *,
    top: int,
    week_start: datetime,
    model: str,
    title: str,
) -> PatrolPlan:
    """Top cells per station and shift. `station_of_cell[c]` indexes `stations` (-1: none)."""
    if top < 1:
        raise InvalidInput("--top must be at least 1")
    out = PatrolPlan(title=title, week_start=week_start, model=model, grid=grid, top=top)
    for si, (name, sid) in enumerate(stations):
        cells = np.flatnonzero(station_of_cell == si)
        if cells.size == 0:
            continue
        for k, shift in enumerate(shifts):
            risk = forecast[cells] * shares[k, cells]
            total = float(risk.sum())
            order = np.argsort(-risk, kind="stable")[:top]
            chosen = cells[order]
            lon, lat = grid.centres_lonlat(chosen)
            x, y = grid.centres_xy(chosen)
            out.stations.append(
                StationShift(
                    station=name,
                    station_id=sid,
                    shift=shift,
                    expected_total=total,
                    cells=[
                        PlanCell(
                            rank=r + 1,
                            cell=int(c),
                            lon=float(lon[r]),
                            lat=float(lat[r]),
                            x=float(x[r]),
                            y=float(y[r]),
                            expected=float(risk[order[r]]),
                            share=float(risk[order[r]] / total) if total > 0 else 0.0,
                        )
                        for r, c in enumerate(chosen)
                    ],
                )
            )
    return out


def assign_cells(grid: Grid, polygons: Sequence[Any]) -> IntArray:
    """Index of the polygon (lon/lat) holding each cell's centre; -1 for none."""
    cx, cy = grid.centres_xy()
    out = np.full(grid.n, -1, dtype=np.int64)
    for i, geom in enumerate(polygons):
        pg = project_geometry(grid.epsg, geom)
        minx, miny, maxx, maxy = pg.bounds
        box = (cx >= minx) & (cx <= maxx) & (cy >= miny) & (cy <= maxy) & (out < 0)
        idx = np.flatnonzero(box)
        if idx.size:
            inside = shapely.contains_xy(pg, cx[idx], cy[idx])
            out[idx[inside]] = i
    return out


def plan_from_polygons(
    incidents: Incidents,
    *,
    stations: Sequence[tuple[str, Any]],
    week_start: datetime,
    model: str = "blend",
    top: int = 10,
    cell_m: float = 150.0,
    shifts: Sequence[Shift] = DEFAULT_SHIFTS,
    title: str = "Patrol plan",
    station_ids: Sequence[int | None] | None = None,
) -> PatrolPlan:
    """Forecast the week from incidents before it and plan each station's patrols."""
    if not stations:
        raise InvalidInput("no stations to plan for")
    union = shapely.union_all([g for _, g in stations])
    grid = Grid.covering_geometry(union, cell_m=cell_m)
    start = day_number(week_start)
    past = incidents.select(incidents.t < start)
    if len(past) == 0:
        raise InvalidInput(f"no incidents before {week_start.date()} to plan from")
    history = History.build(grid, past.t, past.lon, past.lat)
    forecast = make_model(model).forecast(history, start, 7.0)
    shares = shift_shares(history, start, shifts)
    owner = assign_cells(grid, [g for _, g in stations])
    ids = list(station_ids) if station_ids is not None else [None] * len(stations)
    return plan(
        grid,
        forecast,
        shares,
        owner,
        [(name, ids[i]) for i, (name, _) in enumerate(stations)],
        shifts,
        top=top,
        week_start=week_start,
        model=model,
        title=title,
    )


def plan_geojson(p: PatrolPlan) -> dict[str, Any]:
    """The plan's cells as a GeoJSON layer (one square per station, shift and cell)."""
    feats = []
    for ss in p.stations:
        rings = p.grid.cell_rings([c.cell for c in ss.cells])
        for c, ring in zip(ss.cells, rings, strict=True):
            feats.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": {
                        "station": ss.station,
                        "station_id": ss.station_id,
                        "shift": ss.shift.name,
                        "rank": c.rank,
                        "expected": round(c.expected, 4),
                        "lon": round(c.lon, 6),
                        "lat": round(c.lat, 6),
                    },
                }
            )
    return {"type": "FeatureCollection", "features": feats}


_CSS = """
body { font: 12px/1.4 system-ui, sans-serif; color: #111; margin: 16px; }
h1 { font-size: 18px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 18px 0 4px; }
h3 { font-size: 13px; margin: 10px 0 4px; }
.meta { color: #444; margin-bottom: 8px; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { border: 1px solid #999; padding: 2px 6px; text-align: left; }
th { background: #eee; } td.num { text-align: right; }
.station { page-break-after: always; break-after: page; }
.shifts { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.shift { min-width: 300px; }
svg { border: 1px solid #999; background: #fafafa; }
.sign { margin-top: 12px; color: #444; }
@media print { body { margin: 8mm; } a { color: #111; text-decoration: none; } }
"""


def render_html(p: PatrolPlan) -> str:
    """A printable (A4) HTML patrol sheet: a page per station, a table and sketch per shift."""
    esc = html.escape
    week_end = p.week_start + timedelta(days=6)
    by_station: dict[str, list[StationShift]] = {}
    for ss in p.stations:
        by_station.setdefault(ss.station, []).append(ss)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(p.title)}</title><style>{_CSS}</style></head><body>",
    ]
    for name, rows in by_station.items():
        parts.append("<section class='station'>")
        parts.append(f"<h1>{esc(p.title)}</h1>")
        parts.append(
            f"<div class='meta'>Station <b>{esc(name)}</b> &middot; week "
            f"{p.week_start:%a %d %b %Y} to {week_end:%a %d %b %Y} &middot; model "
            f"{esc(p.model)} &middot; {p.grid.cell_m:g} m cells &middot; top {p.top} per "
            "shift</div>"
        )
        parts.append("<div class='shifts'>")
        for ss in rows:
            parts.append("<div class='shift'>")
            parts.append(
                f"<h3>{esc(ss.shift.name.title())} shift ({ss.shift.hours}): "
                f"{ss.expected_total:.1f} incidents expected in the station</h3>"
            )
            parts.append(
                "<table><tr><th>#</th><th>Latitude, longitude (cell centre)</th>"
                "<th>Expected</th><th>Share</th><th>Patrolled (time, initials)</th></tr>"
            )
            for c in ss.cells:
                parts.append(
                    f"<tr><td class='num'>{c.rank}</td><td>{c.lat:.5f}, {c.lon:.5f}</td>"
                    f"<td class='num'>{c.expected:.2f}</td>"
                    f"<td class='num'>{c.share:.1%}</td><td></td></tr>"
                )
            parts.append("</table>")
            parts.append(_sketch(p.grid.cell_m, ss))
            parts.append("</div>")
        parts.append("</div>")
        parts.append(
            "<div class='sign'>Shift in charge: ____________________ &nbsp; "
            "Signature: ____________________</div>"
        )
        parts.append("</section>")
    if not by_station:
        parts.append(f"<h1>{esc(p.title)}</h1><p>No station holds any cell of the grid.</p>")
    parts.append("</body></html>")
    return "".join(parts)


def _sketch(cell_m: float, ss: StationShift, size: int = 220) -> str:
    """A small north-up sketch of the shift's cells, numbered by rank."""
    if not ss.cells:
        return ""
    xs = np.array([c.x for c in ss.cells])
    ys = np.array([c.y for c in ss.cells])
    span = max(float(xs.max() - xs.min()), float(ys.max() - ys.min()), cell_m) + 2 * cell_m
    scale = size / span
    x0 = float(xs.min()) - cell_m
    y1 = float(ys.max()) + cell_m
    side = max(cell_m * scale, 6.0)
    out = [f"<svg width='{size}' height='{size}' viewBox='0 0 {size} {size}'>"]
    for c in ss.cells:
        px = (c.x - x0) * scale - side / 2
        py = (y1 - c.y) * scale - side / 2
        out.append(
            f"<rect x='{px:.1f}' y='{py:.1f}' width='{side:.1f}' height='{side:.1f}' "
            "fill='#fca5a5' stroke='#991b1b'/>"
            f"<text x='{px + side / 2:.1f}' y='{py + side / 2 + 4:.1f}' font-size='10' "
            f"text-anchor='middle'>{c.rank}</text>"
        )
    bar = 500.0 * scale
    out.append(
        f"<line x1='8' y1='{size - 8}' x2='{8 + bar:.1f}' y2='{size - 8}' stroke='#111'/>"
        f"<text x='8' y='{size - 12}' font-size='9'>500 m</text>"
        f"<text x='{size - 12}' y='14' font-size='11'>N</text>"
    )
    out.append("</svg>")
    return "".join(out)
