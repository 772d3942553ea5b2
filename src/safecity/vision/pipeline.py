"""Motion-gated detection and tracking for one camera (`CameraAnalyzer`), and the same
for many cameras in one round (`analyze_batch`).

Per analysed frame:
1. luma shrunk to about `motion_width` -> motion mask and blobs (a few hundred us);
2. every track is predicted forward. A track is *due* for the detector when it is new, at
   the edge of the picture, moving and either last detected `max_coast` frames ago or no
   longer matched by the motion mask (less than `motion_agree` of its predicted box
   moving), or standing still and last checked `stationary_recheck_s` ago. The others coast
   on their prediction: a parked car is not re-detected every frame, a car driving
   steadily is detected every few frames;
3. motion that no track explains (the mask minus the tracks' boxes) marks new objects;
4. if anything is due, the detector runs on one crop around all of it (at least
   `min_crop` detector pixels a side: a small detector needs context), at the scale at
   which the whole frame fits its nominal input, so boxes match the naive pipeline's; when
   that crop costs as much as the whole frame, the whole frame is detected at its own
   aspect ratio (416x256 for 16:9, not the 416x416 letterbox). Nothing due, no detection.
   The whole frame is also detected at the start, after a global change and every
   `full_refresh_s`;
5. the tracker takes the detections, told which region was looked at (tracks outside it
   were not missed).

`gated=False` gives the naive pipeline: the detector on every full frame (the classic
letterboxed square input), then the same tracker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from safecity.vision.decode import Frame
from safecity.vision.detections import Detections, nms
from safecity.vision.detector import Detector
from safecity.vision.motion import MotionDetector, MotionResult, blobs, shrink, shrink_factor
from safecity.vision.tracker import LOST, ByteTracker, Track

Boxes = NDArray[np.float32]


@dataclass
class AnalyzerConfig:
    gated: bool = True
    motion_width: int = 160
    motion_threshold: int = 20
    full_refresh_s: float = 10.0
    stationary_recheck_s: float = 5.0
    #: A moving track coasts on its prediction while the motion mask agrees with it (at
    #: least `motion_agree` of its predicted box moving), for at most this many frames.
    max_coast: int = 4
    motion_agree: float = 0.3
    #: Margin around a region, as a share of its size (and at least `min_pad` frame px).
    region_pad: float = 0.3
    min_pad: int = 12
    #: Smallest crop side, in detector pixels (YOLOX-Nano needs context: a car alone in a
    #: 192x128 crop is missed that the whole frame shows at 0.68).
    min_crop: int = 224
    #: Detect one crop around all regions instead of one crop per region.
    single_region: bool = True
    #: Tracks at the picture's edge (entering, leaving) are detected every frame.
    edge_due: bool = True
    #: A new track whose first detection is this sure needs no second look to be confirmed.
    confirm_score: float = 1.01
    #: Smallest unexplained motion blob (pixels of the small motion frame) that may be a
    #: new object.
    new_min_area: int = 6
    #: Cost of one more detector call, in input pixels (crops vs. one whole frame).
    call_overhead_px: int = 4096
    #: A track moving less than this share of its height per frame is standing still.
    moving_share: float = 0.04
    #: Motion the detector looked at and found nothing in (no detection, no track) is
    #: taken into the motion background at once (see `MotionDetector.absorb`).
    absorb_empty: bool = True
    absorb_lost: bool = True


@dataclass
class Plan:
    """What the detector must look at in one frame."""

    frame: Frame
    scale: float
    full: bool
    #: Regions in frame pixels (xyxy); the crops below are these at `scale`.
    regions: Boxes
    crops: list[NDArray[np.uint8]]
    offsets: list[tuple[int, int]]
    motion: MotionResult
    square: bool = False


@dataclass
class FrameResult:
    frame: Frame
    #: Confirmed tracks after this frame (boxes in frame pixels, with tracker_id).
    tracks: Detections
    #: What the detector found in this frame (frame pixels).
    detections: Detections
    motion_boxes: Boxes
    motion_fraction: float
    global_change: bool
    regions: Boxes
    full: bool
    detector_pixels: int
    #: Every live track (for rules that need speed and history).
    live: list[Track] = field(default_factory=list)


def _moving_share(mask: NDArray[np.uint8], box: NDArray[np.float32]) -> float:
    """Share of `box` (mask pixels) where the motion mask is set."""
    mh, mw = mask.shape
    x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
    x1, y1 = min(int(np.ceil(box[2])), mw), min(int(np.ceil(box[3])), mh)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    moving = int(np.count_nonzero(mask[y0:y1, x0:x1]))
    return moving / float((x1 - x0) * (y1 - y0))


def _area(b: list[float]) -> float:
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def _merge_boxes(boxes: Boxes) -> Boxes:
    """Merge boxes whose union costs no more than the two apart (heavy overlaps)."""
    b = [list(map(float, x)) for x in boxes]
    merged = True
    while merged and len(b) > 1:
        merged = False
        out: list[list[float]] = []
        for box in b:
            for o in out:
                u = [min(o[0], box[0]), min(o[1], box[1]), max(o[2], box[2]), max(o[3], box[3])]
                inter = (
                    _area(
                        [max(o[0], box[0]), max(o[1], box[1]), min(o[2], box[2]), min(o[3], box[3])]
                    )
                    if (box[0] < o[2] and box[2] > o[0] and box[1] < o[3] and box[3] > o[1])
                    else 0
                )
                small = min(_area(o), _area(box))
                if inter >= 0.3 * small or _area(u) <= 1.2 * (_area(o) + _area(box)):
                    o[0], o[1] = min(o[0], box[0]), min(o[1], box[1])
                    o[2], o[3] = max(o[2], box[2]), max(o[3], box[3])
                    merged = True
                    break
            else:
                out.append(box)
        b = out
    return np.array(b, np.float32).reshape(-1, 4)


class CameraAnalyzer:
    """Motion-gated detection and tracking of one camera's frames."""

    def __init__(self, detector: Detector, config: AnalyzerConfig | None = None) -> None:
        self.detector = detector
        self.config = config or AnalyzerConfig()
        self.motion = MotionDetector(threshold=self.config.motion_threshold)
        self.tracker = ByteTracker(confirm_score=self.config.confirm_score)
        self._last_full: float | None = None
        self._last_check: dict[int, float] = {}
        self.frames = 0
        self.full_frames = 0

    def reset(self) -> None:
        """Forget the scene (after a reconnect or a tamper alert)."""
        self.motion.reset()
        self.tracker.reset()
        self._last_full = None
        self._last_check.clear()

    # ------------------------------------------------------------------ planning
    def plan(self, frame: Frame, small: NDArray[np.uint8] | None = None) -> Plan:
        cfg = self.config
        w, h = frame.width, frame.height
        scale = self.detector.input_size / max(w, h)
        if small is None:
            small = shrink(frame.gray(), cfg.motion_width)
        motion = self.motion(small)
        self.tracker.step()
        self.frames += 1
        if not cfg.gated:
            return self._full(frame, scale, motion, square=True)
        t = frame.time
        if (
            self._last_full is None
            or motion.global_change
            or t - self._last_full >= (cfg.full_refresh_s)
        ):
            return self._full(frame, scale, motion)

        k = shrink_factor(w, small.shape[1])
        self.tracker.drop_outside(w, h)
        due: list[Boxes] = []
        coasting: list[Boxes] = []
        swept: list[Boxes] = []  # where each track was last seen and is now
        for tr in self.tracker.predicted():
            if tr.state == LOST:
                continue  # found again only where motion or a refresh shows it
            box = tr.box
            height = max(float(box[3] - box[1]), 1.0)
            since = self.tracker.frame - tr.last_detected
            edge = box[0] < 0 or box[1] < 0 or box[2] > w or box[3] > h
            swept.append(
                np.concatenate(
                    [np.minimum(box[:2], tr.det_box[:2]), np.maximum(box[2:], tr.det_box[2:])]
                )
            )
            if not tr.confirmed or (edge and cfg.edge_due):
                due.append(box)
            elif tr.speed >= cfg.moving_share * height:
                agree = _moving_share(motion.mask, box / k)
                if since >= cfg.max_coast or agree < cfg.motion_agree:
                    due.append(box)
                else:
                    coasting.append(box)
            elif t - self._last_check.get(tr.track_id, t) >= cfg.stationary_recheck_s:
                due.append(box)
            # A still object coasts without hiding motion on it (something passing by, or
            # the object starting to move, is looked at through the motion mask).
        # Motion that no moving track explains (due ones are looked at anyway).
        residual = motion.mask
        if swept and len(motion.boxes):
            residual = motion.mask.copy()
            for b in swept:
                x0, y0, x1, y1 = b / k
                mx, my = (x1 - x0) * 0.15, (y1 - y0) * 0.15
                cv2.rectangle(
                    residual, (int(x0 - mx), int(y0 - my)), (int(x1 + mx), int(y1 + my)), 0, -1
                )
        new = (
            blobs(residual, cfg.new_min_area) * k
            if len(motion.boxes)
            else np.zeros((0, 4), np.float32)
        )
        boxes = np.concatenate([np.array(due, np.float32).reshape(-1, 4), new.reshape(-1, 4)])
        if len(boxes) == 0:
            return Plan(frame, scale, False, np.zeros((0, 4), np.float32), [], [], motion)
        size = np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0)
        pad = np.maximum(size * cfg.region_pad, cfg.min_pad)
        boxes = np.concatenate([boxes[:, :2] - pad, boxes[:, 2:] + pad], axis=1)
        min_side = cfg.min_crop / scale
        c = (boxes[:, :2] + boxes[:, 2:]) / 2
        half = np.maximum((boxes[:, 2:] - boxes[:, :2]) / 2, min_side / 2)
        boxes = np.concatenate([c - half, c + half], axis=1)
        boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
        if cfg.single_region:
            # One crop around everything: a small crop starves a small detector of context.
            boxes = np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])[None]
        boxes = self._whole_objects(boxes, w, h)
        plan = self._crops(frame, scale, _merge_boxes(boxes), motion)
        stride = self.detector.stride
        cost = sum(
            -(-c.shape[0] // stride) * stride * -(-c.shape[1] // stride) * stride
            + cfg.call_overhead_px
            for c in plan.crops
        )
        fh, fw = round(h * scale), round(w * scale)
        full_cost = -(-fh // stride) * stride * -(-fw // stride) * stride + cfg.call_overhead_px
        if cost >= full_cost:
            return self._full(frame, scale, motion)
        return plan

    def _whole_objects(self, regions: Boxes, w: int, h: int) -> Boxes:
        """Regions grown until no live track's box is cut by one (a cut object is found
        with a wrong box, or not at all, and its track would be counted as missed)."""
        tracks = [t.box for t in self.tracker.predicted()]
        if not tracks:
            return regions
        out = regions.copy()
        for _ in range(3):
            grown = False
            for r in out:
                for b in tracks:
                    overlaps = b[0] < r[2] and b[2] > r[0] and b[1] < r[3] and b[3] > r[1]
                    inside = b[0] >= r[0] and b[1] >= r[1] and b[2] <= r[2] and b[3] <= r[3]
                    if overlaps and not inside:
                        pad = max(float(b[3] - b[1]), float(b[2] - b[0])) * 0.1
                        r[0], r[1] = min(r[0], b[0] - pad), min(r[1], b[1] - pad)
                        r[2], r[3] = max(r[2], b[2] + pad), max(r[3], b[3] + pad)
                        grown = True
            out = np.clip(out, 0, [w, h, w, h]).astype(np.float32)
            if not grown:
                break
        return out

    def _full(
        self, frame: Frame, scale: float, motion: MotionResult, *, square: bool = False
    ) -> Plan:
        self._last_full = frame.time
        self.full_frames += 1
        img = frame.bgr(scale)
        full = np.array([[0, 0, frame.width, frame.height]], np.float32)
        return Plan(frame, scale, True, full, [img], [(0, 0)], motion, square=square)

    def _crops(self, frame: Frame, scale: float, regions: Boxes, motion: MotionResult) -> Plan:
        img = frame.bgr(scale)
        ih, iw = img.shape[:2]
        stride = self.detector.stride
        crops, offsets, out_regions = [], [], []
        for x0, y0, x1, y1 in regions * scale:
            # Grow the crop to the detector's stride (more context instead of padding).
            cw = min(iw, -(-int(np.ceil(x1 - x0)) // stride) * stride)
            ch = min(ih, -(-int(np.ceil(y1 - y0)) // stride) * stride)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            ax = int(np.clip(round(cx - cw / 2), 0, iw - cw))
            ay = int(np.clip(round(cy - ch / 2), 0, ih - ch))
            crops.append(img[ay : ay + ch, ax : ax + cw])
            offsets.append((ax, ay))
            out_regions.append([ax / scale, ay / scale, (ax + cw) / scale, (ay + ch) / scale])
        return Plan(frame, scale, False, np.array(out_regions, np.float32), crops, offsets, motion)

    # ------------------------------------------------------------------ finishing
    def finish(self, plan: Plan, found: Sequence[Detections]) -> FrameResult:
        frame = plan.frame
        w, h = frame.width, frame.height
        parts = []
        pixels = 0
        for crop, (ox, oy), dets in zip(plan.crops, plan.offsets, found, strict=True):
            ch, cw = crop.shape[:2]
            pixels += ch * cw
            if not plan.full and len(dets):
                # Objects cut by the crop's edge (not the frame's) get wrong boxes: drop
                # them; their track is looked at again with a larger region.
                b = dets.xyxy
                iw, ih = round(w * plan.scale), round(h * plan.scale)
                cut = (
                    ((b[:, 0] <= 1) & (ox > 0))
                    | ((b[:, 1] <= 1) & (oy > 0))
                    | ((b[:, 2] >= cw - 1) & (ox + cw < iw))
                    | ((b[:, 3] >= ch - 1) & (oy + ch < ih))
                )
                dets = dets[~cut]
            parts.append(dets.shifted(ox / plan.scale, oy / plan.scale, 1 / plan.scale))
        dets = Detections.merge(parts)
        if len(plan.crops) > 1 and len(dets) > 1:
            dets = dets[nms(dets.xyxy, dets.confidence, 0.6)]
        regions = None if plan.full else plan.regions
        tracks = self.tracker.update(dets, regions, step=False)
        t = frame.time
        looked = self.tracker.tracks
        for tr in looked:
            if tr.last_detected == self.tracker.frame:
                self._last_check[tr.track_id] = t
        live_ids = {tr.track_id for tr in looked}
        for tid in [k for k in self._last_check if k not in live_ids]:
            del self._last_check[tid]
        k = shrink_factor(w, plan.motion.mask.shape[1])
        if self.config.absorb_empty and self.config.gated and len(plan.motion.boxes):
            self._absorb_empty(plan, dets, looked, k)
        return FrameResult(
            frame=frame,
            tracks=tracks,
            detections=dets,
            motion_boxes=plan.motion.boxes * k,
            motion_fraction=plan.motion.fraction,
            global_change=plan.motion.global_change,
            regions=plan.regions,
            full=plan.full,
            detector_pixels=pixels,
            live=list(looked),
        )

    def _absorb_empty(self, plan: Plan, dets: Detections, looked: list[Track], k: float) -> None:
        """Motion blobs wholly inside what the detector looked at this frame, touching no
        detection (at any confidence it reports) and no live track, go into the motion
        background."""
        if plan.motion.global_change or not plan.crops:
            return
        blobs_ = plan.motion.boxes * k
        regions = plan.regions
        inside = (
            (blobs_[:, None, 0] >= regions[None, :, 0])
            & (blobs_[:, None, 1] >= regions[None, :, 1])
            & (blobs_[:, None, 2] <= regions[None, :, 2])
            & (blobs_[:, None, 3] <= regions[None, :, 3])
        ).any(axis=1)
        present = [t.box for t in looked if t.state != LOST or not self.config.absorb_lost]
        occupied = np.concatenate(
            [dets.xyxy.reshape(-1, 4), np.array(present, np.float32).reshape(-1, 4)]
        )
        if len(occupied):
            touches = (
                (blobs_[:, None, 0] < occupied[None, :, 2])
                & (blobs_[:, None, 2] > occupied[None, :, 0])
                & (blobs_[:, None, 1] < occupied[None, :, 3])
                & (blobs_[:, None, 3] > occupied[None, :, 1])
            ).any(axis=1)
            inside &= ~touches
        if inside.any():
            self.motion.absorb(plan.motion.boxes[inside])

    def process(self, frame: Frame) -> FrameResult:
        plan = self.plan(frame)
        found = self.detector.detect(plan.crops, square=plan.square) if plan.crops else []
        return self.finish(plan, found)


def analyze_batch(
    items: Sequence[tuple[CameraAnalyzer, Frame]],
    detector: Detector,
    smalls: Sequence[NDArray[np.uint8] | None] | None = None,
) -> list[FrameResult]:
    """Frames of several cameras, with all their crops handed to the detector at once (it
    batches those of one padded size as far as its `max_batch` allows). `smalls`: each
    frame's small grey picture when the caller already made it (see `motion.shrink`)."""
    shrunk = list(smalls) if smalls is not None else [None] * len(items)
    plans = [a.plan(f, s) for (a, f), s in zip(items, shrunk, strict=True)]
    crops = [c for p in plans for c in p.crops if not p.square]
    found_iter = iter(detector.detect(crops)) if crops else iter(())
    results = []
    for (a, _), p in zip(items, plans, strict=True):
        if p.square:
            found = detector.detect(p.crops, square=True)
        else:
            found = [next(found_iter) for _ in p.crops]
        results.append(a.finish(p, found))
    return results
