"""Analytics logic over the database: import histories, then trends, alerts, hotspot and
forecast layers, patrol plans and saved evaluations for the API, the console and the CLI.

Datasets: every imported history has a name (`--dataset`, default `history`); `live` is
the mirror of the incidents this system takes in (`mirror_incident`, fed by the
`incidents.created` events). Reads are limited to the caller's jurisdiction: an SHO sees his
station's incidents only; incidents outside every jurisdiction only users of all scope."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table, bindparam, delete, func, insert, select
from sqlalchemy.orm import Session

from safecity.analytics import hotspots, patrol, trends
from safecity.analytics.events import (
    EPOCH,
    Incidents,
    ReadReport,
    local_days,
    zone_info,
)
from safecity.analytics.forecast import DEFAULT_MODEL, History, make_model
from safecity.analytics.grid import FloatArray, Grid
from safecity.analytics.models import HistoryImport, HistoryIncident, SavedEvaluation
from safecity.analytics.schemas import (
    AlertOut,
    DatasetOut,
    EvaluationOut,
    GroupBy,
    ImportOut,
    PatrolCellOut,
    PatrolShiftOut,
    Period,
    Series,
    SeriesPoint,
    TrendReport,
)
from safecity.core.auth import Perm, Principal
from safecity.core.db import publish_after_commit
from safecity.core.errors import InvalidInput, NotFound
from safecity.geo import service as geo

#: The mirror of this system's own incidents.
LIVE_DATASET = "live"
#: Local time of the live dataset (the control room's: Pakistan Standard Time).
LIVE_TZ = "Asia/Karachi"
_DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CHUNK = 5_000

# --------------------------------------------------------------------------- import


def import_history(
    session: Session,
    *,
    incidents: Incidents,
    report: ReadReport,
    dataset: str,
    source: str,
    replace: bool = False,
    now: datetime,
    actor: str,
) -> ImportOut:
    """Store parsed incidents in `dataset`, each with the station whose area holds it.

    Incidents outside every station's area are kept with no station and counted; ids
    already in the dataset are skipped and counted. The caller commits."""
    _check_dataset(dataset)
    if dataset == LIVE_DATASET:
        raise InvalidInput(f"{LIVE_DATASET!r} is the mirror of live incidents; name another")
    known_zone = None if replace else dataset_zone(session, dataset)
    if known_zone is not None and known_zone != incidents.tz:
        # Weeks, weekdays and hours of the whole dataset are counted in one zone.
        raise InvalidInput(
            f"dataset {dataset!r} keeps local time in {known_zone}; this file was read as "
            f"{incidents.tz}: import it with --tz {known_zone}, or into another dataset, "
            "or with --replace"
        )
    if replace:
        session.execute(delete(HistoryIncident).where(HistoryIncident.dataset == dataset))
        session.execute(delete(HistoryImport).where(HistoryImport.dataset == dataset))
    keep = np.ones(len(incidents), dtype=bool)
    utc_all = incidents.utc()  # once: matched against stored rows, then stored
    duplicates = report.duplicate_id
    examples = list(report.examples)
    if incidents.ids is not None:
        known = set(
            session.scalars(
                select(HistoryIncident.external_id).where(
                    HistoryIncident.dataset == dataset, HistoryIncident.external_id.is_not(None)
                )
            )
        )
        if known:
            for i, ident in enumerate(incidents.ids):
                if ident is not None and ident in known:
                    keep[i] = False
            again = int((~keep).sum())
            duplicates += again
            if again:
                examples.append(f"{again} ids already in dataset {dataset!r}: skipped")
    if not replace and len(incidents):
        again = _already_imported(session, dataset, incidents, utc_all, keep)
        duplicates += again
        if again:
            examples.append(
                f"{again} rows without an id have the time, place and type of incidents "
                f"already in dataset {dataset!r} (the file imported again?): skipped; give "
                "--id-col to tell incidents apart, or --replace"
            )
    inc = incidents.select(keep)
    located = _locate(session, inc)
    row = HistoryImport(
        dataset=dataset,
        source=source[:256],
        tz=inc.tz,
        rows=report.rows,
        imported=len(inc),
        bad_date=report.bad_date,
        bad_coordinates=report.bad_coordinates,
        duplicate_id=duplicates,
        outside_jurisdiction=located.outside,
        examples=examples[:20],
        created_at=now,
        created_by=actor[:64],
    )
    session.add(row)
    session.flush()
    utc = [utc_all[i] for i in np.flatnonzero(keep)]
    ids = inc.ids or [None] * len(inc)
    types = inc.types.tolist()
    batch: list[dict[str, Any]] = []
    for i in range(len(inc)):
        batch.append(
            {
                "import_id": row.id,
                "dataset": dataset,
                "external_id": ids[i],
                "occurred_at": utc[i],
                "lon": float(inc.lon[i]),
                "lat": float(inc.lat[i]),
                "type": str(types[i])[:64],
                "station_id": located.station[i],
                "tehsil_id": located.tehsil[i],
                "district_id": located.district[i],
                "province_id": located.province[i],
                "inside_jurisdiction": located.inside[i],
            }
        )
        if len(batch) >= _CHUNK:
            session.execute(insert(HistoryIncident), batch)
            batch = []
    if batch:
        session.execute(insert(HistoryIncident), batch)
    publish_after_commit(
        session, "analytics.history.imported", {"dataset": dataset, "imported": len(inc)}
    )
    _CACHE.clear()
    return ImportOut(
        import_id=row.id,
        dataset=dataset,
        source=row.source,
        tz=row.tz,
        rows=row.rows,
        imported=row.imported,
        bad_date=row.bad_date,
        bad_coordinates=row.bad_coordinates,
        duplicate_id=row.duplicate_id,
        outside_jurisdiction=row.outside_jurisdiction,
        no_jurisdictions_loaded=located.no_layer,
        examples=row.examples,
    )


def describe_import(out: ImportOut) -> str:
    """The import report as lines a person reads."""
    lines = [
        f"{out.source} -> dataset {out.dataset!r} (time zone {out.tz}): {out.rows} rows, "
        f"{out.imported} imported",
    ]
    skipped = out.bad_date + out.bad_coordinates + out.duplicate_id
    if skipped:
        lines.append(
            f"skipped {skipped}: {out.bad_date} bad date, {out.bad_coordinates} bad "
            f"coordinates, {out.duplicate_id} duplicate id"
        )
    if out.no_jurisdictions_loaded:
        lines.append(
            "no police station areas are loaded: the incidents belong to no station "
            "(import them with safecity import geo FILE --level station)"
        )
    elif out.outside_jurisdiction:
        lines.append(
            f"{out.outside_jurisdiction} incidents lie outside every station's area: kept, "
            "with no station"
        )
    lines.extend(f"  {e}" for e in out.examples)
    return "\n".join(lines)


def _check_dataset(name: str) -> None:
    if not _DATASET_RE.match(name):
        raise InvalidInput(
            f"dataset name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


@dataclass
class _Located:
    station: list[int | None]
    tehsil: list[int | None]
    district: list[int | None]
    province: list[int | None]
    inside: list[bool]
    outside: int
    no_layer: bool


def _locate(session: Session, inc: Incidents) -> _Located:
    n = len(inc)
    none: list[int | None] = [None] * n
    try:
        locator = geo.station_locator(session)
    except InvalidInput:
        return _Located(none, list(none), list(none), list(none), [False] * n, n, True)
    if n == 0:
        return _Located([], [], [], [], [], 0, False)
    ids, inside = locator.locate_many(inc.lon, inc.lat)
    hierarchy: dict[int, tuple[int | None, int | None, int | None]] = {}
    for sid in np.unique(ids[inside]).tolist():
        j = geo.ids_of(session, jurisdiction_id=int(sid))
        hierarchy[int(sid)] = (j.tehsil_id, j.district_id, j.province_id)
    station: list[int | None] = []
    tehsil: list[int | None] = []
    district: list[int | None] = []
    province: list[int | None] = []
    for sid, ok in zip(ids.tolist(), inside.tolist(), strict=True):
        if ok:
            t, d, p = hierarchy[int(sid)]
            station.append(int(sid))
            tehsil.append(t)
            district.append(d)
            province.append(p)
        else:
            station.append(None)
            tehsil.append(None)
            district.append(None)
            province.append(None)
    inside_l = [bool(v) for v in inside.tolist()]
    return _Located(station, tehsil, district, province, inside_l, n - sum(inside_l), False)


# --------------------------------------------------------------------------- live mirror


def mirror_incident(session: Session, payload: dict[str, Any]) -> bool:
    """Copy one `incidents.created` event into the live dataset (idempotent)."""
    return mirror_incidents(session, [payload]) == 1


#: Which of some incidents are in the live dataset already (built once: it runs per batch).
_MIRRORED = select(HistoryIncident.external_id).where(
    HistoryIncident.dataset == LIVE_DATASET,
    HistoryIncident.external_id.in_(bindparam("ext", expanding=True)),
)


def mirror_incidents(session: Session, payloads: Sequence[dict[str, Any]]) -> int:
    """Copy `incidents.created` events into the live dataset in two statements (idempotent:
    an incident already there is skipped). Returns how many were new."""
    by_ext: dict[str, dict[str, Any]] = {}
    for p in payloads:
        by_ext.setdefault(f"incident:{p['incident_id']}", p)
    if not by_ext:
        return 0
    have = set(session.scalars(_MIRRORED, {"ext": sorted(by_ext)}))
    rows = []
    for ext, payload in by_ext.items():
        if ext in have:
            continue
        received = datetime.fromisoformat(str(payload["received_at"]))
        if received.tzinfo is None:
            received = received.replace(tzinfo=UTC)
        rows.append(
            {
                "dataset": LIVE_DATASET,
                "external_id": ext,
                "occurred_at": received,
                "lon": float(payload["lon"]),
                "lat": float(payload["lat"]),
                "type": str(payload.get("category") or "")[:64],
                "station_id": payload.get("station_id"),
                "tehsil_id": payload.get("tehsil_id"),
                "district_id": payload.get("district_id"),
                "province_id": payload.get("province_id"),
                "inside_jurisdiction": bool(payload.get("inside_jurisdiction", True)),
            }
        )
    if rows:
        # Core executemany: at helpline peaks this mirrors hundreds of incidents a second.
        table = HistoryIncident.__table__
        assert isinstance(table, Table)
        session.connection().execute(insert(table), rows)
        _CACHE.clear()
    return len(rows)


#: The live mirror's transactions: at most this many incidents, gathered for at most this
#: long after the first one.
MIRROR_BATCH = 500
MIRROR_LINGER_S = 1.0


def start_live_mirror(runtime: Any) -> Callable[[], None]:
    """Mirror new incidents into the live dataset from the bus, in a thread; returns a
    function that stops it. `runtime` is a `core.runtime.Runtime`."""
    sub = runtime.bus.subscribe("incidents.created", durable="analytics-live-mirror")
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            msgs = sub.fetch(batch=MIRROR_BATCH, timeout=1.0)
            if not msgs:
                continue
            # One transaction per batch, gathered for up to MIRROR_LINGER_S: at helpline
            # peaks a commit for every few incidents queued behind call intake for the
            # one SQLite writer (the mirror took 11% of a busy server process's time).
            # Trend charts and anomaly checks do not need the last second.
            until = time.monotonic() + MIRROR_LINGER_S
            while len(msgs) < MIRROR_BATCH and not stop.is_set():
                left = until - time.monotonic()
                if left <= 0:
                    break
                msgs += sub.fetch(batch=MIRROR_BATCH - len(msgs), timeout=left)
            with runtime.sessions() as session:
                mirror_incidents(session, [m.data for m in msgs])
                session.commit()
            for msg in msgs:
                msg.ack()

    thread = threading.Thread(target=loop, name="analytics-live-mirror", daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(timeout=5.0)
        sub.close()

    return close


# --------------------------------------------------------------------------- reading


@dataclass
class Loaded:
    """One dataset as arrays (time-sorted), already limited to the caller's scope."""

    dataset: str
    incidents: Incidents
    station: npt.NDArray[np.int64]  # -1: none
    district: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.incidents)


