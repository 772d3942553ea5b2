"""Group-commit call intake: one writer thread takes in calls in batches.

A helpline at full load sends hundreds of calls a second. Taken one by one, each call
is its own transaction (about ten statements and a commit) and the calls queue for the one
SQLite writer. Here requests wait in a queue; the writer takes everything that is waiting
(up to `max_batch`) and takes it in with `service.receive_calls` in one transaction, so the
cost of a commit is shared, and a batch grows by itself when the load does. A request is
answered only after its batch committed: an answered call is never lost. A batch that
fails as a whole (a constraint another process raced to) is retried call by call, so one
bad call never takes the others down with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Union

from sqlalchemy.orm import Session

from safecity.core.errors import SafeCityError
from safecity.incidents import service
from safecity.incidents.schemas import CallAccepted

log = logging.getLogger(__name__)

#: A waiting caller: a thread's future, or an event loop's future with its loop.
_Waiter = Union[  # a runtime alias: quoted generics need Union, not |
    "Future[CallAccepted]",
    tuple[asyncio.AbstractEventLoop, "asyncio.Future[CallAccepted]"],
]
_Item = tuple[service.CallRequest, _Waiter]
_Result = CallAccepted | BaseException


class CallIntake:
    """The writer thread; started by the first call after creation or `close`."""

    def __init__(self, sessions: Callable[[], Session], *, max_batch: int = 500) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._lock = threading.Lock()
        # Each writer thread has its own queue, so a stopping one and its successor never
        # take each other's work.
        self._queue: queue.SimpleQueue[_Item | None] | None = None
        self._thread: threading.Thread | None = None

    def submit(self, request: service.CallRequest) -> Future[CallAccepted]:
        """Queue one call; the future holds its answer (or its error) once committed."""
        fut: Future[CallAccepted] = Future()
        self._put((request, fut))
        return fut

    async def take(self, request: service.CallRequest) -> CallAccepted:
        """Queue one call and wait for its answer without blocking the event loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[CallAccepted] = loop.create_future()
        self._put((request, (loop, fut)))
        return await fut

    def _put(self, item: _Item) -> None:
        with self._lock:
            if self._queue is None or self._thread is None:
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="call-intake", daemon=True
                )
                self._thread.start()
            self._queue.put(item)

    def close(self) -> None:
        """Answer everything already queued, then stop the thread."""
        with self._lock:
            q, thread = self._queue, self._thread
            self._queue = self._thread = None
        if q is not None and thread is not None:
            q.put(None)
            thread.join(timeout=30)

    def _run(self, q: queue.SimpleQueue[_Item | None]) -> None:
        stop = False
        while not stop:
            first = q.get()
            if first is None:
                break
            items = [first]
            while len(items) < self._max_batch:
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                items.append(nxt)
            self._take_batch(items)

    def _take_batch(self, items: list[_Item]) -> None:
        results: list[_Result]
        try:
            with self._sessions() as session:
                results = list(service.receive_calls(session, requests=[r for r, _ in items]))
                session.commit()
        except Exception:
            if len(items) > 1:
                log.warning("a batch of %d calls failed; taking them one by one", len(items))
            results = [_one(self._sessions, request) for request, _ in items]
        _answer([w for _, w in items], results)


def _one(
    sessions: Callable[[], Session], request: service.CallRequest
) -> CallAccepted | BaseException:
    try:
        with sessions() as session:
            return service.receive_call(
                session,
                call=request.call,
                actor=request.actor,
                now=request.received_at,
                source=request.source,
                priority=request.priority,
            )
    except Exception as exc:
        return exc


def _answer(waiters: list[_Waiter], results: list[_Result]) -> None:
    """Hand each caller its answer; an event loop is woken once per batch, not per call."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[CallAccepted], _Result]]]
    by_loop = {}
    for waiter, result in zip(waiters, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, SafeCityError):
            log.error("call intake failed", exc_info=result)
        if isinstance(waiter, Future):
            if isinstance(result, BaseException):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)
        else:
            by_loop.setdefault(waiter[0], []).append((waiter[1], result))
    for loop, pairs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
            loop.call_soon_threadsafe(_settle_all, pairs)


def _settle_all(pairs: list[tuple[asyncio.Future[CallAccepted], _Result]]) -> None:
    for fut, result in pairs:
        if fut.done():  # the caller went away (cancelled)
            continue
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)
