"""SQLite's write-ahead log is checkpointed by a thread of its own (`WalCheckpointer`), not
inside the commit that fills it: the writers' own checkpoint is only a safety net, the
thread copies the log while they go on, and a log that outgrew its bound starts afresh."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from safecity.core.db import WalCheckpointer, make_engine


def _write(engine: object, transactions: int, rows: int) -> None:
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"))
    for _ in range(transactions):
        with engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "x" * 1000}] * rows)


def _wait(cond: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_commits_leave_checkpoints_to_the_thread(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    engine = make_engine(f"sqlite:///{path}", background_checkpoints=True)
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert pages == WalCheckpointer.SAFETY_PAGES  # a commit no longer checkpoints at 1,000
    _write(engine, transactions=60, rows=100)  # about 1,500 pages of log
    with engine.connect() as conn:  # (busy, frames in the log, frames copied)
        log = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    # No commit checkpointed: the log holds them all (at 1,000 pages one would have, and
    # the next transaction would have started the log afresh).
    assert log[1] > 1200, log
    checkpointer = WalCheckpointer(path, interval_s=0.05)
    try:

        def caught_up() -> bool:
            _, frames, copied = checkpointer.last
            return frames > 0 and copied == frames

        _write(engine, transactions=20, rows=100)
        assert _wait(caught_up), f"the log was not copied into the database: {checkpointer.last}"
    finally:
        checkpointer.stop()
        engine.dispose()
    assert not checkpointer._thread.is_alive()


def test_a_log_past_its_bound_starts_afresh(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    engine = make_engine(f"sqlite:///{path}", background_checkpoints=True)
    checkpointer = WalCheckpointer(path, interval_s=0.02)
    checkpointer.RESTART_BYTES = 512 * 1024
    wal = Path(path + "-wal")
    try:
        biggest = 0
        for _ in range(60):  # about 12 MB of log in all
            _write(engine, transactions=1, rows=200)
            biggest = max(biggest, wal.stat().st_size)
            time.sleep(0.01)
        # With the writers' safety net alone (64 MB) the log would hold all 12 MB.
        assert biggest < 6 * 1024 * 1024, biggest
    finally:
        checkpointer.stop()
        engine.dispose()
