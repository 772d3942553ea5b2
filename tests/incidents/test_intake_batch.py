"""Set-based call intake (`receive_calls`) and the group-commit writer (`CallIntake`): a
batch behaves exactly as its calls taken one by one, a bad call never spoils the others,
and a call is answered only once it is committed."""

from __future__ import annotations

import math
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import login
from safecity.core.auth import Principal, Role
from safecity.core.errors import Forbidden, InvalidInput
from safecity.core.runtime import Runtime
from safecity.geo import service as geo
from safecity.incidents import service
from safecity.incidents.intake import CallIntake
from safecity.incidents.models import Call, Incident, IncidentEvent
from safecity.incidents.schemas import CallAccepted, CallIn

PBX = Principal(subject="pbx", name="pbx", role=Role.TELEPHONY)
ANALYST = Principal(subject="analyst", name="analyst", role=Role.ANALYST)
M = 1 / 111_195.0  # one metre of latitude, in degrees


def _point(rt: Runtime, index: int = 0) -> tuple[float, float]:
    with rt.sessions() as s:
        _, lon, lat = geo.representative_points(s, level="station")[index]
    return lon, lat


def _req(rt: Runtime, lon: float, lat: float, **over: Any) -> service.CallRequest:
    actor = over.pop("actor", PBX)
    at = over.pop("at", rt.clock.now())
    fields: dict[str, Any] = {
        "caller_number": "03001234567",
        "lon": lon,
        "lat": lat,
        "category": "robbery",
        "description": "two men on a motorcycle took a phone",
    } | over
    return service.CallRequest(call=CallIn(**fields), actor=actor, received_at=at)


def _take(rt: Runtime, requests: list[service.CallRequest]) -> list[Any]:
    with rt.sessions() as s:
        out = service.receive_calls(s, requests=requests)
        s.commit()
    return out


def test_a_batch_links_its_own_duplicates_and_isolates_bad_calls(cad_runtime: Runtime) -> None:
    rt = cad_runtime
    lon, lat = _point(rt)
    far_lon, far_lat = _point(rt, 5)
    sub = rt.bus.subscribe("incidents.>")
    results = _take(
        rt,
        [
            _req(rt, lon, lat, external_id="PBX-1"),
            _req(rt, lon, lat + 50 * M, caller_number="03117654321"),  # same event, 50 m
            _req(rt, lon, lat, category="no-such-type"),
            _req(rt, lon, lat, external_id="PBX-1"),  # the telephony system sent it twice
            _req(rt, far_lon, far_lat),
            _req(rt, lon, lat, actor=ANALYST),
        ],
    )
    first, linked, bad, repeat, far, refused = results
    assert isinstance(first, CallAccepted) and not first.linked_to_existing
    assert isinstance(linked, CallAccepted) and linked.linked_to_existing
    assert linked.incident_id == first.incident_id and linked.call_id != first.call_id
    assert isinstance(bad, InvalidInput) and "no-such-type" in bad.message
    assert isinstance(repeat, CallAccepted) and repeat.duplicate_of_external_id
    assert (repeat.incident_id, repeat.call_id) == (first.incident_id, first.call_id)
    assert isinstance(far, CallAccepted) and far.incident_id != first.incident_id
    assert isinstance(refused, Forbidden)

    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == 2
        assert s.scalar(select(func.count()).select_from(Call)) == 3
        inc = s.get(Incident, first.incident_id)
        assert inc is not None and inc.call_count == 2
        kinds = s.scalars(
            select(IncidentEvent.kind)
            .where(IncidentEvent.incident_id == first.incident_id)
            .order_by(IncidentEvent.id)
        ).all()
    assert kinds == ["received", "routed", "call_linked"]
    events = [(m.subject, m.data["incident_id"], m.data["call_count"]) for m in sub.fetch()]
    assert sorted(events) == sorted(
        [
            ("incidents.created", first.incident_id, 1),
            ("incidents.created", far.incident_id, 1),
            ("incidents.updated", first.incident_id, 2),
        ]
    )


