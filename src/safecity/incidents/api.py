"""Call intake and incident routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from safecity.core.deps import CurrentUser, RuntimeDep, SessionDep
from safecity.incidents import service
from safecity.incidents.schemas import (
    CallAccepted,
    CallIn,
    CategoryOut,
    IncidentDetail,
    IncidentOut,
)

router = APIRouter(prefix="/api/v1", tags=["incidents"])


@router.get("/categories", response_model=list[CategoryOut])
def categories(_: CurrentUser) -> list[CategoryOut]:
    return service.list_categories()


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
    """A helpline call: creates an incident routed to the station holding the location."""
    accepted = service.receive_call(session, call=call, actor=principal, now=runtime.clock.now())
    if accepted.duplicate_of_external_id:
        response.status_code = 200
    return accepted


@router.get("/incidents", response_model=list[IncidentOut])
def incidents(
    session: SessionDep,
    principal: CurrentUser,
    status: str | None = None,
    station_id: int | None = None,
    district_id: int | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[IncidentOut]:
    return service.list_incidents(
        session,
        actor=principal,
        status=status,
        station_id=station_id,
        district_id=district_id,
        since=since,
        limit=limit,
    )


@router.get("/incidents/{incident_id}", response_model=IncidentDetail)
def incident(incident_id: int, session: SessionDep, principal: CurrentUser) -> IncidentDetail:
    return service.get_incident(session, incident_id=incident_id, actor=principal)
