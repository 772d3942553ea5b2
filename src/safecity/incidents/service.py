"""Incident logic: intake (calls, panic alerts, camera alerts), duplicate linking, the
lifecycle with its audit trail, transfer, merge and split. No HTTP here."""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
import weakref
from collections import defaultdict, deque
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    Integer,
    Table,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from safecity.core.auth import JurisdictionIds, Perm, Principal
from safecity.core.bulk import BulkStatement, ListQuery
from safecity.core.db import MAX_ROW_ID, Base, UTCDateTime, call_after_commit, publish_after_commit
from safecity.core.errors import Conflict, Forbidden, InvalidInput, NotFound, SafeCityError
from safecity.geo import service as geo
from safecity.geo.schemas import Location
from safecity.incidents.lifecycle import OPEN, STAMP, Status, check_transition
from safecity.incidents.models import (
    Call,
    Incident,
    IncidentEvent,
    IncidentType,
    ResponseTarget,
)
from safecity.incidents.schemas import (
    CallAccepted,
    CallIn,
    CallOut,
    IncidentDetail,
    IncidentOut,
    IncidentTypeIn,
    IncidentTypeOut,
    ResponseTargetIn,
    ResponseTargetOut,
    TimelineEntry,
)
from safecity.incidents.types import compatible, compatible_types

#: A new call this close in space and time to an open incident of a compatible type is
#: linked to it instead of opening a new incident.
DUPLICATE_RADIUS_M = 300.0
DUPLICATE_WINDOW = timedelta(minutes=15)
#: Prank calls from one number in this window before it is flagged to the call taker.
PRANK_WINDOW = timedelta(days=30)
PRANK_FLAG_AFTER = 2
_M_PER_DEG = 111_195.0


# --------------------------------------------------------------------------- types


def list_types(session: Session, *, active_only: bool = False) -> list[IncidentTypeOut]:
    q = select(IncidentType).order_by(IncidentType.priority, IncidentType.code)
    if active_only:
        q = q.where(IncidentType.active.is_(True))
    return [IncidentTypeOut.model_validate(t) for t in session.scalars(q)]


def set_type(
    session: Session, *, code: str, type_in: IncidentTypeIn, actor: Principal
) -> IncidentTypeOut:
    """Create or change an incident type (command centre admin)."""
    actor.require(Perm.USERS_ADMIN)
    # At most 32 characters: the column's width, and what a call's `category` may hold (a
    # longer code was stored, but no call could ever name it).
    if _TYPE_CODE.fullmatch(code) is None:
        raise InvalidInput(
            f"code {code[:40]!r}: a type code is 1-32 lower-case letters a-z, digits and _"
        )
    row = session.get(IncidentType, code) or IncidentType(code=code)
    for k, v in type_in.model_dump().items():
        setattr(row, k, v)
    session.add(row)
    session.flush()
    _TYPES.invalidate()
    return IncidentTypeOut.model_validate(row)


_TYPE_CODE = re.compile(r"[a-z0-9_]{1,32}")


class _TypeCache:
    """Incident types change rarely and are read on every call: keep them a few seconds."""

    ttl_s = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_db: dict[str, tuple[float, dict[str, IncidentTypeOut]]] = {}

    def get(self, session: Session) -> dict[str, IncidentTypeOut]:
        key = session.get_bind().engine.url.render_as_string(hide_password=True)
        with self._lock:
            hit = self._by_db.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        types = {t.code: t for t in list_types(session)}
        with self._lock:
            self._by_db[key] = (time.monotonic() + self.ttl_s, types)
        return types

    def invalidate(self) -> None:
        with self._lock:
            self._by_db.clear()


_TYPES = _TypeCache()


def warm_up(session: Session) -> None:
    """Build what call intake keeps in memory (incident types, the station index) now,
    so the first calls after a start do not wait for it. Does nothing without stations."""
    _TYPES.get(session)
    with contextlib.suppress(InvalidInput):  # no stations imported yet
        geo.station_locator(session)


def _type(session: Session, code: str) -> IncidentTypeOut:
    types = _TYPES.get(session)
    row = types.get(code)
    if row is None or not row.active:
        known = sorted(c for c, t in types.items() if t.active)
        raise InvalidInput(f"unknown category {code!r}; one of: {', '.join(known)}")
    return row


def apco_codes(session: Session) -> dict[str, str]:
    """Our type code -> APCO ANS 2.103 common incident type code."""
    return {t.code: t.apco_code for t in session.scalars(select(IncidentType))}


def list_targets(session: Session) -> list[ResponseTargetOut]:
    rows = session.scalars(
        select(ResponseTarget).order_by(ResponseTarget.priority, ResponseTarget.area_type)
    )
    return [ResponseTargetOut.model_validate(r) for r in rows]


def set_target(
    session: Session,
    *,
    priority: int,
    area_type: str,
    target_in: ResponseTargetIn,
    actor: Principal,
) -> ResponseTargetOut:
    actor.require(Perm.USERS_ADMIN)
    if priority not in (1, 2, 3, 4) or area_type not in ("urban", "rural"):
        raise InvalidInput("priority must be 1-4 and area_type urban or rural")
    if not target_in.acknowledge_s <= target_in.dispatch_s <= target_in.arrive_s:
        raise InvalidInput("targets must grow: acknowledge_s <= dispatch_s <= arrive_s")
    row = session.get(ResponseTarget, (priority, area_type)) or ResponseTarget(
        priority=priority, area_type=area_type
    )
    for k, v in target_in.model_dump().items():
        setattr(row, k, v)
    session.add(row)
    session.flush()
    return ResponseTargetOut.model_validate(row)


# --------------------------------------------------------------------------- intake


@dataclass(frozen=True)
class CallRequest:
    """One report waiting to be taken in: what was said, who took it, and when."""

    call: CallIn
    actor: Principal
    received_at: datetime
    source: str = "call"
    priority: int | None = None


def receive_call(
    session: Session,
    *,
    call: CallIn,
    actor: Principal,
    now: datetime,
    source: str = "call",
    priority: int | None = None,
) -> CallAccepted:
    """Take in a report: link it to an open incident it duplicates, or open a new incident
    routed to the station holding its location. Idempotent by `external_id`. Commits."""
    request = CallRequest(call=call, actor=actor, received_at=now, source=source, priority=priority)
    try:
        (result,) = receive_calls(session, requests=[request])
        if isinstance(result, Exception):
            raise result
        session.commit()
        return result
    except IntegrityError:
        # Another writer took the same external_id in between: theirs is the call.
        session.rollback()
        existing = _call_by_external_id(session, call.external_id or "")
        if existing is None:
            raise
        return _accepted(session, existing, duplicate_external=True)


