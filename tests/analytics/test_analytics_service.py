"""Analytics over the database: history import, scoping, trends, maps, patrols, the API,
the CLI import and the live mirror."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from analytics_helpers import ADMIN, MID, do_import, history_csv, load_geography
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.analytics import service
from safecity.analytics.models import HistoryIncident
from safecity.cli import main
from safecity.core.auth import Principal, Role, create_user
from safecity.core.errors import Forbidden, NotFound
from safecity.core.runtime import Runtime


def test_import_scoping_trends_and_maps(runtime: Runtime) -> None:
    ids = load_geography(runtime)
    out = do_import(runtime, history_csv())
    assert (out.bad_date, out.bad_coordinates, out.duplicate_id) == (1, 1, 1)
    assert out.outside_jurisdiction == 2 and not out.no_jurisdictions_loaded
    assert out.imported == out.rows - 3
    text = service.describe_import(out)
    assert "1 bad date" in text and "2 incidents lie outside" in text

    # The same file again: every id is known, nothing new; --replace starts over.
    again = do_import(runtime, history_csv())
    assert again.imported == 0 and again.duplicate_id == out.imported + 1
    with runtime.sessions() as s:
        total = s.scalar(select(func.count(HistoryIncident.id)))
        stations = dict(
            s.execute(
                select(HistoryIncident.station_id, func.count()).group_by(
                    HistoryIncident.station_id
                )
            ).all()
        )
    assert total == out.imported
    assert stations[None] == 2 and stations[ids["west"]] > stations[ids["east"]] > 1000

    sho = Principal(
        subject="user:2", name="sho", role=Role.SHO, scope_level="station", scope_id=ids["east"]
    )
    with runtime.sessions() as s:
        everything = service.load(s, actor=ADMIN, dataset="history")
        east = service.load(s, actor=sho, dataset="history")
        thefts = service.load(s, actor=ADMIN, dataset="history", types=["THEFT"])
        assert len(everything) == out.imported
        assert len(east) == stations[ids["east"]] and set(east.station.tolist()) == {ids["east"]}
        assert set(thefts.incidents.types.tolist()) == {"theft"}
        with pytest.raises(NotFound, match="safecity import incidents"):
            service.load(s, actor=ADMIN, dataset="nothing")
        with pytest.raises(Forbidden):
            service.load(s, actor=Principal("svc", "cam", Role.CAMERA_GATEWAY), dataset="history")

        # Trends: the west station's doubling in the last three weeks is an alert.
        rep = service.trend_report(s, actor=ADMIN, dataset="history", group_by="station", monitor=6)
        assert {x.group for x in rep.alerts} == {"West Station"}
        assert len(rep.alerts) >= 2 and all(a.ratio > 1.4 for a in rep.alerts)
        west = next(x for x in rep.series if x.group == "West Station")
        assert sum(p.alert for p in west.points) == len(rep.alerts)
        assert len(rep.weekday_profile) == 7 and abs(sum(rep.hour_profile) - 1) < 1e-3
        daily = service.trend_report(
            s, actor=ADMIN, dataset="history", period="day", group_by="type"
        )
        assert {x.group for x in daily.series} == {"assault", "theft"}
        # The SHO sees his station only: no alert (the rise is in the west).
        assert (
            service.trend_report(s, actor=sho, dataset="history", group_by="station").alerts == []
        )

        gi = service.hotspot_layer(s, actor=ADMIN, dataset="history", method="gi")
        hot = [f for f in gi["features"] if f["properties"]["bin"] == 3]
        assert hot and all(f["properties"]["z"] > 2.5 for f in hot)
        lon, lat = hot[0]["geometry"]["coordinates"][0][0]
        assert abs(lon - 71.505) < 0.004 and abs(lat - 34.035) < 0.004  # the west hot corner
        kde = service.hotspot_layer(s, actor=ADMIN, dataset="history", method="kde", days=90)
        assert max(f["properties"]["density_km2"] for f in kde["features"]) > 0
        counts = service.hotspot_layer(s, actor=sho, dataset="history", method="counts")
        assert counts["meta"]["incidents"] <= len(east)
        em = service.emerging_layer(s, actor=ADMIN, dataset="history", slices=8)
        assert set(em["meta"]["counts"]) >= {"new", "persistent", "intensifying"}

        # A user with none of a dataset's incidents in his jurisdiction still gets the list.
        nobody = Principal("user:3", "sho2", Role.SHO, scope_level="station", scope_id=-5)
        listed = {d.dataset: d.incidents for d in service.list_datasets(s, actor=nobody)}
        assert listed == {"history": 0}
        assert {d.dataset: d.incidents for d in service.list_datasets(s, actor=sho)} == {
            "history": len(east)
        }

        fc = service.forecast_layer(s, actor=ADMIN, dataset="history", model="blend")
        assert fc["meta"]["week_start"] == "2018-12-31"
        ranks = [f["properties"]["rank"] for f in fc["features"]]
        assert ranks == list(range(1, len(ranks) + 1))
        assert len(json.dumps(fc)) < 2_000_000


def test_patrols_api_and_live_mirror(runtime: Runtime, client: TestClient) -> None:
    ids = load_geography(runtime)
    do_import(runtime, history_csv(1, rise=False))
    with runtime.sessions() as s, s.begin():
        create_user(
            s, username="root", password="root-password", role=Role.ADMIN, now=runtime.clock.now()
        )
        create_user(
            s, username="sho.east", password="sho-password", role=Role.SHO, scope_level="station",
            scope_id=ids["east"], now=runtime.clock.now(),
        )  # fmt: skip

    def login(user: str, pw: str) -> dict[str, str]:
        r = client.post("/api/v1/auth/token", data={"username": user, "password": pw})
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    admin = login("root", "root-password")
    sho = login("sho.east", "sho-password")
    api = "/api/v1/analytics"
    assert client.get(f"{api}/datasets").status_code == 401
    ds = client.get(f"{api}/datasets", headers=admin).json()
    assert ds[0]["dataset"] == "history" and ds[0]["tz"] == "Asia/Karachi"
    assert ds[0]["types"] == ["assault", "theft"]

    plan = client.get(f"{api}/patrols", params={"top": 5}, headers=admin).json()
    assert {(p["station"], p["shift"]) for p in plan} == {
        (st, sh)
        for st in ("West Station", "East Station")
        for sh in ("morning", "evening", "night")
    }
    for p in plan:
        assert [c["rank"] for c in p["cells"]] == [1, 2, 3, 4, 5]
        assert p["cells"][0]["expected"] >= p["cells"][-1]["expected"]
    west_cells = next(p for p in plan if p["station"] == "West Station")["cells"]
    assert all(c["lon"] < MID for c in west_cells)
    mine = client.get(f"{api}/patrols", headers=sho).json()
    assert {p["station"] for p in mine} == {"East Station"}
    sheet = client.get(f"{api}/patrols", params={"format": "html"}, headers=sho)
    assert sheet.headers["content-type"].startswith("text/html")
    assert "East Station" in sheet.text and "West Station" not in sheet.text
    assert "page-break-after" in sheet.text and "Night shift (22:00-06:00)" in sheet.text
    layer = client.get(f"{api}/patrols", params={"format": "geojson", "top": 2}, headers=admin)
    assert len(layer.json()["features"]) == 2 * 3 * 2

    r = client.get(
        f"{api}/trends", params={"group_by": "district", "period": "week"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["series"][0]["group"] == "District"
    assert client.get(f"{api}/alerts", headers=admin).status_code == 200
    r = client.get(f"{api}/hotspots", params={"method": "gi", "cell_m": 200}, headers=sho)
    assert r.status_code == 200 and all(
        f["geometry"]["coordinates"][0][0][0] > MID - 0.01 for f in r.json()["features"]
    )
    assert client.get(f"{api}/emerging", params={"slices": 6}, headers=admin).status_code == 200
    r = client.get(
        f"{api}/forecast", params={"model": "kde", "week_start": "2018-06-04"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["meta"]["week_start"] == "2018-06-04"
    r = client.get(f"{api}/forecast", params={"model": "magic"}, headers=admin)
    assert r.status_code == 422 and "unknown model 'magic'" in r.json()["message"]
    assert set(client.get(f"{api}/models", headers=admin).json()) >= {"naive", "sepp", "blend"}

    with runtime.sessions() as s, s.begin():
        service.save_evaluation(
            s, source="x.csv", params={"from": "2018-01-01"}, result={"best": "kde"},
            now=runtime.clock.now(),
        )  # fmt: skip
    assert client.get(f"{api}/evaluations", headers=admin).json()[0]["result"]["best"] == "kde"

    # The live mirror: an incidents.created payload becomes a row of dataset "live", once.
    payload = {
        "incident_id": 7, "category": "robbery", "lon": 71.54, "lat": 34.02,
        "station_id": ids["east"], "tehsil_id": None, "district_id": ids["district"],
        "province_id": None, "received_at": "2018-12-30T10:00:00+00:00",
    }  # fmt: skip
    with runtime.sessions() as s, s.begin():
        assert service.mirror_incident(s, payload) is True
        assert service.mirror_incident(s, payload) is False
    with runtime.sessions() as s:
        live = service.load(s, actor=ADMIN, dataset="live")
        assert len(live) == 1 and live.incidents.tz == "Asia/Karachi"
        assert live.incidents.t[0] % 1 == pytest.approx(15 / 24)  # 10:00 UTC = 15:00 PKT


def test_cli_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAFECITY_MODE", "demo")
    monkeypatch.setenv("SAFECITY_DATA_DIR", str(tmp_path / "var"))
    path = tmp_path / "history.csv"
    path.write_text(
        "Date,X,Y,Kind\n2018-01-01 10:00,71.5,34.0,a\n2018-02-30 10:00,71.5,34.0,a\n",
        encoding="utf-8",
    )
    args = [
        "import",
        "incidents",
        str(path),
        "--date-col",
        "Date",
        "--lon-col",
        "X",
        "--lat-col",
        "Y",
    ]
    assert main([*args, "--type-col", "Kind", "--tz", "Asia/Karachi", "--dataset", "old"]) == 0
    out = capsys.readouterr().out
    assert "2 rows, 1 imported" in out and "1 bad date" in out
    assert "no police station areas are loaded" in out
    assert main([*args, "--type-col", "Nope"]) == 2
    assert "no column 'Nope'" in capsys.readouterr().err


def test_the_live_mirror_copies_a_burst_of_incidents_in_one_transaction(
    runtime: Runtime,
) -> None:
    """Incidents published close together are mirrored by one commit (each commit queues
    behind call intake for the database writer), and all of them arrive."""
    import threading
    import time

    from sqlalchemy import event

    commits: list[str] = []

    def on_commit(_conn: Any) -> None:
        commits.append(threading.current_thread().name)

    event.listen(runtime.engine, "commit", on_commit)
    stop = service.start_live_mirror(runtime)
    try:
        for i in range(5):
            runtime.bus.publish(
                "incidents.created",
                {
                    "incident_id": 100 + i, "category": "robbery", "lon": 71.54, "lat": 34.02,
                    "station_id": None, "tehsil_id": None, "district_id": None,
                    "province_id": None, "received_at": f"2018-12-30T10:0{i}:00+00:00",
                },
            )  # fmt: skip
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while True:
            with runtime.sessions() as s:
                n = s.scalar(
                    select(func.count())
                    .select_from(HistoryIncident)
                    .where(HistoryIncident.dataset == "live")
                )
            if n == 5 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert n == 5
    finally:
        t0 = time.monotonic()
        stop()
        assert time.monotonic() - t0 < 3.0, "stopping the mirror waited for its linger"
        event.remove(runtime.engine, "commit", on_commit)
    assert commits.count("analytics-live-mirror") == 1, commits
