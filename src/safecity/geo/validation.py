"""Check an uploaded GeoJSON boundary layer before it becomes jurisdictions.

`validate_layer(document, level)` takes an already parsed GeoJSON document for one level of
the hierarchy (province, district, tehsil or police station) and either returns a
`ValidatedLayer` or raises `GeoValidationError` listing every problem found, each with a
message a person can act on, for example::

    feature 3 ('Gulbahar'): polygon boundary self-intersects (edges cross) at (71.57, 34.01);
    fix it in the source, or upload again with make-valid (CLI: --make-valid) to repair it
    automatically

Checks, in order:

* the document is a GeoJSON FeatureCollection with at least one feature;
* a legacy ``crs`` member, if present, names WGS 84 longitude/latitude (EPSG:4326 or
  OGC CRS84); anything else is refused with the CRS's name and how to re-export;
* each feature has a Polygon or MultiPolygon geometry with finite coordinates inside
  longitude/latitude range (coordinates beyond it look like projected metres, or swapped
  latitude/longitude, and the message says which);
* properties: ``name`` always; the parent's name as ``district`` for a tehsil and
  ``tehsil`` for a police station (``province`` for a district, optional); ``code`` (or
  ``id``) optional;
* valid polygons (`shapely.is_valid_reason`); with ``make_valid=True`` invalid ones are
  repaired with `shapely.make_valid`, keeping only their polygonal parts, and reported in
  `ValidatedLayer.warnings` instead;
* no duplicate names under the same parent, no duplicate codes;
* no overlaps between features of the layer (siblings), beyond a tolerance; make-valid does
  not fix overlaps, they must be fixed in the source;
* with ``parent_geometry``: no part of the parent left uncovered by the features (a gap) and
  no feature reaching outside the parent, beyond a tolerance.

Areas in messages are geodesic square metres on the WGS 84 ellipsoid (pyproj.Geod).
Feature numbers in messages are positions in the ``features`` array, counted from 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

import numpy as np
import pyproj
import shapely
from shapely.errors import GEOSException
from shapely.geometry import shape

__all__ = [
    "LEVELS",
    "PARENT_PROPERTY",
    "GeoProblem",
    "GeoValidationError",
    "Level",
    "ValidatedFeature",
    "ValidatedLayer",
    "validate_layer",
]

Level = Literal["province", "district", "tehsil", "station"]
LEVELS: Final[tuple[Level, ...]] = ("province", "district", "tehsil", "station")

PARENT_PROPERTY: Final[dict[Level, str | None]] = {
    "province": None,
    "district": "province",
    "tehsil": "district",
    "station": "tehsil",
}
"""The property naming a feature's parent, per level."""

_PARENT_REQUIRED: Final[frozenset[Level]] = frozenset({"tehsil", "station"})
_LEVEL_WORD: Final[dict[Level, str]] = {
    "province": "province",
    "district": "district",
    "tehsil": "tehsil",
    "station": "police station",
}

ABSOLUTE_AREA_TOLERANCE_DEG2: Final[float] = 1e-9
"""Overlaps and gaps smaller than this (about 0.01 m^2) are always ignored."""

_GEOD: Final = pyproj.Geod(ellps="WGS84")
_WGS84_LONLAT: Final = pyproj.CRS("OGC:CRS84")
_REASON_AT = re.compile(r"^(?P<reason>[^\[]*)\[(?P<x>[-+0-9.eE]+)\s+(?P<y>[-+0-9.eE]+)")
_REPAIR_HINT: Final[str] = (
    "fix it in the source, or upload again with make-valid (CLI: --make-valid) "
    "to repair it automatically"
)


@dataclass(frozen=True, slots=True)
class GeoProblem:
    """One problem (or, in `ValidatedLayer.warnings`, one repair) in an uploaded layer.

    `feature_index` is the position in the ``features`` array (None for the document),
    `code` a stable machine-readable kind, `message` the sentence to show a person."""

    feature_index: int | None
    feature_name: str | None
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_index": self.feature_index,
            "feature_name": self.feature_name,
            "code": self.code,
            "message": self.message,
        }


