"""Geo logic: import jurisdiction layers, look points up, export GeoJSON. No HTTP here."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import mapping
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from safecity.core.auth import JurisdictionIds
from safecity.core.db import MAX_ROW_ID, publish_after_commit
from safecity.core.errors import InvalidInput, NotFound
from safecity.geo import validation
from safecity.geo.index import JurisdictionIndex
from safecity.geo.models import LEVELS, Jurisdiction
from safecity.geo.schemas import (
    AREA_TYPES,
    ImportReport,
    JurisdictionOut,
    Level,
    Location,
)

PARENT_LEVEL: dict[str, str | None] = {
    "province": None,
    "district": "province",
    "tehsil": "district",
    "station": "tehsil",
}
# Share of a child's area that may stick out of its parent (digitising slop) before refusal.
_OUTSIDE_PARENT_TOLERANCE = 0.01
# Share of a parent's area that may be left uncovered by its children.
_GAP_TOLERANCE = 1e-4
_M2_PER_DEG2_AT_34N = 111_320.0 * 111_320.0 * 0.829


def _area_km2(geom: Any) -> float:
    """Area on the ellipsoid (pyproj Geod), in km²."""
    from pyproj import Geod

    area, _ = Geod(ellps="WGS84").geometry_area_perimeter(geom)
    return abs(float(area)) / 1e6


# --------------------------------------------------------------------------- import


def import_geojson(
    session: Session,
    *,
    doc: Any,
    level: Level,
    make_valid: bool = False,
    now: datetime,
) -> ImportReport:
    """Validate a whole GeoJSON layer, then create or update its jurisdictions (by code).

    All or nothing: any problem raises InvalidInput listing every problem, before a row is
    written; the caller's transaction then rolls back."""
    if level not in LEVELS:
        raise InvalidInput(f"unknown level {level!r}; one of {', '.join(LEVELS)}")
    try:
        layer = validation.validate_layer(doc, level, make_valid=make_valid)
    except validation.GeoValidationError as exc:
        raise InvalidInput(
            f"GeoJSON {level} layer refused: " + "; ".join(p.message for p in exc.problems),
            details=[p.to_dict() for p in exc.problems],
        ) from None

    parent_level = PARENT_LEVEL[level]
    problems: list[str] = []
    # Rows are keyed by code (or name when there is none): two features with one key would
    # silently overwrite each other.
    seen: dict[str, int] = {}
    for i, feat in enumerate(layer.features):
        key = feat.code or feat.name
        if key in seen:
            problems.append(
                f"features {seen[key]} and {i} are both {key!r}; give each {level} a unique "
                "`code` property"
            )
        seen.setdefault(key, i)
    parents: dict[int, Jurisdiction] = {}
    rows: list[tuple[validation.ValidatedFeature, Jurisdiction | None]] = []
    for i, feat in enumerate(layer.features):
        parent: Jurisdiction | None = None
        if parent_level is not None:
            parent = _find_parent(session, parent_level, feat.parent)
            if parent is None:
                problems.append(_missing_parent(i, feat, parent_level))
                continue
            parents[parent.id] = parent
            outside = _share_outside(feat.geometry, parent)
            if outside > _OUTSIDE_PARENT_TOLERANCE:
                problems.append(
                    f"feature {i} ({feat.name!r}): {outside:.1%} of its area lies outside "
                    f"{parent_level} {parent.name!r}; fix the boundary or the parent name"
                )
        problems.extend(_property_problems(i, feat))
        rows.append((feat, parent))
    for parent in parents.values():
        children = [f.geometry for f, p in rows if p is not None and p.id == parent.id]
        pgeom = shapely.from_wkb(parent.geometry_wkb)
        gap = shapely.difference(pgeom, shapely.union_all(children))
        if gap.area > _GAP_TOLERANCE * pgeom.area:
            c = gap.representative_point()
            problems.append(
                f"gap: about {gap.area * _M2_PER_DEG2_AT_34N / 1e6:.3f} km² of {parent_level} "
                f"{parent.name!r} (e.g. near {c.x:.5f}, {c.y:.5f}) is in no {level}; every "
                "point must belong to a jurisdiction"
            )
    if problems:
        raise InvalidInput(
            f"GeoJSON {level} layer refused: " + "; ".join(problems), details=problems
        )

    created = updated = 0
    for feat, parent in rows:
        code = feat.code or feat.name
        row = session.scalar(
            select(Jurisdiction).where(Jurisdiction.level == level, Jurisdiction.code == code)
        )
        if row is None:
            row = Jurisdiction(level=level, code=code, properties={})
            session.add(row)
            created += 1
        else:
            updated += 1
        _fill(row, feat, parent, now)
    session.flush()
    for row in session.scalars(select(Jurisdiction).where(Jurisdiction.level == level)):
        _set_ancestors(row, session)
    publish_after_commit(session, "geo.jurisdictions.changed", {"level": level})
    # Rebuild the in-memory index once the new polygons are committed (and readable).
    event.listen(session, "after_commit", lambda _s: _LOCATORS.invalidate(), once=True)
    _LOCATORS.invalidate()
    return ImportReport(
        level=level, created=created, updated=updated, warnings=[w.message for w in layer.warnings]
    )