def test_a_batch_links_to_stored_open_incidents_only(cad_runtime: Runtime) -> None:
    rt = cad_runtime
    lon, lat = _point(rt, 2)
    (open_one,) = _take(rt, [_req(rt, lon, lat)])
    (closed_one,) = _take(rt, [_req(rt, lon + 0.01, lat, category="fire")])
    with rt.sessions() as s:
        inc = s.get(Incident, closed_one.incident_id)
        assert inc is not None
        inc.status = "closed"
        s.commit()
    a, b, c = _take(
        rt,
        [
            _req(rt, lon, lat + 100 * M),
            _req(rt, lon, lat - 100 * M),
            _req(rt, lon + 0.01, lat, category="fire"),
        ],
    )
    assert a.incident_id == b.incident_id == open_one.incident_id
    assert a.linked_to_existing and b.linked_to_existing
    assert c.incident_id != closed_one.incident_id and not c.linked_to_existing
    with rt.sessions() as s:
        inc = s.get(Incident, open_one.incident_id)
        assert inc is not None and inc.call_count == 3


def test_outside_the_window_or_radius_opens_a_new_incident(cad_runtime: Runtime) -> None:
    rt = cad_runtime
    lon, lat = _point(rt, 3)
    (old,) = _take(rt, [_req(rt, lon, lat, at=rt.clock.now() - timedelta(minutes=16))])
    late, far = _take(rt, [_req(rt, lon, lat), _req(rt, lon, lat + 400 * M)])
    assert late.incident_id != old.incident_id and not late.linked_to_existing
    assert far.incident_id not in (old.incident_id, late.incident_id)


def test_prank_calls_in_one_batch_are_counted_in_order(cad_runtime: Runtime) -> None:
    rt = cad_runtime
    lon, lat = _point(rt, 4)
    pranks = [
        _req(rt, lon, lat + i * 0.01, category="prank", caller_number="03339990000")
        for i in range(4)
    ]
    flags = [r.repeat_prank_caller for r in _take(rt, pranks)]
    assert flags == [False, False, True, True]  # flagged after two prank calls
    (later,) = _take(rt, [_req(rt, lon, lat, caller_number="03339990000")])
    assert later.repeat_prank_caller


def test_receive_call_is_a_batch_of_one(cad_runtime: Runtime) -> None:
    rt = cad_runtime
    lon, lat = _point(rt, 6)
    with rt.sessions() as s:
        with pytest.raises(InvalidInput, match="unknown category"):
            service.receive_call(
                s, call=_req(rt, lon, lat, category="nope").call, actor=PBX, now=rt.clock.now()
            )
        one = service.receive_call(s, call=_req(rt, lon, lat).call, actor=PBX, now=rt.clock.now())
    with rt.sessions() as s:  # committed
        assert s.get(Incident, one.incident_id) is not None


def test_the_writer_answers_every_call_once_committed(cad_runtime: Runtime) -> None:
    rt = cad_runtime
    intake = CallIntake(rt.sessions, max_batch=16)
    points = [_point(rt, i) for i in range(8)]
    answers: list[Any] = []
    lock = threading.Lock()

    def call_taker(k: int) -> None:
        lon, lat = points[k]
        for i in range(25):
            req = _req(rt, lon + i * 0.004, lat, external_id=f"T{k}-{i}")
            try:
                got: Any = intake.submit(req).result(timeout=60)
            except Exception as exc:
                got = exc
            # Answered means committed: a fresh session sees it at once.
            if isinstance(got, CallAccepted):
                with rt.sessions() as s:
                    assert s.get(Call, got.call_id) is not None
            with lock:
                answers.append(got)

    threads = [threading.Thread(target=call_taker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = intake.submit(_req(rt, *points[0], category="nope"))
    with pytest.raises(InvalidInput):
        bad.result(timeout=60)
    intake.close()
    assert len(answers) == 200 and all(isinstance(a, CallAccepted) for a in answers)
    assert len({a.call_id for a in answers}) == 200
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Call)) == 200
    # A closed writer starts again on the next call.
    again = intake.submit(_req(rt, *points[1], external_id="T-again")).result(timeout=60)
    assert isinstance(again, CallAccepted)
    intake.close()


