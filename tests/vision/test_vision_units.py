"""The vision library's parts on made-up inputs: tracker, rules, motion, the model store
(checksums, file:// and local HTTP downloads), the ONNX shape rewrite and snapshots."""

from __future__ import annotations

import hashlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from vision_helpers import StubDetector, encode_clip, shared_dir

from safecity.vision import modelstore
from safecity.vision.decode import Frame, VideoReader
from safecity.vision.detections import Detections, box_iou, match_recall, nms, nms_reference
from safecity.vision.errors import VisionError
from safecity.vision.motion import MotionDetector
from safecity.vision.onnx_shapes import make_dynamic, parse, serialize
from safecity.vision.pipeline import AnalyzerConfig, CameraAnalyzer
from safecity.vision.rules import Line, RuleEngine, Zone, points_in_polygon
from safecity.vision.snapshot import annotate, encode_jpeg
from safecity.vision.tracker import ByteTracker, KalmanXYAH


def _dets(boxes: list[list[float]], conf: float = 0.9, cls: int = 2) -> Detections:
    n = len(boxes)
    return Detections(np.array(boxes, np.float32).reshape(n, 4), np.full(n, conf), np.full(n, cls))


def test_iou_nms_and_recall() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    assert np.allclose(box_iou(a, b), [[1.0, 1 / 3, 0.0]], atol=1e-4)
    keep = nms(b, np.array([0.9, 0.8, 0.7], np.float32), 0.3)
    assert keep.tolist() == [0, 2]
    ref = _dets([[0, 0, 10, 10], [20, 20, 30, 30]])
    assert match_recall(ref, _dets([[1, 0, 11, 10]])) == (1, 2)
    assert match_recall(ref, _dets([[1, 0, 11, 10]], cls=7), same_class=True) == (0, 2)


