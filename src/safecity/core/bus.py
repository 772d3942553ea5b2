"""The event bus: publish to a subject, durable consumers that acknowledge.

Modelled on NATS JetStream so the JetStream adapter drops in behind the same interface:
- a *stream* keeps every published event in order with a sequence number;
- `publish(..., msg_id=...)` is de-duplicated like JetStream's `Nats-Msg-Id`;
- a *consumer* (optionally durable, by name) pulls events matching a subject filter
  (`incidents.*`, `units.>`), and must `ack()` each; an event not acknowledged within
  `ack_wait` seconds, or `nak()`-ed, is delivered again;
- a durable consumer resumes where it stopped after `close()` and a new `subscribe()`.

`InProcessBus` is the embedded default: thread-safe (services publish from worker threads,
the console consumes in asyncio), and bounded by `max_events` and `max_age_s` like a JetStream
limits policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal


@dataclass(frozen=True)
class Event:
    subject: str
    data: dict[str, Any]
    seq: int
    id: str
    time: datetime


@functools.lru_cache(maxsize=65536)
def subject_matches(filter_: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, `>` is one or more trailing tokens.

    Cached: every consumer looks at every event of the stream (thousands of unit positions
    a second), and a service uses only a few dozen subjects and filters."""
    ft = filter_.split(".")
    st = subject.split(".")
    for i, tok in enumerate(ft):
        if tok == ">":
            return len(st) > i
        if i >= len(st) or (tok != "*" and tok != st[i]):
            return False
    return len(ft) == len(st)


def validate_subject(subject: str, *, allow_wildcards: bool = False) -> None:
    if not subject or any(not t for t in subject.split(".")) or " " in subject:
        raise ValueError(f"invalid subject {subject!r}: dot-separated non-empty tokens")
    if not allow_wildcards and ("*" in subject or ">" in subject):
        raise ValueError(f"invalid subject {subject!r}: wildcards only in subscriptions")


class Message:
    """One delivery of an event to a consumer."""

    def __init__(self, event: Event, consumer: _ConsumerState, attempt: int) -> None:
        self.event = event
        self.attempt = attempt
        self._consumer = consumer

    @property
    def subject(self) -> str:
        return self.event.subject

    @property
    def data(self) -> dict[str, Any]:
        return self.event.data

    def ack(self) -> None:
        self._consumer.ack(self.event.seq)

    def nak(self) -> None:
        """Ask for redelivery now."""
        self._consumer.nak(self.event.seq)


class Subscription(ABC):
    @abstractmethod
    def fetch(self, batch: int = 100, timeout: float = 1.0) -> list[Message]:
        """Block up to `timeout` seconds for at least one message; return up to `batch`."""

    @abstractmethod
    async def fetch_async(self, batch: int = 100, timeout: float = 1.0) -> list[Message]:
        """The same, awaiting instead of blocking the thread."""

    @abstractmethod
    def close(self) -> None:
        """Stop receiving; a durable consumer keeps its position for the next subscribe."""


class EventBus(ABC):
    @abstractmethod
    def publish(self, subject: str, data: dict[str, Any], *, msg_id: str | None = None) -> Event:
        """Append an event to the stream; the same `msg_id` twice stores it once."""

    def publish_many(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[Event]:
        """Publish several events in order (an adapter may do it in one round trip)."""
        return [self.publish(subject, data) for subject, data in events]

    @abstractmethod
    def subscribe(
        self,
        subject_filter: str,
        *,
        durable: str | None = None,
        deliver: Literal["new", "all"] = "new",
        ack_wait: float = 30.0,
    ) -> Subscription:
        """A pull consumer of events matching `subject_filter`."""

    @abstractmethod
    def close(self) -> None: ...


@dataclass
class _ConsumerState:
    bus: InProcessBus
    subject_filter: str
    ack_wait: float
    cursor: int  # last stream sequence looked at
    pending: dict[int, tuple[float, int]] = field(default_factory=dict)  # seq->(deadline, n)
    redeliver: deque[int] = field(default_factory=deque)
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)

    def ack(self, seq: int) -> None:
        with self.bus._cond:
            self.pending.pop(seq, None)

    def nak(self, seq: int) -> None:
        with self.bus._cond:
            if seq in self.pending:
                self.pending[seq] = (0.0, self.pending[seq][1])
            self.bus._cond.notify_all()
            self.bus._wake_async(self)


