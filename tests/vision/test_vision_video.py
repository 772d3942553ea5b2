"""The video domain on the demo province's database: a worker analysing a registry camera
(a real clip served as a simulated camera) stores events with snapshots, publishes them on
the bus, keeps the camera's live status in the registry, writes live pictures, and turns a
perimeter alert into an incident routed to the camera's station; rules, traffic counts and
media retention through the service and the API."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from vision_helpers import StubDetector, clip

from conftest import login
from safecity.core.auth import Principal, Role
from safecity.core.db import transaction
from safecity.core.errors import NotFound
from safecity.core.runtime import Runtime
from safecity.incidents import service as incidents
from safecity.registry import service as registry
from safecity.registry.schemas import CameraIn, CameraOut
from safecity.video import service
from safecity.video.models import CameraRules
from safecity.video.schemas import CameraRulesIn, CameraStatusOut, LineIn, ZoneIn
from safecity.video.worker import VideoWorker, WorkerOptions
from safecity.vision.detections import Detections
from safecity.vision.detector import Detector
from safecity.vision.rules import Line
from safecity.vision.runner import CameraConfig, MultiCameraRunner, VisionEvent
from safecity.vision.snapshot import partial_path

ADMIN = Principal(subject="test", name="test", role=Role.ADMIN)


def _camera(rt: Runtime, code: str, url: str) -> CameraOut:
    with transaction(rt.sessions) as s:
        site = registry.list_sites(s)[3]
        return registry.create_camera(
            s,
            now=rt.clock.now(),
            camera_in=CameraIn(
                code=code, name=f"vision test {code}", site_code=site.code, stream_url=url
            ),
        )


@pytest.fixture
def admin(demo_client: TestClient) -> dict[str, str]:
    return login(demo_client, "admin")


def test_worker_analyses_a_registry_camera(
    demo_runtime: Runtime, demo_client: TestClient, admin: dict[str, str], detector: Detector
) -> None:
    rt = demo_runtime
    cam = _camera(rt, "VIS-WORKER-1", f"file://{clip('o4n_traffic.mp4')}")
    with transaction(rt.sessions) as s:
        service.set_rules(
            s,
            camera_id=cam.id,
            now=rt.clock.now(),
            rules=CameraRulesIn(
                zones=[
                    ZoneIn(
                        name="perimeter", polygon=[(0, 0.55), (1, 0.55), (1, 1), (0, 1)], alert=True
                    )
                ],
                lines=[LineIn(name="mid", a=(0.5, 0), b=(0.5, 1))],
                incident_kinds=["zone_enter"],
            ),
        )
    sub = rt.bus.subscribe("vision.>")
    worker = VideoWorker(rt, WorkerOptions(camera_ids=frozenset({cam.id})), detector=detector)
    worker.start()
    try:
        deadline = time.time() + 25
        while time.time() < deadline and (worker.incidents < 1 or worker.crossings < 3):
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        worker.stop()
    msgs = sub.fetch(batch=10_000, timeout=0.5)
    sub.close()
    subjects = {m.subject for m in msgs}
    assert "vision.camera.online" in subjects
    assert "vision.events.zone_enter" in subjects
    assert worker.incidents >= 1 and worker.errors == 0
    # Every vehicle seen crossing the counting line is in the stored counts, the running
    # minute's too: the worker stores it as it stops (and every 10 s while it runs).
    crossed = [m.data for m in msgs if m.subject == "vision.events.line_cross"]
    assert len(crossed) >= 3 and {c["rule"] for c in crossed} == {"mid"}
    with rt.sessions() as s:
        since = datetime.now(UTC) - timedelta(minutes=5)
        stored = service.traffic(s, camera_id=cam.id, since=since, line="mid").points
    assert sum(p.total for p in stored) == len(crossed)

    with rt.sessions() as s:
        assert registry.get_camera(s, camera_id=cam.id).status == "online"
        status = next(c for c in service.camera_statuses(s) if c.camera_id == cam.id)
        assert status.status == "online" and status.last_frame_at is not None
        events = service.list_events(s, camera_id=cam.id)
        enter = next(e for e in events if e.kind == "zone_enter")
        assert enter.alert and enter.class_name in ("car", "truck") and enter.track_id > 0
        assert enter.snapshot_path and Path(enter.snapshot_path).read_bytes()[:2] == b"\xff\xd8"
        assert len(enter.box) == 4
        inc = incidents.get_incident(s, incident_id=enter.incident_id or 0, actor=ADMIN)
        assert inc.category == "camera_alert" and inc.source == "camera"
        assert inc.station_id == cam.station_id
        assert "VIS-WORKER-1" in inc.description
        # Its calls name their events (a second alert nearby joins it as a duplicate).
        raised = {service.event_id_of_call(c.external_id) for c in inc.calls}
        assert enter.id in raised and None not in raised

    r = demo_client.get(f"/api/v1/video/events?camera_id={cam.id}", headers=admin)
    assert r.status_code == 200 and any(e["kind"] == "zone_enter" for e in r.json())
    snap = demo_client.get(f"/api/v1/video/events/{enter.id}/snapshot", headers=admin)
    assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
    live = demo_client.get(f"/api/v1/video/cameras/{cam.id}/live.jpg", headers=admin)
    assert live.status_code == 200 and live.content[:2] == b"\xff\xd8"
    st = demo_client.get("/api/v1/video/cameras/status", headers=admin).json()
    assert next(c for c in st if c["camera_id"] == cam.id)["status"] == "online"


def test_rules_through_the_api(
    demo_runtime: Runtime, demo_client: TestClient, admin: dict[str, str]
) -> None:
    cam = _camera(demo_runtime, "VIS-RULES-1", "rtsp://192.0.2.1/never-connected")
    url = f"/api/v1/video/cameras/{cam.id}/rules"
    assert demo_client.get(url, headers=admin).json()["zones"] == []
    body = {
        "zones": [
            {
                "name": "wall",
                "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.5]],
                "loiter_s": 30,
                "alert": True,
            }
        ],
        "lines": [
            {
                "name": "gate",
                "a": [0, 0.5],
                "b": [1, 0.5],
                "direction": "in",
                "classes": ["car", "motorcycle"],
            }
        ],
        "incident_kinds": ["zone_enter", "loitering"],
        "detect_fps": 4,
    }
    r = demo_client.put(url, headers=admin, json=body)
    assert r.status_code == 200, r.text
    got = demo_client.get(url, headers=admin).json()
    assert got["zones"][0]["name"] == "wall" and got["lines"][0]["direction"] == "in"
    assert got["detect_fps"] == 4
    bad = demo_client.put(
        url, headers=admin, json={"zones": [{"name": "x", "polygon": [[0, 0], [2, 0], [1, 1]]}]}
    )
    assert bad.status_code == 422 and "between 0 and 1" in bad.json()["message"]
    dup = demo_client.put(
        url,
        headers=admin,
        json={
            "zones": [{"name": "x", "polygon": [[0, 0], [1, 0], [1, 1]]}],
            "lines": [{"name": "x", "a": [0, 0], "b": [1, 1]}],
        },
    )
    assert dup.status_code == 422 and "unique" in dup.json()["message"]
    assert demo_client.get("/api/v1/video/cameras/999999/rules", headers=admin).status_code == 404
    analyst = login(demo_client, "analyst")
    assert demo_client.put(url, headers=analyst, json=body).status_code == 403


def test_status_counts_and_retention(
    demo_runtime: Runtime, demo_client: TestClient, admin: dict[str, str], tmp_path: Path
) -> None:
    rt = demo_runtime
    cam = _camera(rt, "VIS-HEALTH-1", "rtsp://192.0.2.1/never-connected")
    sub = rt.bus.subscribe("vision.camera.>")
    now = rt.clock.now()
    with transaction(rt.sessions) as s:
        service.update_health(
            s,
            camera_id=cam.id,
            status="offline",
            reason="connection refused",
            fps=0,
            last_frame_at=None,
            worker="w1",
            now=now,
        )
    msg = sub.fetch(timeout=1.0)
    sub.close()
    assert msg and msg[0].subject == "vision.camera.offline"
    assert msg[0].data["reason"] == "connection refused"
    with rt.sessions() as s:
        assert registry.get_camera(s, camera_id=cam.id).status == "offline"

    minute = now.replace(second=0, microsecond=0) - timedelta(minutes=5)
    with transaction(rt.sessions) as s:
        service.record_counts(
            s,
            camera=cam,
            line="mid",
            minute=minute,
            counts={"car": 5, "bus_truck": 1},
            mean_speed_px_s=40.0,
        )
        service.record_counts(
            s, camera=cam, line="mid", minute=minute, counts={"car": 1}, mean_speed_px_s=10.0
        )
    r = demo_client.get(f"/api/v1/video/traffic?camera_id={cam.id}&minutes=30", headers=admin)
    pts = r.json()["points"]
    assert len(pts) == 1 and pts[0]["counts"] == {"car": 6, "bus_truck": 1}
    assert pts[0]["total"] == 7 and pts[0]["mean_speed_px_s"] == pytest.approx(35.7, abs=0.1)
    site = demo_client.get(f"/api/v1/video/traffic?site_id={cam.site_id}", headers=admin)
    assert site.json()["points"][0]["total"] >= 7

    old = datetime.now(UTC) - timedelta(days=40)
    with transaction(rt.sessions) as s:
        ev = service.record_event(
            s,
            camera=cam,
            kind="loitering",
            at=old,
            data_dir=tmp_path,
            rule="wall",
            snapshot=b"\xff\xd8jpeg",
            alert=True,
        )
    assert ev.snapshot_path and Path(ev.snapshot_path).is_file()
    with transaction(rt.sessions) as s:
        n = service.purge_media(s, older_than=datetime.now(UTC) - timedelta(days=30))
    assert n >= 1 and not Path(ev.snapshot_path).exists()
    with rt.sessions() as s:
        assert service.get_event(s, event_id=ev.id).snapshot_path is None
    gone = demo_client.get(f"/api/v1/video/events/{ev.id}/snapshot", headers=admin)
    assert gone.status_code == 404 and "retention" in gone.json()["message"]


@pytest.mark.parametrize(
    ("external_id", "event_id"),
    [
        ("video-event-12", 12),
        ("video-event-", None),
        ("video-event-12a", None),
        ("panic-12", None),
        (None, None),
    ],
)
def test_a_calls_video_event(external_id: str | None, event_id: int | None) -> None:
    assert service.event_id_of_call(external_id) == event_id


@pytest.mark.parametrize(
    ("rules", "refusal"),
    [
        (
            {"lines": [{"name": "gate", "a": [0.5, 0.5], "b": [0.5, 0.5]}]},
            "lines.0: line 'gate': its two ends are the same point",
        ),
        (
            {"lines": [{"name": "gate", "a": [0.5, 0.5], "b": [0.5, 0.505]}]},
            "lines.0: line 'gate' is 0.0050 of the picture long: draw it at least 0.01",
        ),
        (
            {"zones": [{"name": "yard", "polygon": [[0.2, 0.2], [0.2, 0.2], [0.2, 0.2]]}]},
            "zones.0: zone 'yard': its points enclose no area",
        ),
        (
            {"zones": [{"name": "yard", "polygon": [[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]}]},
            "zones.0: zone 'yard': its points enclose no area",
        ),
        (
            {"zones": [{"name": "yard", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}]},
            "zones.0: zone 'yard': its edges cross each other",
        ),
        (
            {"zones": [{"name": "   ", "polygon": [[0, 0], [1, 0], [1, 1]]}]},
            "zones.0.name: give the rule a name",
        ),
        (
            {"zones": [{"name": "yard", "polygon": [[0, 0], [1, 0], [1, 1]], "classes": []}]},
            "zones.0.classes: give at least one class, or leave classes out for all",
        ),
        (
            {"lines": [{"name": "gate", "a": [0, 0], "b": [1, 1], "classes": []}]},
            "lines.0.classes: give at least one class, or leave classes out for all",
        ),
        (
            {"incident_kinds": ["zone_leave", "line_cross"]},
            "incident_kinds: zone_leave is never an alert, so it cannot open an incident",
        ),
        (
            {"incident_kinds": ["camera_online"]},
            "incident_kinds: camera_online is never an alert",
        ),
    ],
)
def test_rules_that_could_never_fire_are_refused_naming_the_rule(
    demo_client: TestClient,
    admin: dict[str, str],
    rules: dict[str, Any],
    refusal: str,
    rules_camera: CameraOut,
) -> None:
    """A line without length, a zone without area (or with crossing edges), a blank name, an
    empty class list (it would silently mean every class) or an incident kind that is never
    an alert: refused before they reach a worker (a zero-length line used to stop every
    camera of its worker)."""
    url = f"/api/v1/video/cameras/{rules_camera.id}/rules"
    r = demo_client.put(url, headers=admin, json=rules)
    assert r.status_code == 422, r.text
    assert refusal in r.json()["message"]


@pytest.fixture(scope="module")
def rules_camera(demo_runtime: Runtime) -> CameraOut:
    return _camera(demo_runtime, f"VIS-REFUSE-{uuid.uuid4().hex[:6]}", "rtsp://192.0.2.1/none")


def _store_rules_as_of_old(rt: Runtime, camera_id: int, lines: list[dict[str, Any]]) -> None:
    """Rules as an older version stored them, before today's checks (no API takes them)."""
    with transaction(rt.sessions) as s:
        s.add(
            CameraRules(
                camera_id=camera_id,
                zones=[],
                lines=lines,
                detect_fps=5.0,
                incident_kinds=[],
                enabled=True,
                updated_at=rt.clock.now(),
            )
        )


