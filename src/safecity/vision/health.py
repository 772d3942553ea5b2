"""Camera health from the frames themselves: offline, frozen, dark or covered, tampered.

Checks run on the small grey frame the motion detector uses (no extra decoding):
- frozen: consecutive frames identical but for codec noise (an encoder repeating its last
  picture, a stuck DVR channel, a looped still) for `frozen_after_s`;
- dark / covered: very low brightness, or almost no texture (a lens covered, sprayed or
  pointed at a wall), for `dark_after_s`;
- tampered: most of the picture changed at once (camera turned, moved or blocked); the
  status stays `tampered` for `tamper_hold_s` unless the old view returns;
- offline: no frame for `offline_after_s` (the reader reports connection failures too).

`HealthMonitor` gives the camera's status, frames per second and last frame time, and a
`HealthChange` each time the status changes (alerts and the registry's live status)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

ONLINE, OFFLINE, FROZEN, DARK, TAMPERED = "online", "offline", "frozen", "dark", "tampered"


@dataclass
class HealthConfig:
    #: A long window: a truly still scene (an empty corridor at night) also changes little,
    #: but over a minute light, noise or someone passing moves some pixel more than a codec.
    frozen_after_s: float = 60.0
    #: Two frames count as "identical" when no pixel of the small grey picture differs by
    #: more than this (a re-encoded still wobbles by a level or three at each keyframe).
    frozen_max_diff: int = 4
    dark_after_s: float = 10.0
    dark_level: float = 30.0
    covered_std: float = 6.0
    tamper_hold_s: float = 60.0
    offline_after_s: float = 15.0


@dataclass
class HealthChange:
    status: str
    previous: str
    reason: str
    at: float  # wall clock, seconds


class HealthMonitor:
    """Status of one camera, updated with each analysed frame."""

    def __init__(self, config: HealthConfig | None = None) -> None:
        self.config = config or HealthConfig()
        self.status = "unknown"
        self.reason = ""
        self.last_frame_wall: float | None = None
        self.fps = 0.0
        self._prev: NDArray[np.uint8] | None = None
        self._same_since: float | None = None
        self._dark_since: float | None = None
        self._tamper_until = 0.0
        self._reference: NDArray[np.uint8] | None = None
        self._frames: list[float] = []

    def _set(self, status: str, reason: str, now: float) -> HealthChange | None:
        if status == self.status:
            self.reason = reason
            return None
        change = HealthChange(status, self.status, reason, now)
        self.status, self.reason = status, reason
        return change

    def frame(
        self, small: NDArray[np.uint8], *, global_change: bool = False, now: float | None = None
    ) -> HealthChange | None:
        """Account for one frame (`small`: the shrunk grey picture)."""
        cfg = self.config
        now = time.time() if now is None else now
        self.last_frame_wall = now
        self._frames.append(now)
        self._frames = [t for t in self._frames if now - t <= 5.0]
        if len(self._frames) >= 2:
            span = self._frames[-1] - self._frames[0]
            self.fps = (len(self._frames) - 1) / span if span > 0 else 0.0

        before = self._prev
        # Frozen: identical to the previous frame.
        if self._prev is not None and self._prev.shape == small.shape:
            d = cv2.absdiff(small, self._prev)
            if int(d.max()) <= cfg.frozen_max_diff:
                if self._same_since is None:
                    self._same_since = now
            else:
                self._same_since = None
        self._prev = small.copy()

        # Dark or covered.
        mean, std = cv2.meanStdDev(small)
        m, s = float(mean[0][0]), float(std[0][0])
        dark_reason = ""
        if m < cfg.dark_level:
            dark_reason = f"dark picture (mean brightness {m:.0f}/255)"
        elif s < cfg.covered_std:
            dark_reason = f"no detail in the picture (covered or blocked? contrast {s:.1f})"
        if dark_reason:
            if self._dark_since is None:
                self._dark_since = now
        else:
            self._dark_since = None

        # Tampered: a sudden change of most of the view that does not go back.
        if global_change:
            self._tamper_until = now + cfg.tamper_hold_s
            if self._reference is None:
                self._reference = before
        elif self._reference is not None and now < self._tamper_until:
            back = (
                self._reference.shape == small.shape
                and float(cv2.absdiff(small, self._reference).mean()) < 8.0
            )
            if back:
                self._tamper_until = 0.0
        if now >= self._tamper_until:
            self._reference = None

        if self._same_since is not None and now - self._same_since >= cfg.frozen_after_s:
            return self._set(FROZEN, f"picture unchanged for {now - self._same_since:.0f} s", now)
        if self._dark_since is not None and now - self._dark_since >= cfg.dark_after_s:
            return self._set(DARK, dark_reason, now)
        if now < self._tamper_until:
            return self._set(
                TAMPERED, "the view changed suddenly (camera moved, turned or blocked?)", now
            )
        return self._set(ONLINE, "", now)

    def offline(self, reason: str, *, now: float | None = None) -> HealthChange | None:
        """The stream failed or delivers nothing."""
        now = time.time() if now is None else now
        self._prev = None
        self._same_since = None
        self.fps = 0.0
        self._frames.clear()
        return self._set(OFFLINE, reason, now)

    def check_silence(self, *, now: float | None = None) -> HealthChange | None:
        """Offline when no frame came for `offline_after_s` (call it periodically)."""
        now = time.time() if now is None else now
        last = self.last_frame_wall
        if last is not None and now - last >= self.config.offline_after_s:
            return self.offline(f"no picture for {now - last:.0f} s", now=now)
        return None