@dataclass
class _Arrays:
    tz: str
    t: FloatArray
    lon: FloatArray
    lat: FloatArray
    types: npt.NDArray[np.str_]
    levels: dict[str, npt.NDArray[np.int64]]


class _DatasetCache:
    """Datasets as arrays, re-read when their row count or newest id changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], tuple[tuple[int, int], _Arrays]] = {}

    def get(self, session: Session, dataset: str) -> _Arrays:
        key = (session.get_bind().engine.url.render_as_string(hide_password=True), dataset)
        n, last = session.execute(
            select(func.count(HistoryIncident.id), func.max(HistoryIncident.id)).where(
                HistoryIncident.dataset == dataset
            )
        ).one()
        stamp = (int(n or 0), int(last or 0))
        with self._lock:
            hit = self._data.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        arrays = _read_arrays(session, dataset)
        with self._lock:
            self._data[key] = (stamp, arrays)
        return arrays

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_CACHE = _DatasetCache()


def dataset_zone(session: Session, dataset: str) -> str | None:
    """The time zone a dataset's local times are counted in (None: no import yet). All of
    a dataset's imports share it (`import_history` refuses another)."""
    if dataset == LIVE_DATASET:
        return LIVE_TZ
    return session.scalar(
        select(HistoryImport.tz)
        .where(HistoryImport.dataset == dataset)
        .order_by(HistoryImport.id.desc())
        .limit(1)
    )