def _property_problems(i: int, feat: validation.ValidatedFeature) -> list[str]:
    """The properties `_fill` stores beyond the boundary, checked rather than dropped: a
    NaN station position was stored as NULL (the station losing its building), one out of
    range put it elsewhere, and an unknown area type silently became urban (other response
    targets)."""
    props = feat.properties
    problems = []
    lon, lat = props.get("station_lon"), props.get("station_lat")
    given = lon is not None or lat is not None  # neither: the polygon's own point is used
    if given and not (_degrees(lon, 180.0) and _degrees(lat, 90.0)):
        problems.append(
            f"feature {i} ({feat.name!r}): station_lon/station_lat must both be numbers "
            f"within -180..180 / -90..90 (WGS84 degrees), got {lon!r}, {lat!r}"
        )
    area_type = props.get("area_type")
    if area_type is not None and area_type not in AREA_TYPES:
        problems.append(
            f"feature {i} ({feat.name!r}): area_type {area_type!r} is not one of "
            f"{', '.join(AREA_TYPES)}"
        )
    return problems


def _degrees(value: Any, limit: float) -> bool:
    """A finite number within -limit..limit (JSON's true is no number here)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and -limit <= value <= limit
    )


def _find_parent(session: Session, level: str, ref: str | None) -> Jurisdiction | None:
    q = select(Jurisdiction).where(Jurisdiction.level == level)
    if ref is None:
        only = list(session.scalars(q.limit(2)))
        return only[0] if len(only) == 1 else None
    found = session.scalar(q.where(Jurisdiction.code == ref))
    return found or session.scalar(q.where(Jurisdiction.name == ref))


def _missing_parent(i: int, feat: validation.ValidatedFeature, parent_level: str) -> str:
    if feat.parent is None:
        return (
            f"feature {i} ({feat.name!r}): property {parent_level!r} is missing and there is "
            f"not exactly one {parent_level}; name its {parent_level}"
        )
    return (
        f"feature {i} ({feat.name!r}): {parent_level} {feat.parent!r} is not known; import "
        f"the {parent_level} layer first (safecity import geo FILE --level {parent_level})"
    )


def _share_outside(geom: Any, parent: Jurisdiction) -> float:
    pgeom = shapely.from_wkb(parent.geometry_wkb)
    area = float(geom.area)
    return float(shapely.difference(geom, pgeom).area) / area if area > 0 else 0.0


def _fill(
    row: Jurisdiction, feat: validation.ValidatedFeature, parent: Jurisdiction | None, now: datetime
) -> None:
    geom = feat.geometry
    minx, miny, maxx, maxy = geom.bounds
    row.name = feat.name
    row.parent_id = parent.id if parent else None
    row.geometry_wkb = shapely.to_wkb(geom)
    row.min_lon, row.min_lat, row.max_lon, row.max_lat = minx, miny, maxx, maxy
    row.area_km2 = _area_km2(geom)
    props = dict(feat.properties)
    lon, lat = props.get("station_lon"), props.get("station_lat")
    if isinstance(lon, int | float) and isinstance(lat, int | float):
        row.lon, row.lat = float(lon), float(lat)
    else:
        p = geom.representative_point()
        row.lon, row.lat = p.x, p.y
    row.area_type = props.get("area_type") or "urban"  # checked by `_property_problems`
    row.properties = {k: v for k, v in props.items() if _jsonable(v)}
    row.updated_at = now


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


def _set_ancestors(row: Jurisdiction, session: Session) -> None:
    ids: dict[str, int | None] = {"province": None, "district": None, "tehsil": None}
    cur: Jurisdiction | None = row
    while cur is not None:
        if cur.level in ids:
            ids[cur.level] = cur.id
        cur = session.get(Jurisdiction, cur.parent_id) if cur.parent_id else None
    row.province_id, row.district_id, row.tehsil_id = (
        ids["province"],
        ids["district"],
        ids["tehsil"],
    )


# --------------------------------------------------------------------------- lookup


@dataclass(frozen=True)
class _StationRow:
    id: int
    tehsil_id: int | None
    district_id: int | None
    province_id: int | None
    name: str
    area_type: str


class StationLocator:
    """Point -> station for one snapshot of the station layer (an in-memory index)."""

    def __init__(self, rows: Sequence[Jurisdiction]) -> None:
        if not rows:
            raise InvalidInput(
                "no police station jurisdictions are loaded; import them first "
                "(safecity import geo FILE --level station) or run safecity demo"
            )
        self.index = JurisdictionIndex([(r.id, shapely.from_wkb(r.geometry_wkb)) for r in rows])
        self.stations = {
            r.id: _StationRow(r.id, r.tehsil_id, r.district_id, r.province_id, r.name, r.area_type)
            for r in rows
        }

    def locate(self, lon: float, lat: float) -> Location:
        check_point(lon, lat)
        hit = self.index.locate(lon, lat)
        return self.station(hit.jurisdiction_id, inside=hit.inside, distance_m=hit.distance_m)

    def station(self, station_id: int, *, inside: bool = True, distance_m: float = 0.0) -> Location:
        """The hierarchy, name and area type of a station, from this snapshot."""
        st = self.stations.get(station_id)
        if st is None:
            raise NotFound(f"police station {station_id} does not exist")
        return Location(
            station_id=st.id,
            tehsil_id=st.tehsil_id,
            district_id=st.district_id,
            province_id=st.province_id,
            inside=inside,
            distance_m=round(distance_m, 1),
            station_name=st.name,
            area_type=st.area_type,
        )

    def locate_many(self, lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.index.locate_many(lons, lats)


class _LocatorCache:
    """One locator per database, rebuilt after a station import: at once in the process
    that imported, and within `check_s` in the others (`serve --workers`), which notice
    the stations' row count or newest change time move."""

    check_s = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # database -> (locator, fingerprint of its station rows, next check time)
        self._by_db: dict[str, tuple[StationLocator, tuple[int, Any], float]] = {}

    def get(self, session: Session) -> StationLocator:
        key = session.get_bind().engine.url.render_as_string(hide_password=True)
        with self._lock:
            hit = self._by_db.get(key)
        now = time.monotonic()
        if hit is not None and hit[2] > now:
            return hit[0]
        stamp = _stations_stamp(session)
        if hit is not None and hit[1] == stamp:
            with self._lock:
                self._by_db[key] = (hit[0], stamp, now + self.check_s)
            return hit[0]
        rows = list(session.scalars(select(Jurisdiction).where(Jurisdiction.level == "station")))
        loc = StationLocator(rows)
        with self._lock:
            self._by_db[key] = (loc, stamp, now + self.check_s)
        return loc

    def invalidate(self) -> None:
        with self._lock:
            self._by_db.clear()


