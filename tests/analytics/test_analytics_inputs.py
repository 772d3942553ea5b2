"""Bad and awkward inputs to analytics: each gets a clear error naming what is wrong, and
nothing accepted is shifted, lost or counted twice (clock changes, re-imported files,
dates with UTC offsets, periods that are empty or still running, sparse groups)."""

from __future__ import annotations

import gzip
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from analytics_helpers import ADMIN, COLUMNS, do_import, history_csv, load_geography
from fastapi.testclient import TestClient

from safecity.analytics import service
from safecity.analytics.evaluate import Evaluation, ModelScore, WeekScore, evaluate
from safecity.analytics.events import Incidents, parse_date, read_csv
from safecity.analytics.trends import monitor
from safecity.cli import main
from safecity.core.auth import Role, create_user
from safecity.core.errors import InvalidInput
from safecity.core.runtime import Runtime

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# --------------------------------------------------------------------------- reading


def test_offsets_at_the_autumn_clock_change_stay_two_instants() -> None:
    """01:30 happened twice in Chicago on 2018-11-04: written with offsets, the two are kept
    apart; written as bare local time, the row is kept, read as the first, and reported."""
    text = (
        "date,longitude,latitude\n"
        "2018-11-04T06:30:00Z,-87.6,41.8\n"  # 01:30 CDT
        "2018-11-04T07:30:00Z,-87.6,41.8\n"  # 01:30 CST, an hour later
        "2018-11-04 01:45,-87.6,41.8\n"  # bare, ambiguous
        "2018-03-11 02:30,-87.6,41.8\n"  # bare, skipped by the clocks
    )
    inc, report = read_csv(io.StringIO(text), tz="America/Chicago")
    assert report.kept == 4 and report.clock_change == 2
    utc = sorted(inc.utc())
    assert utc == [
        datetime(2018, 3, 11, 8, 30, tzinfo=UTC),  # 02:30 CST, i.e. 03:30 CDT
        datetime(2018, 11, 4, 6, 30, tzinfo=UTC),
        datetime(2018, 11, 4, 6, 45, tzinfo=UTC),  # 01:45 read as the first (CDT)
        datetime(2018, 11, 4, 7, 30, tzinfo=UTC),
    ]
    notes = " | ".join(report.examples)
    assert "line 4: local time 2018-11-04 01:45 happened twice" in notes
    assert "line 5: local time 2018-03-11 02:30 did not exist" in notes
    assert "read as 03:30" in notes and "2 kept with a local time" in report.summary()


