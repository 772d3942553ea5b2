"""Registry routes: CRUD for agencies, sites, cameras, units and officers; bulk import."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query

from safecity.core.auth import Perm
from safecity.core.deps import CurrentUser, PathId, QueryId, RuntimeDep, SessionDep, requires
from safecity.registry import service
from safecity.registry.schemas import (
    AgencyIn,
    AgencyOut,
    AgencyUpdate,
    CameraIn,
    CameraOut,
    CameraUpdate,
    ImportResult,
    OfficerIn,
    OfficerOut,
    OfficerUpdate,
    SiteIn,
    SiteOut,
    SiteUpdate,
    UnitIn,
    UnitOut,
    UnitUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["registry"])
READ = [requires(Perm.REGISTRY_READ)]
WRITE = [requires(Perm.REGISTRY_WRITE)]


# -- agencies
@router.get("/agencies", response_model=list[AgencyOut], dependencies=READ)
def agencies(session: SessionDep) -> list[AgencyOut]:
    return service.list_agencies(session)


@router.post("/agencies", response_model=AgencyOut, status_code=201, dependencies=WRITE)
def add_agency(body: AgencyIn, session: SessionDep) -> AgencyOut:
    out = service.create_agency(session, agency_in=body)
    session.commit()
    return out


@router.patch("/agencies/{agency_id}", response_model=AgencyOut, dependencies=WRITE)
def edit_agency(agency_id: PathId, body: AgencyUpdate, session: SessionDep) -> AgencyOut:
    out = service.update_agency(session, agency_id=agency_id, update=body)
    session.commit()
    return out


@router.delete("/agencies/{agency_id}", status_code=204, dependencies=WRITE)
def remove_agency(agency_id: PathId, session: SessionDep) -> None:
    service.delete_agency(session, agency_id=agency_id)
    session.commit()


# -- sites
@router.get("/sites", response_model=list[SiteOut], dependencies=READ)
def sites(session: SessionDep, station_id: QueryId = None) -> list[SiteOut]:
    return service.list_sites(session, station_id=station_id)


@router.post("/sites", response_model=SiteOut, status_code=201, dependencies=WRITE)
def add_site(body: SiteIn, session: SessionDep, runtime: RuntimeDep) -> SiteOut:
    out = service.create_site(session, site_in=body, now=runtime.clock.now())
    session.commit()
    return out


@router.get("/sites/{site_id}", response_model=SiteOut, dependencies=READ)
def site(site_id: PathId, session: SessionDep) -> SiteOut:
    return service.get_site(session, site_id=site_id)


@router.patch("/sites/{site_id}", response_model=SiteOut, dependencies=WRITE)
def edit_site(
    site_id: PathId, body: SiteUpdate, session: SessionDep, runtime: RuntimeDep
) -> SiteOut:
    out = service.update_site(session, site_id=site_id, update=body, now=runtime.clock.now())
    session.commit()
    return out


@router.delete("/sites/{site_id}", status_code=204, dependencies=WRITE)
def remove_site(site_id: PathId, session: SessionDep) -> None:
    service.delete_site(session, site_id=site_id)
    session.commit()


@router.post("/sites/import", response_model=ImportResult, dependencies=WRITE)
def import_sites(
    session: SessionDep,
    runtime: RuntimeDep,
    text: Annotated[str, Body(media_type="text/plain", description="CSV or GeoJSON text")],
    format: Annotated[Literal["csv", "geojson"], Query()] = "csv",
) -> ImportResult:
    out = service.import_sites(session, text=text, fmt=format, now=runtime.clock.now())
    session.commit()
    return out


# -- cameras
@router.get("/cameras", response_model=list[CameraOut], dependencies=READ)
def cameras(
    session: SessionDep,
    actor: CurrentUser,
    site_id: QueryId = None,
    station_id: QueryId = None,
) -> list[CameraOut]:
    return service.list_cameras(session, site_id=site_id, station_id=station_id, actor=actor)


@router.post("/cameras", response_model=CameraOut, status_code=201, dependencies=WRITE)
def add_camera(body: CameraIn, session: SessionDep, runtime: RuntimeDep) -> CameraOut:
    out = service.create_camera(session, camera_in=body, now=runtime.clock.now())
    session.commit()
    return out


@router.get("/cameras/{camera_id}", response_model=CameraOut, dependencies=READ)
def camera(camera_id: PathId, session: SessionDep, actor: CurrentUser) -> CameraOut:
    return service.visible_camera(session, camera_id=camera_id, actor=actor)


@router.patch("/cameras/{camera_id}", response_model=CameraOut, dependencies=WRITE)
def edit_camera(
    camera_id: PathId, body: CameraUpdate, session: SessionDep, runtime: RuntimeDep
) -> CameraOut:
    out = service.update_camera(session, camera_id=camera_id, update=body, now=runtime.clock.now())
    session.commit()
    return out


@router.delete("/cameras/{camera_id}", status_code=204, dependencies=WRITE)
def remove_camera(camera_id: PathId, session: SessionDep) -> None:
    service.delete_camera(session, camera_id=camera_id)
    session.commit()


@router.post("/cameras/import", response_model=ImportResult, dependencies=WRITE)
def import_cameras(
    session: SessionDep,
    runtime: RuntimeDep,
    text: Annotated[str, Body(media_type="text/plain", description="CSV or GeoJSON text")],
    format: Annotated[Literal["csv", "geojson"], Query()] = "csv",
) -> ImportResult:
    out = service.import_cameras(session, text=text, fmt=format, now=runtime.clock.now())
    session.commit()
    return out


# -- units
@router.get("/units", response_model=list[UnitOut], dependencies=READ)
def units(
    session: SessionDep, station_id: QueryId = None, status: str | None = None
) -> list[UnitOut]:
    return service.list_units(session, station_id=station_id, status=status)


@router.post("/units", response_model=UnitOut, status_code=201, dependencies=WRITE)
def add_unit(body: UnitIn, session: SessionDep, runtime: RuntimeDep) -> UnitOut:
    out = service.create_unit(session, unit_in=body, now=runtime.clock.now())
    session.commit()
    return out


@router.get("/units/{unit_id}", response_model=UnitOut, dependencies=READ)
def unit(unit_id: PathId, session: SessionDep) -> UnitOut:
    return service.get_unit(session, unit_id=unit_id)


@router.patch("/units/{unit_id}", response_model=UnitOut, dependencies=WRITE)
def edit_unit(
    unit_id: PathId, body: UnitUpdate, session: SessionDep, runtime: RuntimeDep
) -> UnitOut:
    out = service.update_unit(session, unit_id=unit_id, update=body, now=runtime.clock.now())
    session.commit()
    return out


@router.delete("/units/{unit_id}", status_code=204, dependencies=WRITE)
def remove_unit(unit_id: PathId, session: SessionDep) -> None:
    service.delete_unit(session, unit_id=unit_id)
    session.commit()


# -- officers
@router.get("/officers", response_model=list[OfficerOut], dependencies=READ)
def officers(session: SessionDep, station_id: QueryId = None) -> list[OfficerOut]:
    return service.list_officers(session, station_id=station_id)


@router.post("/officers", response_model=OfficerOut, status_code=201, dependencies=WRITE)
def add_officer(body: OfficerIn, session: SessionDep) -> OfficerOut:
    out = service.create_officer(session, officer_in=body)
    session.commit()
    return out


@router.patch("/officers/{officer_id}", response_model=OfficerOut, dependencies=WRITE)
def edit_officer(officer_id: PathId, body: OfficerUpdate, session: SessionDep) -> OfficerOut:
    out = service.update_officer(session, officer_id=officer_id, update=body)
    session.commit()
    return out


@router.delete("/officers/{officer_id}", status_code=204, dependencies=WRITE)
def remove_officer(officer_id: PathId, session: SessionDep) -> None:
    service.delete_officer(session, officer_id=officer_id)
    session.commit()