def test_fast_nms_keeps_what_the_reference_keeps() -> None:
    """OpenCV's NMS (what the detector uses) against the numpy definition, ties and
    zero-sized boxes included."""
    rng = np.random.default_rng(3)
    for trial in range(300):
        n = int(rng.integers(0, 200))
        xy = rng.uniform(-20, 400, (n, 2))
        wh = rng.uniform(0, 80, (n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        scores = rng.uniform(0.01, 1, n).astype(np.float32)
        if trial % 3 == 0:
            scores = np.round(scores, 1) + np.float32(0.1)  # ties
        for thr in (0.45, 0.6):
            assert nms(boxes, scores, thr).tolist() == nms_reference(boxes, scores, thr).tolist()
    b = np.array([[0, 0, 10, 10], [1, 0, 11, 10]], np.float32)
    assert nms(b, np.array([0.0, 0.5], np.float32), 0.5).tolist() == [1]


def test_batched_kalman_steps_match_one_track_at_a_time() -> None:
    kf = KalmanXYAH()
    rng = np.random.default_rng(5)
    means, covs = [], []
    for _ in range(12):
        z = np.array([rng.uniform(0, 300), rng.uniform(0, 300), rng.uniform(0.3, 3), 40.0])
        m, c = kf.initiate(z)
        m, c = kf.update(*kf.predict(m, c), z + rng.normal(0, 2, 4))
        means.append(m)
        covs.append(c)
    pm, pc = kf.predict_many(np.array(means), np.array(covs))
    for i, (m, c) in enumerate(zip(means, covs, strict=True)):
        m1, c1 = kf.predict(m, c)
        assert np.allclose(pm[i], m1) and np.allclose(pc[i], c1)
    zs = pm[:, :4] + rng.normal(0, 3, (12, 4))
    um, uc = kf.update_many(pm, pc, zs)
    for i in range(12):
        m1, c1 = kf.update(pm[i], pc[i], zs[i])
        assert np.allclose(um[i], m1) and np.allclose(uc[i], c1)


def test_small_detector_picture_matches_convert_then_resize(tmp_path: Path) -> None:
    """The detector's picture made from shrunk YUV planes is the one made by converting the
    whole frame first and shrinking it, to within codec-level differences."""
    import cv2

    yy, xx = np.mgrid[0:240, 0:320]
    img = np.stack([xx * 255 // 320, yy * 255 // 240, (xx + yy) * 255 // 560], axis=2)
    img = img.astype(np.uint8)
    img[80:160, 100:200] = (20, 20, 230)
    path = encode_clip(tmp_path / "c.mp4", [img] * 3)
    for frame in VideoReader(f"file://{path}", fps=None):
        small = frame.bgr(0.5)
        ref = cv2.resize(frame.bgr(), (160, 120), interpolation=cv2.INTER_LINEAR)
        assert small.shape == ref.shape
        assert float(np.abs(small.astype(int) - ref).mean()) < 3.0
        break


def test_tracker_keeps_ids_and_coasts_outside_looked_regions() -> None:
    tr = ByteTracker()
    ids = set()
    for i in range(6):
        out = tr.update(_dets([[10 + 10 * i, 50, 50 + 10 * i, 80], [200, 50, 240, 80]]))
        ids |= set(out.tracker_id.tolist())
    assert len(ids) == 2 and len(out) == 2
    # The detector looks only at the left; the parked car on the right is not "missed".
    region = np.array([[0, 0, 150, 200]], np.float32)
    for i in range(6, 20):
        out = tr.update(_dets([[10 + 10 * i, 50, 50 + 10 * i, 80]]), region)
    assert set(out.tracker_id.tolist()) == ids
    parked = out[out.xyxy[:, 0] > 190]
    assert np.allclose(parked.xyxy, [[200, 50, 240, 80]], atol=1)
    # Looked at and gone: lost, then removed.
    for _ in range(12):
        out = tr.update(Detections.empty())
    assert len(out) == 0


def test_line_counts_with_direction_and_zone_events() -> None:
    line = Line("stop", (100, 0), (100, 200), direction="any")
    only_in = Line("entry", (100, 0), (100, 200), direction="in")
    zone = Zone("wall", ((150, 0), (300, 0), (300, 200), (150, 200)), loiter_s=2.0, alert=True)
    eng = RuleEngine([zone], [line, only_in])
    events = []
    for i in range(30):  # a car driving right along y=100: x from 20 to 310
        x = 20 + 10 * i
        t = Detections(np.array([[x - 10, 80, x + 10, 100]], np.float32), [0.8], [2], [7])
        events += eng.update(t, i * 0.2)
    kinds = [e.kind for e in events]
    assert kinds.count("line_cross") == 2  # left to right across a line drawn downwards: in
    cross = next(e for e in events if e.kind == "line_cross")
    assert cross.rule == "stop" and cross.track_id == 7 and cross.class_name == "car"
    assert cross.direction == "in"
    assert eng.counts["stop"][0]["car"] == 1 and eng.counts["entry"][0]["car"] == 1
    back = RuleEngine(lines=[Line("out_only", (100, 0), (100, 200), direction="out")])
    for i in range(30):
        x = 20 + 10 * i
        back.update(
            Detections(np.array([[x - 10, 80, x + 10, 100]], np.float32), [0.8], [2], [7]), i * 0.2
        )
    assert "out_only" not in back.counts
    assert kinds.index("zone_enter") < kinds.index("loitering") < kinds.index("zone_leave")
    enter = next(e for e in events if e.kind == "zone_enter")
    assert enter.alert and enter.rule == "wall"
    # Counts of finished minutes are handed over once.
    done = eng.take_counts(61.0)
    assert [(d[0], d[1], d[2]) for d in done] == [("stop", 0, {"car": 1}), ("entry", 0, {"car": 1})]
    assert done[0][3] == pytest.approx(50.0)  # 10 px every 0.2 s
    assert eng.take_counts(61.0) == []


def _drive_right(eng: RuleEngine, track_id: int, t0: float, cls: int = 2) -> None:
    """One vehicle across x=100, at 50 px/s, starting at `t0`."""
    for i in range(8):
        x = 60 + 10 * i
        box = np.array([[x - 10, 80, x + 10, 100]], np.float32)
        eng.update(Detections(box, [0.8], [cls], [track_id]), t0 + i * 0.2)


def test_running_minute_counts_are_handed_over_in_parts_and_never_twice() -> None:
    """A live chart stores the running minute in parts; the parts add up to the minute,
    and counts that could not be stored are kept for the next take."""
    eng = RuleEngine(lines=[Line("stop", (100, 0), (100, 200))])
    assert eng.take_counts(5.0) == []  # nothing counted yet
    _drive_right(eng, 1, 10.0)
    assert eng.take_counts(15.0) == []  # the minute runs on: not without current_too
    first = eng.take_counts(15.0, current_too=True)
    assert [(d[0], d[1], d[2]) for d in first] == [("stop", 0, {"car": 1})]
    assert eng.take_counts(16.0, current_too=True) == []  # handed over once
    _drive_right(eng, 2, 20.0)
    _drive_right(eng, 3, 30.0, cls=3)
    second = eng.take_counts(35.0, current_too=True)
    assert [(d[0], d[1], d[2]) for d in second] == [("stop", 0, {"car": 1, "motorcycle": 1})]
    # The store failed: given back, and handed over with the rest of the minute.
    eng.give_back_counts(*second[0])
    _drive_right(eng, 4, 40.0)
    # The minute's whole tally (for the congestion check) is not split by the takes.
    assert eng.counts["stop"][0] == {"car": 3, "motorcycle": 1}
    last = eng.take_counts(62.0)
    assert [(d[0], d[1], d[2]) for d in last] == [("stop", 0, {"car": 2, "motorcycle": 1})]
    assert last[0][3] == pytest.approx(50.0)
    assert eng.counts == {"stop": {}}  # and dropped once the minute is stored


def test_track_gone_inside_a_zone_leaves_it() -> None:
    eng = RuleEngine([Zone("z", ((0, 0), (100, 0), (100, 100), (0, 100)))], gone_after_s=1.0)
    t = Detections(np.array([[10, 10, 30, 50]], np.float32), [0.9], [0], [3])
    assert [e.kind for e in eng.update(t, 0.0)] == ["zone_enter"]
    assert eng.update(Detections.empty(), 0.5) == []
    leave = eng.update(Detections.empty(), 1.5)
    assert [e.kind for e in leave] == ["zone_leave"] and leave[0].extra["lost"]
    # It leaves as what it was last seen as (the event review shows its class).
    assert (leave[0].class_name, leave[0].confidence) == ("person", pytest.approx(0.9))
    assert leave[0].box == (10.0, 10.0, 30.0, 50.0) and leave[0].track_id == 3


def test_congestion_alert_when_traffic_slows() -> None:
    eng = RuleEngine(lines=[Line("l", (100, 0), (100, 400))], congestion_min_count=5)
    tid = 0

    def minute(m: int, speed: float) -> list[str]:
        nonlocal tid
        kinds = []
        for k in range(8):  # 8 cars a minute
            tid += 1
            t0 = m * 60 + k * 6
            for step in range(3):
                x = 100 - speed + step * speed
                t = Detections(
                    np.array([[x - 5, 10 * k, x + 5, 10 * k + 10]], np.float32), [0.9], [2], [tid]
                )
                kinds += [e.kind for e in eng.update(t, t0 + step)]
            eng.take_counts(t0 + 2, current_too=True)  # stored in parts, as a worker does
        return kinds

    for m in range(3):
        assert "congestion" not in minute(m, 40.0)
    minute(3, 5.0)  # a jam: the same count at an eighth of the speed
    assert "congestion" in minute(4, 5.0)


def test_points_in_polygon() -> None:
    pts = np.array([[5, 5], [15, 5], [5, 15]], np.float32)
    assert points_in_polygon(pts, [(0, 0), (10, 0), (10, 10), (0, 10)]).tolist() == [
        True,
        False,
        False,
    ]


def test_motion_boxes_follow_a_moving_square() -> None:
    m = MotionDetector()
    rng = np.random.default_rng(0)
    bg = rng.integers(90, 110, (90, 160), dtype=np.uint8)
    m(bg)
    img = bg.copy()
    img[40:60, 100:120] = 250
    res = m(img)
    assert len(res.boxes) == 1 and not res.global_change
    x0, y0, x1, y1 = res.boxes[0]
    assert 95 <= x0 <= 100 and 115 <= x1 <= 125 and 35 <= y0 <= 40 and 60 <= y1 <= 65
    res = m(255 - bg)  # everything changed at once
    assert res.global_change


def test_motion_absorbs_a_ghost_the_detector_found_empty() -> None:
    """Something stands still a while, then goes: the running average keeps its ghost as
    motion for seconds, unless the ghost is taken into the background (`absorb`)."""
    rng = np.random.default_rng(0)
    bg = rng.integers(90, 110, (90, 160), dtype=np.uint8)
    there = bg.copy()
    there[30:60, 40:60] = 250
    ghosts = {}
    for absorb in (False, True):
        m = MotionDetector()
        m(bg)
        for _ in range(8):
            m(there)
        gone = m(bg)
        assert len(gone.boxes) == 1, "the ghost is motion at first"
        if absorb:
            m.absorb(gone.boxes)
        frames = [m(bg) for _ in range(4)]
        ghosts[absorb] = [int(np.count_nonzero(f.mask)) for f in frames]
    assert all(n > 0 for n in ghosts[False]), ghosts
    assert ghosts[True] == [0, 0, 0, 0], ghosts
    # Absorbing one place leaves motion elsewhere as it was.
    m = MotionDetector()
    m(bg)
    two = bg.copy()
    two[10:20, 10:20] = 250
    two[60:80, 120:140] = 250
    res = m(two)
    assert len(res.boxes) == 2
    m.absorb(res.boxes[:1])
    assert len(m(two).boxes) == 1


def test_analyzer_stops_asking_the_detector_about_an_empty_ghost(
    stub_detector: StubDetector,
) -> None:
    """A still shape no detector recognises appears and later goes away: with empty motion
    absorbed, the detector is asked once on each change; without, every frame the running
    average still shows it."""
    rng = np.random.default_rng(2)
    bg = rng.integers(90, 110, (240, 320, 3), dtype=np.uint8)
    shape = bg.copy()
    shape[80:160, 120:180] = 240
    scene = [bg] * 3 + [shape] * 10 + [bg] * 10
    calls = {}
    for absorb in (False, True):
        analyzer = CameraAnalyzer(
            stub_detector, AnalyzerConfig(absorb_empty=absorb, full_refresh_s=1000)
        )
        n = 0
        for i, img in enumerate(scene):
            res = analyzer.process(Frame.from_bgr(img, index=i, time_s=i * 0.2))
            n += bool(res.detector_pixels) and i > 0
        calls[absorb] = n
    assert calls[True] == 2, calls  # the shape appearing, the shape gone
    assert calls[False] >= 10, calls


def test_protobuf_round_trip() -> None:
    msg = serialize([(1, 0, 300), (2, 2, b"abc"), (3, 5, b"\x00\x00\x80?"), (4, 0, -1)])
    fields = parse(msg)
    assert fields[:3] == [(1, 0, 300), (2, 2, b"abc"), (3, 5, b"\x00\x00\x80?")]
    assert fields[3] == (4, 0, (1 << 64) - 1)
    assert serialize(fields) == msg


def test_model_store_refuses_unknown_files_and_explains(tmp_path: Path) -> None:
    with pytest.raises(VisionError, match="safecity models fetch"):
        modelstore.resolve(tmp_path)
    (tmp_path / "yolox_nano.onnx").write_bytes(b"not a model")
    with pytest.raises(VisionError, match="not a known yolox_nano file"):
        modelstore.resolve(tmp_path)
    # Your own export, listed in SHA256SUMS, is accepted.
    digest = hashlib.sha256(b"not a model").hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  yolox_nano.onnx\n")
    assert modelstore.resolve(tmp_path) == tmp_path / "yolox_nano.onnx"


def test_fetch_checks_the_checksum_and_keeps_nothing_bad(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"tampered download")
    dest = tmp_path / "models"
    with pytest.raises(VisionError, match="checksum mismatch"):
        modelstore.fetch(dest, urls={"yolox_nano": (f"file://{bad}",)})
    assert not any(dest.iterdir()), "a bad download must leave nothing behind"
    with pytest.raises(VisionError, match="only https"):
        modelstore.fetch(dest, urls={"yolox_nano": ("ftp://example.invalid/x",)})


def test_fetch_from_a_local_http_mirror(tmp_path: Path) -> None:
    model = shared_dir() / "models" / "yolox_nano.onnx"
    if not model.is_file():
        pytest.skip("needs the shared YOLOX-Nano model (../shared or SAFECITY_SHARED)")
    handler = partial(SimpleHTTPRequestHandler, directory=str(model.parent))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/yolox_nano.onnx"
        done = modelstore.fetch(tmp_path, urls={"yolox_nano": ("http://127.0.0.1:9/x", url)})
        assert done[0][2].startswith(f"downloaded from {url}")
        assert modelstore.resolve(tmp_path) == tmp_path / "yolox_nano.onnx"
        again = modelstore.fetch(tmp_path, urls={"yolox_nano": (url,)})
        assert again[0][2] == "already present, checksum ok"
    finally:
        srv.shutdown()
        srv.server_close()


def test_free_size_rewrite_keeps_the_model_loadable() -> None:
    model = shared_dir() / "models" / "yolox_nano.onnx"
    if not model.is_file():
        pytest.skip("needs the shared YOLOX-Nano model (../shared or SAFECITY_SHARED)")
    import onnxruntime as ort

    sess = ort.InferenceSession(
        make_dynamic(model.read_bytes()), providers=["CPUExecutionProvider"]
    )
    x = np.full((2, 3, 96, 160), 114, np.float32)
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert out.shape == (2, (12 * 20 + 6 * 10 + 3 * 5), 85)


def test_snapshot_is_a_jpeg_with_boxes() -> None:
    img = np.zeros((120, 160, 3), np.uint8)
    d = Detections(np.array([[10, 10, 60, 60]], np.float32), [0.9], [0], [4])
    out = annotate(img, d, highlight=4, lines=[((0, 100), (160, 100))])
    assert out[10, 30].tolist() == [0, 0, 255]  # the highlighted box is red
    jpg = encode_jpeg(out)
    assert jpg[:3] == b"\xff\xd8\xff"
