"""Helpers of the video analytics tests: the shared real clips and model (skipping with the
reason when ../shared is absent), a stub detector for tests about streams and health, and
small clips made on the fly with PyAV. Fixtures are in this folder's conftest.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from conftest import shared_dir
from safecity.vision import modelstore
from safecity.vision.decode import VideoReader
from safecity.vision.detections import Detections
from safecity.vision.detector import Detector, load_detector

SKIP_SHARED = (
    "needs the shared data folder ../shared (or SAFECITY_SHARED): real clips and the "
    "YOLOX-Nano model"
)


def shared_file(*parts: str) -> Path:
    p = shared_dir().joinpath(*parts)
    if not p.is_file():
        pytest.skip(f"{SKIP_SHARED}; missing {p}")
    return p


def real_detector() -> Detector:
    path = shared_file("models", "yolox_nano.onnx")
    return load_detector(modelstore.resolve(path.parent))


def clip(name: str) -> Path:
    return shared_file("media", "video", name)


class StubDetector:
    """Finds nothing (stream, health and worker tests need no real detections)."""

    name = "stub"
    input_size = 416
    stride = 32
    dynamic = True

    def detect(
        self, images: Sequence[NDArray[np.uint8]], *, square: bool = False
    ) -> list[Detections]:
        return [Detections.empty() for _ in images]


def encode_clip(
    path: Path, frames: Sequence[NDArray[np.uint8]], fps: int = 10, *, bframes: int = 0
) -> Path:
    """Write BGR frames as an H.264 MP4 (libx264, keyframe every second; `bframes`
    B-frames, none of them referred to, between reference frames)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"preset": "ultrafast", "g": str(fps)}
        if bframes:
            st.options = {
                "preset": "veryfast",
                "g": str(fps),
                "x264-params": f"bframes={bframes}:b-pyramid=none:b-adapt=0:scenecut=0",
            }
        for img in frames:
            vf = av.VideoFrame.from_ndarray(img, format="bgr24")
            for pkt in st.encode(vf):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return path


def first_frame(path: Path) -> NDArray[np.uint8]:
    for f in VideoReader(f"file://{path}", fps=None):
        return f.bgr().copy()
    raise AssertionError(f"no frame in {path}")


def moving_square_frames(n: int, w: int = 320, h: int = 240) -> list[NDArray[np.uint8]]:
    rng = np.random.default_rng(1)
    base = rng.integers(60, 200, (h, w, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        img = base.copy()
        x = (i * 7) % (w - 40)
        img[100:140, x : x + 40] = (20, 20, 230)
        out.append(img)
    return out
