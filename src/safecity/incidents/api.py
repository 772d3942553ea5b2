"""Call intake and incident routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from safecity.core.deps import CurrentUser, RuntimeDep, SessionDep
from safecity.incidents import service
from safecity.incidents.schemas import (
    CallAccepted,
    CallIn,
    IncidentDetail,
    IncidentOut,
    IncidentTypeIn,
    IncidentTypeOut,
    MergeIn,
    ResponseTargetIn,
    ResponseTargetOut,
    StatusChange,
    TransferIn,
)
from safecity.registry import service as registry

router = APIRouter(prefix="/api/v1", tags=["incidents"])


@router.get("/incident-types", response_model=list[IncidentTypeOut])
def incident_types(session: SessionDep, _: CurrentUser) -> list[IncidentTypeOut]:
    """Incident types with their APCO ANS 2.103 codes and default priorities."""
    return service.list_types(session)


@router.get("/categories", response_model=list[IncidentTypeOut], include_in_schema=False)
def categories(session: SessionDep, _: CurrentUser) -> list[IncidentTypeOut]:
    return service.list_types(session, active_only=True)


@router.put("/incident-types/{code}", response_model=IncidentTypeOut)
def put_incident_type(
    code: str, body: IncidentTypeIn, session: SessionDep, principal: CurrentUser
) -> IncidentTypeOut:
    out = service.set_type(session, code=code, type_in=body, actor=principal)
    session.commit()
    return out


@router.get("/response-targets", response_model=list[ResponseTargetOut])
def response_targets(session: SessionDep, _: CurrentUser) -> list[ResponseTargetOut]:
    return service.list_targets(session)


@router.put("/response-targets/{priority}/{area_type}", response_model=ResponseTargetOut)
def put_response_target(
    priority: int,
    area_type: str,
    body: ResponseTargetIn,
    session: SessionDep,
    principal: CurrentUser,
) -> ResponseTargetOut:
    out = service.set_target(
        session, priority=priority, area_type=area_type, target_in=body, actor=principal
    )
    session.commit()
    return out


@router.post(
    "/calls",
    response_model=CallAccepted,
    status_code=201,
    responses={200: {"description": "This external_id was already taken in"}},
)
def post_call(
    call: CallIn,
    response: Response,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: CurrentUser,
) -> CallAccepted:
    """A helpline call: opens an incident routed to the station holding the location, or is
    linked to an open incident it duplicates."""
    accepted = service.receive_call(session, call=call, actor=principal, now=runtime.clock.now())
    if accepted.duplicate_of_external_id:
        response.status_code = 200
    return accepted


@router.post("/calls/{call_id}/split", response_model=CallAccepted, status_code=201)
def split(
    call_id: int, runtime: RuntimeDep, session: SessionDep, principal: CurrentUser
) -> CallAccepted:
    """Undo a duplicate link: the call becomes an incident of its own."""
    return service.split_call(session, call_id=call_id, actor=principal, now=runtime.clock.now())


@router.get("/incidents", response_model=list[IncidentOut])
def incidents(
    session: SessionDep,
    principal: CurrentUser,
    status: str | None = None,
    open_only: bool = False,
    station_id: int | None = None,
    district_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
) -> list[IncidentOut]:
    return service.list_incidents(
        session,
        actor=principal,
        status=status,
        open_only=open_only,
        station_id=station_id,
        district_id=district_id,
        since=since,
        until=until,
        limit=limit,
    )


@router.get("/incidents/{incident_id}", response_model=IncidentDetail)
def incident(incident_id: int, session: SessionDep, principal: CurrentUser) -> IncidentDetail:
    return service.get_incident(session, incident_id=incident_id, actor=principal)


@router.post("/incidents/{incident_id}/status", response_model=IncidentOut)
def change_status(
    incident_id: int,
    body: StatusChange,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: CurrentUser,
) -> IncidentOut:
    """Acknowledge, resolve (with a disposition), close or cancel an incident. Unit steps
    (dispatched, en route, on scene) come from the dispatch routes."""
    out = service.change_status(
        session,
        incident_id=incident_id,
        status=body.status,
        actor=principal,
        now=runtime.clock.now(),
        note=body.note,
        disposition=body.disposition,
    )
    session.commit()
    return out


@router.post("/incidents/{incident_id}/transfer", response_model=IncidentOut)
def transfer(
    incident_id: int,
    body: TransferIn,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: CurrentUser,
) -> IncidentOut:
    """To another station (routed there afresh) or another agency (rescue 1122, traffic)."""
    agency = None
    if body.agency_code is not None:
        agency = registry.get_agency(session, code=body.agency_code).name
    out = service.transfer(
        session,
        incident_id=incident_id,
        actor=principal,
        now=runtime.clock.now(),
        reason=body.reason,
        station_id=body.station_id,
        agency_name=agency,
    )
    session.commit()
    return out


@router.post("/incidents/{incident_id}/merge", response_model=IncidentOut)
def merge(
    incident_id: int,
    body: MergeIn,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: CurrentUser,
) -> IncidentOut:
    out = service.merge(
        session,
        incident_id=incident_id,
        into_id=body.into_incident_id,
        actor=principal,
        now=runtime.clock.now(),
        note=body.note,
    )
    session.commit()
    return out


@router.get("/incidents/{incident_id}/eido")
def export_eido(incident_id: int, session: SessionDep, principal: CurrentUser) -> dict[str, Any]:
    """The incident as a NENA EIDO (STA-021) JSON document, for another agency's CAD."""
    return service.export_eido(session, incident_id=incident_id, actor=principal)


@router.post(
    "/eido",
    response_model=CallAccepted,
    status_code=201,
    responses={200: {"description": "This EIDO call was already taken in"}},
)
def import_eido(
    doc: Annotated[dict[str, Any], Body(description="A NENA EIDO JSON document")],
    response: Response,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: CurrentUser,
) -> CallAccepted:
    """An incident handed over by another agency as an EIDO becomes a call here."""
    accepted = service.import_eido(session, doc=doc, actor=principal, now=runtime.clock.now())
    if accepted.duplicate_of_external_id:
        response.status_code = 200
    return accepted
