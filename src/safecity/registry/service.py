"""Registry logic: create, read, update and delete agencies, sites, cameras, units and
officers; bulk import of sites and cameras from CSV or GeoJSON (all or nothing)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ValidationError
from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from safecity.core.auth import JurisdictionIds, Perm, Principal
from safecity.core.bulk import BulkStatement
from safecity.core.db import MAX_ROW_ID, Base, publish_after_commit
from safecity.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from safecity.geo import service as geo
from safecity.registry.models import Agency, Camera, Officer, Site, Unit
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
    UnitPosition,
    UnitUpdate,
)

M = TypeVar("M", bound=Base)


def _get(session: Session, model: type[M], row_id: int) -> M:
    # An id past the INTEGER column names no row (and would fail the query itself).
    row = session.get(model, row_id) if 1 <= row_id <= MAX_ROW_ID else None
    if row is None:
        raise NotFound(f"{model.__tablename__[:-1]} {row_id} does not exist")
    return row


def _by_code(session: Session, model: type[M], code: str) -> M | None:
    row: M | None = session.scalars(
        select(model).where(model.code == code)  # type: ignore[attr-defined]
    ).first()
    return row


def _unique_code(session: Session, model: type[M], code: str) -> None:
    if _by_code(session, model, code) is not None:
        raise Conflict(f"a {model.__tablename__[:-1]} with code {code!r} already exists")


def _place(session: Session, row: Site | Camera | Unit, lon: float, lat: float) -> None:
    loc = geo.locate_point(session, lon=lon, lat=lat)
    row.lon, row.lat = lon, lat
    row.station_id, row.tehsil_id, row.district_id = loc.station_id, loc.tehsil_id, loc.district_id


def _check_jurisdiction(session: Session, field: str, level: str, jurisdiction_id: int) -> None:
    """`jurisdiction_id`, given as `field` of a body, names a jurisdiction of `level`: an
    unknown id or another level was stored as is (a unit homed at a district)."""
    try:
        got = geo.get_jurisdiction(session, jurisdiction_id=jurisdiction_id)
    except NotFound:
        raise InvalidInput(f"{field}: jurisdiction {jurisdiction_id} does not exist") from None
    if got.level != level:
        word = "a police station" if level == "station" else f"a {level}"
        raise InvalidInput(f"{field}: {jurisdiction_id} is a {got.level}, not {word}")


def _check_officer_places(session: Session, data: dict[str, Any]) -> None:
    for level in ("station", "tehsil", "district"):
        if data.get(f"{level}_id") is not None:
            _check_jurisdiction(session, f"{level}_id", level, data[f"{level}_id"])


def _changed(session: Session, kind: str, row_id: int, action: str) -> None:
    publish_after_commit(session, f"registry.{kind}.{action}", {"id": row_id})


# --------------------------------------------------------------------------- agencies


def create_agency(session: Session, *, agency_in: AgencyIn) -> AgencyOut:
    _unique_code(session, Agency, agency_in.code)
    row = Agency(**agency_in.model_dump())
    session.add(row)
    session.flush()
    _changed(session, "agency", row.id, "created")
    return AgencyOut.model_validate(row)


def get_agency(session: Session, *, code: str) -> AgencyOut:
    row = _by_code(session, Agency, code)
    if row is None:
        known = ", ".join(a.code for a in list_agencies(session))
        raise InvalidInput(f"agency {code!r} is not known; one of: {known}")
    return AgencyOut.model_validate(row)


def list_agencies(session: Session) -> list[AgencyOut]:
    return [
        AgencyOut.model_validate(r) for r in session.scalars(select(Agency).order_by(Agency.id))
    ]


# --------------------------------------------------------------------------- sites


def create_site(session: Session, *, site_in: SiteIn, now: datetime) -> SiteOut:
    _unique_code(session, Site, site_in.code)
    row = Site(
        code=site_in.code,
        name=site_in.name,
        kind=site_in.kind,
        address=site_in.address,
        updated_at=now,
    )
    _place(session, row, site_in.lon, site_in.lat)
    session.add(row)
    session.flush()
    _changed(session, "site", row.id, "created")
    return SiteOut.model_validate(row)


def get_site(session: Session, *, site_id: int) -> SiteOut:
    return SiteOut.model_validate(_get(session, Site, site_id))


def list_sites(session: Session, *, station_id: int | None = None) -> list[SiteOut]:
    q = select(Site).order_by(Site.id)
    if station_id is not None:
        q = q.where(Site.station_id == station_id)
    return [SiteOut.model_validate(r) for r in session.scalars(q)]


def update_site(session: Session, *, site_id: int, update: SiteUpdate, now: datetime) -> SiteOut:
    row = _get(session, Site, site_id)
    data = update.model_dump(exclude_unset=True)
    lon, lat = data.pop("lon", row.lon), data.pop("lat", row.lat)
    for k, v in data.items():
        setattr(row, k, v)
    if (lon, lat) != (row.lon, row.lat):
        _place(session, row, lon, lat)
    row.updated_at = now
    _changed(session, "site", row.id, "updated")
    return SiteOut.model_validate(row)


def delete_site(session: Session, *, site_id: int) -> None:
    row = _get(session, Site, site_id)
    n = session.scalar(select(func.count()).select_from(Camera).where(Camera.site_id == site_id))
    if n:
        raise Conflict(f"site {site_id} still has {n} camera(s); move or delete them first")
    session.delete(row)
    _changed(session, "site", site_id, "deleted")


# --------------------------------------------------------------------------- cameras


def create_camera(session: Session, *, camera_in: CameraIn, now: datetime) -> CameraOut:
    _unique_code(session, Camera, camera_in.code)
    site = _by_code(session, Site, camera_in.site_code)
    if site is None:
        raise InvalidInput(f"camera {camera_in.code!r}: site {camera_in.site_code!r} is not known")
    row = Camera(
        code=camera_in.code,
        name=camera_in.name,
        site_id=site.id,
        kind=camera_in.kind,
        stream_url=camera_in.stream_url,
        detect_url=camera_in.detect_url,
        heading_deg=camera_in.heading_deg,
        status="unknown",
        updated_at=now,
    )
    lon = camera_in.lon if camera_in.lon is not None else site.lon
    lat = camera_in.lat if camera_in.lat is not None else site.lat
    _place(session, row, lon, lat)
    session.add(row)
    session.flush()
    _changed(session, "camera", row.id, "created")
    return CameraOut.model_validate(row)


def get_camera(session: Session, *, camera_id: int) -> CameraOut:
    return CameraOut.model_validate(_get(session, Camera, camera_id))


def list_cameras(
    session: Session,
    *,
    site_id: int | None = None,
    station_id: int | None = None,
    actor: Principal | None = None,
) -> list[CameraOut]:
    """Cameras, of a site or a station, and with `actor` only those it may see."""
    q = select(Camera).order_by(Camera.id)
    visible = cameras_visible_to(session, actor=actor) if actor is not None else None
    if visible is not None:
        q = q.where(Camera.id.in_(visible))
    if site_id is not None:
        q = q.where(Camera.site_id == site_id)
    if station_id is not None:
        q = q.where(Camera.station_id == station_id)
    out = [CameraOut.model_validate(r) for r in session.scalars(q)]
    return [_shown_to(c, actor) for c in out] if actor is not None else out


# A camera's stream URL usually carries the camera's login (rtsp://admin:pass@...): only
# those who configure cameras see it; everyone else gets the URL without its secrets.
_SECRET_PARAMS = {"password", "passwd", "pass", "pwd", "token", "key", "auth", "secret", "sig"}


def stream_url_without_secrets(url: str) -> str:
    """`url` with the password of its user part and the values of password-like query
    parameters replaced by `***`."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        creds, host = netloc.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in creds else f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _shown_to(camera: CameraOut, actor: Principal) -> CameraOut:
    if actor.has(Perm.REGISTRY_WRITE):
        return camera
    detect = camera.detect_url
    return camera.model_copy(
        update={
            "stream_url": stream_url_without_secrets(camera.stream_url),
            "detect_url": stream_url_without_secrets(detect) if detect else detect,
        }
    )


