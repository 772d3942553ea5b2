"""Incident histories as arrays: read from CSV with a column mapping and a time zone.

Time is kept twice: `t`, local wall-clock time in days since 1970-01-01 (what weeks,
weekdays, hours and seasons are counted in), and, on demand, the UTC instant (what the
database stores). A date without a UTC offset is local time in the given zone; one with an
offset (`2018-03-01T10:00+05:00`, `...Z`) is converted to that zone. Where clocks go back,
a local time without an offset happens twice: it is read as the first and counted in the
report (an offset tells the two apart and is kept); a local time that the clocks skipped
is read as the instant it names in the old offset (02:30 as 03:30) and counted too.

Rows whose date or coordinates cannot be read are skipped and counted by reason, with
examples naming their line numbers; nothing is dropped silently."""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from safecity.core.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
EPOCH = datetime(1970, 1, 1)
#: Examples of bad rows kept in a report.
MAX_EXAMPLES = 10


@dataclass(frozen=True)
class ColumnMap:
    """Which CSV columns hold what. `time` is for files that split date and time."""

    date: str = "date"
    longitude: str = "longitude"
    latitude: str = "latitude"
    type: str | None = "type"
    id: str | None = None
    time: str | None = None
    date_format: str | None = None


@dataclass
class ReadReport:
    """What happened to each row of a file."""

    rows: int = 0
    kept: int = 0
    bad_date: int = 0
    bad_coordinates: int = 0
    duplicate_id: int = 0
    #: Rows kept whose local time was ambiguous or skipped at a clock change.
    clock_change: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.bad_date + self.bad_coordinates + self.duplicate_id

    def note(self, line: int, why: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"line {line}: {why}")

    def summary(self) -> str:
        parts = [f"{self.rows} rows read, {self.kept} kept"]
        if self.skipped:
            parts.append(
                f"{self.skipped} skipped ({self.bad_date} bad date, {self.bad_coordinates} "
                f"bad coordinates, {self.duplicate_id} duplicate id)"
            )
        if self.clock_change:
            parts.append(
                f"{self.clock_change} kept with a local time at a clock change (see examples)"
            )
        return "; ".join(parts)


@dataclass
class Incidents:
    """Point incidents sorted by time. `t`: local days since 1970-01-01 (float)."""

    t: FloatArray
    lon: FloatArray
    lat: FloatArray
    types: npt.NDArray[np.str_]
    ids: list[str | None] | None = None
    tz: str = "UTC"
    #: True where `t` is the second of two equal local times (clocks going back).
    fold: npt.NDArray[np.bool_] | None = None

    def __len__(self) -> int:
        return int(self.t.size)

    @classmethod
    def from_arrays(
        cls,
        t: npt.ArrayLike,
        lon: npt.ArrayLike,
        lat: npt.ArrayLike,
        types: Iterable[str] | None = None,
        *,
        ids: list[str | None] | None = None,
        tz: str = "UTC",
        fold: npt.ArrayLike | None = None,
    ) -> Incidents:
        ta = np.asarray(t, dtype=np.float64)
        # Sorted by local time, the second of two equal local times after the first.
        fa = None if fold is None else np.asarray(fold, dtype=np.bool_)
        order = np.lexsort((fa, ta)) if fa is not None else np.argsort(ta, kind="stable")
        ty = np.asarray(list(types) if types is not None else [""] * ta.size, dtype=np.str_)
        return cls(
            t=ta[order],
            lon=np.asarray(lon, dtype=np.float64)[order],
            lat=np.asarray(lat, dtype=np.float64)[order],
            types=ty[order] if ty.size else ty,
            ids=[ids[i] for i in order] if ids is not None else None,
            tz=tz,
            fold=fa[order] if fa is not None and fa.any() else None,
        )

    def select(self, mask: npt.NDArray[np.bool_]) -> Incidents:
        idx = np.flatnonzero(mask)
        return Incidents(
            t=self.t[idx],
            lon=self.lon[idx],
            lat=self.lat[idx],
            types=self.types[idx],
            ids=[self.ids[i] for i in idx] if self.ids is not None else None,
            tz=self.tz,
            fold=self.fold[idx] if self.fold is not None else None,
        )

    def of_type(self, types: Iterable[str] | None) -> Incidents:
        wanted = [x.strip().lower() for x in types or [] if x.strip()]
        if not wanted:
            return self
        low = np.char.lower(self.types)
        return self.select(np.isin(low, wanted))

    def utc(self) -> list[datetime]:
        """Each incident's UTC instant (local wall-clock time in `tz`)."""
        zone = zone_info(self.tz)
        folds = self.fold.tolist() if self.fold is not None else [False] * len(self)
        out = []
        for v, f in zip(self.t.tolist(), folds, strict=True):
            local = EPOCH + timedelta(days=v)
            out.append(local.replace(tzinfo=zone, fold=int(f)).astimezone(UTC))
        return out


