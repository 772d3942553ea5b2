"""Event snapshots (JPEG with the objects drawn) and event clips cut from the stream's own
packets (no re-encoding)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from safecity.vision.detections import COCO_CLASSES, Detections

log = logging.getLogger("safecity.vision.snapshot")

_COLOURS = {
    "person": (60, 180, 255), "car": (80, 220, 80), "truck": (255, 160, 60),
    "bus": (255, 120, 200), "motorcycle": (0, 220, 255), "bicycle": (200, 200, 0),
}  # fmt: skip


def annotate(
    img: NDArray[np.uint8],
    dets: Detections,
    *,
    names: Sequence[str] = COCO_CLASSES,
    highlight: int | None = None,
    lines: Sequence[tuple[tuple[float, float], tuple[float, float]]] = (),
    zones: Sequence[Sequence[tuple[float, float]]] = (),
) -> NDArray[np.uint8]:
    """A copy of `img` with boxes (label, track id), zones and lines drawn."""
    out = img.copy()
    for poly in zones:
        pts = np.array(poly, np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], True, (0, 200, 255), 2)
    for a, b in lines:
        cv2.line(out, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), (255, 0, 255), 2)
    labels = dets.class_names(names)
    for i in range(len(dets)):
        x0, y0, x1, y1 = (int(v) for v in dets.xyxy[i])
        tid = int(dets.tracker_id[i])
        colour = _COLOURS.get(labels[i], (255, 255, 255))
        thick = 3 if highlight is not None and tid == highlight else 1
        if thick == 3:
            colour = (0, 0, 255)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick)
        text = f"{labels[i]} {dets.confidence[i]:.2f}" + (f" #{tid}" if tid >= 0 else "")
        cv2.putText(
            out, text, (x0, max(y0 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA
        )
    return out


def encode_jpeg(img: NDArray[np.uint8], quality: int = 80, max_width: int | None = None) -> bytes:
    if max_width is not None and img.shape[1] > max_width:
        h = round(img.shape[0] * max_width / img.shape[1])
        img = np.asarray(
            cv2.resize(img, (max_width, h), interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())


def partial_path(path: Path) -> Path:
    """Where the clip `path` is written until it is complete: a hidden name in the same
    folder (so the rename is atomic) that no reader of clips looks for."""
    return path.with_name(f".{path.name}.part")


@dataclass
class _Pending:
    path: Path
    until: float
    #: Written by then at the latest (wall clock), whatever the stream's timestamps do.
    deadline: float
    packets: list[Any] = field(default_factory=list)


class ClipRecorder:
    """A packet sink for `VideoReader`: keeps the last `pre_s` seconds of the stream's
    packets (from a keyframe) and writes `[event - pre_s, event + post_s]` to a file by
    copying packets. `request` is thread-safe; the file appears once the stream passed the
    end of the clip (or on `flush`), whole: it is written under a hidden name beside it
    (`partial_path`) and renamed into place when complete, so that nothing serves half a
    clip."""

    def __init__(
        self,
        *,
        pre_s: float = 3.0,
        post_s: float = 3.0,
        max_s: float = 30.0,
        max_packets: int = 2000,
    ) -> None:
        self.pre_s = pre_s
        self.post_s = post_s
        self.max_s = max_s
        self.max_packets = max_packets
        self._last_t: float | None = None
        self._ring: deque[Any] = deque()
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._stream: Any = None
        #: The newest clips written (a recorder runs for weeks: not every clip).
        self.written: deque[Path] = deque(maxlen=100)

    def __call__(self, stream: Any, packet: Any) -> None:
        if packet.size == 0 or packet.pts is None:
            return
        self._stream = stream
        t = float(packet.pts * packet.time_base)
        if self._last_t is not None and (t < self._last_t - 1.0 or t > self._last_t + 60.0):
            # The timestamps jumped (a looping source, a restarted camera clock): the old
            # packets cannot share a clip with the new ones.
            self.flush()
            with self._lock:
                self._ring.clear()
        self._last_t = t
        with self._lock:
            if packet.is_keyframe:
                # Drop what precedes the newest keyframe that is older than pre_s.
                while self._ring:
                    first_key = next(
                        (i for i, p in enumerate(self._ring) if i and p.is_keyframe), None
                    )
                    if first_key is None:
                        break
                    kt = float(self._ring[first_key].pts * self._ring[first_key].time_base)
                    if t - kt < self.pre_s:
                        break
                    for _ in range(first_key):
                        self._ring.popleft()
            self._ring.append(packet)
            while self._ring and (
                t - float(self._ring[0].pts * self._ring[0].time_base) > self.max_s
                or len(self._ring) > self.max_packets
            ):
                self._ring.popleft()
            done = []
            wall = time.monotonic()
            for p in self._pending:
                p.packets.append(packet)
                if t >= p.until or wall >= p.deadline or len(p.packets) > self.max_packets:
                    done.append(p)
            for p in done:
                self._pending.remove(p)
        for p in done:
            self._write(p)

    @property
    def buffered(self) -> int:
        """Packets held for the next clip (none while the stream is down)."""
        with self._lock:
            return len(self._ring)

    def request(self, path: Path) -> None:
        """Keep a clip around now (the newest packet's time)."""
        with self._lock:
            if not self._ring:
                return
            last = self._ring[-1]
            t = float(last.pts * last.time_base)
            self._pending.append(
                _Pending(
                    path, t + self.post_s, time.monotonic() + self.post_s + 5.0, list(self._ring)
                )
            )

    def flush(self) -> None:
        """Write the clips still waiting for their end (with what the stream gave so far).
        Called by the reader before it closes the stream; does nothing once it is closed."""
        with self._lock:
            pending, self._pending = self._pending, []
        if self._stream is None:
            return
        for p in pending:
            self._write(p)

    def stream_closing(self) -> None:
        """The input is about to close: write what is pending, forget its packets (the next
        connection may differ in codec and time base)."""
        self.flush()
        with self._lock:
            self._stream = None
            self._ring.clear()

    def _write(self, p: _Pending) -> None:
        packets = [pk for pk in p.packets if pk.dts is not None]
        if not packets or self._stream is None:
            return
        p.path.parent.mkdir(parents=True, exist_ok=True)
        for fmt, suffix in (("mp4", ".mp4"), ("mpegts", ".ts")):
            path = p.path.with_suffix(suffix)
            part = partial_path(path)
            try:
                self._mux(part, fmt, packets)
                part.replace(path)
            except Exception as exc:  # this source's packets do not fit that container
                log.debug("clip %s as %s failed: %s", path, fmt, exc)
                part.unlink(missing_ok=True)
                continue
            self.written.append(path)
            return
        log.info("clip %s: this source's packets cannot be copied into MP4 or MPEG-TS", p.path)

    def _mux(self, path: Path, fmt: str, packets: list[Any]) -> None:
        with av.open(str(path), "w", format=fmt) as out:
            ost = out.add_stream_from_template(self._stream)
            base = packets[0].dts
            for pk in packets:
                q = av.Packet(bytes(pk))
                q.pts = pk.pts - base if pk.pts is not None else None
                q.dts = pk.dts - base
                q.time_base = pk.time_base or Fraction(1, 90000)
                q.is_keyframe = pk.is_keyframe
                q.stream = ost
                out.mux(q)
