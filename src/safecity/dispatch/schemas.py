"""Dispatch inputs and outputs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from safecity.core.db import MAX_ROW_ID

RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]

UnitStep = Literal["en_route", "on_scene", "cleared"]
DeviceKind = Literal["citizen", "diplomatic_mission", "school", "bank", "business", "other"]


class _In(BaseModel):
    # Stripped: a name of blanks would pass `min_length` and be stored as a blank name.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _whole_position(lat: float | None, lon: float | None) -> None:
    """Both or neither: half a position would be completed from somewhere else."""
    if (lat is None) != (lon is None):
        missing = "lon" if lon is None else "lat"
        raise ValueError(f"{missing}: give lat and lon together, or neither")


class Recommendation(BaseModel):
    unit_id: int
    callsign: str
    kind: str
    status: str
    home_station_id: int
    distance_m: float
    eta_s: float
    same_station: bool


class DispatchIn(_In):
    unit_ids: list[RowId] = Field(min_length=1, max_length=20)
    note: str = Field("", max_length=1000)


class AssignmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    incident_id: int
    unit_id: int
    status: str
    assigned_at: datetime
    activated_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    cleared_at: datetime | None
    assigned_by: str
    eta_s: float | None


class UnitStatusIn(_In):
    status: UnitStep
    incident_id: RowId | None = Field(
        None, description="The assignment this step is for; defaults to the active one"
    )
    disposition: str | None = Field(
        None, max_length=64, description="When the last unit clears: resolve with this"
    )
    note: str = Field("", max_length=1000)


class Ping(_In):
    unit_id: RowId
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    at: datetime | None = Field(None, description="GPS fix time; server time when absent")
    speed_kmh: float | None = Field(None, ge=0, le=400)


class PingIn(_In):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    at: datetime | None = None
    speed_kmh: float | None = Field(None, ge=0, le=400)


class PingsAccepted(BaseModel):
    accepted: int


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    incident_id: int
    level: int
    reason: str
    notify_role: str
    station_id: int | None
    tehsil_id: int | None
    district_id: int | None
    due_at: datetime
    fired_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class PanicDeviceIn(_In):
    code: str = Field(min_length=2, max_length=64)
    name: str = Field(min_length=2, max_length=128)
    kind: DeviceKind
    phone: str = Field(min_length=3, max_length=32, pattern=r"^\+?[0-9 ()-]{3,32}$")
    lat: float | None = Field(None, ge=-90, le=90, description="Registered address (with lon)")
    lon: float | None = Field(None, ge=-180, le=180)

    @model_validator(mode="after")
    def _position(self) -> PanicDeviceIn:
        _whole_position(self.lat, self.lon)
        return self


class PanicDeviceCreated(BaseModel):
    id: int
    code: str
    name: str
    kind: str
    device_key: str = Field(description="Shown once: the device sends it as X-Device-Key")


class PanicIn(_In):
    lat: float | None = Field(
        None, ge=-90, le=90, description="Device position (GPS, with lon); none: registered"
    )
    lon: float | None = Field(None, ge=-180, le=180)
    accuracy_m: float | None = Field(
        None, ge=0, le=100_000, description="GPS accuracy radius; past 100 km it is no fix"
    )
    note: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _position(self) -> PanicIn:
        # Half a position used to be completed with the registered address's other half:
        # the incident was placed where neither the device nor its address is.
        _whole_position(self.lat, self.lon)
        return self


class PanicAccepted(BaseModel):
    incident_id: int
    station_id: int
    station_name: str
    priority: int
    recommended_units: list[Recommendation]
    message: str


class ResponseTimeRow(BaseModel):
    group_id: int | None
    group_name: str
    incidents: int
    answer_to_dispatch_median_s: float | None
    answer_to_dispatch_p90_s: float | None
    dispatch_to_scene_median_s: float | None
    dispatch_to_scene_p90_s: float | None
    sla_breaches: int


class DistrictKpi(BaseModel):
    district_id: int | None
    district: str
    calls_today: int
    incidents_today: int
    open_incidents: int
    by_type: dict[str, int]
    answer_to_dispatch_median_s: float | None
    answer_to_dispatch_p90_s: float | None
    dispatch_to_scene_median_s: float | None
    dispatch_to_scene_p90_s: float | None
    sla_breaches_today: int
