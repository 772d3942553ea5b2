"""Call intake and incident routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import ValidationError
from starlette.types import Receive, Scope

from safecity.core.deps import CurrentUser, PathId, QueryId, RuntimeDep, SessionDep
from safecity.core.errors import invalid_input_from
from safecity.core.fastpath import PostFastPath, read_body, request_principal
from safecity.core.runtime import Runtime
from safecity.core.writer import shared_writer
from safecity.incidents import service
from safecity.incidents.intake import CallIntake
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


CALLS_PATH = "/api/v1/calls"


@router.post(
    "/calls",
    response_model=CallAccepted,
    status_code=201,
    responses={200: {"description": "This external_id was already taken in"}},
)
async def post_call(
    call: CallIn,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    principal: CurrentUser,
) -> CallAccepted:
    """A helpline call: opens an incident routed to the station holding the location, or is
    linked to an open incident it duplicates. Answered once it is committed."""
    accepted = await call_intake(request.app).take(
        service.CallRequest(call=call, actor=principal, received_at=runtime.clock.now())
    )
    if accepted.duplicate_of_external_id:
        response.status_code = 200
    return accepted


def call_intake(app: Any) -> CallIntake:
    """The app's call intake (made here, on the app's shared group-commit writer, when the
    app was built without one)."""
    intake: CallIntake | None = getattr(app.state, "call_intake", None)
    if intake is None:
        writer = shared_writer(app)
        intake = CallIntake(writer.sessions, writer=writer)
        app.state.call_intake = intake
    return intake


class CallIntakeFastPath(PostFastPath):
    """`POST /api/v1/calls` answered ahead of FastAPI's routing and dependency machinery.

    A helpline at its peak sends hundreds of calls a second and the framework's per-request
    work (route matching over every route, dependency solving, response re-validation) cost
    several times the intake itself. This does the same steps directly: the same principal
    cache, the same `CallIn` validation and error bodies, the same intake; the route above
    stays the documented contract (OpenAPI) and serves an app built without this."""

    max_body = 64 * 1024

    path = CALLS_PATH

    async def answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        app = scope["app"]
        runtime: Runtime = app.state.runtime
        principal = await request_principal(runtime, scope)
        body = await read_body(receive, self.max_body, what="a call")
        try:
            call = CallIn.model_validate_json(body)
        except ValidationError as exc:
            raise invalid_input_from(list(exc.errors())) from None
        accepted = await call_intake(app).take(
            service.CallRequest(call=call, actor=principal, received_at=runtime.clock.now())
        )
        status = 200 if accepted.duplicate_of_external_id else 201
        return status, accepted.model_dump_json().encode()


@router.post("/calls/{call_id}/split", response_model=CallAccepted, status_code=201)
def split(
    call_id: PathId, runtime: RuntimeDep, session: SessionDep, principal: CurrentUser
) -> CallAccepted:
    """Undo a duplicate link: the call becomes an incident of its own."""
    return service.split_call(session, call_id=call_id, actor=principal, now=runtime.clock.now())


@router.get("/incidents", response_model=list[IncidentOut])
def incidents(
    session: SessionDep,
    principal: CurrentUser,
    status: str | None = None,
    open_only: bool = False,
    station_id: QueryId = None,
    district_id: QueryId = None,
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
def incident(incident_id: PathId, session: SessionDep, principal: CurrentUser) -> IncidentDetail:
    return service.get_incident(session, incident_id=incident_id, actor=principal)


@router.post("/incidents/{incident_id}/status", response_model=IncidentOut)
def change_status(
    incident_id: PathId,
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
    incident_id: PathId,
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
    incident_id: PathId,
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
def export_eido(incident_id: PathId, session: SessionDep, principal: CurrentUser) -> dict[str, Any]:
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
