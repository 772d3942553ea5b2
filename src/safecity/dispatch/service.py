"""Dispatch logic: recommend and send units, follow them (AVL and status steps), watch
every open incident against its response-time targets and escalate through four levels,
take panic alerts, and report response times. No HTTP here."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import numpy as np
from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safecity.core.auth import JurisdictionIds, Perm, Principal, Role
from safecity.core.bulk import BulkStatement
from safecity.core.db import MAX_ROW_ID, publish_after_commit
from safecity.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    SafeCityError,
    Unauthenticated,
)
from safecity.dispatch.models import Assignment, PanicDevice, ResponseAlert, UnitPosition
from safecity.dispatch.schemas import (
    AlertOut,
    AssignmentOut,
    DistrictKpi,
    PanicAccepted,
    PanicDeviceCreated,
    PanicDeviceIn,
    PanicIn,
    Ping,
    Recommendation,
    ResponseTimeRow,
)
from safecity.geo import service as geo
from safecity.incidents import service as incidents
from safecity.incidents.schemas import CallIn, IncidentOut
from safecity.registry import service as registry
from safecity.registry.schemas import UnitOut
from safecity.registry.schemas import UnitPosition as UnitPlace

#: The system itself, for steps nobody typed (timers, panic intake).
SYSTEM = Principal(subject="system:dispatch", name="system", role=Role.ADMIN)
_M_PER_DEG = 111_195.0

# --------------------------------------------------------------------------- travel time


class Placed(Protocol):
    """A unit as the estimator sees it."""

    @property
    def kind(self) -> str: ...
    @property
    def lon(self) -> float: ...
    @property
    def lat(self) -> float: ...


class TravelTimeEstimator(Protocol):
    """Seconds for a unit to reach a point. The straight-line estimate below is the
    default; a road-network router (OSRM, Valhalla, pgRouting) can replace it."""

    def eta_s(self, unit: Placed, lon: float, lat: float) -> tuple[float, float]:
        """(distance in metres, travel time in seconds)."""
        ...


@dataclass(frozen=True)
class StraightLineEstimator:
    #: Roads are longer than the crow flies; 1.4 is typical of a dense South Asian city.
    road_factor: float = 1.4
    #: Average speeds in city traffic, km/h.
    speed_kmh: tuple[tuple[str, float], ...] = (
        ("patrol_car", 30.0),
        ("motorcycle", 35.0),
        ("foot", 5.0),
    )

    def eta_s(self, unit: Placed, lon: float, lat: float) -> tuple[float, float]:
        k = math.cos(math.radians((unit.lat + lat) / 2))
        d = math.hypot((unit.lon - lon) * k, unit.lat - lat) * _M_PER_DEG
        speed = dict(self.speed_kmh).get(unit.kind, 25.0) / 3.6
        return d, d * self.road_factor / speed


ESTIMATOR: TravelTimeEstimator = StraightLineEstimator()


# --------------------------------------------------------------------------- units


def _incident_scoped(session: Session, incident_id: int, actor: Principal) -> IncidentOut:
    return incidents.get_incident(session, incident_id=incident_id, actor=actor)


def recommend_units(
    session: Session, *, incident_id: int, actor: Principal, limit: int = 5
) -> list[Recommendation]:
    """Nearest available units by estimated travel time; the incident's own station first
    among equals."""
    inc = _incident_scoped(session, incident_id, actor)
    return _recommend(session, inc.lon, inc.lat, inc.station_id, limit)


#: Units considered by the travel-time estimator: the nearest this many by straight line
#: (a road router is costly per unit; the nearest few dozen always hold the fastest).
SHORTLIST = 40


def _nearest_available(session: Session, lon: float, lat: float, n: int) -> list[UnitPlace]:
    """The nearest `n` available units by straight line, nearest first. Ranks plain arrays
    of every unit's position (thousands) and reads full rows only for the `n` kept."""
    ids, lons, lats = registry.unit_points(session, status="available")
    if len(ids) == 0:
        return []
    k = max(math.cos(math.radians(lat)), 0.01)
    d2 = ((lons - lon) * k) ** 2 + (lats - lat) ** 2
    near = ids[np.argsort(d2, kind="stable")[:n]].tolist()
    rows = {u.id: u for u in registry.unit_positions(session, status="available", ids=near)}
    return [rows[i] for i in near if i in rows]


def _recommend(
    session: Session, lon: float, lat: float, station_id: int, limit: int
) -> list[Recommendation]:
    recs = []
    for u in _nearest_available(session, lon, lat, max(SHORTLIST, limit)):
        dist, eta = ESTIMATOR.eta_s(u, lon, lat)
        recs.append(
            Recommendation(
                unit_id=u.id,
                callsign=u.callsign,
                kind=u.kind,
                status=u.status,
                home_station_id=u.home_station_id,
                distance_m=round(dist, 1),
                eta_s=round(eta, 1),
                same_station=u.home_station_id == station_id,
            )
        )
    recs.sort(key=lambda r: (r.eta_s, not r.same_station))
    return recs[:limit]


