"""Streams: reconnecting after a live HTTP stream drops and comes back, one dead camera not
holding up the others, clips cut from the stream's packets without re-encoding (and
appearing only whole), one camera's failing frames not stopping the others' analysis, and
line counts surviving a camera's change of resolution."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from vision_helpers import StubDetector, encode_clip, moving_square_frames, shared_dir

from safecity.vision.decode import Frame, VideoReader
from safecity.vision.detections import Detections
from safecity.vision.rules import Line
from safecity.vision.runner import CameraConfig, CameraSource, MultiCameraRunner
from safecity.vision.snapshot import ClipRecorder
from safecity.vision.streamserver import StreamServer


def _source(tmp_path: Path) -> Path:
    real = shared_dir() / "media" / "video" / "bgs_highway_cctv_320x240.avi"
    if real.is_file():
        return real
    return encode_clip(tmp_path / "moving.mp4", moving_square_frames(30))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(cond, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_frames_not_sampled_are_not_decoded_unless_referred_to(tmp_path: Path) -> None:
    """A 10 fps clip with B-frames read at 5 fps: the B-frames between sampled pictures are
    skipped, and the sampled pictures are exactly those (and the same pixels) a reader that
    decodes everything gives."""
    path = encode_clip(tmp_path / "b.mp4", moving_square_frames(60), fps=10, bframes=2)
    with av.open(str(path)) as c:
        types = [av.video.frame.PictureType(f.pict_type).name for f in c.decode(video=0)]
    assert types.count("B") >= 30, types  # the clip does have B-frames to skip
    seen = {}
    decoded = {}
    for skip in (False, True):
        reader = VideoReader(f"file://{path}", fps=5, skip_nonref=skip)
        seen[skip] = [(round(f.time, 3), f.gray().copy()) for f in reader]
        decoded[skip] = reader.decoded
    assert decoded[False] == 60
    assert decoded[True] <= 45, decoded
    assert [t for t, _ in seen[True]] == [t for t, _ in seen[False]]
    assert len(seen[True]) == 30
    for (_, a), (_, b) in zip(seen[True], seen[False], strict=True):
        assert np.array_equal(a, b)


def test_a_viewer_joining_an_mpeg4_stream_late_can_decode_it(tmp_path: Path) -> None:
    """MPEG-4 Part 2 in AVI (XviD CCTV recordings) keeps its decoder headers in the file's
    header: served live, a client joining at a later keyframe must still get them (the
    simulated camera copies them in front of every keyframe, as cameras do)."""
    path = tmp_path / "xvid.avi"
    frames = moving_square_frames(60)
    with av.open(str(path), "w", format="avi") as out:
        st = out.add_stream("mpeg4", rate=10)
        st.width, st.height, st.pix_fmt = 320, 240, "yuv420p"
        st.options = {"g": "10"}
        # The headers in the file's header only, as XviD recordings have them.
        st.codec_context.flags |= av.codec.context.Flags.global_header
        for img in frames:
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    server = StreamServer({"x.ts": path}).start()
    try:
        time.sleep(2.2)  # past the first keyframes: the client joins mid-stream
        reader = VideoReader(server.url("x.ts"), fps=5, read_timeout_s=3.0)
        got = []
        for frame in reader:
            got.append(frame.gray().mean())
            if len(got) == 8:
                break
        reader.close()
    finally:
        server.stop()
    assert len(got) == 8 and all(g > 0 for g in got)


def test_reconnects_after_the_stream_drops(tmp_path: Path) -> None:
    port = _free_port()
    files = {"cam.ts": _source(tmp_path)}
    server = StreamServer(files, port=port, max_seconds=4).start()
    statuses: list[str] = []
    runner = MultiCameraRunner(
        StubDetector(),
        [
            CameraConfig("live", server.url("cam.ts"), detect_fps=5),
            # A camera that never answers must not hold up the live one.
            CameraConfig("dead", f"http://127.0.0.1:{_free_port()}/none.ts", detect_fps=5),
        ],
        on_event=lambda ev: None,
        on_status=lambda key, change, fps, last: statuses.append(f"{key}:{change.status}"),
        backoff_s=(0.2, 1.0),
        read_timeout_s=1.5,
    )
    runner.start()
    live = runner.cameras["live"]
    try:
        assert _wait(lambda: live.source.frames >= 10, 10), "no frames from the live stream"
        assert "live:online" in statuses
        assert _wait(lambda: "dead:offline" in statuses, 5)

        streams = server.streams
        server.stop()  # the camera (or the network) goes away
        assert _wait(lambda: "live:offline" in statuses, 10), statuses
        before = live.source.frames

        server = StreamServer({}, port=port, streams=streams).start()  # and comes back
        assert _wait(lambda: live.source.frames >= before + 10, 15), "did not reconnect"
        assert statuses.count("live:online") >= 2, statuses
        assert live.source.connects >= 2
        assert live.health.status == "online" and live.health.fps > 2
    finally:
        runner.stop()
        server.stop()


def test_clips_come_from_the_main_stream_when_a_sub_stream_is_analysed(tmp_path: Path) -> None:
    """A camera analysed on its 160x120 sub-stream keeps event clips from its 320x240 main
    stream (packets copied, live over HTTP); when the main stream goes away the analysis
    goes on and the camera is not reported offline, and when it returns clips resume."""
    main = encode_clip(tmp_path / "main.mp4", moving_square_frames(60, 320, 240), fps=10)
    subs = encode_clip(tmp_path / "sub.mp4", moving_square_frames(60, 160, 120), fps=10)
    port = _free_port()
    server = StreamServer({"main.ts": main}, port=port).start()
    offline: list[str] = []
    source = CameraSource(
        CameraConfig("cam", f"file://{subs}", simulate=True, record_url=server.url("main.ts")),
        on_offline=lambda key, reason: offline.append(reason),
        backoff_s=(0.2, 0.5),
        read_timeout_s=1.5,
    )
    clips = source.clips
    assert clips is not None
    source.start()
    try:
        assert _wait(lambda: source.frames >= 5 and clips.buffered > 0, 10), "no main packets"
        clips.pre_s = clips.post_s = 0.5
        source.request_clip(tmp_path / "clips" / "one")
        assert _wait(lambda: len(clips.written) == 1, 10), "no clip from the main stream"
        with av.open(str(clips.written[0])) as c:
            st = c.streams.video[0]
            assert (st.codec_context.width, st.codec_context.height) == (320, 240)
            assert st.codec_context.name == "h264"  # copied, not re-encoded
            assert sum(1 for _ in c.decode(st)) >= 5

        streams = server.streams
        server.stop()  # the main stream goes away; the sub-stream still plays
        before = source.frames
        assert _wait(lambda: source.frames >= before + 10, 10), "analysis stopped"
        assert offline == [], offline
        # Meanwhile an event still gets a clip: the analysed stream's own.
        assert _wait(lambda: clips.buffered == 0, 5)
        fallback = source.fallback_clips
        assert fallback is not None
        fallback.pre_s = fallback.post_s = 0.5
        source.request_clip(tmp_path / "clips" / "during")
        assert _wait(lambda: len(fallback.written) == 1, 10), "no clip while the main was down"
        with av.open(str(fallback.written[0])) as c:
            assert c.streams.video[0].codec_context.width == 160
        server = StreamServer({}, port=port, streams=streams).start()
        assert _wait(lambda: clips.buffered > 0, 15), "the main stream was not read again"
        source.request_clip(tmp_path / "clips" / "two")
        assert _wait(lambda: len(clips.written) == 2, 15), "clips did not resume"
        with av.open(str(clips.written[1])) as c:
            assert c.streams.video[0].codec_context.width == 320
    finally:
        source.stop()
        source.join(5)
        server.stop()
    assert not source.is_alive()


def test_clip_is_cut_from_stream_packets(tmp_path: Path) -> None:
    src = encode_clip(tmp_path / "src.mp4", moving_square_frames(60), fps=10)
    rec = ClipRecorder(pre_s=1.0, post_s=1.0)
    reader = VideoReader(f"file://{src}", fps=None, packet_sinks=[rec])
    for frame in reader:
        if frame.index == 30:
            rec.request(tmp_path / "clips" / "event")
    rec.flush()
    assert len(rec.written) == 1
    out = rec.written[0]
    with av.open(str(out)) as c:
        st = c.streams.video[0]
        assert st.codec_context.name == "h264"  # copied, not re-encoded
        n = sum(1 for _ in c.decode(st))
    assert 15 <= n <= 35, n  # from the keyframe before t-1s to t+1s


def test_a_clip_appears_under_its_name_only_once_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clip is muxed under a hidden name and renamed into place when complete (the API
    serves whatever is under its name); where MP4 does not take the packets, the MPEG-TS
    one is written the same way and no partial file is left."""
    src = encode_clip(tmp_path / "src.mp4", moving_square_frames(60), fps=10)
    folder = tmp_path / "clips"
    seen_while_writing: list[list[str]] = []
    real_mux = ClipRecorder._mux

    def mux(self: ClipRecorder, path: Path, fmt: str, packets: list[Any]) -> None:
        real_mux(self, path, fmt, packets)
        seen_while_writing.append(sorted(p.name for p in folder.iterdir()))
        if fmt == "mp4" and path.name.startswith(".second"):
            raise ValueError("this codec does not fit MP4")

    monkeypatch.setattr(ClipRecorder, "_mux", mux)
    rec = ClipRecorder(pre_s=1.0, post_s=1.0)
    for frame in VideoReader(f"file://{src}", fps=None, packet_sinks=[rec]):
        if frame.index == 20:
            rec.request(folder / "first.mp4")
        if frame.index == 40:
            rec.request(folder / "second.mp4")
    rec.flush()
    assert seen_while_writing == [
        [".first.mp4.part"],
        [".second.mp4.part", "first.mp4"],
        [".second.ts.part", "first.mp4"],
    ]
    assert list(rec.written) == [folder / "first.mp4", folder / "second.ts"]
    assert sorted(p.name for p in folder.iterdir()) == ["first.mp4", "second.ts"]
    with av.open(str(folder / "second.ts")) as c:
        assert sum(1 for _ in c.decode(video=0)) >= 10