def _dataset_tz(session: Session, dataset: str) -> str:
    return dataset_zone(session, dataset) or "UTC"


def _already_imported(
    session: Session,
    dataset: str,
    incidents: Incidents,
    utc: list[datetime],
    keep: npt.NDArray[np.bool_],
) -> int:
    """Marks in `keep` the rows without an id that repeat an incident already stored in
    the dataset (same second, place to 1e-6 degree and type), as many times as it is
    stored: a file imported twice adds nothing, while repeats within one file are kept.
    Returns how many rows were marked."""
    no_id = [
        i
        for i in range(len(incidents))
        if keep[i] and (incidents.ids is None or incidents.ids[i] is None)
    ]
    if (
        not no_id
        or session.scalar(
            select(HistoryIncident.id).where(HistoryIncident.dataset == dataset).limit(1)
        )
        is None
    ):
        return 0
    lo, hi = min(utc[i] for i in no_id), max(utc[i] for i in no_id)
    stored: dict[tuple[Any, ...], int] = {}
    rows = session.execute(
        select(*_WHEN_WHERE_WHAT).where(
            HistoryIncident.dataset == dataset,
            HistoryIncident.occurred_at >= lo - timedelta(seconds=1),
            HistoryIncident.occurred_at <= hi + timedelta(seconds=1),
        )
    )
    for at, lon, lat, kind in rows:
        key = _incident_key(at, lon, lat, kind)
        stored[key] = stored.get(key, 0) + 1
    if not stored:
        return 0
    marked = 0
    types = incidents.types.tolist()
    for i in no_id:
        key = _incident_key(utc[i], incidents.lon[i], incidents.lat[i], types[i])
        if stored.get(key, 0) > 0:
            stored[key] -= 1
            keep[i] = False
            marked += 1
    return marked