def _health(rt: Runtime, camera_id: int) -> CameraStatusOut:
    with rt.sessions() as s:
        return next(c for c in service.camera_statuses(s) if c.camera_id == camera_id)


def test_a_camera_whose_stored_rules_cannot_be_applied_is_left_out_and_says_why(
    demo_runtime: Runtime, demo_client: TestClient, admin: dict[str, str]
) -> None:
    """Stored before lines needed a length, a zero-length line cannot be analysed: that
    camera is left out (its health says why) and the worker's other cameras are analysed.
    The rules stay readable, to be corrected."""
    rt = demo_runtime
    url = f"file://{clip('o4n_traffic.mp4')}"
    good, bad = _camera(rt, "VIS-GOODRULES", url), _camera(rt, "VIS-BADRULES", url)
    dot = {"name": "dot", "a": [0.5, 0.5], "b": [0.5, 0.5], "direction": "any"}
    _store_rules_as_of_old(rt, bad.id, [dot])
    got = demo_client.get(f"/api/v1/video/cameras/{bad.id}/rules", headers=admin)
    assert got.status_code == 200 and got.json()["lines"][0]["name"] == "dot"

    worker = VideoWorker(
        rt, WorkerOptions(camera_ids=frozenset({good.id, bad.id})), detector=StubDetector()
    )
    worker.start()
    try:
        deadline = time.time() + 20
        while time.time() < deadline and _health(rt, good.id).status != "online":
            time.sleep(0.2)
    finally:
        worker.stop()
    assert _health(rt, good.id).status == "online"
    refused = _health(rt, bad.id)
    assert refused.status == service.MISCONFIGURED
    assert "line 'dot'" in refused.reason and "save corrected rules" in refused.reason
    assert worker.errors == 1