# Cameras are seen within a jurisdiction: an SHO or a field officer sees his station's
# cameras (live pictures, snapshots, zones drawn on an embassy's wall), a district SP his
# district's; the command centre (scope "all") sees every camera. A camera belongs where
# it stands (outside every area: to the nearest station, like a call from there).


def camera_jurisdiction(session: Session, *, camera: CameraOut) -> JurisdictionIds:
    """Every level of the jurisdiction a camera stands in (for scoping its events)."""
    return _jurisdiction(session, camera.station_id, camera.district_id)


def _jurisdiction(
    session: Session, station_id: int | None, district_id: int | None
) -> JurisdictionIds:
    place = station_id if station_id is not None else district_id
    if place is None:
        return JurisdictionIds()
    try:
        return geo.ids_of(session, jurisdiction_id=place)
    except NotFound:  # a station replaced by a new import since: what the row says
        return JurisdictionIds(station_id=station_id, district_id=district_id)


def cameras_visible_to(session: Session, *, actor: Principal) -> set[int] | None:
    """The ids of the cameras inside `actor`'s jurisdiction; None when it covers all."""
    if actor.scope_level == "all":
        return None
    rows = session.execute(select(Camera.id, Camera.station_id, Camera.district_id)).all()
    places = {(r.station_id, r.district_id) for r in rows}
    covered = {p for p in places if actor.covers(_jurisdiction(session, *p))}
    return {r.id for r in rows if (r.station_id, r.district_id) in covered}


