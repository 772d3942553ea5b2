"""Importing jurisdiction layers through the API and the CLI: validated whole, all or
nothing, with errors that say what to fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.core.auth import Role, create_user
from safecity.core.runtime import Runtime
from safecity.geo.models import Jurisdiction


def _square(x0: float, y0: float, size: float) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [
            [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
        ],
    }


def _fc(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def _feat(geom: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geom, "properties": props}


PROVINCE = _fc(_feat(_square(71.0, 33.0, 1.0), name="Test Province", code="TP"))
DISTRICTS = _fc(
    _feat(
        {
            "type": "Polygon",
            "coordinates": [[[71.0, 33.0], [71.5, 33.0], [71.5, 34.0], [71.0, 34.0], [71.0, 33.0]]],
        },
        name="West",
        code="W",
        province="TP",
    ),
    _feat(
        {
            "type": "Polygon",
            "coordinates": [[[71.5, 33.0], [72.0, 33.0], [72.0, 34.0], [71.5, 34.0], [71.5, 33.0]]],
        },
        name="East",
        code="E",
        province="TP",
    ),
)


@pytest.fixture
def admin(runtime: Runtime, client: TestClient) -> dict[str, str]:
    with runtime.sessions() as s, s.begin():
        create_user(
            s, username="root", password="root-password", role=Role.ADMIN, now=runtime.clock.now()
        )
    r = client.post("/api/v1/auth/token", data={"username": "root", "password": "root-password"})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _count(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Jurisdiction)) or 0)


def _import(
    client: TestClient, admin: dict[str, str], level: str, doc: Any, make_valid: bool = False
) -> Any:
    return client.post(
        f"/api/v1/geo/import/{level}?make_valid={str(make_valid).lower()}", headers=admin, json=doc
    )


def test_hierarchy_import_and_lookup(
    runtime: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    assert _import(client, admin, "province", PROVINCE).status_code == 201
    r = _import(client, admin, "district", DISTRICTS)
    assert r.status_code == 201 and r.json()["created"] == 2
    tehsils = _fc(
        _feat(_square(71.0, 33.0, 0.5), name="W-South", district="W"),
        _feat(
            {
                "type": "Polygon",
                "coordinates": [
                    [[71.0, 33.5], [71.5, 33.5], [71.5, 34.0], [71.0, 34.0], [71.0, 33.5]]
                ],
            },
            name="W-North",
            district="W",
        ),
        _feat(
            {
                "type": "Polygon",
                "coordinates": [
                    [[71.5, 33.0], [72.0, 33.0], [72.0, 34.0], [71.5, 34.0], [71.5, 33.0]]
                ],
            },
            name="E-All",
            district="E",
        ),
    )
    assert _import(client, admin, "tehsil", tehsils).status_code == 201
    stations = _fc(
        _feat(_square(71.0, 33.0, 0.5), name="PS One", tehsil="W-South"),
        _feat(
            {
                "type": "Polygon",
                "coordinates": [
                    [[71.0, 33.5], [71.5, 33.5], [71.5, 34.0], [71.0, 34.0], [71.0, 33.5]]
                ],
            },
            name="PS Two",
            tehsil="W-North",
        ),
        _feat(
            {
                "type": "Polygon",
                "coordinates": [
                    [[71.5, 33.0], [72.0, 33.0], [72.0, 34.0], [71.5, 34.0], [71.5, 33.0]]
                ],
            },
            name="PS Three",
            tehsil="E-All",
        ),
    )
    assert _import(client, admin, "station", stations).status_code == 201
    fc = client.get("/api/v1/geo/stations", headers=admin).json()
    names = {f["properties"]["name"]: f["properties"] for f in fc["features"]}
    assert set(names) == {"PS One", "PS Two", "PS Three"}
    assert names["PS Two"]["district"] == "West" and names["PS Two"]["tehsil"] == "W-North"
    loc = client.get(
        "/api/v1/geo/locate", params={"lat": 33.75, "lon": 71.25}, headers=admin
    ).json()
    assert loc["station_id"] == names["PS Two"]["id"] and loc["inside"] is True
    assert loc["district_id"] == names["PS Two"]["district_id"]
    # Re-importing a layer updates by code, it does not duplicate.
    r = _import(client, admin, "station", stations)
    assert r.json()["created"] == 0 and r.json()["updated"] == 3


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"type": "Feature"}, ["FeatureCollection"]),
        (_fc(_feat(_square(71.0, 33.0, 0.5))), ["name"]),
        (_fc(_feat(_square(710000.0, 3300000.0, 5000.0), name="UTM")), ["UTM"]),
        (
            _fc(
                _feat(
                    {
                        "type": "Polygon",
                        "coordinates": [
                            [[71.0, 33.0], [71.5, 33.5], [71.5, 33.0], [71.0, 33.5], [71.0, 33.0]]
                        ],
                    },
                    name="Bowtie",
                )
            ),
            ["Bowtie", "make-valid"],
        ),
        (_fc(_feat({"type": "Point", "coordinates": [71.0, 33.0]}, name="Dot")), ["Dot"]),
    ],
)
def test_bad_layers_are_refused_whole(
    runtime: Runtime, client: TestClient, admin: dict[str, str], doc: Any, words: list[str]
) -> None:
    r = _import(client, admin, "province", doc)
    assert r.status_code == 422, r.text
    for w in words:
        assert w in r.json()["message"], r.json()["message"]
    assert _count(runtime) == 0


def test_unknown_parent_gap_and_overlap(
    runtime: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    _import(client, admin, "province", PROVINCE)
    orphan = _fc(_feat(_square(71.0, 33.0, 0.5), name="Lost", province="Atlantis"))
    r = _import(client, admin, "district", orphan)
    assert r.status_code == 422 and "'Atlantis' is not known" in r.json()["message"]
    only_west = _fc(DISTRICTS["features"][0])
    r = _import(client, admin, "district", only_west)
    assert r.status_code == 422 and "gap" in r.json()["message"]
    overlapping = json.loads(json.dumps(DISTRICTS))
    overlapping["features"][1]["geometry"] = _square(71.4, 33.0, 1.0)
    r = _import(client, admin, "district", overlapping)
    assert r.status_code == 422 and "overlap" in r.json()["message"].lower()
    assert _count(runtime) == 1  # the province alone; nothing half-imported


def test_make_valid_repairs_and_warns(
    runtime: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    bowtie = _fc(
        _feat(
            {
                "type": "Polygon",
                "coordinates": [
                    [[71.0, 33.0], [72.0, 34.0], [72.0, 33.0], [71.0, 34.0], [71.0, 33.0]]
                ],
            },
            name="Bowtie",
        )
    )
    r = _import(client, admin, "province", bowtie, make_valid=True)
    assert r.status_code == 201, r.text
    assert r.json()["warnings"] and "Bowtie" in r.json()["warnings"][0]


def test_lookup_without_stations_says_what_to_do(client: TestClient, admin: dict[str, str]) -> None:
    r = client.get("/api/v1/geo/locate", params={"lat": 34.0, "lon": 71.5}, headers=admin)
    assert r.status_code == 422 and "import" in r.json()["message"]


@pytest.mark.parametrize(("lat", "lon"), [(91, 71), (34, 181), (-91, 0)])
def test_locate_out_of_range(demo_client: TestClient, lat: float, lon: float) -> None:
    from conftest import login

    r = demo_client.get(
        "/api/v1/geo/locate", params={"lat": lat, "lon": lon}, headers=login(demo_client, "admin")
    )
    assert r.status_code == 422
    assert "lat" in r.json()["message"] or "lon" in r.json()["message"]


def test_cli_import_reports_errors_and_imports(tmp_path: Path) -> None:
    env = {
        "SAFECITY_DATA_DIR": str(tmp_path),
        "SAFECITY_MODE": "demo",
        "SAFECITY_CONFIG": str(tmp_path / "none.toml"),
        "PATH": "/usr/bin:/bin",
    }
    bad = tmp_path / "bad.geojson"
    bad.write_text("{ not json")
    cli = [sys.executable, "-m", "safecity.cli", "import", "geo"]
    r = subprocess.run(
        [*cli, str(bad), "--level", "province"], env=env, capture_output=True, text=True
    )
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    good = tmp_path / "province.geojson"
    good.write_text(json.dumps(PROVINCE))
    r = subprocess.run(
        [*cli, str(good), "--level", "province"], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "1 created" in r.stdout
    r = subprocess.run(
        [*cli, str(tmp_path / "missing.geojson"), "--level", "province"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "file not found" in r.stderr


def test_a_station_change_made_by_another_process_reaches_the_locator(
    cad_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --workers`: another process imported stations; this one's cached locator
    notices within `check_s` from the stations' row count and newest change time."""
    import time
    from datetime import timedelta

    from sqlalchemy import update

    from safecity.geo import service as geo

    with cad_runtime.sessions() as s:
        row = s.scalars(select(Jurisdiction).where(Jurisdiction.level == "station")).first()
        assert row is not None
        sid, old = row.id, row.name
        point = s.get(Jurisdiction, sid)
        assert point is not None and point.lon is not None and point.lat is not None
        lon, lat = point.lon, point.lat
        assert geo.station_locator(s).locate(lon, lat).station_name == old
    # What another process's import leaves behind, without this process's invalidation:
    with cad_runtime.sessions() as s, s.begin():
        newest = s.scalar(select(func.max(Jurisdiction.updated_at)))
        assert newest is not None
        s.execute(
            update(Jurisdiction)
            .where(Jurisdiction.id == sid)
            .values(
                name="Renamed elsewhere",
                updated_at=newest + timedelta(seconds=1),
            )
        )
    with cad_runtime.sessions() as s:
        assert geo.station_locator(s).locate(lon, lat).station_name == old  # not checked yet
        later = time.monotonic() + geo._LOCATORS.check_s + 1
        monkeypatch.setattr(geo.time, "monotonic", lambda: later)
        assert geo.station_locator(s).locate(lon, lat).station_name == "Renamed elsewhere"
