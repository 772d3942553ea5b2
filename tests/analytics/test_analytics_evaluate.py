"""The hotspot evaluation: hand-computed hit rates and PAI, no peeking, the CLI's JSON."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_dir
from safecity.analytics.evaluate import Evaluation, ModelScore, WeekScore, capture, evaluate
from safecity.analytics.events import Incidents, day_number, read_csv
from safecity.analytics.forecast import MODELS, History, make_model
from safecity.analytics.grid import FloatArray, boundary_geometry, unproject
from safecity.cli import main

EPSG = 32643  # UTM 43N: Peshawar
X0, Y0 = 400_000.0, 3_760_000.0  # multiples of the 100 m cells below


def at_cells(
    cells: list[int], *, nx: int = 10, cell_m: float = 100.0
) -> tuple[FloatArray, FloatArray]:
    """Lon/lat of the centres of cells numbered row by row on a grid starting at X0, Y0."""
    c = np.asarray(cells)
    x = X0 + (c % nx + 0.5) * cell_m
    y = Y0 + (c // nx + 0.5) * cell_m
    return unproject(EPSG, x, y)


def lattice_incidents(events: list[tuple[str, int]], *, fill: bool = True) -> Incidents:
    """Incidents at cell centres; with `fill`, one incident long ago in each of the 100 cells
    of a 10 x 10 grid so that the area is exactly those 100 cells."""
    rows = [(day_number(datetime.fromisoformat(d)), c) for d, c in events]
    if fill:
        rows += [(day_number(datetime(2000, 1, 1)), c) for c in range(100)]
    t = np.array([r[0] for r in rows])
    lon, lat = at_cells([r[1] for r in rows])
    return Incidents.from_arrays(t, lon, lat)


# --------------------------------------------------------------------------- capture


def test_capture_counts_the_top_cells() -> None:
    pred = np.array([5.0, 1.0, 3.0, 0.0])
    counts = np.array([2.0, 7.0, 1.0, 4.0])
    assert capture(pred, counts, 1) == 2.0
    assert capture(pred, counts, 2) == 3.0  # cells 0 and 2
    assert capture(pred, counts, 4) == 14.0
    assert capture(pred, counts, 0) == 0.0


def test_capture_shares_ties_at_the_cut() -> None:
    """Two places left for three tied cells: each counts for 2/3 of its incidents."""
    pred = np.array([9.0, 4.0, 4.0, 4.0, 1.0])
    counts = np.array([1.0, 3.0, 0.0, 6.0, 5.0])
    assert capture(pred, counts, 3) == pytest.approx(1.0 + 2.0 / 3.0 * 9.0)
    # Equal forecasts everywhere: the hit rate is the area share, whatever the order.
    flat = np.ones(100)
    week = np.arange(100.0)
    assert capture(flat, week, 5) == pytest.approx(week.sum() * 0.05)


# --------------------------------------------------------------------------- evaluate


def test_hand_computed_week() -> None:
    """100 cells; the past year: cell 7 five incidents, cells 1-4 three each, cell 9 one.
    The week: two in cell 7, one in cell 3, one in cell 50. Naive top 1% (1 cell) = cell 7:
    2 of 4 (50%, PAI 50); top 5% (5 cells: 7, 1-4) = 3 of 4 (75%, PAI 15)."""
    past = [("2017-06-01", 7)] * 5 + [("2017-07-01", c) for c in (1, 2, 3, 4) for _ in range(3)]
    past += [("2017-08-01", 9)]
    week = [("2018-01-02", 7), ("2018-01-03 10:00", 7), ("2018-01-05", 3), ("2018-01-07", 50)]
    inc = lattice_incidents(past + week)
    ev = evaluate(
        inc, start=datetime(2018, 1, 1), end=datetime(2018, 1, 8), models=["naive"], cell_m=100.0
    )
    assert ev.area_cells == 100
    assert ev.cells == {0.01: 1, 0.05: 5}
    out = ev.summary()
    assert out["models"]["naive"] == {"hit_1": 0.5, "pai_1": 50.0, "hit_5": 0.75, "pai_5": 15.0}
    assert out["best"] == "naive"
    assert out["meta"]["weeks"] == 1 and out["meta"]["incidents"] == 4


def test_gain_over_naive_with_its_interval_over_weeks() -> None:
    """Three weeks, naive captures 1, 1, 2 incidents at 1% and the model 2, 1, 2: the gain is
    5/4 - 1 = +25%; a resampled year lies between all-equal weeks (0%) and the one better
    week three times (+100%); one week ahead, none behind. A model that captures what the
    baseline does gains 0 with the interval [0, 0]."""

    def score(name: str, caps: list[float]) -> ModelScore:
        return ModelScore(
            name,
            [
                WeekScore(datetime(2018, 1, 1) + timedelta(days=7 * i), 4, {0.01: c, 0.05: 3.0})
                for i, c in enumerate(caps)
            ],
        )

    ev = Evaluation(
        start=datetime(2018, 1, 1),
        end=datetime(2018, 1, 22),
        grid=None,  # type: ignore[arg-type]  # not needed for the gains
        area_cells=100,
        area_source="test",
        cells={0.01: 1, 0.05: 5},
        incidents=12,
        outside_area=0,
        history_from=None,
        history_incidents=0,
        models={
            "naive": score("naive", [1.0, 1.0, 2.0]),
            "better": score("better", [2.0, 1.0, 2.0]),
            "same": score("same", [1.0, 1.0, 2.0]),
        },
    )
    g = ev.gains_vs_naive()
    assert set(g) == {"better", "same"}
    assert g["better"]["pai_1"] == 0.25
    lo, hi = g["better"]["pai_1_ci90"]
    assert 0.0 <= lo < 0.25 < hi <= 1.0
    assert (g["better"]["pai_1_weeks_ahead"], g["better"]["pai_1_weeks_behind"]) == (1, 0)
    assert g["same"]["pai_1"] == 0.0 and g["same"]["pai_1_ci90"] == [0.0, 0.0]
    assert g["better"]["pai_5"] == 0.0  # 3 of 3 at 5% in every week for both
    assert ev.gains_vs_naive() == g  # seeded: the same report every run


def test_boundary_sets_the_area_and_leaves_outside_incidents_out() -> None:
    """A boundary of the 4 x 5 cells at the grid's south-west: 20 cells, 1 cell at 5%."""
    import shapely

    lon, lat = unproject(EPSG, [X0, X0 + 400, X0 + 400, X0], [Y0, Y0, Y0 + 500, Y0 + 500])
    box = shapely.Polygon(list(zip(lon, lat, strict=True)))
    past = [("2017-06-01", 11)] * 4 + [("2017-06-01", 2)] * 2 + [("2017-06-01", 99)] * 9
    week = [("2018-01-02", 11), ("2018-01-02", 12), ("2018-01-03", 99)]
    inc = lattice_incidents(past + week, fill=False)
    ev = evaluate(
        inc,
        start=datetime(2018, 1, 1),
        end=datetime(2018, 1, 8),
        models=["naive"],
        cell_m=100.0,
        boundary=box,
    )
    assert ev.area_cells == 20
    assert ev.outside_area == 1  # the incident in cell 99
    r = ev.summary()["models"]["naive"]
    assert r["hit_5"] == 0.5 and r["pai_5"] == 10.0  # cell 11 holds 1 of the 2 inside


