"""The video domain on the demo province's database: a worker analysing a registry camera
(a real clip served as a simulated camera) stores events with snapshots, publishes them on
the bus, keeps the camera's live status in the registry, writes live pictures, and turns a
perimeter alert into an incident routed to the camera's station; rules, traffic counts and
media retention through the service and the API."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from vision_helpers import clip

from conftest import login
from safecity.core.auth import Principal, Role
from safecity.core.db import transaction
from safecity.core.runtime import Runtime
from safecity.incidents import service as incidents
from safecity.registry import service as registry
from safecity.registry.schemas import CameraIn, CameraOut
from safecity.video import service
from safecity.video.schemas import CameraRulesIn, LineIn, ZoneIn
from safecity.video.worker import VideoWorker, WorkerOptions
from safecity.vision.detector import Detector

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