def receive_calls(
    session: Session, *, requests: Sequence[CallRequest]
) -> list[CallAccepted | SafeCityError]:
    """Take in many reports in one transaction (set-based: a few statements for the whole
    batch, whatever its size). Each gets its own result or its own error; a refused report
    does not affect the others. Reports in the batch see each other in order: a second
    caller about the same event is linked to the incident the first one opened.
    Flushes; the caller commits (events are published after the commit)."""
    types = _TYPES.get(session)
    locator = geo.station_locator(session)
    results: list[CallAccepted | SafeCityError | None] = [None] * len(requests)

    ext_ids = [r.call.external_id for r in requests if r.call.external_id is not None]
    taken = _calls_by_external_id(session, ext_ids)
    pranks = _prank_counts(session, requests)

    # Matched first on the candidates the process remembers; if one it chose turned out
    # stale, it is forgotten and the batch matched again on a fresh read (nothing is
    # written before the matching holds).
    for authoritative in (False, True):
        batch = _Batch(session, requests, authoritative=authoritative)
        results = [None] * len(requests)
        links: list[tuple[int, _Linked]] = []  # (request index, target)
        repeats: list[tuple[int, int]] = []  # (request index, index of the first with its id)
        _match_calls(requests, batch, types, locator, taken, dict(pranks), results, links, repeats)
        stale = batch.load_targets(session, requests)
        if not stale:
            break
        _recent_incidents(session.connection()).forget(stale)

    new_incidents = batch.new
    _insert_incidents(session, new_incidents)
    if new_incidents and session.connection().dialect.name == "sqlite":
        # This process knows what it just stored: once committed it is remembered as
        # read, and the next batch's read skips it (see `_RecentIncidents.add_committed`).
        recent = _recent_incidents(session.connection())
        stored = [
            _Candidate(
                inc.id,
                location_cell(inc.lon, inc.lat),
                inc.lon,
                inc.lat,
                inc.category,
                inc.status,
                inc.received_at,
            )
            for inc in new_incidents
        ]
        call_after_commit(session, lambda: recent.add_committed(stored))
    call_ids = _insert_calls(session, requests, links, new_incidents)
    _update_linked(session, links)

    for inc in new_incidents:
        for i, prank in [(inc.request, inc.prank), *inc.calls]:
            results[i] = _accepted_from(
                inc, call_ids[i], locator, linked=i != inc.request, prank=prank
            )
    for i, target in links:
        if isinstance(target, _ExistingIncident):
            prank = dict(target.calls)[i]
            results[i] = _accepted_from(target, call_ids[i], locator, linked=True, prank=prank)
    for i, first in repeats:
        got = results[first]
        results[i] = (
            got.model_copy(update={"duplicate_of_external_id": True, "repeat_prank_caller": False})
            if isinstance(got, CallAccepted)
            else got
        )
    out = [r for r in results if r is not None]
    assert len(out) == len(requests)
    return out


def _match_calls(
    requests: Sequence[CallRequest],
    batch: _Batch,
    types: dict[str, IncidentTypeOut],
    locator: geo.StationLocator,
    taken: dict[str, CallAccepted],
    pranks: dict[str, int],
    results: list[CallAccepted | SafeCityError | None],
    links: list[tuple[int, _Linked]],
    repeats: list[tuple[int, int]],
) -> None:
    """Each call of a batch in order: refused (its error in `results`), answered from an
    earlier call with its external id (`results`, `repeats`), linked to an incident it
    duplicates (`links`), or opening a new incident (`batch.add`)."""
    first_by_ext: dict[str, int] = {}
    for i, req in enumerate(requests):
        call = req.call
        try:
            req.actor.require(Perm.CALLS_CREATE)
            itype = _type_from(types, call.category)
            if call.external_id is not None:
                if call.external_id in taken:
                    results[i] = taken[call.external_id]
                    continue
                if call.external_id in first_by_ext:
                    repeats.append((i, first_by_ext[call.external_id]))
                    continue
            geo.check_point(call.lon, call.lat)
        except SafeCityError as exc:
            results[i] = exc
            continue
        if call.external_id is not None:
            first_by_ext[call.external_id] = i
        number = call.caller_number
        prank = pranks.get(number, 0) >= PRANK_FLAG_AFTER
        target: _Linked | None = None
        if call.link_duplicates and itype.code != "prank":
            target = batch.find_duplicate(req)
        if target is not None:
            links.append((i, target))
            target.calls.append((i, prank))
            continue
        if itype.code == "prank":
            pranks[number] = pranks.get(number, 0) + 1
        location = locator.locate(call.lon, call.lat)
        batch.add(_NewIncident.open(i, req, itype, location, prank))


@dataclass
class _Target:
    """An incident the calls of a batch open or are linked to, as plain values."""

    id: int
    category: str
    priority: int
    status: str
    lon: float
    lat: float
    station_id: int
    tehsil_id: int | None
    district_id: int | None
    province_id: int | None
    inside_jurisdiction: bool
    call_count: int
    received_at: datetime
    updated_at: datetime
    description: str
    #: Calls of this batch linked to it as duplicates: (request index, repeat prank caller).
    calls: list[tuple[int, bool]] = field(default_factory=list)


@dataclass
class _ExistingIncident(_Target):
    @classmethod
    def candidate(
        cls, id_: int, category: str, status: str, lon: float, lat: float, received: Any
    ) -> _ExistingIncident:
        """A duplicate candidate from the light read: the rest is filled in by
        `_Batch.load_targets` if a call is linked to it."""
        at = _as_utc(received)
        return cls(
            id=id_,
            category=category,
            priority=0,
            status=status,
            lon=lon,
            lat=lat,
            station_id=0,
            tehsil_id=None,
            district_id=None,
            province_id=None,
            inside_jurisdiction=True,
            call_count=0,
            received_at=at,
            updated_at=at,
            description="",
        )