#: Incident statuses units can be sent to (or go on to from a queued job).
_SENDABLE = ("routed", "acknowledged", "dispatched", "en_route", "on_scene")


def dispatch_units(
    session: Session,
    *,
    incident_id: int,
    unit_ids: Sequence[int],
    actor: Principal,
    now: datetime,
    note: str = "",
) -> list[AssignmentOut]:
    """Send units to an incident. An available unit goes at once; a busy one gets the job
    queued (stacked) for when it clears. The first unit sent marks the incident dispatched.
    Flushes; the caller commits."""
    actor.require(Perm.INCIDENTS_UPDATE)
    inc = _incident_scoped(session, incident_id, actor)
    if inc.status not in _SENDABLE:
        raise Conflict(f"incident {incident_id} is {inc.status}; units can no longer be sent")
    if len(set(unit_ids)) != len(unit_ids):
        raise InvalidInput("a unit is listed twice")
    out = []
    for unit_id in unit_ids:
        unit = registry.get_unit(session, unit_id=unit_id)
        if unit.status == "off_duty":
            raise Conflict(f"unit {unit.callsign} is off duty")
        existing = session.scalar(
            select(Assignment).where(
                Assignment.incident_id == incident_id,
                Assignment.unit_id == unit_id,
                Assignment.status.in_(["queued", "assigned", "en_route", "on_scene"]),
            )
        )
        if existing is not None:
            raise Conflict(f"unit {unit.callsign} is already assigned to incident {incident_id}")
        busy = _active_assignment(session, unit_id) is not None or unit.status != "available"
        _dist, eta = ESTIMATOR.eta_s(unit, inc.lon, inc.lat)
        a = Assignment(
            incident_id=incident_id,
            unit_id=unit_id,
            status="queued" if busy else "assigned",
            assigned_at=now,
            activated_at=None if busy else now,
            assigned_by=actor.name,
            eta_s=round(eta, 1),
        )
        session.add(a)
        session.flush()
        if not busy:
            registry.set_unit_status(session, unit_id=unit_id, status="dispatched", now=now)
        incidents.add_note(
            session,
            incident_id=incident_id,
            actor=actor,
            now=now,
            kind="unit_queued" if busy else "unit_dispatched",
            note=f"{unit.callsign} {'queued (busy)' if busy else 'dispatched'}, "
            f"ETA {eta / 60:.0f} min" + (f": {note}" if note else ""),
            data={"unit_id": unit_id, "assignment_id": a.id, "eta_s": round(eta, 1)},
        )
        out.append(AssignmentOut.model_validate(a))
    if inc.status in ("routed", "acknowledged") and any(a.status == "assigned" for a in out):
        incidents.change_status(
            session, incident_id=incident_id, status="dispatched", actor=actor, now=now, note=note
        )
    publish_after_commit(
        session,
        "dispatch.assignments",
        {
            "incident_id": incident_id,
            "station_id": inc.station_id,
            "tehsil_id": inc.tehsil_id,
            "district_id": inc.district_id,
            "province_id": inc.province_id,
            "unit_ids": list(unit_ids),
        },
    )
    return out


def _active_assignment(session: Session, unit_id: int) -> Assignment | None:
    return session.scalar(
        select(Assignment)
        .where(
            Assignment.unit_id == unit_id,
            Assignment.status.in_(["assigned", "en_route", "on_scene"]),
        )
        .order_by(Assignment.id)
    )


_STEP_ORDER = {"assigned": 0, "en_route": 1, "on_scene": 2, "cleared": 3}