def visible_camera(session: Session, *, camera_id: int, actor: Principal) -> CameraOut:
    """The camera, if `actor` may see it: NotFound when there is none, Forbidden when it
    lies outside the actor's jurisdiction."""
    cam = get_camera(session, camera_id=camera_id)
    if not actor.covers(_jurisdiction(session, cam.station_id, cam.district_id)):
        raise Forbidden(
            f"camera {camera_id} is outside your jurisdiction ({actor.scope_level} scope)"
        )
    return _shown_to(cam, actor)


def update_camera(
    session: Session, *, camera_id: int, update: CameraUpdate, now: datetime
) -> CameraOut:
    row = _get(session, Camera, camera_id)
    for k, v in update.model_dump(exclude_unset=True).items():
        setattr(row, k, v)
    row.updated_at = now
    _changed(session, "camera", row.id, "updated")
    return CameraOut.model_validate(row)


def delete_camera(session: Session, *, camera_id: int) -> None:
    session.delete(_get(session, Camera, camera_id))
    _changed(session, "camera", camera_id, "deleted")


# --------------------------------------------------------------------------- units


def create_unit(session: Session, *, unit_in: UnitIn, now: datetime) -> UnitOut:
    _unique_code(session, Unit, unit_in.code)
    _check_jurisdiction(session, "home_station_id", "station", unit_in.home_station_id)
    agency_id = None
    if unit_in.agency_code is not None:
        agency = _by_code(session, Agency, unit_in.agency_code)
        if agency is None:
            raise InvalidInput(f"agency {unit_in.agency_code!r} is not known")
        agency_id = agency.id
    row = Unit(
        code=unit_in.code,
        callsign=unit_in.callsign,
        kind=unit_in.kind,
        home_station_id=unit_in.home_station_id,
        agency_id=agency_id,
        status=unit_in.status,
        updated_at=now,
    )
    _place(session, row, unit_in.lon, unit_in.lat)
    session.add(row)
    session.flush()
    _changed(session, "unit", row.id, "created")
    return UnitOut.model_validate(row)


def unit_positions(
    session: Session,
    *,
    status: str | None = None,
    ids: Sequence[int] | None = None,
) -> list[UnitPosition]:
    """Units' positions and kinds, read as plain rows: all of them, or those with the
    given ids."""
    q = select(
        Unit.id, Unit.callsign, Unit.kind, Unit.status, Unit.home_station_id, Unit.lon, Unit.lat
    )
    if status is not None:
        q = q.where(Unit.status == status)
    if ids is not None:
        q = q.where(Unit.id.in_(ids))
    return [
        UnitPosition.model_construct(
            id=r[0], callsign=r[1], kind=r[2], status=r[3], home_station_id=r[4], lon=r[5], lat=r[6]
        )
        for r in session.execute(q)
    ]