#: An incident's time, place and type, the columns every analysis reads.
_WHEN_WHERE_WHAT = (
    HistoryIncident.occurred_at,
    HistoryIncident.lon,
    HistoryIncident.lat,
    HistoryIncident.type,
)


def _incident_key(at: datetime, lon: float, lat: float, kind: str) -> tuple[Any, ...]:
    return (
        round(at.timestamp()),
        round(float(lon) * 1e6),
        round(float(lat) * 1e6),
        str(kind)[:64].strip().lower(),
    )


def _read_arrays(session: Session, dataset: str) -> _Arrays:
    rows = session.execute(
        select(
            *_WHEN_WHERE_WHAT,
            HistoryIncident.station_id,
            HistoryIncident.tehsil_id,
            HistoryIncident.district_id,
            HistoryIncident.province_id,
        )
        .where(HistoryIncident.dataset == dataset)
        .order_by(HistoryIncident.occurred_at, HistoryIncident.id)
    ).all()
    tz = _dataset_tz(session, dataset)
    n = len(rows)
    utc_days = np.fromiter(((r[0] - _EPOCH_UTC) / _DAY for r in rows), dtype=np.float64, count=n)
    t = utc_days + _offsets_days(utc_days, tz)

    def ints(i: int) -> npt.NDArray[np.int64]:
        return np.fromiter((-1 if r[i] is None else r[i] for r in rows), np.int64, count=n)

    return _Arrays(
        tz=tz,
        t=t,
        lon=np.fromiter((r[1] for r in rows), np.float64, count=n),
        lat=np.fromiter((r[2] for r in rows), np.float64, count=n),
        types=np.asarray([r[3] for r in rows], dtype=np.str_),
        levels={"station": ints(4), "tehsil": ints(5), "district": ints(6), "province": ints(7)},
    )


_EPOCH_UTC = EPOCH.replace(tzinfo=UTC)
_DAY = timedelta(days=1)


def _offsets_days(utc_days: FloatArray, tz: str) -> FloatArray:
    """The zone's UTC offset (days) at each instant; computed once per distinct hour."""
    if utc_days.size == 0:
        return utc_days
    zone = zone_info(tz)
    hours = np.floor(utc_days * 24.0).astype(np.int64)
    uniq, inv = np.unique(hours, return_inverse=True)
    offs = np.empty(uniq.size)
    for i, h in enumerate(uniq.tolist()):
        when = _EPOCH_UTC + timedelta(hours=h)
        off = when.astimezone(zone).utcoffset()
        offs[i] = (off or timedelta(0)) / _DAY
    return np.asarray(offs[inv], dtype=np.float64)