def unit_step(
    session: Session,
    *,
    unit_id: int,
    step: str,
    actor: Principal,
    now: datetime,
    incident_id: int | None = None,
    disposition: str | None = None,
    note: str = "",
) -> AssignmentOut:
    """A unit reports en route, on scene or cleared (from the field app or the board). The
    incident follows: first unit en route / on scene moves it; the last unit clearing with a
    disposition resolves it. Flushes."""
    actor.require(Perm.INCIDENTS_UPDATE)
    if step not in ("en_route", "on_scene", "cleared"):
        raise InvalidInput("status must be en_route, on_scene or cleared")
    unit = registry.get_unit(session, unit_id=unit_id)
    q = select(Assignment).where(
        Assignment.unit_id == unit_id, Assignment.status.in_(["assigned", "en_route", "on_scene"])
    )
    if incident_id is not None:
        q = q.where(Assignment.incident_id == incident_id)
    a = session.scalar(q.order_by(Assignment.id))
    if a is None:
        raise Conflict(
            f"unit {unit.callsign} has no active assignment"
            + (f" on incident {incident_id}" if incident_id else "")
        )
    if _STEP_ORDER[step] <= _STEP_ORDER[a.status]:
        raise Conflict(
            f"unit {unit.callsign} is already {a.status} on incident "
            f"{a.incident_id}; it cannot go back to {step}"
        )
    actor = _crew_or_scoped(session, actor, unit_id=unit_id, incident_id=a.incident_id)
    inc = _incident_scoped(session, a.incident_id, actor)
    setattr(a, f"{step}_at" if step != "cleared" else "cleared_at", now)
    a.status = step
    incidents.add_note(
        session,
        incident_id=a.incident_id,
        actor=actor,
        now=now,
        kind=f"unit_{step}",
        note=f"{unit.callsign} {step.replace('_', ' ')}" + (f": {note}" if note else ""),
        data={"unit_id": unit_id},
    )
    if step == "en_route":
        registry.set_unit_status(session, unit_id=unit_id, status="en_route", now=now)
        if inc.status in ("dispatched",):
            incidents.change_status(
                session, incident_id=inc.incident_id, status="en_route", actor=actor, now=now
            )
    elif step == "on_scene":
        registry.set_unit_status(session, unit_id=unit_id, status="on_scene", now=now)
        if inc.status in ("dispatched", "en_route"):
            incidents.change_status(
                session, incident_id=inc.incident_id, status="on_scene", actor=actor, now=now
            )
    else:
        _clear(session, a, unit, actor, now, disposition, inc)
    session.flush()
    return AssignmentOut.model_validate(a)


def _crew_or_scoped(
    session: Session, actor: Principal, *, unit_id: int, incident_id: int
) -> Principal:
    """A unit's own crew may report on the job it was sent to, even in another station's
    area (mutual aid); anyone else needs the incident inside their jurisdiction."""
    inc = incidents.incident_for_system(session, incident_id=incident_id)
    where = JurisdictionIds(inc.station_id, inc.tehsil_id, inc.district_id, inc.province_id)
    if actor.covers(where):
        return actor
    crew_unit = registry.unit_for_username(session, username=actor.name)
    if crew_unit is not None and crew_unit.id == unit_id:
        return Principal(
            subject=actor.subject,
            name=actor.name,
            role=actor.role,
            scope_level="all",
            user_id=actor.user_id,
        )
    return actor  # the scoped read below refuses it with a clear 403


def _clear(
    session: Session,
    a: Assignment,
    unit: UnitOut,
    actor: Principal,
    now: datetime,
    disposition: str | None,
    inc: IncidentOut,
) -> None:
    others = session.scalar(
        select(Assignment.id).where(
            Assignment.incident_id == a.incident_id,
            Assignment.id != a.id,
            Assignment.status.in_(["assigned", "en_route", "on_scene"]),
        )
    )
    if others is None and disposition and inc.status == "on_scene":
        incidents.change_status(
            session,
            incident_id=inc.incident_id,
            status="resolved",
            actor=actor,
            now=now,
            disposition=disposition,
        )
    # The next queued job whose incident still wants units: one cancelled, merged or
    # transferred while it waited is dropped (cleared unstarted), or the unit would be sent
    # to an incident nobody follows any more and not be free for the next call.
    nxt = None
    for queued in session.scalars(
        select(Assignment)
        .where(Assignment.unit_id == unit.id, Assignment.status == "queued")
        .order_by(Assignment.id)
    ).all():
        if incidents.incident_for_system(session, incident_id=queued.incident_id).status in (
            _SENDABLE
        ):
            nxt = queued
            break
        queued.status, queued.cleared_at = "cleared", now
    if nxt is None:
        registry.set_unit_status(session, unit_id=unit.id, status="available", now=now)
        return
    nxt.status, nxt.activated_at = "assigned", now
    registry.set_unit_status(session, unit_id=unit.id, status="dispatched", now=now)
    incidents.add_note(
        session,
        incident_id=nxt.incident_id,
        actor=SYSTEM,
        now=now,
        kind="unit_dispatched",
        note=f"{unit.callsign} cleared its last job and is now on its way",
        data={"unit_id": unit.id, "assignment_id": nxt.id},
    )
    queued_inc = incidents.incident_for_system(session, incident_id=nxt.incident_id)
    if queued_inc.status in ("routed", "acknowledged"):
        incidents.change_status(
            session, incident_id=nxt.incident_id, status="dispatched", actor=SYSTEM, now=now
        )


#: Incident statuses that want no unit any more: units still sent there are released.
ENDED_WITHOUT_UNITS = ("cancelled", "merged", "transferred")


