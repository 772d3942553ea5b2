"""Many cameras in one process: a reader thread per camera, one analysis loop for all.

A reader thread (`CameraSource`) decodes its stream and keeps only the newest sampled
frame; when the stream fails it reports the camera offline and reconnects with exponential
back-off (with jitter), so one bad camera never holds up the others. The analysis loop
takes the newest frame of every camera that has one, runs motion-gated detection for all
of them in one round (`analyze_batch`), then tracking, rules and health, and hands
`VisionEvent`s, status changes and live pictures to the callbacks it was given. If the loop
falls behind, older frames are dropped, never queued. What goes wrong with one camera's
frame (or a callback) is logged with the camera's key and counted in `errors`; the loop goes
on with the other cameras.

Line counts are handed to `on_counts` every `counts_every_s` (the running minute too); a
store that fails is kept for the next one, and what still cannot be stored when the runner
stops is returned by `stop()` for the caller to keep."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from safecity.vision.decode import Frame, VideoReader, copy_packets, redact
from safecity.vision.detections import COCO_CLASSES, Detections
from safecity.vision.detector import Detector
from safecity.vision.errors import StreamError
from safecity.vision.health import HealthChange, HealthConfig, HealthMonitor
from safecity.vision.motion import shrink
from safecity.vision.pipeline import AnalyzerConfig, CameraAnalyzer, FrameResult, analyze_batch
from safecity.vision.rules import Line, LineMinuteCounts, RuleEngine, RuleEvent, Zone
from safecity.vision.snapshot import ClipRecorder, annotate, encode_jpeg

log = logging.getLogger("safecity.vision.runner")


@dataclass
class CameraConfig:
    key: str
    url: str
    zones: Sequence[Zone] = ()
    lines: Sequence[Line] = ()
    detect_fps: float = 5.0
    #: Pace files to their frame rate and loop them (simulated cameras).
    simulate: bool = False
    clips: bool = True
    #: The stream whose packets make event clips when `url` is a sub-stream (the camera's
    #: main stream, read without decoding); None: clips come from `url`.
    record_url: str | None = None
    #: Zone and line coordinates are shares (0..1) of the picture's width and height.
    normalized: bool = False

    def scaled(self, width: int, height: int) -> tuple[list[Zone], list[Line]]:
        """Zones and lines in pixels of a `width` x `height` picture."""
        if not self.normalized:
            return list(self.zones), list(self.lines)
        sx, sy = float(width), float(height)
        zones = [
            replace(z, polygon=tuple((x * sx, y * sy) for x, y in z.polygon)) for z in self.zones
        ]
        lines = [
            replace(ln, a=(ln.a[0] * sx, ln.a[1] * sy), b=(ln.b[0] * sx, ln.b[1] * sy))
            for ln in self.lines
        ]
        return zones, lines


@dataclass
class VisionEvent:
    camera: str
    kind: str
    wall: float
    stream_time: float
    rule: str = ""
    class_name: str = ""
    track_id: int = -1
    confidence: float = 0.0
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    alert: bool = False
    direction: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    snapshot: bytes | None = None
    #: Where the clip will be written (if the source allows copying packets).
    clip_request: Callable[[Path], None] | None = None


class CameraSource(threading.Thread):
    """Reads one camera for ever, reconnecting with back-off; keeps the newest frame."""

    def __init__(
        self,
        config: CameraConfig,
        *,
        on_offline: Callable[[str, str], None],
        backoff_s: tuple[float, float] = (1.0, 30.0),
        read_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(name=f"camera-{config.key}", daemon=True)
        self.config = config
        self.on_offline = on_offline
        self.backoff_s = backoff_s
        self.read_timeout_s = read_timeout_s
        self.clips = ClipRecorder() if config.clips else None
        #: With a main stream for clips: the analysed stream's own packets, for a clip while
        #: the main stream is down (a smaller clip rather than none).
        self.fallback_clips = ClipRecorder() if config.clips and config.record_url else None
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._stopping = threading.Event()
        self._reader: VideoReader | None = None
        self.connects = 0
        self.failures = 0
        self.frames = 0

    def take(self) -> Frame | None:
        with self._lock:
            f, self._frame = self._frame, None
            return f

    def stop(self) -> None:
        self._stopping.set()
        if self._reader is not None:
            self._reader.close()

    def request_clip(self, path: Path) -> None:
        """A clip around now: from the main stream, or from the analysed stream while the
        main one is down."""
        if self.clips is None:
            return
        if self.fallback_clips is not None and self.clips.buffered == 0:
            self.fallback_clips.request(path)
        else:
            self.clips.request(path)

    def flush_clips(self) -> None:
        for rec in (self.clips, self.fallback_clips):
            if rec is not None:
                rec.flush()

    def run(self) -> None:
        recorder = None
        if self.clips is not None and self.config.record_url:
            recorder = threading.Thread(
                target=self._record_main_stream, name=f"clips-{self.config.key}", daemon=True
            )
            recorder.start()
        try:
            self._read_analysed_stream()
        finally:
            self._stopping.set()
            if recorder is not None:
                recorder.join(timeout=self.read_timeout_s + 1.0)

    def _record_main_stream(self) -> None:
        """Packets of the main stream into the clip recorder, reconnecting with back-off.
        Its failures are logged, not reported: the camera's health is the analysed
        stream's, and without the main stream the clips are only missing."""
        assert self.clips is not None and self.config.record_url
        url, sinks = self.config.record_url, [self.clips]
        delay = self.backoff_s[0]
        while not self._stopping.is_set():
            t0 = time.monotonic()
            try:
                copy_packets(
                    url,
                    sinks,
                    stopping=self._stopping.is_set,
                    realtime=self.config.simulate,
                    open_timeout_s=self.read_timeout_s,
                    read_timeout_s=self.read_timeout_s,
                )
                reason = "stream ended"
            except StreamError as exc:
                reason = exc.message
            except Exception as exc:  # never let the recorder kill the camera
                log.exception("camera %s: clip stream: unexpected error", self.config.key)
                reason = f"unexpected error: {exc}"
            if self._stopping.is_set():
                return
            if self.config.simulate and reason == "stream ended":
                continue  # a simulated camera loops its file
            if time.monotonic() - t0 > 30.0:
                delay = self.backoff_s[0]
            log.info(
                "camera %s: clip stream %s: %s; retrying in %.0f s",
                self.config.key,
                redact(url),
                reason,
                delay,
            )
            self._stopping.wait(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.backoff_s[1])

    def _read_analysed_stream(self) -> None:
        own = self.fallback_clips if self.fallback_clips is not None else self.clips
        delay = self.backoff_s[0]
        while not self._stopping.is_set():
            cfg = self.config
            reader = VideoReader(
                cfg.url,
                fps=cfg.detect_fps,
                realtime=cfg.simulate,
                loop=cfg.simulate,
                read_timeout_s=self.read_timeout_s,
                open_timeout_s=self.read_timeout_s,
                packet_sinks=[own] if own is not None else [],
            )
            self._reader = reader
            got = 0
            try:
                self.connects += 1
                for frame in reader:
                    if self._stopping.is_set():
                        return
                    got += 1
                    self.frames += 1
                    with self._lock:
                        self._frame = frame
                    if got == 5:
                        delay = self.backoff_s[0]  # a working connection resets the back-off
                reason = "stream ended"
            except StreamError as exc:
                reason = exc.message
            except Exception as exc:  # never let one camera's oddity kill its thread
                log.exception("camera %s: unexpected error", cfg.key)
                reason = f"unexpected error: {exc}"
            if self._stopping.is_set():
                return
            self.failures += 1
            log.info(
                "camera %s (%s): %s; retrying in %.0f s", cfg.key, redact(cfg.url), reason, delay
            )
            self.on_offline(cfg.key, reason)
            self._stopping.wait(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.backoff_s[1])


