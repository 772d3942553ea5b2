"""Soak run (not a test): 20 simulated cameras served as live HTTP MPEG-TS streams by a
local StreamServer (the shared clips, looped), analysed by one in-process VideoWorker
against the demo province's database, for `--minutes`. Prints one JSON line per sample
(memory, frames, events, restarts) and a summary at the end.

    .venv/bin/python tests/vision/soak_video.py --minutes 15 > soak.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import shared_dir  # noqa: E402
from safecity.core.clock import SystemClock  # noqa: E402
from safecity.core.config import load_settings  # noqa: E402
from safecity.core.db import transaction  # noqa: E402
from safecity.core.runtime import build_runtime  # noqa: E402
from safecity.registry import service as registry  # noqa: E402
from safecity.registry.schemas import CameraIn  # noqa: E402
from safecity.sim.democity import build_demo_city  # noqa: E402
from safecity.sim.loader import load_demo_city  # noqa: E402
from safecity.video import service as video  # noqa: E402
from safecity.video.schemas import CameraRulesIn, LineIn, ZoneIn  # noqa: E402
from safecity.video.worker import VideoWorker, WorkerOptions  # noqa: E402
from safecity.vision.streamserver import StreamServer  # noqa: E402

CLIPS = [
    "o4n_traffic.mp4",
    "bgs_highway_cctv_320x240.avi",
    "o4n_people.mp4",
    "intel_one-by-one-person-detection.mp4",
]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--cameras", type=int, default=20)
    ap.add_argument("--sample-s", type=float, default=30.0)
    ap.add_argument(
        "--sub-streams",
        type=int,
        default=10,
        help="cameras analysed on a sub-stream, their clips kept from a main stream",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("safecity.vision.runner").setLevel(logging.INFO)  # reconnect reasons
    media = shared_dir() / "media" / "video"
    tmp = Path(tempfile.mkdtemp(prefix="safecity-soak-"))
    settings = load_settings(mode="demo", data_dir=tmp, database_url=None)
    rt = build_runtime(settings, clock=SystemClock())
    t0 = time.time()
    load_demo_city(rt, build_demo_city(), password="soak-password-1")
    print(json.dumps({"demo_loaded_s": round(time.time() - t0, 1)}), flush=True)

    files = {f"cam{i}.ts": media / CLIPS[i % len(CLIPS)] for i in range(args.cameras)}
    # A camera with a sub-stream: the worker decodes cam{i}.ts and demuxes cam{i}-main.ts.
    files.update(
        {f"cam{i}-main.ts": media / CLIPS[i % len(CLIPS)] for i in range(args.sub_streams)}
    )
    server = StreamServer(files).start()
    ids = []
    with transaction(rt.sessions) as s:
        site = registry.list_sites(s)[0]
        for i in range(args.cameras):
            cam = registry.create_camera(
                s,
                now=rt.clock.now(),
                camera_in=CameraIn(
                    code=f"SOAK-{i:02d}",
                    name=f"soak camera {i}",
                    site_code=site.code,
                    stream_url=server.url(
                        f"cam{i}-main.ts" if i < args.sub_streams else f"cam{i}.ts"
                    ),
                    detect_url=server.url(f"cam{i}.ts") if i < args.sub_streams else None,
                ),
            )
            ids.append(cam.id)
            kind = CLIPS[i % len(CLIPS)]
            rules = CameraRulesIn(
                lines=[LineIn(name="mid", a=(0.5, 0.0), b=(0.5, 1.0))]
                if "traffic" in kind or "highway" in kind
                else [],
                zones=[
                    ZoneIn(
                        name="area",
                        polygon=[(0.2, 0.4), (0.8, 0.4), (0.8, 1.0), (0.2, 1.0)],
                        loiter_s=10,
                    )
                ]
                if "people" in kind or "intel" in kind
                else [],
            )
            video.set_rules(s, camera_id=cam.id, rules=rules, now=rt.clock.now())
    worker = VideoWorker(
        rt,
        WorkerOptions(camera_ids=frozenset(ids), refresh_s=30, model_dir=shared_dir() / "models"),
    )
    worker.start()
    start = time.time()
    samples = []
    stop = threading.Event()
    try:
        while time.time() - start < args.minutes * 60:
            stop.wait(args.sample_s)
            runner = worker.runner
            cams = runner.cameras.values() if runner else []
            sample = {
                "t_s": round(time.time() - start),
                "rss_mb": round(rss_mb(), 1),
                "threads": threading.active_count(),
                "clip_threads": sum(t.name.startswith("clips-") for t in threading.enumerate()),
                "main_packets_held": sum(
                    c.source.clips.buffered for c in cams if c.source.clips is not None
                ),
                "frames": runner.frames if runner else 0,
                "events": worker.events,
                "line_crossings": worker.crossings,
                "incidents": worker.incidents,
                "worker_restarts": worker.restarts,
                "reconnects": sum(c.source.connects - 1 for c in cams),
                "errors": worker.errors + (runner.errors if runner else 0),
                "online": sum(c.health.status == "online" for c in cams),
                "fps_mean": round(sum(c.health.fps for c in cams) / max(len(cams), 1), 2),
                "cpu_s": round(sum(os.times()[:2]), 1),
            }
            samples.append(sample)
            print(json.dumps(sample), flush=True)
    finally:
        worker.stop()
        server.stop()
    with rt.sessions() as s:
        counts = video.counts(s)
    first = next((x for x in samples if x["t_s"] >= 120), samples[0])
    last = samples[-1]
    elapsed = last["t_s"] - first["t_s"]
    summary = {
        "summary": True,
        "cameras": args.cameras,
        "sub_streams": args.sub_streams,
        "minutes": args.minutes,
        "rss_mb_at_2min": first["rss_mb"],
        "rss_mb_end": last["rss_mb"],
        "rss_mb_max": max(x["rss_mb"] for x in samples),
        "rss_growth_mb_per_10min_after_2min": round(
            (last["rss_mb"] - first["rss_mb"]) / max(elapsed, 1) * 600, 2
        ),
        "frames": last["frames"],
        "analysed_fps_total": round(last["frames"] / last["t_s"], 1),
        "cpu_cores_used": round(last["cpu_s"] / last["t_s"], 2),
        "worker_restarts": last["worker_restarts"],
        "reconnects": last["reconnects"],
        "errors": last["errors"],
        **counts,
        "data_dir": str(tmp),
    }
    print(json.dumps(summary), flush=True)
    rt.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