def _frame(width: int, height: int) -> Frame:
    return Frame.from_bgr(np.zeros((height, width, 3), np.uint8))


def test_counts_not_stored_survive_a_change_of_picture_size() -> None:
    """A camera reconnects at another resolution (its lines are scaled anew, in a new rules
    engine) while the store of its counts fails: the counts go on with the new engine and
    are stored at the next try."""
    stored: list[dict[str, int]] = []
    tries = []

    def on_counts(key: str, line: str, minute: int, counts: dict[str, int], s: float) -> None:
        tries.append(counts)
        if len(tries) == 1:
            raise RuntimeError("database is locked")
        stored.append(counts)

    config = CameraConfig(
        "cam", "file:///absent.mp4", lines=[Line("mid", (0.5, 0.0), (0.5, 1.0))], normalized=True
    )
    runner = MultiCameraRunner(
        StubDetector(),
        [config],
        on_event=lambda ev: None,
        on_status=lambda *a: None,
        on_counts=on_counts,
        counts_every_s=0.0,
    )
    cam = runner.cameras["cam"]
    cam.source._frame = _frame(200, 100)  # (as its reader thread leaves it)
    assert runner.step()
    t0 = time.time()
    for i in range(8):  # a car across the line, x=100 at 200 px wide
        x = 60 + 10 * i
        box = np.array([[x - 10, 60, x + 10, 80]], np.float32)
        cam.rules.update(Detections(box, [0.8], [2], [1]), t0 + i * 0.2)
    cam.source._frame = _frame(240, 120)
    assert runner.step()  # a new engine; its first store fails
    cam.source._frame = _frame(240, 120)
    assert runner.step()
    assert stored == [{"car": 1}] and len(tries) == 2
    assert runner.stop() == []


def test_a_camera_whose_frames_fail_does_not_stop_the_others(tmp_path: Path) -> None:
    """Something in one camera's frame breaks its analysis (here its health check): it is
    logged and counted for that camera, and the other camera is analysed on."""
    clip = encode_clip(tmp_path / "cam.mp4", moving_square_frames(30), fps=10)
    live: list[str] = []
    runner = MultiCameraRunner(
        StubDetector(),
        [
            CameraConfig("odd", f"file://{clip}", simulate=True, detect_fps=10),
            CameraConfig("fine", f"file://{clip}", simulate=True, detect_fps=10),
        ],
        on_event=lambda ev: None,
        on_status=lambda *a: None,
        on_live=lambda key, jpeg: live.append(key),
        live_every_s=0.0,
    )

    def odd_frame(*args: Any, **kwargs: Any) -> None:
        raise ValueError("odd frame")

    runner.cameras["odd"].health.frame = odd_frame  # type: ignore[method-assign]
    runner.start()
    try:
        assert _wait(lambda: live.count("fine") >= 20, 15), (live.count("fine"), runner.errors)
        assert runner._thread is not None and runner._thread.is_alive()
    finally:
        runner.stop()
    assert runner.errors >= 5 and "odd" not in live
