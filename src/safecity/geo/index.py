"""Which police station's jurisdiction holds a point: a fast, exact point-in-polygon index.

`JurisdictionIndex` answers "which jurisdiction holds (lon, lat)?" for one point
(`locate`) or for arrays of points (`locate_many`). Its answers equal the brute-force
shapely answer:

* A point is *in* a jurisdiction when ``shapely.intersects_xy(polygon, lon, lat)`` is true,
  so a point on a jurisdiction's edge belongs to it.
* A point on a border shared by several jurisdictions (or in an overlap, which a valid
  layer does not have) goes to the one with the **lowest id**.
* A point that no jurisdiction holds goes to the **nearest** jurisdiction, with
  ``inside=False``. Distances are measured in a local equirectangular projection centred on
  the middle latitude of all the jurisdictions (x = lon * cos(lat0), y = lat, then degrees
  times 111,195 m, the length of one degree on a sphere of the mean earth radius). Over a city
  or a district the error is well under 1%; across a whole province spanning several
  degrees of latitude it grows to a few percent, which is acceptable for "how far outside
  the jurisdiction was this call". Equidistant ties also go to the lowest id.

How it is fast: a uniform grid (lookup table) covers the jurisdictions' bounding box plus a
10% margin. Every polygon edge is rasterised conservatively onto the grid, so each cell is
either

* *inside* jurisdiction k: no edge touches it, so the whole cell has one answer, read from
  the table with numpy fancy indexing;
* *outside* all jurisdictions: the table holds the nearest jurisdiction when it is provably
  the same for every point of the cell, or "ambiguous". The proof, at build time, runs
  over a quadtree of blocks with distance bounds to the nearby edge segments (see
  `_outside_codes` and `_segment_test`);
* *boundary*: an edge touches it; its short candidate list is tested exactly with
  ``shapely.intersects_xy`` on prepared geometries.

Only boundary points, ambiguous outside points and points beyond the grid reach shapely,
typically a few percent. The nearest jurisdiction is then found in an STRtree of short
edge chunks (8 segments each), so it costs the same however detailed the polygons are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely

__all__ = ["METRES_PER_DEGREE", "JurisdictionIndex", "Located"]

METRES_PER_DEGREE: Final[float] = math.pi * 6_371_008.8 / 180.0
"""Length of one degree of a great circle on a sphere of the mean earth radius (m)."""

_MARGIN: Final[float] = 0.10  # grid margin around the bounding box, fraction of its longer side
_TOP_BLOCK: Final[int] = 16  # cells per side of the coarsest block for nearest jurisdictions
_DIST_TOL: Final[float] = 1e-9  # degrees (0.1 mm): slack on distance comparisons
_EPS: Final[float] = 1e-6  # in cell units: far above float rounding, far below a cell
_MAX_CELLS: Final[int] = 2048 * 2048
_CHUNK: Final[int] = 8  # segments per edge chunk in the nearest-edge tree

_POLYGON: Final[int] = 3
_MULTIPOLYGON: Final[int] = 6

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]


@dataclass(frozen=True, slots=True)
class Located:
    """The answer for one point.

    `inside` is False when no jurisdiction holds the point; `jurisdiction_id` is then the
    nearest one and `distance_m` the approximate distance to it in metres (0.0 when inside).
    """

    jurisdiction_id: int
    inside: bool
    distance_m: float


def _default_resolution(n_polygons: int) -> int:
    """Cells along the longer side of the grid: more jurisdictions, finer grid."""
    want = 96.0 * math.sqrt(n_polygons)
    return int(min(2048, max(512, 2 ** math.ceil(math.log2(want)))))


class JurisdictionIndex:
    """Exact point -> jurisdiction lookup over a set of (id, Polygon | MultiPolygon).

    Geometries are lon/lat (EPSG:4326). Ids must be unique. The index copies the
    geometries, so the caller's objects are not modified. Lookups never modify it: GEOS
    builds the prepared geometries' point locators and the trees lazily, and construction
    uses each of them once, so concurrent lookups from several threads only read.

    `resolution` overrides the number of grid cells along the longer side of the bounding
    box (default: 512 to 2048, growing with the number of jurisdictions; at most 2048 x 2048
    cells, 16 MiB).
    """

    def __init__(
        self,
        jurisdictions: Iterable[tuple[int, Any]],
        *,
        resolution: int | None = None,
    ) -> None:
        items = sorted(((int(i), g) for i, g in jurisdictions), key=lambda item: item[0])
        if not items:
            raise ValueError("a JurisdictionIndex needs at least one jurisdiction")
        ids = np.array([i for i, _ in items], dtype=np.int64)
        dup = ids[1:][ids[1:] == ids[:-1]]
        if dup.size:
            raise ValueError(f"jurisdiction id {int(dup[0])} appears more than once")
        raw = np.empty(len(items), dtype=object)
        raw[:] = [g for _, g in items]
        for pos, geom in enumerate(raw):
            if not isinstance(geom, shapely.Geometry):
                raise TypeError(f"jurisdiction {int(ids[pos])}: geometry is not a shapely geometry")
            type_id = int(shapely.get_type_id(geom))
            if type_id not in (_POLYGON, _MULTIPOLYGON):
                raise ValueError(
                    f"jurisdiction {int(ids[pos])}: geometry is a {geom.geom_type}, "
                    "expected a Polygon or MultiPolygon"
                )
            if shapely.is_empty(geom):
                raise ValueError(f"jurisdiction {int(ids[pos])}: geometry is empty")
        if resolution is not None and resolution < 1:
            raise ValueError("resolution must be a positive number of cells")

        # Private copies (exact doubles), prepared for fast point-in-polygon tests.
        geoms: npt.NDArray[np.object_] = shapely.from_wkb(shapely.to_wkb(raw))
        shapely.prepare(geoms)
        shells = shapely.get_exterior_ring(shapely.get_geometry(geoms, 0))
        first_xy = shapely.get_coordinates(shapely.get_point(shells, 0))
        shapely.intersects_xy(geoms, first_xy[:, 0], first_xy[:, 1])  # builds the locators
        n = len(items)
        self._n: int = n
        self._ids: IntArray = ids
        self._ids_list: list[int] = [int(i) for i in ids]
        self._geoms = geoms
        self._geoms_list: list[Any] = list(geoms)
        self._tree = shapely.STRtree(geoms)

        xmin, ymin, xmax, ymax = (float(v) for v in shapely.total_bounds(geoms))
        lat0 = 0.5 * (ymin + ymax)
        self._kx: float = max(math.cos(math.radians(lat0)), 1e-3)
        kx = self._kx
        # Polygon edges, and the same cut into short chunks in scaled coordinates
        # (x * cos(lat0)), where planar distance approximates ground distance. A point outside
        # every polygon is as far from a polygon as from its edges, and a tree of short chunks
        # answers "nearest" fast however many vertices a polygon has.
        parts, part_poly = shapely.get_parts(shapely.boundary(geoms), return_index=True)
        coords, line_idx = shapely.get_coordinates(parts, return_index=True)
        self._edge_coords: FloatArray = coords
        self._edge_line: IntArray = line_idx.astype(np.int64)
        self._edge_poly: IntArray = part_poly.astype(np.int64)[self._edge_line]
        self._edge_scaled: FloatArray = coords * np.array([kx, 1.0])
        # Segment i runs from scaled vertex i to i + 1 (meaningless at a line's last vertex).
        self._seg_x: FloatArray = np.ascontiguousarray(self._edge_scaled[:, 0])
        self._seg_y: FloatArray = np.ascontiguousarray(self._edge_scaled[:, 1])
        self._seg_dx: FloatArray = np.append(np.diff(self._seg_x), 0.0)
        self._seg_dy: FloatArray = np.append(np.diff(self._seg_y), 0.0)
        len2 = self._seg_dx**2 + self._seg_dy**2
        self._seg_inv_len2: FloatArray = np.where(
            len2 > 0.0, 1.0 / np.where(len2 > 0.0, len2, 1.0), 0.0
        )
        chunks, chunk_line, chunk_start, chunk_nseg = _edge_chunks(
            self._edge_scaled, self._edge_line
        )
        self._chunk_start: IntArray = chunk_start
        self._chunk_nseg: IntArray = chunk_nseg
        self._chunk_poly: IntArray = part_poly.astype(np.int64)[chunk_line]
        self._chunk_poly_list: list[int] = self._chunk_poly.tolist()
        self._chunks = chunks
        self._chunk_tree = shapely.STRtree(chunks)

        # --- grid geometry ------------------------------------------------------------
        w_s = (xmax - xmin) * kx
        h_s = ymax - ymin
        side = max(w_s, h_s, 1e-6)
        margin = _MARGIN * side
        cells = resolution if resolution is not None else _default_resolution(n)
        cell_s = (side + 2.0 * margin) / cells
        nx = max(1, math.ceil((w_s + 2.0 * margin) / cell_s))
        ny = max(1, math.ceil((h_s + 2.0 * margin) / cell_s))
        while nx * ny > _MAX_CELLS:
            cell_s *= 1.25
            nx = max(1, math.ceil((w_s + 2.0 * margin) / cell_s))
            ny = max(1, math.ceil((h_s + 2.0 * margin) / cell_s))
        self._nx: int = nx
        self._ny: int = ny
        self._nx_f: float = float(nx)
        self._ny_f: float = float(ny)
        self._cw: float = cell_s / kx  # cell width in degrees of longitude
        self._ch: float = cell_s  # cell height in degrees of latitude
        self._inv_cw: float = 1.0 / self._cw
        self._inv_ch: float = 1.0 / self._ch
        self._x0: float = xmin - margin / kx
        self._y0: float = ymin - margin
        self._cell_s: float = cell_s

        self._build_table()

    # ------------------------------------------------------------------------- build

    def _build_table(self) -> None:
        n, nx, ny = self._n, self._nx, self._ny
        ncell = nx * ny

        # 1. Cells touched by any polygon edge, with the polygon whose edge it is.
        edge_keys = self._rasterise_edges()  # unique cell * n + polygon
        bcells = _unique_sorted(edge_keys // n)
        boundary = np.zeros(ncell, dtype=bool)
        boundary[bcells] = True

        # 2. Runs of non-boundary cells along each row share one answer: a row segment
        #    that no edge touches lies wholly inside or wholly outside every polygon.
        prev_boundary = np.empty(ncell, dtype=bool)
        prev_boundary[0] = True
        prev_boundary[1:] = boundary[:-1]
        prev_boundary[::nx] = True
        free = ~boundary
        starts = free & prev_boundary
        run_id = np.cumsum(starts, dtype=np.int64) - 1
        rep_cells = np.flatnonzero(starts)

        # 3. Test the centres of run representatives and of boundary cells exactly. For a
        #    boundary cell this finds polygons that hold the whole cell without an edge in it.
        test_cells = np.concatenate([rep_cells, bcells])
        pt, poly = self._holding_pairs(*self._cell_centres(test_cells))
        n_rep = rep_cells.size
        rep_val = np.full(n_rep, n, dtype=np.int64)
        is_rep = pt < n_rep
        np.minimum.at(rep_val, pt[is_rep], poly[is_rep])

        table = np.empty(ncell + 1, dtype=np.int32)  # last cell: sentinel for off-grid points
        table[-1] = -1
        free_idx = np.flatnonzero(free)
        values = rep_val[run_id[free_idx]]
        table[free_idx] = np.where(values < n, values, -1).astype(np.int32)

        # 4. Boundary cells: candidate list = edge polygons + polygons holding the centre.
        centre_keys = test_cells[pt[~is_rep]] * n + poly[~is_rep]
        keys = _unique_sorted(np.concatenate([edge_keys, centre_keys]))
        key_cells = keys // n
        self._cand: npt.NDArray[np.int32] = (keys % n).astype(np.int32)
        self._ptr: IntArray = np.searchsorted(key_cells, bcells).astype(np.int64)
        self._ptr = np.append(self._ptr, np.int64(keys.size))
        table[bcells] = (n + np.arange(bcells.size, dtype=np.int64)).astype(np.int32)
        self._n_boundary: int = int(bcells.size)

        # 5. Outside cells: store the nearest polygon where it is the same for the whole cell.
        out_cells = np.flatnonzero(table[:ncell] == -1)
        table[out_cells] = self._outside_codes(out_cells)

        self._table = table
        # Memoryviews index to plain ints, several times faster than numpy scalars.
        self._table_mv = table.data
        self._ptr_mv = self._ptr.data
        self._cand_mv = self._cand.data

        # Decoding lookup tables for locate_many: index = min(v + n + 1, 2n + 1).
        #   v = -2 - k (outside, nearest k) -> n - 1 - k;  v = -1 (ambiguous) -> n;
        #   v = k (inside k) -> n + 1 + k;  v >= n (boundary) -> 2n + 1.
        lut_id = np.zeros(2 * n + 2, dtype=np.int64)
        lut_id[:n] = self._ids[::-1]
        lut_id[n + 1 : 2 * n + 1] = self._ids
        lut_inside = np.zeros(2 * n + 2, dtype=bool)
        lut_inside[n + 1 : 2 * n + 1] = True
        lut_special = np.zeros(2 * n + 2, dtype=bool)
        lut_special[n] = True
        lut_special[2 * n + 1] = True
        self._lut_id = lut_id
        self._lut_inside = lut_inside
        self._lut_special = lut_special

    def _rasterise_edges(self) -> IntArray:
        """Unique keys cell * n + polygon for every cell an edge of polygon passes through.

        Conservative: every crossing of a grid line and every vertex marks all cells within
        `_EPS` cells of it, so rounding cannot leave a touched cell unmarked."""
        n = self._n
        coords, line_idx = self._edge_coords, self._edge_line
        gx = (coords[:, 0] - self._x0) * self._inv_cw
        gy = (coords[:, 1] - self._y0) * self._inv_ch
        poly_of = self._edge_poly
        same = line_idx[1:] == line_idx[:-1]
        x1, y1, x2, y2 = gx[:-1][same], gy[:-1][same], gx[1:][same], gy[1:][same]
        seg_poly = poly_of[:-1][same]

        px = [gx]
        py = [gy]
        pp = [poly_of]
        for a1, a2, b1, b2, vertical in ((x1, x2, y1, y2, False), (y1, y2, x1, x2, True)):
            moving = a1 != a2
            a1m, a2m, b1m, b2m, polym = (
                a1[moving],
                a2[moving],
                b1[moving],
                b2[moving],
                seg_poly[moving],
            )
            lo = np.minimum(a1m, a2m)
            hi = np.maximum(a1m, a2m)
            first = np.floor(lo).astype(np.int64) + 1
            count = np.maximum(np.ceil(hi).astype(np.int64) - first, 0)
            total = int(count.sum())
            if total == 0:
                continue
            seg = np.repeat(np.arange(count.size), count)
            offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
            line = (first[seg] + offset).astype(np.float64)
            t = (line - a1m[seg]) / (a2m[seg] - a1m[seg])
            other = b1m[seg] + t * (b2m[seg] - b1m[seg])
            if vertical:
                px.append(other)
                py.append(line)
            else:
                px.append(line)
                py.append(other)
            pp.append(polym[seg])
        allx = np.concatenate(px)
        ally = np.concatenate(py)
        allp = np.concatenate(pp).astype(np.int64)
        keys = []
        for dx in (-_EPS, _EPS):
            ix = np.clip(np.floor(allx + dx), 0, self._nx - 1).astype(np.int64)
            for dy in (-_EPS, _EPS):
                iy = np.clip(np.floor(ally + dy), 0, self._ny - 1).astype(np.int64)
                keys.append((iy * self._nx + ix) * n + allp)
        return _unique_sorted(np.concatenate(keys))

    def _cell_centres(self, cells: IntArray) -> tuple[FloatArray, FloatArray]:
        ix = (cells % self._nx).astype(np.float64)
        iy = (cells // self._nx).astype(np.float64)
        return self._x0 + (ix + 0.5) * self._cw, self._y0 + (iy + 0.5) * self._ch

    def _holding_pairs(self, x: FloatArray, y: FloatArray) -> tuple[IntArray, IntArray]:
        """(point, polygon) pairs where the polygon holds the point (edge included)."""
        if x.size == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        pairs = self._tree.query(shapely.points(x, y))
        pt, poly = pairs[0].astype(np.int64), pairs[1].astype(np.int64)
        hit = shapely.intersects_xy(self._geoms[poly], x[pt], y[pt])
        return pt[hit], poly[hit]

    def _outside_codes(self, cells: IntArray) -> npt.NDArray[np.int32]:
        """Table codes for outside cells: -2 - k where polygon k is nearest to every point
        of the cell, else -1 (ambiguous: resolved exactly per point at lookup time).

        A quadtree over blocks of `_TOP_BLOCK` cells. For a square with centre c and half
        diagonal r, and a point p in it outside every polygon, p's nearest polygon is as far
        as its nearest edge, d(p) <= d(c) + r, so that edge is within d(c) + 2r of c, where
        d is the distance to the nearest edge chunk. If all the chunks that close belong to
        one polygon, it is the answer for the whole square; otherwise the square is split
        in four and each quarter re-checks its parent's chunks only."""
        codes = np.full(cells.size, -1, dtype=np.int32)
        if cells.size == 0:
            return codes
        nx, ny, top = self._nx, self._ny, _TOP_BLOCK
        nxp = -(-nx // top) * top
        nyp = -(-ny // top) * top
        has = np.zeros((nyp, nxp), dtype=bool)
        has[cells // nx, cells % nx] = True
        has_at: dict[int, BoolArray] = {1: has}
        size = 1
        while size < top:
            h = has_at[size]
            quads = h.reshape(h.shape[0] // 2, 2, h.shape[1] // 2, 2)
            has_at[size * 2] = np.any(quads, axis=(1, 3))
            size *= 2

        # Top level: candidate chunks from the chunk tree.
        nbx = nxp // top
        ent = np.flatnonzero(has_at[top])
        pts = self._block_points(ent, nbx, top)
        idx, dist = self._chunk_tree.query_nearest(pts, return_distance=True, all_matches=False)
        d = np.zeros(ent.size, dtype=np.float64)
        d[idx[0]] = dist
        reach = d + 2.0 * self._half_diagonal(top) + _DIST_TOL
        pairs = self._chunk_tree.query(pts, predicate="dwithin", distance=reach)
        order = np.lexsort((pairs[1], pairs[0]))
        pair_ent = ent[pairs[0][order]]
        pair_chunk = pairs[1][order].astype(np.int64)
        level_codes = np.full(has_at[top].shape, -1, dtype=np.int32)
        amb, pair_ent, pair_chunk = self._settle(ent, pair_ent, pair_chunk, level_codes, nbx, top)

        size = top
        while size > 1:
            size //= 2
            level_codes = np.repeat(np.repeat(level_codes, 2, axis=0), 2, axis=1)
            if amb.size == 0:
                continue
            nbx_parent = nxp // (size * 2)
            nbx_child = nxp // size
            py, px = amb // nbx_parent, amb % nbx_parent
            child = np.concatenate(
                [((2 * py + dy) * nbx_child + 2 * px + dx) for dy in (0, 1) for dx in (0, 1)]
            )
            child_parent = np.tile(np.arange(amb.size), 4)
            keep = has_at[size].ravel()[child]
            child, child_parent = child[keep], child_parent[keep]
            sort = np.argsort(child, kind="stable")
            child, child_parent = child[sort], child_parent[sort]
            starts = np.searchsorted(pair_ent, amb)
            ends = np.searchsorted(pair_ent, amb, side="right")
            counts = (ends - starts)[child_parent]
            owner = np.repeat(np.arange(child.size), counts)
            offset = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
            chunk = pair_chunk[np.repeat(starts[child_parent], counts) + offset]
            pts = self._block_points(child, nbx_child, size)
            dist = shapely.distance(self._chunks[chunk], pts[owner])
            d = np.full(child.size, np.inf)
            np.minimum.at(d, owner, dist)
            close = dist <= d[owner] + 2.0 * self._half_diagonal(size) + _DIST_TOL
            amb, pair_ent, pair_chunk = self._settle(
                child, child[owner[close]], chunk[close], level_codes, nbx_child, size
            )
        final = level_codes.ravel()[(cells // nx) * nxp + cells % nx]
        known = final >= 0
        codes[known] = (-2 - final[known]).astype(np.int32)
        return codes

    def _block_points(self, blocks: IntArray, nbx: int, size: int) -> ObjectArray:
        """Centres, in scaled coordinates, of square blocks of `size` cells."""
        bx = self._x0 + ((blocks % nbx) + 0.5) * size * self._cw
        by = self._y0 + ((blocks // nbx) + 0.5) * size * self._ch
        points: ObjectArray = shapely.points(bx * self._kx, by)
        return points

    def _half_diagonal(self, size: int) -> float:
        return size * self._cell_s * math.sqrt(2.0) / 2.0

    def _settle(
        self,
        ent: IntArray,
        pair_ent: IntArray,
        pair_chunk: IntArray,
        level_codes: npt.NDArray[np.int32],
        nbx: int,
        size: int,
    ) -> tuple[IntArray, IntArray, IntArray]:
        """Blocks (flat indices `ent` in a grid `nbx` blocks wide, of `size` cells) whose
        nearest polygon is settled get it in `level_codes`: when all their close chunks
        belong to one polygon, or when `_segment_test` proves one polygon wins everywhere.
        Returns the other blocks with their (block, chunk) pairs, sorted by block."""
        n = self._n
        keys = _unique_sorted(pair_ent * n + self._chunk_poly[pair_chunk])
        key_ent = keys // n
        counts = np.zeros(ent.size, dtype=np.int64)
        pos = np.searchsorted(ent, key_ent)
        np.add.at(counts, pos, 1)
        single = counts[pos] == 1
        flat = level_codes.reshape(-1)
        flat[key_ent[single]] = (keys[single] % n).astype(np.int32)
        multi = ent[counts > 1]
        keep = np.isin(pair_ent, multi)
        pair_ent, pair_chunk = pair_ent[keep], pair_chunk[keep]
        if multi.size:
            won, winner = self._segment_test(multi, pair_ent, pair_chunk, nbx, size)
            flat[multi[won]] = winner[won].astype(np.int32)
            amb = multi[~won]
            keep = np.isin(pair_ent, amb)
            return amb, pair_ent[keep], pair_chunk[keep]
        return multi, pair_ent, pair_chunk

    def _segment_test(
        self, ent: IntArray, pair_ent: IntArray, pair_chunk: IntArray, nbx: int, size: int
    ) -> tuple[BoolArray, IntArray]:
        """For each block, whether the polygon A nearest to its centre c is nearest to every
        point of the block, and A.

        Per edge segment s, f_s(p) = dist(p, s) is 1-Lipschitz with gradient u_s(p), the unit
        vector from s to p, and p - proj_s(p) is 1-Lipschitz (s is convex), so for p within
        r of c, |u_s(p) - u_s(c)| <= 2r / f_s(c) when f_s(c) > r. With a* the segment of A
        nearest to c, g = f_b - f_a* over any segment b of another polygon satisfies
        g(p) >= g(c) - L r with L = min(2, |u_b(c) - u_a*(c)| + 2r/f_b(c) + 2r/f_a*(c)).
        If g(c) > L r for every such b, then d_B(p) > f_a*(p) >= d_A(p) in the whole block.
        Far from the edges L is small, which settles blocks the plain 2r bound cannot."""
        r = self._half_diagonal(size)
        cx = (self._x0 + ((ent % nbx) + 0.5) * size * self._cw) * self._kx
        cy = self._y0 + ((ent // nbx) + 0.5) * size * self._ch
        nseg = self._chunk_nseg[pair_chunk]
        seg_pair = np.repeat(np.arange(pair_chunk.size), nseg)
        offset = np.arange(seg_pair.size) - np.repeat(np.cumsum(nseg) - nseg, nseg)
        first = np.repeat(self._chunk_start[pair_chunk], nseg) + offset
        e = np.searchsorted(ent, pair_ent)[seg_pair]
        # Vector w from the nearest point of each segment to the block centre.
        dx = self._seg_dx[first]
        dy = self._seg_dy[first]
        wx = cx[e] - self._seg_x[first]
        wy = cy[e] - self._seg_y[first]
        t = wx * dx
        t += wy * dy
        t *= self._seg_inv_len2[first]
        np.clip(t, 0.0, 1.0, out=t)
        wx -= t * dx
        wy -= t * dy
        f = np.sqrt(wx * wx + wy * wy)
        group = np.searchsorted(e, np.arange(ent.size))
        f_min = np.minimum.reduceat(f, group)
        at_min = np.flatnonzero(f == f_min[e])
        first_min = np.ones(at_min.size, dtype=bool)
        first_min[1:] = e[at_min[1:]] != e[at_min[:-1]]
        best = at_min[first_min]  # one nearest segment per block, blocks in order
        poly = self._chunk_poly[pair_chunk]
        winner = poly[seg_pair[best]]
        fa = f[best]
        # Only segments of other polygons within 2r of winning can matter (L <= 2).
        rival = np.flatnonzero(f - fa[e] <= 2.0 * r + _DIST_TOL)
        rival = rival[poly[seg_pair[rival]] != winner[e[rival]]]
        er = e[rival]
        f_r = f[rival]
        fa_r = fa[er]
        smooth = (f_r > r) & (fa_r > r)
        f_s = np.where(smooth, f_r, 1.0)
        fa_s = np.where(smooth, fa_r, 1.0)
        best_r = best[er]
        du = np.hypot(wx[rival] / f_s - wx[best_r] / fa_s, wy[rival] / f_s - wy[best_r] / fa_s)
        bound = np.where(smooth, np.minimum(2.0, du + 2.0 * r / f_s + 2.0 * r / fa_s), 2.0)
        lost = np.zeros(ent.size, dtype=bool)
        lost[er[f_r - fa_r <= bound * r + _DIST_TOL]] = True
        return ~lost, winner

    # ------------------------------------------------------------------------ lookups

    def __len__(self) -> int:
        return self._n

    @property
    def ids(self) -> list[int]:
        """Jurisdiction ids, ascending."""
        return list(self._ids_list)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(rows, columns) of the lookup grid."""
        return self._ny, self._nx

    @property
    def boundary_cell_fraction(self) -> float:
        """Share of grid cells that need an exact test (for diagnostics and benchmarks)."""
        return self._n_boundary / (self._nx * self._ny)

    def locate(self, lon: float, lat: float) -> Located:
        """The jurisdiction holding (lon, lat), or the nearest one with inside=False."""
        gx = (lon - self._x0) * self._inv_cw
        gy = (lat - self._y0) * self._inv_ch
        if 0.0 <= gx < self._nx_f and 0.0 <= gy < self._ny_f:
            v: int = self._table_mv[int(gy) * self._nx + int(gx)]
            n = self._n
            if v >= 0:
                if v < n:
                    return Located(self._ids_list[v], True, 0.0)
                row = v - n
                geoms = self._geoms_list
                for j in range(self._ptr_mv[row], self._ptr_mv[row + 1]):
                    c: int = self._cand_mv[j]
                    if shapely.intersects_xy(geoms[c], lon, lat):
                        return Located(self._ids_list[c], True, 0.0)
        elif not (math.isfinite(lon) and math.isfinite(lat)):
            raise ValueError(f"coordinates must be finite numbers, got ({lon}, {lat})")
        # Outside every jurisdiction: the nearest edge chunks give both answer and distance.
        found, dist = self._chunk_tree.query_nearest(
            shapely.Point(lon * self._kx, lat), return_distance=True, all_matches=True
        )
        chunk_poly = self._chunk_poly_list
        k = chunk_poly[found[0]] if found.size == 1 else min(chunk_poly[c] for c in found)
        return Located(self._ids_list[k], False, float(dist[0]) * METRES_PER_DEGREE)

    def locate_many(self, lons: npt.ArrayLike, lats: npt.ArrayLike) -> tuple[IntArray, BoolArray]:
        """Vectorised `locate`: (jurisdiction ids int64, inside bool), shaped like the input.

        Same rules as `locate`: outside points get their nearest jurisdiction, inside=False."""
        x_in = np.asarray(lons, dtype=np.float64)
        y_in = np.asarray(lats, dtype=np.float64)
        if x_in.shape != y_in.shape:
            raise ValueError(f"lons and lats differ in shape: {x_in.shape} vs {y_in.shape}")
        shape = x_in.shape
        x = x_in.ravel()
        y = y_in.ravel()
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("coordinates must be finite numbers (found NaN or infinity)")
        n = self._n
        gx = x - self._x0
        gx *= self._inv_cw
        gy = y - self._y0
        gy *= self._inv_ch
        on_grid = gx >= 0.0
        on_grid &= gx < self._nx_f
        on_grid &= gy >= 0.0
        on_grid &= gy < self._ny_f
        np.clip(gx, 0.0, self._nx_f - 1.0, out=gx)
        np.clip(gy, 0.0, self._ny_f - 1.0, out=gy)
        cell = gy.astype(np.int32)
        cell *= np.int32(self._nx)
        cell += gx.astype(np.int32)
        cell[~on_grid] = self._table.size - 1
        v = self._table[cell]
        code = v + np.int32(n + 1)
        np.minimum(code, np.int32(2 * n + 1), out=code)
        ids = self._lut_id[code]
        inside = self._lut_inside[code]
        special = np.flatnonzero(self._lut_special[code])
        if special.size:
            self._resolve(special, v[special], x, y, ids, inside)
        return ids.reshape(shape), inside.reshape(shape)

    def _resolve(
        self,
        special: IntArray,
        v: npt.NDArray[np.int32],
        x: FloatArray,
        y: FloatArray,
        ids: IntArray,
        inside: BoolArray,
    ) -> None:
        """Exact answers for points in boundary cells, ambiguous cells or off the grid."""
        n = self._n
        need_nearest = [special[v < 0]]
        in_boundary = v >= n
        if in_boundary.any():
            pts = special[in_boundary]
            rows = v[in_boundary].astype(np.int64) - n
            starts = self._ptr[rows]
            counts = self._ptr[rows + 1] - starts
            total = int(counts.sum())
            owner = np.repeat(np.arange(pts.size), counts)
            offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            cand = self._cand[np.repeat(starts, counts) + offset]
            hit = shapely.intersects_xy(self._geoms[cand], x[pts[owner]], y[pts[owner]])
            hit_owner = owner[hit]
            hit_cand = cand[hit]
            # Candidates are in ascending polygon (= id) order, so the first hit wins.
            first = np.ones(hit_owner.size, dtype=bool)
            first[1:] = hit_owner[1:] != hit_owner[:-1]
            found = np.zeros(pts.size, dtype=bool)
            found[hit_owner[first]] = True
            ids[pts[hit_owner[first]]] = self._ids[hit_cand[first]]
            inside[pts[hit_owner[first]]] = True
            need_nearest.append(pts[~found])
        todo = np.concatenate(need_nearest)
        if todo.size:
            nearest = self._nearest_exact(x[todo], y[todo])
            ids[todo] = self._ids[nearest]
            inside[todo] = False

    def _nearest_exact(self, x: FloatArray, y: FloatArray) -> IntArray:
        """Index of the nearest polygon to points outside all of them (scaled planar
        distance to the nearest edge; ties to the lowest id)."""
        pts = shapely.points(x * self._kx, y)
        pairs = self._chunk_tree.query_nearest(pts, all_matches=True)
        best = np.full(x.size, self._n, dtype=np.int64)
        np.minimum.at(best, pairs[0], self._chunk_poly[pairs[1]])
        return best


def _edge_chunks(
    coords: FloatArray, line_idx: IntArray
) -> tuple[ObjectArray, IntArray, IntArray, IntArray]:
    """Cut lines (coordinates grouped by `line_idx`, in order) into LineStrings of at most
    `_CHUNK` segments. Returns the chunks and, for each, the index of its line, the index
    of its first coordinate in `coords` and its number of segments."""
    m = coords.shape[0]
    starts_mask = np.ones(m, dtype=bool)
    starts_mask[1:] = line_idx[1:] != line_idx[:-1]
    line_start = np.flatnonzero(starts_mask)
    line_len = np.diff(np.append(line_start, m))
    pos = np.arange(m) - np.repeat(line_start, line_len)
    length = np.repeat(line_len, line_len)
    n_chunks = np.maximum((line_len - 2) // _CHUNK + 1, 1)
    offset = np.repeat(np.cumsum(n_chunks) - n_chunks, line_len)
    # Each vertex belongs to the chunk holding the segment that starts at it (the last
    # vertex: the segment that ends at it); a vertex joining two chunks is in both.
    primary = offset + np.minimum(pos, length - 2) // _CHUNK
    joint = (pos % _CHUNK == 0) & (pos > 0) & (pos < length - 1)
    chunk = np.concatenate([primary, (offset + pos // _CHUNK - 1)[joint]])
    order_pos = np.concatenate([pos, pos[joint]])
    source = np.concatenate([np.arange(m), np.flatnonzero(joint)])
    order = np.lexsort((order_pos, chunk))
    lines: ObjectArray = shapely.linestrings(coords[source[order]], indices=chunk[order])
    chunk_line = np.repeat(line_idx[line_start], n_chunks).astype(np.int64)
    local = np.arange(int(n_chunks.sum())) - np.repeat(np.cumsum(n_chunks) - n_chunks, n_chunks)
    chunk_start = np.repeat(line_start, n_chunks) + local * _CHUNK
    chunk_nseg = np.minimum(_CHUNK, np.repeat(line_len, n_chunks) - 1 - local * _CHUNK)
    return lines, chunk_line, chunk_start.astype(np.int64), chunk_nseg.astype(np.int64)


def _unique_sorted(values: IntArray) -> IntArray:
    """Sorted distinct values (a sort-based np.unique, faster on large int arrays)."""
    out = np.sort(values)
    if out.size:
        keep = np.ones(out.size, dtype=bool)
        keep[1:] = out[1:] != out[:-1]
        out = out[keep]
    return out