@dataclass
class Spy:
    """A model that records what it was shown."""

    name: str = "spy"
    seen: list[tuple[float, float, int]] = field(default_factory=list)

    def forecast(self, history: History, start: float, days: float) -> FloatArray:
        latest = float(history.t.max()) if len(history) else -np.inf
        self.seen.append((start, latest, len(history)))
        return history.counts()


def synthetic(seed: int, n: int = 3000) -> Incidents:
    rng = np.random.default_rng(seed)
    hot = rng.integers(0, 100, size=8)
    cells = np.where(rng.random(n) < 0.5, rng.choice(hot, n), rng.integers(0, 100, n))
    t = day_number(datetime(2016, 1, 1)) + rng.random(n) * 3 * 365
    lon, lat = at_cells(cells.tolist())
    return Incidents.from_arrays(t, lon, lat)


def test_no_forecast_sees_its_own_week_or_later() -> None:
    inc = synthetic(1)
    spy = Spy()
    start = datetime(2018, 3, 5)
    ev = evaluate(inc, start=start, end=datetime(2018, 5, 28), models=[spy], cell_m=100.0)
    assert len(spy.seen) == 12
    for week, (s, latest, n) in enumerate(spy.seen):
        assert s == day_number(start) + 7 * week
        assert latest < s
        assert n == int((inc.t < s).sum())  # everything before, nothing after
    assert ev.summary()["models"]["spy"]["hit_1"] >= 0


