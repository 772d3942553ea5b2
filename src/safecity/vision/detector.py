"""Object detectors behind one small interface.

A detector takes BGR images already at *model scale* (the caller decides the scale, so
crops of one frame and the full frame give comparable boxes) and returns one `Detections`
per image in that image's pixels. With a free-size model (see `onnx_shapes`) an image is
only padded up to a multiple of the stride, so a 160x96 crop costs about its area; a
fixed-size model gets the usual top-left letterbox. Images of the same padded size may run
as one batch, up to the backend's `max_batch` (1 for ONNX Runtime on the CPU, where
batches cost more per picture).

Backends: ONNX Runtime (default, CPU) and OpenVINO (used when `openvino` is installed and
asked for). Both decode YOLOX's raw head the same way."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from safecity.vision.detections import COCO_CLASSES, WATCHED_CLASSES, Detections, nms
from safecity.vision.errors import VisionError
from safecity.vision.onnx_shapes import make_dynamic

log = logging.getLogger("safecity.vision.detector")

Image = NDArray[np.uint8]
PAD_VALUE = 114


class Detector(Protocol):
    """What the pipeline needs from a detector."""

    name: str
    #: The nominal square input side (416 for YOLOX-Nano): full frames are fitted into it.
    input_size: int
    #: Padded sizes are multiples of this.
    stride: int
    #: True when any multiple of `stride` is accepted (crops cost their area).
    dynamic: bool

    def detect(self, images: Sequence[Image], *, square: bool = False) -> list[Detections]:
        """Detections per image; `square` pads to input_size x input_size (the classic
        letterbox) even on a free-size model."""
        ...


def _round_up(v: int, m: int) -> int:
    return max(m, -(-v // m) * m)


class YoloxDecoder:
    """YOLOX's raw head (cx, cy, w, h, obj, 80 class scores per anchor) to boxes."""

    def __init__(
        self,
        *,
        strides: tuple[int, ...] = (8, 16, 32),
        min_confidence: float = 0.1,
        nms_iou: float = 0.45,
        classes: Sequence[str] = WATCHED_CLASSES,
    ) -> None:
        self.strides = strides
        self.min_confidence = min_confidence
        self.nms_iou = nms_iou
        self.class_ids = np.array([COCO_CLASSES.index(c) for c in classes], dtype=np.int64)
        self._grids: dict[tuple[int, int], tuple[NDArray[np.float32], NDArray[np.float32]]] = {}

    def _grid(self, h: int, w: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        key = (h, w)
        if key not in self._grids:
            grids, strides = [], []
            for s in self.strides:
                gh, gw = h // s, w // s
                yv, xv = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
                grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
                strides.append(np.full((gh * gw, 1), s))
            self._grids[key] = (
                np.concatenate(grids).astype(np.float32),
                np.concatenate(strides).astype(np.float32),
            )
        return self._grids[key]

    def __call__(self, raw: NDArray[np.float32], h: int, w: int) -> Detections:
        """`raw` (N, 85) for one image of padded size h x w."""
        obj = raw[:, 4]
        cand = np.nonzero(obj >= self.min_confidence)[0]
        if len(cand) == 0:
            return Detections.empty()
        rows = raw[cand]
        cls_scores = rows[:, 5 + self.class_ids] * rows[:, 4:5]
        best = np.argmax(cls_scores, axis=1)
        score = cls_scores[np.arange(len(rows)), best]
        ok = score >= self.min_confidence
        if not ok.any():
            return Detections.empty()
        rows, best, score, cand = rows[ok], best[ok], score[ok], cand[ok]
        grid, stride = self._grid(h, w)
        xy = (rows[:, :2] + grid[cand]) * stride[cand]
        wh = np.exp(np.minimum(rows[:, 2:4], 10.0)) * stride[cand]
        xyxy = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).astype(np.float32)
        keep = nms(xyxy, score.astype(np.float32), self.nms_iou)
        return Detections(xyxy[keep], score[keep], self.class_ids[best[keep]])


