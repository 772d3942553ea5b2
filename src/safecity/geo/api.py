"""Geo routes: station jurisdictions as GeoJSON, point lookup, layer import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from safecity.core.auth import Perm
from safecity.core.deps import QueryId, RuntimeDep, SessionDep, requires
from safecity.geo import service
from safecity.geo.schemas import ImportReport, JurisdictionOut, Level, Location

router = APIRouter(prefix="/api/v1/geo", tags=["geo"])


@router.get("/stations", dependencies=[requires(Perm.GEO_READ)])
def stations(session: SessionDep) -> dict[str, Any]:
    """GeoJSON FeatureCollection of police station jurisdictions."""
    return service.feature_collection(session, level="station")


@router.get("/layers/{level}", dependencies=[requires(Perm.GEO_READ)])
def layer(level: Level, session: SessionDep) -> dict[str, Any]:
    """GeoJSON FeatureCollection of one level (province, district, tehsil, station)."""
    return service.feature_collection(session, level=level)


@router.get(
    "/jurisdictions", response_model=list[JurisdictionOut], dependencies=[requires(Perm.GEO_READ)]
)
def jurisdictions(
    session: SessionDep,
    level: Level | None = None,
    parent_id: QueryId = None,
) -> list[JurisdictionOut]:
    return service.list_jurisdictions(session, level=level, parent_id=parent_id)


@router.get("/locate", response_model=Location, dependencies=[requires(Perm.GEO_READ)])
def locate(
    session: SessionDep,
    lat: Annotated[float, Query(description="Latitude, WGS84")],
    lon: Annotated[float, Query(description="Longitude, WGS84")],
) -> Location:
    return service.locate_point(session, lon=lon, lat=lat)


@router.post(
    "/import/{level}",
    response_model=ImportReport,
    status_code=201,
    dependencies=[requires(Perm.GEO_WRITE)],
)
def import_layer(
    level: Level,
    doc: Annotated[Any, Body(description="GeoJSON FeatureCollection")],
    runtime: RuntimeDep,
    session: SessionDep,
    make_valid: bool = False,
) -> ImportReport:
    """Import a GeoJSON FeatureCollection (request body) as jurisdictions of `level`."""
    report = service.import_geojson(
        session, doc=doc, level=level, make_valid=make_valid, now=runtime.clock.now()
    )
    session.commit()
    return report
