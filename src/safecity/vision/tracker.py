"""ByteTrack-style multi-object tracking (Zhang et al. 2022), in numpy.

Each track has a constant-velocity Kalman filter on (cx, cy, aspect, height). Detections
are associated in two rounds: confident ones with every live track, then the low-score ones
(occluded, blurred objects that a plain threshold drops) with the tracks still unmatched.

Two changes for motion-gated detection: `update` is told which parts of the frame the
detector looked at (`regions`); a track outside them was not *missed*, it coasts on its
prediction (a parked car is not re-detected every frame). And each track keeps how long ago
it was last detected and whether it moves, which the pipeline uses to decide what to look
at next."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from safecity.vision.detections import Detections, box_iou

F = NDArray[np.float64]

_STD_POS = 1.0 / 20
_STD_VEL = 1.0 / 160


class KalmanXYAH:
    """The Kalman filter of SORT/DeepSORT/ByteTrack (state x, y, a, h and velocities)."""

    def __init__(self) -> None:
        self.motion = np.eye(8)
        for i in range(4):
            self.motion[i, 4 + i] = 1.0
        self.update_mat = np.eye(4, 8)

    def initiate(self, z: F) -> tuple[F, F]:
        mean = np.r_[z, np.zeros(4)]
        h = z[3]
        std = [
            2 * _STD_POS * h,
            2 * _STD_POS * h,
            1e-2,
            2 * _STD_POS * h,
            10 * _STD_VEL * h,
            10 * _STD_VEL * h,
            1e-5,
            10 * _STD_VEL * h,
        ]
        return mean, np.diag(np.square(std))

    def predict(self, mean: F, cov: F, steps: float = 1.0) -> tuple[F, F]:
        h = mean[3]
        q = (
            np.square(
                [
                    _STD_POS * h,
                    _STD_POS * h,
                    1e-2,
                    _STD_POS * h,
                    _STD_VEL * h,
                    _STD_VEL * h,
                    1e-5,
                    _STD_VEL * h,
                ]
            )
            * steps
        )
        m = self.motion.copy()
        for i in range(4):
            m[i, 4 + i] = steps
        return m @ mean, m @ cov @ m.T + np.diag(q)

    def update(self, mean: F, cov: F, z: F) -> tuple[F, F]:
        h = mean[3]
        r = np.diag(np.square([_STD_POS * h, _STD_POS * h, 1e-1, _STD_POS * h]))
        proj_mean = self.update_mat @ mean
        proj_cov = self.update_mat @ cov @ self.update_mat.T + r
        gain = np.linalg.solve(proj_cov, (cov @ self.update_mat.T).T).T
        mean = mean + gain @ (z - proj_mean)
        cov = cov - gain @ proj_cov @ gain.T
        return mean, cov

    def predict_many(self, means: F, covs: F) -> tuple[F, F]:
        """`predict` of N tracks at once: means (N, 8), covariances (N, 8, 8)."""
        h = means[:, 3:4]
        std = h * np.array([_STD_POS, _STD_POS, 0, _STD_POS, _STD_VEL, _STD_VEL, 0, _STD_VEL])
        std[:, 2], std[:, 6] = 1e-2, 1e-5
        m = self.motion
        covs = m @ covs @ m.T
        idx = np.arange(8)
        covs[:, idx, idx] += np.square(std)
        return means @ m.T, covs

    def update_many(self, means: F, covs: F, zs: F) -> tuple[F, F]:
        """`update` of N tracks at once with their measurements `zs` (N, 4)."""
        h = means[:, 3:4]
        r = np.square(h * np.array([_STD_POS, _STD_POS, 0, _STD_POS]))
        r[:, 2] = 1e-2
        proj_cov = covs[:, :4, :4].copy()
        idx = np.arange(4)
        proj_cov[:, idx, idx] += r
        # gain = cov H^T S^-1; S and cov are symmetric, so gain^T = S^-1 (H cov).
        gain = np.linalg.solve(proj_cov, covs[:, :4, :]).transpose(0, 2, 1)
        means = means + (gain @ (zs - means[:, :4])[:, :, None])[:, :, 0]
        covs = covs - gain @ proj_cov @ gain.transpose(0, 2, 1)
        return means, covs


def _xyah(box: NDArray[np.float32]) -> F:
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    return np.array([box[0] + w / 2, box[1] + h / 2, w / max(h, 1e-3), max(h, 1e-3)])


def _xyxy(mean: F) -> NDArray[np.float32]:
    x, y, a, h = mean[:4]
    w = a * h
    return np.array([x - w / 2, y - h / 2, x + w / 2, y + h / 2], np.float32)


TRACKED, LOST, REMOVED = "tracked", "lost", "removed"


@dataclass
class Track:
    track_id: int
    mean: F
    cov: F
    score: float
    class_votes: dict[int, float]
    first_frame: int
    last_detected: int
    hits: int = 1
    state: str = TRACKED
    confirmed: bool = False
    #: Frames since the last detection in which the detector looked and did not find it.
    misses: int = 0
    #: The box of the last detection (reported as is in the frame it was detected in).
    det_box: NDArray[np.float32] = field(default_factory=lambda: np.zeros(4, np.float32))
    #: The filter's centre when that detection came.
    det_centre: NDArray[np.float64] = field(default_factory=lambda: np.zeros(2))

    @property
    def xyxy(self) -> NDArray[np.float32]:
        return _xyxy(self.mean)

    @property
    def box(self) -> NDArray[np.float32]:
        """The last detected box moved with the filter's centre since: the filter's own box
        lags when an object's shape changes (a person turning, a car entering)."""
        shift = (self.mean[:2] - self.det_centre).astype(np.float32)
        out: NDArray[np.float32] = self.det_box + np.concatenate([shift, shift])
        return out

    @property
    def class_id(self) -> int:
        return max(self.class_votes.items(), key=lambda kv: kv[1])[0]

    @property
    def speed(self) -> float:
        """Pixels per frame of the box centre (Kalman velocity)."""
        return float(np.hypot(self.mean[4], self.mean[5]))