def test_the_fast_path_refuses_an_oversized_body(cad_client: Any) -> None:
    big = b'{"description": "' + b"x" * (70 * 1024) + b'"}'
    r = cad_client.post("/api/v1/calls", content=big, headers={"X-API-Key": "sc_x_y"})
    # Credentials are checked first: a stranger learns nothing about the body limit.
    assert r.status_code == 401
    r = cad_client.post("/api/v1/calls", content=big, headers=login(cad_client, "calltaker"))
    assert r.status_code == 413 and "64 KB" in r.json()["message"]


@pytest.mark.parametrize("lat0", [0.0, 33.99, 34.0, 51.5, 69.9, -33.9])
def test_cells_around_hold_every_point_within_the_radius(lat0: float) -> None:
    """Whatever the grid alignment and latitude, a point within the duplicate radius lies
    in one of the cells read for a call (else a duplicate would be missed)."""
    import random

    rng = random.Random(int(lat0 * 100))
    for _ in range(2000):
        lon, lat = 71.5 + rng.uniform(-0.05, 0.05), lat0 + rng.uniform(-0.05, 0.05)
        bearing, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0, service.DUPLICATE_RADIUS_M)
        dlat = dist * math.cos(bearing) * M
        dlon = dist * math.sin(bearing) * M / math.cos(math.radians(lat))
        other = service.location_cell(lon + dlon, lat + dlat)
        assert other in service.cells_around(lon, lat)


def test_calls_across_a_cell_edge_are_linked(cad_runtime: Runtime) -> None:
    rt = cad_runtime
    lon, lat = _point(rt, 7)
    # Move to just west of a cell edge: the second caller, 100 m east, is in the next cell.
    edge = (math.floor((lon + 180.0) / service._CELL_DEG) + 1) * service._CELL_DEG - 180.0
    west = edge - 10 * M
    east = edge + 90 * M / math.cos(math.radians(lat))
    assert service.location_cell(west, lat) != service.location_cell(east, lat)
    (first,) = _take(rt, [_req(rt, west, lat)])
    (second,) = _take(rt, [_req(rt, east, lat, caller_number="03450000001")])
    assert second.linked_to_existing and second.incident_id == first.incident_id


# Stored candidates are remembered per process (`_RecentIncidents`, SQLite): what it
# remembers must never link a call to an incident that no longer qualifies, and incidents
# another process stored must be found.


def test_an_incident_closed_after_it_was_remembered_gets_no_more_calls(
    cad_runtime: Runtime,
) -> None:
    rt = cad_runtime
    lon, lat = _point(rt, 7)
    (first,) = _take(rt, [_req(rt, lon, lat)])
    (second,) = _take(rt, [_req(rt, lon, lat + 50 * M)])  # read (and remembered) as open
    assert second.linked_to_existing and second.incident_id == first.incident_id
    with rt.sessions() as s:
        service.change_status(
            s,
            incident_id=first.incident_id,
            status="cancelled",
            actor=Principal(subject="admin", name="admin", role=Role.ADMIN),
            now=rt.clock.now(),
        )
        s.commit()
    third, fourth = _take(rt, [_req(rt, lon, lat + 80 * M), _req(rt, lon, lat + 90 * M)])
    assert not third.linked_to_existing and third.incident_id != first.incident_id
    assert fourth.linked_to_existing and fourth.incident_id == third.incident_id
    (fifth,) = _take(rt, [_req(rt, lon, lat + 20 * M)])  # the nearest is the cancelled one
    assert fifth.incident_id == third.incident_id
    with rt.sessions() as s:
        closed = s.get(Incident, first.incident_id)
        assert closed is not None and closed.call_count == 2


