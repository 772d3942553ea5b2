"""Simulated cameras: a small HTTP server that plays video files as endless live MPEG-TS
streams (what many encoders and NVRs serve over HTTP), paced at their own frame rate.

Each file is remuxed to MPEG-TS once, in memory (packets copied, no re-encoding); every
client then gets the stream from its current position, as from a live camera. For tests,
demos and soak runs: it listens on the loopback address only."""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
from av.bitstream import BitStreamFilterContext

TS_PACKET = 188
_HEADERS_IN_EXTRADATA = {"mpeg4", "mpeg1video", "mpeg2video"}


@dataclass
class _Stream:
    data: bytes
    duration: float
    #: Byte offsets where a keyframe starts (a client joins there, as a camera's viewer
    #: would wait for the next keyframe).
    keyframes: tuple[int, ...] = (0,)

    @property
    def rate(self) -> float:
        """Bytes per second of playback."""
        return len(self.data) / max(self.duration, 0.1)


def remux_to_ts(path: Path, *, max_seconds: float | None = None) -> _Stream:
    """The video stream of `path` as MPEG-TS bytes (packets copied), its duration and the
    byte offsets of its keyframes."""
    buf = io.BytesIO()
    keys: list[int] = []
    with av.open(str(path)) as src:
        ist = src.streams.video[0]
        # Read while open: PyAV >= 18.1.1 refuses a closed container's stream attributes.
        rate = float(ist.average_rate or 25)
        # A client joins at a keyframe, as a camera's viewer does: the decoder's headers
        # must come with every keyframe. The muxer sees to that for H.264/HEVC; MPEG-4 Part
        # 2 (XviD in AVI) and MPEG-1/2 keep theirs in the file's header only, so they are
        # copied in front of each keyframe (as cameras send them).
        headers = None
        if ist.codec_context.name in _HEADERS_IN_EXTRADATA and ist.codec_context.extradata:
            headers = BitStreamFilterContext("dump_extra=freq=keyframe", ist)
        with av.open(buf, "w", format="mpegts") as out:
            ost = out.add_stream_from_template(ist)
            first: int | None = None
            last_t = 0.0
            for raw in src.demux(ist):
                for pkt in headers.filter(raw) if headers is not None else [raw]:
                    if pkt.dts is None:
                        continue
                    if first is None:
                        first = pkt.dts
                    t = float((pkt.dts - first) * pkt.time_base)
                    if max_seconds is not None and t > max_seconds:
                        break
                    last_t = t
                    if pkt.is_keyframe:
                        pos = buf.tell()
                        keys.append(pos - pos % TS_PACKET)
                    pkt.stream = ost
                    out.mux(pkt)
                else:
                    continue
                break
    return _Stream(buf.getvalue(), last_t + 1.0 / rate, tuple(keys) or (0,))


class _Handler(BaseHTTPRequestHandler):
    server: StreamServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        stream = self.server.streams.get(name)
        if stream is None:
            self.send_error(404, "no such stream")
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()
        chunk = TS_PACKET * 64
        started = time.monotonic()
        # Join "live": at the last keyframe before where the stream would be now.
        now = int(self.server.clock() * stream.rate) % len(stream.data)
        pos = max((k for k in stream.keyframes if k <= now), default=0)
        sent = 0
        try:
            while not self.server.stopping.is_set():
                end = min(pos + chunk, len(stream.data))
                self.wfile.write(stream.data[pos:end])
                sent += end - pos
                pos = end % len(stream.data)
                ahead = sent / stream.rate - (time.monotonic() - started)
                if ahead > 0.2 and self.server.stopping.wait(ahead - 0.1):
                    break
        except (BrokenPipeError, ConnectionResetError, OSError):
            return


class StreamServer(ThreadingHTTPServer):
    """`http://127.0.0.1:<port>/<name>` plays `files[name]` in a loop, live."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        files: dict[str, Path],
        *,
        port: int = 0,
        max_seconds: float | None = None,
        streams: dict[str, _Stream] | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.stopping = threading.Event()
        self._t0 = time.monotonic()
        if streams is None:
            streams = {}
            for name, path in files.items():
                streams[name] = remux_to_ts(path, max_seconds=max_seconds)
        self.streams = streams
        self._thread: threading.Thread | None = None

    def clock(self) -> float:
        return time.monotonic() - self._t0

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> StreamServer:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="stream-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every client (a camera or network failure)."""
        self.stopping.set()
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)