def load(
    session: Session,
    *,
    actor: Principal,
    dataset: str,
    types: Sequence[str] | None = None,
) -> Loaded:
    """A dataset's incidents visible to `actor`, optionally of some types only."""
    actor.require(Perm.INCIDENTS_READ)
    _check_dataset(dataset)
    arrays = _CACHE.get(session, dataset)
    if arrays.t.size == 0:
        raise NotFound(
            f"dataset {dataset!r} holds no incidents; import one with "
            "safecity import incidents FILE.csv --dataset NAME"
        )
    mask = np.ones(arrays.t.size, dtype=bool)
    if actor.scope_level in ("district", "tehsil", "station"):
        mask &= arrays.levels[actor.scope_level] == int(actor.scope_id or -2)
    if types:
        wanted = [x.strip().lower() for x in types if x.strip()]
        if wanted:
            mask &= np.isin(np.char.lower(arrays.types), wanted)
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        raise NotFound(f"dataset {dataset!r} holds no incidents of this type in your jurisdiction")
    inc = Incidents(
        t=arrays.t[idx],
        lon=arrays.lon[idx],
        lat=arrays.lat[idx],
        types=arrays.types[idx],
        tz=arrays.tz,
    )
    return Loaded(dataset, inc, arrays.levels["station"][idx], arrays.levels["district"][idx])


def list_datasets(session: Session, *, actor: Principal) -> list[DatasetOut]:
    actor.require(Perm.INCIDENTS_READ)
    names = session.scalars(select(HistoryIncident.dataset).distinct()).all()
    out = []
    for name in sorted(names):
        try:
            inc = load(session, actor=actor, dataset=name).incidents
        except NotFound:
            # None of it in the caller's jurisdiction: listed, empty, rather than failing
            # the whole list (an SHO whose station has no incidents yet).
            out.append(
                DatasetOut(
                    dataset=name,
                    incidents=0,
                    first=None,
                    last=None,
                    tz=_CACHE.get(session, name).tz,
                    types=[],
                )
            )
            continue
        types = sorted({str(x) for x in np.unique(inc.types).tolist() if str(x)})
        out.append(
            DatasetOut(
                dataset=name,
                incidents=len(inc),
                first=_local_dt(float(inc.t[0])) if len(inc) else None,
                last=_local_dt(float(inc.t[-1])) if len(inc) else None,
                tz=inc.tz,
                types=types[:200],
            )
        )
    return out


def _local_dt(t: float) -> datetime:
    return EPOCH + timedelta(days=t)


def _end_day(data: Loaded, end: datetime | None) -> float:
    """The end of the analysed time: given (with a UTC offset: converted to the dataset's
    zone; without one: its local time), or the day after the newest incident."""
    if end is not None:
        return local_days(end, data.incidents.tz)
    return float(math.floor(float(data.incidents.t[-1])) + 1)


# --------------------------------------------------------------------------- trends


def trend_report(
    session: Session,
    *,
    actor: Principal,
    dataset: str,
    group_by: GroupBy = "all",
    period: Period = "week",
    monitor: int = 8,
    show: int = 52,
    end: datetime | None = None,
    types: Sequence[str] | None = None,
    fdr: float = 0.05,
    max_groups: int = 40,
) -> TrendReport:
    """Counts per group and period with the seasonal model's band; alerts for unusual
    rises in the last `monitor` periods (days or weeks) before `end`."""
    data = load(session, actor=actor, dataset=dataset, types=types)
    inc = data.incidents
    # Whole periods only: a day or week still running (or cut by `end`) would look like a
    # drop, and incidents after `end` must not count.
    stop = float(math.floor(_end_day(data, end)))
    length = 1.0 if period == "day" else 7.0
    if period == "week":
        stop = trends.monday_on_or_before(stop)
    start = stop - monitor * length
    codes, groups = _groups(session, data, group_by, max_groups)
    fits, alerts = trends.monitor(
        inc.t,
        codes,
        groups,
        period=period,
        monitor_start=start,
        end=stop,
        show_periods=show,
        fdr=fdr,
    )
    series = [
        Series(
            group=f.label,
            group_id=f.key,
            period=period,
            model=f.model,
            dispersion=round(f.k, 3),
            points=[
                SeriesPoint(
                    start=trends.day_to_date(float(s)),
                    count=int(c),
                    expected=round(float(e), 3),
                    low=float(lo),
                    high=float(hi),
                    p_value=float(p),
                    alert=False,
                )
                for s, c, e, lo, hi, p in zip(
                    f.starts, f.counts, f.expected, f.low, f.high, f.p_value, strict=True
                )
            ],
        )
        for f in fits
    ]
    by_key = {(a.label, trends.day_to_date(a.start)) for a in alerts}
    for s in series:
        for pt in s.points:
            pt.alert = (s.group, pt.start) in by_key
    alert_out = [
        AlertOut(
            group=a.label,
            group_id=a.key,
            period=period,
            start=trends.day_to_date(a.start),
            count=a.count,
            expected=round(a.expected, 2),
            high=a.high,
            p_value=a.p_value,
            q_value=a.q_value,
            ratio=round(a.count / a.expected, 2) if a.expected > 0 else math.inf,
            message=(
                f"{a.label}: {a.count} incidents in the {period} from "
                f"{trends.day_to_date(a.start)}, {a.count / max(a.expected, 1e-9):.3g}x the "
                f"{a.expected:.2g} expected (p={a.p_value:.2g})"
            ),
        )
        for a in alerts
    ]
    wd, hours, months = trends.profiles(inc.t[inc.t < stop])
    return TrendReport(
        dataset=dataset,
        period=period,
        group_by=group_by,
        series=series,
        alerts=alert_out,
        weekday_profile=wd,
        hour_profile=hours,
        month_profile=months,
    )


