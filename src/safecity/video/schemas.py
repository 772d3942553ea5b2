"""Video inputs and outputs. Rule coordinates are shares of the picture's width and height
(0..1), so a rule drawn on a snapshot holds whatever resolution the camera streams."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

EventKind = Literal[
    "zone_enter", "zone_leave", "loitering", "line_cross", "congestion",
    "camera_offline", "camera_frozen", "camera_dark", "camera_tampered", "camera_online",
]  # fmt: skip
WatchedClass = Literal["person", "bicycle", "car", "motorcycle", "bus", "truck"]
Point = tuple[float, float]


def _unit(points: list[Point]) -> list[Point]:
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"point ({x}, {y}) is outside the picture: coordinates are shares of the "
                "width and height, between 0 and 1"
            )
    return points


class ZoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    polygon: list[Point] = Field(min_length=3, max_length=64)
    classes: list[WatchedClass] | None = None
    loiter_s: float | None = Field(None, gt=0, le=86400)
    alert: bool = Field(False, description="Entering is an alert (perimeter, restricted area)")

    @field_validator("polygon")
    @classmethod
    def _in_picture(cls, v: list[Point]) -> list[Point]:
        return _unit(v)


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    a: Point
    b: Point
    direction: Literal["any", "in", "out"] = "any"
    classes: list[WatchedClass] | None = None
    alert: bool = False

    @field_validator("a", "b")
    @classmethod
    def _in_picture(cls, v: Point) -> Point:
        _unit([v])
        return v


class CameraRulesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zones: list[ZoneIn] = Field(default_factory=list, max_length=32)
    lines: list[LineIn] = Field(default_factory=list, max_length=32)
    detect_fps: float = Field(5.0, gt=0, le=30)
    incident_kinds: list[EventKind] = Field(
        default_factory=list,
        description="Alert kinds that open an incident (e.g. zone_enter on a perimeter zone, "
        "loitering)",
    )
    enabled: bool = True


class CameraRulesOut(CameraRulesIn):
    camera_id: int
    updated_at: datetime | None = None


class VideoEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    camera_id: int
    site_id: int | None
    at: datetime
    kind: str
    rule: str
    class_name: str
    track_id: int
    confidence: float
    box: list[float]
    direction: str | None
    alert: bool
    snapshot_path: str | None
    clip_path: str | None
    incident_id: int | None
    data: dict[str, Any]


class CameraStatusOut(BaseModel):
    camera_id: int
    code: str
    name: str
    site_id: int
    status: str
    reason: str = ""
    fps: float = 0.0
    last_frame_at: datetime | None = None
    worker: str = ""


class TrafficPoint(BaseModel):
    minute: datetime
    counts: dict[str, int]
    total: int
    mean_speed_px_s: float


class TrafficSeries(BaseModel):
    camera_id: int | None
    site_id: int | None
    points: list[TrafficPoint]


class Assignment(BaseModel):
    """A camera a worker analyses, with its rules."""

    camera_id: int
    code: str
    #: The stream to analyse: the camera's `detect_url` (sub-stream), else its main stream.
    stream_url: str
    #: The main stream, whose packets make the event clips, when a sub-stream is analysed.
    record_url: str | None = None
    site_id: int
    lon: float
    lat: float
    rules: CameraRulesOut