def release_units_of_ended_incidents(
    session: Session, *, now: datetime, incident_ids: Iterable[int] | None = None
) -> int:
    """Units still sent to an incident that was cancelled (or merged, or handed to another
    agency) are released: each such job is cleared with a note on the incident, and its unit
    goes on to its next queued job or becomes available. Without it a cancelled incident
    kept its units busy until each crew cleared by hand, and the board offered other units
    for the next call. `incident_ids`: the incidents to look at (None: every incident a unit
    is sent to). Flushes; returns how many jobs were cleared."""
    q = select(Assignment).where(Assignment.status.in_(["assigned", "en_route", "on_scene"]))
    if incident_ids is not None:
        ids = sorted(set(incident_ids))
        if not ids:
            return 0
        q = q.where(Assignment.incident_id.in_(ids))
    seen: dict[int, IncidentOut] = {}
    released = 0
    for a in session.scalars(q.order_by(Assignment.id)).all():
        inc = seen.get(a.incident_id)
        if inc is None:
            inc = seen[a.incident_id] = incidents.incident_for_system(
                session, incident_id=a.incident_id
            )
        if inc.status not in ENDED_WITHOUT_UNITS:
            continue
        unit = registry.get_unit(session, unit_id=a.unit_id)
        a.status, a.cleared_at = "cleared", now
        incidents.add_note(
            session,
            incident_id=a.incident_id,
            actor=SYSTEM,
            now=now,
            kind="unit_released",
            note=f"{unit.callsign} released: the incident was {inc.status}",
            data={"unit_id": unit.id},
        )
        _clear(session, a, unit, SYSTEM, now, None, inc)
        released += 1
    session.flush()
    return released


def assignments_of(
    session: Session,
    *,
    incident_id: int | None = None,
    unit_id: int | None = None,
    active_only: bool = False,
) -> list[AssignmentOut]:
    q = select(Assignment).order_by(Assignment.id)
    if incident_id is not None:
        q = q.where(Assignment.incident_id == incident_id)
    if unit_id is not None:
        q = q.where(Assignment.unit_id == unit_id)
    if active_only:
        q = q.where(Assignment.status.in_(["queued", "assigned", "en_route", "on_scene"]))
    return [AssignmentOut.model_validate(a) for a in session.scalars(q)]


#: The most fixes one batch may hold.
MAX_PINGS = 10_000

#: AVL history rows: thousands a second, so without SQLAlchemy's per-row parameter work
#: (see `core.bulk`).
_POSITIONS = cast(Table, UnitPosition.__table__)
_KEEP_POSITIONS = BulkStatement(
    insert(_POSITIONS)
    .inline()  # no primary keys fetched back (RETURNING on PostgreSQL)
    .values(
        unit_id=bindparam("unit_id"),
        at=bindparam("at"),
        lon=bindparam("lon"),
        lat=bindparam("lat"),
        speed_kmh=bindparam("speed_kmh"),
    ),
    names=("unit_id", "at", "lon", "lat", "speed_kmh"),
)

_Row = tuple[int, float, float, datetime]  # unit_id, lon, lat, at


@dataclass(frozen=True)
class PingBatch:
    """One posted batch of GPS fixes waiting to be stored, with the server time it came."""

    pings: Sequence[Ping]
    now: datetime


#: The oldest fix taken: a gateway catching up after an outage sends hours-old fixes; one
#: dated further back comes from a broken clock (a receiver's GPS week-number rollover
#: dates its fixes 19.6 years back) and would move the unit's live position back to it.
MAX_FIX_AGE = timedelta(days=7)


def _checked(pings: Sequence[Ping], now: datetime) -> list[_Row]:
    """The batch's rows, or its refusal: every check that needs no database."""
    if len(pings) > MAX_PINGS:
        raise InvalidInput(f"at most {MAX_PINGS} positions per batch")
    rows = [(p.unit_id, p.lon, p.lat, p.at or now) for p in pings]
    latest_ok = now + timedelta(minutes=5)
    earliest_ok = now - MAX_FIX_AGE
    for _, _, _, at in rows:
        if at.tzinfo is None:
            raise InvalidInput("position time must carry a time zone (e.g. 2026-11-23T10:00Z)")
        if at > latest_ok:
            raise InvalidInput(f"position time {at.isoformat()} is in the future")
        if at < earliest_ok:
            raise InvalidInput(
                f"position time {at.isoformat()} is more than {MAX_FIX_AGE.days} days old;"
                " check the device's clock"
            )
    return rows


