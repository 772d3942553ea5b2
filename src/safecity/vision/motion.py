"""Cheap motion detection on a small grey frame (a few hundred microseconds per frame).

Like Frigate's detector: the frame's luma is shrunk to `width` pixels, blurred, compared
with a running-average background, thresholded and dilated; connected blobs larger than
`min_area` become motion boxes. A change over most of the frame at once (lights switched,
camera moved or covered) is reported as `global_change` and re-seeds the background
instead of producing one huge blob frame after frame."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

Gray = NDArray[np.uint8]


@dataclass
class MotionResult:
    #: Changed pixels (255) of the small frame.
    mask: Gray
    #: Blobs as xyxy boxes in *small-frame* pixels.
    boxes: NDArray[np.float32]
    #: Share of the small frame that changed.
    fraction: float
    #: Most of the frame changed at once (lighting, tampering, camera moved).
    global_change: bool


def shrink(gray: Gray, width: int) -> Gray:
    """`gray` shrunk by the whole factor that brings it closest to `width` pixels wide
    (area averaging by a whole factor is several times faster than by a fraction). The
    last rows and columns that do not fill a whole block are left out: OpenCV takes its
    fast path only when the factor divides both sides (768x432 by 5: 0.1 ms instead of
    0.6 ms), so a small pixel is always exactly `shrink_factor` frame pixels."""
    h, w = gray.shape[:2]
    f = max(1, round(w / width))
    if f == 1:
        return np.ascontiguousarray(gray)
    sw, sh = w // f, h // f
    out: Gray = np.asarray(
        cv2.resize(gray[: sh * f, : sw * f], (sw, sh), interpolation=cv2.INTER_AREA),
        dtype=np.uint8,
    )
    return out


def shrink_factor(width: int, small_width: int) -> float:
    """Frame pixels per pixel of a picture `shrink` made `small_width` wide."""
    return float(max(1, round(width / max(small_width, 1))))


class MotionDetector:
    """Motion boxes of successive small grey frames of one camera."""

    def __init__(
        self,
        *,
        threshold: int = 20,
        alpha: float = 0.1,
        min_area: int = 6,
        dilate: int = 2,
        global_fraction: float = 0.6,
    ) -> None:
        self.threshold = threshold
        self.alpha = alpha
        self.min_area = min_area
        self.global_fraction = global_fraction
        self._kernel = np.ones((2 * dilate + 1, 2 * dilate + 1), np.uint8) if dilate else None
        self._background: NDArray[np.float32] | None = None
        self._last: Gray | None = None

    def reset(self) -> None:
        self._background = None
        self._last = None

    def absorb(self, boxes: NDArray[np.float32]) -> None:
        """Take the last frame's pixels in `boxes` (small-frame xyxy) into the background
        at once. For motion the detector looked at and found empty: above all the ghost a
        person leaves where he stood, which the running average would otherwise report as
        motion for seconds (and the detector would be asked about it every frame)."""
        if self._background is None or self._last is None or not len(boxes):
            return
        h, w = self._last.shape
        for x0, y0, x1, y1 in boxes:
            a, b = max(int(x0), 0), max(int(y0), 0)
            c, d = min(int(np.ceil(x1)), w), min(int(np.ceil(y1)), h)
            if c > a and d > b:
                self._background[b:d, a:c] = self._last[b:d, a:c]

    def __call__(self, small: Gray) -> MotionResult:
        blurred: Gray = np.asarray(cv2.GaussianBlur(small, (3, 3), 0), dtype=np.uint8)
        self._last = blurred
        if self._background is None or self._background.shape != blurred.shape:
            self._background = blurred.astype(np.float32)
            return MotionResult(np.zeros_like(small), np.zeros((0, 4), np.float32), 0.0, False)
        diff = cv2.absdiff(blurred, cv2.convertScaleAbs(self._background))
        mask: Gray = np.asarray(
            cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)[1], dtype=np.uint8
        )
        fraction = float(np.count_nonzero(mask)) / mask.size
        if fraction >= self.global_fraction:
            self._background = blurred.astype(np.float32)
            full = np.array([[0, 0, small.shape[1], small.shape[0]]], np.float32)
            return MotionResult(mask, full, fraction, True)
        if self._kernel is not None:
            mask = np.asarray(cv2.dilate(mask, self._kernel), dtype=np.uint8)
        cv2.accumulateWeighted(blurred, self._background, self.alpha)
        return MotionResult(mask, blobs(mask, self.min_area), fraction, False)


def blobs(mask: Gray, min_area: int) -> NDArray[np.float32]:
    """Bounding boxes (xyxy) of the blobs of `mask` (outer contours: a blob inside another's
    hole is part of it) with at least `min_area` set pixels in their box. Contours cost a
    tenth of labelling the components with their statistics."""
    if not mask.any():
        return np.zeros((0, 4), np.float32)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        if w * h >= min_area and cv2.countNonZero(mask[y : y + h, x : x + w]) >= min_area:
            out.append((x, y, x + w, y + h))
    return np.array(out, np.float32).reshape(-1, 4)
