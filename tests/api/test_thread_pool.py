"""Requests that wait for the database must never keep a finished request from giving its
connection back. Sync routes run in a bounded thread pool; the one SQLite connection (or a
full PostgreSQL pool) is returned when a request's session is closed. If closing needed a
slot in that pool, a burst of requests bigger than the pool would fill every slot with
requests waiting for the connection, while the request holding it waited for a slot to
close its session: the server stalled for the pool's whole timeout (60 s) and then failed
them all. Seen under `safecity bench cad` with 64 client connections."""

from __future__ import annotations

import threading
import time

import anyio.to_thread
from fastapi.testclient import TestClient

from conftest import login
from safecity.app import create_app
from safecity.core.auth import Principal, Role
from safecity.core.runtime import Runtime
from safecity.incidents import service as incidents
from safecity.incidents.schemas import CallIn
from safecity.registry import service as registry

BURST = 12
POOL_THREADS = 2  # the thread pool made small, so a burst of 12 overfills it


def test_a_burst_larger_than_the_thread_pool_is_served(cad_runtime: Runtime) -> None:
    rt = cad_runtime
    with rt.sessions() as s:
        unit = registry.list_units(s)[0]
        accepted = incidents.receive_call(
            s,
            now=rt.clock.now(),
            actor=Principal(subject="t", name="t", role=Role.ADMIN),
            call=CallIn(
                caller_number="03001234567", lat=unit.lat, lon=unit.lon, category="robbery"
            ),
        )
    app = create_app(rt, with_console=False, with_monitor=False)
    with TestClient(app) as client:
        headers = login(client, "admin")

        async def shrink_pool() -> None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = POOL_THREADS

        assert client.portal is not None
        client.portal.call(shrink_pool)
        answers: list[int] = []
        start = threading.Barrier(BURST)

        def read_incident() -> None:
            start.wait()
            r = client.get(f"/api/v1/incidents/{accepted.incident_id}", headers=headers)
            answers.append(r.status_code)

        threads = [threading.Thread(target=read_incident, daemon=True) for _ in range(BURST)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        stalled = sum(t.is_alive() for t in threads)
        assert stalled == 0, f"{stalled} of {BURST} requests still waiting after 20 s"
        assert answers == [200] * BURST
