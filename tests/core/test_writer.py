"""The group-commit writer (`core.writer`): kinds share one transaction and one commit per
cycle, a bad item is refused alone, every waiter (thread or event loop) is answered only
after the commit, and the writer stops on `close` and starts again on the next item."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, text
from sqlalchemy.orm import Session

from safecity.core.errors import InvalidInput, SafeCityError
from safecity.core.runtime import Runtime
from safecity.core.writer import GroupWriter, Kind


class Probe:
    """Two kinds over a scratch table; an item "refuse…" is refused (nothing written), an
    item "boom…" makes the batch function raise. Records what each cycle saw."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        # Portable DDL (an id that numbers itself on SQLite and PostgreSQL alike).
        probe_table = Table(
            "writer_probe",
            MetaData(),
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("kind", String(8), nullable=False),
            Column("value", String(64), nullable=False, unique=True),
        )
        with rt.engine.begin() as conn:
            probe_table.create(conn, checkfirst=True)
        self.cycles: list[tuple[str, tuple[str, ...], int]] = []  # kind, items, session id
        self.commits = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        event.listen(rt.engine, "commit", self._committed)

    def _committed(self, _conn: Any) -> None:
        self.commits += 1

    def take(self, kind: str, session: Session, items: list[str]) -> list[int | SafeCityError]:
        self.entered.set()
        self.gate.wait(30)
        self.cycles.append((kind, tuple(items), id(session)))
        out: list[int | SafeCityError] = []
        for item in items:
            if item.startswith("boom"):
                raise RuntimeError(f"{item} failed")
            if item.startswith("refuse"):
                out.append(InvalidInput(f"{item} refused"))
                continue
            row_id = session.execute(
                text("INSERT INTO writer_probe (kind, value) VALUES (:k, :v) RETURNING id"),
                {"k": kind, "v": item},
            ).scalar_one()
            out.append(row_id)
        return out

    def take_a(self, session: Session, items: list[str]) -> list[int | SafeCityError]:
        return self.take("a", session, items)

    def take_b(self, session: Session, items: list[str]) -> list[int | SafeCityError]:
        return self.take("b", session, items)

    def stored(self) -> dict[str, str]:
        with self.rt.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT value, kind FROM writer_probe").all()
        return {v: k for v, k in rows}


@pytest.fixture
def probe(runtime: Runtime) -> Probe:
    return Probe(runtime)


@pytest.fixture
def writer(runtime: Runtime) -> Iterator[GroupWriter]:
    w = GroupWriter(runtime.sessions, max_batch=100, name="test-writer")
    yield w
    w.close()


def _kinds(writer: GroupWriter, probe: Probe) -> tuple[Kind[str, int], Kind[str, int]]:
    return writer.register("a", probe.take_a), writer.register("b", probe.take_b)


def _held(writer: GroupWriter, probe: Probe, kind: Kind[str, int]) -> Future[int]:
    """Keep the writer busy in a cycle of its own until `probe.gate` is set, so that what
    is submitted meanwhile waits and is taken in the next cycle, all together."""
    probe.gate.clear()
    probe.entered.clear()
    first = writer.submit(kind, "hold")
    assert probe.entered.wait(30)
    return first


def test_two_kinds_share_one_transaction_and_one_commit(writer: GroupWriter, probe: Probe) -> None:
    a, b = _kinds(writer, probe)
    held = _held(writer, probe, a)
    futs = [writer.submit(a if i % 2 else b, f"item-{i}") for i in range(10)]
    commits = probe.commits
    probe.gate.set()
    assert held.result(timeout=30) > 0
    ids = [f.result(timeout=30) for f in futs]
    assert len(set(ids)) == 10
    # After the held cycle: one cycle with both kinds, each batch function called once, in
    # the order the kinds were registered, over one session, committed once.
    later = [c for c in probe.cycles if c[1] != ("hold",)]
    assert [(kind, len(items)) for kind, items, _ in later] == [("a", 5), ("b", 5)]
    assert later[0][2] == later[1][2]
    assert later[1][1] == tuple(f"item-{i}" for i in range(0, 10, 2))  # submission order
    assert probe.commits - commits == 2  # the held cycle's commit, then this one's
    assert probe.stored() == {"hold": "a"} | {f"item-{i}": "a" if i % 2 else "b" for i in range(10)}