def _as_utc(value: datetime | str) -> datetime:
    """A stored time as the driver gives it (SQLite: ISO text; PostgreSQL: aware)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class _NewIncident(_Target):
    request: int = 0
    prank: bool = False
    request_data: CallRequest | None = None
    area_type: str = "urban"
    station_name: str = ""
    itype_label: str = ""
    distance_m: float = 0.0

    @classmethod
    def open(
        cls,
        index: int,
        req: CallRequest,
        itype: IncidentTypeOut,
        location: Location,
        prank: bool,
    ) -> _NewIncident:
        call = req.call
        return cls(
            id=0,
            category=itype.code,
            priority=req.priority or itype.priority,
            status=Status.ROUTED.value,
            lon=call.lon,
            lat=call.lat,
            station_id=location.station_id,
            tehsil_id=location.tehsil_id,
            district_id=location.district_id,
            province_id=location.province_id,
            inside_jurisdiction=location.inside,
            call_count=1,
            received_at=req.received_at,
            updated_at=req.received_at,
            description=call.description,
            request=index,
            prank=prank,
            request_data=req,
            area_type=location.area_type,
            station_name=location.station_name,
            itype_label=itype.label,
            distance_m=location.distance_m,
        )


_Linked = _NewIncident | _ExistingIncident


class _Candidate(NamedTuple):
    """A stored open incident a call may be linked to: only what matching needs."""

    id: int
    cell: int
    lon: float
    lat: float
    category: str
    status: str
    received_at: datetime


class _Batch:
    """What a batch has opened so far, and the stored incidents its calls may be linked to
    (read once for the whole batch), both in grids of duplicate-radius cells.

    The stored candidates come from the process's `_RecentIncidents` (SQLite), or, with
    `authoritative`, are read afresh in the batch's transaction (see `receive_calls`)."""

    def __init__(
        self, session: Session, requests: Sequence[CallRequest], *, authoritative: bool
    ) -> None:
        self.new: list[_NewIncident] = []
        self.existing: dict[int, _ExistingIncident] = {}
        self._new_grid: dict[int, list[_NewIncident]] = defaultdict(list)
        self._stored_grid: Mapping[int, Mapping[str, Sequence[_Candidate]]] = {}
        cells: set[int] = set()
        for req in requests:
            call = req.call
            if call.link_duplicates and _valid_point(call.lon, call.lat):
                cells.update(cells_around(call.lon, call.lat))
        if not cells:
            return
        since = min(r.received_at for r in requests) - DUPLICATE_WINDOW
        conn = session.connection()
        if authoritative or conn.dialect.name != "sqlite":
            self._stored_grid = _read_candidates(conn, cells, since)
        else:
            self._stored_grid = _recent_incidents(conn).by_cell(conn, since)

    def load_targets(self, session: Session, requests: Sequence[CallRequest]) -> list[int]:
        """Everything else of the stored incidents that calls of the batch were linked to,
        read in the batch's transaction. Gives the ids of those that no longer qualify
        (gone, no longer open, or now of an incompatible type or elsewhere): a remembered
        candidate can be stale, the batch is then matched again (`receive_calls`)."""
        chosen = {inc.id: inc for inc in self.existing.values() if inc.calls}
        if not chosen:
            return []
        stale = set(chosen)
        for row in _TARGETS.all(session.connection(), {"ids": sorted(chosen)}):
            values = dict(zip(_TARGET_NAMES, row, strict=True))
            inc = chosen[values.pop("id")]
            # Driver values (see `ListQuery`): SQLite's times are text, its booleans 0/1.
            values["inside_jurisdiction"] = bool(values["inside_jurisdiction"])
            values["received_at"] = _as_utc(values["received_at"])
            values["updated_at"] = _as_utc(values["updated_at"])
            for name, value in values.items():
                setattr(inc, name, value)
            if inc.status in _OPEN_VALUES and all(
                compatible(inc.category, requests[i].call.category)
                and _distance_m(requests[i].call.lon, requests[i].call.lat, inc.lon, inc.lat)
                <= DUPLICATE_RADIUS_M
                for i, _ in inc.calls
            ):
                stale.discard(inc.id)
        return sorted(stale)

    def add(self, inc: _NewIncident) -> None:
        self.new.append(inc)
        self._new_grid[location_cell(inc.lon, inc.lat)].append(inc)

    def find_duplicate(self, req: CallRequest) -> _Linked | None:
        """The nearest open incident of a compatible type within the radius and time
        window: stored, or opened earlier in this batch."""
        call = req.call
        lon, lat = call.lon, call.lat
        since = req.received_at - DUPLICATE_WINDOW
        matching = compatible_types(call.category)
        best: _Candidate | _Linked | None = None
        best_d = DUPLICATE_RADIUS_M
        # `_distance_m` written out: this loop runs over every remembered incident near
        # each call, and at a peak those are tens of thousands (a call less per loop).
        cos, rad, hypot, m_per_deg = math.cos, math.radians, math.hypot, _M_PER_DEG
        for cell in cells_around(lon, lat):
            for category, stored in self._stored_grid.get(cell, {}).items():
                if category not in matching:
                    continue
                for c in stored:
                    _, _, c_lon, c_lat, _, _, received_at = c
                    if received_at < since:
                        continue
                    d = hypot((lon - c_lon) * cos(rad((lat + c_lat) / 2)), lat - c_lat) * m_per_deg
                    if d <= best_d:
                        best, best_d = c, d
            for inc in self._new_grid.get(cell, ()):
                if inc.category not in matching:
                    continue
                d = _distance_m(call.lon, call.lat, inc.lon, inc.lat)
                if d <= best_d:
                    best, best_d = inc, d
        if isinstance(best, _Candidate):
            # Made an incident of the batch only once chosen: most candidates never are.
            got = self.existing.get(best.id)
            if got is None:
                got = self.existing[best.id] = _ExistingIncident.candidate(
                    best.id, best.category, best.status, best.lon, best.lat, best.received_at
                )
            return got
        return best


def _read_candidates(
    conn: Connection, cells: Collection[int], since: datetime
) -> Mapping[int, Mapping[str, Sequence[_Candidate]]]:
    """Every open incident received since `since` in `cells`, by cell and type: one
    statement."""
    grid: dict[int, dict[str, list[_Candidate]]] = {}
    rows = _RECENT_IN_CELLS.all(conn, {"cells": sorted(cells), "since": since})
    for id_, cell, lon, lat, category, status, received in rows:
        if status in _OPEN_VALUES and cell is not None:
            c = _Candidate(id_, cell, lon, lat, category, status, _as_utc(received))
            grid.setdefault(cell, {}).setdefault(category, []).append(c)
    return {cell: by_type for cell, by_type in grid.items()}