def _groups(
    session: Session, data: Loaded, group_by: str, max_groups: int
) -> tuple[npt.NDArray[np.int64], list[tuple[str, int | str | None]]]:
    n = len(data)
    if group_by == "all":
        return np.zeros(n, dtype=np.int64), [("all incidents", None)]
    if group_by == "type":
        values, inv, counts = np.unique(
            data.incidents.types, return_inverse=True, return_counts=True
        )
        order = np.argsort(-counts)[:max_groups]
        remap = np.full(values.size, -1, dtype=np.int64)
        remap[order] = np.arange(order.size)
        groups: list[tuple[str, int | str | None]] = [
            (str(values[i]) or "(no type)", str(values[i])) for i in order
        ]
        return remap[inv], groups
    if group_by not in ("district", "station"):
        raise InvalidInput("group_by must be all, district, station or type")
    ids = data.district if group_by == "district" else data.station
    present, counts = np.unique(ids[ids >= 0], return_counts=True)
    order = np.argsort(-counts)[:max_groups]
    chosen = present[order]
    if chosen.size == 0:
        raise InvalidInput(
            f"no incident of this dataset lies in a {group_by}; group by type or all instead"
        )
    pos = {int(j): i for i, j in enumerate(chosen.tolist())}
    codes = np.fromiter((pos.get(int(v), -1) for v in ids.tolist()), np.int64, count=n)
    groups = []
    for j in chosen.tolist():
        try:
            name = geo.get_jurisdiction(session, jurisdiction_id=int(j)).name
        except NotFound:
            name = f"{group_by} {j}"
        groups.append((name, int(j)))
    return codes, groups


# --------------------------------------------------------------------------- maps


def _grid_for(data: Loaded, cell_m: float) -> Grid:
    return Grid.covering(data.incidents.lon, data.incidents.lat, cell_m=cell_m)


def hotspot_layer(
    session: Session,
    *,
    actor: Principal,
    dataset: str,
    start: datetime | None = None,
    end: datetime | None = None,
    days: int = 365,
    types: Sequence[str] | None = None,
    cell_m: float = 150.0,
    method: str = "gi",
    bandwidth_m: float = 200.0,
    radius: int = 1,
    permutations: int = 0,
    fdr: bool = True,
    limit: int = 3000,
) -> dict[str, Any]:
    """A GeoJSON layer of grid cells for [start, end) (default: the last `days` days):
    `counts`, `kde` (incidents per km²) or `gi` (Gi* hot and cold spots with their
    confidence bin). Area for Gi*: the cells holding any incident of the dataset."""
    data = load(session, actor=actor, dataset=dataset, types=types)
    grid = _grid_for(data, cell_m)
    stop = _end_day(data, end)
    first = local_days(start, data.incidents.tz) if start is not None else stop - days
    if first >= stop:
        raise InvalidInput(
            f"start ({_local_dt(first):%Y-%m-%d %H:%M}) must be before end "
            f"({_local_dt(stop):%Y-%m-%d %H:%M})"
        )
    history = History.build(grid, data.incidents.t, data.incidents.lon, data.incidents.lat)
    window = history.between(first, stop)
    counts = window.counts()
    props: dict[str, FloatArray | npt.NDArray[np.int64]] = {"count": counts}
    if method == "counts":
        cells = np.flatnonzero(counts > 0)
        value = counts
    elif method == "kde":
        value = hotspots.kde_surface(grid, counts, bandwidth_m)
        props["density_km2"] = value
        cells = (
            np.flatnonzero(value > value.max() * 0.02)
            if value.max() > 0
            else np.array([], np.int64)
        )
    elif method == "gi":
        area = np.zeros(grid.n, dtype=bool)
        area[history.cell[history.cell >= 0]] = True
        gi = hotspots.gi_star(grid, counts, area, radius=radius, permutations=permutations, fdr=fdr)
        props.update({"z": gi.z, "p": gi.p, "bin": gi.bins})
        cells = np.flatnonzero(gi.bins != 0)
        value = np.abs(gi.z)
    else:
        raise InvalidInput("method must be counts, kde or gi")
    if cells.size > limit:
        cells = cells[np.argsort(-value[cells], kind="stable")[:limit]]
    return _cells_geojson(
        grid,
        cells,
        props,
        meta={
            "dataset": dataset,
            "method": method,
            "from": _local_dt(first).date().isoformat(),
            "to": (_local_dt(stop) - timedelta(days=1)).date().isoformat(),
            "incidents": int(counts.sum()),
            "cell_m": cell_m,
        },
    )