def _match(cost_iou: NDArray[np.float32], min_iou: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching by descending IoU (>= `min_iou`)."""
    if cost_iou.size == 0:
        return []
    pairs = np.argwhere(cost_iou >= min_iou)
    if len(pairs) == 0:
        return []
    order = np.argsort(-cost_iou[pairs[:, 0], pairs[:, 1]], kind="stable")
    used_a: set[int] = set()
    used_b: set[int] = set()
    out: list[tuple[int, int]] = []
    for a, b in pairs[order]:
        if a in used_a or b in used_b:
            continue
        used_a.add(int(a))
        used_b.add(int(b))
        out.append((int(a), int(b)))
    return out


def _inside(boxes: NDArray[np.float32], regions: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Whether (nearly: 90%) all of each box lies in one of `regions`."""
    if len(boxes) == 0:
        return np.zeros(0, bool)
    if len(regions) == 0:
        return np.zeros(len(boxes), bool)
    lt = np.maximum(boxes[:, None, :2], regions[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], regions[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 1e-3, None), axis=1)
    out: NDArray[np.bool_] = (inter / area[:, None]).max(axis=1) >= 0.9
    return out


class ByteTracker:
    """Tracks of one camera. Call `update` once per analysed frame."""

    def __init__(
        self,
        *,
        high_threshold: float = 0.25,
        low_threshold: float = 0.1,
        new_track_threshold: float = 0.25,
        match_iou: float = 0.2,
        low_match_iou: float = 0.4,
        max_misses: int = 8,
        max_coast: int = 60,
        confirm_score: float = 1.01,
    ) -> None:
        self.high = high_threshold
        self.low = low_threshold
        self.new = new_track_threshold
        self.match_iou = match_iou
        self.low_match_iou = low_match_iou
        self.max_misses = max_misses
        self.max_coast = max_coast
        #: A new track this sure is confirmed at once (else after a second detection).
        self.confirm_score = confirm_score
        self.kf = KalmanXYAH()
        self.frame = 0
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self.tracks = []
        self.frame = 0

    def predicted(self) -> list[Track]:
        """Live tracks (before this frame's update, after its prediction)."""
        return [t for t in self.tracks if t.state != REMOVED]

    def drop_outside(self, width: int, height: int, keep: float = 0.1) -> None:
        """Forget tracks whose predicted box has (almost) left the picture."""
        for t in self.tracks:
            b = t.xyxy
            area = max(float((b[2] - b[0]) * (b[3] - b[1])), 1e-3)
            vis = max(min(b[2], width) - max(b[0], 0), 0) * max(min(b[3], height) - max(b[1], 0), 0)
            if vis / area < keep:
                t.state = REMOVED
        self.tracks = [t for t in self.tracks if t.state != REMOVED]

    def step(self) -> None:
        """Advance every track's prediction by one frame (called by `update`, or alone when
        the frame was not analysed at all)."""
        self.frame += 1
        if not self.tracks:
            return
        means, covs = self.kf.predict_many(
            np.array([t.mean for t in self.tracks]), np.array([t.cov for t in self.tracks])
        )
        for t, m, c in zip(self.tracks, means, covs, strict=True):
            t.mean, t.cov = m, c

    def update(
        self, dets: Detections, regions: NDArray[np.float32] | None = None, *, step: bool = True
    ) -> Detections:
        """Associate `dets` (found inside `regions`; None = the whole frame) and return the
        confirmed, live tracks as detections with `tracker_id`."""
        if step:
            self.step()
        live = [t for t in self.tracks if t.state in (TRACKED, LOST)]
        boxes = np.array([t.xyxy for t in live], np.float32).reshape(-1, 4)
        looked = np.ones(len(live), bool) if regions is None else _inside(boxes, regions)

        high = np.nonzero(dets.confidence >= self.high)[0]
        low = np.nonzero((dets.confidence >= self.low) & (dets.confidence < self.high))[0]
        matched_t: set[int] = set()
        matched_d: set[int] = set()
        hits: list[tuple[Track, int]] = []

        # Round 1: confident detections with every live track (tracked or lost).
        iou = box_iou(boxes, dets.xyxy[high])
        for ti, dj in _match(iou, self.match_iou):
            hits.append((live[ti], int(high[dj])))
            matched_t.add(ti)
            matched_d.add(int(high[dj]))
        # Round 2: low-score detections with the tracked ones left.
        rest = [i for i in range(len(live)) if i not in matched_t and live[i].state == TRACKED]
        if rest and len(low):
            iou2 = box_iou(boxes[rest], dets.xyxy[low])
            for ri, dj in _match(iou2, self.low_match_iou):
                hits.append((live[rest[ri]], int(low[dj])))
                matched_t.add(rest[ri])
                matched_d.add(int(low[dj]))
        self._hit(hits, dets)
        # Unmatched tracks that the detector looked at were missed.
        for i, t in enumerate(live):
            if i in matched_t:
                continue
            if looked[i]:
                t.misses += 1
                if not t.confirmed or t.misses > self.max_misses:
                    t.state = REMOVED
                else:
                    t.state = LOST
            elif self.frame - t.last_detected > self.max_coast:
                t.state = REMOVED
        # New tracks from confident detections nobody claimed.
        for j in high:
            if int(j) in matched_d or dets.confidence[j] < self.new:
                continue
            mean, cov = self.kf.initiate(_xyah(dets.xyxy[j]))
            self.tracks.append(
                Track(
                    self._next_id,
                    mean,
                    cov,
                    float(dets.confidence[j]),
                    {int(dets.class_id[j]): float(dets.confidence[j])},
                    self.frame,
                    self.frame,
                    confirmed=self.frame == 1 or dets.confidence[j] >= self.confirm_score,
                    det_box=dets.xyxy[j].copy(),
                    det_centre=mean[:2].copy(),
                )
            )
            self._next_id += 1
        self.tracks = [t for t in self.tracks if t.state != REMOVED]
        return self.output()

    def _hit(self, hits: list[tuple[Track, int]], dets: Detections) -> None:
        """Tracks matched with detections (track, index): one filter update for all."""
        if not hits:
            return
        means, covs = self.kf.update_many(
            np.array([t.mean for t, _ in hits]),
            np.array([t.cov for t, _ in hits]),
            np.array([_xyah(dets.xyxy[j]) for _, j in hits]),
        )
        for (t, j), mean, cov in zip(hits, means, covs, strict=True):
            t.mean, t.cov = mean, cov
            t.score = float(dets.confidence[j])
            c = int(dets.class_id[j])
            t.class_votes[c] = t.class_votes.get(c, 0.0) + t.score
            t.hits += 1
            t.misses = 0
            t.last_detected = self.frame
            t.det_box = dets.xyxy[j].copy()
            t.det_centre = t.mean[:2].copy()
            t.state = TRACKED
            if t.hits >= 2:
                t.confirmed = True

    def output(self) -> Detections:
        """Tracks in view: confirmed ones, and new ones detected in this very frame. A track
        detected now has the detector's box; a coasting one its predicted box."""
        out = [
            t
            for t in self.tracks
            if t.state == TRACKED and (t.confirmed or t.last_detected == self.frame)
        ]
        if not out:
            return Detections.empty()
        return Detections(
            np.array(
                [t.det_box if t.last_detected == self.frame else t.box for t in out],
                np.float32,
            ),
            np.array([t.score for t in out], np.float32),
            np.array([t.class_id for t in out], np.int64),
            np.array([t.track_id for t in out], np.int64),
        )
