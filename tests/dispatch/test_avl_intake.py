"""GPS fixes go through the app's one group-commit writer, beside the calls: batches posted
while calls are being taken in are all stored, a bad batch is refused alone, and what the
bulk path stores is exactly what SQLAlchemy's own executemany stores."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from conftest import login
from safecity.core.runtime import Runtime
from safecity.dispatch import service
from safecity.dispatch.models import UnitPosition
from safecity.dispatch.schemas import Ping
from safecity.incidents.models import Call


def test_fixes_and_calls_taken_in_together(cad_client: TestClient, cad_runtime: Runtime) -> None:
    disp = login(cad_client, "dispatcher")
    taker = login(cad_client, "calltaker")
    units = cad_client.get("/api/v1/units", headers=disp).json()
    now = cad_runtime.clock.now()
    answers: dict[str, list[int]] = {"calls": [], "fixes": [], "bad": []}
    lock = threading.Lock()

    def call_taker(k: int) -> None:
        for i in range(15):
            u = units[(k * 15 + i) % len(units)]
            r = cad_client.post(
                "/api/v1/calls",
                headers=taker,
                json={
                    "caller_number": f"0300{k:03d}{i:04d}",
                    "lat": u["lat"],
                    "lon": u["lon"],
                    "category": "robbery",
                    "external_id": f"AVL-T{k}-{i}",
                },
            )
            with lock:
                answers["calls"].append(r.status_code)

    def gateway(k: int) -> None:
        for b in range(10):
            batch = [
                {
                    "unit_id": u["id"],
                    "lat": u["lat"] + 0.0001 * (b + 1),
                    "lon": u["lon"],
                    "at": (now - timedelta(seconds=60 - b)).isoformat(),
                    "speed_kmh": 30.0,
                }
                for u in units[k * 100 : (k + 1) * 100]
            ]
            r = cad_client.post("/api/v1/units/locations", headers=disp, json=batch)
            assert r.status_code == 202, r.text
            with lock:
                answers["fixes"].append(r.json()["accepted"])
            if b == 4:  # a batch naming a unit that does not exist, in the same stream
                r = cad_client.post(
                    "/api/v1/units/locations",
                    headers=disp,
                    json=[batch[0], {"unit_id": 999_999, "lat": 34.0, "lon": 71.5}],
                )
                with lock:
                    answers["bad"].append(r.status_code)
                assert "999999" in r.json()["message"]

    threads = [threading.Thread(target=call_taker, args=(k,)) for k in range(3)] + [
        threading.Thread(target=gateway, args=(k,)) for k in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert answers["calls"] == [201] * 45
    assert answers["fixes"] == [100] * 20
    assert answers["bad"] == [404, 404]
    with cad_runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(UnitPosition)) == 2000
        assert s.scalar(select(func.count()).select_from(Call)) == 45
    after = {u["id"]: u for u in cad_client.get("/api/v1/units", headers=disp).json()}
    for u in units[:200]:
        assert after[u["id"]]["lat"] == pytest.approx(u["lat"] + 0.001)  # the last batch's
    # Calls and fixes went through one writer.
    state = cad_client.app.state  # type: ignore[attr-defined]
    assert state.call_intake.writer is state.db_writer


def test_a_single_fix_goes_through_the_writer(cad_client: TestClient) -> None:
    disp = login(cad_client, "dispatcher")
    unit = cad_client.get("/api/v1/units", headers=disp).json()[0]
    r = cad_client.post(
        f"/api/v1/units/{unit['id']}/location",
        headers=disp,
        json={"lat": unit["lat"] + 0.0002, "lon": unit["lon"]},
    )
    assert r.status_code == 202 and r.json() == {"accepted": 1}
    r = cad_client.post(
        "/api/v1/units/999999/location", headers=disp, json={"lat": 34.0, "lon": 71.5}
    )
    assert r.status_code == 404 and "unknown unit" in r.json()["message"]
    r = cad_client.post("/api/v1/units/locations", headers=disp, json=[])
    assert r.status_code == 202 and r.json() == {"accepted": 0}


def _ping(unit_id: int, **over: Any) -> Ping:
    return Ping(**({"unit_id": unit_id, "lat": 34.01, "lon": 71.55} | over))


def test_batches_in_one_transaction_are_refused_alone(cad_runtime: Runtime) -> None:
    rt = cad_runtime
    now = rt.clock.now()
    with rt.sessions() as s:
        results = service.ingest_ping_batches(
            s,
            batches=[
                service.PingBatch(pings=[_ping(1), _ping(2)], now=now),
                service.PingBatch(pings=[_ping(3), _ping(999_999)], now=now),
                service.PingBatch(pings=[_ping(4, at=now + timedelta(hours=1))], now=now),
                service.PingBatch(pings=[], now=now),
                service.PingBatch(pings=[_ping(5)] * (service.MAX_PINGS + 1), now=now),
                service.PingBatch(pings=[_ping(6, at=now - timedelta(seconds=5))], now=now),
            ],
        )
        s.commit()
    ok, unknown, future, empty, too_many, late = results
    assert (ok, empty, late) == (2, 0, 1)
    assert "unknown unit id(s): 999999" in str(unknown)
    assert "in the future" in str(future)
    assert "at most 10000" in str(too_many)
    with rt.sessions() as s:
        stored = s.scalars(select(UnitPosition.unit_id).order_by(UnitPosition.id)).all()
    assert stored == [1, 2, 6]  # nothing of the refused batches


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 11, 23, 10, 0, tzinfo=UTC),  # no microseconds
        datetime(2026, 11, 23, 10, 0, 1, 250_000, tzinfo=UTC),
        datetime(2026, 11, 23, 15, 0, 1, 7, tzinfo=timezone(timedelta(hours=5))),
    ],
)
@pytest.mark.parametrize("speed", [None, 42.5])
def test_the_bulk_path_stores_what_sqlalchemy_stores(
    runtime: Runtime, at: datetime, speed: float | None
) -> None:
    row = {"unit_id": 7, "at": at, "lon": 71.5, "lat": 34.0, "speed_kmh": speed}
    with runtime.engine.begin() as conn:
        conn.execute(insert(UnitPosition.__table__), [row])  # SQLAlchemy's own path
        service._KEEP_POSITIONS.execute(conn, {k: [v] for k, v in row.items()})
    with runtime.engine.connect() as conn:
        raw = conn.exec_driver_sql(
            "SELECT unit_id, at, lon, lat, speed_kmh FROM unit_positions ORDER BY id"
        ).all()
        back = conn.execute(select(UnitPosition.at)).scalars().all()
    assert raw[0] == raw[1]
    assert back == [at, at]
