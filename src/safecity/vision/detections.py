"""Detections as numpy arrays (one row per object), in the spirit of `supervision`.

Boxes are `xyxy` pixels of the frame they were found in, float32. `tracker_id` is -1 until a
tracker assigns one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]

#: The 80 COCO class names in the order of COCO-trained detectors (YOLOX, YOLOv8...).
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
#: What a Safe City camera watches for: people and road users.
WATCHED_CLASSES: tuple[str, ...] = ("person", "bicycle", "car", "motorcycle", "bus", "truck")


def _f32(rows: int = 0, cols: int = 4) -> FloatArray:
    return np.zeros((rows, cols), dtype=np.float32)


@dataclass
class Detections:
    """N objects: boxes, confidences, class ids and (after tracking) track ids."""

    xyxy: FloatArray = field(default_factory=_f32)
    confidence: FloatArray = field(default_factory=lambda: np.zeros(0, np.float32))
    class_id: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    tracker_id: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(n, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(n)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(n)
        if len(self.tracker_id) != n:
            self.tracker_id = np.full(n, -1, dtype=np.int64)
        self.tracker_id = np.asarray(self.tracker_id, dtype=np.int64).reshape(n)

    @classmethod
    def empty(cls) -> Detections:
        return cls()

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        idx = np.asarray(index)
        if idx.ndim == 0:
            idx = idx.reshape(1)
        return Detections(
            self.xyxy[idx], self.confidence[idx], self.class_id[idx], self.tracker_id[idx]
        )

    @classmethod
    def merge(cls, parts: Iterable[Detections]) -> Detections:
        items = [p for p in parts if len(p)]
        if not items:
            return cls()
        return cls(
            np.concatenate([p.xyxy for p in items]),
            np.concatenate([p.confidence for p in items]),
            np.concatenate([p.class_id for p in items]),
            np.concatenate([p.tracker_id for p in items]),
        )

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> Detections:
        """Boxes moved by (dx, dy) after multiplying by `scale` (crop -> frame coordinates)."""
        xyxy = self.xyxy * np.float32(scale) + np.array([dx, dy, dx, dy], np.float32)
        return Detections(xyxy, self.confidence, self.class_id, self.tracker_id)

    def class_names(self, names: Sequence[str] = COCO_CLASSES) -> list[str]:
        return [names[int(c)] if 0 <= c < len(names) else str(int(c)) for c in self.class_id]

    @property
    def anchors(self) -> FloatArray:
        """Bottom-centre points (where a person or a vehicle touches the ground)."""
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) / 2
        out: FloatArray = np.stack([x, self.xyxy[:, 3]], axis=1).astype(np.float32)
        return out

    @property
    def area(self) -> FloatArray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        out: FloatArray = (wh[:, 0] * wh[:, 1]).astype(np.float32)
        return out


def box_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of every box in `a` (N,4) against every box in `b` (M,4): an (N, M) matrix."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    out: FloatArray = (inter / np.maximum(union, 1e-6)).astype(np.float32)
    return out


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> IntArray:
    """Indices kept by greedy non-maximum suppression, best score first (OpenCV's, which
    keeps the same boxes as `nms_reference` at a few percent of its cost)."""
    if len(boxes) <= 1:
        return np.arange(len(boxes), dtype=np.int64)
    if not (scores > 0).all():
        return nms_reference(boxes, scores, iou_threshold)  # OpenCV drops scores <= 0
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxes(
        xywh.astype(np.float64).tolist(),
        scores.astype(np.float64).tolist(),
        0.0,
        float(iou_threshold),
    )
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def nms_reference(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> IntArray:
    """Greedy non-maximum suppression in numpy (the definition `nms` follows)."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        if len(order) == 1:
            break
        ious = box_iou(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def match_recall(
    reference: Detections, found: Detections, *, iou: float = 0.5, same_class: bool = True
) -> tuple[int, int]:
    """(matched, total): how many `reference` boxes have a one-to-one partner in `found`
    with IoU >= `iou` (and the same class when `same_class`), matched greedily by IoU."""
    total = len(reference)
    if total == 0 or len(found) == 0:
        return 0, total
    m = box_iou(reference.xyxy, found.xyxy)
    if same_class:
        m = np.where(reference.class_id[:, None] == found.class_id[None, :], m, 0.0)
    matched = 0
    pairs = np.argwhere(m >= iou)
    if len(pairs) == 0:
        return 0, total
    order = np.argsort(-m[pairs[:, 0], pairs[:, 1]])
    used_r: set[int] = set()
    used_f: set[int] = set()
    for r, f in pairs[order]:
        if r in used_r or f in used_f:
            continue
        used_r.add(int(r))
        used_f.add(int(f))
        matched += 1
    return matched, total
