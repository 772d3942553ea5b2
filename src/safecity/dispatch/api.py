"""Dispatch routes: recommendations, dispatch, unit steps and GPS, alerts, panic,
response-time reports and KPIs."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session
from starlette.types import Receive, Scope

from safecity.core.auth import Perm, Principal
from safecity.core.deps import CurrentUser, PathId, RuntimeDep, SessionDep, requires
from safecity.core.errors import (
    InvalidInput,
    PayloadTooLarge,
    SafeCityError,
    invalid_input_from,
)
from safecity.core.fastpath import PostFastPath, read_body, request_principal
from safecity.core.runtime import Runtime
from safecity.core.writer import shared_writer
from safecity.dispatch import service
from safecity.dispatch.schemas import (
    AlertOut,
    AssignmentOut,
    DispatchIn,
    DistrictKpi,
    PanicAccepted,
    PanicDeviceCreated,
    PanicDeviceIn,
    PanicIn,
    Ping,
    PingIn,
    PingsAccepted,
    Recommendation,
    ResponseTimeRow,
    UnitStatusIn,
)

router = APIRouter(prefix="/api/v1", tags=["dispatch"])


@router.get("/incidents/{incident_id}/recommendations", response_model=list[Recommendation])
def recommendations(
    incident_id: PathId,
    session: SessionDep,
    principal: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> list[Recommendation]:
    """Nearest available units by estimated travel time."""
    return service.recommend_units(session, incident_id=incident_id, actor=principal, limit=limit)


@router.post(
    "/incidents/{incident_id}/dispatch", response_model=list[AssignmentOut], status_code=201
)
def dispatch(
    incident_id: PathId,
    body: DispatchIn,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: CurrentUser,
) -> list[AssignmentOut]:
    out = service.dispatch_units(
        session,
        incident_id=incident_id,
        unit_ids=body.unit_ids,
        actor=principal,
        now=runtime.clock.now(),
        note=body.note,
    )
    session.commit()
    return out


@router.get("/incidents/{incident_id}/assignments", response_model=list[AssignmentOut])
def incident_assignments(
    incident_id: PathId, session: SessionDep, principal: CurrentUser
) -> list[AssignmentOut]:
    from safecity.incidents import service as incidents

    incidents.get_incident(session, incident_id=incident_id, actor=principal)  # scope check
    return service.assignments_of(session, incident_id=incident_id)


@router.get(
    "/units/{unit_id}/assignments",
    response_model=list[AssignmentOut],
    dependencies=[requires(Perm.REGISTRY_READ)],
)
def unit_assignments(
    unit_id: PathId, session: SessionDep, active_only: bool = True
) -> list[AssignmentOut]:
    return service.assignments_of(session, unit_id=unit_id, active_only=active_only)


@router.post("/units/{unit_id}/status", response_model=AssignmentOut)
def unit_status(
    unit_id: PathId,
    body: UnitStatusIn,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: CurrentUser,
) -> AssignmentOut:
    """The unit reports en route, on scene or cleared (field app, radio via dispatcher)."""
    out = service.unit_step(
        session,
        unit_id=unit_id,
        step=body.status,
        actor=principal,
        now=runtime.clock.now(),
        incident_id=body.incident_id,
        disposition=body.disposition,
        note=body.note,
    )
    session.commit()
    return out


@router.post(
    "/units/{unit_id}/location",
    response_model=PingsAccepted,
    status_code=202,
    dependencies=[requires(Perm.INCIDENTS_READ)],
)
async def unit_location(
    unit_id: PathId, body: PingIn, request: Request, runtime: RuntimeDep
) -> PingsAccepted:
    """One GPS fix of a unit."""
    ping = Ping(unit_id=unit_id, **body.model_dump())
    n = await _take_fixes(request.app, [ping], runtime.clock.now())
    return PingsAccepted(accepted=n)


#: A batch of fixes, validated straight from the JSON bytes: an AVL gateway posts thousands
#: of fixes a second and the framework's generic body handling cost more than storing them.
_PINGS: TypeAdapter[list[Ping]] = TypeAdapter(list[Ping])


@router.post(
    "/units/locations",
    response_model=PingsAccepted,
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _PINGS.json_schema()}},
        }
    },
)
async def unit_locations(
    request: Request, runtime: RuntimeDep, principal: CurrentUser
) -> PingsAccepted:
    """A batch of GPS fixes (an AVL gateway)."""
    return await _take_batch(request.app, runtime, principal, await request.body())


async def _take_batch(
    app: Any, runtime: Runtime, principal: Principal, body: bytes
) -> PingsAccepted:
    principal.require(Perm.INCIDENTS_READ)
    if len(body) > MAX_FIX_BATCH_BYTES:
        raise _batch_too_large()
    try:
        pings = _PINGS.validate_json(body)
    except ValidationError as exc:
        raise invalid_input_from(list(exc.errors())) from None
    n = await _take_fixes(app, pings, runtime.clock.now())
    return PingsAccepted(accepted=n)


LOCATIONS_PATH = "/api/v1/units/locations"
#: The largest AVL batch taken in one request (about 40,000 fixes): a gateway sends a few
#: seconds of its fleet at a time; anything far larger is a fault, refused before it is
#: parsed (and, on the fast path, before it is all read).
MAX_FIX_BATCH_BYTES = 4 * 1024 * 1024


def _batch_too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"a batch of GPS fixes is at most {MAX_FIX_BATCH_BYTES // (1024 * 1024)} MB of JSON;"
        " send it in smaller batches"
    )


class AvlIntakeFastPath(PostFastPath):
    """`POST /api/v1/units/locations` answered ahead of FastAPI's routing and dependency
    machinery, as `incidents.api.CallIntakeFastPath` answers calls: AVL gateways post
    batches of fixes many times a second, and each paid the framework's per-request work
    (route matching over every route, dependency solving, response validation). The same
    steps as the route above (`_take_batch`: who is asking, then the permission, then the
    body), with the same validation and error bodies; the route stays the documented
    contract and serves an app built without this."""

    path = LOCATIONS_PATH

    async def answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        app = scope["app"]
        runtime: Runtime = app.state.runtime
        principal = await request_principal(runtime, scope)
        principal.require(Perm.INCIDENTS_READ)
        try:
            body = await read_body(receive, MAX_FIX_BATCH_BYTES)
        except PayloadTooLarge:
            raise _batch_too_large() from None
        accepted = await _take_batch(app, runtime, principal, body)
        return 202, accepted.model_dump_json().encode()


#: The name GPS fixes are registered under on the app's group-commit writer.
FIXES = "dispatch.fixes"


def _fix_batches(session: Session, batches: list[service.PingBatch]) -> list[int | SafeCityError]:
    return service.ingest_ping_batches(session, batches=batches)


async def _take_fixes(app: Any, pings: list[Ping], now: datetime) -> int:
    """Store fixes through the app's one writer thread, in the same transaction as the calls
    taken in beside them (see `core.writer`): a request of its own would wait for the one
    SQLite connection the writer keeps busy. Answered once committed."""
    if not pings:
        return 0
    writer = shared_writer(app)
    kind = writer.register(FIXES, _fix_batches)  # the same kind after the first time
    return await writer.take(kind, service.PingBatch(pings=pings, now=now))


@router.get("/alerts", response_model=list[AlertOut])
def alerts(session: SessionDep, principal: CurrentUser, open_only: bool = True) -> list[AlertOut]:
    return service.list_alerts(session, actor=principal, open_only=open_only)


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut)
def acknowledge(
    alert_id: PathId, runtime: RuntimeDep, session: SessionDep, principal: CurrentUser
) -> AlertOut:
    out = service.acknowledge_alert(
        session, alert_id=alert_id, actor=principal, now=runtime.clock.now()
    )
    session.commit()
    return out


@router.post("/panic-devices", response_model=PanicDeviceCreated, status_code=201)
def add_panic_device(
    body: PanicDeviceIn, runtime: RuntimeDep, session: SessionDep, principal: CurrentUser
) -> PanicDeviceCreated:
    out = service.register_panic_device(
        session, device_in=body, actor=principal, now=runtime.clock.now()
    )
    session.commit()
    return out


@router.post("/panic", response_model=PanicAccepted, status_code=201, tags=["panic"])
def panic(
    body: PanicIn,
    runtime: RuntimeDep,
    session: SessionDep,
    x_device_key: Annotated[str | None, Header()] = None,
) -> PanicAccepted:
    """A panic button press from a registered device (header X-Device-Key)."""
    if not x_device_key:
        raise InvalidInput("send the device key in the X-Device-Key header")
    return service.panic(session, device_key=x_device_key, panic_in=body, now=runtime.clock.now())


def _day(value: str, name: str, *, after: bool = False) -> datetime:
    """The start of day `value` (`after`: of the day after it, the end of an inclusive
    range)."""
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise InvalidInput(f"`{name}` must be a date YYYY-MM-DD, not {value!r}") from None
    try:
        return datetime.combine(day + timedelta(days=int(after)), time(), UTC)
    except OverflowError:  # the day after 9999-12-31
        raise InvalidInput(f"`{name}` must be a date before {value}") from None


@router.get(
    "/reports/response-times",
    response_model=list[ResponseTimeRow],
    responses={200: {"content": {"text/csv": {}}}},
)
def response_times(
    session: SessionDep,
    principal: CurrentUser,
    from_: Annotated[str, Query(alias="from", description="First day, YYYY-MM-DD")],
    to: Annotated[str, Query(description="Last day (inclusive), YYYY-MM-DD")],
    group_by: Literal["district", "station"] = "district",
    format: Literal["json", "csv"] = "json",
) -> list[ResponseTimeRow] | Response:
    rows = service.response_time_report(
        session,
        actor=principal,
        since=_day(from_, "from"),
        until=_day(to, "to", after=True),
        group_by=group_by,
    )
    if format == "csv":
        return PlainTextResponse(
            service.report_csv(rows),
            media_type="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="response-times_{from_}_{to}.csv"'
            },
        )
    return rows


@router.get("/kpis", response_model=list[DistrictKpi])
def kpis(runtime: RuntimeDep, session: SessionDep, principal: CurrentUser) -> list[DistrictKpi]:
    return service.district_kpis(session, actor=principal, now=runtime.clock.now())


@router.get(
    "/alerts/{alert_id}/cap",
    response_class=Response,
    responses={200: {"content": {"application/cap+xml": {}}}},
)
def alert_cap(alert_id: PathId, session: SessionDep, principal: CurrentUser) -> Response:
    """The alert as an OASIS CAP 1.2 message, for sirens, SMS gateways and partner agencies."""
    return Response(
        service.alert_cap(session, alert_id=alert_id, actor=principal),
        media_type="application/cap+xml",
    )