@pytest.mark.parametrize("model", sorted(MODELS))
def test_changing_the_future_changes_no_earlier_forecast(model: str) -> None:
    """Replace every incident from week 6 on by random ones: the scores of weeks 1-5 must
    not move, for every model (the SEPP refits included)."""
    inc = synthetic(2)
    start, cut = datetime(2018, 1, 1), datetime(2018, 2, 5)
    other = synthetic(3)
    keep = inc.t < day_number(cut)
    late = other.t >= day_number(cut)
    mixed = Incidents.from_arrays(
        np.concatenate([inc.t[keep], other.t[late]]),
        np.concatenate([inc.lon[keep], other.lon[late]]),
        np.concatenate([inc.lat[keep], other.lat[late]]),
    )
    kw = {"start": start, "end": datetime(2018, 4, 2), "cell_m": 100.0}
    a = evaluate(inc, models=[make_model(model)], **kw).models[model].weeks  # type: ignore[arg-type]
    b = evaluate(mixed, models=[make_model(model)], **kw).models[model].weeks  # type: ignore[arg-type]
    for wa, wb in list(zip(a, b, strict=True))[:5]:
        assert wa.captured == wb.captured
    assert any(wa.captured != wb.captured for wa, wb in zip(a[5:], b[5:], strict=True))


def test_every_model_forecasts_expected_counts() -> None:
    inc = synthetic(4)
    from safecity.analytics.grid import Grid

    grid = Grid.covering(inc.lon, inc.lat, cell_m=100.0)
    hist = History.build(grid, inc.t, inc.lon, inc.lat)
    s = day_number(datetime(2018, 6, 4))
    past = hist.before(s)
    weekly = int((past.t >= s - 365).sum()) * 7 / 365
    for name in MODELS:
        pred = make_model(name).forecast(past, s, 7.0)
        assert pred.shape == (grid.n,) and np.all(pred >= 0), name
        assert pred.sum() == pytest.approx(weekly, rel=0.35), name


# --------------------------------------------------------------------------- CLI


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = synthetic(5, n=1500)
    path = tmp_path / "incidents.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("date,longitude,latitude,type\n")
        for t, lon, lat in zip(inc.t, inc.lon, inc.lat, strict=True):
            when = datetime(1970, 1, 1) + (datetime(1970, 1, 2) - datetime(1970, 1, 1)) * t
            fh.write(f"{when:%Y-%m-%d %H:%M},{lon:.6f},{lat:.6f},assault\n")
        fh.write("not a date,71.5,34.0,assault\n")
    rc = main(
        [
            "eval", "hotspots", "--incidents", str(path), "--from", "2018-06-04",
            "--to", "2018-07-01", "--cell", "100", "--model", "naive,kde", "--json",
        ]
    )  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0, out.err
    doc = json.loads(out.out)
    assert set(doc["models"]) == {"naive", "kde"}
    for r in doc["models"].values():
        assert set(r) == {"hit_1", "pai_1", "hit_5", "pai_5"}
    assert doc["best"] in doc["models"]
    assert doc["meta"]["weeks"] == 4
    assert "1 skipped (1 bad date" in out.err


def test_cli_refuses_a_period_without_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.csv"
    path.write_text("date,longitude,latitude\n2018-01-03,71.5,34.0\n", encoding="utf-8")
    rc = main(
        ["eval", "hotspots", "--incidents", str(path), "--from", "2018-01-01", "--to", "2018-01-31"]
    )
    assert rc == 2
    assert "no incident before --from" in capsys.readouterr().err


# --------------------------------------------------------------------------- real data

CHICAGO = "data/crime/chicago"


def chicago(name: str) -> Path:
    p = shared_dir() / CHICAGO / name
    if not p.is_file():
        pytest.skip(f"needs the shared data folder ../shared (or SAFECITY_SHARED); missing {p}")
    return p


@pytest.mark.shared
def test_chicago_weeks_of_2018() -> None:
    """Eight weeks of 2018 on the Chicago assaults, trained on 2015-2017, district polygons
    as the area: the naive baseline lands where the measured one does (PAI ~12 at 1%), and
    the recency-weighted models beat it at 5% of the area."""
    inc, report = read_csv(chicago("aggravated_assaults_2010_2018.csv.gz"), tz="America/Chicago")
    assert report.kept == 133_308 and report.skipped == 0
    boundary = boundary_geometry(json.loads(chicago("police_districts_2018.geojson").read_text()))
    ev = evaluate(
        inc,
        start=datetime(2018, 1, 1),
        end=datetime(2018, 2, 26),
        models=["naive", "kde", "blend"],
        boundary=boundary,
        history_from=datetime(2015, 1, 1),
    )
    out = ev.summary()
    naive = out["models"]["naive"]
    assert 8 < naive["pai_1"] < 16 and 4.5 < naive["pai_5"] < 9
    assert ev.area_cells > 25_000  # ~608 km² of 150 m cells
    for name in ("kde", "blend"):
        assert out["models"][name]["pai_5"] > naive["pai_5"]
