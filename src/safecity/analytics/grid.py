"""A square grid in metres over an area, in a local metric projection (UTM).

Cells are numbered row by row from the south-west corner: `cell = row * nx + col`; a grid
of values is a flat array of `nx * ny` numbers, or `(ny, nx)` when reshaped as an image.
Longitude/latitude go through the UTM zone of the data's centroid (pyproj), so a 150 m
cell is 150 m on the ground wherever the city is."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from safecity.core.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_CELL_M = 150.0
#: Grids larger than this many cells are refused (memory, and a wrong unit is likelier).
MAX_CELLS = 25_000_000


def utm_epsg(lon: float, lat: float) -> int:
    """The EPSG code of the UTM zone holding (lon, lat) (WGS 84 / UTM, north or south)."""
    zone = min(60, max(1, math.floor((lon + 180.0) / 6.0) + 1))
    return (32600 if lat >= 0 else 32700) + zone


@lru_cache(maxsize=16)
def _transformers(epsg: int) -> tuple[Any, Any]:
    from pyproj import Transformer

    fwd = Transformer.from_crs(4326, epsg, always_xy=True)
    inv = Transformer.from_crs(epsg, 4326, always_xy=True)
    return fwd, inv


def project(epsg: int, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Longitude/latitude (degrees) to metres in `epsg`."""
    fwd, _ = _transformers(epsg)
    x, y = fwd.transform(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def unproject(epsg: int, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Metres in `epsg` to longitude/latitude (degrees)."""
    _, inv = _transformers(epsg)
    lon, lat = inv.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


@dataclass(frozen=True)
class Grid:
    """`nx` x `ny` square cells of `cell_m` metres; the south-west corner at (x0, y0)."""

    epsg: int
    x0: float
    y0: float
    cell_m: float
    nx: int
    ny: int

    @property
    def n(self) -> int:
        return self.nx * self.ny

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns): the shape of a grid of values as an image."""
        return self.ny, self.nx

    @classmethod
    def covering(
        cls, lon: npt.ArrayLike, lat: npt.ArrayLike, *, cell_m: float = DEFAULT_CELL_M
    ) -> Grid:
        """The smallest grid (aligned to multiples of `cell_m`) holding every point."""
        lon_a = np.asarray(lon, dtype=np.float64)
        lat_a = np.asarray(lat, dtype=np.float64)
        if lon_a.size == 0:
            raise InvalidInput("no points to lay a grid over")
        _check_cell(cell_m)
        epsg = utm_epsg(float(np.median(lon_a)), float(np.median(lat_a)))
        x, y = project(epsg, lon_a, lat_a)
        return cls._around(
            epsg, float(x.min()), float(y.min()), float(x.max()), float(y.max()), cell_m
        )

    @classmethod
    def _around(
        cls, epsg: int, minx: float, miny: float, maxx: float, maxy: float, cell_m: float
    ) -> Grid:
        x0 = math.floor(minx / cell_m) * cell_m
        y0 = math.floor(miny / cell_m) * cell_m
        nx = math.floor((maxx - x0) / cell_m) + 1
        ny = math.floor((maxy - y0) / cell_m) + 1
        if nx * ny > MAX_CELLS:
            raise InvalidInput(
                f"a {cell_m:g} m grid over this area needs {nx * ny:,} cells (more than "
                f"{MAX_CELLS:,}); use a larger --cell or check the coordinates (longitude and "
                "latitude in WGS 84 degrees, not projected metres)"
            )
        return cls(epsg=epsg, x0=x0, y0=y0, cell_m=float(cell_m), nx=nx, ny=ny)

    @classmethod
    def covering_geometry(cls, geom: Any, *, cell_m: float = DEFAULT_CELL_M) -> Grid:
        """The grid over a lon/lat (multi)polygon's bounding box."""
        _check_cell(cell_m)
        if geom.is_empty:
            raise InvalidInput("the boundary holds no area")
        c = geom.centroid
        epsg = utm_epsg(float(c.x), float(c.y))
        bx0, by0, bx1, by1 = project_geometry(epsg, geom).bounds
        return cls._around(epsg, bx0, by0, bx1, by1, cell_m)

    # -- points -> cells ---------------------------------------------------------------
    def cells_xy(self, x: npt.ArrayLike, y: npt.ArrayLike) -> IntArray:
        """Cell of each projected point; -1 off the grid."""
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
        col = np.floor((xa - self.x0) / self.cell_m)
        row = np.floor((ya - self.y0) / self.cell_m)
        ok = (col >= 0) & (col < self.nx) & (row >= 0) & (row < self.ny)
        out = np.full(xa.shape, -1, dtype=np.int64)
        out[ok] = row[ok].astype(np.int64) * self.nx + col[ok].astype(np.int64)
        return out

    def cells_lonlat(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> IntArray:
        x, y = project(self.epsg, lon, lat)
        return self.cells_xy(x, y)

    def project(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        return project(self.epsg, lon, lat)

    # -- cells -> places ---------------------------------------------------------------
    def centres_xy(self, cells: npt.ArrayLike | None = None) -> tuple[FloatArray, FloatArray]:
        c = np.arange(self.n) if cells is None else np.asarray(cells, dtype=np.int64)
        x = self.x0 + (c % self.nx + 0.5) * self.cell_m
        y = self.y0 + (c // self.nx + 0.5) * self.cell_m
        return x.astype(np.float64), y.astype(np.float64)

    def centres_lonlat(self, cells: npt.ArrayLike | None = None) -> tuple[FloatArray, FloatArray]:
        x, y = self.centres_xy(cells)
        return unproject(self.epsg, x, y)

    def cell_rings(self, cells: npt.ArrayLike) -> list[list[list[float]]]:
        """Each cell's outline as a closed GeoJSON ring of [lon, lat] (5 points)."""
        c = np.asarray(cells, dtype=np.int64)
        x = self.x0 + (c % self.nx) * self.cell_m
        y = self.y0 + (c // self.nx) * self.cell_m
        s = self.cell_m
        xs = np.stack([x, x + s, x + s, x, x], axis=1)
        ys = np.stack([y, y, y + s, y + s, y], axis=1)
        lon, lat = unproject(self.epsg, xs.ravel(), ys.ravel())
        lon = np.round(lon.reshape(xs.shape), 6)
        lat = np.round(lat.reshape(xs.shape), 6)
        return [
            [[float(a), float(b)] for a, b in zip(lo, la, strict=True)]
            for lo, la in zip(lon, lat, strict=True)
        ]

    def mask_inside(self, geom: Any) -> BoolArray:
        """Cells whose centre lies inside a lon/lat (multi)polygon."""
        pgeom = project_geometry(self.epsg, geom)
        cx, cy = self.centres_xy()
        shapely.prepare(pgeom)
        return np.asarray(shapely.contains_xy(pgeom, cx, cy), dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epsg": self.epsg,
            "x0": self.x0,
            "y0": self.y0,
            "cell_m": self.cell_m,
            "nx": self.nx,
            "ny": self.ny,
        }


def project_geometry(epsg: int, geom: Any) -> Any:
    """A lon/lat shapely geometry in `epsg` metres."""
    fwd, _ = _transformers(epsg)

    def tf(coords: FloatArray) -> FloatArray:
        x, y = fwd.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, tf)


def _check_cell(cell_m: float) -> None:
    if not (isinstance(cell_m, int | float) and math.isfinite(cell_m) and cell_m >= 1.0):
        raise InvalidInput(f"cell size must be a number of metres of at least 1, not {cell_m}")


def boundary_geometry(doc: Any) -> Any:
    """The union of a GeoJSON document's polygons (FeatureCollection, Feature or geometry)."""
    from shapely.geometry import shape

    if not isinstance(doc, dict):
        raise InvalidInput("the boundary must be a GeoJSON object")
    kind = doc.get("type")
    if kind == "FeatureCollection":
        geoms = [f.get("geometry") for f in doc.get("features") or [] if isinstance(f, dict)]
    elif kind == "Feature":
        geoms = [doc.get("geometry")]
    else:
        geoms = [doc]
    polys = []
    for g in geoms:
        if not isinstance(g, dict) or g.get("type") not in ("Polygon", "MultiPolygon"):
            continue
        try:
            polys.append(shapely.make_valid(shape(g)))
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"the boundary has a broken polygon: {exc}") from None
    if not polys:
        raise InvalidInput(
            "the boundary file holds no Polygon or MultiPolygon; give a GeoJSON of the area "
            "(e.g. the districts' polygons)"
        )
    union = shapely.union_all(polys)
    if union.is_empty or union.area == 0:
        raise InvalidInput("the boundary's polygons enclose no area (empty or flat rings)")
    minx, miny, maxx, maxy = union.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput(
            "the boundary's coordinates are not longitude/latitude degrees (WGS 84); "
            "re-export it as EPSG:4326"
        )
    return union
