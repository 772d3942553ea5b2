"""Per-camera rules on tracked objects: zones (enter, leave, loitering), tripwire lines
with direction, per-class counts per line per minute, and congestion.

Objects are placed by their anchor, the bottom-centre of the box (where a person or a
vehicle touches the ground), in frame pixels. Everything is driven by `update(tracks, t)`
with `t` in seconds; it returns the rule hits of that frame."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from safecity.vision.detections import COCO_CLASSES, Detections
from safecity.vision.errors import VisionError

Point = tuple[float, float]
#: (line, minute start in s, counts per group, mean speed in px/s) of one line and minute.
LineMinuteCounts = tuple[str, int, dict[str, int], float]
#: The classes counted on lines, and how they are reported.
COUNT_GROUPS: dict[str, str] = {
    "car": "car", "motorcycle": "motorcycle", "bicycle": "motorcycle", "bus": "bus_truck",
    "truck": "bus_truck", "person": "pedestrian",
}  # fmt: skip


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: tuple[Point, ...]
    #: Classes that count in this zone (None: every watched class).
    classes: tuple[str, ...] | None = None
    #: Seconds inside before a `loitering` event (None: no loitering rule).
    loiter_s: float | None = None
    #: Hits of this zone are alerts (e.g. a perimeter) rather than plain events.
    alert: bool = False

    def __post_init__(self) -> None:
        if len(self.polygon) < 3:
            raise VisionError(f"zone {self.name!r}: a polygon needs at least 3 points")


@dataclass(frozen=True)
class Line:
    name: str
    a: Point
    b: Point
    #: Count crossings `in`, `out` or `any`. For a line drawn from top to bottom, `in` is
    #: moving left to right (in general: from the side where (b-a) x (p-a) > 0).
    direction: Literal["any", "in", "out"] = "any"
    classes: tuple[str, ...] | None = None
    alert: bool = False

    def __post_init__(self) -> None:
        if self.a == self.b:
            raise VisionError(f"line {self.name!r}: its two points must differ")


@dataclass
class RuleEvent:
    kind: str  # zone_enter, zone_leave, loitering, line_cross, congestion
    rule: str
    time: float
    track_id: int = -1
    class_name: str = ""
    confidence: float = 0.0
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    alert: bool = False
    direction: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def points_in_polygon(points: NDArray[np.float32], polygon: Sequence[Point]) -> NDArray[np.bool_]:
    """Even-odd rule for many points at once."""
    poly = np.asarray(polygon, dtype=np.float64)
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    inside = np.zeros(len(points), bool)
    xj, yj = poly[-1]
    for xi, yi in poly:
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = (xj - xi) * (y - yi) / (yj - yi) + xi
        inside ^= crosses & (x < xint)
        xj, yj = xi, yi
    return inside


def _side(a: Point, b: Point, p: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = (b[0] - a[0]) * (p[..., 1] - a[1]) - (b[1] - a[1]) * (
        p[..., 0] - a[0]
    )
    return out


def _segments_cross(a: Point, b: Point, p: NDArray[np.float64], q: NDArray[np.float64]) -> bool:
    """Whether the move p -> q crosses segment a-b (a point on the line counts as on its
    right, so touching it and going back is no crossing, and stepping onto it is one)."""
    if (_side(a, b, p) > 0) == (_side(a, b, q) > 0):
        return False
    d3 = (q[0] - p[0]) * (a[1] - p[1]) - (q[1] - p[1]) * (a[0] - p[0])
    d4 = (q[0] - p[0]) * (b[1] - p[1]) - (q[1] - p[1]) * (b[0] - p[0])
    return bool(d3 * d4 <= 0)


@dataclass
class _TrackState:
    anchor: NDArray[np.float64]
    t: float
    zones: dict[str, float] = field(default_factory=dict)  # zone -> entered at
    loitered: set[str] = field(default_factory=set)
    speed: float = 0.0  # pixels per second
    # As last seen: a track that is lost still leaves its zones as what it was.
    class_name: str = ""
    confidence: float = 0.0
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=dict)
    speed_sum: float = 0.0


class RuleEngine:
    """The zones and lines of one camera applied to its tracks."""

    def __init__(
        self,
        zones: Sequence[Zone] = (),
        lines: Sequence[Line] = (),
        *,
        class_names: Sequence[str] = COCO_CLASSES,
        gone_after_s: float = 2.0,
        congestion_min_count: int = 10,
        congestion_speed_drop: float = 0.5,
    ) -> None:
        self.zones = list(zones)
        self.lines = list(lines)
        self.class_names = class_names
        self.gone_after_s = gone_after_s
        self.congestion_min_count = congestion_min_count
        self.congestion_speed_drop = congestion_speed_drop
        self._tracks: dict[int, _TrackState] = {}
        #: line -> minute start (s) -> group -> count
        self.counts: dict[str, dict[int, dict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int))
        )
        self._speeds: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        #: Counts not yet handed over for storing: (line, minute) -> counts per group, and
        #: the sum of their speeds. Kept apart from the minute's tallies above (congestion
        #: needs the whole minute) so that a minute can be stored in parts while it runs.
        self._unstored: dict[tuple[str, int], _Tally] = {}
        self._baseline: dict[str, float] = {}
        self._congested: dict[str, bool] = {}
        self._minutes_done: dict[str, deque[int]] = defaultdict(lambda: deque(maxlen=120))

    def _wanted(self, classes: tuple[str, ...] | None, name: str) -> bool:
        return classes is None or name in classes

    def update(self, tracks: Detections, t: float) -> list[RuleEvent]:
        events: list[RuleEvent] = []
        anchors = tracks.anchors.astype(np.float64)
        names = tracks.class_names(self.class_names)
        inside = (
            {z.name: points_in_polygon(tracks.anchors, z.polygon) for z in self.zones}
            if len(tracks)
            else {}
        )
        seen: set[int] = set()
        for i in range(len(tracks)):
            tid = int(tracks.tracker_id[i])
            if tid < 0:
                continue
            seen.add(tid)
            x0, y0, x1, y1 = (float(v) for v in tracks.xyxy[i])

            def hit(
                kind: str,
                rule: str,
                *,
                i: int = i,
                tid: int = tid,
                box: tuple[float, float, float, float] = (x0, y0, x1, y1),
                **kw: Any,
            ) -> RuleEvent:
                return RuleEvent(
                    kind,
                    rule,
                    t,
                    track_id=tid,
                    class_name=names[i],
                    confidence=float(tracks.confidence[i]),
                    box=box,
                    **kw,
                )

            st = self._tracks.get(tid)
            p = anchors[i]
            if st is not None and t > st.t:
                dist = float(np.hypot(*(p - st.anchor)))
                st.speed = (
                    0.5 * st.speed + 0.5 * dist / (t - st.t) if st.speed else dist / (t - st.t)
                )
                for line in self.lines:
                    if not self._wanted(line.classes, names[i]):
                        continue
                    if _segments_cross(line.a, line.b, st.anchor, p):
                        d = "in" if _side(line.a, line.b, st.anchor) > 0 else "out"
                        if line.direction in ("any", d):
                            events.append(
                                hit(
                                    "line_cross",
                                    line.name,
                                    alert=line.alert,
                                    direction=d,
                                    extra={"speed_px_s": st.speed},
                                )
                            )
                            self._count(line.name, t, names[i], st.speed)
            if st is None:
                st = _TrackState(p, t)
                self._tracks[tid] = st
            st.anchor, st.t = p, t
            st.class_name, st.confidence = names[i], float(tracks.confidence[i])
            st.box = (x0, y0, x1, y1)
            for z in self.zones:
                now_in = bool(inside[z.name][i]) and self._wanted(z.classes, names[i])
                if now_in and z.name not in st.zones:
                    st.zones[z.name] = t
                    events.append(hit("zone_enter", z.name, alert=z.alert))
                elif not now_in and z.name in st.zones:
                    entered = st.zones.pop(z.name)
                    st.loitered.discard(z.name)
                    events.append(
                        hit("zone_leave", z.name, extra={"dwell_s": round(t - entered, 1)})
                    )
                elif (
                    now_in
                    and z.loiter_s is not None
                    and z.name not in st.loitered
                    and t - st.zones[z.name] >= z.loiter_s
                ):
                    st.loitered.add(z.name)
                    events.append(
                        hit(
                            "loitering",
                            z.name,
                            alert=True,
                            extra={"dwell_s": round(t - st.zones[z.name], 1)},
                        )
                    )
        for tid, st in list(self._tracks.items()):
            if tid not in seen and t - st.t >= self.gone_after_s:
                for zname, entered in st.zones.items():
                    events.append(
                        RuleEvent(
                            "zone_leave",
                            zname,
                            t,
                            track_id=tid,
                            class_name=st.class_name,
                            confidence=st.confidence,
                            box=st.box,
                            extra={"dwell_s": round(st.t - entered, 1), "lost": True},
                        )
                    )
                del self._tracks[tid]
        events.extend(self._congestion(t))
        return events

    def _count(self, line: str, t: float, class_name: str, speed: float) -> None:
        group = COUNT_GROUPS.get(class_name, class_name)
        minute = int(t // 60) * 60
        self.counts[line][minute][group] += 1
        self._speeds[line][minute].append(speed)
        tally = self._unstored.setdefault((line, minute), _Tally())
        tally.counts[group] = tally.counts.get(group, 0) + 1
        tally.speed_sum += speed

    def minute_counts(self, line: str, minute: int) -> dict[str, int]:
        return dict(self.counts.get(line, {}).get(minute, {}))

    def take_counts(self, t: float, *, current_too: bool = False) -> list[LineMinuteCounts]:
        """What was counted on each line since the last call, per minute, for storing: of
        the minutes that ended before `t`, and with `current_too` of the running minute as
        well (a live chart, or a worker that stops). Each crossing is handed over once; a
        store adds the parts of a minute up."""
        current = int(t // 60) * 60
        out = []
        for (line, minute), tally in list(self._unstored.items()):
            if minute < current or current_too:
                del self._unstored[(line, minute)]
                n = sum(tally.counts.values())
                out.append((line, minute, dict(tally.counts), tally.speed_sum / n if n else 0.0))
        # The tallies of whole minutes are kept for the congestion check of the minute just
        # ended (made in `update`, before this) and no longer.
        for line_counts in self.counts.values():
            for minute in [m for m in line_counts if m < current]:
                del line_counts[minute]
        for line_speeds in self._speeds.values():
            for minute in [m for m in line_speeds if m < current]:
                del line_speeds[minute]
        return out

    def give_back_counts(
        self, line: str, minute: int, counts: dict[str, int], speed: float
    ) -> None:
        """Counts that `take_counts` handed over and that could not be stored: kept for the
        next call instead of lost."""
        self._add_unstored(line, minute, counts, speed * sum(counts.values()))

    def move_unstored_counts(self, to: RuleEngine) -> None:
        """Hand what was counted and not yet stored to `to`, the engine that replaces this
        one (the picture's size changed, so its lines are scaled anew): it is stored with
        the new engine's counts instead of thrown away with this engine."""
        for (line, minute), tally in self._unstored.items():
            to._add_unstored(line, minute, tally.counts, tally.speed_sum)
        self._unstored.clear()

    def _add_unstored(self, line: str, minute: int, counts: dict[str, int], speeds: float) -> None:
        tally = self._unstored.setdefault((line, minute), _Tally())
        for group, n in counts.items():
            tally.counts[group] = tally.counts.get(group, 0) + n
        tally.speed_sum += speeds

    def _congestion(self, t: float) -> list[RuleEvent]:
        """Alert when a line's last minute had many objects moving much slower than its
        usual speed (the running mean of earlier minutes)."""
        events = []
        current = int(t // 60) * 60
        for line in self.lines:
            done = self._minutes_done[line.name]
            prev = current - 60
            if prev in done or prev not in self._speeds[line.name]:
                continue
            done.append(prev)
            speeds = self._speeds[line.name][prev]
            count = sum(self.counts[line.name][prev].values())
            mean = float(np.mean(speeds)) if speeds else 0.0
            base = self._baseline.get(line.name)
            congested = (
                base is not None
                and count >= self.congestion_min_count
                and mean < self.congestion_speed_drop * base
            )
            if congested and not self._congested.get(line.name):
                events.append(
                    RuleEvent(
                        "congestion",
                        line.name,
                        t,
                        alert=True,
                        extra={
                            "count": count,
                            "speed_px_s": round(mean, 1),
                            "usual_speed_px_s": round(base or 0.0, 1),
                        },
                    )
                )
            self._congested[line.name] = congested
            if mean > 0 and not congested:
                self._baseline[line.name] = mean if base is None else 0.8 * base + 0.2 * mean
        return events
