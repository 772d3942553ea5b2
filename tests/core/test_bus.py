"""The in-process bus keeps JetStream's promises: order, subject filters, ack/redelivery,
durable resume, publish de-duplication, thread and asyncio consumers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from safecity.core.bus import InProcessBus, subject_matches


@pytest.mark.parametrize(
    ("filter_", "subject", "expected"),
    [
        ("incidents.created", "incidents.created", True),
        ("incidents.*", "incidents.created", True),
        ("incidents.*", "incidents.created.x", False),
        ("incidents.>", "incidents.created.x", True),
        ("incidents.>", "incidents", False),
        (">", "units.location", True),
        ("*.location", "units.location", True),
        ("units.location", "units.locations", False),
    ],
)
def test_subject_matching(filter_: str, subject: str, expected: bool) -> None:
    assert subject_matches(filter_, subject) is expected


def test_delivers_in_order_only_matching_subjects() -> None:
    bus = InProcessBus()
    sub = bus.subscribe("incidents.>")
    for i in range(5):
        bus.publish("incidents.created", {"n": i})
        bus.publish("units.location", {"n": i})
    msgs = sub.fetch(batch=100, timeout=0.1)
    assert [m.data["n"] for m in msgs] == [0, 1, 2, 3, 4]
    assert all(m.subject == "incidents.created" for m in msgs)


@pytest.mark.parametrize("lag", [0, 3, 700, 1990])
@pytest.mark.parametrize("batch", [1, 7, 500])
def test_a_consumer_behind_by_any_amount_gets_every_match_in_order(lag: int, batch: int) -> None:
    """A consumer reads the stream from its cursor: from the stream's start when far
    behind, from its end when close (both ways, in batches, after old events aged out)."""
    bus = InProcessBus(max_events=1000)
    sub = bus.subscribe("incidents.*")
    subjects = ["units.location", "incidents.created", "alerts.raised", "incidents.updated"]
    for n in range(2000 - lag):
        bus.publish(subjects[n % 4], {"n": n})
    got = []
    while msgs := sub.fetch(batch=batch, timeout=0.01):
        got += [m.data["n"] for m in msgs]
    for n in range(2000 - lag, 2000):
        bus.publish(subjects[n % 4], {"n": n})
    while msgs := sub.fetch(batch=batch, timeout=0.01):
        got += [m.data["n"] for m in msgs]
    first = range(max(1000 - lag, 0), 2000 - lag)  # the last 1000 of the first part
    kept = [*first, *range(max(2000 - lag, 1000), 2000)]  # then what is left of the rest
    assert got == [n for n in kept if n % 2 == 1]


def test_unacked_message_is_redelivered_after_ack_wait() -> None:
    bus = InProcessBus()
    sub = bus.subscribe("a.b", ack_wait=0.2)
    bus.publish("a.b", {"x": 1})
    first = sub.fetch(timeout=0.1)
    assert len(first) == 1 and first[0].attempt == 1
    assert sub.fetch(timeout=0.05) == []  # not yet due
    again = sub.fetch(timeout=1.0)
    assert len(again) == 1 and again[0].attempt == 2 and again[0].data == {"x": 1}
    again[0].ack()
    assert sub.fetch(timeout=0.3) == []


def test_nak_redelivers_at_once() -> None:
    bus = InProcessBus()
    sub = bus.subscribe("a.b", ack_wait=30)
    bus.publish("a.b", {"x": 1})
    sub.fetch(timeout=0.1)[0].nak()
    assert sub.fetch(timeout=0.1)[0].attempt == 2


def test_durable_consumer_resumes_where_it_stopped() -> None:
    bus = InProcessBus()
    sub = bus.subscribe("calls.*", durable="console")
    bus.publish("calls.new", {"n": 1})
    for m in sub.fetch(timeout=0.1):
        m.ack()
    sub.close()
    bus.publish("calls.new", {"n": 2})
    bus.publish("calls.new", {"n": 3})
    sub = bus.subscribe("calls.*", durable="console")
    assert [m.data["n"] for m in sub.fetch(timeout=0.1)] == [2, 3]


def test_durable_with_another_filter_is_refused() -> None:
    bus = InProcessBus()
    bus.subscribe("a.*", durable="x")
    with pytest.raises(ValueError, match="exists with filter"):
        bus.subscribe("b.*", durable="x")


def test_deliver_all_replays_the_stream() -> None:
    bus = InProcessBus()
    bus.publish("a.b", {"n": 1})
    assert [m.data["n"] for m in bus.subscribe("a.b", deliver="all").fetch(timeout=0.1)] == [1]
    assert bus.subscribe("a.b").fetch(timeout=0.05) == []


def test_msg_id_deduplicates() -> None:
    bus = InProcessBus()
    sub = bus.subscribe("a.b")
    e1 = bus.publish("a.b", {"n": 1}, msg_id="call-77")
    e2 = bus.publish("a.b", {"n": 1}, msg_id="call-77")
    assert e1.seq == e2.seq
    assert len(sub.fetch(timeout=0.1)) == 1


@pytest.mark.parametrize("subject", ["", "a..b", "a.*", "a b"])
def test_bad_subjects_are_refused(subject: str) -> None:
    with pytest.raises(ValueError, match="invalid subject"):
        InProcessBus().publish(subject, {})


def test_fetch_wakes_when_another_thread_publishes() -> None:
    bus = InProcessBus()
    sub = bus.subscribe("a.b")
    threading.Timer(0.1, lambda: bus.publish("a.b", {"x": 1})).start()
    t0 = time.monotonic()
    msgs = sub.fetch(timeout=5)
    assert msgs and time.monotonic() - t0 < 2


def test_async_consumer_is_woken_by_a_thread_publish() -> None:
    bus = InProcessBus()

    async def main() -> list[int]:
        sub = bus.subscribe("a.>")
        loop = asyncio.get_running_loop()
        loop.call_later(
            0.05,
            lambda: threading.Thread(
                target=lambda: [bus.publish("a.x", {"n": i}) for i in range(3)]
            ).start(),
        )
        got: list[int] = []
        while len(got) < 3:
            for m in await sub.fetch_async(timeout=2):
                got.append(m.data["n"])
                m.ack()
        return got

    assert asyncio.run(asyncio.wait_for(main(), 5)) == [0, 1, 2]


def test_many_publishers_lose_nothing() -> None:
    bus = InProcessBus()
    sub = bus.subscribe(">", durable="all")
    threads = [
        threading.Thread(target=lambda k=k: [bus.publish(f"t.{k}", {"i": i}) for i in range(500)])
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = []
    while batch := sub.fetch(batch=1000, timeout=0.1):
        for m in batch:
            seen.append((m.subject, m.data["i"]))
            m.ack()
    assert len(seen) == len(set(seen)) == 2000


def test_closed_streams_leave_nothing_behind() -> None:
    """Every console tab and SSE client opens consumers and closes them: a busy centre
    opens thousands a day."""
    from safecity.core.bus import InProcessBus

    bus = InProcessBus()
    for _ in range(1000):
        bus.subscribe("incidents.>").close()
    bus.subscribe("incidents.created", durable="mirror").close()
    assert len(bus._states) == 1  # only the durable consumer, which resumes
    assert bus.wants("incidents.created") and not bus.wants("units.location")


def test_the_stream_forgets_events_older_than_its_age_limit() -> None:
    import time

    from safecity.core.bus import InProcessBus

    bus = InProcessBus(max_age_s=0.2)
    sub = bus.subscribe("vision.>", deliver="all")
    bus.publish("vision.events.zone", {"n": 1})
    time.sleep(0.3)
    bus.publish("vision.events.zone", {"n": 2})
    assert len(bus._events) == 1  # memory holds only what a live consumer may still need
    assert [m.data["n"] for m in sub.fetch(batch=10, timeout=0.1)] == [2]


def test_event_ids_are_unique_across_buses_and_shaped_like_uuids() -> None:
    # Two processes (or one restarted) publish to one shared file that stores an id once.
    first, second = InProcessBus(), InProcessBus()
    ids = [b.publish("units.location", {"n": n}).id for b in (first, second) for n in range(500)]
    ids += [first.publish_many([("incidents.created", {})] * 3)[k].id for k in range(3)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    first.close()
    second.close()