class _BatchedDetector:
    """Shared pre-processing: pad/letterbox, group same-size images, run, decode."""

    name = "detector"
    input_size = 416
    stride = 32
    dynamic = True
    max_batch = 8

    def __init__(self, decoder: YoloxDecoder) -> None:
        self.decoder = decoder
        self.inferences = 0  # calls into the runtime (for benchmarks)
        self.pixels = 0  # padded input pixels run (for benchmarks)
        self.runtime_cpu_s = 0.0  # CPU seconds inside the runtime (for benchmarks)

    def _run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        raise NotImplementedError

    def _prepare(self, img: Image, square: bool) -> tuple[Image, float]:
        h, w = img.shape[:2]
        scale = 1.0
        if square or not self.dynamic:
            side = self.input_size
            if h > side or w > side:
                scale = min(side / h, side / w)
                img = np.asarray(
                    cv2.resize(
                        img,
                        (max(1, round(w * scale)), max(1, round(h * scale))),
                        interpolation=cv2.INTER_LINEAR,
                    ),
                    dtype=np.uint8,
                )
                h, w = img.shape[:2]
            ph, pw = side, side
        else:
            ph, pw = _round_up(h, self.stride), _round_up(w, self.stride)
        if (ph, pw) != (h, w):
            padded = np.full((ph, pw, 3), PAD_VALUE, dtype=np.uint8)
            padded[:h, :w] = img
            img = padded
        return img, scale

    def detect(self, images: Sequence[Image], *, square: bool = False) -> list[Detections]:
        prepared = [self._prepare(img, square) for img in images]
        out: list[Detections] = [Detections.empty()] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (img, _) in enumerate(prepared):
            groups.setdefault(img.shape[:2], []).append(i)
        for (ph, pw), idx in groups.items():
            for start in range(0, len(idx), self.max_batch):
                part = idx[start : start + self.max_batch]
                batch = np.stack([prepared[i][0] for i in part]).transpose(0, 3, 1, 2)
                t0 = time.process_time()
                raw = self._run(np.ascontiguousarray(batch, dtype=np.float32))
                self.runtime_cpu_s += time.process_time() - t0
                self.inferences += 1
                self.pixels += ph * pw * len(part)
                for j, i in enumerate(part):
                    dets = self.decoder(raw[j], ph, pw)
                    scale = prepared[i][1]
                    out[i] = dets if scale == 1.0 else dets.shifted(0, 0, 1 / scale)
        return out


class OnnxDetector(_BatchedDetector):
    """YOLOX through ONNX Runtime on the CPU, one thread by default (one worker per core
    scales better than threads inside one inference)."""

    #: One picture per run: on one CPU thread a batch costs more per picture than single
    #: runs (416x256: 6.9 ms alone, 7.5 ms each in fours; 416x320: 8.8 vs 9.7; 224x224
    #: the same), the cache holding less of each picture's layers. Six cameras through
    #: `analyze_batch`: 3.66 CPU s instead of 3.78.
    max_batch = 1

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int = 1,
        decoder: YoloxDecoder | None = None,
        free_size: bool = True,
    ) -> None:
        super().__init__(decoder or YoloxDecoder())
        import onnxruntime as ort

        data = model_path.read_bytes()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Crops come in many sizes: memory patterns (one per input shape) would only grow.
        # The arena is kept: it reuses its blocks for any shape (600 random crop sizes leave
        # it where the largest inputs took it) and saves 3-10% of an inference's time.
        opts.enable_cpu_mem_arena = True
        opts.enable_mem_pattern = False
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.name = f"onnxruntime:{model_path.name}"
        session = None
        if free_size:
            try:
                session = ort.InferenceSession(
                    make_dynamic(data), opts, providers=["CPUExecutionProvider"]
                )
                self._check(session)
            except Exception as exc:  # a graph that is not fully convolutional
                log.warning(
                    "%s: cannot run at free sizes (%s); using its fixed size", model_path.name, exc
                )
                session = None
        if session is None:
            self.dynamic = False
            self.max_batch = 1
            try:
                session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise VisionError(f"{model_path}: not a loadable ONNX model ({exc})") from None
        self.session: Any = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        if not self.dynamic and isinstance(shape[2], int):
            self.input_size = int(shape[2])

    def _check(self, session: Any) -> None:
        name = session.get_inputs()[0].name
        probe = np.full((2, 3, 64, 96), PAD_VALUE, dtype=np.float32)
        out = session.run(None, {name: probe})[0]
        if out.shape[0] != 2:
            raise VisionError("batch dimension not preserved")

    def _run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        out: NDArray[np.float32] = self.session.run(None, {self.input_name: batch})[0]
        return out


class OpenVinoDetector(_BatchedDetector):
    """YOLOX through OpenVINO on the CPU (install `openvino` to use it)."""

    def __init__(
        self, model_path: Path, *, threads: int = 1, decoder: YoloxDecoder | None = None
    ) -> None:
        super().__init__(decoder or YoloxDecoder())
        try:
            import openvino as ov  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise VisionError(
                "the OpenVINO backend needs the `openvino` package: pip install openvino"
            ) from None
        core = ov.Core()
        model = core.read_model(model=make_dynamic(model_path.read_bytes()), weights=b"")
        self.compiled: Any = core.compile_model(
            model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        )
        self.name = f"openvino:{model_path.name}"

    def _run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        out: NDArray[np.float32] = self.compiled(batch)[0]
        return out


def openvino_available() -> bool:
    try:
        import openvino  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def load_detector(
    model_path: Path,
    *,
    backend: str = "onnxruntime",
    threads: int = 1,
    min_confidence: float = 0.1,
) -> Detector:
    """A detector for the model file; `backend` is onnxruntime, openvino or auto (OpenVINO
    when installed, else ONNX Runtime)."""
    decoder = YoloxDecoder(min_confidence=min_confidence)
    if backend == "auto":
        backend = "openvino" if openvino_available() else "onnxruntime"
    if backend == "onnxruntime":
        return OnnxDetector(model_path, threads=threads, decoder=decoder)
    if backend == "openvino":
        return OpenVinoDetector(model_path, threads=threads, decoder=decoder)
    raise VisionError(f"unknown detector backend {backend!r}: onnxruntime, openvino or auto")
