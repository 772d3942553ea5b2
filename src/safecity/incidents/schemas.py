"""Incident inputs and outputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IncidentStatus = Literal["received", "routed"]


class CallIn(BaseModel):
    """A helpline-15 call as the call taker (or the telephony system) records it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    caller_number: str = Field(min_length=3, max_length=32, pattern=r"^\+?[0-9 ()-]{3,32}$")
    caller_name: str | None = Field(None, max_length=128)
    lat: float = Field(ge=-90, le=90, description="Latitude of the incident, WGS84")
    lon: float = Field(ge=-180, le=180, description="Longitude of the incident, WGS84")
    category: str = Field(min_length=1, max_length=32, description="See GET /api/v1/categories")
    description: str = Field("", max_length=4000)
    address: str | None = Field(None, max_length=256)
    external_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Call id in the telephony system: the same id twice makes one incident",
    )


class TimelineEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    kind: str
    actor: str
    note: str
    data: dict[str, Any]


class IncidentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    incident_id: int = Field(validation_alias="id")
    external_id: str | None
    source: str
    category: str
    priority: int
    status: str
    caller_number: str | None
    caller_name: str | None
    description: str
    address: str | None
    lon: float
    lat: float
    station_id: int
    tehsil_id: int | None
    district_id: int | None
    inside_jurisdiction: bool
    received_at: datetime
    routed_at: datetime | None
    updated_at: datetime


class IncidentDetail(IncidentOut):
    timeline: list[TimelineEntry] = []


class CallAccepted(BaseModel):
    incident_id: int
    station_id: int
    station_name: str
    district_id: int | None
    inside_jurisdiction: bool
    status: str
    duplicate_of_external_id: bool = Field(
        False, description="True when this external_id was already taken in: nothing new made"
    )


class CategoryOut(BaseModel):
    code: str
    label: str
    priority: int
