"""Video logic: camera rules, events with snapshots (retention), camera health (and the
registry's live status), traffic counts, assignment of cameras to workers, and alerts that
become incidents. Keyword-only functions taking a `Session`; no HTTP, no UI."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from safecity.core.auth import JurisdictionIds, Principal, Role
from safecity.core.db import MAX_ROW_ID, publish_after_commit
from safecity.core.errors import Forbidden, InvalidInput, NotFound, SafeCityError
from safecity.incidents import service as incidents
from safecity.incidents.schemas import CallIn
from safecity.registry import service as registry
from safecity.registry.schemas import CameraOut, CameraUpdate
from safecity.video.models import CameraHealth, CameraRules, TrafficCount, VideoEvent
from safecity.video.schemas import (
    STORED_RULES,
    Assignment,
    CameraRulesIn,
    CameraRulesOut,
    CameraStatusOut,
    TrafficPoint,
    TrafficSeries,
    VideoEventOut,
)

#: Event kinds that are alerts whatever the rules say.
CAMERA_ALERTS = {"camera_offline", "camera_frozen", "camera_dark", "camera_tampered"}
#: Registry statuses a camera can have (health statuses map one to one).
_REGISTRY_STATUSES = {"online", "offline", "frozen", "dark", "tampered"}
#: The health status of a camera that a worker does not analyse because its stored rules
#: cannot be applied (the reason says which rule and how to fix it).
MISCONFIGURED = "misconfigured"
#: Who opens incidents from camera alerts (a machine principal: the camera gateway role).
VIDEO_ACTOR = Principal(subject="system:video", name="video analytics", role=Role.CAMERA_GATEWAY)


def snapshot_root(data_dir: Path) -> Path:
    return data_dir / "video" / "snapshots"


def live_root(data_dir: Path) -> Path:
    return data_dir / "video" / "live"


# --------------------------------------------------------------------------- rules


def get_rules(session: Session, *, camera_id: int) -> CameraRulesOut:
    registry.get_camera(session, camera_id=camera_id)  # 404 for an unknown camera
    row = session.get(CameraRules, camera_id)
    if row is None:
        return CameraRulesOut(camera_id=camera_id)
    # Stored rules, possibly saved before today's checks: read, not refused (see schemas).
    return CameraRulesOut.model_validate(
        {
            "camera_id": camera_id,
            "zones": row.zones,
            "lines": row.lines,
            "detect_fps": row.detect_fps,
            "incident_kinds": row.incident_kinds,
            "enabled": row.enabled,
            "updated_at": row.updated_at,
        },
        context=STORED_RULES,
    )


def set_rules(
    session: Session, *, camera_id: int, rules: CameraRulesIn, now: datetime
) -> CameraRulesOut:
    registry.get_camera(session, camera_id=camera_id)
    names = [z.name for z in rules.zones] + [ln.name for ln in rules.lines]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InvalidInput(f"rule names must be unique per camera; repeated: {', '.join(dup)}")
    row = session.get(CameraRules, camera_id) or CameraRules(camera_id=camera_id)
    data = rules.model_dump(mode="json")
    row.zones, row.lines = data["zones"], data["lines"]
    row.detect_fps, row.incident_kinds = rules.detect_fps, data["incident_kinds"]
    row.enabled, row.updated_at = rules.enabled, now
    session.add(row)
    session.flush()
    publish_after_commit(session, "vision.rules.changed", {"camera_id": camera_id})
    return get_rules(session, camera_id=camera_id)


# --------------------------------------------------------------------------- assignment


def assignments(
    session: Session, *, worker_index: int = 0, worker_count: int = 1
) -> list[Assignment]:
    """The cameras worker `worker_index` of `worker_count` analyses: camera id modulo the
    worker count, so adding a camera moves no other camera between workers."""
    if worker_count < 1 or not 0 <= worker_index < worker_count:
        raise InvalidInput(f"worker {worker_index} of {worker_count}: the index must be 0..count-1")
    out = []
    rules = {r.camera_id: r for r in session.scalars(select(CameraRules))}
    for cam in registry.list_cameras(session):
        if cam.id % worker_count != worker_index:
            continue
        r = rules.get(cam.id)
        if r is not None and not r.enabled:
            continue
        out.append(
            Assignment(
                camera_id=cam.id,
                code=cam.code,
                stream_url=cam.detect_url or cam.stream_url,
                record_url=cam.stream_url if cam.detect_url else None,
                site_id=cam.site_id,
                lon=cam.lon,
                lat=cam.lat,
                rules=get_rules(session, camera_id=cam.id),
            )
        )
    return out


# --------------------------------------------------------------------------- events


def _event_payload(row: VideoEvent, camera_code: str, where: JurisdictionIds) -> dict[str, Any]:
    return {
        "id": row.id,
        "camera_id": row.camera_id,
        "camera_code": camera_code,
        "site_id": row.site_id,
        # Every level: the live stream shows an event to those whose scope covers it (a
        # tehsil's SDPO included).
        "station_id": where.station_id,
        "tehsil_id": where.tehsil_id,
        "district_id": where.district_id,
        "province_id": where.province_id,
        "at": row.at.isoformat(),
        "kind": row.kind,
        "rule": row.rule,
        "class_name": row.class_name,
        "track_id": row.track_id,
        "confidence": round(row.confidence, 3),
        "box": row.box,
        "alert": row.alert,
        "direction": row.direction,
        "snapshot": row.snapshot_path is not None,
        "incident_id": row.incident_id,
    }


def write_snapshot(data_dir: Path, *, camera_id: int, at: datetime, jpeg: bytes) -> Path:
    """Write an event's JPEG under the snapshot folder of its day and camera (complete or
    not at all: written aside, then renamed); the path to store with the event."""
    day = at.astimezone(UTC).strftime("%Y-%m-%d")
    path = snapshot_root(data_dir) / day / str(camera_id) / f"{uuid.uuid4().hex}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(jpeg)
    tmp.replace(path)
    return path


def record_event(
    session: Session,
    *,
    camera: CameraOut,
    kind: str,
    at: datetime,
    data_dir: Path,
    rule: str = "",
    class_name: str = "",
    track_id: int = -1,
    confidence: float = 0.0,
    box: tuple[float, ...] | list[float] = (),
    direction: str | None = None,
    alert: bool = False,
    snapshot: bytes | None = None,
    snapshot_file: Path | None = None,
    clip_path: Path | None = None,
    data: dict[str, Any] | None = None,
) -> VideoEventOut:
    """Store an event (its JPEG on disk, the path in the row) and publish it as
    `vision.events.<kind>` after the commit. The JPEG is `snapshot`, or `snapshot_file`
    already written by `write_snapshot` (a worker writes it once, so that a store retried
    after a failed commit reuses it). Flushes; the caller commits."""
    if snapshot is not None:
        snapshot_file = write_snapshot(data_dir, camera_id=camera.id, at=at, jpeg=snapshot)
    snap_path = str(snapshot_file) if snapshot_file is not None else None
    row = VideoEvent(
        camera_id=camera.id,
        site_id=camera.site_id,
        station_id=camera.station_id,
        district_id=camera.district_id,
        at=at,
        kind=kind,
        rule=rule,
        class_name=class_name,
        track_id=track_id,
        confidence=float(confidence),
        box=[round(float(v), 1) for v in box],
        direction=direction,
        alert=alert or kind in CAMERA_ALERTS,
        snapshot_path=snap_path,
        clip_path=str(clip_path) if clip_path is not None else None,
        data=data or {},
    )
    session.add(row)
    session.flush()
    where = registry.camera_jurisdiction(session, camera=camera)
    publish_after_commit(session, f"vision.events.{kind}", _event_payload(row, camera.code, where))
    return VideoEventOut.model_validate(row)


#: A camera alert's call carries its event as external id `video-event-ID`.
VIDEO_EVENT_CALL_PREFIX = "video-event-"


def event_id_of_call(external_id: str | None) -> int | None:
    """The video event a call was raised for (None for any other call)."""
    if external_id and external_id.startswith(VIDEO_EVENT_CALL_PREFIX):
        rest = external_id[len(VIDEO_EVENT_CALL_PREFIX) :]
        return int(rest) if rest.isdigit() else None
    return None


#: The containers a clip is written in (MP4, or MPEG-TS where the codec does not fit MP4).
CLIP_MEDIA_TYPES = {".mp4": "video/mp4", ".ts": "video/mp2t"}


def clip_files(clip_path: str, *, partial: bool = False) -> list[Path]:
    """The files an event's clip may be, one per container: the worker stores the MP4
    name, and the recorder falls back to MPEG-TS where the codec does not fit MP4. The
    recorder writes under a hidden name and renames the clip into place once complete, so
    these names only ever hold whole clips; with `partial`, the hidden names too (what a
    crash in the middle of writing leaves, for the purge: named as in
    `safecity.vision.snapshot.partial_path`, not imported here, which would load PyAV)."""
    whole = [Path(clip_path).with_suffix(suffix) for suffix in CLIP_MEDIA_TYPES]
    if not partial:
        return whole
    return whole + [p.with_name(f".{p.name}.part") for p in whole]


def clip_file(event: VideoEventOut) -> tuple[Path, str] | None:
    """The event's clip on disk and its media type; None when it has none (not an alert),
    it is still being written, or it is past retention."""
    if not event.clip_path:
        return None
    for p in clip_files(event.clip_path):
        if p.is_file():
            return p, CLIP_MEDIA_TYPES[p.suffix]
    return None


def list_events(
    session: Session,
    *,
    camera_id: int | None = None,
    site_id: int | None = None,
    kind: str | None = None,
    alerts_only: bool = False,
    since: datetime | None = None,
    limit: int = 100,
    actor: Principal | None = None,
) -> list[VideoEventOut]:
    """The newest events first; with `actor`, only those of cameras it may see. A naive
    `since` is taken as UTC."""
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10000")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    q = select(VideoEvent).order_by(VideoEvent.id.desc()).limit(limit)
    visible = registry.cameras_visible_to(session, actor=actor) if actor is not None else None
    if visible is not None:
        q = q.where(VideoEvent.camera_id.in_(visible))
    if camera_id is not None:
        q = q.where(VideoEvent.camera_id == camera_id)
    if site_id is not None:
        q = q.where(VideoEvent.site_id == site_id)
    if kind is not None:
        q = q.where(VideoEvent.kind == kind)
    if alerts_only:
        q = q.where(VideoEvent.alert.is_(True))
    if since is not None:
        q = q.where(VideoEvent.at >= since)
    return [VideoEventOut.model_validate(r) for r in session.scalars(q)]


def get_event(session: Session, *, event_id: int, actor: Principal | None = None) -> VideoEventOut:
    """One event; with `actor`, Forbidden when its camera is outside the actor's
    jurisdiction."""
    # An id past the column's range names no event (the database would refuse the query).
    row = session.get(VideoEvent, event_id) if 1 <= event_id <= MAX_ROW_ID else None
    if row is None:
        raise NotFound(f"video event {event_id} does not exist")
    if actor is not None:
        visible = registry.cameras_visible_to(session, actor=actor)
        if visible is not None and row.camera_id not in visible:
            raise Forbidden(
                f"video event {event_id} is of a camera outside your jurisdiction "
                f"({actor.scope_level} scope)"
            )
    return VideoEventOut.model_validate(row)


def set_clip(session: Session, *, event_id: int, path: Path) -> None:
    row = session.get(VideoEvent, event_id)
    if row is not None:
        row.clip_path = str(path)


def purge_media(session: Session, *, older_than: datetime) -> int:
    """Delete snapshot and clip files of events before `older_than` (the events stay, without
    their pictures): a clip in whichever container it was written (`clip_files`). A file
    already gone (another worker's purge, removed by hand) is no error. Returns how many
    files were removed. Flushes."""
    removed = 0
    q = select(VideoEvent).where(
        VideoEvent.at < older_than,
        (VideoEvent.snapshot_path.is_not(None)) | (VideoEvent.clip_path.is_not(None)),
    )
    for row in session.scalars(q):
        files = [Path(row.snapshot_path)] if row.snapshot_path else []
        files += clip_files(row.clip_path, partial=True) if row.clip_path else []
        for path in files:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed += 1
        row.snapshot_path = row.clip_path = None
    session.flush()
    return removed


# --------------------------------------------------------------------------- alerts


def open_incident(
    session: Session, *, event_id: int, now: datetime, actor: Principal = VIDEO_ACTOR
) -> int | None:
    """Open (or link, when it duplicates an open one nearby) an incident for an alert whose
    kind the camera's rules name in `incident_kinds`; routed like a call, at the camera.
    Returns the incident id, or None when this kind does not make incidents. Commits."""
    row = session.get(VideoEvent, event_id)
    if row is None:
        raise NotFound(f"video event {event_id} does not exist")
    if row.incident_id is not None:
        return row.incident_id
    rules = get_rules(session, camera_id=row.camera_id)
    if not row.alert or row.kind not in rules.incident_kinds:
        return None
    cam = registry.get_camera(session, camera_id=row.camera_id)
    what = f"{row.class_name} " if row.class_name else ""
    rule = f" '{row.rule}'" if row.rule else ""
    call = CallIn(
        caller_number="000",
        caller_name=f"camera {cam.code}",
        lat=cam.lat,
        lon=cam.lon,
        category="camera_alert",
        description=f"Camera {cam.code} ({cam.name}): {what}{row.kind.replace('_', ' ')}"
        f"{rule} at {row.at.isoformat(timespec='seconds')}; video event {row.id}",
        external_id=f"{VIDEO_EVENT_CALL_PREFIX}{row.id}",
    )
    try:
        accepted = incidents.receive_call(session, call=call, actor=actor, now=now, source="camera")
    except SafeCityError:
        session.rollback()
        raise
    row = session.get(VideoEvent, event_id)
    assert row is not None
    row.incident_id = accepted.incident_id
    session.commit()
    return accepted.incident_id


# --------------------------------------------------------------------------- health


def update_health(
    session: Session,
    *,
    camera_id: int,
    status: str,
    reason: str,
    fps: float,
    last_frame_at: datetime | None,
    worker: str,
    now: datetime,
) -> None:
    """Record a camera's live status; a change of status also updates the registry's camera
    status and is published as `vision.camera.<status>`. Flushes."""
    row = session.get(CameraHealth, camera_id)
    previous = row.status if row is not None else "unknown"
    if row is None:
        row = CameraHealth(camera_id=camera_id)
        session.add(row)
    row.status, row.reason, row.fps = status, reason[:256], round(float(fps), 2)
    row.last_frame_at, row.worker, row.updated_at = last_frame_at, worker, now
    session.flush()
    if status != previous and status in _REGISTRY_STATUSES:
        registry.update_camera(
            session,
            camera_id=camera_id,
            now=now,
            update=CameraUpdate.model_validate({"status": status}),
        )
        publish_after_commit(
            session,
            f"vision.camera.{status}",
            {
                "camera_id": camera_id,
                "status": status,
                "previous": previous,
                "reason": reason,
                "at": now.isoformat(),
            },
        )


def touch_health(
    session: Session, *, camera_id: int, fps: float, last_frame_at: datetime | None, now: datetime
) -> None:
    """Refresh fps and last frame time without a status change (no event). Flushes."""
    row = session.get(CameraHealth, camera_id)
    if row is not None:
        row.fps, row.last_frame_at, row.updated_at = round(float(fps), 2), last_frame_at, now


def camera_statuses(
    session: Session, *, site_id: int | None = None, actor: Principal | None = None
) -> list[CameraStatusOut]:
    """Each camera's health; with `actor`, of the cameras it may see."""
    health = {h.camera_id: h for h in session.scalars(select(CameraHealth))}
    out = []
    for cam in registry.list_cameras(session, site_id=site_id, actor=actor):
        h = health.get(cam.id)
        out.append(
            CameraStatusOut(
                camera_id=cam.id,
                code=cam.code,
                name=cam.name,
                site_id=cam.site_id,
                status=h.status if h else cam.status,
                reason=h.reason if h else "",
                fps=h.fps if h else 0.0,
                last_frame_at=h.last_frame_at if h else None,
                worker=h.worker if h else "",
            )
        )
    return out


# --------------------------------------------------------------------------- traffic


def record_counts(
    session: Session,
    *,
    camera: CameraOut,
    line: str,
    minute: datetime,
    counts: dict[str, int],
    mean_speed_px_s: float,
) -> None:
    """Add counts to one line's minute (a worker stores a running minute in parts, every
    few seconds, and a restarted worker adds to what its predecessor stored). Flushes."""
    row = session.scalar(
        select(TrafficCount).where(
            TrafficCount.camera_id == camera.id,
            TrafficCount.line == line,
            TrafficCount.minute == minute,
        )
    )
    if row is None:
        row = TrafficCount(
            camera_id=camera.id,
            site_id=camera.site_id,
            line=line,
            minute=minute,
            counts={},
            total=0,
            mean_speed_px_s=0.0,
        )
        session.add(row)
    merged = dict(row.counts)
    for k, v in counts.items():
        merged[k] = merged.get(k, 0) + int(v)
    n_old, n_new = row.total, sum(counts.values())
    row.counts = merged
    row.total = n_old + n_new
    if row.total:
        row.mean_speed_px_s = (row.mean_speed_px_s * n_old + mean_speed_px_s * n_new) / row.total
    session.flush()
    publish_after_commit(
        session,
        "vision.traffic.counts",
        {
            "camera_id": camera.id,
            "site_id": camera.site_id,
            "line": line,
            "minute": minute.isoformat(),
            "counts": counts,
        },
    )


def traffic(
    session: Session,
    *,
    camera_id: int | None = None,
    site_id: int | None = None,
    since: datetime,
    until: datetime | None = None,
    line: str | None = None,
    actor: Principal | None = None,
) -> TrafficSeries:
    """Counts per minute for a camera or a whole site: of the counting lines named `line`,
    or all lines added up; with `actor`, of the cameras it may see (Forbidden for a camera
    outside its jurisdiction)."""
    if (camera_id is None) == (site_id is None):
        raise InvalidInput("give exactly one of camera_id or site_id")
    q = select(TrafficCount).where(TrafficCount.minute >= since).order_by(TrafficCount.minute)
    if actor is not None:
        if camera_id is not None:
            registry.visible_camera(session, camera_id=camera_id, actor=actor)
        visible = registry.cameras_visible_to(session, actor=actor)
        if visible is not None:
            q = q.where(TrafficCount.camera_id.in_(visible))
    if until is not None:
        q = q.where(TrafficCount.minute < until)
    if line is not None:
        q = q.where(TrafficCount.line == line)
    q = (
        q.where(TrafficCount.camera_id == camera_id)
        if camera_id is not None
        else q.where(TrafficCount.site_id == site_id)
    )
    per: dict[datetime, TrafficPoint] = {}
    for r in session.scalars(q):
        p = per.setdefault(
            r.minute, TrafficPoint(minute=r.minute, counts={}, total=0, mean_speed_px_s=0.0)
        )
        n = p.total + r.total
        if n:
            p.mean_speed_px_s = (p.mean_speed_px_s * p.total + r.mean_speed_px_s * r.total) / n
        p.total = n
        for k, v in r.counts.items():
            p.counts[k] = p.counts.get(k, 0) + v
    return TrafficSeries(camera_id=camera_id, site_id=site_id, points=list(per.values()))


def counts(session: Session) -> dict[str, int]:
    return {
        "video_events": int(session.scalar(select(func.count()).select_from(VideoEvent)) or 0),
        "video_alerts": int(
            session.scalar(
                select(func.count()).select_from(VideoEvent).where(VideoEvent.alert.is_(True))
            )
            or 0
        ),
    }


def delete_events_before(session: Session, *, before: datetime) -> int:
    """Drop event rows older than `before` (after their media were purged). Flushes."""
    res = session.execute(delete(VideoEvent).where(VideoEvent.at < before))
    session.flush()
    return int(getattr(res, "rowcount", 0) or 0)


def retention_cutoff(now: datetime, days: float) -> datetime:
    return now - timedelta(days=days)