def zone_info(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {tz!r}; give an IANA name such as 'Asia/Karachi', "
            "'America/Chicago' or 'UTC'"
        ) from None


def day_number(when: datetime) -> float:
    """Local wall-clock days since 1970-01-01 of a naive local datetime (an aware one is a
    caller's mistake: `local_days` converts it to the data's zone first)."""
    if when.tzinfo is not None:
        raise TypeError("day_number takes local (naive) time; use local_days(when, tz)")
    return (when - EPOCH) / timedelta(days=1)


def local_days(when: datetime, tz: str) -> float:
    """`t` of an instant: aware datetimes are converted to `tz`, naive ones taken as local."""
    if when.tzinfo is not None:
        when = when.astimezone(zone_info(tz)).replace(tzinfo=None)
    return day_number(when)


def parse_date(text: str, *, tz: str, fmt: str | None = None, end_of_day: bool = False) -> datetime:
    """A command-line or query date (`YYYY-MM-DD[ HH:MM]`) as naive local time in `tz`
    (a date written with a UTC offset is converted to `tz`)."""
    try:
        when = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"cannot read the date {text!r}; write it as YYYY-MM-DD") from None
    if end_of_day and len(text.strip()) <= 10:
        when += timedelta(days=1)
    if when.tzinfo is not None:
        when = when.astimezone(zone_info(tz)).replace(tzinfo=None)
    return when


