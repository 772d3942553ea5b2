"""The CAD bench's own HTTP/1.1 client (`sim.bench_cad._Client`), against a scripted
server on a real socket: answers with a length or in chunks, heads split across packets,
a kept-alive connection the server closed while idle (retried once, afresh), and a server
that hangs up mid-answer (a failure, status 0, never a made-up answer)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from safecity.sim.bench_cad import _Client

Handler = Callable[[socket.socket, bytes], bool]  # answers one request; False: hang up


def _read_request(conn: socket.socket, buf: bytes) -> tuple[bytes, bytes] | None:
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += conn.recv(65536)
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


@contextmanager
def _server(handler: Handler) -> Iterator[tuple[str, list[bytes]]]:
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while (got := _read_request(conn, buf)) is not None:
                    request, buf = got
                    seen.append(request)
                    if not handler(conn, request):
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        listener.close()


def _json_answer(status: int, body: object, *, extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    return (
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(data)}\r\n\r\n"
    ).encode() + data


def test_sends_the_body_and_headers_and_reads_a_sized_answer_split_in_pieces() -> None:
    def handler(conn: socket.socket, request: bytes) -> bool:
        answer = _json_answer(
            201, {"incident_id": 7, "echo": json.loads(request.split(b"\r\n\r\n")[1])}
        )
        for i in range(0, len(answer), 5):  # the head and body in 5-byte packets
            conn.sendall(answer[i : i + 5])
        return True

    with _server(handler) as (url, seen):
        client = _Client(url, {"X-API-Key": "k1"})
        for n in range(3):  # one kept-alive connection
            status, body = client.post("/api/v1/calls", {"n": n}, {"X-Device-Key": "d"})
            assert (status, body) == (201, {"incident_id": 7, "echo": {"n": n}})
    assert len(seen) == 3
    head = seen[0].split(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /api/v1/calls HTTP/1.1\r\n")
    assert "X-API-Key: k1" in head and "X-Device-Key: d" in head
    assert "Content-Type: application/json" in head


def test_reads_a_chunked_answer() -> None:
    def handler(conn: socket.socket, _: bytes) -> bool:
        conn.sendall(
            b"HTTP/1.1 422 X\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5\r\n{"a":\r\n4;ext=1\r\n 12}\r\n0\r\n\r\n'
        )
        return True

    with _server(handler) as (url, _):
        client = _Client(url, {})
        assert client.post("/x", {}) == (422, {"a": 12})
        assert client.post("/x", {}) == (422, {"a": 12})


def test_a_connection_closed_while_idle_is_retried_once_afresh() -> None:
    def handler(conn: socket.socket, _: bytes) -> bool:
        conn.sendall(_json_answer(202, {"ok": True}))
        return False  # the server drops the kept-alive connection after each answer

    with _server(handler) as (url, seen):
        client = _Client(url, {})
        assert client.post("/a", [1]) == (202, {"ok": True})
        assert client.post("/a", [2]) == (202, {"ok": True})  # on a new connection
    assert len(seen) == 2


@pytest.mark.parametrize(
    "answer",
    [
        b'HTTP/1.1 201 X\r\ncontent-length: 40\r\n\r\n{"cut":',  # body cut short
        b"HTTP/1.1 201 X\r\ncontent-le",  # head cut short
        b"garbage\r\n\r\n",
    ],
)
def test_a_broken_answer_is_a_failure(answer: bytes) -> None:
    def handler(conn: socket.socket, _: bytes) -> bool:
        conn.sendall(answer)
        return False

    with _server(handler) as (url, _):
        assert _Client(url, {}).post("/a", {}) == (0, None)


def test_connection_close_in_the_answer_drops_the_connection() -> None:
    def handler(conn: socket.socket, _: bytes) -> bool:
        conn.sendall(_json_answer(200, [], extra="Connection: close\r\n"))
        return False

    with _server(handler) as (url, seen):
        client = _Client(url, {})
        assert client.post("/a", {}) == (200, [])
        assert client.sock is None
        assert client.post("/a", {}) == (200, [])
    assert len(seen) == 2
