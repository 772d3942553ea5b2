"""Incident inputs and outputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from safecity.core.db import MAX_ROW_ID

CallSource = Literal["call", "panic", "camera", "eido", "field"]


class CallIn(BaseModel):
    """A report as the call taker (or the telephony system, a panic device, a camera
    gateway) records it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    caller_number: str = Field(min_length=3, max_length=32, pattern=r"^\+?[0-9 ()-]{3,32}$")
    caller_name: str | None = Field(None, max_length=128)
    lat: float = Field(ge=-90, le=90, description="Latitude of the incident, WGS84")
    lon: float = Field(ge=-180, le=180, description="Longitude of the incident, WGS84")
    category: str = Field(
        min_length=1, max_length=32, description="Incident type code: GET /api/v1/incident-types"
    )
    description: str = Field("", max_length=4000)
    address: str | None = Field(None, max_length=256)
    external_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Call id in the telephony system: the same id twice makes one call",
    )
    link_duplicates: bool = Field(
        True, description="Link to an open incident close in space and time (duplicate call)"
    )


class TimelineEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    kind: str
    actor: str
    note: str
    data: dict[str, Any]


class CallOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    external_id: str | None
    incident_id: int
    source: str
    category: str
    caller_number: str | None
    caller_name: str | None
    description: str
    lon: float
    lat: float
    linked_as_duplicate: bool
    received_at: datetime
    taken_by: str


class IncidentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    incident_id: int = Field(validation_alias="id")
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
    province_id: int | None
    area_type: str
    inside_jurisdiction: bool
    call_count: int
    disposition: str | None
    merged_into_id: int | None
    transferred_to: str | None
    received_at: datetime
    routed_at: datetime | None
    acknowledged_at: datetime | None
    dispatched_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime


class IncidentDetail(IncidentOut):
    timeline: list[TimelineEntry] = []
    calls: list[CallOut] = []


class CallAccepted(BaseModel):
    incident_id: int
    call_id: int
    station_id: int
    station_name: str
    district_id: int | None
    inside_jurisdiction: bool
    priority: int
    status: str
    linked_to_existing: bool = Field(
        False, description="True when this call was linked to an open incident as a duplicate"
    )
    duplicate_of_external_id: bool = Field(
        False, description="True when this external_id was already taken in: nothing new made"
    )
    repeat_prank_caller: bool = Field(
        False, description="This number made prank calls before (flag for the call taker)"
    )


class IncidentTypeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    label: str
    apco_code: str
    priority: int
    serious: bool
    active: bool


class IncidentTypeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    label: str = Field(min_length=1, max_length=128)
    apco_code: str = Field(min_length=2, max_length=16, pattern=r"^[A-Z0-9]+$")
    priority: int = Field(ge=1, le=4)
    serious: bool = False
    active: bool = True


class ResponseTargetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    priority: int
    area_type: str
    acknowledge_s: int
    dispatch_s: int
    arrive_s: int
    unattended_s: int


class ResponseTargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    acknowledge_s: int = Field(ge=10, le=86400)
    dispatch_s: int = Field(ge=10, le=86400)
    arrive_s: int = Field(ge=10, le=86400)
    unattended_s: int = Field(ge=10, le=86400)


#: Statuses with a route of their own, which also records where the incident went (the
#: incident it was merged into, the agency it was handed to): set through the status route
#: they left that empty and, for a merge, the calls behind.
_OWN_ROUTE = {"merged": "merge", "transferred": "transfer"}


class StatusChange(BaseModel):
    # Stripped: a disposition of spaces is no disposition.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: str = Field(description="Target status, e.g. acknowledged, resolved, closed")
    note: str = Field("", max_length=2000)
    disposition: str | None = Field(
        None, max_length=64, description="Required when resolving: e.g. arrested, advised"
    )

    @field_validator("status")
    @classmethod
    def _not_merge_or_transfer(cls, value: str) -> str:
        route = _OWN_ROUTE.get(value)
        if route is not None:
            raise ValueError(
                f"{value!r} is set by POST /api/v1/incidents/{{id}}/{route}, which records "
                f"where the incident went"
            )
        return value


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    station_id: int | None = Field(None, ge=1, le=MAX_ROW_ID, description="Another police station")
    agency_code: str | None = Field(
        None, min_length=1, max_length=32, description="Another agency: R1122, TRAFFIC, CTD"
    )
    reason: str = Field(min_length=3, max_length=1000)


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    into_incident_id: int = Field(ge=1, le=MAX_ROW_ID, description="The incident kept open")
    note: str = Field("", max_length=1000)
