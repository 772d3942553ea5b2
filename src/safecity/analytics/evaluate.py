"""Honest evaluation of hotspot forecasts: weekly, out of sample, hit rate and PAI.

For each week of the evaluation period every model forecasts the week from the incidents
strictly before it (`History.before`), the area's cells are ranked by the forecast, and the
week's incidents in the top 1% and 5% of the area's cells are counted.

* Area: the cells holding any incident of the file (every year, every model alike), or the
  cells whose centre lies inside `--boundary`. Incidents outside the area are counted and
  left out: no model could capture them.
* Hit rate: incidents captured over all weeks / incidents over all weeks (pooled).
* PAI (predictive accuracy index, Chainey et al. 2008): hit rate / area fraction, the area
  fraction being the cells chosen / the area's cells.
* Ties at the cut (cells with equal forecasts, common for counts) are shared: a tied cell
  counts for (places left) / (tied cells) of its incidents: the expected hit rate if ties
  were broken at random, so no model gains or loses by the order of its cells.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import shapely

from safecity.analytics.events import Incidents, day_number
from safecity.analytics.forecast import History, Model, make_model
from safecity.analytics.grid import DEFAULT_CELL_M, BoolArray, FloatArray, Grid
from safecity.core.errors import InvalidInput

FRACTIONS: tuple[float, float] = (0.01, 0.05)
#: How `best` is chosen, in words (also in the JSON's meta).
BEST_RULE = "highest geometric mean of PAI at 1% and 5% relative to the naive baseline"
#: Draws of the weeks for the intervals of the gains over the naive baseline.
BOOTSTRAP_DRAWS = 2000
VS_NAIVE_RULE = (
    "PAI / naive PAI - 1, with a 90% interval from resampling the weeks (paired bootstrap, "
    f"{BOOTSTRAP_DRAWS} draws)"
)
TUNING_NOTE = (
    "model constants were chosen on weekly forecasts of 2014-2017 (Chicago assaults); "
    "each week is forecast from incidents before it only"
)


def capture(pred: FloatArray, counts: FloatArray, k: int) -> float:
    """Incidents expected in the `k` cells with the highest `pred`; ties at the cut shared."""
    n = int(pred.size)
    k = min(max(int(k), 0), n)
    if k == 0:
        return 0.0
    if k == n:
        return float(counts.sum())
    thr = np.partition(pred, n - k)[n - k]
    above = pred > thr
    tied = pred == thr
    n_above = int(np.count_nonzero(above))
    n_tied = int(np.count_nonzero(tied))
    got = float(counts[above].sum())
    if n_tied:
        got += (k - n_above) / n_tied * float(counts[tied].sum())
    return got


def capture_many(preds: FloatArray, counts: FloatArray, k: int) -> FloatArray:
    """`capture` for each row of `preds` (forecasts x cells) at once."""
    m, n = preds.shape
    k = min(max(int(k), 0), n)
    if k == 0:
        return np.zeros(m)
    if k == n:
        return np.full(m, float(counts.sum()))
    thr = np.partition(preds, n - k, axis=1)[:, n - k : n - k + 1]
    above = preds > thr
    tied = preds == thr
    got = above @ counts
    n_left = k - np.count_nonzero(above, axis=1)
    n_tied = np.count_nonzero(tied, axis=1)
    return np.asarray(got + n_left / np.maximum(n_tied, 1) * (tied @ counts), dtype=np.float64)


def cells_for(fraction: float, area_cells: int) -> int:
    return max(1, round(fraction * area_cells))


@dataclass
class WeekScore:
    start: datetime
    incidents: int
    captured: dict[float, float]


@dataclass
class ModelScore:
    name: str
    weeks: list[WeekScore] = field(default_factory=list)
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def incidents(self) -> int:
        return sum(w.incidents for w in self.weeks)

    def hit(self, fraction: float) -> float:
        n = self.incidents()
        return sum(w.captured[fraction] for w in self.weeks) / n if n else 0.0


@dataclass
class Evaluation:
    start: datetime
    end: datetime
    grid: Grid
    area_cells: int
    area_source: str
    cells: dict[float, int]
    incidents: int
    outside_area: int
    history_from: datetime | None
    history_incidents: int
    models: dict[str, ModelScore]

    def pai(self, name: str, fraction: float) -> float:
        return self.models[name].hit(fraction) / (self.cells[fraction] / self.area_cells)

    def best(self) -> str:
        def gain(name: str) -> float:
            logs = []
            for f in FRACTIONS:
                base = self.pai("naive", f)
                mine = self.pai(name, f)
                if base <= 0 or mine <= 0:
                    return -math.inf if mine <= 0 else math.inf
                logs.append(math.log(mine / base))
            return sum(logs) / len(logs)

        return max(self.models, key=gain)

    def gains_vs_naive(self, *, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> dict[str, Any]:
        """Each model's PAI relative to the naive baseline (-1 .. ), at 1% and 5%, with a
        90% interval from resampling the weeks (paired bootstrap: a draw takes the same
        weeks for both, so what the week held cancels out). One year of weekly forecasts
        holds a few hundred captured incidents at 1%: the interval says how far the gain
        could move with another year of the same kind."""
        base = self.models.get("naive")
        if base is None or not base.weeks:
            return {}
        rng = np.random.default_rng(seed)
        n = len(base.weeks)
        picks = rng.integers(0, n, size=(draws, n))
        out: dict[str, Any] = {}
        for name, m in self.models.items():
            if name == "naive":
                continue
            row: dict[str, Any] = {}
            for f in FRACTIONS:
                b = np.array([w.captured[f] for w in base.weeks])
                x = np.array([w.captured[f] for w in m.weeks])
                key = f"pai_{round(f * 100)}"
                if b.sum() <= 0:
                    row[key], row[f"{key}_ci90"] = None, None
                    continue
                # A draw of weeks in which the baseline captured nothing has no ratio: it is
                # left out, not counted as -100%.
                b_drawn = b[picks].sum(axis=1)
                ok = b_drawn > 0
                drawn = x[picks].sum(axis=1)[ok] / b_drawn[ok] - 1.0
                row[key] = round(float(x.sum() / b.sum() - 1.0), 4)
                if drawn.size:
                    lo, hi = np.percentile(drawn, [5.0, 95.0])
                    row[f"{key}_ci90"] = [round(float(lo), 4), round(float(hi), 4)]
                else:
                    row[f"{key}_ci90"] = None
                # Weeks the model captured more than the baseline, and fewer.
                row[f"{key}_weeks_ahead"] = int((x > b + 1e-9).sum())
                row[f"{key}_weeks_behind"] = int((x < b - 1e-9).sum())
            out[name] = row
        return out

    def summary(self) -> dict[str, Any]:
        """`{"models": {NAME: {hit_1, pai_1, hit_5, pai_5}}, "best": NAME, "meta": {...}}`."""
        models = {
            name: {
                "hit_1": round(m.hit(0.01), 4),
                "pai_1": round(self.pai(name, 0.01), 3),
                "hit_5": round(m.hit(0.05), 4),
                "pai_5": round(self.pai(name, 0.05), 3),
            }
            for name, m in self.models.items()
        }
        return {
            "models": models,
            "best": self.best(),
            "meta": {
                "from": self.start.date().isoformat(),
                "to": (self.end - timedelta(days=1)).date().isoformat(),
                "weeks": len(next(iter(self.models.values())).weeks),
                "incidents": self.incidents,
                "outside_area": self.outside_area,
                "cell_m": self.grid.cell_m,
                "area_cells": self.area_cells,
                "area": self.area_source,
                "cells_1": self.cells[0.01],
                "cells_5": self.cells[0.05],
                "history_from": self.history_from.date().isoformat() if self.history_from else None,
                "history_incidents": self.history_incidents,
                "seconds": {n: round(m.seconds, 2) for n, m in self.models.items()},
                "best_rule": BEST_RULE,
                "tuning": TUNING_NOTE,
                "fits": {n: m.info for n, m in self.models.items() if m.info},
                "vs_naive": self.gains_vs_naive(),
                "vs_naive_rule": VS_NAIVE_RULE,
            },
        }


@dataclass
class Area:
    """The grid, the cells scored (`mask`), where they came from, and the history on it."""

    grid: Grid
    mask: BoolArray
    source: str
    history: History

    @property
    def cells(self) -> int:
        return int(np.count_nonzero(self.mask))


def prepare_area(
    incidents: Incidents,
    *,
    cell_m: float = DEFAULT_CELL_M,
    boundary: Any = None,
    history_from: datetime | None = None,
) -> Area:
    """The evaluation's grid and area: the cells whose centre lies inside `boundary`, or
    the cells holding any incident of the file; and the incidents (from `history_from`)
    on that grid, sorted by time."""
    if len(incidents) == 0:
        raise InvalidInput("no incidents to evaluate on")
    h0 = day_number(history_from) if history_from else -math.inf
    if boundary is not None:
        inside = shapely.contains_xy(boundary, incidents.lon, incidents.lat)
        if not inside.any():
            raise InvalidInput(
                f"none of the {len(incidents):,} incidents lies inside the boundary: is it the "
                "area of this file (and longitude before latitude in both)?"
            )
    if boundary is not None:
        grid = Grid.covering_geometry(boundary, cell_m=cell_m)
        area: BoolArray = grid.mask_inside(boundary)
        source = "boundary"
    else:
        grid = Grid.covering(incidents.lon, incidents.lat, cell_m=cell_m)
        area = np.zeros(grid.n, dtype=bool)
        source = "cells with any incident in the file"
    keep = incidents.t >= h0
    hist = History.build(grid, incidents.t[keep], incidents.lon[keep], incidents.lat[keep])
    if boundary is None:
        area[hist.cell[hist.cell >= 0]] = True
        # Cells of incidents before history_from count too: "any incident in the file".
        every = grid.cells_lonlat(incidents.lon, incidents.lat)
        area[every[every >= 0]] = True
    if not area.any():
        raise InvalidInput(
            f"no cell centre of a {cell_m:g} m grid lies inside the boundary: give a smaller "
            "--cell, or check that it is the right file"
        )
    return Area(grid=grid, mask=area, source=source, history=hist)


@dataclass
class Week:
    """One period to forecast: [start, end) in local days, the area's incidents per cell
    in it (`counts`, area cells only), those outside the area, and the history before it."""

    index: int
    start: float
    end: float
    counts: FloatArray
    outside: int
    past: History


def weeks(area: Area, start: float, end: float, period_days: float = 7.0) -> Iterator[Week]:
    """The periods of [start, end), each with the incidents strictly before it as `past`."""
    hist = area.history
    s = start
    i = 0
    while s < end - 1e-9:
        e = min(s + period_days, end)
        target = hist.between(s, e)
        in_area = (target.cell >= 0) & area.mask[np.maximum(target.cell, 0)]
        counts = np.bincount(target.cell[in_area], minlength=area.grid.n).astype(np.float64)
        yield Week(
            index=i,
            start=s,
            end=e,
            counts=counts[area.mask],
            outside=int(np.count_nonzero(~in_area)),
            past=hist.before(s),
        )
        i += 1
        s = e


def evaluate(
    incidents: Incidents,
    *,
    start: datetime,
    end: datetime,
    models: Sequence[str | Model],
    cell_m: float = DEFAULT_CELL_M,
    boundary: Any = None,
    history_from: datetime | None = None,
    period_days: float = 7.0,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Weekly forecasts over [start, end) (naive local datetimes), each from incidents
    before its week, scored at 1% and 5% of the area."""
    if end <= start:
        raise InvalidInput("the evaluation period is empty: --to must come after --from")
    if len(incidents) == 0:
        raise InvalidInput("no incidents to evaluate on")
    s0, s1 = day_number(start), day_number(end)
    area = prepare_area(incidents, cell_m=cell_m, boundary=boundary, history_from=history_from)
    grid, mask, area_cells = area.grid, area.mask, area.cells
    n_before = int(np.count_nonzero(area.history.t < s0))
    if n_before == 0:
        raise InvalidInput(
            "no incident before --from: every forecast needs history before the evaluation "
            "period (e.g. train on 2010-2017, evaluate 2018)"
        )
    period = area.history.between(s0, s1)
    in_area = (period.cell >= 0) & mask[np.maximum(period.cell, 0)]
    if not in_area.any():
        raise InvalidInput(
            f"no incident from {start:%Y-%m-%d} to {end - timedelta(seconds=1):%Y-%m-%d} "
            f"lies in the area ({len(period):,} outside it): nothing to score; check --from "
            "and --to against the file's dates, and the boundary"
        )
    cells = {f: cells_for(f, area_cells) for f in FRACTIONS}
    instances = [make_model(m) if isinstance(m, str) else m for m in models]
    if not any(m.name == "naive" for m in instances):
        instances.insert(0, make_model("naive"))
    scores = {m.name: ModelScore(m.name) for m in instances}
    total = outside = 0
    for wk in weeks(area, s0, s1, period_days):
        outside += wk.outside
        n_week = int(wk.counts.sum())
        total += n_week
        when = start + timedelta(days=period_days * wk.index)
        for m in instances:
            t0 = time.perf_counter()
            pred = m.forecast(wk.past, wk.start, wk.end - wk.start)[mask]
            captured = {f: capture(pred, wk.counts, cells[f]) for f in FRACTIONS}
            scores[m.name].seconds += time.perf_counter() - t0
            scores[m.name].weeks.append(WeekScore(when, n_week, captured))
        if progress and (wk.index + 1) % 13 == 0:
            progress(f"week {wk.index + 1}: {when.date()}")
    for m in instances:
        fits = getattr(m, "fits", None)
        if fits:
            last = fits[-1][1]
            scores[m.name].info = {"refits": len(fits), "last_fit": last.to_dict()}
    return Evaluation(
        start=start,
        end=end,
        grid=grid,
        area_cells=area_cells,
        area_source=area.source,
        cells=cells,
        incidents=total,
        outside_area=outside,
        history_from=history_from,
        history_incidents=n_before,
        models=scores,
    )