class _InProcessSubscription(Subscription):
    def __init__(self, bus: InProcessBus, state: _ConsumerState, name: str | None) -> None:
        self._bus = bus
        self._state = state
        self._name = name
        self._closed = False

    def fetch(self, batch: int = 100, timeout: float = 1.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        with self._bus._cond:
            while True:
                msgs = self._bus._take(self._state, batch)
                if msgs or self._closed:
                    return msgs
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                # Wake for the soonest ack deadline too, so redelivery is timely.
                self._bus._cond.wait(min(left, self._bus._next_deadline(self._state)))

    async def fetch_async(self, batch: int = 100, timeout: float = 1.0) -> list[Message]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            wake = asyncio.Event()
            with self._bus._cond:
                msgs = self._bus._take(self._state, batch)
                if msgs or self._closed:
                    return msgs
                self._state.waiters.append((loop, wake))
                wait = min(deadline - loop.time(), self._bus._next_deadline(self._state))
            if deadline - loop.time() <= 0:
                return []
            try:
                await asyncio.wait_for(wake.wait(), timeout=max(wait, 0.001))
            except TimeoutError:
                pass
            finally:
                with self._bus._cond:
                    if (loop, wake) in self._state.waiters:
                        self._state.waiters.remove((loop, wake))

    def close(self) -> None:
        with self._bus._cond:
            self._closed = True
            if self._name is None:
                self._bus._ephemeral.discard(id(self._state))
                self._bus._states.pop(id(self._state), None)  # it never comes back
            self._bus._active.discard(id(self._state))
            self._bus._wanted.clear()
            self._bus._cond.notify_all()


class InProcessBus(EventBus):
    """In-memory stream + consumers for one process (the embedded default)."""

    def __init__(
        self,
        *,
        max_events: int = 200_000,
        max_age_s: float = 300.0,
        dedupe_window: int = 100_000,
    ) -> None:
        self._cond = threading.Condition()
        self._events: deque[Event] = deque()
        self._first_seq = 1
        self._seq = itertools.count(1)
        # Event ids: this bus's random half and its sequence number, 32 hex digits like a
        # uuid4's, unique across processes and restarts (the shared bus stores each id
        # once); a uuid4 per event was 2% of a busy server's time (5,000 GPS fixes/s).
        self._id_prefix = uuid.uuid4().hex[:16]
        self._last_seq = 0
        self._max_events = max_events
        # Like JetStream's MaxAge: this stream serves live consumers, not history (that is
        # in the database). Without it memory grew for as long as the 200,000 events took
        # to fill: 20 cameras' video events alone added 76 MB in ten minutes.
        self._max_age = timedelta(seconds=max_age_s)
        self._msg_ids: OrderedDict[str, Event] = OrderedDict()
        self._dedupe_window = dedupe_window
        self._durables: dict[str, _ConsumerState] = {}
        self._states: dict[int, _ConsumerState] = {}
        self._ephemeral: set[int] = set()
        self._active: set[int] = set()
        self._wanted: dict[str, bool] = {}  # subject -> does a consumer take it (`wants`)
        self._closed = False

    # -- publishing -------------------------------------------------------------------
    def publish(self, subject: str, data: dict[str, Any], *, msg_id: str | None = None) -> Event:
        validate_subject(subject)
        with self._cond:
            ev = self._append(subject, data, msg_id)
            self._wake_all({subject})
            return ev

    def publish_many(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[Event]:
        # One lock and one wake-up of each consumer for the whole batch: a committed batch
        # of calls publishes hundreds of events at once.
        subjects = {subject for subject, _ in events}
        for subject in subjects:
            validate_subject(subject)
        at = datetime.now(UTC)  # one clock reading for the batch: published together
        with self._cond:
            out = [self._append(subject, data, None, at=at) for subject, data in events]
            if out:
                self._wake_all(subjects)
            return out

    def append_received(self, events: Sequence[tuple[str, dict[str, Any], str, datetime]]) -> None:
        """Events another process published (subject, data, id, time), for the subscribers
        here: see `sharedbus.SharedFileBus`. They keep their id and time."""
        with self._cond:
            if self._closed:
                return
            for subject, data, event_id, at in events:
                self._append(subject, data, None, event_id=event_id, at=at)
            if events:
                self._wake_all({e[0] for e in events})

    def _append(
        self,
        subject: str,
        data: dict[str, Any],
        msg_id: str | None,
        *,
        event_id: str | None = None,
        at: datetime | None = None,
    ) -> Event:
        if self._closed:
            raise RuntimeError("event bus is closed")
        if msg_id is not None and msg_id in self._msg_ids:
            return self._msg_ids[msg_id]
        seq = next(self._seq)
        ev = Event(
            subject,
            data,
            seq,
            msg_id or event_id or f"{self._id_prefix}{seq:016x}",
            at or datetime.now(UTC),
        )
        self._events.append(ev)
        self._last_seq = seq
        too_old = ev.time - self._max_age
        while len(self._events) > self._max_events or self._events[0].time < too_old:
            self._events.popleft()
            self._first_seq += 1
        if msg_id is not None:
            self._msg_ids[msg_id] = ev
            while len(self._msg_ids) > self._dedupe_window:
                self._msg_ids.popitem(last=False)
        return ev

    def _wake_all(self, subjects: set[str]) -> None:
        # Only the consumers the new events are for: an AVL gateway publishes thousands of
        # unit positions a second, and waking every console stream for each batch cost more
        # than the streams' own work.
        self._cond.notify_all()
        for key in self._active:
            st = self._states[key]
            if st.waiters and any(subject_matches(st.subject_filter, s) for s in subjects):
                self._wake_async(st)

    def wants(self, subject: str) -> bool:
        """Whether a consumer here (an active one, or a durable one that will resume) takes
        events of `subject`: a shared bus need not copy in the others' events nobody here
        reads."""
        with self._cond:
            got = self._wanted.get(subject)
            if got is None:
                durable = {id(st) for st in self._durables.values()}
                got = any(
                    subject_matches(st.subject_filter, subject)
                    for key, st in self._states.items()
                    if key in self._active or key in durable
                )
                self._wanted[subject] = got
            return got

    @property
    def last_seq(self) -> int:
        return self._last_seq

    # -- consuming --------------------------------------------------------------------
    def subscribe(
        self,
        subject_filter: str,
        *,
        durable: str | None = None,
        deliver: Literal["new", "all"] = "new",
        ack_wait: float = 30.0,
    ) -> Subscription:
        validate_subject(subject_filter, allow_wildcards=True)
        with self._cond:
            if durable is not None and durable in self._durables:
                state = self._durables[durable]
                if state.subject_filter != subject_filter:
                    raise ValueError(
                        f"durable consumer {durable!r} exists with filter "
                        f"{state.subject_filter!r}, not {subject_filter!r}"
                    )
            else:
                start = self._first_seq - 1 if deliver == "all" else self._last_seq
                state = _ConsumerState(self, subject_filter, ack_wait, start)
                if durable is not None:
                    self._durables[durable] = state
                else:
                    self._ephemeral.add(id(state))
                self._states[id(state)] = state
            self._active.add(id(state))
            self._wanted.clear()
            return _InProcessSubscription(self, state, durable)

    def _event_at(self, seq: int) -> Event | None:
        idx = seq - self._first_seq
        if 0 <= idx < len(self._events):
            return self._events[idx]
        return None

    def _events_after(self, seq: int) -> Iterable[Event]:
        """The stream's events after `seq`, oldest first, reached from the nearer end
        (indexing a long deque in its middle walks it, and consumers read near its end)."""
        skip = max(seq + 1 - self._first_seq, 0)
        left = len(self._events) - skip
        if left <= skip:
            return reversed(list(itertools.islice(reversed(self._events), left)))
        return itertools.islice(self._events, skip, None)

    def _take(self, st: _ConsumerState, batch: int) -> list[Message]:
        now = time.monotonic()
        out: list[Message] = []
        for seq, (deadline, n) in list(st.pending.items()):
            if len(out) >= batch:
                break
            if deadline <= now:
                ev = self._event_at(seq)
                if ev is None:  # aged out of the stream
                    del st.pending[seq]
                    continue
                st.pending[seq] = (now + st.ack_wait, n + 1)
                out.append(Message(ev, st, n + 1))
        st.cursor = max(st.cursor, self._first_seq - 1)
        if len(out) < batch and st.cursor < self._last_seq:
            filter_, deadline = st.subject_filter, now + st.ack_wait
            for ev in self._events_after(st.cursor):
                st.cursor = ev.seq
                if subject_matches(filter_, ev.subject):
                    st.pending[ev.seq] = (deadline, 1)
                    out.append(Message(ev, st, 1))
                    if len(out) >= batch:
                        break
        return out

    def _next_deadline(self, st: _ConsumerState) -> float:
        if not st.pending:
            return 3600.0
        soonest = min(d for d, _ in st.pending.values())
        return max(soonest - time.monotonic(), 0.001)

    def _wake_async(self, st: _ConsumerState) -> None:
        for loop, ev in st.waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(ev.set)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def make_bus(url: str) -> EventBus:
    """The bus named by configuration: `memory://` (one process), `sqlite:///PATH` (the
    processes of one machine, `serve --workers`); `nats://` with the scale-out work."""
    if url.startswith("memory://"):
        return InProcessBus()
    if url.startswith("sqlite:///"):
        from pathlib import Path

        from safecity.core.sharedbus import SharedFileBus

        return SharedFileBus(Path(url.removeprefix("sqlite:///")))
    raise NotImplementedError(
        f"bus_url {url!r}: the NATS JetStream adapter is not part of this build; "
        "use memory:// (one process) or sqlite:///PATH (the processes of one machine)"
    )