def get_unit(session: Session, *, unit_id: int) -> UnitOut:
    return UnitOut.model_validate(_get(session, Unit, unit_id))


def list_units(
    session: Session, *, station_id: int | None = None, status: str | None = None
) -> list[UnitOut]:
    q = select(Unit).order_by(Unit.id)
    if station_id is not None:
        q = q.where(Unit.home_station_id == station_id)
    if status is not None:
        q = q.where(Unit.status == status)
    return [UnitOut.model_validate(r) for r in session.scalars(q)]


def update_unit(session: Session, *, unit_id: int, update: UnitUpdate, now: datetime) -> UnitOut:
    row = _get(session, Unit, unit_id)
    data = update.model_dump(exclude_unset=True)
    if "home_station_id" in data:
        _check_jurisdiction(session, "home_station_id", "station", data["home_station_id"])
    for k, v in data.items():
        setattr(row, k, v)
    row.updated_at = now
    _changed(session, "unit", row.id, "updated")
    return UnitOut.model_validate(row)


def _unit_where(session: Session, row: Unit) -> dict[str, int | None]:
    """Where a unit is, at every level, for its events: the live stream shows an event to
    a caller whose scope covers it, and one naming no tehsil or province reached no tehsil
    or province-scoped caller."""
    station = geo.station_locator(session).stations.get(row.station_id or 0)
    return {
        "station_id": row.station_id,
        "tehsil_id": row.tehsil_id,
        "district_id": row.district_id,
        "province_id": station.province_id if station is not None else None,
    }


def move_unit(session: Session, *, unit_id: int, lon: float, lat: float, at: datetime) -> UnitOut:
    """A GPS position of a unit; published as `units.location` for the live map."""
    row = _get(session, Unit, unit_id)
    _place(session, row, lon, lat)
    row.last_seen = at
    publish_after_commit(
        session,
        "units.location",
        {
            "id": row.id,
            "callsign": row.callsign,
            "lon": lon,
            "lat": lat,
            "status": row.status,
            **_unit_where(session, row),
            "at": at.isoformat(),
        },
    )
    return UnitOut.model_validate(row)


def set_unit_status(session: Session, *, unit_id: int, status: str, now: datetime) -> UnitOut:
    """Dispatch's view of a unit changed (available, dispatched, en route...). Flushes."""
    row = _get(session, Unit, unit_id)
    UnitUpdate.model_validate({"status": status})  # refuses an unknown status name
    row.status = status
    row.updated_at = now
    publish_after_commit(
        session,
        "units.status",
        {
            "id": row.id,
            "callsign": row.callsign,
            "status": status,
            "lon": row.lon,
            "lat": row.lat,
            **_unit_where(session, row),
        },
    )
    session.flush()
    return UnitOut.model_validate(row)


#: Which of some unit ids exist (built once: the AVL gateway asks many times a second).
_KNOWN_UNITS = select(Unit.id).where(Unit.id.in_(bindparam("ids", expanding=True)))


