"""Video in the demo: a few demo cameras play the shared clips as live streams (a local
StreamServer), with a counting line or a perimeter zone each, analysed by a worker thread
inside the demo server (its events reach the console over the in-process bus).

The demo province's other cameras keep their placeholder addresses and are never
connected."""

from __future__ import annotations

import logging
from pathlib import Path

from safecity.core.db import transaction
from safecity.core.runtime import Runtime
from safecity.registry import service as registry
from safecity.registry.schemas import CameraUpdate
from safecity.video import service
from safecity.video.schemas import CameraRulesIn, LineIn, ZoneIn
from safecity.video.worker import VideoWorker, WorkerOptions
from safecity.vision import modelstore
from safecity.vision.errors import VisionError
from safecity.vision.streamserver import StreamServer

log = logging.getLogger("safecity.video.demo")

CLIPS = (
    "o4n_traffic.mp4",
    "bgs_highway_cctv_320x240.avi",
    "o4n_people.mp4",
    "intel_one-by-one-person-detection.mp4",
)


def start_demo_video(
    runtime: Runtime, *, shared: Path, cameras: int = 4
) -> tuple[StreamServer, VideoWorker] | None:
    """Serve the shared clips, point the first `cameras` demo cameras at them, start a
    worker for those cameras. None (and a log line) when the clips or the model are absent."""
    media = shared / "media" / "video"
    clips = [media / c for c in CLIPS if (media / c).is_file()]
    model_dir = modelstore.default_model_dir(runtime.settings.data_dir)
    try:
        modelstore.resolve(model_dir)
    except VisionError:
        model_dir = shared / "models"
    try:
        modelstore.resolve(model_dir)
    except VisionError as exc:
        log.warning("demo video off: %s", exc.message)
        return None
    if not clips:
        log.warning("demo video off: no clips in %s", media)
        return None
    server = StreamServer({f"cam{i}.ts": clips[i % len(clips)] for i in range(cameras)}).start()
    ids = []
    with transaction(runtime.sessions) as s:
        for i, cam in enumerate(registry.list_cameras(s)[:cameras]):
            name = clips[i % len(clips)].name
            registry.update_camera(
                s,
                camera_id=cam.id,
                now=runtime.clock.now(),
                update=CameraUpdate(stream_url=server.url(f"cam{i}.ts")),
            )
            road = "traffic" in name or "highway" in name
            service.set_rules(
                s,
                camera_id=cam.id,
                now=runtime.clock.now(),
                rules=CameraRulesIn(
                    lines=[LineIn(name="count", a=(0.5, 0.0), b=(0.5, 1.0))] if road else [],
                    zones=[]
                    if road
                    else [
                        ZoneIn(
                            name="perimeter",
                            alert=True,
                            loiter_s=20,
                            polygon=[(0.3, 0.5), (0.7, 0.5), (0.7, 1.0), (0.3, 1.0)],
                        )
                    ],
                    incident_kinds=["loitering"],
                ),
            )
            ids.append(cam.id)
    worker = VideoWorker(runtime, WorkerOptions(camera_ids=frozenset(ids), model_dir=model_dir))
    worker.start()
    log.info("demo video: %d cameras play %s", len(ids), ", ".join(c.name for c in clips))
    return server, worker
