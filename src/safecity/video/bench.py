"""`safecity bench video`: where the clips and the model come from; the measuring itself is
`safecity.vision.bench`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2

from safecity.core.config import Settings
from safecity.core.errors import SafeCityError
from safecity.vision import bench, modelstore
from safecity.vision.detector import load_detector
from safecity.vision.errors import VisionError


def shared_dir(settings: Settings) -> Path:
    env = os.environ.get("SAFECITY_SHARED")
    return Path(env) if env else settings.shared_dir


def find_model(settings: Settings, model_dir: Path | None) -> Path:
    """The verified detector: the given folder, else SAFECITY_MODEL_DIR / data_dir/models,
    else the shared models folder."""
    candidates = (
        [model_dir]
        if model_dir
        else [modelstore.default_model_dir(settings.data_dir), shared_dir(settings) / "models"]
    )
    problems = []
    for d in candidates:
        assert d is not None
        try:
            return modelstore.resolve(d)
        except VisionError as exc:
            problems.append(exc.message)
    raise SafeCityError("no detector model: " + "; ".join(problems))


def run_video_bench_cli(
    settings: Settings,
    *,
    videos: list[str],
    seconds: float | None = None,
    fps: float = 5.0,
    model_dir: Path | None = None,
) -> dict[str, Any]:
    cv2.setNumThreads(1)
    if videos:
        clips = [Path(v) for v in videos]
    else:
        root = shared_dir(settings) / "media" / "video"
        clips = [root / c for c in bench.DEFAULT_CLIPS]
    missing = [str(c) for c in clips if not c.is_file()]
    if missing:
        raise SafeCityError(
            f"video not found: {', '.join(missing)}; give clips with --video PATH or set "
            "SAFECITY_SHARED to the shared data folder"
        )
    model = find_model(settings, model_dir)
    try:
        result = bench.run_video_bench(
            clips, lambda: load_detector(model), fps=fps, max_seconds=seconds
        )
    except VisionError as exc:
        raise SafeCityError(exc.message) from None
    result["model"] = model.name
    return result


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"pipeline {result['pipeline_fps_per_core']} fps/core, naive "
        f"{result['naive_fps_per_core']} fps/core: {result['speedup']}x cheaper, "
        f"recall vs naive {result['recall_vs_naive']:.1%}, "
        f"{result['cameras_per_core']} cameras/core at {result['detect_fps']} detection fps",
    ]
    for c in result["clips"]:
        lines.append(
            f"  {c['clip']} ({c['width']}x{c['height']}): {c['pipeline_fps_per_core']} vs "
            f"{c['naive_fps_per_core']} fps/core ({c['speedup']}x), recall "
            f"{c['recall_vs_naive']:.1%}"
        )
    return "\n".join(lines)
