"""EIDO export/import and CAP alerts over HTTP."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

from fastapi.testclient import TestClient

from conftest import login
from safecity.core.runtime import Runtime
from safecity.dispatch import service


def _call(client: TestClient) -> int:
    import shapely

    ct = login(client, "calltaker")
    fc = client.get("/api/v1/geo/stations", headers=ct).json()
    f = next(f for f in fc["features"] if f["properties"]["name"] == "PS Gulbahar")
    p = shapely.geometry.shape(f["geometry"]).representative_point()
    r = client.post(
        "/api/v1/calls",
        headers=ct,
        json={
            "caller_number": "03001234567",
            "caller_name": "Gul Khan",
            "lat": p.y,
            "lon": p.x,
            "category": "robbery",
            "description": "shop robbed, two men on a bike",
        },
    )
    return int(r.json()["incident_id"])


def test_eido_round_trip_between_two_centres(cad_client: TestClient) -> None:
    iid = _call(cad_client)
    disp = login(cad_client, "dispatcher")
    doc = cad_client.get(f"/api/v1/incidents/{iid}/eido", headers=disp).json()
    assert doc["incidentComponent"]["incidentTypeCommonRegistryText"] == [
        "ROBBERY"
    ] or "ROBBERY" in str(doc["incidentComponent"])
    # Another centre (here: the same one, far from the original point) takes it in.
    r = cad_client.post("/api/v1/eido", headers=disp, json=doc)
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["incident_id"] != iid or new["linked_to_existing"]
    again = cad_client.post("/api/v1/eido", headers=disp, json=doc)
    assert again.status_code == 200 and again.json()["call_id"] == new["call_id"]
    detail = cad_client.get(f"/api/v1/incidents/{new['incident_id']}", headers=disp).json()
    assert detail["category"] == "robbery" and detail["caller_number"] == "03001234567"


def test_bad_eido_is_refused_with_the_field_named(cad_client: TestClient) -> None:
    r = cad_client.post(
        "/api/v1/eido", headers=login(cad_client, "dispatcher"), json={"eidoMessageIdentifier": "x"}
    )
    assert r.status_code == 422 and "eidoVersion" in r.json()["message"]


def test_alert_as_cap(cad_client: TestClient, cad_runtime: Runtime) -> None:
    _call(cad_client)
    cad_runtime.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    with cad_runtime.sessions() as s:
        alerts = service.check_response_times(s, now=cad_runtime.clock.now())
    r = cad_client.get(f"/api/v1/alerts/{alerts[0].id}/cap", headers=login(cad_client, "admin"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/cap+xml")
    root = ET.fromstring(r.text)
    ns = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
    assert root.find("cap:identifier", ns).text == f"safecity-alert-{alerts[0].id}"  # type: ignore[union-attr]
    assert root.find("cap:info/cap:area/cap:circle", ns) is not None