class _RecentIncidents:
    """The open incidents of the last duplicate window, remembered by one process for one
    SQLite database, so that a batch of calls reads only the incidents stored since the
    previous batch (by id: SQLite gives ids in commit order, its writers taking turns)
    instead of every incident of the window around its calls, which at a helpline peak
    was thousands of rows a batch and the largest part of the intake's time.

    An incident closed, merged or changed since it was remembered is caught when a call
    is linked to it (`_Batch.load_targets` reads the chosen incidents in the batch's own
    transaction); it is then forgotten and the batch matched on a fresh read. What is
    remembered only ever lacks what it could not know: a later change of an incident's
    type or place that would make it a match."""

    #: Rows read at a time when a process first reads the window, newest first.
    BOOTSTRAP_CHUNK = 2000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_id: int | None = None
        #: By cell, then by type (a call looks only at the types compatible with its own).
        self._cells: dict[int, dict[str, deque[_Candidate]]] = {}
        self._in_order: deque[_Candidate] = deque()  # oldest first, to forget by age

    def by_cell(
        self, conn: Connection, since: datetime
    ) -> Mapping[int, Mapping[str, Sequence[_Candidate]]]:
        """The remembered candidates by cell and type, after reading what was stored since
        the last read (`since`: the oldest a caller will look at).

        Given as they are, not copied: they change only in this method and in `forget`,
        both run holding the database's one connection (SQLite), as does the batch
        reading them, so nothing changes them while a batch reads. A batch looks up only
        its calls' cells."""
        with self._lock:
            if self._last_id is None:
                self._bootstrap(conn, since)
            else:
                self._read_new(conn)
            # A window's margin: a clock set back (a test's) still finds its incidents.
            self._forget_older_than(since - DUPLICATE_WINDOW)
            return self._cells

    def forget(self, ids: Collection[int]) -> None:
        """Drop incidents found stale; the next read of each cell is fresh anyway."""
        gone = set(ids)
        with self._lock:
            for by_type in self._cells.values():
                for category, got in list(by_type.items()):
                    if any(c.id in gone for c in got):
                        by_type[category] = deque(c for c in got if c.id not in gone)

    def add_committed(self, stored: Sequence[_Candidate]) -> None:
        """Incidents this process has just committed, remembered without reading them
        back, when they are the very next ids after the last one remembered (SQLite gives
        ids in commit order): nobody else's incident can then be among or before them.
        Otherwise (another process or thread committed in between) nothing is done, and
        the next read takes them all in order."""
        ids = sorted(c.id for c in stored)
        with self._lock:
            if self._last_id is None or not ids or ids[0] != self._last_id + 1:
                return
            if ids[-1] - ids[0] + 1 != len(ids):
                return  # not contiguous: someone else's incident lies among them
            for c in sorted(stored, key=lambda c: c.id):
                if c.status in _OPEN_VALUES:
                    self._cells.setdefault(c.cell, {}).setdefault(c.category, deque()).append(c)
                    self._in_order.append(c)
            self._last_id = ids[-1]

    def _remember(self, rows: Sequence[tuple[Any, ...]]) -> None:
        for id_, cell, lon, lat, category, status, received in rows:
            self._last_id = max(self._last_id or 0, int(id_))
            if status not in _OPEN_VALUES or cell is None:
                continue
            c = _Candidate(id_, cell, lon, lat, category, status, _as_utc(received))
            self._cells.setdefault(cell, {}).setdefault(category, deque()).append(c)
            self._in_order.append(c)

    def _read_new(self, conn: Connection) -> None:
        self._remember(_conn_rows(conn, _CANDIDATES_AFTER, {"after": self._last_id or 0}))

    def _bootstrap(self, conn: Connection, since: datetime) -> None:
        """The window's incidents, read newest first by id until a whole chunk is older."""
        cutoff = since - DUPLICATE_WINDOW
        rows: list[tuple[Any, ...]] = []
        before: int | None = None
        while True:
            params = {"before": before if before is not None else 2**62}
            chunk = _conn_rows(conn, _CANDIDATES_BEFORE, params)
            rows.extend(chunk)
            if len(chunk) < self.BOOTSTRAP_CHUNK or all(_as_utc(r[6]) < cutoff for r in chunk):
                break
            before = int(chunk[-1][0])
        self._last_id = 0
        self._remember(sorted(rows))

    def _forget_older_than(self, cutoff: datetime) -> None:
        q = self._in_order
        while q and q[0].received_at < cutoff:
            c = q.popleft()
            by_type = self._cells.get(c.cell, {})
            got = by_type.get(c.category)
            if got and got[0].id == c.id:
                got.popleft()
                if not got:
                    del by_type[c.category]
                    if not by_type:
                        del self._cells[c.cell]


def _conn_rows(conn: Connection, stmt: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(stmt, params)]


_RECENT: weakref.WeakKeyDictionary[Any, _RecentIncidents] = weakref.WeakKeyDictionary()
_RECENT_LOCK = threading.Lock()


def _recent_incidents(conn: Connection) -> _RecentIncidents:
    """This process's memory of recent incidents for the database of `conn`."""
    with _RECENT_LOCK:
        got = _RECENT.get(conn.engine)
        if got is None:
            got = _RECENT[conn.engine] = _RecentIncidents()
        return got


#: Grid cells a little larger than the duplicate radius, in degrees of latitude.
_CELL_DEG = DUPLICATE_RADIUS_M / _M_PER_DEG


def location_cell(lon: float, lat: float) -> int:
    """The duplicate-radius grid cell holding (lon, lat), as one integer (stored on each
    incident and indexed with its receive time)."""
    return math.floor((lat + 90.0) / _CELL_DEG) * 200_000 + math.floor((lon + 180.0) / _CELL_DEG)


def cells_around(lon: float, lat: float) -> list[int]:
    """The cells that may hold a point within the duplicate radius of (lon, lat): the
    3 x 3 block, wider in longitude away from the equator."""
    ky = math.floor((lat + 90.0) / _CELL_DEG)
    kx = math.floor((lon + 180.0) / _CELL_DEG)
    nx = math.ceil(1 / max(math.cos(math.radians(lat)), 0.01))
    return [(ky + dy) * 200_000 + kx + dx for dy in (-1, 0, 1) for dx in range(-nx, nx + 1)]


def _valid_point(lon: float, lat: float) -> bool:
    try:
        geo.check_point(lon, lat)
    except InvalidInput:
        return False
    return True


_TARGET_COLUMNS = (
    Incident.id,
    Incident.category,
    Incident.priority,
    Incident.status,
    Incident.lon,
    Incident.lat,
    Incident.station_id,
    Incident.tehsil_id,
    Incident.district_id,
    Incident.province_id,
    Incident.inside_jurisdiction,
    Incident.call_count,
    Incident.received_at,
    Incident.updated_at,
    Incident.description,
)
_OPEN_VALUES = frozenset(s.value for s in OPEN)
_CANDIDATE_COLUMNS = (
    Incident.id,
    Incident.cell,
    Incident.lon,
    Incident.lat,
    Incident.category,
    Incident.status,
    type_coerce(Incident.received_at, NullType()),  # no result processing
)
#: Incidents received since a time in some grid cells: the duplicate candidates of a
#: batch of calls, only what matching needs, the time as the driver stores it (see
#: `_read_candidates`). Built once, run as a `ListQuery` (a batch costs only its
#: parameters). Status is checked in Python, so the planner has one index to use:
#: (cell, received_at).
_RECENT_IN_CELLS = ListQuery(
    select(*_CANDIDATE_COLUMNS).where(
        Incident.cell.in_(bindparam("cells", expanding=True)),
        Incident.received_at >= bindparam("since", type_=UTCDateTime()),
    ),
    lists=("cells",),
    scalars=("since",),
)
#: Incidents stored since the last one a process remembers (see `_RecentIncidents`).
_CANDIDATES_AFTER = (
    select(*_CANDIDATE_COLUMNS)
    .where(Incident.id > bindparam("after", type_=Integer()))
    .order_by(Incident.id)
)
#: A chunk of incidents, newest first, before an id (a process's first read of the window).
_CANDIDATES_BEFORE = (
    select(*_CANDIDATE_COLUMNS)
    .where(Incident.id < bindparam("before", type_=Integer()))
    .order_by(Incident.id.desc())
    .limit(_RecentIncidents.BOOTSTRAP_CHUNK)
)
#: The rest of the incidents a batch's calls were linked to.
_TARGETS = ListQuery(
    select(*_TARGET_COLUMNS).where(Incident.id.in_(bindparam("ids", expanding=True))),
    lists=("ids",),
)
_TARGET_NAMES = tuple(c.key for c in _TARGET_COLUMNS)


