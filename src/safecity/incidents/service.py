"""Incident intake and reading. The golden path: a call becomes a routed incident."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safecity.core.auth import JurisdictionIds, Perm, Principal
from safecity.core.db import publish_after_commit
from safecity.core.errors import InvalidInput, NotFound
from safecity.geo import service as geo
from safecity.incidents.categories import CATEGORIES
from safecity.incidents.models import Incident, IncidentEvent
from safecity.incidents.schemas import (
    CallAccepted,
    CallIn,
    CategoryOut,
    IncidentDetail,
    IncidentOut,
    TimelineEntry,
)


def list_categories() -> list[CategoryOut]:
    return [
        CategoryOut(code=c.code, label=c.label, priority=c.priority) for c in CATEGORIES.values()
    ]


def _check_category(code: str) -> int:
    cat = CATEGORIES.get(code)
    if cat is None:
        raise InvalidInput(f"unknown category {code!r}; one of: {', '.join(sorted(CATEGORIES))}")
    return cat.priority


def receive_call(
    session: Session, *, call: CallIn, actor: Principal, now: datetime
) -> CallAccepted:
    """Turn a helpline call into an incident routed to the station holding its location.

    Idempotent by `external_id`: a repeat returns the incident made the first time. Commits."""
    actor.require(Perm.CALLS_CREATE)
    priority = _check_category(call.category)
    if call.external_id is not None:
        existing = _by_external_id(session, call.external_id)
        if existing is not None:
            return _accepted(session, existing, duplicate=True)
    location = geo.locate_point(session, lon=call.lon, lat=call.lat)
    incident = Incident(
        external_id=call.external_id,
        source="call",
        category=call.category,
        priority=priority,
        status="routed",
        caller_number=call.caller_number,
        caller_name=call.caller_name,
        description=call.description,
        address=call.address,
        lon=call.lon,
        lat=call.lat,
        station_id=location.station_id,
        tehsil_id=location.tehsil_id,
        district_id=location.district_id,
        province_id=location.province_id,
        inside_jurisdiction=location.inside,
        received_at=now,
        routed_at=now,
        updated_at=now,
        created_by=actor.name,
    )
    session.add(incident)
    try:
        session.flush()
    except IntegrityError:
        # Another request took the same external_id in between: theirs is the incident.
        session.rollback()
        existing = _by_external_id(session, call.external_id or "")
        if existing is None:
            raise
        return _accepted(session, existing, duplicate=True)
    _append(
        session,
        incident,
        now,
        "received",
        actor.name,
        f"{call.category} call from {call.caller_number}",
    )
    station = geo.get_jurisdiction(session, jurisdiction_id=location.station_id)
    note = f"routed to {station.name}"
    if not location.inside:
        note += f" (outside every jurisdiction; nearest station, {location.distance_m:.0f} m away)"
    _append(
        session,
        incident,
        now,
        "routed",
        "system",
        note,
        {"station_id": location.station_id, "inside": location.inside},
    )
    publish_after_commit(session, "incidents.created", _event_payload(incident, station.name))
    session.commit()
    return _accepted(session, incident, duplicate=False, station_name=station.name)


def _by_external_id(session: Session, external_id: str) -> Incident | None:
    return session.scalar(select(Incident).where(Incident.external_id == external_id))


def _accepted(
    session: Session, inc: Incident, *, duplicate: bool, station_name: str | None = None
) -> CallAccepted:
    if station_name is None:
        station_name = geo.get_jurisdiction(session, jurisdiction_id=inc.station_id).name
    return CallAccepted(
        incident_id=inc.id,
        station_id=inc.station_id,
        station_name=station_name,
        district_id=inc.district_id,
        inside_jurisdiction=inc.inside_jurisdiction,
        status=inc.status,
        duplicate_of_external_id=duplicate,
    )


def _append(
    session: Session,
    inc: Incident,
    at: datetime,
    kind: str,
    actor: str,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        IncidentEvent(incident_id=inc.id, at=at, kind=kind, actor=actor, note=note, data=data or {})
    )


def _event_payload(inc: Incident, station_name: str) -> dict[str, Any]:
    return {
        "incident_id": inc.id,
        "category": inc.category,
        "priority": inc.priority,
        "status": inc.status,
        "lon": inc.lon,
        "lat": inc.lat,
        "station_id": inc.station_id,
        "station_name": station_name,
        "tehsil_id": inc.tehsil_id,
        "district_id": inc.district_id,
        "province_id": inc.province_id,
        "received_at": inc.received_at.isoformat(),
        "description": inc.description[:200],
    }


def _where(inc: Incident) -> JurisdictionIds:
    return JurisdictionIds(inc.station_id, inc.tehsil_id, inc.district_id, inc.province_id)


def get_incident(session: Session, *, incident_id: int, actor: Principal) -> IncidentDetail:
    """One incident with its timeline; 403 outside the caller's jurisdiction."""
    actor.require(Perm.INCIDENTS_READ)
    inc = session.get(Incident, incident_id)
    if inc is None:
        raise NotFound(f"incident {incident_id} does not exist")
    actor.require_covers(_where(inc), f"incident {incident_id}")
    events = session.scalars(
        select(IncidentEvent).where(IncidentEvent.incident_id == inc.id).order_by(IncidentEvent.id)
    )
    detail = IncidentDetail.model_validate(inc)
    detail.timeline = [TimelineEntry.model_validate(e) for e in events]
    return detail


def list_incidents(
    session: Session,
    *,
    actor: Principal,
    status: str | None = None,
    station_id: int | None = None,
    district_id: int | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[IncidentOut]:
    """Newest first, only those inside the caller's jurisdiction."""
    actor.require(Perm.INCIDENTS_READ)
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000")
    q = select(Incident).order_by(Incident.id.desc()).limit(limit)
    if actor.scope_level != "all":
        q = q.where(getattr(Incident, f"{actor.scope_level}_id") == actor.scope_id)
    if status is not None:
        q = q.where(Incident.status == status)
    if station_id is not None:
        q = q.where(Incident.station_id == station_id)
    if district_id is not None:
        q = q.where(Incident.district_id == district_id)
    if since is not None:
        q = q.where(Incident.received_at >= since)
    return [IncidentOut.model_validate(i) for i in session.scalars(q)]


def visible_to(actor: Principal, payload: dict[str, Any]) -> bool:
    """Whether an `incidents.*` event payload lies inside `actor`'s jurisdiction."""
    return actor.covers(
        JurisdictionIds(
            payload.get("station_id"),
            payload.get("tehsil_id"),
            payload.get("district_id"),
            payload.get("province_id"),
        )
    )
