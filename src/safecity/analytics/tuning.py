"""Choosing the blend's weights and powers on validation years, never on the year reported.

`tune_blend` forecasts every week of each validation year from the incidents strictly
before that week (the same weeks, area and scoring as `evaluate`), for every combination of
`BLEND_GRID` (the level's half-life, the neighbour weight, the season and trend powers), and
ranks the combinations by the smaller of their mean (over the years) log PAI ratios to the
naive baseline at 1% and at 5% of the area: the target is a gain at both levels, and the 1%
level is the hard one, so a combination must not buy 5% with 1%. Ties go to the earlier
combination of the grid.

The blend's defaults are the winner on the Chicago aggravated assaults with the years
2014-2017 (`safecity eval tune-blend --years 2014-2017`); the year reported (2018) is never
looked at.

The level's half-life changes only the level; the season and trend ratios are computed
once a week and the combinations are scored together (`capture_many`): the 192
combinations of four years take about 70-100 s on two cores."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from safecity.analytics.evaluate import (
    FRACTIONS,
    capture_many,
    cells_for,
    prepare_area,
    weeks,
)
from safecity.analytics.events import Incidents, day_number
from safecity.analytics.forecast import Blend, BlendParts, Naive
from safecity.analytics.grid import DEFAULT_CELL_M, FloatArray
from safecity.core.errors import InvalidInput

#: The blend constants searched, and their candidate values.
BLEND_GRID: dict[str, tuple[float, ...]] = {
    "half_life_days": (365.0, 730.0, 1460.0),
    "neighbour_weight": (0.0, 0.02, 0.05, 0.1),
    "season_power": (0.0, 0.25, 0.5, 0.75),
    "trend_power": (0.0, 0.25, 0.5, 0.75),
}
#: How the combinations are ranked, in words.
RULE = (
    "the smaller of the mean (over the years) log PAI ratios to the naive baseline at 1% "
    "and at 5%; ties to the earlier combination"
)
#: The years the shipped constants were chosen on (Chicago aggravated assaults).
VALIDATION_YEARS: tuple[int, ...] = (2014, 2015, 2016, 2017)


@dataclass
class Candidate:
    """One combination of constants and its PAI ratios to the naive baseline per year."""

    params: dict[str, float]
    ratios: list[tuple[float, float]] = field(default_factory=list)

    @property
    def score(self) -> float:
        """The smaller of the mean log PAI ratios (over the years) at 1% and at 5%."""
        if not self.ratios or any(r <= 0 for pair in self.ratios for r in pair):
            return -math.inf
        n = len(self.ratios)
        return min(sum(math.log(pair[j]) for pair in self.ratios) / n for j in range(2))

    def gains(self) -> dict[str, float]:
        """Mean gains over the years at 1% and 5% (PAI ratio - 1)."""
        n = len(self.ratios)
        return {
            "gain_1": sum(r[0] for r in self.ratios) / n - 1.0 if n else 0.0,
            "gain_5": sum(r[1] for r in self.ratios) / n - 1.0 if n else 0.0,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "score": round(self.score, 5),
            **{k: round(v, 4) for k, v in self.gains().items()},
            "per_year": [[round(r1 - 1.0, 4), round(r5 - 1.0, 4)] for r1, r5 in self.ratios],
        }


@dataclass
class Tuning:
    years: list[int]
    candidates: list[Candidate]  # best first
    naive_hits: dict[int, tuple[float, float]]
    seconds: float

    @property
    def best(self) -> Candidate:
        return self.candidates[0]

    def rank_of(self, params: dict[str, float]) -> int | None:
        for i, c in enumerate(self.candidates):
            if c.params == params:
                return i + 1
        return None

    def summary(self, top: int = 10) -> dict[str, Any]:
        defaults = current_params()
        rank = self.rank_of(defaults)
        return {
            "years": self.years,
            "best": self.best.to_dict(),
            "defaults": {
                "params": defaults,
                "rank": rank,
                **(self.candidates[rank - 1].to_dict() if rank else {}),
            },
            "top": [c.to_dict() for c in self.candidates[:top]],
            "naive": {
                str(y): {"hit_1": round(h1, 4), "hit_5": round(h5, 4)}
                for y, (h1, h5) in self.naive_hits.items()
            },
            "combinations": len(self.candidates),
            "rule": RULE,
            "seconds": round(self.seconds, 1),
        }


def current_params() -> dict[str, float]:
    """The blend's shipped values of the constants in `BLEND_GRID`."""
    b = Blend()
    return {k: float(getattr(b, k)) for k in BLEND_GRID}