def test_naive_times_are_utc_and_ids_past_the_database_range_are_refused(
    demo_runtime: Runtime, demo_client: TestClient, admin: dict[str, str], tmp_path: Path
) -> None:
    rt = demo_runtime
    cam = _camera(rt, "VIS-QUERY-1", "rtsp://192.0.2.1/never-connected")
    with transaction(rt.sessions) as s:
        service.record_event(
            s, camera=cam, kind="zone_enter", at=datetime(2024, 1, 1, 1, tzinfo=UTC),
            data_dir=tmp_path, rule="yard",
        )  # fmt: skip
    events = f"/api/v1/video/events?camera_id={cam.id}"
    for since, n in (("2024-01-01T00:00:00", 1), ("2024-01-01T02:00:00", 0)):
        naive = demo_client.get(f"{events}&since={since}", headers=admin)
        utc = demo_client.get(f"{events}&since={since}Z", headers=admin)
        assert naive.status_code == 200, naive.text
        assert len(naive.json()) == n and naive.json() == utc.json()

    huge = 99999999999999999999
    for path, name in (
        (f"/api/v1/video/events/{huge}", "event_id"),
        (f"/api/v1/video/events/{huge}/snapshot", "event_id"),
        (f"/api/v1/video/events/{huge}/clip", "event_id"),
        (f"/api/v1/video/events?camera_id={huge}", "camera_id"),
        (f"/api/v1/video/events?site_id={huge}", "site_id"),
        (f"/api/v1/video/cameras/status?site_id={huge}", "site_id"),
        (f"/api/v1/video/cameras/{huge}/live.jpg", "camera_id"),
        (f"/api/v1/video/cameras/{huge}/rules", "camera_id"),
        (f"/api/v1/video/traffic?camera_id={huge}", "camera_id"),
        (f"/api/v1/video/traffic?site_id={huge}", "site_id"),
        (f"/api/v1/video/events/{2**31}", "event_id"),
    ):
        r = demo_client.get(path, headers=admin)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["message"].startswith(f"{name}: "), (path, r.text)
    put = demo_client.put(f"/api/v1/video/cameras/{huge}/rules", headers=admin, json={})
    assert put.status_code == 422 and put.json()["message"].startswith("camera_id: ")
    with rt.sessions() as s, pytest.raises(NotFound):
        service.get_event(s, event_id=huge)  # (the console's routes)


