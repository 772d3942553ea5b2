"""Group commit: one writer thread takes many small writes into one transaction.

SQLite has one writer. Taken one by one, every small write (a helpline call, a batch of GPS
fixes) is its own transaction and commit, and the writers queue for the one connection:
under load the queue, not the work, is what a request waits for. Here a request hands its
item to a writer thread and waits; the writer takes everything that is waiting (up to
`max_batch`), runs each *kind*'s batch function over its items inside ONE transaction and
commits once, so the cost of a commit is shared and a cycle grows by itself with the load.

A kind is registered by the domain that owns the write (core knows no domain): a name and a
batch function `take(session, items) -> results`, one result per item in order, where a
`SafeCityError` in the results refuses that item alone. A batch function must check an item
before it writes anything for it, so that a refused item leaves nothing behind in the shared
transaction; an exception it raises fails the whole cycle instead (see below).

Every waiter is answered only after the commit: an answered write is never lost. A cycle
that fails as a whole (an unexpected error, a constraint another process raced to) is rolled
back and every item is taken again alone, each in its own transaction, so one bad item
never takes the others down with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, Union

from sqlalchemy.orm import Session

from safecity.core.errors import SafeCityError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: A kind's batch function: the items of one cycle in, one result or refusal per item out.
BatchFunction = Callable[[Session, list[T]], Sequence[R | SafeCityError]]


@dataclass(frozen=True, eq=False)
class Kind(Generic[T, R]):
    """A registered kind of write: made by `GroupWriter.register`, passed to `submit`."""

    name: str
    take: BatchFunction[T, R]
    #: Kinds run in the order they were registered, so a cycle's statements come in a
    #: stable order (the same tables locked in the same order on a database with locks).
    order: int


#: A waiting caller: a thread's future, or an event loop's future with its loop.
_Waiter = Union[  # a runtime alias: quoted generics need Union, not |
    "Future[Any]",
    tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]"],
]


@dataclass(frozen=True, slots=True)
class _Job:
    kind: Kind[Any, Any]
    item: Any
    waiter: _Waiter


class GroupWriter:
    """The writer thread; started by the first `submit` after creation or `close`."""

    def __init__(
        self,
        sessions: Callable[[], Session],
        *,
        max_batch: int = 500,
        name: str = "db-writer",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._sessions = sessions
        self._max_batch = max_batch
        self._name = name
        self._lock = threading.Lock()
        self._kinds: dict[str, Kind[Any, Any]] = {}
        # Each writer thread has its own queue, so a stopping thread and its successor
        # (a submit right after `close`) never take each other's work.
        self._queue: queue.SimpleQueue[_Job | None] | None = None
        self._thread: threading.Thread | None = None

    @property
    def sessions(self) -> Callable[[], Session]:
        """Where the writer's sessions come from."""
        return self._sessions

    def register(self, name: str, take: BatchFunction[T, R]) -> Kind[T, R]:
        """The kind `name`, whose items are taken by `take`. Registering the same name with
        the same function again returns the same kind (domains register on first use);
        another function under a taken name is refused."""
        with self._lock:
            kind = self._kinds.get(name)
            if kind is None:
                kind = Kind(name=name, take=take, order=len(self._kinds))
                self._kinds[name] = kind
            elif kind.take != take:  # != : bound methods are equal, not identical
                raise ValueError(f"write kind {name!r} is already registered with {kind.take!r}")
            return kind

    def submit(self, kind: Kind[T, R], item: T) -> Future[R]:
        """Queue one item; the future holds its result (or its error) once committed."""
        fut: Future[R] = Future()
        self._put(_Job(kind, item, fut))
        return fut

    async def take(self, kind: Kind[T, R], item: T) -> R:
        """Queue one item and wait for its result without blocking the event loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._put(_Job(kind, item, (loop, fut)))
        return await fut

    def _put(self, job: _Job) -> None:
        if self._kinds.get(job.kind.name) is not job.kind:
            raise ValueError(f"write kind {job.kind.name!r} is not registered on this writer")
        with self._lock:
            if self._queue is None or self._thread is None:
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name=self._name, daemon=True
                )
                self._thread.start()
            self._queue.put(job)

    def close(self) -> None:
        """Answer everything already queued, then stop the thread (a later `submit` starts
        a new one)."""
        with self._lock:
            q, thread = self._queue, self._thread
            self._queue = self._thread = None
        if q is not None and thread is not None:
            q.put(None)
            thread.join(timeout=30)

    def _run(self, q: queue.SimpleQueue[_Job | None]) -> None:
        stop = False
        while not stop:
            first = q.get()
            if first is None:
                break
            jobs = [first]
            while len(jobs) < self._max_batch:
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:  # `close`: this cycle is the last
                    stop = True
                    break
                jobs.append(nxt)
            try:
                self._cycle(jobs)
            except Exception:  # never let the thread die with callers still queued
                log.exception("group writer cycle failed")

    def _cycle(self, jobs: list[_Job]) -> None:
        by_kind: dict[Kind[Any, Any], list[int]] = {}
        for i, job in enumerate(jobs):
            by_kind.setdefault(job.kind, []).append(i)
        groups = sorted(by_kind.items(), key=lambda kv: kv[0].order)
        results: list[Any] = [None] * len(jobs)
        try:
            with self._sessions() as session:
                for kind, idx in groups:
                    out = kind.take(session, [jobs[i].item for i in idx])
                    if len(out) != len(idx):
                        raise RuntimeError(
                            f"write kind {kind.name!r} gave {len(out)} results for {len(idx)}"
                        )
                    for i, result in zip(idx, out, strict=True):
                        results[i] = result
                session.commit()
        except Exception:
            if len(jobs) > 1:
                log.warning("a cycle of %d writes failed; taking them one by one", len(jobs))
            results = [self._alone(job) for job in jobs]
        _answer([job.waiter for job in jobs], results)

    def _alone(self, job: _Job) -> Any:
        """One item in its own transaction: its result, or its error."""
        try:
            with self._sessions() as session:
                out = job.kind.take(session, [job.item])
                if len(out) != 1:
                    raise RuntimeError(f"write kind {job.kind.name!r} gave {len(out)} results")
                if not isinstance(out[0], BaseException):
                    session.commit()  # a refusal commits nothing (the session rolls back)
                return out[0]
        except Exception as exc:
            return exc


def _answer(waiters: list[_Waiter], results: list[Any]) -> None:
    """Hand each caller its answer; an event loop is woken once per cycle, not per item."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for waiter, result in zip(waiters, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, SafeCityError):
            log.error("group writer: a write failed", exc_info=result)
        if isinstance(waiter, Future):
            with contextlib.suppress(InvalidStateError):  # the caller cancelled it
                if isinstance(result, BaseException):
                    waiter.set_exception(result)
                else:
                    waiter.set_result(result)
        else:
            by_loop.setdefault(waiter[0], []).append((waiter[1], result))
    for loop, pairs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
            loop.call_soon_threadsafe(_settle_all, pairs)


def _settle_all(pairs: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for fut, result in pairs:
        if fut.done():  # the caller went away (cancelled)
            continue
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)


def shared_writer(app: Any) -> GroupWriter:
    """The app's one group-commit writer, on `app.state.db_writer` (made here from
    `app.state.runtime` when the app was built without one). Domains reach it through this,
    so calls and GPS fixes share its transactions whoever asks first."""
    writer = getattr(app.state, "db_writer", None)
    if not isinstance(writer, GroupWriter):
        writer = GroupWriter(app.state.runtime.sessions)
        app.state.db_writer = writer
    return writer
