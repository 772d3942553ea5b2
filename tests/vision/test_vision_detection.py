"""The real pipeline on the real shared clips: cars in the traffic clip, people in the
crowd clip, the gated pipeline finding what the naive one finds, a tripwire count and a
zone event."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from vision_helpers import clip, shared_file

from safecity.vision.bench import bench_clip
from safecity.vision.decode import VideoReader
from safecity.vision.detections import COCO_CLASSES, Detections
from safecity.vision.detector import Detector, load_detector
from safecity.vision.pipeline import AnalyzerConfig, CameraAnalyzer
from safecity.vision.rules import Line, RuleEngine, Zone

pytestmark = pytest.mark.shared


def _tracks(path: Path, detector: Detector, seconds: float, fps: float = 5.0) -> list[Detections]:
    analyzer = CameraAnalyzer(detector, AnalyzerConfig())
    out = []
    for frame in VideoReader(f"file://{path}", fps=fps):
        if frame.time > seconds:
            break
        out.append(analyzer.process(frame).tracks)
    return out


def test_free_size_model_finds_the_reference_objects(detector: Detector) -> None:
    img = cv2.imread(str(shared_file("media", "street", "yolox_dog.jpg")))
    h, w = img.shape[:2]
    s = 416 / max(h, w)
    small = cv2.resize(img, (round(w * s), round(h * s)))
    assert detector.dynamic, "the detector should run at free input sizes"
    for square in (True, False):
        d = detector.detect([small], square=square)[0]
        d = d[d.confidence >= 0.3]
        found = dict(zip(d.class_names(), (d.xyxy / s).round(), strict=True))
        # SOURCES.txt: bicycle .80 [51,137,572,423], car .80 [466,78,692,171]
        assert np.abs(found["bicycle"] - [51, 137, 572, 423]).max() <= 4
        assert np.abs(found["car"] - [466, 78, 692, 171]).max() <= 4


def test_cars_found_in_the_traffic_clip(detector: Detector) -> None:
    frames = _tracks(clip("o4n_traffic.mp4"), detector, seconds=6.0)
    cars = [int((t.class_id == COCO_CLASSES.index("car")).sum()) for t in frames]
    assert len(frames) >= 28
    assert sum(c > 0 for c in cars) >= 0.8 * len(frames), cars
    assert max(cars) >= 3, cars
    ids = {int(i) for t in frames for i in t.tracker_id}
    assert len(ids) >= 4  # cars come and go, each with its own track
    assert not any((t.class_id == 0).any() for t in frames), "no pedestrians in this clip"


def test_people_found_in_the_crowd_clip(detector: Detector) -> None:
    frames = _tracks(clip("o4n_people.mp4"), detector, seconds=3.0)
    people = [int((t.class_id == 0).sum()) for t in frames[1:]]
    assert all(p >= 3 for p in people), people
    assert max(people) >= 6, people


def test_gated_pipeline_finds_what_the_naive_one_finds(detector: Detector) -> None:
    model = Path(detector.name.split(":", 1)[1])
    path = shared_file("models", model.name)
    r = bench_clip(
        clip("bgs_highway_cctv_320x240.avi"), lambda: load_detector(path), max_seconds=6.0
    )
    assert r["naive_detections"] >= 100
    assert r["recall_vs_naive"] >= 0.9, r
    assert r["detector_pixels_vs_naive"] < 0.9, r  # it looked at less than the naive one


def test_tripwire_counts_cars_both_ways(detector: Detector) -> None:
    """A line down the middle of the road: cars cross it both ways (two carriageways)."""
    engine = RuleEngine(lines=[Line("mid", (320, 0), (320, 360))])
    analyzer = CameraAnalyzer(detector)
    events = []
    for frame in VideoReader(f"file://{clip('o4n_traffic.mp4')}", fps=5.0):
        if frame.time > 12.0:
            break
        events += engine.update(analyzer.process(frame).tracks, frame.time)
    crossings = [e for e in events if e.kind == "line_cross"]
    by_dir = Counter(e.direction for e in crossings)
    assert by_dir["in"] >= 2 and by_dir["out"] >= 1, by_dir
    assert {e.class_name for e in crossings} <= {"car", "truck", "bus"}
    counts = engine.counts["mid"][0]
    assert sum(counts.values()) == len(crossings)
    assert counts["car"] >= 3


def test_zone_event_when_people_walk_in(detector: Detector) -> None:
    """A zone over the lower middle of the crowd clip: people enter it, and stay."""
    zone = Zone("gate", ((200, 250), (600, 250), (600, 450), (200, 450)), loiter_s=1.0, alert=True)
    engine = RuleEngine(zones=[zone])
    analyzer = CameraAnalyzer(detector)
    events = []
    for frame in VideoReader(f"file://{clip('o4n_people.mp4')}", fps=5.0):
        if frame.time > 4.0:
            break
        events += engine.update(analyzer.process(frame).tracks, frame.time)
    kinds = Counter(e.kind for e in events)
    assert kinds["zone_enter"] >= 2, kinds
    assert kinds["loitering"] >= 1, kinds
    enter = next(e for e in events if e.kind == "zone_enter")
    assert enter.class_name == "person" and enter.alert and enter.track_id > 0