def _old_event(rt: Runtime, cam: CameraOut, data_dir: Path, clip_path: Path) -> int:
    with transaction(rt.sessions) as s:
        return service.record_event(
            s, camera=cam, kind="zone_enter", at=datetime.now(UTC) - timedelta(days=40),
            data_dir=data_dir, alert=True, snapshot=b"\xff\xd8jpeg", clip_path=clip_path,
        ).id  # fmt: skip


def test_purge_removes_clips_in_either_container_and_files_already_gone(
    demo_runtime: Runtime, tmp_path: Path
) -> None:
    """The worker stores a clip's MP4 name; the recorder may have written MPEG-TS instead
    (a codec MP4 does not take). Both are purged, and a file already gone (another
    worker's purge) is no error."""
    rt = demo_runtime
    cam = _camera(rt, "VIS-PURGE-TS", "rtsp://192.0.2.1/never-connected")
    ts_clip = tmp_path / "clips" / "1700000000000-3-zone_enter-ab.mp4"
    ts_clip.parent.mkdir(parents=True)
    ts_clip.with_suffix(".ts").write_bytes(b"G" * 188)
    ts_event = _old_event(rt, cam, tmp_path, ts_clip)
    gone_clip = tmp_path / "clips" / "1700000000000-4-zone_enter-cd.mp4"
    gone_event = _old_event(rt, cam, tmp_path, gone_clip)  # its clip was never written
    # A clip the recorder was writing when the process died: its hidden partial file.
    cut_clip = tmp_path / "clips" / "1700000000000-5-zone_enter-ef.mp4"
    cut_part = partial_path(cut_clip)
    cut_part.write_bytes(b"\x00" * 48)
    _old_event(rt, cam, tmp_path, cut_clip)
    with rt.sessions() as s:
        found = service.clip_file(service.get_event(s, event_id=ts_event))
        assert found == (ts_clip.with_suffix(".ts"), "video/mp2t")
        gone = service.get_event(s, event_id=gone_event)
    assert gone.snapshot_path is not None
    Path(gone.snapshot_path).unlink()  # removed meanwhile
    with transaction(rt.sessions) as s:
        removed = service.purge_media(s, older_than=datetime.now(UTC) - timedelta(days=30))
    assert removed >= 3  # the .ts clip, the partial clip and the events' snapshots
    assert not ts_clip.with_suffix(".ts").exists() and not cut_part.exists()
    with rt.sessions() as s:
        for event_id in (ts_event, gone_event):
            ev = service.get_event(s, event_id=event_id)
            assert ev.clip_path is None and ev.snapshot_path is None


