"""The deterministic demo province around Peshawar (safecity.sim.democity)."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Sequence

import pytest
import shapely
from shapely.geometry import Point

from safecity.sim.democity import (
    CALL_CATEGORIES,
    CAMERA_KINDS,
    OFFICER_RANKS,
    ROLES,
    SCOPE_LEVELS,
    SITE_KINDS,
    UNIT_KINDS,
    Area,
    DemoCity,
    build_demo_city,
)

REL_TOL = 1e-6


@pytest.fixture(scope="module")
def city() -> DemoCity:
    return build_demo_city()


def _children(city: DemoCity, parent: Area) -> list[Area]:
    return [a for a in city.areas() if a.parent_code == parent.code]


def _assert_partition(parent: Area, children: Sequence[Area]) -> None:
    assert children, f"{parent.code} has no children"
    parent_area = parent.geometry.area
    for a, b in itertools.combinations(children, 2):
        overlap = a.geometry.intersection(b.geometry).area
        assert overlap <= REL_TOL * parent_area, (a.code, b.code, overlap)
    union = shapely.union_all([c.geometry for c in children])
    gap = shapely.symmetric_difference(union, parent.geometry).area
    assert gap <= REL_TOL * parent_area, (parent.code, gap)


def test_counts(city: DemoCity) -> None:
    assert city.province.level == "province"
    assert city.province.parent_code is None
    assert len(city.districts) == 3
    assert {d.name for d in city.districts} == {"Peshawar", "Charsadda", "Nowshera"}
    assert len(city.tehsils) >= 8
    assert len(city.stations) >= 40
    assert len(city.sites) == 125
    assert len(city.cameras) == 700
    assert len(city.units) == 200


def test_codes_unique_and_hierarchy(city: DemoCity) -> None:
    areas = city.areas()
    codes = [a.code for a in areas]
    assert len(codes) == len(set(codes))
    by_code = {a.code: a for a in areas}
    expected_parent_level = {"district": "province", "tehsil": "district", "station": "tehsil"}
    for area in areas[1:]:
        assert area.parent_code in by_code, area.code
        assert by_code[area.parent_code].level == expected_parent_level[area.level]
    for records in (city.sites, city.cameras, city.units, city.officers):
        record_codes = [r.code for r in records]
        assert len(record_codes) == len(set(record_codes))
    assert len({u.callsign for u in city.units}) == len(city.units)


def test_every_geometry_valid(city: DemoCity) -> None:
    for area in city.areas():
        geom = area.geometry
        assert geom.geom_type in ("Polygon", "MultiPolygon"), area.code
        assert geom.is_valid, area.code
        assert not geom.is_empty, area.code
        assert geom.area > 0, area.code
    for district in city.districts:
        assert district.geometry.geom_type == "Polygon", district.code


def test_partitions(city: DemoCity) -> None:
    _assert_partition(city.province, city.districts)
    for district in city.districts:
        _assert_partition(district, _children(city, district))
        tehsil_codes = {t.code for t in _children(city, district)}
        stations = [s for s in city.stations if s.parent_code in tehsil_codes]
        _assert_partition(district, stations)
    for tehsil in city.tehsils:
        _assert_partition(tehsil, _children(city, tehsil))


def test_locations_inside_their_area(city: DemoCity) -> None:
    for area in city.areas():
        assert area.geometry.contains(area.location), area.code
    stations = {s.code: s for s in city.stations}
    for site in city.sites:
        assert stations[site.station_code].geometry.contains(Point(site.lon, site.lat)), site.name
    for unit in city.units:
        assert stations[unit.station_code].geometry.contains(Point(unit.lon, unit.lat)), unit.code


def test_peshawar_city_is_densest(city: DemoCity) -> None:
    per_tehsil = Counter(s.parent_code for s in city.stations)
    city_tehsil = next(t for t in city.tehsils if t.name == "Peshawar City")
    assert per_tehsil[city_tehsil.code] == max(per_tehsil.values())
    stations = {s.code: s for s in city.stations}
    sites_in_city = sum(
        1 for s in city.sites if stations[s.station_code].parent_code == city_tehsil.code
    )
    assert sites_in_city > len(city.sites) / 2
    names = {s.name for s in city.stations}
    for name in ("PS Gulbahar", "PS Hashtnagri", "PS Tangi", "PS Pabbi", "PS Aman Garh"):
        assert name in names


def test_coordinates_near_peshawar(city: DemoCity) -> None:
    minx, miny, maxx, maxy = city.province.geometry.bounds
    assert 71.2 <= minx < maxx <= 72.4
    assert 33.7 <= miny < maxy <= 34.4
    points = [(s.lon, s.lat) for s in city.sites]
    points += [(c.lon, c.lat) for c in city.cameras]
    points += [(u.lon, u.lat) for u in city.units]
    for lon, lat in points:
        assert 71.2 <= lon <= 72.4 and 33.7 <= lat <= 34.4
    peshawar = next(d for d in city.districts if d.name == "Peshawar")
    assert peshawar.geometry.contains(Point(71.55, 34.01))
    charsadda = next(d for d in city.districts if d.name == "Charsadda")
    assert charsadda.geometry.contains(Point(71.73, 34.15))
    nowshera = next(d for d in city.districts if d.name == "Nowshera")
    assert nowshera.geometry.contains(Point(71.98, 34.0))


def test_sites_and_cameras(city: DemoCity) -> None:
    assert {s.kind for s in city.sites} == set(SITE_KINDS)
    assert len({s.name for s in city.sites}) == len(city.sites)
    per_site = Counter(c.site_code for c in city.cameras)
    assert set(per_site) == {s.code for s in city.sites}
    assert all(2 <= n <= 12 for n in per_site.values())
    kinds_at: dict[str, set[str]] = {}
    for camera in city.cameras:
        assert camera.kind in CAMERA_KINDS
        assert 0.0 <= camera.heading_deg < 360.0
        assert camera.stream_url.startswith("rtsp://10.20.")
        assert camera.stream_url.endswith(":554/Streaming/Channels/101")
        kinds_at.setdefault(camera.site_code, set()).add(camera.kind)
    assert len({c.stream_url for c in city.cameras}) == len(city.cameras)
    for site in city.sites:
        if site.kind == "toll_plaza":
            assert "anpr" in kinds_at[site.code], site.name
        if site.kind in ("terminal", "embassy"):
            assert "face" in kinds_at[site.code], site.name


def test_units_and_officers(city: DemoCity) -> None:
    per_station = Counter(u.station_code for u in city.units)
    assert all(per_station[s.code] >= 2 for s in city.stations)
    assert {u.kind for u in city.units} == set(UNIT_KINDS)
    prefixes = {u.callsign.split("-")[0] for u in city.units}
    assert prefixes == {"PSR", "CSD", "NSR"}

    assert all(o.rank in OFFICER_RANKS for o in city.officers)
    posts = Counter(o.post for o in city.officers)
    assert posts == {
        "Unit": len(city.units),
        "SHO": len(city.stations),
        "SDPO": len(city.tehsils),
        "SP": len(city.districts),
    }
    assert {o.unit_code for o in city.officers if o.post == "Unit"} == {u.code for u in city.units}
    assert {o.station_code for o in city.officers if o.post == "SHO"} == {
        s.code for s in city.stations
    }
    assert len(city.officers) == len(city.units) + len(city.stations) + len(city.tehsils) + 3
    assert all(o.rank == "SP" for o in city.officers if o.post == "SP")
    assert all(o.rank == "DSP" for o in city.officers if o.post == "SDPO")


def test_users_cover_every_role(city: DemoCity) -> None:
    by_name = {u.username: u for u in city.users}
    assert len(by_name) == len(city.users)
    assert {u.role for u in city.users} == set(ROLES)
    assert by_name["admin"].role == "admin"
    assert by_name["admin"].scope_level == "all"
    for username in ("calltaker", "dispatcher", "analyst", "sho.gulbahar", "sp.peshawar"):
        assert username in by_name
    assert by_name["sho.gulbahar"].scope_level == "station"
    codes = {a.code: a.level for a in city.areas()}
    for user in city.users:
        assert user.scope_level in SCOPE_LEVELS
        if user.scope_level == "all":
            assert user.scope_code is None
        else:
            assert codes[user.scope_code or ""] == user.scope_level, user.username
    roles = Counter(u.role for u in city.users)
    assert roles["sho"] == len(city.stations)
    assert roles["sdpo"] == len(city.tehsils)
    assert roles["district_sp"] == len(city.districts)


def test_call_categories(city: DemoCity) -> None:
    codes = [code for code, _ in city.call_categories]
    assert city.call_categories == CALL_CATEGORIES
    assert set(codes) == {
        "robbery",
        "snatching",
        "vehicle_theft",
        "terrorism",
        "kidnapping",
        "murder",
        "assault",
        "traffic_accident",
        "harassment",
        "fire",
        "suspicious",
        "domestic",
        "prank",
        "other",
    }


def test_deterministic(city: DemoCity) -> None:
    again = build_demo_city(7)
    assert again == city
    for a, b in zip(again.areas(), city.areas(), strict=True):
        assert shapely.to_wkb(a.geometry) == shapely.to_wkb(b.geometry)
        assert shapely.to_wkb(a.location) == shapely.to_wkb(b.location)
    other = build_demo_city(8)
    assert shapely.to_wkb(other.province.geometry) != shapely.to_wkb(city.province.geometry)
    assert [s.code for s in other.stations] == [s.code for s in city.stations]


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
def test_other_seeds_are_sound(seed: int) -> None:
    other = build_demo_city(seed)
    assert all(a.geometry.is_valid for a in other.areas())
    stations = {s.code: s for s in other.stations}
    for unit in other.units:
        assert stations[unit.station_code].geometry.contains(Point(unit.lon, unit.lat))
    for tehsil in other.tehsils:
        _assert_partition(tehsil, [s for s in other.stations if s.parent_code == tehsil.code])


def test_fast() -> None:
    start = time.perf_counter()
    build_demo_city(11)
    assert time.perf_counter() - start < 2.0
