"""Database: SQLAlchemy 2 engine and sessions, Alembic migrations, events after commit.

The embedded default is one SQLite file in WAL mode; PostgreSQL is chosen by URL, same code.
Every domain's tables derive from `Base`; the schema is created only by Alembic migrations
(`migrate`), never by `create_all`, so a database is always at a known revision."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from safecity.core.bus import EventBus

log = logging.getLogger(__name__)

#: The largest id an INTEGER id column holds (32 bits on PostgreSQL; SQLite's driver
#: overflows past 64 bits): a larger id names no row, so it is refused as input (a 422
#: naming it, or NotFound from a service) before any query sees it.
MAX_ROW_ID = 2**31 - 1

# Stable constraint names so migrations are identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


class _TakesWriterLock(sqlite3.Cursor):
    """Takes the connection's cross-process writer lock before the first write of a
    transaction (see `_SharedWriterConnection`)."""

    connection: _SharedWriterConnection

    def execute(self, sql: str, parameters: Any = (), /) -> _TakesWriterLock:
        with self._locked_if_write(sql):
            super().execute(sql, parameters)
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _TakesWriterLock:
        with self._locked_if_write(sql):
            super().executemany(sql, seq_of_parameters)
        return self

    @contextmanager
    def _locked_if_write(self, sql: str) -> Iterator[None]:
        conn = self.connection
        if sql.lstrip()[:7].upper().startswith(_WRITES):
            conn.take_writer_lock()
        try:
            yield
        finally:
            if not conn.in_transaction:  # autocommitted (DDL), or failed before beginning
                conn.release_writer_lock()


class _SharedWriterConnection(sqlite3.Connection):
    """An SQLite connection for a database several server processes write (`workers`).

    SQLite lets one writer in at a time; a writer that finds the database locked sleeps in
    SQLite's busy handler (1, 2, 5, 10 ... 100 ms a try), so under steady load the
    processes mostly slept: three processes took in fewer calls than one. Here a write
    transaction first takes an exclusive `flock` on a lock file beside the database, held
    to its commit or rollback: the kernel queues the waiters and wakes the next one the
    moment the lock is released, and releases it if its holder dies."""

    lock_fd = -1
    _holding = False

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or _TakesWriterLock)

    def take_writer_lock(self) -> None:
        if not self._holding and self.lock_fd >= 0:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)  # blocks without holding the GIL
            self._holding = True

    def release_writer_lock(self) -> None:
        if self._holding:
            self._holding = False
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_writer_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_writer_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_writer_lock()
            if self.lock_fd >= 0:
                os.close(self.lock_fd)
                self.lock_fd = -1


class WalCheckpointer:
    """Checkpoints a SQLite file's write-ahead log from a thread of its own.

    SQLite otherwise checkpoints inside the commit that fills the log past 1,000 pages:
    that commit copies the pages into the database and syncs it, which under a helpline
    peak was one commit in ten taking 10-20 ms, on the one writer every caller waits
    for. Here a thread with its own connection copies the log every `interval_s`
    (`PASSIVE`: it never blocks a writer or a reader), and the writers' own checkpoint is
    only a safety net (`SAFETY_PAGES`). A log past `RESTART_BYTES` (a checkpoint that
    never caught up with the writers) is checkpointed with `RESTART`, which waits for the
    writer of the moment and starts the log afresh."""

    #: The writers' own checkpoint, when this thread falls behind (4 KiB pages).
    SAFETY_PAGES = 16_384
    RESTART_BYTES = 128 * 1024 * 1024

    def __init__(self, path: str, *, interval_s: float = 0.2) -> None:
        self.path = path
        self.interval_s = interval_s
        self.checkpoints = 0
        #: The last round's (busy, frames in the log, frames copied into the database).
        self.last = (0, 0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
        wal = Path(self.path + "-wal")
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    size = wal.stat().st_size if wal.exists() else 0
                    mode = "RESTART" if size > self.RESTART_BYTES else "PASSIVE"
                    busy, frames, copied = db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
                    self.last = (int(busy), int(frames), int(copied))
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy, or the file went away: next round
                    log.debug("WAL checkpoint of %s skipped: %s", self.path, exc)
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (`sqlite:///PATH`); None for another database or an
    in-memory one."""
    if not url.startswith("sqlite") or "///" not in url:
        return None
    path = url.split("///", 1)[1]
    return path if path and path != ":memory:" else None


def make_engine(
    url: str, *, shared_writers: bool = False, background_checkpoints: bool = False
) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a busy timeout. With
    `shared_writers` (several server processes on one SQLite file) write transactions
    queue on a lock file (see `_SharedWriterConnection`). With `background_checkpoints`
    the caller runs a `WalCheckpointer` on the file, and commits leave checkpoints to it."""
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        lock_file: Path | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if shared_writers:
                lock_file = Path(path + ".writer-lock")
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
        if lock_file is not None:
            connect_args["factory"] = _SharedWriterConnection
        # One connection, handed from thread to thread: SQLite has one writer at a time,
        # and threads queueing on the pool wake at once, where threads contending inside
        # SQLite sleep in its busy handler (up to 100 ms a try) and throughput collapses.
        engine = create_engine(
            url,
            connect_args=connect_args,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if background_checkpoints:
                cur.execute(f"PRAGMA wal_autocheckpoint={WalCheckpointer.SAFETY_PAGES}")
            cur.close()
            if isinstance(dbapi_conn, _SharedWriterConnection) and lock_file is not None:
                dbapi_conn.lock_fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_sessionmaker(engine: Engine, bus: EventBus) -> sessionmaker[Session]:
    """Sessions whose `publish_after_commit` events go to `bus` once the commit succeeded.

    Publishing after the commit means a subscriber never sees an event whose data is not
    yet readable, and a rolled-back change publishes nothing."""
    factory = sessionmaker(bind=engine, expire_on_commit=False)

    @event.listens_for(factory, "after_commit")
    def _flush_events(session: Session) -> None:
        pending: list[tuple[str, dict[str, Any]]] = session.info.pop("pending_events", [])
        if pending:
            bus.publish_many(pending)
        for callback in session.info.pop("after_commit", ()):
            callback()

    @event.listens_for(factory, "after_rollback")
    def _drop_events(session: Session) -> None:
        session.info.pop("pending_events", None)
        session.info.pop("after_commit", None)

    return factory


def publish_after_commit(session: Session, subject: str, data: dict[str, Any]) -> None:
    """Queue an event on the session; it is published only if the transaction commits."""
    session.info.setdefault("pending_events", []).append((subject, data))


def call_after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's transaction has committed (after its events are
    published); never if it rolls back. For in-process memories of what was written."""
    session.info.setdefault("after_commit", []).append(callback)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


# Objects that exist outside the ORM models: PostGIS's own table and the generated `geom`
# column of revision 0002. Autogenerate and the schema check leave them alone.
_OUTSIDE_MODELS = {"spatial_ref_sys", "geom", "ix_jurisdictions_geom"}


def include_in_migrations(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    return name not in _OUTSIDE_MODELS


MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