def test_a_failed_purge_does_not_stop_the_worker(
    demo_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def purge_fails(session: Any, *, older_than: datetime) -> int:
        raise OSError("[Errno 5] Input/output error: the media disk")

    monkeypatch.setattr(service, "purge_media", purge_fails)
    worker = VideoWorker(
        demo_runtime,
        WorkerOptions(camera_ids=frozenset(), refresh_s=0.1),
        detector=StubDetector(),
    )
    refreshes = []
    real_refresh = worker._refresh
    monkeypatch.setattr(worker, "_refresh", lambda d: refreshes.append(1) or real_refresh(d))
    worker.start()
    try:
        deadline = time.time() + 5
        while time.time() < deadline and len(refreshes) < 5:
            time.sleep(0.05)
        assert worker._thread is not None and worker._thread.is_alive()
    finally:
        worker.stop()
    assert len(refreshes) >= 5 and worker.errors == 1


def _alert(cam: CameraOut, kind: str = "zone_enter", **kw: Any) -> VisionEvent:
    fields: dict[str, Any] = {
        "rule": "perimeter", "class_name": "person", "track_id": 5, "alert": True,
        "snapshot": b"\xff\xd8jpeg", **kw,
    }  # fmt: skip
    return VisionEvent(str(cam.id), kind, time.time(), 1.0, **fields)


def _snapshots(rt: Runtime, cam: CameraOut) -> list[Path]:
    return list(service.snapshot_root(rt.settings.data_dir).rglob(f"*/{cam.id}/*.jpg"))


class _FailingCommits:
    """Session.commit fails (the database locked) while `failures` is above 0."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
        self.failures = failures
        real = Session.commit

        def commit(session: Session) -> None:
            if self.failures > 0:
                self.failures -= 1
                raise OperationalError("COMMIT", {}, Exception("database is locked"))
            real(session)

        monkeypatch.setattr(Session, "commit", commit)


def _worker_of(rt: Runtime, *cams: CameraOut, **options: Any) -> VideoWorker:
    """A worker serving `cams` (as its refresh would make it), trying failed stores again
    without waiting."""
    worker = VideoWorker(
        rt, WorkerOptions(store_retry_s=(0.0, 0.0), **options), detector=StubDetector()
    )
    worker._cameras = {str(c.id): c for c in cams}
    return worker


def test_an_event_whose_store_failed_is_stored_at_the_next_try_with_its_one_snapshot(
    demo_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = demo_runtime
    cam = _camera(rt, "VIS-RETRY-1", "rtsp://192.0.2.1/never-connected")
    worker = _worker_of(rt, cam)
    commits = _FailingCommits(monkeypatch, failures=1)
    worker._on_event(_alert(cam))  # what the analysis loop calls
    assert commits.failures == 0 and worker.errors == 1
    with rt.sessions() as s:
        assert service.list_events(s, camera_id=cam.id) == []
    assert worker.store_pending() == 0
    with rt.sessions() as s:
        stored = service.list_events(s, camera_id=cam.id)
    assert len(stored) == 1 and stored[0].kind == "zone_enter"
    assert _snapshots(rt, cam) == [Path(stored[0].snapshot_path or "")]  # written once


def test_events_given_up_leave_no_snapshot_behind(
    demo_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database stays down: one event waits (the most that may), the next is given up,
    and the one waiting is given up when the worker stops; neither leaves its JPEG."""
    rt = demo_runtime
    cam = _camera(rt, "VIS-RETRY-2", "rtsp://192.0.2.1/never-connected")
    worker = _worker_of(rt, cam, max_pending_writes=1)
    _FailingCommits(monkeypatch, failures=1_000)
    worker._on_event(_alert(cam, track_id=1))
    assert len(_snapshots(rt, cam)) == 1
    worker._on_event(_alert(cam, track_id=2))
    assert len(_snapshots(rt, cam)) == 1 and worker._pending.given_up == 1
    worker.stop()
    assert _snapshots(rt, cam) == []


def test_two_alerts_of_one_track_in_one_frame_keep_a_clip_each(demo_runtime: Runtime) -> None:
    rt = demo_runtime
    cam = _camera(rt, "VIS-CLIPS-2", "rtsp://192.0.2.1/never-connected")
    worker = _worker_of(rt, cam)
    requested: list[Path] = []
    wall = time.time()
    for kind, rule in (("zone_enter", "perimeter"), ("line_cross", "fence")):
        ev = _alert(cam, kind, rule=rule, clip_request=requested.append)
        ev.wall = wall
        worker._on_event(ev)
    assert len(requested) == 2 and requested[0] != requested[1]
    with rt.sessions() as s:
        clips = {e.clip_path for e in service.list_events(s, camera_id=cam.id)}
    assert clips == {str(p) for p in requested}


def test_counts_the_analysis_could_not_store_as_it_stopped_are_stored_by_the_worker(
    demo_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The rules changed, so the analysis restarts; storing its running minute's counts
    fails (the database locked): the worker keeps them and stores them at its next try."""
    rt = demo_runtime
    cam = _camera(rt, "VIS-COUNTS-STOP", "rtsp://192.0.2.1/never-connected")
    worker = _worker_of(rt, cam)
    config = CameraConfig(
        str(cam.id), f"file://{tmp_path}/none.mp4", lines=[Line("mid", (100, 0), (100, 200))]
    )
    runner = MultiCameraRunner(
        StubDetector(),
        [config],
        on_event=lambda ev: None,
        on_status=lambda *a: None,
        on_counts=worker._on_counts,
        counts_every_s=3600,
    )
    worker.runner = runner
    runner.start()
    t0 = time.time()
    engine = runner.cameras[config.key].rules
    for i in range(8):  # a car across x=100
        x = 60 + 10 * i
        box = np.array([[x - 10, 80, x + 10, 100]], np.float32)
        engine.update(Detections(box, [0.8], [2], [1]), t0 + i * 0.2)
    commits = _FailingCommits(monkeypatch, failures=2)  # the runner's try and the worker's
    worker._stop_runner()  # what a refresh does when the rules changed
    assert commits.failures == 0, "the counts were not handed to the worker"
    assert worker.store_pending() == 0
    with rt.sessions() as s:
        since = datetime.fromtimestamp(t0 - 60, UTC)
        points = service.traffic(s, camera_id=cam.id, since=since).points
    assert [p.counts for p in points] == [{"car": 1}]


def test_edited_rules_are_taken_up_without_restarting_the_other_cameras(
    demo_runtime: Runtime, detector: Detector
) -> None:
    """An operator adds a counting line to one camera: the running analysis takes it up
    (vehicles are counted on it), nobody's stream is reopened, and the worker does not
    restart, so objects already inside the other cameras' zones do not 'enter' again."""
    rt = demo_runtime
    url = f"file://{clip('o4n_traffic.mp4')}"
    edited, other = _camera(rt, "VIS-EDITED", url), _camera(rt, "VIS-UNTOUCHED", url)
    mid = LineIn(name="mid", a=(0.5, 0), b=(0.5, 1))
    for cam in (edited, other):
        with transaction(rt.sessions) as s:
            service.set_rules(
                s, camera_id=cam.id, now=rt.clock.now(), rules=CameraRulesIn(lines=[mid])
            )
    sub = rt.bus.subscribe("vision.events.line_cross")
    worker = VideoWorker(
        rt,
        WorkerOptions(camera_ids=frozenset({edited.id, other.id}), refresh_s=0.5),
        detector=detector,
    )
    worker.start()
    try:
        deadline = time.time() + 30
        while time.time() < deadline and worker.crossings < 2:
            time.sleep(0.2)
        runner = worker.runner
        assert runner is not None and worker.crossings >= 2
        connects = {k: c.source.connects for k, c in runner.cameras.items()}
        with transaction(rt.sessions) as s:
            service.set_rules(
                s,
                camera_id=edited.id,
                now=rt.clock.now(),
                rules=CameraRulesIn(lines=[mid, LineIn(name="added", a=(0.3, 0), b=(0.3, 1))]),
            )
        deadline = time.time() + 40
        added: list[Any] = []
        while time.time() < deadline and not added:
            msgs = sub.fetch(batch=1000, timeout=0.5)
            added += [m for m in msgs if m.data["rule"] == "added"]
        assert worker.runner is runner and worker.restarts == 0 and worker.rule_updates == 1
        assert {k: c.source.connects for k, c in runner.cameras.items()} == connects
    finally:
        worker.stop()
        sub.close()
    assert added and {m.data["camera_id"] for m in added} == {edited.id}
    assert worker.errors == 0
