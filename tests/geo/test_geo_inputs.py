"""Bad inputs to the geo routes and services get a clear 4xx naming what is wrong, never a
500, and a refused import leaves the stored jurisdictions as they were."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import login
from safecity.core.errors import NotFound
from safecity.core.runtime import Runtime
from safecity.geo import service as geo

BEYOND_64_BITS = 2**63
BEYOND_32_BITS = 2**31


@pytest.mark.parametrize("parent_id", [BEYOND_64_BITS, BEYOND_32_BITS, 0, -1])
def test_jurisdictions_parent_id_out_of_range_is_refused(
    demo_client: TestClient, parent_id: int
) -> None:
    """Was a 500 (SQLite OverflowError) past 64 bits; ids past the INTEGER column are no
    row's."""
    r = demo_client.get(
        "/api/v1/geo/jurisdictions",
        params={"parent_id": parent_id},
        headers=login(demo_client, "admin"),
    )
    assert r.status_code == 422, r.text
    assert "parent_id" in r.json()["message"]


@pytest.mark.parametrize("jurisdiction_id", [BEYOND_64_BITS, BEYOND_32_BITS, 0])
def test_services_treat_ids_past_the_column_as_unknown(
    demo_runtime: Runtime, jurisdiction_id: int
) -> None:
    """Other domains (a unit's home station, an incident's transfer) look jurisdictions up
    by an id from a request body: past the column it is NotFound, not an OverflowError."""
    with demo_runtime.sessions() as session:
        for call in (
            lambda: geo.get_jurisdiction(session, jurisdiction_id=jurisdiction_id),
            lambda: geo.ids_of(session, jurisdiction_id=jurisdiction_id),
            lambda: geo.area_type(session, station_id=jurisdiction_id),
        ):
            with pytest.raises(NotFound):
                call()
        assert geo.list_jurisdictions(session, parent_id=jurisdiction_id) == []


def _stations(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    fc: dict[str, Any] = client.get("/api/v1/geo/stations", headers=headers).json()
    return fc


@pytest.mark.parametrize(
    ("props", "words"),
    [
        ({"station_lon": float("nan")}, "station_lon"),
        ({"station_lat": float("inf")}, "station_lon/station_lat"),
        ({"station_lon": 500.0}, "station_lon"),
        ({"station_lon": True}, "station_lon"),
        ({"station_lon": "71.5"}, "station_lon"),
        ({"station_lat": None}, "station_lon"),
        ({"area_type": "Rural"}, "area_type"),
        ({"area_type": "suburban"}, "area_type"),
    ],
)
def test_station_import_refuses_bad_station_position_and_area_type(
    cad_client: TestClient, props: dict[str, Any], words: str
) -> None:
    """Was accepted: a NaN station position was stored as NULL (the station lost its
    building), an out-of-range one stored as is, and an unknown area type silently became
    urban (other response targets)."""
    admin = login(cad_client, "admin")
    fc = _stations(cad_client, admin)
    before = fc["features"][0]["properties"]
    fc["features"][0]["properties"] = {**before, **props}
    r = cad_client.post(
        "/api/v1/geo/import/station",
        content=json.dumps(fc),  # NaN and Infinity as JSON tokens, as Python writes them
        headers={**admin, "content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert words in r.json()["message"] and "feature 0" in r.json()["message"]
    after = _stations(cad_client, admin)["features"][0]["properties"]
    assert after == before


def test_station_import_keeps_a_valid_rural_area_type(
    cad_client: TestClient, cad_runtime: Runtime
) -> None:
    admin = login(cad_client, "admin")
    fc = _stations(cad_client, admin)
    props = fc["features"][0]["properties"]
    props.update(area_type="rural", station_lon=71.5, station_lat=34.0)
    r = cad_client.post("/api/v1/geo/import/station", json=fc, headers=admin)
    assert r.status_code == 201, r.text
    with cad_runtime.sessions() as session:
        assert geo.area_type(session, station_id=props["id"]) == "rural"
        got = geo.get_jurisdiction(session, jurisdiction_id=props["id"])
        assert (got.lon, got.lat) == (71.5, 34.0)