class GeoValidationError(ValueError):
    """The layer cannot be used as is; `problems` lists every reason."""

    def __init__(self, problems: list[GeoProblem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the uploaded layer"
        super().__init__(head + ":\n" + "\n".join(f"- {p.message}" for p in self.problems))


@dataclass(frozen=True, slots=True)
class ValidatedFeature:
    """A feature that passed: its name, optional code, parent's name and lon/lat geometry
    (a shapely Polygon or MultiPolygon, 2D), with all its original properties."""

    name: str
    code: str | None
    parent: str | None
    geometry: Any
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ValidatedLayer:
    level: Level
    features: list[ValidatedFeature]
    warnings: list[GeoProblem] = field(default_factory=list)


@dataclass(slots=True)
class _Candidate:
    index: int
    name: str | None
    code: str | None
    parent: str | None
    geometry: Any  # None when unusable
    properties: dict[str, Any]
    checkable: bool = False  # valid polygonal geometry: take part in overlap/gap checks


def validate_layer(
    document: object,
    level: Level,
    *,
    make_valid: bool = False,
    parent_geometry: Any = None,
    relative_tolerance: float = 1e-3,
) -> ValidatedLayer:
    """Validate a parsed GeoJSON document as the boundaries of one level.

    `relative_tolerance`: an overlap is an error when its area exceeds this fraction of
    the smaller feature (and `ABSOLUTE_AREA_TOLERANCE_DEG2`); a gap or an overhang when it
    exceeds this fraction of the parent. Raises `GeoValidationError` (a ValueError)."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    word = _LEVEL_WORD[level]
    problems: list[GeoProblem] = []
    warnings: list[GeoProblem] = []

    if not isinstance(document, Mapping):
        raise GeoValidationError(
            [
                _doc_problem(
                    "not_an_object",
                    f"the {word} layer must be a GeoJSON object (a FeatureCollection), "
                    f"got {_kind(document)}",
                )
            ]
        )
    if document.get("type") != "FeatureCollection":
        got = document.get("type")
        hint = (
            "; wrap the feature in a FeatureCollection"
            if got == "Feature"
            else "; wrap the geometries in Features inside a FeatureCollection"
            if isinstance(got, str) and got in _GEOMETRY_TYPES
            else ""
        )
        raise GeoValidationError(
            [
                _doc_problem(
                    "not_feature_collection",
                    f"the {word} layer must be a GeoJSON FeatureCollection, "
                    f"but its type is {got!r}{hint}",
                )
            ]
        )
    crs_problem = _check_crs(document.get("crs"))
    if crs_problem is not None:
        raise GeoValidationError([crs_problem])
    features = document.get("features")
    if not isinstance(features, list):
        raise GeoValidationError(
            [
                _doc_problem(
                    "no_features",
                    "the FeatureCollection has no 'features' list",
                )
            ]
        )
    if not features:
        raise GeoValidationError([_doc_problem("no_features", f"the {word} layer has no features")])

    parent_key = PARENT_PROPERTY[level]
    candidates: list[_Candidate] = []
    for index, feature in enumerate(features):
        candidates.append(
            _check_feature(index, feature, level, parent_key, make_valid, problems, warnings)
        )

    _check_duplicates(candidates, word, problems)
    checkable = [c for c in candidates if c.checkable]
    _check_overlaps(checkable, relative_tolerance, problems)
    if parent_geometry is not None and checkable and len(checkable) == len(candidates):
        _check_coverage(checkable, parent_geometry, relative_tolerance, word, problems)

    if problems:
        raise GeoValidationError(problems)
    return ValidatedLayer(
        level=level,
        features=[
            ValidatedFeature(
                name=cast(str, c.name),
                code=c.code,
                parent=c.parent,
                geometry=c.geometry,
                properties=c.properties,
            )
            for c in candidates
        ],
        warnings=warnings,
    )


# --------------------------------------------------------------------------- document


_GEOMETRY_TYPES: Final[frozenset[str]] = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)

_REEXPORT_HINT: Final[str] = (
    "re-export it as WGS 84 longitude/latitude (EPSG:4326), "
    "e.g. ogr2ogr -t_srs EPSG:4326 out.geojson in.geojson"
)


def _doc_problem(code: str, message: str) -> GeoProblem:
    return GeoProblem(feature_index=None, feature_name=None, code=code, message=message)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _check_crs(crs: object) -> GeoProblem | None:
    """None when the legacy crs member is absent or names WGS 84 lon/lat."""
    if crs is None:
        return None
    name: object = None
    if isinstance(crs, Mapping):
        props = crs.get("properties")
        if crs.get("type") == "name" and isinstance(props, Mapping):
            name = props.get("name")
        elif crs.get("type") == "link":
            return _doc_problem(
                "unsupported_crs",
                "the document's crs links to an external definition, which is not "
                f"supported; {_REEXPORT_HINT}",
            )
    if not isinstance(name, str) or not name.strip():
        return _doc_problem(
            "unsupported_crs",
            f"the document's crs member is not understood ({crs!r}); remove it or {_REEXPORT_HINT}",
        )
    try:
        parsed = pyproj.CRS.from_user_input(name.strip())
    except pyproj.exceptions.CRSError:
        return _doc_problem(
            "unsupported_crs",
            f"the document's crs {name!r} is not a known coordinate reference system; "
            f"{_REEXPORT_HINT}",
        )
    if parsed.equals(_WGS84_LONLAT, ignore_axis_order=True):
        return None
    epsg = parsed.to_epsg()
    label = f"EPSG:{epsg} ({parsed.name})" if epsg else f"{name!r} ({parsed.name})"
    return _doc_problem(
        "wrong_crs",
        f"the document's coordinates are in {label}, not longitude/latitude; {_REEXPORT_HINT}",
    )


# ---------------------------------------------------------------------------- features


def _label(index: int, name: str | None) -> str:
    return f"feature {index} ({name!r})" if name else f"feature {index}"


def _text(value: object) -> str | None:
    """A name-like property as text: strings (stripped) and integers; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


def _check_feature(
    index: int,
    feature: object,
    level: Level,
    parent_key: str | None,
    make_valid: bool,
    problems: list[GeoProblem],
    warnings: list[GeoProblem],
) -> _Candidate:
    word = _LEVEL_WORD[level]
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        got = feature.get("type") if isinstance(feature, Mapping) else _kind(feature)
        problems.append(
            GeoProblem(
                index,
                None,
                "not_a_feature",
                f"feature {index}: is not a GeoJSON Feature (type {got!r})",
            )
        )
        return _Candidate(index, None, None, None, None, {})
    raw_props = feature.get("properties")
    properties: dict[str, Any] = dict(raw_props) if isinstance(raw_props, Mapping) else {}

    name = _text(properties.get("name"))
    if name is None:
        problems.append(
            GeoProblem(
                index,
                None,
                "missing_name",
                f"feature {index}: has no 'name' property; every {word} needs a name",
            )
        )
    label = _label(index, name)

    code = _text(properties.get("code"))
    if code is None:
        code = _text(properties.get("id"))
    if code is None:
        code = _text(feature.get("id"))

    parent: str | None = None
    if parent_key is not None:
        parent = _text(properties.get(parent_key))
        if parent is None and level in _PARENT_REQUIRED:
            problems.append(
                GeoProblem(
                    index,
                    name,
                    "missing_parent",
                    f"{label}: has no '{parent_key}' property naming the {parent_key} "
                    f"this {word} belongs to",
                )
            )

    geometry, checkable = _check_geometry(
        index, name, label, feature.get("geometry"), make_valid, problems, warnings
    )
    return _Candidate(index, name, code, parent, geometry, properties, checkable)


def _check_geometry(
    index: int,
    name: str | None,
    label: str,
    raw: object,
    make_valid: bool,
    problems: list[GeoProblem],
    warnings: list[GeoProblem],
) -> tuple[Any, bool]:
    """The feature's geometry (or None) and whether it is valid and polygonal."""
    if raw is None:
        problems.append(GeoProblem(index, name, "missing_geometry", f"{label}: has no geometry"))
        return None, False
    gtype = raw.get("type") if isinstance(raw, Mapping) else None
    if gtype not in ("Polygon", "MultiPolygon"):
        shown = gtype if isinstance(gtype, str) else _kind(raw)
        problems.append(
            GeoProblem(
                index,
                name,
                "wrong_geometry_type",
                f"{label}: geometry is a {shown}; a boundary must be a Polygon or MultiPolygon",
            )
        )
        return None, False
    if _has_non_finite(raw.get("coordinates") if isinstance(raw, Mapping) else None):
        problems.append(
            GeoProblem(
                index,
                name,
                "bad_coordinates",
                f"{label}: has coordinates that are not finite numbers (NaN or infinity)",
            )
        )
        return None, False
    try:
        geom = shapely.force_2d(shape(cast(Mapping[str, Any], raw)))
    except (GEOSException, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        problems.append(
            GeoProblem(
                index,
                name,
                "malformed_geometry",
                f"{label}: {gtype} coordinates are malformed ({exc}); each position must "
                "be [longitude, latitude] and each ring a list of positions",
            )
        )
        return None, False
    if geom.is_empty:
        problems.append(GeoProblem(index, name, "empty_geometry", f"{label}: geometry is empty"))
        return None, False

    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        problems.append(
            GeoProblem(
                index,
                name,
                "bad_coordinates",
                f"{label}: has coordinates that are not finite numbers (NaN or infinity)",
            )
        )
        return None, False
    lon, lat = coords[:, 0], coords[:, 1]
    if (np.abs(lon) > 180.0).any() or (np.abs(lat) > 90.0).any():
        bad = int(np.flatnonzero((np.abs(lon) > 180.0) | (np.abs(lat) > 90.0))[0])
        x, y = float(lon[bad]), float(lat[bad])
        if (np.abs(lon) <= 90.0).all() and (np.abs(lat) <= 180.0).all():
            why = (
                "it looks like latitude and longitude are swapped; GeoJSON positions are "
                "[longitude, latitude]"
            )
        else:
            why = (
                "it looks like projected coordinates (metres), not longitude/latitude; "
                + _REEXPORT_HINT
            )
        problems.append(
            GeoProblem(
                index,
                name,
                "coordinates_out_of_range",
                f"{label}: coordinate ({x:g}, {y:g}) is outside longitude -180..180 / "
                f"latitude -90..90; {why}",
            )
        )
        return None, False

    reason = shapely.is_valid_reason(geom)
    if reason == "Valid Geometry":
        return geom, True
    what = _describe_invalid(str(reason))
    if not make_valid:
        problems.append(
            GeoProblem(index, name, "invalid_geometry", f"{label}: {what}; {_REPAIR_HINT}")
        )
        return None, False
    repaired = _polygonal_part(shapely.make_valid(geom))
    if repaired is None:
        problems.append(
            GeoProblem(
                index,
                name,
                "invalid_geometry",
                f"{label}: {what}, and repairing it leaves no area; fix it in the source",
            )
        )
        return None, False
    after = _area_m2(repaired)
    warnings.append(
        GeoProblem(
            index,
            name,
            "repaired_geometry",
            f"{label}: {what}; repaired with make-valid "
            f"(now a {repaired.geom_type} of {after:,.0f} m^2); check the result",
        )
    )
    return repaired, True


def _has_non_finite(coordinates: object) -> bool:
    """Whether nested coordinate lists hold a NaN or an infinity."""
    stack = [coordinates]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _describe_invalid(reason: str) -> str:
    """Turn a GEOS validity reason like 'Self-intersection[71.57 34.01]' into words."""
    match = _REASON_AT.match(reason)
    raw = (match.group("reason") if match else reason).strip()
    where = ""
    if match:
        where = f" at ({float(match.group('x')):.6g}, {float(match.group('y')):.6g})"
    key = raw.lower()
    if key == "self-intersection":
        text = "polygon boundary self-intersects (edges cross)"
    elif key == "ring self-intersection":
        text = "polygon ring self-intersects (touches itself)"
    elif key.startswith("too few points"):
        text = "a polygon ring has fewer than 4 positions"
    elif key == "hole lies outside shell":
        text = "a hole lies outside its polygon"
    elif key == "nested holes":
        text = "a hole lies inside another hole"
    elif key == "interior is disconnected":
        text = "holes split the polygon into pieces"
    elif key == "nested shells":
        text = "a polygon of the MultiPolygon lies inside another"
    elif key == "duplicate rings":
        text = "a ring is repeated"
    elif key == "ring is not closed":
        text = "a ring does not end where it starts"
    elif key == "invalid coordinate":
        text = "a coordinate is not a number"
    else:
        text = f"geometry is invalid ({raw})"
    return text + where


def _polygonal_part(geom: Any) -> Any:
    """The Polygon/MultiPolygon part of a make_valid result, or None if it has no area."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    if merged.is_empty or merged.area == 0.0:
        return None
    if merged.geom_type not in ("Polygon", "MultiPolygon"):
        return _polygonal_part(merged)
    return merged


def _area_m2(geom: Any) -> float:
    area, _perimeter = _GEOD.geometry_area_perimeter(geom)
    return abs(float(area))


def _where(geom: Any) -> str:
    point = geom.representative_point()
    return f"({point.x:.6g}, {point.y:.6g})"


# ------------------------------------------------------------------------ layer checks


def _check_duplicates(candidates: list[_Candidate], word: str, problems: list[GeoProblem]) -> None:
    seen_names: dict[tuple[str, str], _Candidate] = {}
    seen_codes: dict[str, _Candidate] = {}
    for c in candidates:
        if c.name is not None:
            key = ((c.parent or "").casefold(), " ".join(c.name.split()).casefold())
            first = seen_names.get(key)
            if first is None:
                seen_names[key] = c
            else:
                under = f" under {c.parent!r}" if c.parent else ""
                problems.append(
                    GeoProblem(
                        c.index,
                        c.name,
                        "duplicate_name",
                        f"{_label(c.index, c.name)}: another {word}{under} has the same name "
                        f"({_label(first.index, first.name)}); names must be unique",
                    )
                )
        if c.code is not None:
            first_code = seen_codes.get(c.code)
            if first_code is None:
                seen_codes[c.code] = c
            else:
                problems.append(
                    GeoProblem(
                        c.index,
                        c.name,
                        "duplicate_code",
                        f"{_label(c.index, c.name)}: code {c.code!r} is also used by "
                        f"{_label(first_code.index, first_code.name)}; codes must be unique",
                    )
                )


def _check_overlaps(
    candidates: list[_Candidate], relative_tolerance: float, problems: list[GeoProblem]
) -> None:
    if len(candidates) < 2:
        return
    geoms = np.empty(len(candidates), dtype=object)
    geoms[:] = [c.geometry for c in candidates]
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    # Neighbours share edges; only pairs whose interiors meet can overlap.
    interiors_meet = shapely.relate_pattern(geoms[left], geoms[right], "T********")
    left, right = left[interiors_meet], right[interiors_meet]
    if left.size == 0:
        return
    inter = shapely.intersection(geoms[left], geoms[right])
    areas = shapely.area(inter)
    smaller = np.minimum(shapely.area(geoms[left]), shapely.area(geoms[right]))
    limit = np.maximum(ABSOLUTE_AREA_TOLERANCE_DEG2, relative_tolerance * smaller)
    for i in np.flatnonzero(areas > limit):
        a, b = candidates[int(left[i])], candidates[int(right[i])]
        overlap = _polygonal_part(inter[i])
        if overlap is None:
            continue
        problems.append(
            GeoProblem(
                a.index,
                a.name,
                "overlap",
                f"{_label(a.index, a.name)} and {_label(b.index, b.name)} overlap by about "
                f"{_area_m2(overlap):,.0f} m^2 around {_where(overlap)}; boundaries of the "
                "same level must not overlap (make-valid does not fix this): fix it in the "
                "source",
            )
        )


def _check_coverage(
    candidates: list[_Candidate],
    parent_geometry: Any,
    relative_tolerance: float,
    word: str,
    problems: list[GeoProblem],
) -> None:
    if not isinstance(parent_geometry, shapely.Geometry) or parent_geometry.is_empty:
        raise ValueError("parent_geometry must be a non-empty shapely geometry")
    parent = parent_geometry
    if not parent.is_valid:
        parent = _polygonal_part(shapely.make_valid(parent))
        if parent is None:
            raise ValueError("parent_geometry has no area")
    union = shapely.union_all([c.geometry for c in candidates])
    limit = max(ABSOLUTE_AREA_TOLERANCE_DEG2, relative_tolerance * float(parent.area))
    gap = _polygonal_part(shapely.difference(parent, union))
    if gap is not None and gap.area > limit:
        largest = max(shapely.get_parts(gap), key=lambda g: float(g.area))
        pieces = int(shapely.get_num_geometries(gap))
        problems.append(
            GeoProblem(
                None,
                None,
                "gap",
                f"the {word}s leave about {_area_m2(gap):,.0f} m^2 of the parent uncovered "
                f"in {pieces} piece{'s' if pieces != 1 else ''} (largest around "
                f"{_where(largest)}); every part of the parent must belong to one {word}",
            )
        )
    for c in candidates:
        outside = _polygonal_part(shapely.difference(c.geometry, parent))
        if outside is not None and outside.area > limit:
            problems.append(
                GeoProblem(
                    c.index,
                    c.name,
                    "outside_parent",
                    f"{_label(c.index, c.name)}: about {_area_m2(outside):,.0f} m^2 lies "
                    f"outside the parent boundary (around {_where(outside)})",
                )
            )
