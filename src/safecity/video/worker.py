"""`safecity worker`: one process analysing a share of the registry's cameras.

Worker `index` of `count` takes the cameras whose id modulo `count` is `index` (so workers
on several machines share a city without talking to each other), runs them through
`safecity.vision.runner.MultiCameraRunner`, and writes what it sees through
`safecity.video.service`: events with snapshots and clips, camera health (and the registry's
live status), traffic counts, live pictures for the camera wall, and incidents for the alert
kinds each camera's rules name. It re-reads its cameras every `refresh_s` (cameras added,
moved, rules edited) and purges media past the retention once an hour."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safecity.core.errors import SafeCityError
from safecity.core.runtime import Runtime
from safecity.registry import service as registry
from safecity.registry.schemas import CameraOut
from safecity.video import service
from safecity.video.schemas import Assignment
from safecity.vision import modelstore
from safecity.vision.detector import Detector, load_detector
from safecity.vision.errors import VisionError
from safecity.vision.health import HealthChange, HealthConfig
from safecity.vision.rules import Line, Zone
from safecity.vision.runner import CameraConfig, MultiCameraRunner, VisionEvent

log = logging.getLogger("safecity.video.worker")


@dataclass
class WorkerOptions:
    index: int = 0
    count: int = 1
    model_dir: Path | None = None
    backend: str = "onnxruntime"
    threads: int = 1
    refresh_s: float = 30.0
    retention_days: float = 30.0
    #: Pace `file://` cameras to their frame rate and loop them (simulated cameras).
    simulate_files: bool = True
    health: HealthConfig | None = None
    backoff_s: tuple[float, float] = (1.0, 30.0)
    read_timeout_s: float = 10.0
    #: Only these cameras (None: every camera of this worker's share).
    camera_ids: frozenset[int] | None = None


def _to_config(a: Assignment, simulate_files: bool) -> CameraConfig:
    r = a.rules
    zones = [
        Zone(z.name, tuple(z.polygon), tuple(z.classes) if z.classes else None, z.loiter_s, z.alert)
        for z in r.zones
    ]
    lines = [
        Line(ln.name, ln.a, ln.b, ln.direction, tuple(ln.classes) if ln.classes else None, ln.alert)
        for ln in r.lines
    ]
    return CameraConfig(
        key=str(a.camera_id),
        url=a.stream_url,
        record_url=a.record_url,
        zones=zones,
        lines=lines,
        detect_fps=r.detect_fps,
        simulate=simulate_files and a.stream_url.startswith("file://"),
        normalized=True,
    )


def _utc(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


class VideoWorker:
    """Runs until `stop()`; `start()` returns at once (a thread), `run()` blocks."""

    def __init__(
        self,
        runtime: Runtime,
        options: WorkerOptions | None = None,
        detector: Detector | None = None,
    ) -> None:
        self.runtime = runtime
        self.options = options or WorkerOptions()
        o = self.options
        self.name = f"{socket.gethostname()}:{os.getpid()}:{o.index}/{o.count}"
        self._detector = detector
        self.runner: MultiCameraRunner | None = None
        self._cameras: dict[str, CameraOut] = {}
        self._signature: tuple[Any, ...] = ()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.events = 0
        self.crossings = 0
        self.incidents = 0
        self.restarts = 0
        self.errors = 0
        self._last_touch: dict[int, float] = {}

    @property
    def data_dir(self) -> Path:
        return self.runtime.settings.data_dir

    def detector(self) -> Detector:
        if self._detector is None:
            o = self.options
            model_dir = o.model_dir or modelstore.default_model_dir(self.data_dir)
            try:
                path = modelstore.resolve(model_dir)
                self._detector = load_detector(path, backend=o.backend, threads=o.threads)
            except VisionError as exc:
                raise SafeCityError(exc.message) from None
        return self._detector

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.detector()
        self._thread = threading.Thread(target=self.run, name="video-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._stop_runner()

    def run(self) -> None:
        """Serve cameras until stopped: refresh assignments and purge media periodically."""
        detector = self.detector()
        last_purge = 0.0
        while not self._stop.is_set():
            try:
                self._refresh(detector)
            except Exception:
                self.errors += 1
                log.exception("worker %s: reading camera assignments failed", self.name)
            if time.time() - last_purge >= 3600:
                last_purge = time.time()
                self.purge()
            self._stop.wait(self.options.refresh_s)
        self._stop_runner()

    def _stop_runner(self) -> None:
        with self._lock:
            runner, self.runner = self.runner, None
        if runner is not None:
            runner.stop()

    def _refresh(self, detector: Detector) -> None:
        o = self.options
        with self.runtime.sessions() as session:
            work = service.assignments(session, worker_index=o.index, worker_count=o.count)
            if o.camera_ids is not None:
                work = [a for a in work if a.camera_id in o.camera_ids]
            cams = {
                str(a.camera_id): registry.get_camera(session, camera_id=a.camera_id) for a in work
            }
        signature = tuple(
            (a.camera_id, a.stream_url, a.record_url, a.rules.updated_at) for a in work
        )
        if signature == self._signature and self.runner is not None:
            return
        if self.runner is not None:
            self.restarts += 1
            log.info("worker %s: cameras or rules changed; restarting analysis", self.name)
        self._stop_runner()
        self._signature = signature
        self._cameras = cams
        if not work:
            log.info("worker %s: no cameras assigned", self.name)
            return
        runner = MultiCameraRunner(
            detector,
            [_to_config(a, o.simulate_files) for a in work],
            on_event=self._on_event,
            on_status=self._on_status,
            on_live=self._on_live,
            on_counts=self._on_counts,
            health_config=o.health,
            backoff_s=o.backoff_s,
            read_timeout_s=o.read_timeout_s,
        )
        with self._lock:
            self.runner = runner
        runner.start()
        log.info("worker %s: analysing %d camera(s)", self.name, len(work))

    def purge(self) -> int:
        now = self.runtime.clock.now()
        cutoff = service.retention_cutoff(now, self.options.retention_days)
        with self.runtime.sessions() as session:
            n = service.purge_media(session, older_than=cutoff)
            session.commit()
        if n:
            log.info("worker %s: removed %d snapshot/clip file(s) past retention", self.name, n)
        return n

    # ------------------------------------------------------------------ callbacks
    def _on_event(self, ev: VisionEvent) -> None:
        cam = self._cameras.get(ev.camera)
        if cam is None:
            return
        at = _utc(ev.wall) or self.runtime.clock.now()
        clip = None
        if ev.clip_request is not None:
            day = at.strftime("%Y-%m-%d")
            clip = (
                self.data_dir
                / "video"
                / "clips"
                / day
                / str(cam.id)
                / f"{int(ev.wall * 1000)}-{ev.track_id}.mp4"
            )
            ev.clip_request(clip)
        data = dict(ev.extra)
        if ev.kind == "line_cross" and not ev.alert:
            # A counting line: counted per minute, published live, not stored one by one.
            self.runtime.bus.publish(
                "vision.events.line_cross",
                {
                    "camera_id": cam.id,
                    "site_id": cam.site_id,
                    "at": at.isoformat(),
                    "rule": ev.rule,
                    "class_name": ev.class_name,
                    "track_id": ev.track_id,
                    "direction": ev.direction,
                    "speed_px_s": round(ev.extra.get("speed_px_s", 0), 1),
                },
            )
            self.crossings += 1
            return
        with self.runtime.sessions() as session:
            out = service.record_event(
                session,
                camera=cam,
                kind=ev.kind,
                at=at,
                data_dir=self.data_dir,
                rule=ev.rule,
                class_name=ev.class_name,
                track_id=ev.track_id,
                confidence=ev.confidence,
                box=ev.box,
                direction=ev.direction,
                alert=ev.alert,
                snapshot=ev.snapshot,
                clip_path=clip,
                data=data,
            )
            session.commit()
            self.events += 1
            if out.alert:
                try:
                    inc = service.open_incident(
                        session, event_id=out.id, now=self.runtime.clock.now()
                    )
                except SafeCityError as exc:
                    self.errors += 1
                    log.warning(
                        "camera %s: alert %s not turned into an incident: %s",
                        cam.code,
                        out.id,
                        exc.message,
                    )
                    inc = None
                if inc is not None:
                    self.incidents += 1

    def _on_status(self, key: str, change: HealthChange, fps: float, last: float | None) -> None:
        cam = self._cameras.get(key)
        if cam is None:
            return
        with self.runtime.sessions() as session:
            service.update_health(
                session,
                camera_id=cam.id,
                status=change.status,
                reason=change.reason,
                fps=fps,
                last_frame_at=_utc(last),
                worker=self.name,
                now=self.runtime.clock.now(),
            )
            session.commit()

    def _on_live(self, key: str, jpeg: bytes) -> None:
        root = service.live_root(self.data_dir)
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{key}.jpg.tmp"
        tmp.write_bytes(jpeg)
        tmp.replace(root / f"{key}.jpg")
        now = time.time()
        cam = self._cameras.get(key)
        runner = self.runner
        if cam is not None and runner is not None and now - self._last_touch.get(cam.id, 0) >= 10:
            self._last_touch[cam.id] = now
            c = runner.cameras.get(key)
            if c is not None:
                with self.runtime.sessions() as session:
                    service.touch_health(
                        session,
                        camera_id=cam.id,
                        fps=c.health.fps,
                        last_frame_at=_utc(c.health.last_frame_wall),
                        now=self.runtime.clock.now(),
                    )
                    session.commit()

    def _on_counts(
        self, key: str, line: str, minute: int, counts: dict[str, int], speed: float
    ) -> None:
        cam = self._cameras.get(key)
        if cam is None:
            return
        with self.runtime.sessions() as session:
            service.record_counts(
                session,
                camera=cam,
                line=line,
                minute=datetime.fromtimestamp(minute, UTC),
                counts=counts,
                mean_speed_px_s=speed,
            )
            session.commit()


def start_in_process(runtime: Runtime, options: WorkerOptions | None = None) -> VideoWorker:
    """A worker thread inside this process (the demo server: events reach its console over
    the in-process bus)."""
    worker = VideoWorker(runtime, options)
    worker.start()
    return worker


def run_worker(runtime: Runtime, options: WorkerOptions) -> int:
    """`safecity worker`: run until interrupted."""
    worker = VideoWorker(runtime, options)
    worker.detector()
    log.info("worker %s starting (model %s)", worker.name, worker.detector().name)
    try:
        worker.run()
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
    return 0
