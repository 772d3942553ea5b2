"""Video inputs and outputs. Rule coordinates are shares of the picture's width and height
(0..1), so a rule drawn on a snapshot holds whatever resolution the camera streams.

Rules are checked as they are saved; rules read back from the database are validated with
`STORED_RULES` as context, which skips the checks added after rules were first stored
(degenerate shapes, blank names, empty class lists, kinds that are never alerts): rules
stored before those checks stay readable, so they can be shown and corrected, and the
worker reports a camera whose rules it cannot apply instead of failing."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from shapely.geometry import Polygon

EventKind = Literal[
    "zone_enter", "zone_leave", "loitering", "line_cross", "congestion",
    "camera_offline", "camera_frozen", "camera_dark", "camera_tampered", "camera_online",
]  # fmt: skip
#: Kinds that are never alerts, so naming them in `incident_kinds` could never open an
#: incident: leaving a zone (the rules engine never makes it an alert) and a camera coming
#: back online (the end of an alert).
NEVER_ALERTS = ("zone_leave", "camera_online")
WatchedClass = Literal["person", "bicycle", "car", "motorcycle", "bus", "truck"]
Point = tuple[float, float]
#: The shortest line and the smallest zone accepted, in shares of the picture (a line of
#: 1% of the width, a zone of 1% x 1%): anything smaller is a slip of the mouse, and an
#: object's anchor would cross or enter it only by chance.
MIN_LINE_LENGTH = 0.01
MIN_ZONE_AREA = 0.0001
#: Validation context of rules read back from the database (see the module's docstring).
STORED_RULES: dict[str, bool] = {"stored": True}


def _checking_new_rules(info: ValidationInfo) -> bool:
    return not (isinstance(info.context, dict) and info.context.get("stored"))


def _unit(points: list[Point]) -> list[Point]:
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"point ({x}, {y}) is outside the picture: coordinates are shares of the "
                "width and height, between 0 and 1"
            )
    return points


def _rule_name(name: str, info: ValidationInfo) -> str:
    if _checking_new_rules(info) and not name.strip():
        raise ValueError("give the rule a name (not only spaces)")
    return name


def _some_classes(classes: list[str] | None, info: ValidationInfo) -> list[str] | None:
    # An empty list would silently mean "every class" (as leaving it out does).
    if _checking_new_rules(info) and classes is not None and not classes:
        raise ValueError("give at least one class, or leave classes out for all")
    return classes


RuleName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_rule_name)]
WatchedClasses = Annotated[list[WatchedClass] | None, AfterValidator(_some_classes)]


class ZoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RuleName
    polygon: list[Point] = Field(min_length=3, max_length=64)
    classes: WatchedClasses = Field(
        None, description="Classes watched in this zone; left out: every class"
    )
    loiter_s: float | None = Field(None, gt=0, le=86400)
    alert: bool = Field(False, description="Entering is an alert (perimeter, restricted area)")

    @field_validator("polygon")
    @classmethod
    def _in_picture(cls, v: list[Point]) -> list[Point]:
        return _unit(v)

    @model_validator(mode="after")
    def _encloses_an_area(self, info: ValidationInfo) -> Self:
        if not _checking_new_rules(info):
            return self
        shape = Polygon(self.polygon)
        if shape.convex_hull.area < 1e-9:  # (float noise of points on one line)
            raise ValueError(
                f"zone {self.name!r}: its points enclose no area (the same point, or points "
                "on one line); place at least 3 points around the area"
            )
        if not shape.is_valid:
            raise ValueError(
                f"zone {self.name!r}: its edges cross each other; place the points in order "
                "around the area"
            )
        if shape.area < MIN_ZONE_AREA:
            raise ValueError(
                f"zone {self.name!r} covers {shape.area:.6f} of the picture: draw it at least "
                f"{MIN_ZONE_AREA} (1% x 1%)"
            )
        return self


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RuleName
    a: Point
    b: Point
    direction: Literal["any", "in", "out"] = "any"
    classes: WatchedClasses = Field(
        None, description="Classes counted on this line; left out: every class"
    )
    alert: bool = False

    @field_validator("a", "b")
    @classmethod
    def _in_picture(cls, v: Point) -> Point:
        _unit([v])
        return v

    @model_validator(mode="after")
    def _has_a_length(self, info: ValidationInfo) -> Self:
        if not _checking_new_rules(info):
            return self
        if self.a == self.b:
            raise ValueError(f"line {self.name!r}: its two ends are the same point")
        length = math.dist(self.a, self.b)
        if length < MIN_LINE_LENGTH:
            raise ValueError(
                f"line {self.name!r} is {length:.4f} of the picture long: draw it at least "
                f"{MIN_LINE_LENGTH} long"
            )
        return self


class CameraRulesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zones: list[ZoneIn] = Field(default_factory=list, max_length=32)
    lines: list[LineIn] = Field(default_factory=list, max_length=32)
    detect_fps: float = Field(5.0, gt=0, le=30)
    incident_kinds: list[EventKind] = Field(
        default_factory=list,
        description="Alert kinds that open an incident (e.g. zone_enter on a perimeter zone, "
        f"loitering); not {' or '.join(NEVER_ALERTS)}, which are never alerts",
    )
    enabled: bool = True

    @field_validator("incident_kinds")
    @classmethod
    def _alert_kinds(cls, v: list[str], info: ValidationInfo) -> list[str]:
        never = [k for k in v if k in NEVER_ALERTS]
        if _checking_new_rules(info) and never:
            if len(never) == 1:
                what = f"{never[0]} is never an alert, so it cannot"
            else:
                what = f"{' and '.join(never)} are never alerts, so they cannot"
            raise ValueError(f"{what} open an incident")
        return v


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
