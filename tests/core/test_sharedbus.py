"""The event bus shared by server processes through an SQLite file (`serve --workers`)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from safecity.core.bus import Message, Subscription, make_bus
from safecity.core.sharedbus import SharedFileBus


def _drain(sub: Subscription, want: int, timeout: float = 5.0) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        for msg in sub.fetch(batch=1000, timeout=0.2):
            msg.ack()
            got.append(msg)
    return got


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[SharedFileBus, SharedFileBus]]:
    a = SharedFileBus(tmp_path / "bus.db")
    b = SharedFileBus(tmp_path / "bus.db")
    yield a, b
    a.close()
    b.close()


def test_an_event_reaches_the_other_bus_once_and_the_own_bus_once(
    pair: tuple[SharedFileBus, SharedFileBus],
) -> None:
    a, b = pair
    sub_a, sub_b = a.subscribe("incidents.>"), b.subscribe("incidents.>")
    sent = a.publish("incidents.created", {"incident_id": 7, "station_id": 3})
    got_b = _drain(sub_b, 1)
    assert [(m.subject, m.data) for m in got_b] == [
        ("incidents.created", {"incident_id": 7, "station_id": 3})
    ]
    assert got_b[0].event.id == sent.id  # the same event, not a copy with a new identity
    assert got_b[0].event.time == sent.time
    got_a = _drain(sub_a, 2, timeout=0.5)  # its own event, not a second time from the file
    assert [m.data["incident_id"] for m in got_a] == [7]


def test_batches_from_two_publishers_keep_each_publishers_order(
    pair: tuple[SharedFileBus, SharedFileBus], tmp_path: Path
) -> None:
    a, b = pair
    watcher = SharedFileBus(tmp_path / "bus.db")  # a third process, only subscribing
    try:
        sub = watcher.subscribe("calls.*")
        for i in range(0, 300, 100):
            a.publish_many([("calls.a", {"n": n}) for n in range(i, i + 100)])
            b.publish_many([("calls.b", {"n": n}) for n in range(i, i + 100)])
        got = _drain(sub, 600)
        assert len(got) == 600
        for subject in ("calls.a", "calls.b"):
            assert [m.data["n"] for m in got if m.subject == subject] == list(range(300))
    finally:
        watcher.close()


def test_a_message_id_is_stored_once_across_processes(
    pair: tuple[SharedFileBus, SharedFileBus],
) -> None:
    a, b = pair
    sub_a, sub_b = a.subscribe("alerts.>"), b.subscribe("alerts.>")
    a.publish("alerts.fired", {"alert": 1}, msg_id="alert-1-level-2")
    b.publish("alerts.fired", {"alert": 1}, msg_id="alert-1-level-2")
    b.publish("alerts.fired", {"alert": 2}, msg_id="alert-2-level-1")
    a.publish("alerts.fired", {"alert": 2}, msg_id="alert-2-level-1")
    for sub in (sub_a, sub_b):
        got = _drain(sub, 3, timeout=1.0)
        assert sorted(m.data["alert"] for m in got) == [1, 2]
    rows = a._writer.execute("SELECT count(*) FROM events").fetchone()[0]
    assert rows == 2


def test_a_bus_started_later_sees_only_new_events(tmp_path: Path) -> None:
    first = SharedFileBus(tmp_path / "bus.db")
    try:
        first.publish("units.status", {"unit_id": 1})
        late = SharedFileBus(tmp_path / "bus.db")
        try:
            sub = late.subscribe("units.>")
            first.publish("units.status", {"unit_id": 2})
            assert [m.data["unit_id"] for m in _drain(sub, 2, timeout=1.0)] == [2]
        finally:
            late.close()
    finally:
        first.close()


def test_the_file_keeps_only_the_newest_events(tmp_path: Path) -> None:
    bus = SharedFileBus(tmp_path / "bus.db", keep_events=50)
    try:
        bus.publish_many([("x.y", {"n": n}) for n in range(120)])
        bus._trim()
        seqs = [r[0] for r in bus._writer.execute("SELECT seq FROM events ORDER BY seq")]
        assert len(seqs) == 50 and seqs[-1] == 120
    finally:
        bus.close()


def test_events_survive_values_json_cannot_hold(
    pair: tuple[SharedFileBus, SharedFileBus],
) -> None:
    from datetime import UTC, datetime

    a, b = pair
    sub = b.subscribe("video.>")
    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    a.publish("video.event", {"at": at})
    assert _drain(sub, 1)[0].data == {"at": str(at)}


_PUBLISHER = """
import sys
from pathlib import Path
from safecity.core.sharedbus import SharedFileBus
bus = SharedFileBus(Path(sys.argv[1]))
bus.publish_many([("incidents.created", {"incident_id": i}) for i in range(int(sys.argv[2]))])
bus.close()
"""


def test_events_published_by_another_process_arrive(tmp_path: Path) -> None:
    bus = make_bus(f"sqlite:///{tmp_path / 'bus.db'}")
    try:
        sub = bus.subscribe("incidents.created")
        subprocess.run(
            [sys.executable, "-c", _PUBLISHER, str(tmp_path / "bus.db"), "250"],
            check=True,
            timeout=60,
        )
        assert [m.data["incident_id"] for m in _drain(sub, 250)] == list(range(250))
    finally:
        bus.close()


def test_a_closed_bus_refuses_to_publish(tmp_path: Path) -> None:
    bus = SharedFileBus(tmp_path / "bus.db")
    bus.close()
    with pytest.raises(RuntimeError, match="closed"):
        bus.publish("incidents.created", {"incident_id": 1})


def test_only_subjects_a_consumer_here_takes_are_copied_in(
    pair: tuple[SharedFileBus, SharedFileBus],
) -> None:
    a, b = pair
    sub = b.subscribe("incidents.>")
    a.publish_many([("units.location", {"unit_id": n}) for n in range(50)])
    a.publish("incidents.created", {"incident_id": 1})
    assert [m.data for m in _drain(sub, 1)] == [{"incident_id": 1}]
    assert b.last_seq == 1  # the 50 positions nobody here reads were not decoded
    sub.close()
    late = b.subscribe("units.>")  # a reader now: what comes next is copied in
    a.publish("units.location", {"unit_id": 99})
    assert [m.data for m in _drain(late, 1)] == [{"unit_id": 99}]


def test_a_durable_consumer_away_still_gets_its_subjects_copied_in(
    pair: tuple[SharedFileBus, SharedFileBus],
) -> None:
    a, b = pair
    b.subscribe("incidents.created", durable="mirror").close()
    a.publish("incidents.created", {"incident_id": 5})
    time.sleep(0.3)
    again = b.subscribe("incidents.created", durable="mirror")
    assert [m.data for m in _drain(again, 1)] == [{"incident_id": 5}]
