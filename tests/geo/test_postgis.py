"""On PostgreSQL with PostGIS, jurisdictions carry an indexed geometry that agrees with
the in-memory lookup."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from safecity.core.runtime import Runtime
from safecity.geo import service as geo


def test_postgis_geometry_agrees_with_the_index(demo_runtime: Runtime) -> None:
    if demo_runtime.engine.dialect.name != "postgresql":
        pytest.skip("PostGIS is a PostgreSQL feature")
    with demo_runtime.engine.connect() as conn:
        cols = conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'jurisdictions' AND table_schema = current_schema()"
            )
        ).scalars()
        if "geom" not in set(cols):
            pytest.skip("PostGIS is not installed on this PostgreSQL server")
    with demo_runtime.sessions() as session:
        points = geo.representative_points(session, level="station")
        for station_id, lon, lat in points:
            found = (
                session.execute(
                    text(
                        "SELECT id FROM jurisdictions WHERE level = 'station' AND "
                        "ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
                    ),
                    {"lon": lon, "lat": lat},
                )
                .scalars()
                .all()
            )
            assert found == [station_id]
            assert geo.locate_point(session, lon=lon, lat=lat).station_id == station_id