#: Calls already taken in under some external ids (statements built once: see above).
_BY_EXTERNAL_ID = ListQuery(
    select(
        Call.external_id,
        Call.id,
        Call.linked_as_duplicate,
        Incident.id.label("incident_id"),
        Incident.station_id,
        Incident.district_id,
        Incident.inside_jurisdiction,
        Incident.priority,
        Incident.status,
    )
    .join(Incident, Incident.id == Call.incident_id)
    .where(Call.external_id.in_(bindparam("ext", expanding=True))),
    lists=("ext",),
)
#: Prank calls per caller number since a time.
_PRANKS = ListQuery(
    # The incident's type as a subquery, not a join: with a join SQLite's planner started
    # from the incidents of type "prank" (its category index) and read every prank call
    # ever stored, a batch's cost growing with history (3.4 ms a batch at 20,000 calls).
    # Now it starts from the batch's numbers (the caller_number index).
    select(Call.caller_number, func.count())
    .where(
        Call.caller_number.in_(bindparam("numbers", expanding=True)),
        Call.received_at >= bindparam("since", type_=UTCDateTime()),
        select(Incident.category)
        .where(Incident.id == Call.incident_id)
        .correlate(Call)
        .scalar_subquery()
        == "prank",
    )
    .group_by(Call.caller_number),
    lists=("numbers",),
    scalars=("since",),
)


def _type_from(types: dict[str, IncidentTypeOut], code: str) -> IncidentTypeOut:
    row = types.get(code)
    if row is None or not row.active:
        known = sorted(c for c, t in types.items() if t.active)
        raise InvalidInput(f"unknown category {code!r}; one of: {', '.join(known)}")
    return row


def _calls_by_external_id(session: Session, ext_ids: list[str]) -> dict[str, CallAccepted]:
    """Calls already taken in under these external ids, as the answer to a repeat."""
    if not ext_ids:
        return {}
    locator = geo.station_locator(session)
    rows = _BY_EXTERNAL_ID.all(session.connection(), {"ext": sorted(set(ext_ids))})
    # Driver values (see `ListQuery`): SQLite's booleans are 0/1.
    return {
        str(ext): CallAccepted(
            incident_id=incident_id,
            call_id=call_id,
            station_id=station_id,
            station_name=locator.station(station_id).station_name,
            district_id=district_id,
            inside_jurisdiction=bool(inside),
            priority=priority,
            status=status,
            linked_to_existing=bool(linked),
            duplicate_of_external_id=True,
        )
        for (
            ext,
            call_id,
            linked,
            incident_id,
            station_id,
            district_id,
            inside,
            priority,
            status,
        ) in rows
    }


def _prank_counts(session: Session, requests: Sequence[CallRequest]) -> dict[str, int]:
    """Prank calls per caller number of the batch within the prank window."""
    numbers = sorted({r.call.caller_number for r in requests})
    if not numbers:
        return {}
    since = min(r.received_at for r in requests) - PRANK_WINDOW
    rows = _PRANKS.all(session.connection(), {"numbers": numbers, "since": since})
    return {str(n): int(c) for n, c in rows}


_INCIDENT_COLUMNS = (
    "source",
    "category",
    "priority",
    "status",
    "caller_number",
    "caller_name",
    "description",
    "address",
    "lon",
    "lat",
    "cell",
    "station_id",
    "tehsil_id",
    "district_id",
    "province_id",
    "area_type",
    "inside_jurisdiction",
    "call_count",
    "received_at",
    "routed_at",
    "updated_at",
    "created_by",
)
_CALL_COLUMNS = (
    "external_id",
    "incident_id",
    "source",
    "category",
    "caller_number",
    "caller_name",
    "description",
    "lon",
    "lat",
    "linked_as_duplicate",
    "received_at",
    "taken_by",
)


def _inserting(model: type[Base], names: tuple[str, ...]) -> BulkStatement:
    """A batch insert of `names` that gives back each row's new id, in row order. Compiled
    once; on SQLite each row is one driver call instead of SQLAlchemy's per-row statement
    (see `BulkStatement.insert_returning`): a helpline batch inserts a few hundred rows."""
    table = _table(model)
    return BulkStatement(
        insert(table)
        .values({name: bindparam(name) for name in names})
        .returning(table.c.id, sort_by_parameter_order=True),
        names=names,
    )


def _insert_incidents(session: Session, new: list[_NewIncident]) -> None:
    """The batch's new incidents and their first timeline entries, in a few statements."""
    if not new:
        return
    cols: dict[str, list[Any]] = {name: [] for name in _INCIDENT_COLUMNS}
    for inc in new:
        req = inc.request_data
        assert req is not None
        call = req.call
        at = inc.received_at
        for name, value in zip(
            _INCIDENT_COLUMNS,
            (
                req.source,
                inc.category,
                inc.priority,
                inc.status,
                call.caller_number,
                call.caller_name,
                inc.description,
                call.address,
                inc.lon,
                inc.lat,
                location_cell(inc.lon, inc.lat),
                inc.station_id,
                inc.tehsil_id,
                inc.district_id,
                inc.province_id,
                inc.area_type,
                inc.inside_jurisdiction,
                1,
                at,
                at,
                at,
                req.actor.name,
            ),
            strict=True,
        ):
            cols[name].append(value)
    conn = session.connection()
    ids = _INSERT_INCIDENTS.insert_returning(conn, cols)
    events: list[tuple[int, datetime, str, str, str, dict[str, Any]]] = []
    for inc, new_id in zip(new, ids, strict=True):
        inc.id = int(new_id)
        req = inc.request_data
        assert req is not None
        at, actor = inc.received_at, req.actor.name
        events.append(
            _event_row(
                inc.id,
                at,
                "received",
                actor,
                f"{req.source} ({inc.itype_label}) from {req.call.caller_number}",
            )
        )
        note = f"routed to {inc.station_name}"
        if not inc.inside_jurisdiction:
            note += f" (outside every jurisdiction; nearest station, {inc.distance_m:.0f} m away)"
        events.append(
            _event_row(
                inc.id,
                at,
                "routed",
                "system",
                note,
                {"station_id": inc.station_id, "inside": inc.inside_jurisdiction},
            )
        )
        if inc.prank:
            events.append(
                _event_row(
                    inc.id,
                    at,
                    "flag",
                    "system",
                    f"{req.call.caller_number} made prank calls before",
                )
            )
        publish_after_commit(
            session, "incidents.created", _payload(inc, "created", inc.station_name)
        )
    _insert_events(conn, events)


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


_EVENT_COLUMNS = ("incident_id", "at", "kind", "actor", "note", "data")