def _stations_stamp(session: Session) -> tuple[int, Any]:
    n, newest = session.execute(
        select(func.count(Jurisdiction.id), func.max(Jurisdiction.updated_at)).where(
            Jurisdiction.level == "station"
        )
    ).one()
    return int(n or 0), newest


_LOCATORS = _LocatorCache()


def check_point(lon: float, lat: float) -> None:
    if not (-90.0 <= lat <= 90.0) or not (-180.0 <= lon <= 180.0):
        raise InvalidInput(
            f"coordinates out of range: lat={lat}, lon={lon}; latitude must be within "
            "-90..90 and longitude within -180..180 (WGS84 degrees; did you swap them?)"
        )
    if not (np.isfinite(lat) and np.isfinite(lon)):
        raise InvalidInput("coordinates must be finite numbers")


def check_points(lons: npt.NDArray[np.float64], lats: npt.NDArray[np.float64]) -> None:
    """`check_point` for many points at once (vectorised); the first bad point is refused
    with `check_point`'s own message. (NaN and infinities fail the range test, as there.)"""
    ok = (lats >= -90.0) & (lats <= 90.0) & (lons >= -180.0) & (lons <= 180.0)
    if not ok.all():
        i = int(np.argmin(ok))
        check_point(float(lons[i]), float(lats[i]))


def station_locator(session: Session) -> StationLocator:
    return _LOCATORS.get(session)


def locate_point(session: Session, *, lon: float, lat: float) -> Location:
    """The station whose jurisdiction holds (lon, lat), or the nearest one (inside=False)."""
    check_point(lon, lat)
    return station_locator(session).locate(lon, lat)


