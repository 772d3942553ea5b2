"""`safecity worker`: one process analysing a share of the registry's cameras.

Worker `index` of `count` takes the cameras whose id modulo `count` is `index` (so workers
on several machines share a city without talking to each other), runs them through
`safecity.vision.runner.MultiCameraRunner`, and writes what it sees through
`safecity.video.service`: events with snapshots and clips, camera health (and the registry's
live status), traffic counts, live pictures for the camera wall, and incidents for the alert
kinds each camera's rules name. It re-reads its cameras every `refresh_s` and purges media
past the retention once an hour. Cameras added, removed or moved to other streams restart
the analysis; a camera's edited zones and lines are handed to the running analysis, so its
stream, its tracks and the other cameras go on.

A camera whose stored rules cannot be applied is not analysed, the others are: its health
says so (`service.MISCONFIGURED`, with the reason). An event or counts whose store failed
(the database busy or down) are kept, oldest first, and stored again after a back-off (the
event's snapshot file is written once and reused); at most `max_pending_writes` wait, and
what is finally given up is logged (and its snapshot removed)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
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
from safecity.vision.rules import Line, LineMinuteCounts, Zone
from safecity.vision.runner import CameraConfig, MultiCameraRunner, VisionEvent

log = logging.getLogger("safecity.video.worker")
#: Logged when a camera's edited rules are taken up without restarting the analysis.
RULES_APPLIED_IN_PLACE = "applying the new rules"


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
    #: Back-off between tries to store writes that failed (first, longest), in seconds.
    store_retry_s: tuple[float, float] = (1.0, 30.0)
    #: Writes kept for another try at most (beyond, new ones are given up and counted).
    max_pending_writes: int = 10_000


@dataclass
class _PendingEvent:
    """An event to store (and, for an alert, to turn into an incident)."""

    camera: CameraOut
    kind: str
    at: datetime
    event: VisionEvent
    snapshot_file: Path | None
    clip: Path | None
    #: Set once the row is committed: a retry then only opens the incident.
    event_id: int | None = None
    alert: bool = False


@dataclass
class _PendingCounts:
    """Line counts that the analysis handed back when it stopped, not stored."""

    camera: CameraOut
    counts: LineMinuteCounts


@dataclass
class _Pending:
    """The writes waiting for another try, oldest first, and the back-off between tries."""

    writes: deque[_PendingEvent | _PendingCounts] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Held by the thread storing them (the analysis thread or the worker's loop).
    storing: threading.Lock = field(default_factory=threading.Lock)
    next_try: float = 0.0  # time.monotonic()
    delay: float = 0.0
    given_up: int = 0


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


def _stamp(a: Assignment) -> str:
    """A camera's rules as they are (not only when they were saved: two edits can share a
    clock reading)."""
    return a.rules.model_dump_json()


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
        self._signature: tuple[Any, ...] | None = None
        #: The analysed streams (camera, URLs, detection rate) and each camera's rules
        #: stamp, as last started: a change of rules alone is applied in place.
        self._streams: tuple[Any, ...] = ()
        self._rule_stamps: dict[int, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.events = 0
        self.crossings = 0
        self.incidents = 0
        self.restarts = 0
        self.rule_updates = 0
        self.errors = 0
        self._last_touch: dict[int, float] = {}
        self._pending = _Pending(delay=self.options.store_retry_s[0])

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
        # A last try for what waits; what still fails is given up (and logged).
        self.store_pending(now_or_never=True)
        with self._pending.lock:
            left, self._pending.writes = list(self._pending.writes), deque()
        for item in left:
            self._give_up(item, "the worker stopped before it could be stored")

    def run(self) -> None:
        """Serve cameras until stopped: refresh assignments, store again the writes that
        failed, and purge media periodically."""
        detector = self.detector()
        last_purge = 0.0
        next_refresh = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + self.options.refresh_s
                try:
                    self._refresh(detector)
                except Exception:
                    self.errors += 1
                    log.exception("worker %s: reading camera assignments failed", self.name)
            if time.time() - last_purge >= 3600:
                last_purge = time.time()
                try:
                    self.purge()
                except Exception:  # (the cameras go on; the next purge is in an hour)
                    self.errors += 1
                    log.exception("worker %s: purging media past retention failed", self.name)
            self.store_pending()
            wait = max(next_refresh - time.monotonic(), 0.0)
            # Writes waiting for the database are tried again within a second of their
            # back-off, also when no new event comes to try them.
            self._stop.wait(min(wait, 1.0) if self._pending.writes else wait)
        self._stop_runner()

    def _stop_runner(self) -> None:
        with self._lock:
            runner, self.runner = self.runner, None
        if runner is not None:
            # Counts whose store failed as it stopped: kept here, its engines go with it.
            for key, counts in runner.stop():
                cam = self._cameras.get(key)
                if cam is not None:
                    self._keep(_PendingCounts(cam, counts))

    def _refresh(self, detector: Detector) -> None:
        o = self.options
        with self.runtime.sessions() as session:
            work = service.assignments(session, worker_index=o.index, worker_count=o.count)
            if o.camera_ids is not None:
                work = [a for a in work if a.camera_id in o.camera_ids]
            cams = {
                str(a.camera_id): registry.get_camera(session, camera_id=a.camera_id) for a in work
            }
        signature = tuple((a.camera_id, a.stream_url, a.record_url, _stamp(a)) for a in work)
        if signature == self._signature:
            return
        streams = tuple((a.camera_id, a.stream_url, a.record_url, a.rules.detect_fps) for a in work)
        if streams == self._streams and self._rules_changed_in_place(work):
            self._cameras = cams
            self._signature = signature
            return
        if self.runner is not None:
            self.restarts += 1
            log.info("worker %s: cameras or rules changed; restarting analysis", self.name)
        self._stop_runner()
        self._cameras = cams
        configs = []
        for a in work:
            try:
                configs.append(_to_config(a, o.simulate_files))
            except Exception as exc:  # VisionError: a stored rule the library cannot apply
                reason = exc.message if isinstance(exc, VisionError) else repr(exc)
                self._not_analysed(cams[str(a.camera_id)], reason)
        if not configs:
            log.info("worker %s: no cameras to analyse", self.name)
            self._signature = signature
            return
        runner = MultiCameraRunner(
            detector,
            configs,
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
        # Only now: a refresh that failed before this point is tried again at the next one.
        self._signature = signature
        self._streams = streams
        self._rule_stamps = {a.camera_id: _stamp(a) for a in work}
        log.info("worker %s: analysing %d camera(s)", self.name, len(configs))

    def _rules_changed_in_place(self, work: list[Assignment]) -> bool:
        """Hand the running analysis the new rules of the cameras whose rules alone
        changed; False (restart instead) when one of them cannot take them in place: not
        analysed now, or its new rules cannot be applied."""
        runner = self.runner
        if runner is None:
            return False
        changed = [a for a in work if self._rule_stamps.get(a.camera_id) != _stamp(a)]
        if not changed:
            return True
        configs = []
        for a in changed:
            if str(a.camera_id) not in runner.cameras:
                return False
            try:
                configs.append(_to_config(a, self.options.simulate_files))
            except Exception:  # (the restart leaves it out and says why)
                return False
        for config in configs:
            runner.set_rules(config)
        for a in changed:
            self._rule_stamps[a.camera_id] = _stamp(a)
        self.rule_updates += 1
        log.info(
            "worker %s: %s of camera(s) %s; the others go on",
            self.name,
            RULES_APPLIED_IN_PLACE,
            ", ".join(c.key for c in configs),
        )
        return True

    def _not_analysed(self, cam: CameraOut, reason: str) -> None:
        """A camera whose rules cannot be applied: left out, and its health says why."""
        self.errors += 1
        log.error(
            "worker %s: camera %s (id %d) not analysed: its rules cannot be applied: %s",
            self.name,
            cam.code,
            cam.id,
            reason,
        )
        try:
            with self.runtime.sessions() as session:
                service.update_health(
                    session,
                    camera_id=cam.id,
                    status=service.MISCONFIGURED,
                    reason=f"not analysed: its rules cannot be applied ({reason}); save "
                    "corrected rules",
                    fps=0.0,
                    last_frame_at=None,
                    worker=self.name,
                    now=self.runtime.clock.now(),
                )
                session.commit()
        except Exception:
            log.exception("camera %s: recording why it is not analysed failed", cam.code)

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
            # Unique: one track can raise two alerts in one frame (a zone and a line).
            name = f"{int(ev.wall * 1000)}-{ev.track_id}-{ev.kind}-{uuid.uuid4().hex[:8]}.mp4"
            clip = self.data_dir / "video" / "clips" / day / str(cam.id) / name
            ev.clip_request(clip)
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
        snapshot_file = None
        if ev.snapshot is not None:
            try:
                snapshot_file = service.write_snapshot(
                    self.data_dir, camera_id=cam.id, at=at, jpeg=ev.snapshot
                )
            except OSError:  # (the event is still stored, without its picture)
                self.errors += 1
                log.exception("camera %s: writing an event's snapshot failed", cam.code)
        self._keep(_PendingEvent(cam, ev.kind, at, ev, snapshot_file, clip))

    # ------------------------------------------------------------------ storing, again
    def _keep(self, item: _PendingEvent | _PendingCounts) -> None:
        """Queue a write behind those waiting (in order) and store what may be stored."""
        pending = self._pending
        with pending.lock:
            full = len(pending.writes) >= self.options.max_pending_writes
            if not full:
                pending.writes.append(item)
        if full:
            pending.given_up += 1
            self._give_up(item, f"{pending.given_up} write(s) given up: too many waiting")
        self.store_pending()

    def store_pending(self, *, now_or_never: bool = False) -> int:
        """Store the writes waiting, oldest first, unless their back-off runs
        (`now_or_never`: try anyway). The first failure stops the round and doubles the
        back-off. Returns how many still wait."""
        pending = self._pending
        while pending.storing.acquire(blocking=False):  # (else another thread stores them)
            try:
                failed = not self._store_waiting(now_or_never)
            finally:
                pending.storing.release()
            with pending.lock:
                # Go on only for a write queued by another thread while this one stored.
                if failed or not pending.writes or time.monotonic() < pending.next_try:
                    break
        return len(pending.writes)

    def _store_waiting(self, now_or_never: bool) -> bool:
        """Store writes while they may be; False when one failed."""
        pending = self._pending
        while True:
            with pending.lock:
                if not pending.writes:
                    return True
                if not now_or_never and time.monotonic() < pending.next_try:
                    return True
                item = pending.writes[0]
            try:
                self._store(item)
            except Exception:
                self.errors += 1
                pending.next_try = time.monotonic() + pending.delay
                log.exception(
                    "worker %s: storing failed; %d write(s) kept, next try in %.0f s",
                    self.name,
                    len(pending.writes),
                    pending.delay,
                )
                pending.delay = min(pending.delay * 2, self.options.store_retry_s[1])
                return False
            with pending.lock:
                pending.writes.popleft()
            pending.delay = self.options.store_retry_s[0]

    def _store(self, item: _PendingEvent | _PendingCounts) -> None:
        if isinstance(item, _PendingCounts):
            line, minute, counts, speed = item.counts
            self._on_counts(str(item.camera.id), line, minute, counts, speed, cam=item.camera)
            return
        ev, cam = item.event, item.camera
        with self.runtime.sessions() as session:
            if item.event_id is None:
                out = service.record_event(
                    session,
                    camera=cam,
                    kind=item.kind,
                    at=item.at,
                    data_dir=self.data_dir,
                    rule=ev.rule,
                    class_name=ev.class_name,
                    track_id=ev.track_id,
                    confidence=ev.confidence,
                    box=ev.box,
                    direction=ev.direction,
                    alert=ev.alert,
                    snapshot_file=item.snapshot_file,
                    clip_path=item.clip,
                    data=dict(ev.extra),
                )
                session.commit()
                item.event_id, item.alert = out.id, out.alert
                self.events += 1
            if item.alert:
                try:
                    inc = service.open_incident(
                        session, event_id=item.event_id, now=self.runtime.clock.now()
                    )
                except SafeCityError as exc:  # refused, not failed: no use trying again
                    self.errors += 1
                    log.warning(
                        "camera %s: alert %s not turned into an incident: %s",
                        cam.code,
                        item.event_id,
                        exc.message,
                    )
                    inc = None
                if inc is not None:
                    self.incidents += 1

    def _give_up(self, item: _PendingEvent | _PendingCounts, why: str) -> None:
        """A write that will not be stored: said in the log, its snapshot removed."""
        if isinstance(item, _PendingCounts):
            line, minute, counts, _ = item.counts
            log.error(
                "camera %s: line %s, minute %s: counts %s lost: %s",
                item.camera.code,
                line,
                datetime.fromtimestamp(minute, UTC).isoformat(),
                counts,
                why,
            )
            return
        if item.event_id is not None:
            log.error(
                "camera %s: alert %d stored, but no incident opened for it: %s",
                item.camera.code,
                item.event_id,
                why,
            )
            return
        if item.snapshot_file is not None:
            item.snapshot_file.unlink(missing_ok=True)
        log.error(
            "camera %s: %s event at %s lost: %s",
            item.camera.code,
            item.kind,
            item.at.isoformat(),
            why,
        )

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
        self,
        key: str,
        line: str,
        minute: int,
        counts: dict[str, int],
        speed: float,
        *,
        cam: CameraOut | None = None,
    ) -> None:
        """Store counts (raises if that fails: the runner keeps them for its next try)."""
        cam = cam or self._cameras.get(key)
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