#: Cells x slices of one emerging-hotspot map (8 bytes each: 400 MB at most).
_MAX_EMERGING_VALUES = 50_000_000


def emerging_layer(
    session: Session,
    *,
    actor: Principal,
    dataset: str,
    end: datetime | None = None,
    slices: int = 12,
    slice_days: int = 28,
    types: Sequence[str] | None = None,
    cell_m: float = 300.0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Emerging hotspot categories over `slices` slices of `slice_days` days before `end`."""
    if not 2 <= slices <= 104:
        raise InvalidInput("slices must be between 2 and 104")
    data = load(session, actor=actor, dataset=dataset, types=types)
    grid = _grid_for(data, cell_m)
    if grid.n * slices > _MAX_EMERGING_VALUES:
        raise InvalidInput(
            f"{grid.n:,} cells of {cell_m:g} m over {slices} slices is too much for one map; "
            "give a larger cell_m, fewer slices, or fewer types"
        )
    stop = _end_day(data, end)
    history = History.build(grid, data.incidents.t, data.incidents.lon, data.incidents.lat)
    area = np.zeros(grid.n, dtype=bool)
    area[history.cell[history.cell >= 0]] = True
    z = np.zeros((grid.n, slices))
    for j in range(slices):
        a = stop - (slices - j) * slice_days
        counts = history.between(a, a + slice_days).counts()
        z[:, j] = hotspots.gi_star(grid, counts, area).z
    cat, trend = hotspots.emerging(z[area], area[area], alpha=alpha)
    full = np.full(grid.n, "none", dtype="<U12")
    full[area] = cat
    mk = np.zeros(grid.n)
    mk[area] = trend
    cells = np.flatnonzero(full != "none")
    feats = _cells_geojson(grid, cells, {"trend_z": mk, "final_z": z[:, -1]}, meta={})
    for f, c in zip(feats["features"], cells.tolist(), strict=True):
        f["properties"]["category"] = str(full[c])
    feats["meta"] = {
        "dataset": dataset,
        "slices": slices,
        "slice_days": slice_days,
        "to": (_local_dt(stop) - timedelta(days=1)).date().isoformat(),
        "counts": {k: int((full == k).sum()) for k in hotspots.CATEGORIES if k != "none"},
        "cell_m": cell_m,
    }
    return feats


def forecast_layer(
    session: Session,
    *,
    actor: Principal,
    dataset: str,
    model: str = DEFAULT_MODEL,
    week_start: datetime | None = None,
    types: Sequence[str] | None = None,
    cell_m: float = 150.0,
    top_fraction: float = 0.05,
) -> dict[str, Any]:
    """The next week's forecast (from incidents before `week_start`, default: the day after
    the newest incident): the top `top_fraction` of the dataset's cells, expected counts."""
    if not 0 < top_fraction <= 1:
        raise InvalidInput("top_fraction must be in (0, 1]")
    data = load(session, actor=actor, dataset=dataset, types=types)
    grid = _grid_for(data, cell_m)
    start = _end_day(data, week_start)
    history = History.build(grid, data.incidents.t, data.incidents.lon, data.incidents.lat)
    area = np.zeros(grid.n, dtype=bool)
    area[history.cell[history.cell >= 0]] = True
    past = history.before(start)
    if not len(past.t):
        raise InvalidInput(
            f"dataset {dataset!r} has no incidents before {_local_dt(start):%Y-%m-%d} to "
            f"forecast from; its first is on {_local_dt(float(data.incidents.t[0])):%Y-%m-%d}"
        )
    pred = make_model(model).forecast(past, start, 7.0)
    cand = np.flatnonzero(area)
    k = max(1, round(top_fraction * cand.size))
    cells = cand[np.argsort(-pred[cand], kind="stable")[:k]]
    rank = np.zeros(grid.n, dtype=np.int64)
    rank[cells] = np.arange(1, cells.size + 1)
    return _cells_geojson(
        grid,
        cells,
        {"expected": pred, "rank": rank},
        meta={
            "dataset": dataset,
            "model": model,
            "week_start": _local_dt(start).date().isoformat(),
            "cells": int(cells.size),
            "area_cells": int(cand.size),
            "expected_in_cells": round(float(pred[cells].sum()), 2),
            "cell_m": cell_m,
        },
    )


