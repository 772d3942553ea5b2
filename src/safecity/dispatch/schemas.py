"""Dispatch inputs and outputs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

UnitStep = Literal["en_route", "on_scene", "cleared"]
DeviceKind = Literal["citizen", "diplomatic_mission", "school", "bank", "business", "other"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    unit_ids: list[int] = Field(min_length=1, max_length=20)
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
    incident_id: int | None = Field(
        None, description="The assignment this step is for; defaults to the active one"
    )
    disposition: str | None = Field(
        None, max_length=64, description="When the last unit clears: resolve with this"
    )
    note: str = Field("", max_length=1000)


class Ping(_In):
    unit_id: int
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
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)


class PanicDeviceCreated(BaseModel):
    id: int
    code: str
    name: str
    kind: str
    device_key: str = Field(description="Shown once: the device sends it as X-Device-Key")


class PanicIn(_In):
    lat: float | None = Field(None, ge=-90, le=90, description="Device position (GPS)")
    lon: float | None = Field(None, ge=-180, le=180)
    accuracy_m: float | None = Field(None, ge=0)
    note: str = Field("", max_length=500)


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
