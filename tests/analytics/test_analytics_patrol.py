"""Patrol planning: shifts, top cells per station and shift, the printable sheet."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from safecity.analytics.grid import Grid
from safecity.analytics.patrol import (
    DEFAULT_SHIFTS,
    parse_shifts,
    plan,
    plan_geojson,
    render_html,
)
from safecity.core.errors import InvalidInput


def test_shifts() -> None:
    shifts = parse_shifts("day=8-20,night=20-8")
    assert [s.hours for s in shifts] == ["08:00-20:00", "20:00-08:00"]
    assert shifts[1].holds(np.array([23, 3, 8])).tolist() == [True, True, False]
    assert [s.name for s in DEFAULT_SHIFTS] == ["morning", "evening", "night"]
    with pytest.raises(InvalidInput, match="exactly once"):
        parse_shifts("a=0-12,b=10-24")
    with pytest.raises(InvalidInput, match="name=from-to"):
        parse_shifts("morning")


def test_top_cells_per_station_and_shift() -> None:
    """Two stations on a 4 x 1 grid; the night shift holds 80% of cell 3's incidents."""
    g = Grid(epsg=32643, x0=400_000.0, y0=3_760_000.0, cell_m=150.0, nx=4, ny=1)
    forecast = np.array([1.0, 3.0, 2.0, 4.0])
    shifts = parse_shifts("day=6-18,night=18-6")
    shares = np.array([[0.5, 0.5, 0.5, 0.2], [0.5, 0.5, 0.5, 0.8]])
    owner = np.array([0, 0, 1, 1])
    p = plan(
        g,
        forecast,
        shares,
        owner,
        [("Alpha <PS>", 1), ("Bravo", 2)],
        shifts,
        top=1,
        week_start=datetime(2018, 7, 2),
        model="blend",
        title="Plan",
    )
    got = {(s.station, s.shift.name): [c.cell for c in s.cells] for s in p.stations}
    assert got == {
        ("Alpha <PS>", "day"): [1],
        ("Alpha <PS>", "night"): [1],
        ("Bravo", "day"): [2],  # 2 * 0.5 = 1.0 beats 4 * 0.2 = 0.8
        ("Bravo", "night"): [3],
    }
    bravo_night = next(s for s in p.stations if s.station == "Bravo" and s.shift.name == "night")
    assert bravo_night.expected_total == pytest.approx(2 * 0.5 + 4 * 0.8)
    assert bravo_night.cells[0].share == pytest.approx(3.2 / 4.2)
    page = render_html(p)
    assert "Alpha &lt;PS&gt;" in page and "<PS>" not in page
    assert page.count("<section class='station'>") == 2
    assert "Mon 02 Jul 2018 to Sun 08 Jul 2018" in page
    layer = plan_geojson(p)
    assert len(layer["features"]) == 4
    assert layer["features"][0]["geometry"]["type"] == "Polygon"
    with pytest.raises(InvalidInput):
        plan(g, forecast, shares, owner, [("A", 1)], shifts, top=0,
             week_start=datetime(2018, 7, 2), model="x", title="t")  # fmt: skip