def format_table(ev: Evaluation) -> str:
    """The evaluation as a table a person reads."""
    summary = ev.summary()
    meta = summary["meta"]
    lines = [
        f"Weekly hotspot forecasts {meta['from']} .. {meta['to']}: {meta['weeks']} weeks, "
        f"{ev.incidents:,} incidents in the area ({ev.outside_area:,} outside it)",
        f"{ev.grid.cell_m:g} m cells; area: {ev.area_cells:,} cells ({ev.area_source}); "
        f"1% = {ev.cells[0.01]} cells, 5% = {ev.cells[0.05]} cells",
        f"Each week is forecast from incidents before it only ({ev.history_incidents:,} "
        "before the period). " + TUNING_NOTE.split(";")[0] + ".",
        "",
        f"{'model':<12} {'hit@1%':>7} {'PAI@1%':>7} {'vs naive':>9} "
        f"{'hit@5%':>7} {'PAI@5%':>7} {'vs naive':>9} {'seconds':>8}",
    ]
    base = summary["models"]["naive"]

    def gain(r: dict[str, Any], key: str) -> str:
        return f"{r[key] / base[key] - 1:+.1%}" if base[key] > 0 else "n/a"

    for name, r in summary["models"].items():
        g1 = "" if name == "naive" else gain(r, "pai_1")
        g5 = "" if name == "naive" else gain(r, "pai_5")
        lines.append(
            f"{name:<12} {r['hit_1']:>7.1%} {r['pai_1']:>7.2f} {g1:>9} "
            f"{r['hit_5']:>7.1%} {r['pai_5']:>7.2f} {g5:>9} {meta['seconds'][name]:>8.1f}"
        )
    gains = meta["vs_naive"]
    if gains:
        lines.append("")
        lines.append(
            "Gain over naive, 90% interval from resampling the weeks (paired bootstrap), "
            "weeks ahead / behind:"
        )
        for name, g in gains.items():
            parts = []
            for level in ("1", "5"):
                key = f"pai_{level}"
                if g[key] is None:
                    parts.append(f"PAI@{level}%: no baseline hits")
                    continue
                lo, hi = g[f"{key}_ci90"]
                parts.append(
                    f"PAI@{level}% {g[key]:+.1%} [{lo:+.1%}, {hi:+.1%}] "
                    f"{g[f'{key}_weeks_ahead']}/{g[f'{key}_weeks_behind']}"
                )
            lines.append(f"  {name:<12} " + "   ".join(parts))
    lines.append("")
    lines.append(f"best: {summary['best']} ({BEST_RULE})")
    return "\n".join(lines)