def _cells_geojson(
    grid: Grid,
    cells: npt.NDArray[np.int64],
    props: dict[str, Any],
    *,
    meta: dict[str, Any],
) -> dict[str, Any]:
    rings = grid.cell_rings(cells)
    feats = []
    for c, ring in zip(cells.tolist(), rings, strict=True):
        p: dict[str, Any] = {"cell": int(c)}
        for name, arr in props.items():
            v = arr[c]
            p[name] = int(v) if isinstance(v, np.integer) else round(float(v), 5)
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": p,
            }
        )
    return {"type": "FeatureCollection", "features": feats, "meta": meta}


# --------------------------------------------------------------------------- patrols


def patrol_plan(
    session: Session,
    *,
    actor: Principal,
    dataset: str,
    model: str = DEFAULT_MODEL,
    week_start: datetime | None = None,
    top: int = 10,
    cell_m: float = 150.0,
    shifts: str | None = None,
    types: Sequence[str] | None = None,
) -> patrol.PatrolPlan:
    """Top cells per station (of the caller's jurisdiction) and shift for a week."""
    data = load(session, actor=actor, dataset=dataset, types=types)
    layer = geo.feature_collection(session, level="station")
    stations = []
    ids: list[int | None] = []
    from shapely.geometry import shape

    for f in layer["features"]:
        props = f["properties"]
        if not _station_in_scope(actor, props):
            continue
        stations.append((str(props["name"]), shape(f["geometry"])))
        ids.append(int(props["id"]))
    if not stations:
        raise NotFound("no police station areas are loaded in your jurisdiction")
    return patrol.plan_from_polygons(
        data.incidents,
        stations=stations,
        week_start=_local_dt(_end_day(data, week_start)),
        model=model,
        top=top,
        cell_m=cell_m,
        shifts=patrol.parse_shifts(shifts) if shifts else patrol.DEFAULT_SHIFTS,
        title=f"Patrol plan ({dataset})",
        station_ids=ids,
    )


def _station_in_scope(actor: Principal, props: dict[str, Any]) -> bool:
    level = actor.scope_level
    if level in ("all", "province"):
        return True
    key = "id" if level == "station" else f"{level}_id"
    return bool(props.get(key) == actor.scope_id)


def plan_out(p: patrol.PatrolPlan) -> list[PatrolShiftOut]:
    return [
        PatrolShiftOut(
            station=s.station,
            station_id=s.station_id,
            shift=s.shift.name,
            hours=s.shift.hours,
            expected_total=round(s.expected_total, 3),
            cells=[
                PatrolCellOut(
                    rank=c.rank,
                    cell=c.cell,
                    lon=round(c.lon, 6),
                    lat=round(c.lat, 6),
                    expected=round(c.expected, 4),
                    share=round(c.share, 4),
                )
                for c in s.cells
            ],
        )
        for s in p.stations
    ]


# --------------------------------------------------------------------------- evaluations


def save_evaluation(
    session: Session,
    *,
    source: str,
    params: dict[str, Any],
    result: dict[str, Any],
    now: datetime,
) -> int:
    row = SavedEvaluation(created_at=now, source=source[:256], params=params, result=result)
    session.add(row)
    session.flush()
    return row.id


def list_evaluations(session: Session, *, actor: Principal, limit: int = 20) -> list[EvaluationOut]:
    actor.require(Perm.INCIDENTS_READ)
    rows = session.scalars(select(SavedEvaluation).order_by(SavedEvaluation.id.desc()).limit(limit))
    return [
        EvaluationOut(
            id=r.id, created_at=r.created_at, source=r.source, params=r.params, result=r.result
        )
        for r in rows
    ]