def _store(session: Session, pings: Sequence[Ping], rows: list[_Row]) -> int:
    registry.record_positions(session, positions=rows)
    _KEEP_POSITIONS.execute(
        session.connection(),
        {
            "unit_id": [r[0] for r in rows],
            "at": [r[3] for r in rows],
            "lon": [r[1] for r in rows],
            "lat": [r[2] for r in rows],
            "speed_kmh": [p.speed_kmh for p in pings],
        },
    )
    return len(rows)


def ingest_pings(session: Session, *, pings: Sequence[Ping], now: datetime) -> int:
    """GPS fixes from units (one or a batch): the units' positions are updated and every fix
    is kept as AVL history. Flushes; the caller commits."""
    if not pings:
        return 0
    return _store(session, pings, _checked(pings, now))


def ingest_ping_batches(
    session: Session, *, batches: Sequence[PingBatch]
) -> list[int | SafeCityError]:
    """Many posted batches in one transaction (the AVL kind of the group-commit writer): each
    is stored whole or refused whole, on its own, with `ingest_pings`' rules. Every check is
    made before anything is written (the units of all the batches with one lookup), so a
    refused batch leaves nothing behind in the shared transaction. Flushes; the caller
    commits."""
    results: list[int | SafeCityError] = [0] * len(batches)
    checked: list[tuple[int, list[_Row]]] = []
    for i, batch in enumerate(batches):
        if not batch.pings:
            continue
        try:
            checked.append((i, _checked(batch.pings, batch.now)))
        except SafeCityError as exc:
            results[i] = exc
    missing = registry.missing_units(session, unit_ids={r[0] for _, rows in checked for r in rows})
    for i, rows in checked:
        if missing:
            gone = missing.intersection(r[0] for r in rows)
            if gone:
                results[i] = registry.unknown_units(gone)
                continue
        results[i] = _store(session, batches[i].pings, rows)
    return results


# --------------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class _Level:
    level: int
    role: str
    scope: str  # which jurisdiction id of the incident the alert is scoped to


LEVELS = (
    _Level(1, "sho", "station"),
    _Level(2, "sdpo", "tehsil"),
    _Level(3, "district_sp", "district"),
    _Level(4, "central_command", "all"),
)


#: How far back the first round after a start looks for deadlines it may have missed.
LOOKBACK = timedelta(days=7)

#: (level, start field, timestamps that must still be empty, target attribute, reason)
_CHECKS: tuple[tuple[int, str, tuple[str, ...], str, str], ...] = (
    (
        1,
        "routed_at",
        ("acknowledged_at", "dispatched_at"),
        "acknowledge_s",
        "not acknowledged within {m} min",
    ),
    (2, "received_at", ("dispatched_at",), "dispatch_s", "no unit dispatched within {m} min"),
    (3, "received_at", ("on_scene_at",), "arrive_s", "no unit on scene within {m} min"),
    (4, "received_at", ("on_scene_at",), "unattended_s", "serious incident unattended for {m} min"),
)


