"""Registry inputs and outputs. Kinds are closed lists so a typo is refused, not stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from safecity.core.db import MAX_ROW_ID

SiteKind = Literal[
    "chowk",
    "market",
    "embassy",
    "toll_plaza",
    "terminal",
    "hospital",
    "school",
    "bank",
    "university",
    "government",
    "other",
]
CameraKind = Literal["fixed", "ptz", "anpr", "face"]
CameraStatus = Literal["unknown", "online", "offline", "frozen", "dark", "tampered"]
UnitKind = Literal["patrol_car", "motorcycle", "foot"]
UnitStatus = Literal["available", "dispatched", "en_route", "on_scene", "off_duty"]
AgencyKind = Literal["police", "traffic_police", "rescue_1122", "ctd", "other"]
Rank = Literal[
    "Constable",
    "Head Constable",
    "ASI",
    "SI",
    "Inspector",
    "DSP",
    "SP",
    "SSP",
    "DIG",
    "IG",
]

Lon = Field(ge=-180, le=180, description="Longitude, WGS84 degrees")
Lat = Field(ge=-90, le=90, description="Latitude, WGS84 degrees")


def _row_id(description: str) -> Any:
    """An id of another row: a larger one than the INTEGER column holds names no row."""
    return Field(None, ge=1, le=MAX_ROW_ID, description=description)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Update(_In):
    """A partial update: a field left out keeps its value. Those in `_NOT_NULL` are
    required columns: sent as null they reached the database (IntegrityError, a 500)."""

    _NOT_NULL: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*")
    @classmethod
    def _null_only_where_allowed(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls._NOT_NULL:
            raise ValueError("may not be null; leave the field out to keep its value")
        return value


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class AgencyIn(_In):
    code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=128)
    kind: AgencyKind
    phone: str | None = Field(None, max_length=32)


class AgencyUpdate(_Update):
    _NOT_NULL = frozenset({"name", "kind"})

    name: str | None = Field(None, min_length=1, max_length=128)
    kind: AgencyKind | None = None
    phone: str | None = Field(None, max_length=32)


class AgencyOut(_Out, AgencyIn):
    id: int


class SiteIn(_In):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=128)
    kind: SiteKind
    lon: float = Lon
    lat: float = Lat
    address: str | None = Field(None, max_length=256)


class SiteUpdate(_Update):
    _NOT_NULL = frozenset({"name", "kind", "lon", "lat"})

    name: str | None = Field(None, min_length=1, max_length=128)
    kind: SiteKind | None = None
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    address: str | None = Field(None, max_length=256)


class SiteOut(_Out):
    id: int
    code: str
    name: str
    kind: str
    lon: float
    lat: float
    address: str | None
    station_id: int | None
    tehsil_id: int | None
    district_id: int | None


_STREAM_URL = r"^(rtsp|rtsps|http|https|file)://"


class CameraIn(_In):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=128)
    site_code: str = Field(min_length=1, description="Code of the site the camera stands at")
    kind: CameraKind = "fixed"
    stream_url: str = Field(
        min_length=1,
        max_length=512,
        pattern=_STREAM_URL,
        description="The camera's main stream (viewing, evidence)",
    )
    detect_url: str | None = Field(
        None,
        max_length=512,
        pattern=_STREAM_URL,
        description="A lower-resolution stream for video analysis (the camera's sub-stream, "
        "e.g. .../Streaming/Channels/102); analysis reads stream_url when there is none",
    )
    heading_deg: float | None = Field(None, ge=0, lt=360)
    lon: float | None = Field(None, ge=-180, le=180, description="Defaults to the site's")
    lat: float | None = Field(None, ge=-90, le=90, description="Defaults to the site's")


class CameraUpdate(_Update):
    _NOT_NULL = frozenset({"name", "kind", "stream_url", "status"})

    name: str | None = Field(None, min_length=1, max_length=128)
    kind: CameraKind | None = None
    stream_url: str | None = Field(None, max_length=512, pattern=_STREAM_URL)
    detect_url: str | None = Field(
        None, max_length=512, pattern=_STREAM_URL, description="null: analyse stream_url"
    )
    heading_deg: float | None = Field(None, ge=0, lt=360)
    status: CameraStatus | None = None


class CameraOut(_Out):
    id: int
    code: str
    name: str
    site_id: int
    kind: str
    stream_url: str
    detect_url: str | None
    heading_deg: float | None
    status: str
    lon: float
    lat: float
    station_id: int | None
    district_id: int | None


class UnitIn(_In):
    code: str = Field(min_length=1, max_length=32)
    callsign: str = Field(min_length=1, max_length=32)
    kind: UnitKind
    home_station_id: int = Field(ge=1, le=MAX_ROW_ID, description="The unit's police station")
    lon: float = Lon
    lat: float = Lat
    status: UnitStatus = "available"
    agency_code: str | None = None


class UnitUpdate(_Update):
    _NOT_NULL = frozenset({"callsign", "kind", "status", "home_station_id"})

    callsign: str | None = Field(None, min_length=1, max_length=32)
    kind: UnitKind | None = None
    status: UnitStatus | None = None
    home_station_id: int | None = _row_id("The unit's police station")


class UnitOut(_Out):
    id: int
    code: str
    callsign: str
    kind: str
    home_station_id: int
    status: str
    lon: float
    lat: float
    station_id: int | None
    district_id: int | None
    last_seen: datetime | None


class OfficerIn(_In):
    code: str = Field(min_length=1, max_length=32, description="Belt or service number")
    name: str = Field(min_length=1, max_length=128)
    rank: Rank
    station_id: int | None = _row_id("Police station (a jurisdiction of that level)")
    tehsil_id: int | None = _row_id("Tehsil (a jurisdiction of that level)")
    district_id: int | None = _row_id("District (a jurisdiction of that level)")
    unit_code: str | None = None
    username: str | None = None


class OfficerUpdate(_Update):
    _NOT_NULL = frozenset({"name", "rank"})

    name: str | None = Field(None, min_length=1, max_length=128)
    rank: Rank | None = None
    station_id: int | None = _row_id("Police station (a jurisdiction of that level)")
    tehsil_id: int | None = _row_id("Tehsil (a jurisdiction of that level)")
    district_id: int | None = _row_id("District (a jurisdiction of that level)")
    username: str | None = None


class OfficerOut(_Out):
    id: int
    code: str
    name: str
    rank: str
    station_id: int | None
    tehsil_id: int | None
    district_id: int | None
    unit_id: int | None
    username: str | None


class ImportResult(BaseModel):
    created: int
    updated: int


class UnitPosition(BaseModel):
    """Where a unit is and what it is: what dispatch needs to rank units, read cheaply."""

    model_config = ConfigDict(frozen=True)

    id: int
    callsign: str
    kind: str
    status: str
    home_station_id: int
    lon: float
    lat: float