def _event_row(
    incident_id: int,
    at: datetime,
    kind: str,
    actor: str,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> tuple[int, datetime, str, str, str, dict[str, Any]]:
    """One timeline row of a batch, its values in `_EVENT_COLUMNS` order."""
    return (incident_id, at, kind, actor, note, data or {})


#: Timeline rows of an intake batch (two or three a call): through `BulkStatement`, whose
#: per-row cost is a fraction of `Connection.execute` with a list of dicts, for the same
#: stored values (the columns' own bind processors). No ids are fetched back.
_INSERT_EVENTS = BulkStatement(
    insert(_table(IncidentEvent))
    .inline()
    .values({name: bindparam(name) for name in _EVENT_COLUMNS}),
    names=_EVENT_COLUMNS,
)


def _insert_events(
    conn: Connection, rows: list[tuple[int, datetime, str, str, str, dict[str, Any]]]
) -> None:
    _INSERT_EVENTS.execute(
        conn, {name: [r[k] for r in rows] for k, name in enumerate(_EVENT_COLUMNS)}
    )


_INSERT_INCIDENTS = _inserting(Incident, _INCIDENT_COLUMNS)
_INSERT_CALLS = _inserting(Call, _CALL_COLUMNS)


def _insert_calls(
    session: Session,
    requests: Sequence[CallRequest],
    links: list[tuple[int, _Linked]],
    new: list[_NewIncident],
) -> dict[int, int]:
    """Every taken-in call of the batch (request index -> call id), with a timeline entry
    and an update event for each call linked as a duplicate."""
    made: list[tuple[int, int, bool]] = [(inc.request, inc.id, False) for inc in new]
    made += [(i, target.id, True) for i, target in links]
    if not made:
        return {}
    made.sort()
    cols: dict[str, list[Any]] = {name: [] for name in _CALL_COLUMNS}
    events: list[tuple[int, datetime, str, str, str, dict[str, Any]]] = []
    for i, incident_id, duplicate in made:
        req = requests[i]
        call = req.call
        for name, value in zip(
            _CALL_COLUMNS,
            (
                call.external_id,
                incident_id,
                req.source,
                call.category,
                call.caller_number,
                call.caller_name,
                call.description,
                call.lon,
                call.lat,
                duplicate,
                req.received_at,
                req.actor.name,
            ),
            strict=True,
        ):
            cols[name].append(value)
    conn = session.connection()
    ids = _INSERT_CALLS.insert_returning(conn, cols)
    for i, target in links:
        req = requests[i]
        target.call_count += 1
        target.updated_at = max(target.updated_at, req.received_at)
        events.append(
            _event_row(
                target.id,
                req.received_at,
                "call_linked",
                req.actor.name,
                f"another {req.call.category} call from {req.call.caller_number} linked as "
                "duplicate",
                {"caller_number": req.call.caller_number, "category": req.call.category},
            )
        )
        publish_after_commit(session, "incidents.updated", _payload(target, "call_linked"))
    if events:
        _insert_events(conn, events)
    return {m[0]: int(cid) for m, cid in zip(made, ids, strict=True)}


#: Call counts and change times of incidents that got duplicate calls (see `_update_linked`).
_ADD_LINKED_CALLS = BulkStatement(
    update(_table(Incident))
    .where(_table(Incident).c.id == bindparam("b_id"))
    .values(
        call_count=_table(Incident).c.call_count + bindparam("b_n", type_=Integer()),
        updated_at=bindparam("b_at"),
    ),
    names=("b_id", "b_n", "b_at"),
)


def _update_linked(session: Session, links: list[tuple[int, _Linked]]) -> None:
    """Call counts of the incidents that got duplicate calls in this batch (new incidents
    were inserted with a count of one). Relative, so a concurrent writer adds to it."""
    targets = list({id(t): t for _, t in links}.values())
    if not targets:
        return
    _ADD_LINKED_CALLS.execute(
        session.connection(),
        {
            "b_id": [t.id for t in targets],
            "b_n": [len(t.calls) for t in targets],
            "b_at": [t.updated_at for t in targets],
        },
    )


def _accepted_from(
    inc: _Target, call_id: int, locator: geo.StationLocator, *, linked: bool, prank: bool
) -> CallAccepted:
    name = (
        inc.station_name
        if isinstance(inc, _NewIncident)
        else locator.station(inc.station_id).station_name
    )
    return CallAccepted(
        incident_id=inc.id,
        call_id=call_id,
        station_id=inc.station_id,
        station_name=name,
        district_id=inc.district_id,
        inside_jurisdiction=inc.inside_jurisdiction,
        priority=inc.priority,
        status=inc.status,
        linked_to_existing=linked,
        repeat_prank_caller=prank,
    )


def _call_by_external_id(session: Session, external_id: str) -> Call | None:
    return session.scalar(select(Call).where(Call.external_id == external_id))


def _accepted(
    session: Session,
    row: Call,
    *,
    linked: bool | None = None,
    prank: bool = False,
    duplicate_external: bool = False,
) -> CallAccepted:
    inc = session.get(Incident, row.incident_id)
    assert inc is not None
    station = geo.station_locator(session).station(inc.station_id)
    return CallAccepted(
        incident_id=inc.id,
        call_id=row.id,
        station_id=inc.station_id,
        station_name=station.station_name,
        district_id=inc.district_id,
        inside_jurisdiction=inc.inside_jurisdiction,
        priority=inc.priority,
        status=inc.status,
        linked_to_existing=row.linked_as_duplicate if linked is None else linked,
        duplicate_of_external_id=duplicate_external,
        repeat_prank_caller=prank,
    )


def _distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    k = math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot((lon1 - lon2) * k, lat1 - lat2) * _M_PER_DEG


def split_call(session: Session, *, call_id: int, actor: Principal, now: datetime) -> CallAccepted:
    """Undo a duplicate link: the call becomes an incident of its own. Commits."""
    actor.require(Perm.CALLS_CREATE)
    # An id past the INTEGER column names no row (and would fail the query itself).
    row = session.get(Call, call_id) if 1 <= call_id <= MAX_ROW_ID else None
    if row is None:
        raise NotFound(f"call {call_id} does not exist")
    if not row.linked_as_duplicate:
        raise Conflict(
            f"call {call_id} opened incident {row.incident_id}; there is nothing to split"
        )
    old = _incident(session, row.incident_id)
    actor.require_covers(_where(old), f"incident {old.id}")
    call = CallIn(
        caller_number=row.caller_number or "000",
        caller_name=row.caller_name,
        lat=row.lat,
        lon=row.lon,
        category=row.category,
        description=row.description,
    )
    # Received when its caller called, not when it was split: the response-time clock of
    # the new incident runs from the call (the caller has waited since), and reports and
    # the call list keep their order.
    req = CallRequest(call=call, actor=actor, received_at=row.received_at, source=row.source)
    location = geo.locate_point(session, lon=call.lon, lat=call.lat)
    inc = _NewIncident.open(0, req, _type(session, row.category), location, prank=False)
    _insert_incidents(session, [inc])
    row.incident_id, row.linked_as_duplicate = inc.id, False
    old.call_count = max(1, old.call_count - 1)
    old.updated_at = now
    _append(
        session,
        old.id,
        now,
        "call_split",
        actor.name,
        f"call {call_id} split off into incident {inc.id}",
    )
    _append(session, inc.id, now, "split_from", actor.name, f"split off incident {old.id}")
    publish_after_commit(session, "incidents.updated", _payload(old, "call_split"))
    session.commit()
    return _accepted(session, row, linked=False)


# --------------------------------------------------------------------------- lifecycle


def _incident(session: Session, incident_id: int) -> Incident:
    # An id past the INTEGER column names no row (and would fail the query itself).
    inc = session.get(Incident, incident_id) if 1 <= incident_id <= MAX_ROW_ID else None
    if inc is None:
        raise NotFound(f"incident {incident_id} does not exist")
    return inc


def _where(inc: Incident) -> JurisdictionIds:
    return JurisdictionIds(inc.station_id, inc.tehsil_id, inc.district_id, inc.province_id)


def change_status(
    session: Session,
    *,
    incident_id: int,
    status: str,
    actor: Principal,
    now: datetime,
    note: str = "",
    disposition: str | None = None,
    data: dict[str, Any] | None = None,
) -> IncidentOut:
    """Move an incident along its lifecycle; illegal steps are refused (409). Flushes; the
    caller commits."""
    actor.require(Perm.INCIDENTS_UPDATE)
    inc = _incident(session, incident_id)
    actor.require_covers(_where(inc), f"incident {incident_id}")
    target = check_transition(inc.status, status, incident_id=incident_id)
    if target is Status.RESOLVED and not disposition:
        raise InvalidInput(
            "a disposition is required to resolve (e.g. arrested, advised, "
            "false_alarm, report_filed)"
        )
    previous = inc.status
    inc.status = target.value
    stamp = STAMP.get(target)
    if stamp and getattr(inc, stamp) is None:
        setattr(inc, stamp, now)
    if disposition:
        inc.disposition = disposition
    inc.updated_at = now
    _append(
        session,
        inc.id,
        now,
        target.value,
        actor.name,
        note,
        {"from": previous, **({"disposition": disposition} if disposition else {}), **(data or {})},
    )
    publish_after_commit(session, "incidents.updated", _payload(inc, target.value))
    session.flush()
    return IncidentOut.model_validate(inc)


def transfer(
    session: Session,
    *,
    incident_id: int,
    actor: Principal,
    now: datetime,
    reason: str,
    station_id: int | None = None,
    agency_name: str | None = None,
) -> IncidentOut:
    """Hand an incident to another station (it is routed there afresh) or to another agency
    (it leaves our queue as `transferred`). Both sides see the hand-over. Flushes."""
    actor.require(Perm.INCIDENTS_UPDATE)
    if (station_id is None) == (agency_name is None):
        raise InvalidInput("give exactly one of station_id or agency_code")
    inc = _incident(session, incident_id)
    actor.require_covers(_where(inc), f"incident {incident_id}")
    before = _payload(inc, "transferred_out")
    if agency_name is not None:
        check_transition(inc.status, Status.TRANSFERRED, incident_id=incident_id)
        inc.status, inc.transferred_to, inc.closed_at = Status.TRANSFERRED.value, agency_name, now
        inc.updated_at = now
        _append(
            session,
            inc.id,
            now,
            "transferred",
            actor.name,
            f"handed over to {agency_name}: {reason}",
            {"agency": agency_name},
        )
        publish_after_commit(session, "incidents.updated", _payload(inc, "transferred"))
        session.flush()
        return IncidentOut.model_validate(inc)
    assert station_id is not None
    dest = geo.get_jurisdiction(session, jurisdiction_id=station_id)
    if dest.level != "station":
        raise InvalidInput(f"jurisdiction {station_id} is a {dest.level}, not a police station")
    if dest.id == inc.station_id:
        raise Conflict(f"incident {incident_id} is already with {dest.name}")
    if inc.status not in (Status.ROUTED, Status.ACKNOWLEDGED):
        raise Conflict(
            f"incident {incident_id} is {inc.status}; only an incident not yet "
            "dispatched can move to another station"
        )
    ids = geo.ids_of(session, jurisdiction_id=station_id)
    old_station = inc.station_id
    inc.station_id, inc.tehsil_id = station_id, ids.tehsil_id
    inc.district_id, inc.province_id = ids.district_id, ids.province_id
    inc.area_type = geo.area_type(session, station_id=station_id)
    inc.status, inc.routed_at, inc.acknowledged_at = Status.ROUTED.value, now, None
    inc.updated_at = now
    _append(
        session,
        inc.id,
        now,
        "transferred",
        actor.name,
        f"moved to {dest.name}: {reason}",
        {"from_station_id": old_station, "to_station_id": station_id},
    )
    publish_after_commit(session, "incidents.updated", before)
    publish_after_commit(session, "incidents.updated", _payload(inc, "transferred_in", dest.name))
    session.flush()
    return IncidentOut.model_validate(inc)


def merge(
    session: Session,
    *,
    incident_id: int,
    into_id: int,
    actor: Principal,
    now: datetime,
    note: str = "",
) -> IncidentOut:
    """Close `incident_id` as a duplicate of `into_id`, moving its calls there. Flushes."""
    if incident_id == into_id:
        raise InvalidInput("an incident cannot be merged into itself")
    target = _incident(session, into_id)
    actor.require_covers(_where(target), f"incident {into_id}")
    if target.status not in {s.value for s in OPEN}:
        raise Conflict(f"incident {into_id} is {target.status}; merge into an open incident")
    out = change_status(
        session,
        incident_id=incident_id,
        status=Status.MERGED,
        actor=actor,
        now=now,
        note=note or f"merged into incident {into_id}",
        data={"into": into_id},
    )
    inc = _incident(session, incident_id)
    inc.merged_into_id = into_id
    moved = 0
    for c in session.scalars(select(Call).where(Call.incident_id == incident_id)):
        c.incident_id, c.linked_as_duplicate = into_id, True
        moved += 1
    target.call_count += moved
    target.updated_at = now
    _append(
        session,
        into_id,
        now,
        "merged_in",
        actor.name,
        f"incident {incident_id} merged in with {moved} call(s)",
    )
    session.flush()
    return out.model_copy(update={"merged_into_id": into_id})


# --------------------------------------------------------------------------- reading


def get_incident(session: Session, *, incident_id: int, actor: Principal) -> IncidentDetail:
    """One incident with its timeline and calls; 403 outside the caller's jurisdiction."""
    actor.require(Perm.INCIDENTS_READ)
    inc = _incident(session, incident_id)
    actor.require_covers(_where(inc), f"incident {incident_id}")
    events = session.scalars(
        select(IncidentEvent).where(IncidentEvent.incident_id == inc.id).order_by(IncidentEvent.id)
    )
    calls = session.scalars(select(Call).where(Call.incident_id == inc.id).order_by(Call.id))
    detail = IncidentDetail.model_validate(inc)
    detail.timeline = [TimelineEntry.model_validate(e) for e in events]
    detail.calls = [CallOut.model_validate(c) for c in calls]
    return detail


def list_incidents(
    session: Session,
    *,
    actor: Principal,
    status: str | None = None,
    open_only: bool = False,
    station_id: int | None = None,
    district_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[IncidentOut]:
    """Newest first, only those inside the caller's jurisdiction; `before_id`: only those
    older than that incident (the next page)."""
    actor.require(Perm.INCIDENTS_READ)
    if not 1 <= limit <= 100_000:
        raise InvalidInput("limit must be between 1 and 100000")
    for name, value in (("since", since), ("until", until)):
        # Stored times are UTC: a time without a zone cannot be compared with them.
        if value is not None and value.utcoffset() is None:
            raise InvalidInput(
                f"{name}: {value.isoformat()} has no time zone; give one, e.g. "
                f"{value.isoformat()}Z or {value.isoformat()}+05:00"
            )
    q = select(Incident).order_by(Incident.id.desc()).limit(limit)
    if actor.scope_level != "all":
        q = q.where(getattr(Incident, f"{actor.scope_level}_id") == actor.scope_id)
    if status is not None:
        q = q.where(Incident.status == status)
    if open_only:
        q = q.where(Incident.status.in_([s.value for s in OPEN]))
    if station_id is not None:
        q = q.where(Incident.station_id == station_id)
    if district_id is not None:
        q = q.where(Incident.district_id == district_id)
    if since is not None:
        q = q.where(Incident.received_at >= since)
    if until is not None:
        q = q.where(Incident.received_at < until)
    if before_id is not None:
        q = q.where(Incident.id < before_id)
    return [IncidentOut.model_validate(i) for i in session.scalars(q)]


#: Incidents read per query by `iter_incidents`.
PAGE = 10_000


def iter_incidents(
    session: Session,
    *,
    actor: Principal,
    open_only: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[IncidentOut]:
    """Every incident that matches, inside the caller's jurisdiction, newest first, read a
    page at a time: for reports over any period. A province's month is hundreds of
    thousands of incidents, and a `limit` silently cut such a report short."""
    before_id: int | None = None
    while True:
        page = list_incidents(
            session,
            actor=actor,
            open_only=open_only,
            since=since,
            until=until,
            limit=PAGE,
            before_id=before_id,
        )
        yield from page
        if len(page) < PAGE:
            return
        before_id = page[-1].incident_id


def open_incidents(session: Session) -> list[IncidentOut]:
    """Every open incident (for the response-time monitor), oldest first."""
    q = select(Incident).where(Incident.status.in_([s.value for s in OPEN])).order_by(Incident.id)
    return [IncidentOut.model_validate(i) for i in session.scalars(q)]


def incidents_crossing(
    session: Session,
    *,
    start_field: str,
    unset_fields: Sequence[str],
    windows: Sequence[tuple[int, str, datetime, datetime]],
    categories: Collection[str] | None = None,
) -> list[IncidentOut]:
    """Open incidents whose `start_field` lies in one of the `(priority, area_type, after,
    until]` windows while every `unset_fields` timestamp is still empty: those whose
    deadline passed in a time window. The response-time monitor asks only for the latest
    window each round, so a round costs what newly fell due, not every open incident."""
    if start_field not in ("routed_at", "received_at"):
        raise ValueError(f"bad start_field {start_field!r}")
    start = getattr(Incident, start_field)
    q = select(Incident).where(Incident.status.in_([st.value for st in OPEN]))
    for name in unset_fields:
        q = q.where(getattr(Incident, name).is_(None))
    if categories is not None:
        q = q.where(Incident.category.in_(list(categories)))
    q = q.where(
        or_(
            *[
                and_(Incident.priority == p, Incident.area_type == a, start > lo, start <= hi)
                for p, a, lo, hi in windows
            ]
        )
    )
    return [IncidentOut.model_validate(i) for i in session.scalars(q.order_by(Incident.id))]


def incident_for_system(session: Session, *, incident_id: int) -> IncidentOut:
    """An incident read by the system itself (timers, dispatch), without a user scope."""
    return IncidentOut.model_validate(_incident(session, incident_id))


def add_note(
    session: Session,
    *,
    incident_id: int,
    actor: Principal,
    now: datetime,
    kind: str,
    note: str,
    data: dict[str, Any] | None = None,
) -> None:
    """Append a timeline entry written by another domain (dispatch, alerts). Flushes."""
    inc = _incident(session, incident_id)
    if not actor.covers(_where(inc)):
        raise Forbidden(f"incident {incident_id} is outside your jurisdiction")
    _append(session, incident_id, now, kind, actor.name, note, data)
    publish_after_commit(session, "incidents.updated", _payload(inc, kind))


def _append(
    session: Session,
    incident_id: int,
    at: datetime,
    kind: str,
    actor: str,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        IncidentEvent(
            incident_id=incident_id, at=at, kind=kind, actor=actor, note=note, data=data or {}
        )
    )


def _payload(
    inc: Incident | _Target, change: str, station_name: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "incident_id": inc.id,
        "change": change,
        "category": inc.category,
        "priority": inc.priority,
        "status": inc.status,
        "lon": inc.lon,
        "lat": inc.lat,
        "station_id": inc.station_id,
        "tehsil_id": inc.tehsil_id,
        "district_id": inc.district_id,
        "province_id": inc.province_id,
        "call_count": inc.call_count,
        "received_at": inc.received_at.isoformat(),
        "updated_at": inc.updated_at.isoformat(),
        "description": inc.description[:200],
    }
    if station_name is not None:
        out["station_name"] = station_name
    return out


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


# --------------------------------------------------------------------------- interchange

#: Who we are in EIDO documents.
AGENCY_NAME = "Khyber Pakhtunkhwa Police - Safe City"
AGENCY_ID = "police.safecity.kp.gov.pk"


def export_eido(session: Session, *, incident_id: int, actor: Principal) -> dict[str, Any]:
    """One incident as a NENA EIDO JSON document."""
    from zoneinfo import ZoneInfo

    from safecity.incidents.eido import incident_to_eido

    detail = get_incident(session, incident_id=incident_id, actor=actor)
    types = _TYPES.get(session)
    itype = types.get(detail.category)
    station = geo.station_locator(session).station(detail.station_id)
    return incident_to_eido(
        detail,
        agency_name=AGENCY_NAME,
        agency_id=AGENCY_ID,
        apco_code=itype.apco_code if itype else "INVEST",
        type_label=itype.label if itype else detail.category,
        station_name=station.station_name,
        tz=ZoneInfo("Asia/Karachi"),
    )


def import_eido(session: Session, *, doc: Any, actor: Principal, now: datetime) -> CallAccepted:
    """An EIDO from another agency taken in as a call (idempotent by its call id). Commits."""
    from safecity.incidents.eido import eido_to_call

    types = sorted(_TYPES.get(session).values(), key=lambda t: (t.priority, t.code))
    apco_to_category: dict[str, str] = {}
    for t in types:  # several of our types share an APCO code: the most urgent wins
        apco_to_category.setdefault(t.apco_code, t.code)
    imp = eido_to_call(
        doc,
        apco_to_category=apco_to_category,
        category_to_apco={t.code: t.apco_code for t in types},
    )
    accepted = receive_call(session, call=imp.call, actor=actor, now=now, source="eido")
    if not accepted.duplicate_of_external_id:
        sender = imp.source_agency_name or imp.source_agency_id or "another agency"
        add_note(
            session,
            incident_id=accepted.incident_id,
            actor=actor,
            now=now,
            kind="eido_import",
            note=f"handed over by {sender} (their incident {imp.source_incident_id})"
            + "".join(f"; {w}" for w in imp.warnings),
        )
        for n in imp.notes:
            add_note(
                session,
                incident_id=accepted.incident_id,
                actor=actor,
                now=now,
                kind="note",
                note=n.text[:2000],
            )
        session.commit()
    return accepted
