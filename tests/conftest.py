"""Shared fixtures: a real database per test (SQLite file, and PostgreSQL when
SAFECITY_TEST_POSTGRES_URL is set), a runtime with a manual clock, an API client, and the
demo province loaded once per backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from safecity.app import create_app
from safecity.core.clock import ManualClock
from safecity.core.config import load_settings
from safecity.core.runtime import Runtime, build_runtime

PG_URL = os.environ.get("SAFECITY_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
DEMO_PASSWORD = "demo-password-1"


def shared_dir() -> Path:
    return Path(
        os.environ.get("SAFECITY_SHARED", Path(__file__).resolve().parents[1] / ".." / "shared")
    )


@pytest.fixture(autouse=True)
def _no_local_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A developer's own safecity.toml or SAFECITY_* variables must not change test results."""
    import os as _os

    for key in list(_os.environ):
        if key.startswith("SAFECITY_") and key not in (
            "SAFECITY_TEST_POSTGRES_URL",
            "SAFECITY_SHARED",
        ):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SAFECITY_CONFIG", str(tmp_path_factory.getbasetemp() / "absent.toml"))


def _database_url(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'safecity.db'}"
        return
    assert PG_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema},public"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _runtime(url: str, data_dir: Path) -> Runtime:
    settings = load_settings(mode="demo", data_dir=data_dir, database_url=url)
    return build_runtime(settings, clock=ManualClock())


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """An empty, migrated database on each backend."""
    gen = _database_url(request.param, tmp_path)
    url = next(gen)
    rt = _runtime(url, tmp_path)
    try:
        yield rt
    finally:
        rt.close()
        gen.close()


@pytest.fixture(scope="session", params=BACKENDS)
def demo_runtime(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """The demo province, loaded once per backend. Tests must not change what it holds
    beyond adding incidents."""
    from safecity.sim.democity import build_demo_city
    from safecity.sim.loader import load_demo_city

    tmp = tmp_path_factory.mktemp(f"demo-{request.param}")
    gen = _database_url(request.param, tmp)
    url = next(gen)
    rt = _runtime(url, tmp)
    load_demo_city(rt, build_demo_city(), password=DEMO_PASSWORD)
    try:
        yield rt
    finally:
        rt.close()
        gen.close()


@pytest.fixture
def cad_runtime(runtime: Runtime) -> Runtime:
    """A fresh database per test with the demo geography, units and users (no cameras), and
    a manual clock: for tests that change incidents, units and timers."""
    from safecity.sim.democity import build_demo_city
    from safecity.sim.loader import load_demo_city

    load_demo_city(
        runtime,
        _CITY.get() or _CITY.set(build_demo_city()),
        password=DEMO_PASSWORD,
        with_cameras=False,
    )
    return runtime


@pytest.fixture
def cad_client(cad_runtime: Runtime) -> Iterator[TestClient]:
    yield from _client(cad_runtime)


class _Once:
    """The demo city is deterministic: build it once per test session."""

    def __init__(self) -> None:
        self.value: Any = None

    def get(self) -> Any:
        return self.value

    def set(self, value: Any) -> Any:
        self.value = value
        return value


_CITY = _Once()


@pytest.fixture(scope="session")
def demo_city():  # type: ignore[no-untyped-def]
    from safecity.sim.democity import build_demo_city

    return build_demo_city()


def _client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt, with_console=False, with_monitor=False)) as client:
        yield client


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    yield from _client(runtime)


@pytest.fixture(scope="session")
def demo_client(demo_runtime: Runtime) -> Iterator[TestClient]:
    yield from _client(demo_runtime)


def login(client: TestClient, username: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
    """Headers with a bearer token for `username`."""
    r = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def open_incident(client: TestClient, lon: float, lat: float, category: str = "robbery") -> int:
    """A call taken at (lon, lat) as a new incident (never linked as a duplicate): its id."""
    r = client.post(
        "/api/v1/calls",
        headers=login(client, "calltaker"),
        json={
            "caller_number": "03001234567",
            "lat": lat,
            "lon": lon,
            "category": category,
            "link_duplicates": False,
        },
    )
    assert r.status_code == 201, r.text
    return int(r.json()["incident_id"])