def check_response_times(
    session: Session, *, now: datetime, since: datetime | None = None
) -> list[AlertOut]:
    """Fire every alert whose deadline passed in (since, now] and has not fired yet.

    Deadlines come from the stored incident timestamps and the targets table; a round asks
    only for what fell due since the last one, so it costs what is new, not every open
    incident. A unique (incident, level) row means a level never fires twice: after a restart
    the monitor looks back (`since` None: LOOKBACK) and simply resumes. Commits."""
    since = since or now - LOOKBACK
    targets = {(t.priority, t.area_type): t for t in incidents.list_targets(session)}
    serious = {t.code for t in incidents.list_types(session) if t.serious}
    due: list[tuple[int, IncidentOut, datetime, str]] = []
    for level, start_field, unset, attr, reason in _CHECKS:
        windows = [
            (
                p,
                a,
                since - timedelta(seconds=getattr(t, attr)),
                now - timedelta(seconds=getattr(t, attr)),
            )
            for (p, a), t in targets.items()
        ]
        crossing = incidents.incidents_crossing(
            session,
            start_field=start_field,
            unset_fields=unset,
            windows=windows,
            categories=serious if level == 4 else None,
        )
        for inc in crossing:
            t = targets[(inc.priority, inc.area_type)]
            start = getattr(inc, start_field) or inc.received_at
            due.append(
                (
                    level,
                    inc,
                    start + timedelta(seconds=getattr(t, attr)),
                    reason.format(m=getattr(t, attr) // 60),
                )
            )
    if not due:
        return []
    ids = sorted({inc.incident_id for _, inc, _, _ in due})
    fired: set[tuple[int, int]] = set()
    for chunk in range(0, len(ids), 500):
        rows = session.execute(
            select(ResponseAlert.incident_id, ResponseAlert.level).where(
                ResponseAlert.incident_id.in_(ids[chunk : chunk + 500])
            )
        )
        fired |= {(r[0], r[1]) for r in rows}
    new = []
    for level, inc, due_at, reason in sorted(due, key=lambda d: (d[2], d[0])):
        if (inc.incident_id, level) in fired:
            continue
        fired.add((inc.incident_id, level))
        spec = LEVELS[level - 1]
        alert = ResponseAlert(
            incident_id=inc.incident_id,
            level=level,
            reason=f"P{inc.priority} {inc.category}: {reason}",
            notify_role=spec.role,
            station_id=inc.station_id,
            tehsil_id=inc.tehsil_id,
            district_id=inc.district_id,
            due_at=due_at,
            fired_at=now,
        )
        session.add(alert)
        new.append(alert)
        incidents.add_note(
            session,
            incident_id=inc.incident_id,
            actor=SYSTEM,
            now=now,
            kind=f"alert_level_{level}",
            note=f"level {level} alert to {spec.role}: {reason}",
        )
    if not new:
        return []
    try:
        session.flush()
    except IntegrityError:
        # Another monitor (another process) fired the same level first: that one stands.
        session.rollback()
        return []
    out = [AlertOut.model_validate(a) for a in new]
    province = {inc.incident_id: inc.province_id for _, inc, _, _ in due}
    for a in out:
        publish_after_commit(session, "alerts.response", _alert_event(a, province[a.incident_id]))
    session.commit()
    return out


def _alert_event(alert: AlertOut, province_id: int | None) -> dict[str, Any]:
    """An alert as published: with its incident's province too, which the alert row does not
    keep, or the live stream's scope check (`core.events_api.in_scope`) would never show it
    to a province-scoped caller."""
    return {**alert.model_dump(mode="json"), "province_id": province_id}


def _alert_where(a: ResponseAlert | AlertOut) -> JurisdictionIds:
    return JurisdictionIds(a.station_id, a.tehsil_id, a.district_id)


def list_alerts(
    session: Session, *, actor: Principal, open_only: bool = True, limit: int = 200
) -> list[AlertOut]:
    """Alerts inside the caller's jurisdiction, newest first. Central command (scope all)
    sees every level; others see the alerts of their area."""
    actor.require(Perm.INCIDENTS_READ)
    q = select(ResponseAlert).order_by(ResponseAlert.id.desc()).limit(limit)
    if open_only:
        q = q.where(ResponseAlert.acknowledged_at.is_(None))
    if actor.scope_level in ("station", "tehsil", "district"):
        q = q.where(getattr(ResponseAlert, f"{actor.scope_level}_id") == actor.scope_id)
    return [AlertOut.model_validate(a) for a in session.scalars(q)]


def acknowledge_alert(
    session: Session, *, alert_id: int, actor: Principal, now: datetime
) -> AlertOut:
    actor.require(Perm.INCIDENTS_UPDATE)
    a = _alert_row(session, alert_id)
    if a is None:
        raise NotFound(f"alert {alert_id} does not exist")
    actor.require_covers(_alert_where(a), f"alert {alert_id}")
    if a.acknowledged_at is not None:
        raise Conflict(f"alert {alert_id} was acknowledged by {a.acknowledged_by} already")
    a.acknowledged_at, a.acknowledged_by = now, actor.name
    incidents.add_note(
        session,
        incident_id=a.incident_id,
        actor=actor,
        now=now,
        kind="alert_acknowledged",
        note=f"level {a.level} alert acknowledged",
    )
    out = AlertOut.model_validate(a)
    province_id = incidents.incident_for_system(session, incident_id=a.incident_id).province_id
    publish_after_commit(session, "alerts.acknowledged", _alert_event(out, province_id))
    session.flush()
    return out


def _alert_row(session: Session, alert_id: int) -> ResponseAlert | None:
    # An id past the integer column is no alert (the driver would overflow on it).
    return session.get(ResponseAlert, alert_id) if 1 <= alert_id <= MAX_ROW_ID else None


def get_alert(session: Session, *, alert_id: int, actor: Principal) -> AlertOut:
    a = _alert_row(session, alert_id)
    if a is None:
        raise NotFound(f"alert {alert_id} does not exist")
    actor.require_covers(_alert_where(a), f"alert {alert_id}")
    return AlertOut.model_validate(a)


def alert_cap(session: Session, *, alert_id: int, actor: Principal) -> str:
    """A response-time alert as OASIS CAP 1.2 XML."""
    from safecity.incidents.cap import alert_to_cap

    alert = get_alert(session, alert_id=alert_id, actor=actor)
    inc = incidents.get_incident(session, incident_id=alert.incident_id, actor=actor)
    station = geo.station_locator(session).station(inc.station_id)
    severity = {1: "Moderate", 2: "Severe", 3: "Severe", 4: "Extreme"}[alert.level]
    return alert_to_cap(
        identifier=f"safecity-alert-{alert.id}",
        sender=incidents.AGENCY_ID,
        sent=alert.fired_at,
        event=f"Response time alert level {alert.level}",
        headline=f"Level {alert.level}: incident {inc.incident_id} at {station.station_name}",
        description=alert.reason,
        severity=severity,
        urgency="Immediate",
        certainty="Observed",
        lat=inc.lat,
        lon=inc.lon,
        area_desc=f"{station.station_name} jurisdiction",
        scope="Restricted",
        restriction="Police command and control only",
        incidents=str(inc.incident_id),
    )


# --------------------------------------------------------------------------- panic


def register_panic_device(
    session: Session, *, device_in: PanicDeviceIn, actor: Principal, now: datetime
) -> PanicDeviceCreated:
    actor.require(Perm.REGISTRY_WRITE)
    if session.scalar(select(PanicDevice.id).where(PanicDevice.code == device_in.code)):
        raise Conflict(f"a panic device with code {device_in.code!r} already exists")
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
    dev = PanicDevice(
        code=device_in.code,
        name=device_in.name,
        kind=device_in.kind,
        phone=device_in.phone,
        key_prefix=prefix,
        key_hash=hashlib.sha256(secret.encode()).hexdigest(),
        lon=device_in.lon,
        lat=device_in.lat,
        active=True,
        created_at=now,
    )
    session.add(dev)
    session.flush()
    return PanicDeviceCreated(
        id=dev.id, code=dev.code, name=dev.name, kind=dev.kind, device_key=f"pd_{prefix}_{secret}"
    )


def device_for_key(session: Session, *, device_key: str) -> PanicDevice:
    parts = device_key.split("_", 2)
    if len(parts) != 3 or parts[0] != "pd":
        raise Unauthenticated("malformed device key: expected pd_<prefix>_<secret>")
    dev = session.scalar(select(PanicDevice).where(PanicDevice.key_prefix == parts[1]))
    digest = hashlib.sha256(parts[2].encode()).hexdigest()
    if dev is None or not hmac.compare_digest(dev.key_hash, digest):
        raise Unauthenticated("unknown panic device; register it with the command centre")
    if not dev.active:
        raise Unauthenticated("this panic device has been deactivated")
    return dev


def panic(session: Session, *, device_key: str, panic_in: PanicIn, now: datetime) -> PanicAccepted:
    """A panic press: a P1 incident routed at once, with the nearest units recommended.
    Commits."""
    dev = device_for_key(session, device_key=device_key)
    lon = panic_in.lon if panic_in.lon is not None else dev.lon
    lat = panic_in.lat if panic_in.lat is not None else dev.lat
    if lon is None or lat is None:
        raise InvalidInput("no location: the device sent none and has no registered address")
    call = CallIn(
        caller_number=dev.phone,
        caller_name=f"{dev.name} ({dev.kind})",
        lat=lat,
        lon=lon,
        category="panic",
        description=f"PANIC from {dev.name} ({dev.kind.replace('_', ' ')})"
        + (f": {panic_in.note}" if panic_in.note else "")
        + (f" [GPS ±{panic_in.accuracy_m:.0f} m]" if panic_in.accuracy_m else ""),
        # A panic press is always its own P1 incident: folded into a nearby lower-priority
        # call it would lose its priority and its timers. A dispatcher can still merge.
        link_duplicates=False,
    )
    accepted = incidents.receive_call(
        session,
        call=call,
        actor=Principal(subject=f"device:{dev.id}", name=f"panic:{dev.code}", role=Role.TELEPHONY),
        now=now,
        source="panic",
        priority=1,
    )
    recs = _recommend(session, lon, lat, accepted.station_id, 5)
    if recs:
        incidents.add_note(
            session,
            incident_id=accepted.incident_id,
            actor=SYSTEM,
            now=now,
            kind="recommended",
            note="nearest units: "
            + ", ".join(f"{r.callsign} ({r.eta_s / 60:.0f} min)" for r in recs[:3]),
            data={"unit_ids": [r.unit_id for r in recs]},
        )
        session.commit()
    return PanicAccepted(
        incident_id=accepted.incident_id,
        station_id=accepted.station_id,
        station_name=accepted.station_name,
        priority=accepted.priority,
        recommended_units=recs,
        message=f"Help is coming: {accepted.station_name} has your alert"
        + (f"; nearest unit about {recs[0].eta_s / 60:.0f} min away" if recs else ""),
    )


# --------------------------------------------------------------------------- reports


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() if a is not None and b is not None else None


def _median_p90(xs: list[float]) -> tuple[float | None, float | None]:
    if not xs:
        return None, None
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, math.ceil(0.9 * len(xs)) - 1)]
    return round(statistics.median(xs), 1), round(p90, 1)


