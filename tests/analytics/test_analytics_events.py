"""Reading incident histories: column mapping, time zones, bad rows reported."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_dir
from safecity.analytics.events import ColumnMap, day_number, read_csv
from safecity.analytics.grid import Grid, utm_epsg
from safecity.core.errors import InvalidInput


def test_iso_dates_types_and_bad_rows_counted() -> None:
    text = (
        "date,longitude,latitude,type\n"
        "2018-01-02 10:30,71.55,34.01,assault\n"
        "2018-01-01,71.56,34.02,theft\n"
        "2018-13-01 10:00,71.55,34.01,assault\n"  # no 13th month
        ",71.55,34.01,assault\n"  # no date
        "2018-01-03 08:00,,34.01,assault\n"  # no longitude
        "2018-01-03 08:00,0,0,assault\n"  # null island
        "2018-01-03 08:00,34.01,171.55,assault\n"  # swapped: latitude out of range
        "2018-01-03 09:00,71.57,34.03\n"  # no type field at all: kept, type empty
        "\n"
    )
    inc, report = read_csv(io.StringIO(text))
    assert (report.rows, report.kept, report.bad_date, report.bad_coordinates) == (8, 3, 2, 3)
    assert report.skipped == 5
    assert any("line 4: bad date '2018-13-01 10:00'" in e for e in report.examples)
    assert any(e.startswith("line 6: bad coordinates") for e in report.examples)
    assert list(inc.types) == ["theft", "assault", ""]  # sorted by time
    assert inc.t[0] == day_number(datetime(2018, 1, 1))
    assert "3 kept" in report.summary() and "2 bad date" in report.summary()


def test_column_mapping_date_format_and_ids() -> None:
    """The open_cp example's layout: other names, US dates, ids; a repeated id is skipped."""
    text = (
        "Case Number,Date,Block,Primary Type,Latitude,Longitude\n"
        "HZ1,04/27/2016 01:44:00 PM,073XX S COTTAGE,BATTERY,41.761772852,-87.605478606\n"
        "HZ2,05/04/2016 02:12:00 AM,065XX S DREXEL,THEFT,41.776257774,-87.603401116\n"
        "HZ1,04/27/2016 01:44:00 PM,073XX S COTTAGE,BATTERY,41.761772852,-87.605478606\n"
    )
    cols = ColumnMap(
        date="Date",
        longitude="Longitude",
        latitude="Latitude",
        type="Primary Type",
        id="Case Number",
        date_format="%m/%d/%Y %I:%M:%S %p",
    )
    inc, report = read_csv(io.StringIO(text), columns=cols, tz="America/Chicago")
    assert report.kept == 2 and report.duplicate_id == 1
    assert inc.ids == ["HZ1", "HZ2"]
    assert inc.t[0] == pytest.approx(day_number(datetime(2016, 4, 27, 13, 44)))
    # Local Chicago time (CDT, UTC-5) to UTC for the database.
    assert inc.utc()[0] == datetime(2016, 4, 27, 18, 44, tzinfo=UTC)


def test_dates_with_an_offset_are_converted_to_the_zone() -> None:
    text = (
        "date,longitude,latitude\n"
        "2018-03-01T10:00:00+00:00,71.5,34.0\n"
        "2018-03-01T10:00:00Z,71.5,34.0\n"
        "2018-03-01 15:00,71.5,34.0\n"
    )
    inc, _ = read_csv(io.StringIO(text), tz="Asia/Karachi")
    assert np.allclose(inc.t, day_number(datetime(2018, 3, 1, 15, 0)))
    assert {u.hour for u in inc.utc()} == {10}


def test_separate_time_column() -> None:
    text = "day,hour,x,y\n2018-05-06,23:15,71.5,34.0\n"
    cols = ColumnMap(date="day", time="hour", longitude="x", latitude="y", type=None)
    inc, _ = read_csv(io.StringIO(text), columns=cols)
    assert inc.t[0] == pytest.approx(day_number(datetime(2018, 5, 6, 23, 15)))


def test_refusals_name_what_to_do() -> None:
    with pytest.raises(InvalidInput, match=r"no column 'lon'.*its columns are: date, longitude"):
        read_csv(io.StringIO("date,longitude,latitude\n"), columns=ColumnMap(longitude="lon"))
    with pytest.raises(InvalidInput, match="--date-format"):
        read_csv(io.StringIO("date,longitude,latitude\n27/04/2016,71.5,34.0\n"))
    with pytest.raises(InvalidInput, match="unknown time zone 'Mars/Olympus'"):
        read_csv(io.StringIO("date,longitude,latitude\n"), tz="Mars/Olympus")
    with pytest.raises(InvalidInput, match="file not found"):
        read_csv(Path("/nonexistent/file.csv"))


def test_grid_is_metric_in_the_local_utm_zone() -> None:
    assert utm_epsg(71.5, 34.0) == 32642
    assert utm_epsg(-87.6, 41.8) == 32616
    assert utm_epsg(151.2, -33.9) == 32756
    # 0.01 degree of latitude is ~1.1 km: 8 cells of 150 m.
    g = Grid.covering([71.5, 71.5], [34.0, 34.01], cell_m=150.0)
    assert g.ny in (8, 9) and g.nx == 1
    c = g.cells_lonlat([71.5], [34.005])[0]
    lon, lat = g.centres_lonlat([c])
    assert abs(lat[0] - 34.005) < 0.001 and abs(lon[0] - 71.5) < 0.001
    assert g.cells_lonlat([80.0], [34.0])[0] == -1
    with pytest.raises(InvalidInput, match="larger --cell"):
        Grid.covering([0.5, 60.0], [1.0, 50.0], cell_m=1.0)


@pytest.mark.shared
def test_reads_the_open_cp_example() -> None:
    path = shared_dir() / "data/crime/chicago/opencp_southside/example.csv"
    if not path.is_file():
        pytest.skip(f"needs the shared data folder ../shared (or SAFECITY_SHARED); missing {path}")
    cols = ColumnMap(
        date="Date",
        longitude="Longitude",
        latitude="Latitude",
        type="Primary Type",
        id="Case Number",
        date_format="%m/%d/%Y %I:%M:%S %p",
    )
    inc, report = read_csv(path, columns=cols, tz="America/Chicago")
    assert report.rows == 1000
    assert report.kept + report.skipped == 1000 and report.kept > 900
    assert "THEFT" in set(inc.types.tolist())
