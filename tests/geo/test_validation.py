"""validate_layer refuses bad boundary layers with messages that name the feature and the
fix, and passes (or, with make_valid, repairs) good ones."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import box

from safecity.geo.validation import (
    GeoProblem,
    GeoValidationError,
    ValidatedLayer,
    validate_layer,
)

Doc = dict[str, Any]


def square(x0: float, y0: float, size: float = 0.05) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [
            [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
        ],
    }


BOWTIE = {
    "type": "Polygon",
    "coordinates": [[[71.5, 34.0], [71.6, 34.1], [71.6, 34.0], [71.5, 34.1], [71.5, 34.0]]],
}


def feature(name: Any, geometry: Any, **props: Any) -> dict[str, Any]:
    properties = dict(props)
    if name is not None:
        properties["name"] = name
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def collection(*features: dict[str, Any], **extra: Any) -> Doc:
    return {"type": "FeatureCollection", "features": list(features), **extra}


def good_tehsils() -> Doc:
    return collection(
        feature("Peshawar City", square(71.50, 34.00), district="Peshawar", code="PSH-C"),
        feature("Peshawar Cantt", square(71.55, 34.00), district="Peshawar", id=17),
    )


def refuse(doc: object, level: str = "district", **kwargs: Any) -> list[GeoProblem]:
    with pytest.raises(GeoValidationError) as caught:
        validate_layer(doc, level, **kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    for problem in caught.value.problems:
        assert problem.message in str(caught.value)
    return caught.value.problems


# --------------------------------------------------------------- one problem per case

CASES: list[tuple[str, Callable[[], object], str, dict[str, Any], str, list[str]]] = [
    # (case, document, level, kwargs, problem code, words the message must contain)
    ("list instead of object", lambda: [1, 2], "district", {}, "not_an_object", ["a list"]),
    ("a bare string", lambda: "FeatureCollection", "district", {}, "not_an_object", ["string"]),
    ("null", lambda: None, "district", {}, "not_an_object", ["null"]),
    (
        "a single Feature",
        lambda: feature("Gulbahar", square(71.5, 34.0)),
        "station",
        {},
        "not_feature_collection",
        ["'Feature'", "wrap the feature in a FeatureCollection"],
    ),
    (
        "no features list",
        lambda: {"type": "FeatureCollection"},
        "district",
        {},
        "no_features",
        ["'features'"],
    ),
    ("empty layer", lambda: collection(), "tehsil", {}, "no_features", ["no features"]),
    (
        "feature without a name",
        lambda: collection(feature(None, square(71.5, 34.0), code="X1")),
        "district",
        {},
        "missing_name",
        ["feature 0", "'name'"],
    ),
    (
        "blank name",
        lambda: collection(feature("   ", square(71.5, 34.0))),
        "province",
        {},
        "missing_name",
        ["feature 0", "'name'"],
    ),
    (
        "tehsil without its district",
        lambda: collection(feature("Mathra", square(71.5, 34.0))),
        "tehsil",
        {},
        "missing_parent",
        ["'Mathra'", "'district'"],
    ),
    (
        "station without its tehsil",
        lambda: collection(feature("Gulbahar", square(71.5, 34.0), district="Peshawar")),
        "station",
        {},
        "missing_parent",
        ["'Gulbahar'", "'tehsil'", "police station"],
    ),
    (
        "UTM crs",
        lambda: collection(
            feature("Gulbahar", square(71.5, 34.0)),
            crs={"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32642"}},
        ),
        "district",
        {},
        "wrong_crs",
        ["EPSG:32642", "UTM zone 42N", "EPSG:4326"],
    ),
    (
        "web mercator crs",
        lambda: collection(
            feature("Gulbahar", square(71.5, 34.0)),
            crs={"type": "name", "properties": {"name": "EPSG:3857"}},
        ),
        "district",
        {},
        "wrong_crs",
        ["EPSG:3857", "Pseudo-Mercator"],
    ),
    (
        "unknown crs name",
        lambda: collection(
            feature("Gulbahar", square(71.5, 34.0)),
            crs={"type": "name", "properties": {"name": "my local grid"}},
        ),
        "district",
        {},
        "unsupported_crs",
        ["'my local grid'", "EPSG:4326"],
    ),
    (
        "linked crs",
        lambda: collection(
            feature("Gulbahar", square(71.5, 34.0)),
            crs={"type": "link", "properties": {"href": "http://example.com/crs"}},
        ),
        "district",
        {},
        "unsupported_crs",
        ["links to an external definition"],
    ),
    (
        "projected metres",
        lambda: collection(feature("Gulbahar", square(356_000.0, 3_765_000.0, 1000.0))),
        "district",
        {},
        "coordinates_out_of_range",
        ["'Gulbahar'", "projected coordinates", "356000", "EPSG:4326"],
    ),
    (
        "latitude and longitude swapped",
        lambda: collection(
            feature("Chitral", square(71.8, 35.8)), feature("Kalam", square(35.3, 120.0))
        ),
        "district",
        {},
        "coordinates_out_of_range",
        ["feature 1 ('Kalam')", "swapped"],
    ),
    (
        "bowtie polygon",
        lambda: collection(feature("Gulbahar", BOWTIE), feature("Hayatabad", square(72.0, 34.0))),
        "district",
        {},
        "invalid_geometry",
        ["feature 0 ('Gulbahar')", "self-intersects", "(71.55, 34.05)", "--make-valid"],
    ),
    (
        "hole outside its shell",
        lambda: collection(
            feature(
                "Saddar",
                {
                    "type": "Polygon",
                    "coordinates": square(71.5, 34.0)["coordinates"]
                    + square(72.5, 34.5)["coordinates"],
                },
            )
        ),
        "district",
        {},
        "invalid_geometry",
        ["'Saddar'", "hole lies outside", "--make-valid"],
    ),
    (
        "point geometry",
        lambda: collection(feature("Gulbahar", {"type": "Point", "coordinates": [71.5, 34.0]})),
        "district",
        {},
        "wrong_geometry_type",
        ["'Gulbahar'", "Point", "Polygon or MultiPolygon"],
    ),
    (
        "no geometry",
        lambda: collection(feature("Gulbahar", None)),
        "district",
        {},
        "missing_geometry",
        ["'Gulbahar'", "no geometry"],
    ),
    (
        "malformed coordinates",
        lambda: collection(
            feature("Gulbahar", {"type": "Polygon", "coordinates": [[71.5, 34.0], "x"]})
        ),
        "district",
        {},
        "malformed_geometry",
        ["'Gulbahar'", "malformed", "[longitude, latitude]"],
    ),
    (
        "NaN coordinate",
        lambda: collection(feature("Gulbahar", square(float("nan"), 34.0))),
        "district",
        {},
        "bad_coordinates",
        ["'Gulbahar'", "not finite"],
    ),
    (
        "not a feature",
        lambda: collection({"type": "Polygon", "coordinates": []}),
        "district",
        {},
        "not_a_feature",
        ["feature 0", "'Polygon'"],
    ),
    (
        "duplicate names",
        lambda: collection(
            feature("Gulbahar", square(71.5, 34.0)), feature("gulbahar ", square(71.6, 34.0))
        ),
        "district",
        {},
        "duplicate_name",
        ["feature 1 ('gulbahar')", "feature 0 ('Gulbahar')", "same name"],
    ),
    (
        "duplicate codes",
        lambda: collection(
            feature("Gulbahar", square(71.5, 34.0), code="P-1"),
            feature("Faqirabad", square(71.6, 34.0), code="P-1"),
        ),
        "district",
        {},
        "duplicate_code",
        ["'Faqirabad'", "'P-1'", "'Gulbahar'"],
    ),
    (
        "overlapping siblings",
        lambda: collection(
            feature("Gulbahar", square(71.50, 34.0, 0.10), tehsil="City"),
            feature("Faqirabad", square(71.55, 34.0, 0.10), tehsil="City"),
        ),
        "station",
        {},
        "overlap",
        ["feature 0 ('Gulbahar')", "feature 1 ('Faqirabad')", "m^2", "overlap"],
    ),
    (
        "overlap is not fixed by make-valid",
        lambda: collection(
            feature("Gulbahar", square(71.50, 34.0, 0.10)),
            feature("Faqirabad", square(71.55, 34.0, 0.10)),
        ),
        "district",
        {"make_valid": True},
        "overlap",
        ["'Gulbahar'", "'Faqirabad'", "make-valid does not fix"],
    ),
    (
        "gap in the parent",
        lambda: collection(
            feature("Gulbahar", square(71.50, 34.0, 0.05), district="Peshawar"),
            feature("Faqirabad", square(71.60, 34.0, 0.05), district="Peshawar"),
        ),
        "tehsil",
        {"parent_geometry": box(71.50, 34.0, 71.65, 34.05)},
        "gap",
        ["uncovered", "m^2", "(71.575, 34.025)"],
    ),
    (
        "feature sticking out of the parent",
        lambda: collection(
            feature("Gulbahar", square(71.50, 34.0, 0.05), district="Peshawar"),
            feature("Faqirabad", square(71.55, 34.0, 0.10), district="Peshawar"),
        ),
        "tehsil",
        {"parent_geometry": box(71.50, 34.0, 71.60, 34.05)},
        "outside_parent",
        ["'Faqirabad'", "outside the parent"],
    ),
]


@pytest.mark.parametrize(
    ("make_doc", "level", "kwargs", "code", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_problem_is_refused_with_an_actionable_message(
    make_doc: Callable[[], object],
    level: str,
    kwargs: dict[str, Any],
    code: str,
    words: list[str],
) -> None:
    problems = refuse(make_doc(), level, **kwargs)
    matching = [p for p in problems if p.code == code]
    assert matching, f"expected a {code!r} problem, got {[p.code for p in problems]}"
    message = matching[0].message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_every_problem_of_a_layer_is_reported_at_once() -> None:
    doc = collection(
        feature("Gulbahar", BOWTIE, tehsil="City"),
        feature(None, square(72.0, 34.0), tehsil="City"),
        feature("Hayatabad", square(73.0, 34.0)),
    )
    problems = refuse(doc, "station")
    assert [(p.feature_index, p.code) for p in problems] == [
        (0, "invalid_geometry"),
        (1, "missing_name"),
        (2, "missing_parent"),
    ]
    assert problems[0].feature_name == "Gulbahar"
    assert problems[0].to_dict()["code"] == "invalid_geometry"


def test_overlap_area_is_reported_in_square_metres() -> None:
    # 0.05 x 0.1 degree overlap at 34N: about 5.1e7 m^2.
    doc = collection(
        feature("Gulbahar", square(71.50, 34.0, 0.10)),
        feature("Faqirabad", square(71.55, 34.0, 0.10)),
    )
    (problem,) = refuse(doc)
    area = int(problem.message.split("overlap by about ")[1].split(" m^2")[0].replace(",", ""))
    assert 5.0e7 < area < 5.3e7


def test_shared_borders_and_slivers_below_tolerance_are_not_overlaps() -> None:
    doc = collection(
        feature("West", square(71.50, 34.0, 0.10)),
        feature("East", square(71.60, 34.0, 0.10)),  # shares an edge with West
        feature("Sliver", square(71.70 - 1e-7, 34.0, 0.10)),  # overlaps East by 1e-8 deg^2
    )
    layer = validate_layer(doc, "district")
    assert [f.name for f in layer.features] == ["West", "East", "Sliver"]


def test_make_valid_repairs_a_bowtie_and_warns() -> None:
    doc = collection(feature("Gulbahar", BOWTIE, tehsil="City"))
    layer = validate_layer(doc, "station", make_valid=True)
    (feat,) = layer.features
    assert feat.geometry.is_valid
    assert feat.geometry.geom_type == "MultiPolygon"
    assert feat.geometry.area == pytest.approx(0.005)  # two triangles of 0.0025 deg^2
    (warning,) = layer.warnings
    assert warning.code == "repaired_geometry"
    assert warning.feature_index == 0 and warning.feature_name == "Gulbahar"
    assert "'Gulbahar'" in warning.message and "repaired" in warning.message


def test_make_valid_cannot_repair_a_ring_without_area() -> None:
    flat = {"type": "Polygon", "coordinates": [[[71.5, 34.0], [71.6, 34.0], [71.5, 34.0]]]}
    problems = refuse(collection(feature("Flat", flat)), make_valid=True)
    assert problems[0].code in ("invalid_geometry", "malformed_geometry")
    assert "'Flat'" in problems[0].message


@pytest.mark.parametrize(
    "crs_name",
    ["urn:ogc:def:crs:OGC:1.3:CRS84", "EPSG:4326", "urn:ogc:def:crs:EPSG::4326", "OGC:CRS84"],
)
def test_wgs84_crs_names_are_accepted(crs_name: str) -> None:
    doc = good_tehsils()
    doc["crs"] = {"type": "name", "properties": {"name": crs_name}}
    assert len(validate_layer(doc, "tehsil").features) == 2


def test_a_good_layer_comes_back_with_names_codes_parents_and_geometry() -> None:
    layer = validate_layer(good_tehsils(), "tehsil", parent_geometry=box(71.50, 34.0, 71.60, 34.05))
    assert isinstance(layer, ValidatedLayer)
    assert layer.level == "tehsil" and layer.warnings == []
    first, second = layer.features
    assert (first.name, first.code, first.parent) == ("Peshawar City", "PSH-C", "Peshawar")
    assert (second.name, second.code, second.parent) == ("Peshawar Cantt", "17", "Peshawar")
    assert first.properties["district"] == "Peshawar"
    assert first.geometry.equals(box(71.50, 34.0, 71.55, 34.05))


def test_same_station_name_under_different_tehsils_is_allowed() -> None:
    doc = collection(
        feature("Saddar", square(71.5, 34.0), tehsil="Peshawar City"),
        feature("Saddar", square(72.5, 34.0), tehsil="Mardan"),
    )
    assert [f.parent for f in validate_layer(doc, "station").features] == [
        "Peshawar City",
        "Mardan",
    ]


def test_multipolygon_and_3d_coordinates_are_accepted() -> None:
    multi = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[71.5, 34.0, 300.0], [71.6, 34.0, 310.0], [71.6, 34.1, 305.0], [71.5, 34.0, 300.0]]],
            [[[72.0, 34.0, 0.0], [72.1, 34.0, 0.0], [72.1, 34.1, 0.0], [72.0, 34.0, 0.0]]],
        ],
    }
    (feat,) = validate_layer(collection(feature("Chitral", multi)), "province").features
    assert feat.geometry.geom_type == "MultiPolygon"
    assert not shapely.has_z(feat.geometry)


def test_unknown_level_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown level"):
        validate_layer(good_tehsils(), "village")  # type: ignore[arg-type]


SHARED = Path(os.environ.get("SAFECITY_SHARED", Path(__file__).resolve().parents[3] / "shared"))


@pytest.mark.shared
def test_real_police_districts_pass() -> None:
    path = SHARED / "data" / "crime" / "chicago" / "police_districts_2018.geojson"
    if not path.exists():
        pytest.skip(f"real boundaries not available: {path} (set SAFECITY_SHARED)")
    doc = json.loads(path.read_text())
    for f in doc["features"]:
        f["properties"]["name"] = f"District {f['properties']['district']}"
    layer = validate_layer(doc, "district")
    assert len(layer.features) == 23