@dataclass
class _Camera:
    config: CameraConfig
    source: CameraSource
    analyzer: CameraAnalyzer
    rules: RuleEngine
    health: HealthMonitor
    last_live: float = 0.0
    counts_taken: float = 0.0
    last_result: FrameResult | None = None
    size: tuple[int, int] | None = None
    zones: list[Zone] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)


class MultiCameraRunner:
    """Cameras -> events, status changes, live pictures and per-minute line counts."""

    def __init__(
        self,
        detector: Detector,
        cameras: Sequence[CameraConfig],
        *,
        on_event: Callable[[VisionEvent], None],
        on_status: Callable[[str, HealthChange, float, float | None], None],
        on_live: Callable[[str, bytes], None] | None = None,
        on_counts: Callable[[str, str, int, dict[str, int], float], None] | None = None,
        analyzer_config: AnalyzerConfig | None = None,
        health_config: HealthConfig | None = None,
        live_every_s: float = 1.0,
        counts_every_s: float = 10.0,
        backoff_s: tuple[float, float] = (1.0, 30.0),
        read_timeout_s: float = 10.0,
        class_names: Sequence[str] = COCO_CLASSES,
    ) -> None:
        cv2.setNumThreads(1)  # one worker per core: no thread pools fighting inside it
        self.detector = detector
        self.on_event = on_event
        self.on_status = on_status
        self.on_live = on_live
        self.on_counts = on_counts
        self.live_every_s = live_every_s
        self.counts_every_s = counts_every_s
        self.class_names = class_names
        self._offline: list[tuple[str, str]] = []
        self._offline_lock = threading.Lock()
        self._new_rules: dict[str, CameraConfig] = {}
        self._rules_lock = threading.Lock()
        self.cameras: dict[str, _Camera] = {}
        for c in cameras:
            source = CameraSource(
                c,
                on_offline=self._source_offline,
                backoff_s=backoff_s,
                read_timeout_s=read_timeout_s,
            )
            self.cameras[c.key] = _Camera(
                c,
                source,
                CameraAnalyzer(detector, analyzer_config),
                RuleEngine(c.zones, c.lines, class_names=class_names),
                HealthMonitor(health_config),
            )
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.frames = 0
        self.errors = 0

    def _source_offline(self, key: str, reason: str) -> None:
        with self._offline_lock:
            self._offline.append((key, reason))

    def start(self) -> None:
        for cam in self.cameras.values():
            cam.source.start()
        self._thread = threading.Thread(target=self.run, name="vision-analysis", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> list[tuple[str, LineMinuteCounts]]:
        """Stop reading and analysing, write the clips still waiting and store what was
        counted (the running minute too). Returns the counts whose store failed, each with
        its camera's key, for the caller to keep: this runner's engines go with it."""
        self._stopping.set()
        for cam in self.cameras.values():
            cam.source.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        stopped = self._thread is None or not self._thread.is_alive()
        unstored: list[tuple[str, LineMinuteCounts]] = []
        for cam in self.cameras.values():
            if cam.source.ident is not None:  # (not a runner stopped before it started)
                cam.source.join(timeout=2.0)
            cam.source.flush_clips()
            if stopped:  # (else the analysis thread may still be counting)
                now = time.time()
                self._store_counts(cam, cam.rules.take_counts(now, current_too=True))
                # What failed was given back to the engine: take it out again, for the caller.
                for line, minute, counts, speed in cam.rules.take_counts(now, current_too=True):
                    log.warning(
                        "camera %s: line %s, minute %d: counts %s not stored; handed back",
                        cam.config.key,
                        line,
                        minute,
                        counts,
                    )
                    unstored.append((cam.config.key, (line, minute, counts, speed)))
        return unstored

    def run(self) -> None:
        last_silence = 0.0
        while not self._stopping.is_set():
            did = self.step()
            now = time.time()
            if now - last_silence >= 1.0:
                last_silence = now
                self._check_silence(now)
            if not did:
                self._stopping.wait(0.01)

    def _check_silence(self, now: float) -> None:
        with self._offline_lock:
            offline, self._offline = self._offline, []
        for key, reason in offline:
            cam = self.cameras[key]
            cam.analyzer.reset()
            change = cam.health.offline(reason, now=now)
            if change is not None:
                self._status(cam, change)
        for cam in self.cameras.values():
            change = cam.health.check_silence(now=now)
            if change is not None:
                self._status(cam, change)

    def _status(self, cam: _Camera, change: HealthChange) -> None:
        try:
            self.on_status(cam.config.key, change, cam.health.fps, cam.health.last_frame_wall)
        except Exception:
            self.errors += 1
            log.exception("camera %s: status callback failed", cam.config.key)
        if change.status != "online" or change.previous not in ("unknown", "online"):
            self._emit(
                VisionEvent(
                    cam.config.key,
                    f"camera_{change.status}",
                    change.at,
                    0.0,
                    alert=change.status != "online",
                    extra={"reason": change.reason, "previous": change.previous},
                )
            )

    def _emit(self, ev: VisionEvent) -> None:
        try:
            self.on_event(ev)
        except Exception:
            self.errors += 1
            log.exception("camera %s: event callback failed", ev.camera)

    def set_rules(self, config: CameraConfig) -> None:
        """Give a running camera new zones and lines (those of `config`), taken up before
        the next round: its stream, its tracks and the other cameras go on, where a restart
        would reopen every stream and see every object in a zone enter it again. Counts not
        yet stored are kept. KeyError for a camera this runner does not analyse."""
        if config.key not in self.cameras:
            raise KeyError(config.key)
        with self._rules_lock:
            self._new_rules[config.key] = config

    def _take_up_new_rules(self) -> None:
        with self._rules_lock:
            new, self._new_rules = self._new_rules, {}
        for key, config in new.items():
            cam = self.cameras[key]
            cam.config = replace(cam.config, zones=config.zones, lines=config.lines)
            # Scaled to the picture, with a new rules engine (unstored counts moved to it),
            # at the camera's next frame.
            cam.size = None

    def step(self) -> bool:
        """One round over every camera with a new frame; False when none had one."""
        if self._new_rules:
            self._take_up_new_rules()
        items: list[tuple[_Camera, Frame]] = []
        for cam in self.cameras.values():
            f = cam.source.take()
            if f is not None:
                items.append((cam, f))
        if not items:
            return False
        self.rounds += 1
        now = time.time()
        batch: list[tuple[_Camera, Frame]] = []
        smalls = []
        for cam, f in items:
            try:
                smalls.append(shrink(f.gray(), cam.analyzer.config.motion_width))
            except Exception:
                self.errors += 1
                log.exception("camera %s: preparing a frame failed (frame skipped)", cam.config.key)
                f.release()
                continue
            batch.append((cam, f))
        try:
            results = analyze_batch([(cam.analyzer, f) for cam, f in batch], self.detector, smalls)
        except Exception:
            self.errors += 1
            log.exception("analysis round failed")
            for _, f in batch:
                f.release()
            return True
        for (cam, f), small, res in zip(batch, smalls, results, strict=True):
            self.frames += 1
            try:
                self._analysed(cam, f, small, res, now)
            except Exception:
                # One camera's odd frame (or rules) must not stop the others' analysis.
                self.errors += 1
                log.exception("camera %s: handling an analysed frame failed", cam.config.key)
            finally:
                f.release()
        return True

    def _analysed(
        self, cam: _Camera, f: Frame, small: NDArray[np.uint8], res: FrameResult, now: float
    ) -> None:
        """Health, rules and the live picture of one camera's analysed frame."""
        if cam.size != (f.width, f.height):
            cam.size = (f.width, f.height)
            cam.zones, cam.lines = cam.config.scaled(f.width, f.height)
            rules = RuleEngine(cam.zones, cam.lines, class_names=self.class_names)
            # Counts not yet stored go on with the new engine (stored at its next take).
            cam.rules.move_unstored_counts(rules)
            cam.rules = rules
        change = cam.health.frame(small, global_change=res.global_change, now=now)
        if change is not None:
            self._status(cam, change)
        if res.global_change:
            cam.analyzer.tracker.reset()
        self._rules(cam, f, res, now)
        cam.last_result = res
        if self.on_live is not None and now - cam.last_live >= self.live_every_s:
            cam.last_live = now
            try:
                img = annotate(
                    f.bgr(),
                    res.tracks,
                    names=self.class_names,
                    lines=[(ln.a, ln.b) for ln in cam.lines],
                    zones=[z.polygon for z in cam.zones],
                )
                self.on_live(cam.config.key, encode_jpeg(img, 70, max_width=640))
            except Exception:
                self.errors += 1
                log.exception("camera %s: live picture failed", cam.config.key)

    def _rules(self, cam: _Camera, f: Frame, res: FrameResult, now: float) -> None:
        # Wall-clock time: loitering, speeds and per-minute counts of a live camera.
        events: list[RuleEvent] = cam.rules.update(res.tracks, now)
        for ev in events:
            snap = None
            # A snapshot for what someone reviews: not for leaving a zone, nor for a plain
            # counting line (thousands of vehicles an hour; they are counted).
            if ev.kind != "zone_leave" and (ev.kind != "line_cross" or ev.alert):
                hl = Detections.merge([res.tracks])
                img = annotate(
                    f.bgr(),
                    hl,
                    names=self.class_names,
                    highlight=ev.track_id,
                    lines=[(ln.a, ln.b) for ln in cam.lines],
                    zones=[z.polygon for z in cam.zones],
                )
                snap = encode_jpeg(img, 80)
            clips = cam.source.clips
            self._emit(
                VisionEvent(
                    cam.config.key,
                    ev.kind,
                    now,
                    f.time,
                    rule=ev.rule,
                    class_name=ev.class_name,
                    track_id=ev.track_id,
                    confidence=ev.confidence,
                    box=ev.box,
                    alert=ev.alert,
                    direction=ev.direction,
                    extra=ev.extra,
                    snapshot=snap,
                    clip_request=cam.source.request_clip
                    if clips is not None and ev.alert
                    else None,
                )
            )
        if now - cam.counts_taken >= self.counts_every_s:
            # The running minute too, so that a traffic chart is at most this far behind.
            cam.counts_taken = now
            self._store_counts(cam, cam.rules.take_counts(now, current_too=True))

    def _store_counts(self, cam: _Camera, taken: list[LineMinuteCounts]) -> None:
        if self.on_counts is None:
            return
        for line, minute, counts, speed in taken:
            try:
                self.on_counts(cam.config.key, line, minute, counts, speed)
            except Exception:
                self.errors += 1
                log.exception("camera %s: storing line counts failed (kept)", cam.config.key)
                cam.rules.give_back_counts(line, minute, counts, speed)
