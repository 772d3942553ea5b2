"""The blend model and its tuning: a hand-computed score, determinism, no peeking, and the
tuning's scores being exactly the model's."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from safecity.analytics.commands import parse_years
from safecity.analytics.evaluate import capture, capture_many, evaluate, prepare_area, weeks
from safecity.analytics.events import Incidents, day_number
from safecity.analytics.forecast import Blend, BlendParts, History, make_model
from safecity.analytics.grid import Grid, unproject
from safecity.analytics.tuning import (
    BLEND_GRID,
    Candidate,
    _scores,
    current_params,
    tune_blend,
)
from safecity.cli import main
from safecity.core.errors import InvalidInput

EPSG = 32643
X0, Y0 = 400_000.0, 3_760_000.0
GRID = Grid(epsg=EPSG, x0=X0, y0=Y0, cell_m=100.0, nx=10, ny=10)


def history(events: list[tuple[float, int]]) -> History:
    """A History on GRID from (local day, cell) pairs, the incidents at the cells' centres."""
    t = np.array([e[0] for e in events], dtype=np.float64)
    c = np.array([e[1] for e in events])
    lon, lat = unproject(EPSG, X0 + (c % 10 + 0.5) * 100.0, Y0 + (c // 10 + 0.5) * 100.0)
    return History.build(GRID, t, lon, lat)


def synthetic(seed: int, n: int = 2500, years: float = 3.0) -> Incidents:
    """Incidents over `years` from 2015 on a 10 x 10 grid of 100 m cells, half of them in 8
    hot cells."""
    rng = np.random.default_rng(seed)
    hot = rng.integers(0, 100, size=8)
    cells = np.where(rng.random(n) < 0.5, rng.choice(hot, n), rng.integers(0, 100, n))
    t = day_number(datetime(2015, 1, 1)) + rng.random(n) * years * 365
    lon, lat = unproject(EPSG, X0 + (cells % 10 + 0.5) * 100.0, Y0 + (cells // 10 + 0.5) * 100.0)
    return Incidents.from_arrays(t, lon, lat)


# --------------------------------------------------------------------------- the model


def test_hand_computed_level_and_neighbours() -> None:
    """Season and trend off: score = L + 0.02 N. One incident in cell 44 exactly one
    half-life ago weighs 0.5; two in cell 45 a day ago weigh 2^(-1/730) each."""
    s = 20_000.0
    h = history([(s - 730.0, 44), (s - 1.0, 45), (s - 1.0, 45)])
    b = Blend(season_power=0.0, trend_power=0.0)
    w = 2.0 ** (-1.0 / 730.0)
    score = b.combine(b.parts(h, s, 7.0))
    assert score[44] == pytest.approx(0.5 + 0.02 * 2 * w)
    assert score[45] == pytest.approx(2 * w + 0.02 * 0.5)
    assert score[34] == pytest.approx(0.02 * (0.5 + 2 * w))  # below both: a neighbour of each
    assert score[46] == pytest.approx(0.02 * 2 * w)  # a neighbour of 45 only
    assert score[0] == 0.0
    # The forecast is the score scaled to the last 365 days' pace: 2 incidents a year.
    pred = b.forecast(h, s, 7.0)
    assert pred.sum() == pytest.approx(2 * 7.0 / 365.0)
    assert pred / pred.sum() == pytest.approx(score / score.sum())


def test_powers_multiply_the_ratios() -> None:
    """score = (L + w N) x SR^p x RR^q, from the parts as they are."""
    level = np.array([1.0, 2.0, 0.0, 4.0])
    ring = np.array([0.0, 1.0, 3.0, 0.0])
    parts = BlendParts(
        level=level, ring=ring, season=np.array([4.0, 1.0, 1.0, 0.25]), trend=np.full(4, 9.0)
    )
    b = Blend(neighbour_weight=0.5, season_power=0.5, trend_power=0.5)
    assert b.combine(parts).tolist() == [6.0, 7.5, 4.5, 6.0]
    off = BlendParts(level=level, ring=ring, season=None, trend=None)
    assert b.combine(off).tolist() == [1.0, 2.5, 1.5, 4.0]  # no ratio: taken as 1


def test_season_needs_two_years_of_history() -> None:
    """The seasonal ratio compares the same weeks of earlier years: with one year of history
    it is left out; with three, a cell whose incidents all fell in this season of earlier
    years gets a ratio above 1, one whose incidents fell half a year away below 1."""
    s = day_number(datetime(2018, 7, 2))
    b = Blend()
    one_year = history([(s - 30.0 * i, 11) for i in range(1, 12)])
    assert b.season(one_year, s, 7.0) is None
    summer = [(day_number(datetime(y, 7, 5)), 22) for y in (2015, 2016, 2017)]
    winter = [(day_number(datetime(y, 1, 5)), 77) for y in (2015, 2016, 2017)]
    sr = b.season(history(summer + winter), s, 7.0)
    assert sr is not None
    assert sr[22] > 1.0 > sr[77]


def test_blend_is_deterministic() -> None:
    inc = synthetic(7)
    hist = History.build(GRID, inc.t, inc.lon, inc.lat)
    s = day_number(datetime(2017, 9, 4))
    a = make_model("blend").forecast(hist.before(s), s, 7.0)
    b = make_model("blend").forecast(hist.before(s), s, 7.0)
    assert np.array_equal(a, b)
    assert np.all(a >= 0) and a.sum() > 0


SEEN: list[tuple[float, float]] = []


class Watched(Blend):
    """A blend that records, for each level it computes, the start and the latest incident."""

    def level(self, history: History, start: float, half_life: float) -> tuple[Any, Any]:
        SEEN.append((start, float(history.t.max()) if len(history) else -np.inf))
        return super().level(history, start, half_life)

    def season(self, history: History, start: float, days: float) -> Any:
        assert len(history) == 0 or float(history.t.max()) < start
        return super().season(history, start, days)

    def trend(self, history: History, start: float) -> Any:
        assert len(history) == 0 or float(history.t.max()) < start
        return super().trend(history, start)


def test_blend_sees_nothing_of_its_week_or_later() -> None:
    """Every piece of the blend computed during an evaluation was computed from incidents
    strictly before the week forecast."""
    SEEN.clear()
    seen = SEEN
    inc = synthetic(8)
    evaluate(
        inc,
        start=datetime(2017, 3, 6),
        end=datetime(2017, 5, 1),
        models=[Watched()],
        cell_m=100.0,
    )
    assert len(seen) == 8
    assert all(latest < start for start, latest in seen)


# --------------------------------------------------------------------------- tuning


def test_capture_many_matches_capture_row_by_row() -> None:
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 4, size=(6, 50)).astype(np.float64)  # many ties
    preds[0] = 1.0  # all tied
    counts = rng.integers(0, 3, size=50).astype(np.float64)
    for k in (0, 1, 5, 17, 50):
        got = capture_many(preds, counts, k)
        assert got == pytest.approx([capture(p, counts, k) for p in preds])


def test_tuning_scores_are_the_models_scores() -> None:
    """The tuning's score of a combination is exactly what `Blend` with those constants
    forecasts (up to the common scale), so the ranking it makes is the ranking the model
    makes in `evaluate`."""
    inc = synthetic(9)
    area = prepare_area(inc, cell_m=100.0)
    s0 = day_number(datetime(2017, 6, 5))
    wk = next(weeks(area, s0, s0 + 7.0))
    combos = [
        {**current_params(), "half_life_days": 365.0, "season_power": 0.25},
        {**current_params(), "neighbour_weight": 0.1, "trend_power": 0.75},
        current_params(),
    ]
    got = _scores(Blend(), wk.past, wk.start, 7.0, combos, [365.0, 730.0], area.mask)
    for row, params in zip(got, combos, strict=True):
        b = Blend(**params)
        assert np.array_equal(row, b.combine(b.parts(wk.past, wk.start, 7.0))[area.mask])


def test_tune_blend_ranks_and_ignores_what_follows_the_years() -> None:
    """A small grid on one validation year: candidates best first, and incidents after the
    validation year (here: all of them replaced) change nothing."""
    inc = synthetic(10, years=3.5)
    grid = {"season_power": (0.0, 0.5), "trend_power": (0.0, 0.5)}
    a = tune_blend(inc, years=[2017], cell_m=100.0, grid=grid)
    assert len(a.candidates) == 4
    scores = [c.score for c in a.candidates]
    assert scores == sorted(scores, reverse=True)
    assert a.years == [2017] and set(a.naive_hits) == {2017}
    assert {c.params["neighbour_weight"] for c in a.candidates} == {Blend().neighbour_weight}
    cut = day_number(datetime(2018, 1, 1))
    other = synthetic(11, years=3.5)
    keep, late = inc.t < cut, other.t >= cut
    mixed = Incidents.from_arrays(
        np.concatenate([inc.t[keep], other.t[late]]),
        np.concatenate([inc.lon[keep], other.lon[late]]),
        np.concatenate([inc.lat[keep], other.lat[late]]),
    )
    b = tune_blend(mixed, years=[2017], cell_m=100.0, grid=grid)
    assert [c.params for c in a.candidates] == [c.params for c in b.candidates]
    assert [c.ratios for c in a.candidates] == [c.ratios for c in b.candidates]


def test_tuning_sees_nothing_of_the_week_it_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    SEEN.clear()
    monkeypatch.setattr("safecity.analytics.tuning.Blend", Watched)
    tune_blend(synthetic(14), years=[2017], cell_m=100.0, grid={"half_life_days": (365.0, 730.0)})
    assert len(SEEN) == 2 * 53  # two half-lives, 53 weeks (the last one a day long)
    assert all(latest < start for start, latest in SEEN)
    starts = sorted({s for s, _ in SEEN})
    assert starts[0] == day_number(datetime(2017, 1, 1))
    assert starts[-1] == day_number(datetime(2017, 12, 31))


def test_score_is_the_weaker_level() -> None:
    c = Candidate(params={}, ratios=[(1.10, 1.30), (1.10, 1.20)])
    assert c.score == pytest.approx(np.log(1.10))
    assert c.gains() == pytest.approx({"gain_1": 0.10, "gain_5": 0.25})


def test_tuning_refuses_bad_input() -> None:
    inc = synthetic(12)
    with pytest.raises(InvalidInput, match="cannot tune"):
        tune_blend(inc, years=[2017], cell_m=100.0, grid={"bandwidth_m": (1.0,)})
    with pytest.raises(InvalidInput, match="no incident before 2015"):
        tune_blend(inc, years=[2015], cell_m=100.0, grid={"trend_power": (0.5,)})


def test_shipped_constants_are_in_the_grid() -> None:
    """The tuning can only confirm the shipped constants if it searches them."""
    for name, value in current_params().items():
        assert value in BLEND_GRID[name], name


def test_parse_years() -> None:
    assert parse_years("2014-2017") == [2014, 2015, 2016, 2017]
    assert parse_years("2016, 2014,2015-2015") == [2014, 2015, 2016]
    for bad in ("", "2017-2014", "last year"):
        with pytest.raises(InvalidInput):
            parse_years(bad)


def test_cli_tune_blend_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = synthetic(13, n=1200)
    path = tmp_path / "incidents.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("date,longitude,latitude\n")
        for t, lon, lat in zip(inc.t, inc.lon, inc.lat, strict=True):
            when = datetime(1970, 1, 1) + (datetime(1970, 1, 2) - datetime(1970, 1, 1)) * t
            fh.write(f"{when:%Y-%m-%d %H:%M},{lon:.6f},{lat:.6f}\n")
    rc = main(
        ["eval", "tune-blend", "--incidents", str(path), "--years", "2017", "--cell", "100",
         "--top", "3", "--json"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0, out.err
    doc = json.loads(out.out)
    assert doc["years"] == [2017]
    assert doc["combinations"] == 192
    assert len(doc["top"]) == 3
    assert doc["defaults"]["params"] == current_params()
    assert 1 <= doc["defaults"]["rank"] <= 192
    assert set(doc["best"]) >= {"params", "score", "gain_1", "gain_5", "per_year"}