def _breached(inc: IncidentOut, targets: Mapping[tuple[int, str], Any]) -> bool:
    t = targets.get((inc.priority, inc.area_type))
    if t is None:
        return False
    d = _seconds(inc.received_at, inc.dispatched_at)
    s = _seconds(inc.received_at, inc.on_scene_at)
    return (d is not None and d > t.dispatch_s) or (s is not None and s > t.arrive_s)


@dataclass
class _Times:
    """One group's figures for a report, gathered an incident at a time."""

    incidents: int = 0
    calls: int = 0
    breaches: int = 0
    answer_to_dispatch: list[float] = field(default_factory=list)
    dispatch_to_scene: list[float] = field(default_factory=list)
    by_type: Counter[str] = field(default_factory=Counter)

    def add(self, i: IncidentOut, targets: Mapping[tuple[int, str], Any]) -> None:
        self.incidents += 1
        self.calls += i.call_count
        self.breaches += _breached(i, targets)
        self.by_type[i.category] += 1
        if (x := _seconds(i.received_at, i.dispatched_at)) is not None:
            self.answer_to_dispatch.append(x)
        if (x := _seconds(i.dispatched_at, i.on_scene_at)) is not None:
            self.dispatch_to_scene.append(x)


def response_time_report(
    session: Session,
    *,
    actor: Principal,
    since: datetime,
    until: datetime,
    group_by: str = "district",
) -> list[ResponseTimeRow]:
    """Per district or station: median and 90th percentile of answer->dispatch and
    dispatch->scene, and SLA breaches, for incidents received in [since, until)."""
    if group_by not in ("district", "station"):
        raise InvalidInput("group_by must be district or station")
    if until <= since:
        raise InvalidInput("`to` must be after `from`")
    targets = {(t.priority, t.area_type): t for t in incidents.list_targets(session)}
    names = {j.id: j.name for j in geo.list_jurisdictions(session, level=group_by)}  # type: ignore[arg-type]
    # Times per group, not the incidents themselves: a province's month is hundreds of
    # thousands of incidents.
    groups: dict[int | None, _Times] = defaultdict(_Times)
    for i in incidents.iter_incidents(session, actor=actor, since=since, until=until):
        if i.status in ("merged",) or i.category == "prank":
            continue
        groups[i.district_id if group_by == "district" else i.station_id].add(i, targets)
    rows = []
    for gid, times in sorted(groups.items(), key=lambda kv: names.get(kv[0] or -1, "")):
        m1, p1 = _median_p90(times.answer_to_dispatch)
        m2, p2 = _median_p90(times.dispatch_to_scene)
        rows.append(
            ResponseTimeRow(
                group_id=gid,
                group_name=names.get(gid or -1, "unknown"),
                incidents=times.incidents,
                answer_to_dispatch_median_s=m1,
                answer_to_dispatch_p90_s=p1,
                dispatch_to_scene_median_s=m2,
                dispatch_to_scene_p90_s=p2,
                sla_breaches=times.breaches,
            )
        )
    return rows


