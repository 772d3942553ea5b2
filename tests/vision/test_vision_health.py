"""Camera health: a frozen alert on a looped still frame (through the real reader and the
multi-camera runner), dark, covered and tampered pictures, silence -> offline."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from vision_helpers import StubDetector, encode_clip, first_frame, shared_dir

from safecity.vision.health import HealthConfig, HealthMonitor
from safecity.vision.runner import CameraConfig, MultiCameraRunner, VisionEvent


def _still(tmp_path: Path) -> Path:
    """A still picture encoded as a 2 s video: from the traffic clip when shared data is
    here, else a textured synthetic picture."""
    src = shared_dir() / "media" / "video" / "o4n_traffic.mp4"
    if src.is_file():
        img = first_frame(src)[:240, :320].copy()
    else:
        img = np.random.default_rng(3).integers(40, 220, (240, 320, 3), dtype=np.uint8)
    return encode_clip(tmp_path / "still.mp4", [img] * 20, fps=10)


def test_frozen_alert_on_a_looped_still_frame(tmp_path: Path) -> None:
    path = _still(tmp_path)
    events: list[VisionEvent] = []
    statuses: list[str] = []
    runner = MultiCameraRunner(
        StubDetector(),
        [CameraConfig("still", f"file://{path}", simulate=True, detect_fps=5)],
        on_event=events.append,
        on_status=lambda key, change, fps, last: statuses.append(change.status),
        health_config=HealthConfig(frozen_after_s=1.5),
    )
    runner.start()
    try:
        deadline = time.time() + 15
        while "frozen" not in statuses and time.time() < deadline:
            time.sleep(0.1)
    finally:
        runner.stop()
    assert statuses[:1] == ["online"]
    assert "frozen" in statuses, statuses
    frozen = [e for e in events if e.kind == "camera_frozen"]
    assert frozen and frozen[0].alert and "unchanged" in frozen[0].extra["reason"]
    assert runner.cameras["still"].source.connects >= 1


def test_dark_covered_and_tampered_pictures() -> None:
    rng = np.random.default_rng(0)
    scene = rng.integers(60, 200, (90, 160), dtype=np.uint8)
    other = rng.integers(60, 200, (90, 160), dtype=np.uint8)
    cfg = HealthConfig(dark_after_s=2.0, tamper_hold_s=5.0, frozen_after_s=100)
    h = HealthMonitor(cfg)

    def feed(
        img: np.ndarray, t0: float, seconds: float, *, change_at: float | None = None
    ) -> list[str]:
        out = []
        for i in range(int(seconds * 5)):
            t = t0 + i / 5
            noisy = np.clip(img.astype(int) + rng.integers(-4, 5, img.shape), 0, 255)
            c = h.frame(noisy.astype(np.uint8), global_change=t == change_at, now=t)
            if c:
                out.append(c.status)
        return out

    assert feed(scene, 0, 2) == ["online"]
    dark = np.full((90, 160), 8, np.uint8)
    assert feed(dark, 2, 3) == ["dark"] and "dark picture" in h.reason
    assert feed(scene, 5, 1) == ["online"]
    covered = np.full((90, 160), 150, np.uint8)
    assert feed(covered, 6, 3) == ["dark"] and "covered" in h.reason
    assert feed(scene, 9, 1) == ["online"]
    assert feed(other, 10, 2, change_at=10.0) == ["tampered"]
    assert h.status == "tampered"
    assert feed(other, 12, 4) == ["online"]  # held for tamper_hold_s, then the new view


def test_silence_makes_a_camera_offline() -> None:
    h = HealthMonitor(HealthConfig(offline_after_s=3))
    h.frame(np.full((9, 16), 100, np.uint8), now=0.0)
    assert h.check_silence(now=2.0) is None
    change = h.check_silence(now=3.5)
    assert change is not None and change.status == "offline" and "no picture" in change.reason
    assert h.fps == 0.0
