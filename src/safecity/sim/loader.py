"""Load the demo province into a database, through the domains' services."""

from __future__ import annotations

from typing import Any

from shapely.geometry import mapping
from sqlalchemy.orm import Session

from safecity.core.auth import create_user, hash_password
from safecity.core.runtime import Runtime
from safecity.geo import service as geo
from safecity.geo.schemas import Level
from safecity.registry import service as registry
from safecity.registry.schemas import AgencyIn, CameraIn, OfficerIn, SiteIn, UnitIn
from safecity.sim.democity import Area, DemoCity

_PARENT_PROP = {"district": "province", "tehsil": "district", "station": "tehsil"}

AGENCIES = (
    AgencyIn(code="KPP", name="Khyber Pakhtunkhwa Police", kind="police", phone="15"),
    AgencyIn(
        code="TRAFFIC", name="City Traffic Police Peshawar", kind="traffic_police", phone="1915"
    ),
    AgencyIn(code="R1122", name="Rescue 1122", kind="rescue_1122", phone="1122"),
    AgencyIn(code="CTD", name="Counter Terrorism Department", kind="ctd"),
)


def layer_geojson(areas: tuple[Area, ...], level: str) -> dict[str, Any]:
    feats = []
    for a in areas:
        props: dict[str, Any] = {"name": a.name, "code": a.code}
        if level in _PARENT_PROP and a.parent_code:
            props[_PARENT_PROP[level]] = a.parent_code
        if level == "station":
            props["station_lon"], props["station_lat"] = a.lon, a.lat
            city = (a.parent_code or "").endswith("-CITY") or "CANTT" in a.code or "CITY" in a.code
            props["area_type"] = "urban" if city else "rural"
        feats.append({"type": "Feature", "properties": props, "geometry": mapping(a.geometry)})
    return {"type": "FeatureCollection", "features": feats}


def demo_loaded(session: Session) -> bool:
    return bool(geo.list_jurisdictions(session, level="station"))


def load_demo_city(
    runtime: Runtime, city: DemoCity, *, password: str, with_cameras: bool = True
) -> dict[str, int]:
    """Write the whole demo province in one transaction (all or nothing). Without cameras
    (and their sites) it is a quick fixture for dispatch tests."""
    now = runtime.clock.now()
    with runtime.sessions() as session, session.begin():
        layers: tuple[tuple[Level, tuple[Area, ...]], ...] = (
            ("province", (city.province,)),
            ("district", city.districts),
            ("tehsil", city.tehsils),
            ("station", city.stations),
        )
        for level, areas in layers:
            geo.import_geojson(
                session,
                doc=layer_geojson(areas, level),
                level=level,
                now=now,
            )
        ids = {j.code: j.id for j in geo.list_jurisdictions(session)}
        for agency in AGENCIES:
            registry.create_agency(session, agency_in=agency)
        for s in city.sites if with_cameras else ():
            registry.create_site(
                session,
                now=now,
                site_in=SiteIn(code=s.code, name=s.name, kind=s.kind, lon=s.lon, lat=s.lat),
            )
        for c in city.cameras if with_cameras else ():
            registry.create_camera(
                session,
                now=now,
                camera_in=CameraIn(
                    code=c.code,
                    name=c.name,
                    site_code=c.site_code,
                    kind=c.kind,
                    stream_url=c.stream_url,
                    heading_deg=c.heading_deg,
                    lon=c.lon,
                    lat=c.lat,
                ),
            )
        for u in city.units:
            registry.create_unit(
                session,
                now=now,
                unit_in=UnitIn(
                    code=u.code,
                    callsign=u.callsign,
                    kind=u.kind,
                    home_station_id=ids[u.station_code],
                    lon=u.lon,
                    lat=u.lat,
                    agency_code="KPP",
                ),
            )
        logins = {u.officer_code: u.username for u in city.users if u.officer_code}
        for o in city.officers:
            registry.create_officer(
                session,
                officer_in=OfficerIn(
                    code=o.code,
                    name=o.name,
                    rank=o.rank,
                    station_id=ids.get(o.station_code or ""),
                    tehsil_id=ids.get(o.tehsil_code or ""),
                    district_id=ids.get(o.district_code or ""),
                    unit_code=o.unit_code,
                    username=logins.get(o.code),
                ),
            )
        shared_hash = hash_password(password)  # one demo password: hash it once
        for user in city.users:
            create_user(
                session,
                username=user.username,
                password=password,
                role=user.role,
                full_name=user.full_name,
                scope_level=user.scope_level,
                scope_id=ids[user.scope_code] if user.scope_code else None,
                now=now,
                password_hash=shared_hash,
            )
        counts = registry.counts(session)
    counts["stations"] = len(city.stations)
    counts["users"] = len(city.users)
    return counts
