"""Several server processes writing one SQLite file: write transactions queue on a lock
file (core/db.py, `_SharedWriterConnection`) instead of sleeping in SQLite's busy handler."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from safecity.core.db import make_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'x.db'}", shared_writers=True)
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT, n INTEGER)"))
    yield eng
    eng.dispose()


def _lock_is_free(tmp_path: Path) -> bool:
    fd = os.open(tmp_path / "x.db.writer-lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing releases a lock taken here
    return True


@pytest.mark.parametrize(
    ("statement", "held"),
    [
        ("SELECT count(*) FROM t", False),
        ("INSERT INTO t (who, n) VALUES ('a', 1)", True),
        ("UPDATE t SET n = n + 1", True),
        ("DELETE FROM t WHERE n < 0", True),
        ("  insert into t (who, n) values ('lower case', 2)", True),
    ],
)
def test_the_lock_is_held_from_the_first_write_to_the_commit(
    engine: Engine, tmp_path: Path, statement: str, held: bool
) -> None:
    with engine.connect() as conn:
        conn.execute(text(statement))
        assert _lock_is_free(tmp_path) is not held
        conn.commit()
        assert _lock_is_free(tmp_path)


def test_a_rollback_and_a_failed_write_release_the_lock(engine: Engine, tmp_path: Path) -> None:
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t (who, n) VALUES ('a', 1)"))
        conn.rollback()
        assert _lock_is_free(tmp_path)
    with engine.connect() as conn, pytest.raises(Exception, match="no such table"):
        conn.execute(text("INSERT INTO missing VALUES (1)"))
    assert _lock_is_free(tmp_path)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0


def test_ddl_outside_a_transaction_releases_the_lock(engine: Engine, tmp_path: Path) -> None:
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE u (id INTEGER PRIMARY KEY)"))
        assert _lock_is_free(tmp_path)


_WRITER = """
import sys
from sqlalchemy import text
from safecity.core.db import make_engine
engine = make_engine(f"sqlite:///{sys.argv[1]}", shared_writers=True)
who, batches = sys.argv[2], int(sys.argv[3])
for b in range(batches):
    with engine.begin() as conn:
        # read, then write: the shape of a batch of calls (duplicate check, then inserts)
        before = conn.execute(text("SELECT count(*) FROM t")).scalar_one()
        conn.execute(
            text("INSERT INTO t (who, n) VALUES (:who, :n)"),
            [{"who": who, "n": before + i} for i in range(20)],
        )
engine.dispose()
"""


def test_processes_writing_at_once_lose_nothing(engine: Engine, tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path / "x.db"), who, "150"],
            stderr=subprocess.PIPE,
        )
        for who in ("p1", "p2", "p3")
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT who, count(*) FROM t GROUP BY who")).all())
    assert rows == {"p1": 3000, "p2": 3000, "p3": 3000}
