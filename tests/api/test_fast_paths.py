"""The ASGI fast paths (`POST /api/v1/calls`, `POST /api/v1/units/locations`) answer
exactly as their documented FastAPI routes do, good input and bad: the same status and
the same JSON body, with the same checks in the same order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from safecity.app import create_app
from safecity.core.auth import Role, create_service_account
from safecity.core.runtime import Runtime
from safecity.dispatch.api import AvlIntakeFastPath
from safecity.incidents.api import CallIntakeFastPath
from safecity.registry import service as registry

_FAST_PATHS = (CallIntakeFastPath, AvlIntakeFastPath)


@pytest.fixture
def clients(cad_runtime: Runtime) -> Iterator[tuple[TestClient, TestClient, dict[str, str]]]:
    """(the app as served, the same app without its fast paths, API keys by role)."""
    rt = cad_runtime
    keys = {}
    with rt.sessions() as s, s.begin():
        for role in (Role.TELEPHONY, Role.DISPATCHER, Role.ANALYST):
            _, keys[role.value] = create_service_account(
                s, name=f"fast-{role.value}", role=role, now=rt.clock.now()
            )
    fast_app = create_app(rt, with_console=False, with_monitor=False)
    plain_app = create_app(rt, with_console=False, with_monitor=False)
    assert {m.cls for m in fast_app.user_middleware} >= set(_FAST_PATHS)
    # The stack is built on the first request: without these, the routes answer.
    plain_app.user_middleware = [m for m in plain_app.user_middleware if m.cls not in _FAST_PATHS]
    with TestClient(fast_app) as fast, TestClient(plain_app) as plain:
        yield fast, plain, keys


def _both(
    fast: TestClient, plain: TestClient, path: str, body: Any, headers: dict[str, str]
) -> tuple[tuple[int, Any], tuple[int, Any]]:
    content = body if isinstance(body, bytes) else None
    json_body = None if isinstance(body, bytes) else body
    if content is not None:
        headers = {**headers, "Content-Type": "application/json"}
    out = []
    for client in (fast, plain):
        r = client.post(path, content=content, json=json_body, headers=headers)
        out.append((r.status_code, r.json()))
    return out[0], out[1]


def test_avl_batches_are_answered_as_the_route_answers(
    clients: tuple[TestClient, TestClient, dict[str, str]], cad_runtime: Runtime
) -> None:
    fast, plain, keys = clients
    with cad_runtime.sessions() as s:
        units = [u for u in registry.list_units(s)][:3]
    good = [{"unit_id": u.id, "lat": u.lat, "lon": u.lon, "speed_kmh": 20.0} for u in units]
    gateway = {"X-API-Key": keys["dispatcher"]}
    cases: list[tuple[str, Any, dict[str, str], int]] = [
        ("good batch", good, gateway, 202),
        ("empty batch", [], gateway, 202),
        ("bearer-less, key-less", good, {}, 401),
        ("unknown key", good, {"X-API-Key": "nope"}, 401),
        ("no incidents.read", good, {"X-API-Key": keys["telephony"]}, 403),
        ("not JSON", b"{not json", gateway, 422),
        ("not a list", {"unit_id": 1}, gateway, 422),
        ("latitude out of range", [{**good[0], "lat": 95.0}], gateway, 422),
        ("missing field", [{"unit_id": units[0].id, "lat": 1.0}], gateway, 422),
        ("unknown unit", [{**good[0], "unit_id": 999_999}], gateway, None),  # type: ignore[list-item]
        ("too large", good * 50_000, gateway, 413),
    ]
    for name, body, headers, status in cases:
        got, want = _both(fast, plain, "/api/v1/units/locations", body, headers)
        assert got == want, name
        if status is not None:
            assert got[0] == status, name
    assert _both(fast, plain, "/api/v1/units/locations", good, gateway)[0] == (
        202,
        {"accepted": 3},
    )


def test_calls_are_answered_as_the_route_answers(
    clients: tuple[TestClient, TestClient, dict[str, str]], cad_runtime: Runtime
) -> None:
    fast, plain, keys = clients
    with cad_runtime.sessions() as s:
        unit = registry.list_units(s)[0]
    pbx = {"X-API-Key": keys["telephony"]}

    def call(ext: str | None = None, **over: Any) -> dict[str, Any]:
        return {
            "caller_number": "03001234567",
            "lat": unit.lat,
            "lon": unit.lon,
            "category": "robbery",
            "external_id": ext,
            "link_duplicates": False,  # the two apps' calls stay apart
            **over,
        }

    ids = ("incident_id", "call_id")
    # A new call and its repeat: the same answers but for the new rows' ids.
    for label, ext, status in (("new", "FAST-1", 201), ("repeat", "FAST-1", 200)):
        got = fast.post("/api/v1/calls", json=call(ext), headers=pbx)
        want = plain.post("/api/v1/calls", json=call(ext.replace("FAST", "PLAIN")), headers=pbx)
        assert got.status_code == want.status_code == status, label
        g, w = got.json(), want.json()
        assert {k: v for k, v in g.items() if k not in ids} == {
            k: v for k, v in w.items() if k not in ids
        }, label
    cases: list[tuple[str, Any, dict[str, str], int]] = [
        ("no credentials", call("X-1"), {}, 401),
        ("unknown key", call("X-2"), {"X-API-Key": "nope"}, 401),
        ("no calls.create", call("X-3"), {"X-API-Key": keys["analyst"]}, 403),
        ("not JSON", b"{not json", pbx, 422),
        ("unknown category", call("X-4", category="alien"), pbx, 422),
        ("latitude out of range", call("X-5", lat=95.0), pbx, 422),
        ("missing number", {"lat": 1.0, "lon": 1.0, "category": "robbery"}, pbx, 422),
        ("too large", call("X-6", description="x" * 70_000), pbx, 413),
    ]
    for name, body, headers, status in cases:
        got, want = _both(fast, plain, "/api/v1/calls", body, headers)
        if status == 413:  # only the fast path bounds a call's size
            assert got[0] == 413 and got[1]["error"] == "payload_too_large", got
            continue
        if isinstance(body, bytes):
            # The route has FastAPI parse the JSON ("JSON decode error"); the fast path
            # has pydantic parse it and says where it broke. Both refuse it alike.
            assert got[0] == want[0] == 422 and got[1]["error"] == want[1]["error"], name
            continue
        assert got == want, name
        assert got[0] == status, name
