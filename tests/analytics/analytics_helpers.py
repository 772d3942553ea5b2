"""Shared by the analytics tests: a small province of two stations, a two-year history
in it with a planted rise, and its import."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from safecity.analytics import service
from safecity.analytics.events import ColumnMap, read_csv
from safecity.core.auth import Principal, Role
from safecity.core.runtime import Runtime
from safecity.geo import service as geo

W, S, E, N = 71.50, 34.00, 71.56, 34.04  # the province: two stations, west and east halves
MID = 71.53


def _fc(*feats: tuple[list[float], dict[str, Any]]) -> dict[str, Any]:
    out = []
    for (x0, y0, x1, y1), props in feats:
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        out.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": props,
            }
        )
    return {"type": "FeatureCollection", "features": out}


def load_geography(runtime: Runtime) -> dict[str, int]:
    now = runtime.clock.now()
    with runtime.sessions() as s, s.begin():
        box = [W, S, E, N]
        geo.import_geojson(
            s, doc=_fc((box, {"name": "Province", "code": "P"})), level="province", now=now
        )
        geo.import_geojson(
            s,
            doc=_fc((box, {"name": "District", "code": "D", "province": "P"})),
            level="district",
            now=now,
        )
        geo.import_geojson(
            s,
            doc=_fc((box, {"name": "Tehsil", "code": "T", "district": "D"})),
            level="tehsil",
            now=now,
        )
        geo.import_geojson(
            s,
            doc=_fc(
                ([W, S, MID, N], {"name": "West Station", "code": "WS", "tehsil": "T"}),
                ([MID, S, E, N], {"name": "East Station", "code": "ES", "tehsil": "T"}),
            ),
            level="station",
            now=now,
        )
    with runtime.sessions() as s:
        return {
            "west": geo.find_by_code(s, level="station", code="WS").id,
            "east": geo.find_by_code(s, level="station", code="ES").id,
            "district": geo.find_by_code(s, level="district", code="D").id,
        }


def history_csv(seed: int = 0, *, rise: bool = True) -> str:
    """Two years of incidents: hot corners in each station, a few outside the province,
    a doubling in the west station's last three weeks, and a few bad rows."""
    rng = np.random.default_rng(seed)
    start = datetime(2017, 1, 2)
    lines = ["id,when,lon,lat,kind"]
    n = 0
    for day in range(728):
        when = start + timedelta(days=day)
        lam = 6.0 * (2.0 if rise and day >= 707 else 1.0)
        for _ in range(rng.poisson(lam)):
            hot = rng.random() < 0.5
            lon = 71.505 + rng.normal(0, 0.001) if hot else rng.uniform(W, MID)
            lat = 34.035 + rng.normal(0, 0.001) if hot else rng.uniform(S, N)
            lines.append(
                f"W{n},{when:%Y-%m-%d} {rng.integers(0, 24):02d}:30,{lon:.5f},{lat:.5f},assault"
            )
            n += 1
        for _ in range(rng.poisson(4.0)):
            lon, lat = rng.uniform(MID, E), rng.uniform(S, N)
            kind = "theft" if rng.random() < 0.5 else "assault"
            lines.append(
                f"E{n},{when:%Y-%m-%d} {rng.integers(0, 24):02d}:10,{lon:.5f},{lat:.5f},{kind}"
            )
            n += 1
    lines += [
        "X1,2017-03-01 10:00,71.60,34.02,assault",  # outside the province
        "X2,2017-03-02 10:00,71.45,34.02,assault",  # outside the province
        "B1,yesterday,71.52,34.02,assault",  # bad date
        "B2,2017-03-02 10:00,,34.02,assault",  # bad coordinates
        "W0,2017-01-02 00:30,71.51,34.01,assault",  # repeated id
    ]
    return "\n".join(lines) + "\n"


COLUMNS = ColumnMap(date="when", longitude="lon", latitude="lat", type="kind", id="id")


def do_import(runtime: Runtime, text: str, **kw: Any) -> Any:
    inc, report = read_csv(io.StringIO(text), columns=COLUMNS, tz="Asia/Karachi")
    with runtime.sessions() as s, s.begin():
        return service.import_history(
            s,
            incidents=inc,
            report=report,
            dataset=kw.pop("dataset", "history"),
            source="test.csv",
            now=runtime.clock.now(),
            actor="test",
            **kw,
        )


ADMIN = Principal(subject="user:1", name="admin", role=Role.ADMIN)
