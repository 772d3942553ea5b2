"""JurisdictionIndex gives exactly the brute-force shapely answer, fast paths included."""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box, shape

from safecity.geo.bench import run_routing_bench, synthetic_jurisdictions
from safecity.geo.index import METRES_PER_DEGREE, JurisdictionIndex, Located

Items = list[tuple[int, Any]]


# ------------------------------------------------------------------------ brute force


def _kx(items: Items) -> float:
    geoms = np.array([g for _, g in items], dtype=object)
    _, ymin, _, ymax = shapely.total_bounds(geoms)
    return max(math.cos(math.radians(0.5 * (ymin + ymax))), 1e-3)


def brute_force(
    items: Items, lons: np.ndarray, lats: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference answer: lowest id among polygons that intersect the point; otherwise
    the nearest polygon (x scaled by cos(mid latitude)), ties to the lowest id.
    Returns ids, inside, and the distance matrix (degrees, scaled) for outside points."""
    ordered = sorted(items, key=lambda item: item[0])
    ids = np.array([i for i, _ in ordered])
    geoms = np.array([g for _, g in ordered], dtype=object)
    result = np.full(lons.size, -1, dtype=np.int64)
    inside = np.zeros(lons.size, dtype=bool)
    for k in range(len(ordered) - 1, -1, -1):
        hit = shapely.intersects_xy(geoms[k], lons, lats)
        result[hit] = ids[k]
        inside |= hit
    kx = _kx(items)
    scaled = shapely.transform(geoms, lambda c: c * np.array([kx, 1.0]))
    out = np.flatnonzero(~inside)
    dist = np.full((lons.size, len(ordered)), np.nan)
    if out.size:
        pts = shapely.points(lons[out] * kx, lats[out])
        dist[out] = np.stack([shapely.distance(g, pts) for g in scaled], axis=1)
        best = dist[out].min(axis=1, keepdims=True)
        tied = dist[out] <= best
        result[out] = np.where(tied, ids[None, :], np.iinfo(np.int64).max).min(axis=1)
    return result, inside, dist


def assert_matches_brute_force(items: Items, lons: np.ndarray, lats: np.ndarray) -> None:
    index = JurisdictionIndex(items)
    got_ids, got_inside = index.locate_many(lons, lats)
    want_ids, want_inside, dist = brute_force(items, lons, lats)
    np.testing.assert_array_equal(got_inside, want_inside)
    mismatch = np.flatnonzero(got_ids != want_ids)
    if mismatch.size:
        # Only acceptable for outside points equidistant (to rounding) from two polygons.
        order = {jid: k for k, jid in enumerate(sorted(i for i, _ in items))}
        for p in mismatch:
            assert not want_inside[p], f"point {p} ({lons[p]}, {lats[p]}) inside, wrong id"
            got_d = dist[p, order[int(got_ids[p])]]
            assert got_d <= np.nanmin(dist[p]) * (1 + 1e-12) + 1e-15


# ----------------------------------------------------------------------- geographies


def voronoi_city(n: int, seed: int) -> Items:
    """Voronoi stations clipped to a round city outline, so there is outside space inside
    the bounding box; one station gets a hole and one is a two-part MultiPolygon."""
    rng = np.random.default_rng(seed)
    outline = shapely.Point(71.55, 34.0).buffer(0.12, quad_segs=32)
    seeds = np.column_stack([rng.uniform(71.43, 71.67, n), rng.uniform(33.88, 34.12, n)])
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=outline.envelope)
    )
    parts = [shapely.intersection(c, outline) for c in cells]
    parts = [p for p in parts if not p.is_empty and p.geom_type == "Polygon"]
    items: Items = [(100 + 3 * i, p) for i, p in enumerate(parts)]
    # A hole in the first station (nobody's land inside the city) ...
    first_id, first = items[0]
    hole = first.centroid.buffer(math.sqrt(first.area) / 6)
    items[0] = (first_id, first.difference(hole))
    # ... and an exclave for the second one, off the coast of the city.
    second_id, second = items[1]
    items[1] = (second_id, MultiPolygon([second, box(71.70, 34.10, 71.72, 34.13)]))
    return items


def grid_squares(rows: int, cols: int, size: float = 0.01) -> Items:
    """Squares in a grid, ids in scrambled order: many shared edges and 4-way corners."""
    items: Items = []
    rng = np.random.default_rng(7)
    ids = rng.permutation(rows * cols) + 1
    for r in range(rows):
        for c in range(cols):
            x, y = 71.5 + c * size, 34.0 + r * size
            items.append((int(ids[r * cols + c]), box(x, y, x + size, y + size)))
    return items


def border_points(items: Items, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points on, at vertices of, and within 1e-12..1e-6 degrees of the polygon edges."""
    rng = np.random.default_rng(seed)
    geoms = np.array([g for _, g in items], dtype=object)
    boundaries = shapely.boundary(geoms)
    which = rng.integers(0, len(items), n)
    on_edge = shapely.line_interpolate_point(
        boundaries[which], rng.uniform(0, 1, n), normalized=True
    )
    xy = shapely.get_coordinates(on_edge)
    vertices = shapely.get_coordinates(geoms)
    pick = vertices[rng.integers(0, len(vertices), n // 4)]
    xy = np.concatenate([xy, pick])
    scale = rng.choice([0.0, 1e-12, 1e-9, 1e-7, 1e-6], size=len(xy))
    angle = rng.uniform(0, 2 * math.pi, len(xy))
    return xy[:, 0] + scale * np.cos(angle), xy[:, 1] + scale * np.sin(angle)


def uniform_points(items: Items, n: int, seed: int, widen: float = 0.1) -> tuple[Any, Any]:
    geoms = np.array([g for _, g in items], dtype=object)
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    dx, dy = widen * (xmax - xmin), widen * (ymax - ymin)
    rng = np.random.default_rng(seed)
    return rng.uniform(xmin - dx, xmax + dx, n), rng.uniform(ymin - dy, ymax + dy, n)


GEOGRAPHIES: dict[str, Callable[[], Items]] = {
    "voronoi_city_45": lambda: voronoi_city(47, seed=1),
    "grid_squares_12x9": lambda: grid_squares(12, 9),
    "synthetic_1000": functools.cache(lambda: synthetic_jurisdictions(1000, seed=3)),
}


@pytest.mark.parametrize("name", sorted(GEOGRAPHIES))
def test_locate_many_equals_brute_force_on_20k_points(name: str) -> None:
    items = GEOGRAPHIES[name]()
    ux, uy = uniform_points(items, 12_000, seed=11)
    bx, by = border_points(items, 6_400, seed=12)
    lons, lats = np.concatenate([ux, bx]), np.concatenate([uy, by])
    assert lons.size >= 20_000
    assert_matches_brute_force(items, lons, lats)


@pytest.mark.parametrize("resolution", [1, 7, 64])
def test_coarse_grids_give_the_same_answers(resolution: int) -> None:
    items = voronoi_city(30, seed=5)
    lons, lats = uniform_points(items, 3_000, seed=2, widen=0.5)
    bx, by = border_points(items, 2_000, seed=3)
    lons, lats = np.concatenate([lons, bx]), np.concatenate([lats, by])
    index = JurisdictionIndex(items, resolution=resolution)
    want_ids, want_inside, _ = brute_force(items, lons, lats)
    got_ids, got_inside = index.locate_many(lons, lats)
    np.testing.assert_array_equal(got_inside, want_inside)
    np.testing.assert_array_equal(got_ids, want_ids)


@pytest.mark.parametrize("name", ["voronoi_city_45", "grid_squares_12x9"])
def test_single_locate_agrees_with_bulk_and_reports_distance(name: str) -> None:
    items = GEOGRAPHIES[name]()
    index = JurisdictionIndex(items)
    ux, uy = uniform_points(items, 1_500, seed=21, widen=0.3)
    bx, by = border_points(items, 500, seed=22)
    lons, lats = np.concatenate([ux, bx]), np.concatenate([uy, by])
    ids, inside = index.locate_many(lons, lats)
    _, _, dist = brute_force(items, lons, lats)
    for p in range(lons.size):
        found = index.locate(float(lons[p]), float(lats[p]))
        assert found == Located(int(ids[p]), bool(inside[p]), found.distance_m)
        if inside[p]:
            assert found.distance_m == 0.0
        else:
            want_m = float(np.nanmin(dist[p])) * METRES_PER_DEGREE
            assert found.distance_m == pytest.approx(want_m, rel=1e-9, abs=1e-6)
            assert found.distance_m > 0.0


# ---------------------------------------------------------------- specific behaviour

TWO_SQUARES: Items = [(7, box(71.0, 34.0, 71.1, 34.1)), (3, box(71.1, 34.0, 71.2, 34.1))]
M_PER_DEG_LON = METRES_PER_DEGREE * math.cos(math.radians(34.05))


@pytest.mark.parametrize(
    ("lon", "lat", "want_id", "want_inside", "want_m"),
    [
        (71.05, 34.05, 7, True, 0.0),  # inside the west square
        (71.15, 34.05, 3, True, 0.0),  # inside the east square
        (71.1, 34.05, 3, True, 0.0),  # on the shared border: lowest id
        (71.1, 34.0, 3, True, 0.0),  # shared corner
        (71.0, 34.05, 7, True, 0.0),  # on the outer edge: belongs to it
        (70.9, 34.05, 7, False, 0.1 * M_PER_DEG_LON),  # west of everything
        (71.3, 34.05, 3, False, 0.1 * M_PER_DEG_LON),  # east of everything
        (71.05, 34.2, 7, False, 0.1 * METRES_PER_DEGREE),  # north of the west square
        (71.1, 33.9, 3, False, 0.1 * METRES_PER_DEGREE),  # equidistant: lowest id
        (100.0, -10.0, 3, False, None),  # far beyond the grid
    ],
)
def test_two_squares_table(
    lon: float, lat: float, want_id: int, want_inside: bool, want_m: float | None
) -> None:
    index = JurisdictionIndex(TWO_SQUARES)
    found = index.locate(lon, lat)
    assert (found.jurisdiction_id, found.inside) == (want_id, want_inside)
    if want_m is not None:
        assert found.distance_m == pytest.approx(want_m, rel=1e-9)
    ids, inside = index.locate_many(np.array([lon]), np.array([lat]))
    assert (int(ids[0]), bool(inside[0])) == (want_id, want_inside)


def test_island_in_a_hole_and_empty_hole() -> None:
    ring = Polygon(
        [(71.0, 34.0), (71.3, 34.0), (71.3, 34.3), (71.0, 34.3)],
        holes=[[(71.1, 34.1), (71.2, 34.1), (71.2, 34.2), (71.1, 34.2)]],
    )
    island = box(71.14, 34.14, 71.16, 34.16)
    index = JurisdictionIndex([(1, ring), (2, island)])
    assert index.locate(71.15, 34.15) == Located(2, True, 0.0)
    m_per_deg_lon = METRES_PER_DEGREE * math.cos(math.radians(34.15))
    near_ring = index.locate(71.11, 34.15)  # in the hole, 0.01 deg from the ring
    assert (near_ring.jurisdiction_id, near_ring.inside) == (1, False)
    assert near_ring.distance_m == pytest.approx(0.01 * m_per_deg_lon, rel=1e-6)
    near_island = index.locate(71.125, 34.15)  # 0.015 deg from the island
    assert (near_island.jurisdiction_id, near_island.inside) == (2, False)
    assert near_island.distance_m == pytest.approx(0.015 * m_per_deg_lon, rel=1e-6)
    assert index.locate(71.05, 34.05) == Located(1, True, 0.0)


def test_locate_many_keeps_the_input_shape() -> None:
    index = JurisdictionIndex(TWO_SQUARES)
    lons = np.array([[71.05, 71.15], [70.0, 71.1]])
    lats = np.full((2, 2), 34.05)
    ids, inside = index.locate_many(lons, lats)
    assert ids.shape == (2, 2) and inside.shape == (2, 2)
    assert ids.dtype == np.int64 and inside.dtype == np.bool_
    assert ids.tolist() == [[7, 3], [7, 3]]
    assert inside.tolist() == [[True, True], [False, True]]
    empty_ids, empty_inside = index.locate_many(np.array([]), np.array([]))
    assert empty_ids.size == 0 and empty_inside.size == 0


def test_caller_geometries_are_not_modified() -> None:
    geom = box(71.0, 34.0, 71.1, 34.1)
    JurisdictionIndex([(1, geom)])
    assert not shapely.is_prepared(geom)


@pytest.mark.parametrize(
    ("items", "error", "words"),
    [
        ([], ValueError, "at least one"),
        ([(1, box(0, 0, 1, 1)), (1, box(1, 0, 2, 1))], ValueError, "id 1 appears more than once"),
        ([(1, shapely.Point(0, 0))], ValueError, "Point"),
        ([(1, shapely.LineString([(0, 0), (1, 1)]))], ValueError, "LineString"),
        ([(1, Polygon())], ValueError, "empty"),
        ([(1, "POLYGON ((0 0, 1 0, 1 1, 0 0))")], TypeError, "not a shapely geometry"),
    ],
)
def test_bad_input_is_refused(items: Items, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        JurisdictionIndex(items)


@pytest.mark.parametrize(
    ("lon", "lat"), [(math.nan, 34.0), (71.0, math.inf), (-math.inf, math.nan)]
)
def test_non_finite_coordinates_are_refused(lon: float, lat: float) -> None:
    index = JurisdictionIndex(TWO_SQUARES)
    with pytest.raises(ValueError, match="finite"):
        index.locate(lon, lat)
    with pytest.raises(ValueError, match="finite"):
        index.locate_many(np.array([71.05, lon]), np.array([34.05, lat]))


def test_mismatched_array_shapes_are_refused() -> None:
    index = JurisdictionIndex(TWO_SQUARES)
    with pytest.raises(ValueError, match="shape"):
        index.locate_many(np.zeros(3), np.zeros(4))


def test_most_cells_are_answered_from_the_table() -> None:
    index = JurisdictionIndex(GEOGRAPHIES["synthetic_1000"]())
    rows, cols = index.grid_shape
    assert max(rows, cols) == 2048
    assert index.boundary_cell_fraction < 0.08


def test_routing_bench_reports_agreement_and_both_geographies() -> None:
    city = voronoi_city(45, seed=9)
    report = run_routing_bench(city, n_points=30_000, seed=1)
    assert report["agreement"] == 1.0
    assert set(report["geographies"]) == {"city", "synthetic_1000"}
    for geo in report["geographies"].values():
        assert geo["agreement"] == 1.0
        assert 0.0 < geo["inside_fraction"] < 1.0
        assert geo["bulk_lookups_per_s"] > 0 and geo["single_lookup_us"] > 0
    assert report["bulk_lookups_per_s"] == min(
        g["bulk_lookups_per_s"] for g in report["geographies"].values()
    )
    assert report["geographies"]["synthetic_1000"]["jurisdictions"] == 1000


# ---------------------------------------------------------------------- real boundaries

SHARED = Path(os.environ.get("SAFECITY_SHARED", Path(__file__).resolve().parents[3] / "shared"))
CHICAGO = SHARED / "data" / "crime" / "chicago"


@pytest.mark.shared
@pytest.mark.parametrize(
    ("filename", "id_key", "n_uniform"),
    [
        ("police_districts_2018.geojson", "district", 5_000),
        ("police_beats_2013.geojson", None, 2_000),
    ],
)
def test_real_police_boundaries_equal_brute_force(
    filename: str, id_key: str | None, n_uniform: int
) -> None:
    path = CHICAGO / filename
    if not path.exists():
        pytest.skip(f"real boundaries not available: {path} (set SAFECITY_SHARED)")
    features = json.loads(path.read_text())["features"]
    items: Items = [
        (int(f["properties"][id_key]) if id_key else k, shape(f["geometry"]))
        for k, f in enumerate(features)
    ]
    ux, uy = uniform_points(items, n_uniform, seed=31, widen=0.05)
    bx, by = border_points(items, 4_000, seed=32)
    assert_matches_brute_force(items, np.concatenate([ux, bx]), np.concatenate([uy, by]))
