"""`safecity bench video`: the motion-gated pipeline against the naive one, on real clips.

For each clip both pipelines read the same frames (the same decoder settings, sampled at
the same detection rate) and are timed in CPU seconds of this process (every thread,
decoding included), so `fps_per_core` is analysed frames per second of one CPU core.

- naive: the detector on every sampled full frame (letterboxed to its square input), then
  the tracker;
- pipeline: decode, motion, detection only of regions with motion or due tracks, tracking.

`recall_vs_naive` is the share of the naive pipeline's detections (confidence >= 0.3, per
sampled frame) that the pipeline's tracks in the same frame overlap with IoU >= 0.5
(one-to-one; `recall_same_class` also asks for the same class). `cameras_per_core` is how
many such streams one core keeps up with at the detection rate: pipeline frames per
core-second divided by the detection rate.

The two pipelines run `repeats` times in turns and each one's fastest run counts (other
work on a shared machine only ever adds time). Each clip also says where the time goes:
`pipeline_ms_per_frame` and `naive_ms_per_frame` split a frame's CPU time into decoding,
motion and planning (with the detector's picture), the detector runtime itself, the
detector's pre- and post-processing (padding, box decoding, NMS) and tracking."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from safecity.vision.decode import VideoReader
from safecity.vision.detections import Detections, match_recall
from safecity.vision.detector import Detector
from safecity.vision.errors import VisionError
from safecity.vision.pipeline import AnalyzerConfig, CameraAnalyzer

DEFAULT_CLIPS = ("o4n_traffic.mp4", "bgs_highway_cctv_320x240.avi")
REPORT_CONFIDENCE = 0.3


def _run(
    path: Path, detector: Detector, *, gated: bool, fps: float, max_seconds: float | None
) -> tuple[float, int, int, dict[int, Detections], dict[str, Any]]:
    reader = VideoReader(f"file://{path}", fps=fps)
    analyzer = CameraAnalyzer(detector, AnalyzerConfig(gated=gated))
    out: dict[int, Detections] = {}
    # CPU seconds per stage (what `CameraAnalyzer.process` does, one step at a time).
    stages = dict.fromkeys(("decode", "plan", "detect", "track"), 0.0)
    runtime0 = float(getattr(detector, "runtime_cpu_s", 0.0))
    clock = time.process_time
    looked = 0  # frames the detector ran on
    gc.collect()
    t0 = clock()
    frames = iter(reader)
    while True:
        a = clock()
        frame = next(frames, None)
        b = clock()
        stages["decode"] += b - a
        if frame is None or (max_seconds is not None and frame.time > max_seconds):
            break
        plan = analyzer.plan(frame)
        looked += bool(plan.crops)
        c = clock()
        found = detector.detect(plan.crops, square=plan.square) if plan.crops else []
        d = clock()
        res = analyzer.finish(plan, found)
        e = clock()
        stages["plan"] += c - b
        stages["detect"] += d - c
        stages["track"] += e - d
        if gated:
            out[frame.index] = res.tracks
        else:
            dets = res.detections
            out[frame.index] = dets[dets.confidence >= REPORT_CONFIDENCE]
        frame.release()
    cpu = clock() - t0
    stop = getattr(frames, "close", None)
    if stop is not None:
        stop()  # closes the file now, not when the generator is collected
    runtime = float(getattr(detector, "runtime_cpu_s", 0.0)) - runtime0
    n = max(len(out), 1)
    ms = {
        "decode": stages["decode"],
        "motion_and_planning": stages["plan"],
        "detector_runtime": runtime,
        "detector_pre_post": stages["detect"] - runtime,
        "tracking": stages["track"],
    }
    info = {
        "width": reader.size[0] if reader.size else 0,
        "height": reader.size[1] if reader.size else 0,
        "source_fps": round(reader.source_fps or 0.0, 2),
        "full_frame_detections": analyzer.full_frames,
        # What the detector really ran (padded inputs), and how many calls.
        "detector_pixels": int(getattr(detector, "pixels", 0)),
        "detector_calls": int(getattr(detector, "inferences", 0)),
        "frames_with_detection": looked,
        "ms_per_frame": {k: round(v / n * 1000, 2) for k, v in ms.items()},
    }
    return cpu, len(out), reader.decoded, out, info


def bench_clip(
    path: Path,
    make_detector: Callable[[], Detector],
    *,
    fps: float = 5.0,
    max_seconds: float | None = None,
    repeats: int = 2,
) -> dict[str, Any]:
    """Both pipelines on one clip, `repeats` times in turns; each pipeline's fastest run
    counts (other work on the machine only ever adds time)."""
    if not path.is_file():
        raise VisionError(f"video not found: {path}")
    best: dict[bool, tuple[float, int, int, dict[int, Detections], dict[str, Any]]] = {}
    for _ in range(max(repeats, 1)):
        for gated_run in (False, True):
            r = _run(path, make_detector(), gated=gated_run, fps=fps, max_seconds=max_seconds)
            if gated_run not in best or r[0] < best[gated_run][0]:
                best[gated_run] = r
    n_cpu, n_frames, _, naive, info = best[False]
    p_cpu, p_frames, p_decoded, gated, ginfo = best[True]
    matched = total = matched_cls = 0
    for idx, ref in naive.items():
        found = gated.get(idx, Detections.empty())
        m, t = match_recall(ref, found, same_class=False)
        mc, _ = match_recall(ref, found, same_class=True)
        matched += m
        matched_cls += mc
        total += t
    naive_fps = n_frames / max(n_cpu, 1e-9)
    pipe_fps = p_frames / max(p_cpu, 1e-9)
    return {
        "clip": path.name,
        "width": info["width"],
        "height": info["height"],
        "source_fps": info["source_fps"],
        "detect_fps": fps,
        "frames_decoded": p_decoded,
        "frames_analysed": p_frames,
        "pipeline_cpu_s": round(p_cpu, 3),
        "naive_cpu_s": round(n_cpu, 3),
        "pipeline_fps_per_core": round(pipe_fps, 1),
        "naive_fps_per_core": round(naive_fps, 1),
        "speedup": round(pipe_fps / naive_fps, 2),
        "recall_vs_naive": round(matched / total, 4) if total else 1.0,
        "recall_same_class": round(matched_cls / total, 4) if total else 1.0,
        "naive_detections": total,
        "cameras_per_core": round(pipe_fps / fps, 1),
        "full_frame_detections": ginfo["full_frame_detections"],
        "frames_with_detection": ginfo["frames_with_detection"],
        "detector_calls": ginfo["detector_calls"],
        "detector_pixels_vs_naive": round(
            ginfo["detector_pixels"] / max(info["detector_pixels"], 1), 3
        ),
        # Where each pipeline's CPU time goes, in milliseconds per analysed frame.
        "pipeline_ms_per_frame": ginfo["ms_per_frame"],
        "naive_ms_per_frame": info["ms_per_frame"],
    }


def run_video_bench(
    clips: Sequence[Path],
    make_detector: Callable[[], Detector],
    *,
    fps: float = 5.0,
    max_seconds: float | None = None,
    repeats: int = 2,
) -> dict[str, Any]:
    """Per-clip figures and their aggregate (frames and CPU seconds summed over clips)."""
    per = [
        bench_clip(p, make_detector, fps=fps, max_seconds=max_seconds, repeats=repeats)
        for p in clips
    ]
    p_frames = sum(c["frames_analysed"] for c in per)
    p_cpu = sum(c["pipeline_cpu_s"] for c in per)
    n_cpu = sum(c["naive_cpu_s"] for c in per)
    total = sum(c["naive_detections"] for c in per)
    matched = sum(c["recall_vs_naive"] * c["naive_detections"] for c in per)
    matched_cls = sum(c["recall_same_class"] * c["naive_detections"] for c in per)
    pipe_fps = p_frames / max(p_cpu, 1e-9)
    naive_fps = p_frames / max(n_cpu, 1e-9)
    return {
        "pipeline_fps_per_core": round(pipe_fps, 1),
        "naive_fps_per_core": round(naive_fps, 1),
        "speedup": round(pipe_fps / naive_fps, 2),
        "recall_vs_naive": round(matched / total, 4) if total else 1.0,
        "recall_same_class": round(matched_cls / total, 4) if total else 1.0,
        "cameras_per_core": round(pipe_fps / fps, 1),
        "detect_fps": fps,
        "repeats": repeats,
        "clips": per,
    }