def open_text(path: str | Path) -> IO[str]:
    """A CSV file (plain or .gz) as UTF-8 text; a clear error when it is missing."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"file not found: {path}")
    if p.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8-sig", newline="")
    return open(p, encoding="utf-8-sig", newline="")


def read_csv(
    source: str | Path | IO[str],
    *,
    columns: ColumnMap | None = None,
    tz: str = "UTC",
) -> tuple[Incidents, ReadReport]:
    """Incidents from a CSV file (path, or an open text stream) and what was skipped.

    Refuses (InvalidInput) when a mapped column is missing or when no row at all has a
    readable date, naming the columns found or an example date and `--date-format`."""
    cols = columns or ColumnMap()
    zone = zone_info(tz)
    name = str(source) if isinstance(source, str | Path) else "the file"
    try:
        if isinstance(source, str | Path):
            with open_text(source) as fh:
                return _read(fh, cols, zone, tz)
        return _read(source, cols, zone, tz)
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{name} is not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r} at "
            f"offset {exc.start} of a read block); save it as UTF-8 CSV"
        ) from None
    except (gzip.BadGzipFile, EOFError) as exc:
        raise InvalidInput(f"{name} is not a readable gzip file: {exc}") from None
    except csv.Error as exc:
        raise InvalidInput(f"{name} is not a readable CSV file: {exc}") from None


def _read(fh: IO[str], cols: ColumnMap, zone: ZoneInfo, tz: str) -> tuple[Incidents, ReadReport]:
    reader = csv.reader(fh)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InvalidInput("the CSV file is empty (no header row)") from None
    index = {h.lower(): i for i, h in enumerate(header)}

    def col(name: str | None, *, required: bool) -> int | None:
        if name is None:
            return None
        i = index.get(name.strip().lower())
        if i is None and required:
            raise InvalidInput(
                f"the CSV has no column {name!r}; its columns are: {', '.join(header)}. "
                "Map yours with --date-col, --lon-col, --lat-col, --type-col, --id-col"
            )
        return i

    i_date = col(cols.date, required=True)
    i_time = col(cols.time, required=True)
    i_lon = col(cols.longitude, required=True)
    i_lat = col(cols.latitude, required=True)
    i_type = col(cols.type, required=cols.type not in (None, "type"))
    i_id = col(cols.id, required=True)
    assert i_date is not None and i_lon is not None and i_lat is not None

    report = ReadReport()
    ts: list[float] = []
    lons: list[float] = []
    lats: list[float] = []
    types: list[str] = []
    ids: list[str | None] = []
    seen_ids: set[str] = set()
    first_bad_date: str | None = None
    epoch = EPOCH
    day = timedelta(days=1)
    folds: list[bool] = []
    for line, row in _rows(reader):
        report.rows += 1
        if max(i_date, i_time if i_time is not None else 0) >= len(row):
            report.bad_date += 1
            report.note(line, f"only {len(row)} fields: no date")
            continue
        if max(i_lon, i_lat) >= len(row):
            report.bad_coordinates += 1
            report.note(line, f"only {len(row)} fields: no coordinates")
            continue
        raw = row[i_date].strip()
        if i_time is not None:
            raw = f"{raw} {row[i_time].strip()}"
        lon_s, lat_s = row[i_lon], row[i_lat]
        when = _parse_when(raw, cols.date_format)
        if when is None:
            report.bad_date += 1
            report.note(line, f"bad date {raw!r}")
            first_bad_date = first_bad_date or raw
            continue
        fold = False
        if when.tzinfo is not None:
            local = when.astimezone(zone)
            when, fold = local.replace(tzinfo=None), bool(local.fold)
        else:
            read_as = _at_clock_change(when, zone)
            if read_as is not None:
                report.clock_change += 1
                report.note(line, read_as[1])
                when = read_as[0]
        lon = _float(lon_s)
        lat = _float(lat_s)
        if lon is None or lat is None or not _plausible(lon, lat):
            report.bad_coordinates += 1
            report.note(line, f"bad coordinates lon={lon_s!r} lat={lat_s!r}")
            continue
        ident: str | None = None
        if i_id is not None:
            ident = row[i_id].strip() if i_id < len(row) else ""
            ident = ident or None
            if ident is not None:
                if ident in seen_ids:
                    report.duplicate_id += 1
                    report.note(line, f"duplicate id {ident!r}")
                    continue
                seen_ids.add(ident)
        ts.append((when - epoch) / day)
        folds.append(fold)
        lons.append(lon)
        lats.append(lat)
        types.append(row[i_type].strip() if i_type is not None and i_type < len(row) else "")
        ids.append(ident)
    report.kept = len(ts)
    if report.rows and not ts and report.bad_date == report.rows:
        hint = (
            f"; they look like {first_bad_date!r}: give their format, e.g. "
            "--date-format '%m/%d/%Y %I:%M:%S %p'"
            if first_bad_date
            else ""
        )
        raise InvalidInput(f"no row has a date that can be read{hint}")
    inc = Incidents.from_arrays(
        ts, lons, lats, types, ids=ids if i_id is not None else None, tz=tz, fold=folds
    )
    return inc, report


def _rows(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(line number where the row starts, row) of the non-blank rows; a quoted field can
    span lines, so the number comes from the reader, not from counting rows."""
    start = reader.line_num + 1
    for row in reader:
        if row and any(cell.strip() for cell in row):
            yield start, row
        start = reader.line_num + 1


def _at_clock_change(when: datetime, zone: ZoneInfo) -> tuple[datetime, str] | None:
    """For a local time that the clocks repeated or skipped: how it is read and why."""
    first, second = when.replace(tzinfo=zone, fold=0), when.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return None
    back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back == when:
        return when, (
            f"local time {when:%Y-%m-%d %H:%M} happened twice (clocks went back): read as "
            "the first; a UTC offset in the file tells them apart"
        )
    return back, (
        f"local time {when:%Y-%m-%d %H:%M} did not exist (clocks went forward): read as "
        f"{back:%H:%M}"
    )


def _parse_when(raw: str, fmt: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        if fmt:
            return datetime.strptime(raw, fmt)
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


def _float(text: str) -> float | None:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _plausible(lon: float, lat: float) -> bool:
    """In range, and not (0, 0): the usual stand-in for a missing location."""
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        return False
    return not (lon == 0.0 and lat == 0.0)
