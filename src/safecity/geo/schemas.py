"""Geo inputs and outputs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["province", "district", "tehsil", "station"]
#: The area types response targets are set for.
AREA_TYPES = ("urban", "rural")


class Location(BaseModel):
    """Which jurisdiction holds a point."""

    model_config = ConfigDict(frozen=True)

    station_id: int
    tehsil_id: int | None
    district_id: int | None
    province_id: int | None = None
    inside: bool = Field(
        description="False when the point lies outside every jurisdiction "
        "and the nearest station was chosen"
    )
    distance_m: float = Field(0.0, description="Distance to the station's area when outside")
    station_name: str = ""
    area_type: str = Field("urban", description="urban or rural: response targets differ")


class JurisdictionOut(BaseModel):
    id: int
    level: Level
    code: str
    name: str
    parent_id: int | None
    district_id: int | None
    tehsil_id: int | None
    area_km2: float
    lon: float | None = None
    lat: float | None = None


class ImportProblem(BaseModel):
    feature_index: int | None
    feature_name: str | None
    code: str
    message: str


class ImportReport(BaseModel):
    level: Level
    created: int
    updated: int
    warnings: list[str] = []
