"""Video routes: events (with snapshot and clip), camera status, live pictures, rules and
traffic counts. Each caller sees the cameras of its jurisdiction only (see
`registry.service.cameras_visible_to`). Ids are bounded to the database's id range (422
naming the parameter, not a failed query); naive times are taken as UTC."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from safecity.core.auth import Perm
from safecity.core.deps import CurrentUser, PathId, QueryId, RuntimeDep, SessionDep, requires
from safecity.core.errors import NotFound
from safecity.registry import service as registry
from safecity.video import service
from safecity.video.schemas import (
    CameraRulesIn,
    CameraRulesOut,
    CameraStatusOut,
    TrafficSeries,
    VideoEventOut,
)

router = APIRouter(prefix="/api/v1/video", tags=["video"])
READ = [requires(Perm.REGISTRY_READ)]
WRITE = [requires(Perm.REGISTRY_WRITE)]


@router.get("/events", response_model=list[VideoEventOut], dependencies=READ)
def events(
    session: SessionDep,
    actor: CurrentUser,
    camera_id: QueryId = None,
    site_id: QueryId = None,
    kind: str | None = None,
    alerts_only: bool = False,
    since: Annotated[
        datetime | None,
        Query(description="Events at or after this time; without a time zone it is UTC"),
    ] = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> list[VideoEventOut]:
    return service.list_events(
        session,
        camera_id=camera_id,
        site_id=site_id,
        kind=kind,
        alerts_only=alerts_only,
        since=since,
        limit=limit,
        actor=actor,
    )


@router.get("/events/{event_id}", response_model=VideoEventOut, dependencies=READ)
def event(event_id: PathId, session: SessionDep, actor: CurrentUser) -> VideoEventOut:
    return service.get_event(session, event_id=event_id, actor=actor)


@router.get(
    "/events/{event_id}/snapshot",
    dependencies=READ,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def snapshot(event_id: PathId, session: SessionDep, actor: CurrentUser) -> FileResponse:
    ev = service.get_event(session, event_id=event_id, actor=actor)
    if not ev.snapshot_path or not Path(ev.snapshot_path).is_file():
        raise NotFound(f"video event {event_id} has no snapshot (none taken, or past retention)")
    return FileResponse(ev.snapshot_path, media_type="image/jpeg")


@router.get("/events/{event_id}/clip", dependencies=READ)
def clip(event_id: PathId, session: SessionDep, actor: CurrentUser) -> FileResponse:
    found = service.clip_file(service.get_event(session, event_id=event_id, actor=actor))
    if found is not None:
        return FileResponse(found[0], media_type=found[1])
    raise NotFound(
        f"video event {event_id} has no clip (not an alert, the clip is still "
        "being written, or it is past retention)"
    )


@router.get("/cameras/status", response_model=list[CameraStatusOut], dependencies=READ)
def statuses(
    session: SessionDep, actor: CurrentUser, site_id: QueryId = None
) -> list[CameraStatusOut]:
    return service.camera_statuses(session, site_id=site_id, actor=actor)


@router.get(
    "/cameras/{camera_id}/live.jpg",
    dependencies=READ,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def live(
    camera_id: PathId, session: SessionDep, runtime: RuntimeDep, actor: CurrentUser
) -> Response:
    registry.visible_camera(session, camera_id=camera_id, actor=actor)
    p = service.live_root(runtime.settings.data_dir) / f"{camera_id}.jpg"
    if not p.is_file():
        raise NotFound(
            f"camera {camera_id} has no live picture yet: is a `safecity worker` analysing it?"
        )
    return Response(p.read_bytes(), media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/cameras/{camera_id}/rules", response_model=CameraRulesOut, dependencies=READ)
def get_rules(camera_id: PathId, session: SessionDep, actor: CurrentUser) -> CameraRulesOut:
    registry.visible_camera(session, camera_id=camera_id, actor=actor)
    return service.get_rules(session, camera_id=camera_id)


@router.put("/cameras/{camera_id}/rules", response_model=CameraRulesOut, dependencies=WRITE)
def put_rules(
    camera_id: PathId,
    body: CameraRulesIn,
    session: SessionDep,
    runtime: RuntimeDep,
    actor: CurrentUser,
) -> CameraRulesOut:
    registry.visible_camera(session, camera_id=camera_id, actor=actor)
    out = service.set_rules(session, camera_id=camera_id, rules=body, now=runtime.clock.now())
    session.commit()
    return out


@router.get("/traffic", response_model=TrafficSeries, dependencies=READ)
def traffic(
    session: SessionDep,
    runtime: RuntimeDep,
    actor: CurrentUser,
    camera_id: QueryId = None,
    site_id: QueryId = None,
    minutes: int = Query(60, ge=1, le=7 * 24 * 60),
    line: str | None = Query(
        None, min_length=1, max_length=64, description="only the counting lines of this name"
    ),
) -> TrafficSeries:
    since = runtime.clock.now() - timedelta(minutes=minutes)
    return service.traffic(
        session, camera_id=camera_id, site_id=site_id, since=since, line=line, actor=actor
    )