def tune_blend(
    incidents: Incidents,
    *,
    years: Sequence[int],
    cell_m: float = DEFAULT_CELL_M,
    boundary: Any = None,
    grid: dict[str, tuple[float, ...]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Tuning:
    """Score every combination of `grid` (default `BLEND_GRID`) on weekly forecasts of each
    of `years` (1 January to 31 December), each week from the incidents before it only."""
    t0 = time.perf_counter()
    space = grid or BLEND_GRID
    unknown = set(space) - set(BLEND_GRID)
    if unknown:
        raise InvalidInput(
            f"cannot tune {', '.join(sorted(unknown))}; only {', '.join(BLEND_GRID)}"
        )
    if not years:
        raise InvalidInput("give at least one validation year")
    fixed = current_params()
    names = list(space)
    combos = [
        {**fixed, **dict(zip(names, values, strict=True))}
        for values in itertools.product(*(space[n] for n in names))
    ]
    area = prepare_area(incidents, cell_m=cell_m, boundary=boundary)
    mask = area.mask
    k = {f: cells_for(f, area.cells) for f in FRACTIONS}
    blend, naive = Blend(), Naive()
    half_lives = sorted({c["half_life_days"] for c in combos})
    candidates = [Candidate(params=c) for c in combos]
    naive_hits: dict[int, tuple[float, float]] = {}
    for year in sorted(set(years)):
        s0 = day_number(datetime(year, 1, 1))
        s1 = day_number(datetime(year + 1, 1, 1))
        if not np.any(area.history.t < s0):
            raise InvalidInput(f"no incident before {year}: it cannot be a validation year")
        got = np.zeros((len(combos), len(FRACTIONS)))
        base = np.zeros(len(FRACTIONS))
        total = 0.0
        for wk in weeks(area, s0, s1):
            days = wk.end - wk.start
            total += float(wk.counts.sum())
            pn = naive.forecast(wk.past, wk.start, days)[mask][None, :]
            for j, f in enumerate(FRACTIONS):
                base[j] += float(capture_many(pn, wk.counts, k[f])[0])
            if len(wk.past) == 0:
                continue
            preds = _scores(blend, wk.past, wk.start, days, combos, half_lives, mask)
            for j, f in enumerate(FRACTIONS):
                got[:, j] += capture_many(preds, wk.counts, k[f])
        naive_hits[year] = (base[0] / total, base[1] / total) if total else (0.0, 0.0)
        for i, c in enumerate(candidates):
            c.ratios.append(
                (
                    got[i, 0] / base[0] if base[0] else 1.0,
                    got[i, 1] / base[1] if base[1] else 1.0,
                )
            )
        if progress:
            progress(f"{year}: {len(combos)} combinations scored")
    order = sorted(range(len(candidates)), key=lambda i: -candidates[i].score)
    return Tuning(
        years=sorted(set(years)),
        candidates=[candidates[i] for i in order],
        naive_hits=naive_hits,
        seconds=time.perf_counter() - t0,
    )


def _scores(
    blend: Blend,
    past: Any,
    start: float,
    days: float,
    combos: list[dict[str, float]],
    half_lives: list[float],
    mask: Any,
) -> FloatArray:
    """The blend's score of every combination (rows) over the area's cells (columns)."""
    season = blend.season(past, start, days)
    trend = blend.trend(past, start)
    levels = {}
    for h in half_lives:
        level, ring = blend.level(past, start, h)
        levels[h] = BlendParts(level=level[mask], ring=ring[mask], season=None, trend=None)
    s_m = season[mask] if season is not None else None
    t_m = trend[mask] if trend is not None else None
    powers: dict[tuple[str, float], FloatArray] = {}

    def power(which: str, p: float) -> FloatArray | float:
        arr = s_m if which == "season" else t_m
        if not p or arr is None:
            return 1.0
        key = (which, p)
        if key not in powers:
            powers[key] = arr**p
        return powers[key]

    out = np.empty((len(combos), int(np.count_nonzero(mask))))
    for i, c in enumerate(combos):
        lv = levels[c["half_life_days"]]
        nw = c["neighbour_weight"]
        score = lv.level + nw * lv.ring if nw else lv.level
        out[i] = score * power("season", c["season_power"]) * power("trend", c["trend_power"])
    return out