def jurisdiction_ids(location: Location) -> JurisdictionIds:
    return JurisdictionIds(
        station_id=location.station_id,
        tehsil_id=location.tehsil_id,
        district_id=location.district_id,
        province_id=location.province_id,
    )


# --------------------------------------------------------------------------- read


def _jurisdiction(session: Session, jurisdiction_id: int) -> Jurisdiction:
    # An id past the INTEGER column names no row (and would fail the query itself).
    row = session.get(Jurisdiction, jurisdiction_id) if 1 <= jurisdiction_id <= MAX_ROW_ID else None
    if row is None:
        raise NotFound(f"jurisdiction {jurisdiction_id} does not exist")
    return row


def get_jurisdiction(session: Session, *, jurisdiction_id: int) -> JurisdictionOut:
    return _out(_jurisdiction(session, jurisdiction_id))


def ids_of(session: Session, *, jurisdiction_id: int) -> JurisdictionIds:
    """The hierarchy ids of a jurisdiction (for scoping rows attached to a station)."""
    row = _jurisdiction(session, jurisdiction_id)
    ids = {"station": None, "tehsil": row.tehsil_id, "district": row.district_id}
    ids[row.level] = row.id
    return JurisdictionIds(
        station_id=ids["station"],
        tehsil_id=ids["tehsil"],
        district_id=ids["district"],
        province_id=row.province_id if row.level != "province" else row.id,
    )


def area_type(session: Session, *, station_id: int) -> str:
    """`urban` or `rural`: response-time targets differ by area type."""
    return _jurisdiction(session, station_id).area_type


def list_jurisdictions(
    session: Session, *, level: Level | None = None, parent_id: int | None = None
) -> list[JurisdictionOut]:
    q = select(Jurisdiction).order_by(Jurisdiction.level, Jurisdiction.name)
    if level is not None:
        q = q.where(Jurisdiction.level == level)
    if parent_id is not None:
        if not 1 <= parent_id <= MAX_ROW_ID:
            return []  # no row has such an id (and the query itself would fail)
        q = q.where(Jurisdiction.parent_id == parent_id)
    return [_out(r) for r in session.scalars(q)]


def find_by_code(session: Session, *, level: Level, code: str) -> JurisdictionOut:
    row = session.scalar(
        select(Jurisdiction).where(Jurisdiction.level == level, Jurisdiction.code == code)
    )
    if row is None:
        raise NotFound(f"no {level} with code {code!r}")
    return _out(row)


def _out(row: Jurisdiction) -> JurisdictionOut:
    return JurisdictionOut(
        id=row.id,
        level=row.level,
        code=row.code,
        name=row.name,
        parent_id=row.parent_id,
        district_id=row.district_id,
        tehsil_id=row.tehsil_id,
        area_km2=round(row.area_km2, 3),
        lon=row.lon,
        lat=row.lat,
    )


def feature_collection(
    session: Session, *, level: Level, simplify_m: float = 0.0
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of one level, with names of the parents as properties."""
    rows = list(session.scalars(select(Jurisdiction).where(Jurisdiction.level == level)))
    names = {
        r.id: r.name
        for r in session.scalars(
            select(Jurisdiction).where(Jurisdiction.level.in_(["district", "tehsil", "province"]))
        )
    }
    feats = []
    for r in sorted(rows, key=lambda r: r.id):
        geom = shapely.from_wkb(r.geometry_wkb)
        if simplify_m > 0:
            geom = geom.simplify(simplify_m / 111_320.0, preserve_topology=True)
        feats.append(
            {
                "type": "Feature",
                "id": r.id,
                "geometry": mapping(geom),
                "properties": {
                    "id": r.id,
                    "code": r.code,
                    "name": r.name,
                    "level": r.level,
                    "district": names.get(r.district_id) if r.district_id else None,
                    "district_id": r.district_id,
                    "tehsil": names.get(r.tehsil_id) if r.tehsil_id else None,
                    "tehsil_id": r.tehsil_id,
                    "area_km2": round(r.area_km2, 3),
                    "station_lon": r.lon,
                    "station_lat": r.lat,
                },
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def representative_points(
    session: Session, *, level: Level = "station"
) -> list[tuple[int, float, float]]:
    """(id, lon, lat) of a point surely inside each jurisdiction of `level`."""
    out = []
    for r in session.scalars(select(Jurisdiction).where(Jurisdiction.level == level)):
        p = shapely.from_wkb(r.geometry_wkb).representative_point()
        out.append((r.id, float(p.x), float(p.y)))
    return out