def test_incidents_stored_by_another_process_are_linked(cad_runtime: Runtime) -> None:
    from safecity.core.runtime import build_runtime

    rt = cad_runtime
    here = _point(rt, 8)
    there = _point(rt, 9)
    (x,) = _take(rt, [_req(rt, *here)])  # this process remembers from here on
    other = build_runtime(rt.settings, clock=rt.clock, run_migrations=False)
    try:
        # The other process starts with incident x stored, and stores y.
        (y,) = _take(other, [_req(other, *there)])
        (to_x,) = _take(other, [_req(other, here[0], here[1] + 60 * M)])
        (to_y,) = _take(rt, [_req(rt, there[0], there[1] + 60 * M)])
    finally:
        other.close()
    assert to_x.linked_to_existing and to_x.incident_id == x.incident_id
    assert to_y.linked_to_existing and to_y.incident_id == y.incident_id


def test_a_rolled_back_batch_is_not_remembered(cad_runtime: Runtime) -> None:
    """A process remembers its own incidents only once committed: SQLite gives a
    rolled-back batch's ids again, and had they been remembered as read, the incidents
    that get those ids next (here another process's) would be skipped and never linked."""
    from safecity.core.runtime import build_runtime

    rt = cad_runtime
    here, there, elsewhere = _point(rt, 10), _point(rt, 11), _point(rt, 12)
    _take(rt, [_req(rt, *here)])  # this process remembers from here on
    with rt.sessions() as s:
        ghost = service.receive_calls(s, requests=[_req(rt, *elsewhere)])
        s.rollback()
    other = build_runtime(rt.settings, clock=rt.clock, run_migrations=False)
    try:
        (y,) = _take(other, [_req(other, *there)])
    finally:
        other.close()
    if rt.engine.dialect.name == "sqlite":  # (PostgreSQL's sequences never give one again)
        assert y.incident_id == ghost[0].incident_id  # the id came again
    (to_y,) = _take(rt, [_req(rt, there[0], there[1] + 60 * M)])
    assert to_y.linked_to_existing and to_y.incident_id == y.incident_id


def test_own_incidents_are_remembered_only_right_after_the_last_one_read() -> None:
    """`add_committed` takes a process's own committed incidents as read only when their
    ids follow the last id it read: with a gap (someone else's incident in between), the
    next read must take them all, in order."""
    from datetime import UTC, datetime

    def cand(id_: int) -> service._Candidate:
        at = datetime(2026, 1, 1, tzinfo=UTC)
        return service._Candidate(id_, 5, 73.0, 33.7, "robbery", "routed", at)

    recent = service._RecentIncidents()
    recent.add_committed([cand(1)])  # nothing read yet: the first read bootstraps
    assert recent._last_id is None and not recent._in_order
    recent._last_id = 10
    recent.add_committed([cand(12), cand(13)])  # 11 is someone else's
    assert recent._last_id == 10 and not recent._in_order
    recent.add_committed([cand(11), cand(13)])  # 12 is someone else's
    assert recent._last_id == 10 and not recent._in_order
    recent.add_committed([cand(12), cand(11)])
    assert recent._last_id == 12 and [c.id for c in recent._in_order] == [11, 12]
    assert [c.id for c in recent._cells[5]["robbery"]] == [11, 12]


def test_prank_counts_start_from_the_batch_numbers(cad_runtime: Runtime) -> None:
    """The prank count of a batch's callers is looked up by their numbers: SQLite's
    planner had started from every incident of type prank (its category index), so each
    batch read every prank call ever stored and intake slowed down as history grew."""
    rt = cad_runtime
    if rt.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query planner")
    q = service._PRANKS._for(rt.engine.dialect, (32,))
    with rt.engine.connect() as conn:
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + q.sql, tuple([None] * q.sql.count("?"))
        ).all()
    steps = " | ".join(str(row[3]) for row in plan)
    assert "ix_calls_caller_number" in steps, steps
    assert "ix_incidents_category" not in steps, steps