def report_csv(rows: Sequence[ResponseTimeRow]) -> str:
    import csv
    import io

    buf = io.StringIO()
    fields = list(ResponseTimeRow.model_fields)
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for r in rows:
        w.writerow(r.model_dump())
    return buf.getvalue()


def district_kpis(session: Session, *, actor: Principal, now: datetime) -> list[DistrictKpi]:
    """Today's figures per district (the commander's dashboard)."""
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    targets = {(t.priority, t.area_type): t for t in incidents.list_targets(session)}
    names = {j.id: j.name for j in geo.list_jurisdictions(session, level="district")}
    by: dict[int | None, _Times] = defaultdict(_Times)
    for i in incidents.iter_incidents(session, actor=actor, since=day_start):
        by[i.district_id].add(i, targets)
    open_by = Counter(
        i.district_id for i in incidents.iter_incidents(session, actor=actor, open_only=True)
    )
    out = []
    for did in sorted(set(by) | set(open_by), key=lambda d: names.get(d or -1, "")):
        times = by.get(did) or _Times()
        m1, p1 = _median_p90(times.answer_to_dispatch)
        m2, p2 = _median_p90(times.dispatch_to_scene)
        out.append(
            DistrictKpi(
                district_id=did,
                district=names.get(did or -1, "unknown"),
                calls_today=times.calls,
                incidents_today=times.incidents,
                open_incidents=open_by.get(did, 0),
                by_type=dict(times.by_type.most_common()),
                answer_to_dispatch_median_s=m1,
                answer_to_dispatch_p90_s=p1,
                dispatch_to_scene_median_s=m2,
                dispatch_to_scene_p90_s=p2,
                sla_breaches_today=times.breaches,
            )
        )
    return out