def unit_points(
    session: Session, *, status: str | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Every unit's id, lon and lat as arrays: the cheap read for ranking thousands of
    units by distance (no object per unit)."""
    q = select(Unit.id, Unit.lon, Unit.lat)
    if status is not None:
        q = q.where(Unit.status == status)
    rows = session.connection().execute(q).all()
    if not rows:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty
    # Column tuples first: numpy reads a list of Row objects one element at a time.
    ids, lons, lats = zip(*rows, strict=True)
    return (
        np.array(ids, dtype=np.int64),
        np.array(lons, dtype=np.float64),
        np.array(lats, dtype=np.float64),
    )


#: The units' live positions, one row per unit: run thousands of times a second for an AVL
#: gateway, so without SQLAlchemy's per-row parameter work (see `core.bulk`).
_UNITS = cast(Table, Unit.__table__)
#: Only to a newer fix: a fix that arrives late (a gateway catching up after an outage,
#: batches overtaking each other) is history, not where the unit is now.
_MOVE_UNITS = BulkStatement(
    update(_UNITS)
    .where(
        _UNITS.c.id == bindparam("b_id"),
        or_(_UNITS.c.last_seen.is_(None), _UNITS.c.last_seen <= bindparam("not_before")),
    )
    .values(
        lon=bindparam("lon"),
        lat=bindparam("lat"),
        last_seen=bindparam("last_seen"),
        station_id=bindparam("station_id"),
        tehsil_id=bindparam("tehsil_id"),
        district_id=bindparam("district_id"),
    ),
    names=(
        "b_id",
        "not_before",
        "lon",
        "lat",
        "last_seen",
        "station_id",
        "tehsil_id",
        "district_id",
    ),
)
#: The units' fix times, to tell a late fix from an unknown unit.
_LAST_SEEN = select(Unit.id, Unit.last_seen).where(Unit.id.in_(bindparam("ids", expanding=True)))


def missing_units(session: Session, *, unit_ids: Iterable[int]) -> set[int]:
    """Which of `unit_ids` are no unit: one statement for up to 5,000 ids."""
    ids = sorted(set(unit_ids))
    conn = session.connection()
    known: set[int] = set()
    for k in range(0, len(ids), 5000):  # well within any database's parameter limit
        known.update(conn.scalars(_KNOWN_UNITS, {"ids": ids[k : k + 5000]}))
    return {i for i in ids if i not in known}


def unknown_units(missing: Iterable[int]) -> NotFound:
    """The refusal of positions of units that do not exist."""
    return NotFound(f"unknown unit id(s): {', '.join(map(str, sorted(missing)[:20]))}")


def record_positions(
    session: Session, *, positions: list[tuple[int, float, float, datetime]]
) -> list[tuple[int, float, float, datetime]]:
    """Many GPS fixes at once (unit_id, lon, lat, at), located in one vectorised lookup and
    written in one statement. Unknown units are refused whole. A unit's position moves only
    to a fix newer than the one it has (a late fix is only history: the caller keeps it as
    such). Returns the fixes that moved a unit."""
    if not positions:
        return []
    latest: dict[int, tuple[int, float, float, datetime]] = {}
    for p in positions:  # a batch may hold several fixes of one unit: keep the newest
        if p[0] not in latest or p[3] >= latest[p[0]][3]:
            latest[p[0]] = p
    rows = list(latest.values())
    uids, lons, lats, ats = (list(c) for c in zip(*rows, strict=True))
    lon_a = np.array(lons, dtype=np.float64)
    lat_a = np.array(lats, dtype=np.float64)
    geo.check_points(lon_a, lat_a)
    locator = geo.station_locator(session)
    st_ids, _inside = locator.locate_many(lon_a, lat_a)
    sids: list[int] = st_ids.tolist()
    stations = [locator.stations[sid] for sid in sids]
    tehsils = [st.tehsil_id for st in stations]
    districts = [st.district_id for st in stations]
    conn = session.connection()
    updated = _MOVE_UNITS.execute(
        conn,
        {
            "b_id": uids,
            "not_before": ats,
            "lon": lons,
            "lat": lats,
            "last_seen": ats,
            "station_id": sids,
            "tehsil_id": tehsils,
            "district_id": districts,
        },
    ).rowcount
    # Unknown units and late fixes are found from the update's row count where the driver
    # reports it for a batch (SQLite, psycopg), which spares a lookup per batch; for unknown
    # units the caller's transaction is then rolled back.
    moved = [True] * len(rows)
    if not conn.dialect.supports_sane_multi_rowcount or updated != len(rows):
        seen: dict[int, datetime | None] = {}
        for k in range(0, len(uids), 5000):  # well within any database's parameter limit
            for uid, last_seen in conn.execute(_LAST_SEEN, {"ids": uids[k : k + 5000]}):
                seen[uid] = last_seen
        missing = {u for u in uids if u not in seen}
        if missing:
            raise unknown_units(missing)
        # Not moved: the unit has a newer fix (after the update, a moved unit's is this one).
        moved = [seen[u] is None or seen[u] == at for u, at in zip(uids, ats, strict=True)]
    for uid, lon, lat, at, st, ok in zip(uids, lons, lats, ats, stations, moved, strict=True):
        if not ok:
            continue
        publish_after_commit(
            session,
            "units.location",
            {
                "id": uid,
                "lon": lon,
                "lat": lat,
                # Every level: see `_unit_where`.
                "station_id": st.id,
                "tehsil_id": st.tehsil_id,
                "district_id": st.district_id,
                "province_id": st.province_id,
                "at": at.isoformat(),
            },
        )
    return [r for r, ok in zip(rows, moved, strict=True) if ok]


def delete_unit(session: Session, *, unit_id: int) -> None:
    session.delete(_get(session, Unit, unit_id))
    _changed(session, "unit", unit_id, "deleted")


# --------------------------------------------------------------------------- officers


def create_officer(session: Session, *, officer_in: OfficerIn) -> OfficerOut:
    _unique_code(session, Officer, officer_in.code)
    unit_id = None
    if officer_in.unit_code is not None:
        unit = _by_code(session, Unit, officer_in.unit_code)
        if unit is None:
            raise InvalidInput(f"unit {officer_in.unit_code!r} is not known")
        unit_id = unit.id
    data = officer_in.model_dump(exclude={"unit_code"})
    _check_officer_places(session, data)
    row = Officer(**data, unit_id=unit_id)
    session.add(row)
    session.flush()
    _changed(session, "officer", row.id, "created")
    return OfficerOut.model_validate(row)


def list_officers(session: Session, *, station_id: int | None = None) -> list[OfficerOut]:
    q = select(Officer).order_by(Officer.id)
    if station_id is not None:
        q = q.where(Officer.station_id == station_id)
    return [OfficerOut.model_validate(r) for r in session.scalars(q)]


def unit_for_username(session: Session, *, username: str) -> UnitOut | None:
    """The unit whose crew includes the officer who logs in as `username` (the field app),
    or None when no officer with a unit has that login."""
    unit_id = session.scalar(
        select(Officer.unit_id)
        .where(Officer.username == username, Officer.unit_id.is_not(None))
        .order_by(Officer.id)
        .limit(1)
    )
    return None if unit_id is None else UnitOut.model_validate(_get(session, Unit, unit_id))


def update_officer(session: Session, *, officer_id: int, update: OfficerUpdate) -> OfficerOut:
    row = _get(session, Officer, officer_id)
    data = update.model_dump(exclude_unset=True)
    _check_officer_places(session, data)
    for k, v in data.items():
        setattr(row, k, v)
    _changed(session, "officer", row.id, "updated")
    return OfficerOut.model_validate(row)


def update_agency(session: Session, *, agency_id: int, update: AgencyUpdate) -> AgencyOut:
    row = _get(session, Agency, agency_id)
    for k, v in update.model_dump(exclude_unset=True).items():
        setattr(row, k, v)
    _changed(session, "agency", row.id, "updated")
    return AgencyOut.model_validate(row)


def delete_agency(session: Session, *, agency_id: int) -> None:
    row = _get(session, Agency, agency_id)
    n = session.scalar(select(func.count()).select_from(Unit).where(Unit.agency_id == agency_id))
    if n:
        raise Conflict(f"agency {row.code} still has {n} unit(s); move or delete them first")
    session.delete(row)
    _changed(session, "agency", agency_id, "deleted")


def delete_officer(session: Session, *, officer_id: int) -> None:
    session.delete(_get(session, Officer, officer_id))
    _changed(session, "officer", officer_id, "deleted")


# --------------------------------------------------------------------------- bulk import


def _rows_from(text: str, fmt: str) -> list[dict[str, Any]]:
    """Rows of a CSV file (header line) or a GeoJSON FeatureCollection of points."""
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        try:
            if not reader.fieldnames:
                raise InvalidInput("CSV file is empty: expected a header line")
            return [
                {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in r.items() if k}
                for r in reader
            ]
        except csv.Error as exc:  # e.g. a field past the csv module's limit (128 KiB)
            raise InvalidInput(f"CSV file, after line {reader.line_num}: {exc}") from None
    if fmt == "geojson":
        import json

        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
            raise InvalidInput("GeoJSON must be a FeatureCollection of Point features")
        features = doc.get("features") or []
        if not isinstance(features, list):
            raise InvalidInput("GeoJSON `features` must be a list of Point features")
        # Each level checked for its type: a feature, geometry or coordinates of another
        # JSON type failed with a TypeError or AttributeError (a 500).
        rows = []
        for i, f in enumerate(features):
            if not isinstance(f, dict):
                raise InvalidInput(f"feature {i}: must be a GeoJSON Feature object")
            geom = f.get("geometry") or {}
            coords = geom.get("coordinates") if isinstance(geom, dict) else None
            if (
                not isinstance(geom, dict)
                or geom.get("type") != "Point"
                or not isinstance(coords, list)
                or len(coords) < 2
            ):
                raise InvalidInput(f"feature {i}: geometry must be a Point [lon, lat]")
            props = f.get("properties") or {}
            if not isinstance(props, dict):
                raise InvalidInput(f"feature {i}: properties must be an object")
            rows.append({**props, "lon": coords[0], "lat": coords[1]})
        return rows
    raise InvalidInput(f"unknown format {fmt!r}: csv or geojson")


def _validated(rows: list[dict[str, Any]], schema: type[BaseModel], what: str) -> list[Any]:
    out, problems = [], []
    for n, raw in enumerate(rows, start=2 if what.endswith("csv") else 0):
        data = {k: v for k, v in raw.items() if v not in ("", None)}
        try:
            out.append(schema.model_validate(data))
        except ValidationError as exc:
            for e in exc.errors():
                field = ".".join(str(p) for p in e["loc"])
                problems.append(f"{what} row {n}: {field}: {e['msg']}")
    if problems:
        raise InvalidInput(
            f"{len(problems)} problem(s), nothing imported: " + "; ".join(problems[:20]),
            details=problems,
        )
    return out


def import_sites(session: Session, *, text: str, fmt: str, now: datetime) -> ImportResult:
    """Create or update sites by code; any bad row refuses the whole file."""
    items: list[SiteIn] = _validated(_rows_from(text, fmt), SiteIn, f"sites {fmt}")
    created = updated = 0
    for s in items:
        row = _by_code(session, Site, s.code)
        if row is None:
            create_site(session, site_in=s, now=now)
            created += 1
        else:
            update_site(
                session,
                site_id=row.id,
                now=now,
                update=SiteUpdate(**s.model_dump(exclude={"code"})),
            )
            updated += 1
    return ImportResult(created=created, updated=updated)


def import_cameras(session: Session, *, text: str, fmt: str, now: datetime) -> ImportResult:
    """Create or update cameras by code; any bad row refuses the whole file. A camera's
    `detect_url` changes only where the row gives one (files without the column keep the
    sub-streams already set; the API clears one)."""
    items: list[CameraIn] = _validated(_rows_from(text, fmt), CameraIn, f"cameras {fmt}")
    missing = sorted({c.site_code for c in items if _by_code(session, Site, c.site_code) is None})
    if missing:
        raise InvalidInput(f"unknown site code(s): {', '.join(missing)}; nothing imported")
    created = updated = 0
    for c in items:
        row = _by_code(session, Camera, c.code)
        if row is None:
            create_camera(session, camera_in=c, now=now)
            created += 1
        else:
            update_camera(
                session,
                camera_id=row.id,
                now=now,
                update=CameraUpdate(
                    **c.model_dump(
                        include={"name", "kind", "stream_url", "heading_deg"}
                        | ({"detect_url"} & c.model_fields_set)
                    )
                ),
            )
            updated += 1
    return ImportResult(created=created, updated=updated)


def counts(session: Session) -> dict[str, int]:
    return {
        m.__tablename__: int(session.scalar(select(func.count()).select_from(m)) or 0)
        for m in (Agency, Site, Camera, Unit, Officer)
    }
