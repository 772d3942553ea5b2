"""Reading camera streams with PyAV (FFmpeg): RTSP, HTTP (MPEG-TS, MJPEG...) and files.

`VideoReader` opens one stream and yields `Frame`s sampled at the detection rate. It
decodes only what it must: when the stream's reference frames alone come often enough for
the detection rate, non-reference frames (most B-frames) are not decoded at all. A frame
keeps the decoder's YUV picture; luma for motion and health is a zero-copy view, and a BGR
picture is made only at the scale the detector wants and only when it is asked for.

Opening and reading have time limits (FFmpeg interrupt callback), so a camera that stops
answering raises `StreamError` instead of hanging its reader. Demuxed packets are offered
to `packet_sinks` (event clips are cut from them without re-encoding)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from safecity.vision.errors import StreamError

Gray = NDArray[np.uint8]
Image = NDArray[np.uint8]
_YUV420 = {"yuv420p", "yuvj420p"}


@dataclass
class Frame:
    """One decoded picture of a camera."""

    index: int
    #: Seconds since the start of the stream (presentation time).
    time: float
    #: Wall-clock time it was decoded (time.time()).
    wall: float
    width: int
    height: int
    _av: Any = None
    _bgr: Image | None = None
    _gray: Gray | None = None
    _scaled: dict[float, Image] = field(default_factory=dict)

    @classmethod
    def from_bgr(cls, img: Image, *, index: int = 0, time_s: float = 0.0) -> Frame:
        h, w = img.shape[:2]
        return cls(index, time_s, time.time(), w, h, _bgr=img)

    def gray(self) -> Gray:
        """Luma at full resolution (a view of the decoder's buffer when it is YUV)."""
        if self._gray is None:
            if self._av is not None and self._av.format.name in _YUV420 | {"nv12", "gray"}:
                plane = self._av.planes[0]
                buf = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
                self._gray = buf[: self.height, : self.width]
            elif self._av is not None:
                self._gray = self._av.to_ndarray(format="gray")
            else:
                assert self._bgr is not None
                self._gray = np.asarray(cv2.cvtColor(self._bgr, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        gray: Gray = self._gray
        return gray

    def bgr(self, scale: float = 1.0) -> Image:
        """The picture in BGR, resized by `scale` (made once per scale)."""
        if scale in self._scaled:
            return self._scaled[scale]
        size = (max(1, round(self.width * scale)), max(1, round(self.height * scale)))
        if (
            scale < 1.0
            and self._bgr is None
            and self._av is not None
            and self._av.format.name in _YUV420
            and size[0] % 2 == 0
            and size[1] % 2 == 0
        ):
            # Shrink the planes first, convert the small picture: half the work.
            self._scaled[scale] = self._small_bgr(size)
            return self._scaled[scale]
        if self._bgr is None:
            assert self._av is not None
            if self._av.format.name in _YUV420:
                yuv = self._av.to_ndarray(format="yuv420p")
                self._bgr = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)
            else:
                self._bgr = self._av.to_ndarray(format="bgr24")
        img = self._bgr
        if scale != 1.0:
            img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
        self._scaled[scale] = img
        return img

    def _small_bgr(self, size: tuple[int, int]) -> Image:
        """The YUV 4:2:0 picture at `size` (even sides) in BGR: each plane resized, then
        converted (the same picture as converting first, to within a grey level)."""
        tw, th = size
        n, q = tw * th, tw * th // 4
        out = np.empty(n + 2 * q, np.uint8)
        parts = ((0, n, 1), (n, n + q, 2), (n + q, n + 2 * q, 2))
        for plane, (a, b, div) in zip(self._av.planes, parts, strict=True):
            w, h = self.width // div, self.height // div
            src = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:h, :w]
            dst = out[a:b].reshape(th // div, tw // div)
            cv2.resize(src, (tw // div, th // div), dst=dst, interpolation=cv2.INTER_LINEAR)
        bgr: Image = np.asarray(
            cv2.cvtColor(out.reshape(th * 3 // 2, tw), cv2.COLOR_YUV2BGR_I420), dtype=np.uint8
        )
        return bgr

    def release(self) -> None:
        """Drop the decoder's picture (keeps what was already converted)."""
        if self._av is not None and self._gray is not None:
            self._gray = self._gray.copy()
        self._av = None


def av_open(url: str, *, open_timeout_s: float = 10.0, read_timeout_s: float = 10.0) -> Any:
    """An FFmpeg input for a camera URL (rtsp over TCP, http with timeouts, file://)."""
    options: dict[str, str] = {}
    path = url
    if url.startswith("file://"):
        path = url[len("file://") :]
    elif url.startswith(("rtsp://", "rtsps://")):
        options = {"rtsp_transport": "tcp", "timeout": str(int(read_timeout_s * 1e6))}
    elif url.startswith(("http://", "https://")):
        options = {"rw_timeout": str(int(read_timeout_s * 1e6))}
    if not url.startswith("file://"):
        # A live stream: start after one second of probing, not FFmpeg's five.
        options.update({"analyzeduration": "1000000", "probesize": "1000000"})
    try:
        return av.open(path, options=options, timeout=(open_timeout_s, read_timeout_s))
    except (av.FFmpegError, OSError) as exc:
        raise StreamError(f"cannot open {redact(url)}: {exc}") from None


def redact(url: str) -> str:
    """The URL without a password (camera URLs often carry credentials)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.split("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def copy_packets(
    url: str,
    sinks: Sequence[Callable[[Any, Any], None]],
    *,
    stopping: Callable[[], bool],
    realtime: bool = False,
    open_timeout_s: float = 10.0,
    read_timeout_s: float = 10.0,
) -> None:
    """Hand the video packets of `url` to `sinks` without decoding them, until the stream
    ends or `stopping()` (a camera's main stream kept for event clips while its sub-stream
    is analysed: demuxing costs next to nothing). `realtime` paces a file to its own
    timestamps. Raises `StreamError` when the stream cannot be opened or fails."""
    container = av_open(url, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s)
    try:
        if not container.streams.video:
            raise StreamError(f"{redact(url)} has no video stream")
        stream = container.streams.video[0]
        started = time.monotonic()
        first: float | None = None
        try:
            for packet in container.demux(stream):
                if stopping():
                    return
                if packet.size == 0:
                    continue
                if realtime and packet.pts is not None and packet.time_base is not None:
                    t = float(packet.pts * packet.time_base)
                    first = t if first is None else first
                    ahead = (t - first) - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(min(ahead, 1.0))
                for sink in sinks:
                    sink(stream, packet)
        except av.FFmpegError as exc:
            raise StreamError(f"{redact(url)}: stream failed: {exc}") from None
    finally:
        for sink in sinks:
            closing = getattr(sink, "stream_closing", None)
            if closing is not None:
                closing()
        container.close()


class VideoReader:
    """Frames of one stream at (about) `fps` per second; None = every frame.

    `realtime` paces a file to its own frame rate and `loop` replays it (simulated cameras).
    """

    def __init__(
        self,
        url: str,
        *,
        fps: float | None = 5.0,
        skip_nonref: bool = True,
        realtime: bool = False,
        loop: bool = False,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        packet_sinks: list[Callable[[Any, Any], None]] | None = None,
    ) -> None:
        self.url = url
        self.fps = fps
        self.skip_nonref = skip_nonref
        self.realtime = realtime
        self.loop = loop
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.packet_sinks = packet_sinks if packet_sinks is not None else []
        self.decoded = 0  # frames out of the decoder (for benchmarks)
        self.source_fps: float | None = None
        self.size: tuple[int, int] | None = None
        self._closed = False
        self._container: Any = None
        #: Whether the stream's reference frames alone come often enough for the detection
        #: rate (None: not known yet; decided from the first two seconds).
        self._ref_only: bool | None = None

    def close(self) -> None:
        self._closed = True

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        offset = 0.0
        while not self._closed:
            last_t = 0.0
            for frame in self._read_once(index, offset):
                index = frame.index + 1
                last_t = frame.time
                yield frame
            if not self.loop or self._closed:
                return
            offset = last_t + (1.0 / (self.source_fps or 25.0))

    def _read_once(self, start_index: int, offset: float) -> Iterator[Frame]:
        container = av_open(
            self.url, open_timeout_s=self.open_timeout_s, read_timeout_s=self.read_timeout_s
        )
        self._container = container
        try:
            if not container.streams.video:
                raise StreamError(f"{redact(self.url)} has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            ctx.thread_count = 1
            rate = stream.average_rate or stream.guessed_rate
            self.source_fps = float(rate) if rate else None
            self.size = (ctx.width, ctx.height)
            tb = stream.time_base or Fraction(1, 90000)
            step = 1.0 / self.fps if self.fps else 0.0
            next_t: float | None = None
            first_pts: int | None = None
            ref_frames = 0
            probe_until: float | None = None
            started = time.monotonic()
            index = start_index
            rebase = 0.0
            last_t = 0.0
            fps = self.fps or 0.0
            skipping = bool(self.skip_nonref and fps)
            if skipping and self._ref_only:
                ctx.skip_frame = "NONREF"
            try:
                for packet in container.demux(stream):
                    if self._closed:
                        return
                    for sink in self.packet_sinks:
                        sink(stream, packet)
                    if skipping and not self._ref_only and first_pts is not None:
                        # A picture before the next sampled time is not analysed: unless
                        # another refers to it, it is not decoded either. (Pictures come
                        # out in presentation order, so `next_t` is at most a picture
                        # late: a late one only decodes a picture more, never fewer.)
                        skip = False
                        if packet.pts is not None and next_t is not None:
                            pt = float((packet.pts - first_pts) * tb) - rebase
                            skip = last_t - 1.0 <= pt and pt + 1e-6 < next_t
                        want = "NONREF" if skip else "DEFAULT"
                        if ctx.skip_frame != want:
                            ctx.skip_frame = want
                    for vf in packet.decode():
                        self.decoded += 1
                        pts = vf.pts if vf.pts is not None else vf.dts
                        if pts is None:
                            fps_ = self.source_fps or 25.0
                            pts = (first_pts or 0) + int(self.decoded / fps_ / tb)
                        if first_pts is None:
                            first_pts = pts
                        t = float((pts - first_pts) * tb) - rebase
                        if t < last_t - 1.0 or t > last_t + 30.0:
                            # Timestamps jumped (a looping source, a camera restarting its
                            # clock): continue the timeline from the last frame.
                            rebase += t - last_t - 1.0 / (self.source_fps or 25.0)
                            t = last_t + 1.0 / (self.source_fps or 25.0)
                        last_t = t
                        if skipping and self._ref_only is None:
                            # Decide once, from the first two seconds, whether reference
                            # frames alone come often enough for the detection rate (then
                            # no non-reference frame is decoded, sampled or not).
                            if probe_until is None:
                                probe_until = t + 2.0
                            if vf.pict_type != av.video.frame.PictureType.B:
                                ref_frames += 1
                            if t >= probe_until:
                                self._ref_only = ref_frames / max(t, 1e-3) >= 1.2 * fps
                                if self._ref_only:
                                    ctx.skip_frame = "NONREF"
                        if self.realtime:
                            ahead = t - (time.monotonic() - started)
                            if ahead > 0:
                                time.sleep(ahead)
                        if next_t is not None and t + 1e-6 < next_t:
                            continue
                        next_t = (next_t if next_t is not None else t) + step
                        if next_t < t:  # fell behind (a gap in the stream): re-anchor
                            next_t = t + step
                        yield Frame(index, offset + t, time.time(), vf.width, vf.height, _av=vf)
                        index += 1
            except av.FFmpegError as exc:
                raise StreamError(f"{redact(self.url)}: stream failed: {exc}") from None
        finally:
            for sink in self.packet_sinks:
                closing = getattr(sink, "stream_closing", None)
                if closing is not None:
                    closing()
            self._container = None
            container.close()