@pytest.mark.parametrize(
    ("bad", "error", "retried_alone"),
    [
        ("refuse-1", InvalidInput, False),  # refused in the batch: the others commit with it
        ("boom-1", RuntimeError, True),  # the cycle fails: every item is taken again alone
    ],
)
def test_a_bad_item_is_refused_alone(
    writer: GroupWriter,
    probe: Probe,
    bad: str,
    error: type[Exception],
    retried_alone: bool,
) -> None:
    a, b = _kinds(writer, probe)
    held = _held(writer, probe, b)
    good = [writer.submit(a, "a-1"), writer.submit(b, "b-1"), writer.submit(a, "a-2")]
    failing = writer.submit(a, bad)
    probe.gate.set()
    held.result(timeout=30)
    assert all(isinstance(f.result(timeout=30), int) for f in good)
    with pytest.raises(error, match=bad):
        failing.result(timeout=30)
    assert probe.stored() == {"hold": "b", "a-1": "a", "b-1": "b", "a-2": "a"}
    alone = [items for _, items, _ in probe.cycles if len(items) == 1 and items != ("hold",)]
    if retried_alone:
        assert sorted(alone) == sorted([("a-1",), ("a-2",), ("b-1",), (bad,)])
    else:
        assert alone == [("b-1",)]  # b's only item in the shared cycle, not a retry


def test_an_answer_means_committed(writer: GroupWriter, probe: Probe, runtime: Runtime) -> None:
    a, _ = _kinds(writer, probe)
    seen: list[bool] = []

    def check(fut: Future[int]) -> None:
        # Runs in the writer thread as the future is answered: a fresh connection must
        # already see the row.
        with runtime.engine.connect() as conn:
            row = conn.execute(
                text("SELECT count(*) FROM writer_probe WHERE id = :id"), {"id": fut.result()}
            ).scalar_one()
        seen.append(row == 1)

    futs = [writer.submit(a, f"c-{i}") for i in range(20)]
    for f in futs:
        f.add_done_callback(check)
    for f in futs:
        f.result(timeout=30)
    # A callback runs after its future is answered (in the writer thread): wait for all.
    deadline = time.monotonic() + 30
    while len(seen) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [True] * 20


def test_thread_and_event_loop_waiters_are_all_answered(writer: GroupWriter, probe: Probe) -> None:
    a, b = _kinds(writer, probe)
    thread_answers: list[int] = []
    lock = threading.Lock()

    def thread_waiter(k: int) -> None:
        for i in range(20):
            got = writer.submit(b, f"t{k}-{i}").result(timeout=30)
            with lock:
                thread_answers.append(got)

    async def loop_waiters() -> list[Any]:
        async def one(i: int) -> Any:
            return await writer.take(a, f"refuse-{i}" if i == 7 else f"l-{i}")

        return await asyncio.gather(*(one(i) for i in range(60)), return_exceptions=True)

    threads = [threading.Thread(target=thread_waiter, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    loop_answers = asyncio.run(loop_waiters())
    for t in threads:
        t.join()
    assert len(thread_answers) == 60
    refused = loop_answers.pop(7)
    assert isinstance(refused, InvalidInput)
    assert all(isinstance(x, int) for x in loop_answers)
    assert len(set(thread_answers) | set(loop_answers)) == 119
    assert len(probe.stored()) == 119


def test_close_answers_everything_queued_and_the_next_item_starts_it_again(
    writer: GroupWriter, probe: Probe
) -> None:
    a, _ = _kinds(writer, probe)
    futs = [writer.submit(a, f"q-{i}") for i in range(50)]
    writer.close()
    assert all(f.done() for f in futs)
    assert not [t for t in threading.enumerate() if t.name == "test-writer"]
    again = writer.submit(a, "after-close")
    assert again.result(timeout=30) > 0
    assert len(probe.stored()) == 51


def test_a_cancelled_waiter_does_not_stop_the_writer(writer: GroupWriter, probe: Probe) -> None:
    a, _ = _kinds(writer, probe)
    held = _held(writer, probe, a)
    gone = writer.submit(a, "gone")
    assert gone.cancel()
    probe.gate.set()
    held.result(timeout=30)
    assert writer.submit(a, "next").result(timeout=30) > 0
    assert set(probe.stored()) == {"hold", "gone", "next"}  # written, nobody told


def test_kinds_are_registered_once(writer: GroupWriter, probe: Probe, runtime: Runtime) -> None:
    a, _ = _kinds(writer, probe)
    assert writer.register("a", probe.take_a) is a  # a domain registering on every use
    with pytest.raises(ValueError, match="already registered"):
        writer.register("a", probe.take_b)
    other = GroupWriter(runtime.sessions)
    with pytest.raises(ValueError, match="not registered on this writer"):
        other.submit(a, "x")
