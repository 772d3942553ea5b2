"""The event bus shared by the server processes of one machine, through an SQLite file.

With `serve --workers N` several processes take in calls and serve the live streams; an
event published in one must reach the subscribers of all of them (a console client is
connected to one process, the call it waits for arrives at another). This bus needs no
other service, like the rest of the embedded default: each process keeps an `InProcessBus`
for its own subscribers (consumers, acknowledgements, redelivery are all local), every
publish is also appended to one `events` table in a WAL-mode SQLite file, and a thread in
each process reads what the other processes appended since it last looked (a few
milliseconds) into its local bus.

Within a process, events keep their publish order; events of different processes arrive
in the order they were appended to the file. Like the in-process bus, and unlike
JetStream, the stream lives only as long as the processes: a consumer sees the events
published after its process started. The file keeps the last `keep_events` events."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from safecity.core.bus import Event, EventBus, InProcessBus, Subscription, validate_subject

log = logging.getLogger(__name__)

#: After this long without events from the other processes, the file is read less often.
IDLE_AFTER_S = 1.0
IDLE_POLL_S = 0.02
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    subject TEXT NOT NULL,
    data TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    at REAL NOT NULL
)
"""


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit (isolation_level=None): each publish is one explicit short transaction.
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # Events need not outlive a power cut (the data they announce is in the database,
    # committed before they are published): no fsync on the bus file.
    db.execute("PRAGMA synchronous=OFF")
    return db


class SharedFileBus(EventBus):
    """Events shared by processes through `path`; see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        poll_s: float = 0.002,
        keep_events: int = 200_000,
        max_events: int = 200_000,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = InProcessBus(max_events=max_events)
        self._origin = uuid.uuid4().hex
        self._poll_s = poll_s
        self._keep = keep_events
        self._writer = _connect(path)
        self._writer.execute(_SCHEMA)
        self._writer.execute("CREATE UNIQUE INDEX IF NOT EXISTS events_msg_id ON events (msg_id)")
        self._write_lock = threading.Lock()
        # Appends of all processes queue on a lock file: waiting in SQLite's busy handler
        # sleeps milliseconds at a time (see core/db.py, _SharedWriterConnection).
        self._lock_fd = os.open(str(path) + ".writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._reader = _connect(path)
        row = self._reader.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        self._cursor = int(row[0])
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._follow, name="bus-follower", daemon=True)
        self._thread.start()

    # -- publishing -------------------------------------------------------------------
    def publish(self, subject: str, data: dict[str, Any], *, msg_id: str | None = None) -> Event:
        validate_subject(subject)
        if msg_id is None:
            ev = self._local.publish(subject, data)
            self._append([ev])
            return ev
        # De-duplication must hold across processes: the file decides (a unique index on
        # the id), and only a first publish reaches the subscribers here.
        ev = Event(subject, data, 0, msg_id, datetime.now(UTC))
        if not self._append([ev], unless_seen=True):
            return ev
        return self._local.publish(subject, data, msg_id=msg_id)

    def publish_many(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[Event]:
        out = self._local.publish_many(events)
        self._append(out)
        return out

    def _append(self, events: list[Event], *, unless_seen: bool = False) -> bool:
        """Append to the file; with `unless_seen`, one event whose id may be there already:
        returns whether it was new."""
        if not events:
            return True
        rows = [
            (
                self._origin,
                ev.subject,
                # orjson: every event of every process is encoded here and decoded by
                # each other process that reads its subject; the standard library's
                # json took 5% of a busy API worker's time.
                # Datetimes pass to `str` like the standard library's `default=str` did.
                orjson.dumps(ev.data, default=str, option=_ORJSON_OPTIONS),
                ev.id,
                ev.time.timestamp(),
            )
            for ev in events
        ]
        with self._write_lock:
            if self._closed:
                raise RuntimeError("event bus is closed")
            with self._file_lock():
                self._writer.execute("BEGIN IMMEDIATE")
                try:
                    cur = self._writer.executemany(
                        f"INSERT {'OR IGNORE ' if unless_seen else ''}INTO events "
                        "(origin, subject, data, msg_id, at) VALUES (?,?,?,?,?)",
                        rows,
                    )
                    self._writer.execute("COMMIT")
                except BaseException:
                    self._writer.execute("ROLLBACK")
                    raise
        return cur.rowcount > 0

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- following the other processes -------------------------------------------------
    def _follow(self) -> None:
        next_trim = time.monotonic() + 10.0
        last_seen = time.monotonic()
        while not self._stop.is_set():
            try:
                got = self._read_new()
                if time.monotonic() >= next_trim:
                    self._trim()
                    next_trim = time.monotonic() + 10.0
            except sqlite3.Error:
                if self._stop.is_set():
                    return
                log.exception("reading the shared event file failed; retrying")
                got = 0
                self._stop.wait(0.5)
            now = time.monotonic()
            if got:
                last_seen = now
            elif now - last_seen > IDLE_AFTER_S:
                # A quiet system: look less often (the first event after a lull waits a
                # little longer; under load every look finds something).
                self._stop.wait(IDLE_POLL_S)
            else:
                self._stop.wait(self._poll_s)

    def _read_new(self) -> int:
        rows = self._reader.execute(
            "SELECT seq, origin, subject, data, msg_id, at FROM events WHERE seq > ? "
            "ORDER BY seq LIMIT 5000",
            (self._cursor,),
        ).fetchall()
        if not rows:
            return 0
        self._cursor = int(rows[-1][0])
        # Only what a consumer here takes is decoded: most of an AVL gateway's positions
        # have no reader in an API worker.
        wants = self._local.wants
        theirs = [
            (subject, orjson.loads(data), msg_id, datetime.fromtimestamp(at, UTC))
            for _, origin, subject, data, msg_id, at in rows
            if origin != self._origin and wants(subject)
        ]
        if theirs:
            self._local.append_received(theirs)
        return len(rows)

    def _trim(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            with self._file_lock():
                self._writer.execute(
                    "DELETE FROM events WHERE seq <= (SELECT max(seq) FROM events) - ?",
                    (self._keep,),
                )

    # -- consuming: the local bus -------------------------------------------------------
    def subscribe(
        self,
        subject_filter: str,
        *,
        durable: str | None = None,
        deliver: Literal["new", "all"] = "new",
        ack_wait: float = 30.0,
    ) -> Subscription:
        return self._local.subscribe(
            subject_filter, durable=durable, deliver=deliver, ack_wait=ack_wait
        )

    @property
    def last_seq(self) -> int:
        return self._local.last_seq

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._write_lock:
            self._closed = True
            for db in (self._writer, self._reader):
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            os.close(self._lock_fd)
        self._local.close()