def test_line_numbers_and_reasons_of_bad_rows() -> None:
    """Line numbers are the file's (a quoted field may span lines), and a short row is
    counted by what it lacks."""
    text = (
        "date,longitude,latitude,type\n"
        '2018-01-01,71.5,34.0,"two\nlines"\n'  # lines 2-3
        "2018-01-02,71.5\n"  # line 4: no latitude
        "BADDATE,71.5,34.0,x\n"  # line 5
    )
    _, report = read_csv(io.StringIO(text))
    assert (report.kept, report.bad_date, report.bad_coordinates) == (1, 1, 1)
    assert report.examples == [
        "line 4: only 2 fields: no coordinates",
        "line 5: bad date 'BADDATE'",
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("latin1.csv", b"date,longitude,latitude,type\n2018-01-01,71.5,34,caf\xe9\n", "UTF-8"),
        ("fake.csv.gz", b"date,longitude,latitude\n2018-01-01,71.5,34\n", "gzip"),
    ],
)
def test_unreadable_files_are_named(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        read_csv(path)


def test_dates_with_an_offset_are_converted_to_the_zone() -> None:
    assert parse_date("2018-01-01T00:00Z", tz="Asia/Karachi") == datetime(2018, 1, 1, 5)
    assert parse_date("2018-01-01", tz="Asia/Karachi") == datetime(2018, 1, 1)
    assert parse_date("2018-01-01", tz="UTC", end_of_day=True) == datetime(2018, 1, 2)


# --------------------------------------------------------------------------- importing


def test_a_file_imported_again_without_ids_adds_nothing(runtime: Runtime) -> None:
    """Without an id column a re-import is recognised by time, place and type; repeats
    inside one file are kept (two victims of one attack can be two rows)."""
    text = (
        "when,lon,lat,kind\n"
        "2018-01-01 10:00,71.51,34.01,assault\n"
        "2018-01-01 10:00,71.51,34.01,assault\n"
        "2018-01-02 11:00,71.52,34.02,theft\n"
    )
    cols = COLUMNS.__class__(date="when", longitude="lon", latitude="lat", type="kind")

    def imp(body: str) -> Any:
        inc, report = read_csv(io.StringIO(body), columns=cols, tz="Asia/Karachi")
        with runtime.sessions() as s, s.begin():
            return service.import_history(
                s, incidents=inc, report=report, dataset="noid", source="x.csv",
                now=runtime.clock.now(), actor="test",
            )  # fmt: skip

    first = imp(text)
    assert first.imported == 3
    again = imp(text + "2018-01-03 12:00,71.53,34.03,theft\n")
    assert again.imported == 1 and again.duplicate_id == 3
    assert any("imported again?" in e for e in again.examples)
    with runtime.sessions() as s:
        assert len(service.load(s, actor=ADMIN, dataset="noid")) == 4


def test_a_dataset_keeps_one_time_zone(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Appending rows read in another zone would shift every local hour and week of the
    dataset: refused; the command line reads an append in the dataset's zone by default."""
    do_import(runtime, "id,when,lon,lat,kind\nA,2018-01-01 05:31,71.51,34.01,a\n")  # Karachi
    inc, report = read_csv(
        io.StringIO("id,when,lon,lat,kind\nB,2018-01-02 05:00,71.51,34.01,a\n"),
        columns=COLUMNS,
        tz="UTC",
    )
    with runtime.sessions() as s, pytest.raises(InvalidInput, match="--tz Asia/Karachi"):
        service.import_history(
            s, incidents=inc, report=report, dataset="history", source="b.csv",
            now=runtime.clock.now(), actor="test",
        )  # fmt: skip
    with runtime.sessions() as s:
        data = service.load(s, actor=ADMIN, dataset="history")
        assert data.incidents.tz == "Asia/Karachi" and len(data) == 1

    monkeypatch.setenv("SAFECITY_MODE", "demo")
    monkeypatch.setenv("SAFECITY_DATA_DIR", str(tmp_path / "var"))
    path = tmp_path / "h.csv"
    path.write_text("date,longitude,latitude\n2018-01-01 05:31,71.5,34.0\n", encoding="utf-8")
    assert main(["import", "incidents", str(path), "--tz", "Asia/Karachi"]) == 0
    path.write_text("date,longitude,latitude\n2018-01-02 07:00,71.5,34.0\n", encoding="utf-8")
    assert main(["import", "incidents", str(path)]) == 0  # read in Asia/Karachi
    assert "Asia/Karachi" in capsys.readouterr().out
    assert main(["import", "incidents", str(path), "--tz", "UTC"]) == 2
    assert "keeps local time in Asia/Karachi" in capsys.readouterr().err


# --------------------------------------------------------------------------- the service


def test_trends_count_whole_periods_before_end_only(runtime: Runtime) -> None:
    """A week cut by `end` (or still running) is not shown as a drop, and incidents after
    `end` are not counted; an `end` with a UTC offset is converted to the dataset's zone."""
    load_geography(runtime)
    do_import(runtime, history_csv(3, rise=False))  # 2017-01-02 .. 2018-12-30
    with runtime.sessions() as s:
        wed = service.trend_report(s, actor=ADMIN, dataset="history", end=datetime(2018, 6, 6))
        last = wed.series[0].points[-1]
        assert str(last.start) == "2018-05-28"  # the last whole week before Wed 6 June
        mon = service.trend_report(s, actor=ADMIN, dataset="history", end=datetime(2018, 6, 4))
        assert mon.series[0].points[-1] == last
        # 2018-06-04 05:00 in Karachi is midnight UTC: the same as the naive local time.
        aware = datetime(2018, 6, 4, 0, 0, tzinfo=UTC)
        day = service.trend_report(
            s, actor=ADMIN, dataset="history", period="day", end=aware + timedelta(hours=19)
        )
        assert str(day.series[0].points[-1].start) == "2018-06-04"  # 00:00 PKT on the 5th
        gi = service.hotspot_layer(
            s, actor=ADMIN, dataset="history", method="counts",
            start=datetime(2018, 1, 1, tzinfo=UTC), end=datetime(2018, 2, 1, tzinfo=UTC),
        )  # fmt: skip
        assert gi["meta"]["incidents"] > 0
        with pytest.raises(InvalidInput, match="must be before end"):
            service.hotspot_layer(
                s, actor=ADMIN, dataset="history",
                start=datetime(2019, 1, 1), end=datetime(2018, 1, 1),
            )  # fmt: skip
        with pytest.raises(InvalidInput, match="no incidents before 2000-01-03"):
            service.forecast_layer(
                s, actor=ADMIN, dataset="history", week_start=datetime(2000, 1, 3)
            )
        with pytest.raises(InvalidInput, match="too much for one map"):
            service.emerging_layer(s, actor=ADMIN, dataset="history", cell_m=2, slices=104)


def test_api_takes_dates_with_an_offset(runtime: Runtime, client: TestClient) -> None:
    load_geography(runtime)
    do_import(runtime, history_csv(4, rise=False))
    with runtime.sessions() as s, s.begin():
        create_user(s, username="root", password="root-password", role=Role.ADMIN, now=NOW)
    token = client.post(
        "/api/v1/auth/token", data={"username": "root", "password": "root-password"}
    ).json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    for url in (
        "/api/v1/analytics/hotspots?dataset=history&start=2018-01-01T00:00:00Z",
        "/api/v1/analytics/forecast?dataset=history&week_start=2018-06-04T00:00:00Z",
        "/api/v1/analytics/trends?dataset=history&period=day&end=2018-06-06T03:00:00Z",
    ):
        r = client.get(url, headers=h)
        assert r.status_code == 200, (url, r.text)
    r = client.get(
        "/api/v1/analytics/hotspots?dataset=history&start=2019-01-01T00:00:00"
        "&end=2018-01-01T00:00:00",
        headers=h,
    )
    assert r.status_code == 422 and "must be before end" in r.text


def test_sparse_groups_raise_no_false_alarms() -> None:
    """A rare type at a constant rate: the share of runs with any alert stays within the
    5% false discovery rate (a trend and harmonics fitted to a handful of incidents gave
    one in five), and a type never seen before is not "a billion times" its expectation."""
    m0 = 17710.0  # a Monday
    for period in ("day", "week"):
        runs = 0
        for seed in range(150):
            rng = np.random.default_rng(seed)
            t = np.sort(rng.uniform(m0 - 3 * 365, m0 + 56, rng.poisson(2.0 * 3.15)))
            if not (t < m0).any():
                continue
            _, alerts = monitor(
                t, np.zeros(t.size, np.int64), [("rare", None)], period=period,
                monitor_start=m0, end=m0 + 56,
            )  # fmt: skip
            runs += bool(alerts)
        assert runs <= 7, (period, runs)
    t = np.array([m0 - 500.0, m0 + 3.0])
    codes = np.array([0, 1])
    fits, alerts = monitor(
        t, codes, [("old", None), ("new", None)], period="week", monitor_start=m0, end=m0 + 56
    )
    new = fits[1]
    assert new.expected.min() > 0 and "level only" in new.model
    assert all(a.expected > 0 for a in alerts)


# --------------------------------------------------------------------------- evaluation


def _points(n: int, start: float, days: float, seed: int = 0) -> Incidents:
    rng = np.random.default_rng(seed)
    return Incidents.from_arrays(
        start + rng.uniform(0, days, n),
        71.5 + rng.normal(0, 0.003, n),
        34.0 + rng.normal(0, 0.003, n),
        ["a"] * n,
    )


def test_evaluation_refuses_what_it_cannot_score() -> None:
    inc = _points(300, 17532.0, 200.0)  # 2018-01-01 .. mid July
    box = {
        "type": "Polygon",
        "coordinates": [[[71.49, 33.99], [71.51, 33.99], [71.51, 34.01], [71.49, 34.01]]],
    }
    from safecity.analytics.grid import boundary_geometry

    near = boundary_geometry(box)
    with pytest.raises(InvalidInput, match="no incident from 2019-01-01 to 2019-01-31"):
        evaluate(inc, start=datetime(2019, 1, 1), end=datetime(2019, 2, 1), models=["kde"])
    far = boundary_geometry({**box, "coordinates": [[[1, 1], [2, 1], [2, 2], [1, 2]]]})
    with pytest.raises(InvalidInput, match="none of the 300 incidents lies inside"):
        evaluate(inc, start=datetime(2018, 5, 1), end=datetime(2018, 6, 1), models=[], boundary=far)
    for cell in (0.0, -150.0, float("nan")):
        with pytest.raises(InvalidInput, match="cell size"):
            evaluate(
                inc, start=datetime(2018, 5, 1), end=datetime(2018, 6, 1), models=[],
                boundary=near, cell_m=cell,
            )  # fmt: skip
    with pytest.raises(InvalidInput, match="no cell centre of a 1e\\+06 m grid"):
        evaluate(
            inc, start=datetime(2018, 5, 1), end=datetime(2018, 6, 1), models=[],
            boundary=near, cell_m=1e6,
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="enclose no area"):
        boundary_geometry({**box, "coordinates": [[[1, 1], [1, 1], [1, 1], [1, 1]]]})


def test_gain_interval_leaves_out_draws_where_naive_captured_nothing() -> None:
    """Most weeks the baseline captures nothing: a draw of only such weeks has no ratio and
    must not enter the interval as a -100% loss."""
    ev = Evaluation.__new__(Evaluation)
    naive, kde = ModelScore("naive"), ModelScore("kde")
    for i in range(10):
        when = datetime(2018, 1, 1) + timedelta(weeks=i)
        got = 1.0 if i == 0 else 0.0
        naive.weeks.append(WeekScore(when, 2, {0.01: got, 0.05: got}))
        kde.weeks.append(WeekScore(when, 2, {0.01: got, 0.05: got}))
    ev.models = {"naive": naive, "kde": kde}
    gains = ev.gains_vs_naive()["kde"]
    assert gains["pai_1"] == 0.0 and gains["pai_1_ci90"] == [0.0, 0.0]


# --------------------------------------------------------------------------- patrol sheets


@pytest.mark.parametrize(
    ("stations", "message"),
    [
        ("not json", "not a GeoJSON file"),
        ("[]", "must be a GeoJSON FeatureCollection"),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        {"type": "Feature", "properties": {"name": "A"}, "geometry": None}
                    ],
                }
            ),
            "feature 0 \\(A\\) of .* is a None, not a Polygon",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "properties": {"name": "A"},
                            "geometry": {"type": "Point", "coordinates": [71.5, 34.0]},
                        }
                    ],
                }
            ),
            "is a Point, not a Polygon",
        ),
    ],
)
def test_plan_patrols_names_a_bad_stations_file(
    tmp_path: Path, capsys: Any, stations: str, message: str
) -> None:
    inc = tmp_path / "inc.csv.gz"
    with gzip.open(inc, "wt", encoding="utf-8") as fh:
        fh.write("date,longitude,latitude\n2018-01-01 10:00,71.5,34.0\n")
    st = tmp_path / "stations.geojson"
    st.write_text(stations, encoding="utf-8")
    rc = main(
        [
            "plan", "patrols", "--incidents", str(inc), "--stations", str(st),
            "--week", "2018-02-05", "--out", str(tmp_path / "sheet.html"),
        ]
    )  # fmt: skip
    assert rc == 2
    assert re.search(message, capsys.readouterr().err)
