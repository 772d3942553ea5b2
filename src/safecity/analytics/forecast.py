"""Next-period risk surfaces over a grid: what each model expects in each cell.

Every model answers one question: given the incidents strictly before `start`, how many
incidents does each cell expect in `[start, start + days)`? It is handed a `History` that
holds only those earlier incidents (`History.before` slices the time-sorted arrays at
`start`), so no model can see its own week or later: the evaluation relies on it, and the
tests check it.

Models (names as on the command line):

* `naive`: counts of the past 365 days per cell (the baseline to beat).
* `prospective`: Bowers, Johnson & Pease (2004) prospective hotspotting: each past incident
  weighs 1/(1 + whole weeks ago) x 1/(1 + distance in cells) within a time and space
  bandwidth.
* `kde`: a recency-weighted kernel density: every past incident weighs 2^(-age/half-life),
  smoothed with a Gaussian kernel.
* `sepp`: a self-exciting point process (ETAS; Mohler et al. 2011/2015): a background
  intensity estimated by kernel density, plus triggering exponential in time and Gaussian
  in space, fitted by expectation-maximisation on a rolling training window, refitted every
  few weeks on incidents before the forecast only.
* `blend`: long-term recency-weighted counts with a small neighbour prior, corrected by
  the local seasonal profile (the same weeks of earlier years against all weeks; left out
  with less than two years of history) and by the regional recent trend (last months
  against the long run, at ~600 m). Its weights and powers are what
  `safecity.analytics.tuning.tune_blend` picks on weekly forecasts of 2014-2017 of the
  Chicago assaults, never on 2018.

All heavy lifting is numpy/scipy on the grid (bincount + ndimage filters) and, for the
SEPP's fit, pairs of nearby incidents from `scipy.spatial.cKDTree`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import cKDTree

from safecity.analytics.grid import FloatArray, Grid, IntArray
from safecity.core.errors import InvalidInput

YEAR_DAYS = 365.2425


@dataclass
class History:
    """Incidents on a grid, sorted by time: `t` local days, `x`/`y` metres, `cell`."""

    grid: Grid
    t: FloatArray
    x: FloatArray
    y: FloatArray
    cell: IntArray

    @classmethod
    def build(cls, grid: Grid, t: FloatArray, lon: FloatArray, lat: FloatArray) -> History:
        order = np.argsort(t, kind="stable")
        x, y = grid.project(lon[order], lat[order])
        return cls(grid=grid, t=t[order], x=x, y=y, cell=grid.cells_xy(x, y))

    def before(self, start: float) -> History:
        """Only the incidents strictly before `start` (views, no copy)."""
        k = int(np.searchsorted(self.t, start, side="left"))
        return History(self.grid, self.t[:k], self.x[:k], self.y[:k], self.cell[:k])

    def between(self, start: float, end: float) -> History:
        a = int(np.searchsorted(self.t, start, side="left"))
        b = int(np.searchsorted(self.t, end, side="left"))
        return History(self.grid, self.t[a:b], self.x[a:b], self.y[a:b], self.cell[a:b])

    def __len__(self) -> int:
        return int(self.t.size)

    @property
    def end(self) -> float:
        return float(self.t[-1]) if self.t.size else -math.inf

    def counts(self, weights: FloatArray | None = None, mask: Any = None) -> FloatArray:
        """Incidents (or weights) per cell; incidents off the grid are left out."""
        c = self.cell
        w = weights
        if mask is not None:
            c = c[mask]
            w = w[mask] if w is not None else None
        on = c >= 0
        if not on.all():
            c = c[on]
            w = w[on] if w is not None else None
        return np.bincount(c, weights=w, minlength=self.grid.n).astype(np.float64)


class Model(Protocol):
    name: str

    def forecast(self, history: History, start: float, days: float) -> FloatArray:
        """Expected incidents per cell in [start, start + days), from `history` alone."""
        ...


def _smooth(grid: Grid, values: FloatArray, sigma_m: float) -> FloatArray:
    if sigma_m <= 0:
        return values
    img = ndimage.gaussian_filter(
        values.reshape(grid.shape), sigma_m / grid.cell_m, mode="constant", truncate=4.0
    )
    return np.asarray(img, dtype=np.float64).ravel()


def _decay(
    history: History, start: float, half_life: float, since: float | None = None
) -> FloatArray:
    age = start - history.t
    w = np.exp2(-age / half_life)
    mask = None if since is None else history.t >= since
    return history.counts(w, mask)


def _scale_to_recent(history: History, start: float, days: float, score: FloatArray) -> FloatArray:
    """Scale a risk score so it sums to the incidents expected at last year's pace."""
    total = float(score.sum())
    recent = int(np.count_nonzero(history.t >= start - 365.0))
    if total <= 0 or recent == 0:
        return score
    return score * (recent * days / 365.0 / total)


@dataclass
class Naive:
    """Counts of the past `window_days` per cell."""

    window_days: float = 365.0
    name: str = "naive"

    def forecast(self, history: History, start: float, days: float) -> FloatArray:
        c = history.counts(mask=history.t >= start - self.window_days)
        return c * (days / self.window_days)


@dataclass
class Prospective:
    """Bowers-Johnson-Pease prospective hotspotting.

    Risk = sum over incidents of the last `weeks` weeks within `bandwidth_cells` cells of
    1/(1 + w) * 1/(1 + d), w the whole weeks before `start`, d the distance between cell
    centres in cells. The constants (104 weeks, 1 cell) were the best of a search over 8-104
    weeks and 0-3 cells on 2014-2017; the classic short bandwidths (8 weeks, 400 m) do much
    worse than the baseline on assaults."""

    weeks: int = 104
    bandwidth_cells: int = 1
    name: str = "prospective"

    def forecast(self, history: History, start: float, days: float) -> FloatArray:
        mask = history.t >= start - 7.0 * self.weeks
        whole_weeks = np.floor((start - history.t) / 7.0)
        counts = history.counts(1.0 / (1.0 + whole_weeks), mask)
        d = self.bandwidth_cells
        r = np.arange(-d, d + 1)
        dx, dy = np.meshgrid(r, r)
        dist = np.hypot(dx, dy)
        kernel = np.where(dist <= d + 1e-9, 1.0 / (1.0 + dist), 0.0)
        img = ndimage.convolve(counts.reshape(history.grid.shape), kernel, mode="constant")
        return _scale_to_recent(history, start, days, np.asarray(img, np.float64).ravel())


@dataclass
class KDE:
    """Recency-weighted kernel density: weights 2^(-age / half_life), Gaussian kernel."""

    half_life_days: float = 730.0
    bandwidth_m: float = 50.0
    name: str = "kde"

    def forecast(self, history: History, start: float, days: float) -> FloatArray:
        score = _smooth(history.grid, _decay(history, start, self.half_life_days), self.bandwidth_m)
        return _scale_to_recent(history, start, days, score)


@dataclass
class BlendParts:
    """What the blend's score is made of, before its weights and powers (see `Blend`).

    `season` and `trend` are None where the history cannot support them."""

    level: FloatArray
    ring: FloatArray
    season: FloatArray | None
    trend: FloatArray | None


@dataclass
class Blend:
    """Long-term counts x local season x regional trend (see the module's notes).

    score = (L + neighbour_weight * N) * SR^season_power * RR^trend_power, where L are
    counts weighted 2^(-age/half_life), N the sum of L over the 8 neighbouring cells; SR
    the ratio of the (Gaussian `season_bandwidth_m`) density of incidents within
    `season_days` days of the same day of the year to that of all incidents; RR the ratio
    of the density (Gaussian `trend_bandwidth_m`) of recent incidents (half-life
    `trend_half_life_days`) to that of the long run (half-life `long_half_life_days`).

    SR is left out (taken as 1) when the history spans less than `season_min_years`: the
    same weeks of earlier years are what it compares, and without them it would only
    penalise the cells with incidents.

    The four weights and powers are the choice of `safecity.analytics.tuning.tune_blend`
    (`safecity eval tune-blend`) on weekly forecasts of 2014-2017 of the Chicago aggravated
    assaults; the other constants are fixed design choices. Nothing of 2018 was used."""

    half_life_days: float = 730.0
    neighbour_weight: float = 0.02
    season_days: float = 30.0
    season_bandwidth_m: float = 150.0
    season_power: float = 0.5
    season_min_years: float = 2.0
    trend_half_life_days: float = 90.0
    long_half_life_days: float = 1460.0
    trend_bandwidth_m: float = 600.0
    trend_power: float = 0.5
    name: str = "blend"

    def forecast(self, history: History, start: float, days: float) -> FloatArray:
        if len(history) == 0:
            return np.zeros(history.grid.n)
        score = self.combine(self.parts(history, start, days))
        return _scale_to_recent(history, start, days, score)

    def parts(
        self, history: History, start: float, days: float, *, half_life_days: float | None = None
    ) -> BlendParts:
        """The score's parts for the period [start, start + days) (`half_life_days`
        overrides the level's half-life: the tuning computes the other parts once)."""
        level, ring = self.level(history, start, half_life_days or self.half_life_days)
        return BlendParts(
            level=level,
            ring=ring,
            season=self.season(history, start, days),
            trend=self.trend(history, start),
        )

    def combine(
        self,
        parts: BlendParts,
        *,
        neighbour_weight: float | None = None,
        season_power: float | None = None,
        trend_power: float | None = None,
    ) -> FloatArray:
        """The score from its parts with this blend's weights and powers (or those given)."""
        nw = self.neighbour_weight if neighbour_weight is None else neighbour_weight
        sp = self.season_power if season_power is None else season_power
        tp = self.trend_power if trend_power is None else trend_power
        score = parts.level + nw * parts.ring if nw else parts.level
        if sp and parts.season is not None:
            score = score * parts.season**sp
        if tp and parts.trend is not None:
            score = score * parts.trend**tp
        return score

    def level(
        self, history: History, start: float, half_life: float
    ) -> tuple[FloatArray, FloatArray]:
        """L (recency-weighted counts) and N (their sum over each cell's 8 neighbours)."""
        grid = history.grid
        level = _decay(history, start, half_life)
        ring = np.ones((3, 3))
        ring[1, 1] = 0.0
        nb = ndimage.convolve(level.reshape(grid.shape), ring, mode="constant")
        return level, np.asarray(nb, dtype=np.float64).ravel()

    def season(self, history: History, start: float, days: float) -> FloatArray | None:
        """SR, or None when the history is shorter than `season_min_years`."""
        if len(history) == 0 or start - float(history.t[0]) < self.season_min_years * YEAR_DAYS:
            return None
        mid = (start + days / 2.0) % YEAR_DAYS
        off = (history.t % YEAR_DAYS - mid + YEAR_DAYS / 2.0) % YEAR_DAYS - YEAR_DAYS / 2.0
        season = history.counts(mask=np.abs(off) <= self.season_days)
        return _ratio(history.grid, season, history.counts(), self.season_bandwidth_m)

    def trend(self, history: History, start: float) -> FloatArray | None:
        """RR, or None without incidents."""
        if len(history) == 0:
            return None
        recent = _decay(
            history, start, self.trend_half_life_days, since=start - 6 * self.trend_half_life_days
        )
        longrun = _decay(history, start, self.long_half_life_days)
        return _ratio(history.grid, recent, longrun, self.trend_bandwidth_m)


def _ratio(grid: Grid, num: FloatArray, den: FloatArray, sigma_m: float) -> FloatArray:
    """(smoothed num / its total + eps) / (smoothed den / its total + eps): where num's
    share is above den's; eps (0.005 / cells) keeps empty places at a ratio near 1."""
    eps = 0.005 / grid.n
    sn, sd = float(num.sum()), float(den.sum())
    if sn <= 0 or sd <= 0:
        return np.ones(grid.n)
    a = _smooth(grid, num, sigma_m) / sn
    b = _smooth(grid, den, sigma_m) / sd
    return (a + eps) / (b + eps)


# --------------------------------------------------------------------------- SEPP


@dataclass
class SEPPFit:
    """A fitted self-exciting point process.

    Intensity at (t, x): mu(x) + sum over earlier incidents j of
    theta * omega * exp(-omega (t - t_j)) * N(x - x_j; sigma^2 I)."""

    theta: float
    omega: float
    sigma_m: float
    background: FloatArray  # expected background incidents per cell per day
    iterations: int
    events: int
    background_share: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "theta": round(self.theta, 4),
            "trigger_days": round(1.0 / self.omega, 2),
            "sigma_m": round(self.sigma_m, 1),
            "background_share": round(self.background_share, 4),
            "events": self.events,
            "iterations": self.iterations,
        }


def fit_sepp(
    history: History,
    *,
    start: float,
    end: float,
    bandwidth_m: float = 50.0,
    min_sigma_m: float = 30.0,
    max_days: float = 180.0,
    max_m: float = 400.0,
    iterations: int = 30,
    tol: float = 1e-4,
) -> SEPPFit:
    """Fit the SEPP by EM (stochastic declustering, Mohler et al. 2011) on [start, end).

    E-step: each incident's probability of being background (mu(x_i)) or triggered by an
    earlier incident j within `max_days` and `max_m` (pairs from a k-d tree). M-step:
    theta = triggered / edge-corrected parents, omega from the mean delay, sigma from the
    mean squared distance (floored at `min_sigma_m`: locations are recorded to the block,
    so exact repeats would otherwise collapse the kernel), and the background as a Gaussian
    (`bandwidth_m`) kernel density of the incidents weighted by their background
    probability. Truncating the kernels at max_days/max_m biases omega and sigma a little
    upwards; the forecast uses the fitted values as they are."""
    win = history.between(start, end)
    on = win.cell >= 0
    tt, xx, yy, cc = win.t[on], win.x[on], win.y[on], win.cell[on]
    n = int(tt.size)
    grid = history.grid
    span = max(end - start, 1e-9)
    if n < 20:
        bg = history.counts(mask=(history.t >= start) & (history.t < end)) / span
        return SEPPFit(0.0, 1.0, min_sigma_m, bg, 0, n, 1.0)
    tree = cKDTree(np.column_stack([xx, yy]))
    pairs = tree.query_pairs(max_m, output_type="ndarray")
    a, b = pairs[:, 0], pairs[:, 1]
    later = np.where(tt[a] >= tt[b], a, b)
    earlier = np.where(tt[a] >= tt[b], b, a)
    dt = tt[later] - tt[earlier]
    keep = (dt > 0) & (dt < max_days)
    child, dt = later[keep], dt[keep]
    d2 = (xx[later[keep]] - xx[earlier[keep]]) ** 2 + (yy[later[keep]] - yy[earlier[keep]]) ** 2
    theta, omega, sig2 = 0.1, 1.0 / 14.0, max(50.0, min_sigma_m) ** 2
    p_bg = np.ones(n)
    cell_area = grid.cell_m**2
    it = 0
    for it in range(1, iterations + 1):  # noqa: B007 (reported)
        dens = _smooth(
            grid, np.bincount(cc, weights=p_bg, minlength=grid.n).astype(np.float64), bandwidth_m
        )
        mu = dens[cc] / (cell_area * span)
        g = (
            theta
            * omega
            * np.exp(-omega * dt)
            * np.exp(-d2 / (2.0 * sig2))
            / (2.0 * math.pi * sig2)
        )
        total = mu + np.bincount(child, weights=g, minlength=n)
        total = np.maximum(total, 1e-300)
        p_trig = g / total[child]
        p_bg = mu / total
        s = float(p_trig.sum())
        if s <= 1e-9:
            theta = 0.0
            break
        parents = float((1.0 - np.exp(-omega * (end - tt))).sum())
        new_theta = s / parents
        new_omega = s / float((p_trig * dt).sum())
        new_sig2 = max(float((p_trig * d2).sum()) / (2.0 * s), min_sigma_m**2)
        change = max(
            abs(new_theta - theta) / max(theta, 1e-9),
            abs(new_omega - omega) / omega,
            abs(new_sig2 - sig2) / sig2,
        )
        theta, omega, sig2 = new_theta, new_omega, new_sig2
        if change < tol:
            break
    dens = _smooth(
        grid, np.bincount(cc, weights=p_bg, minlength=grid.n).astype(np.float64), bandwidth_m
    )
    return SEPPFit(
        theta=theta,
        omega=omega,
        sigma_m=math.sqrt(sig2),
        background=dens / span,
        iterations=it,
        events=n,
        background_share=float(p_bg.mean()),
    )


def sepp_trigger(history: History, fit: SEPPFit, start: float, days: float) -> FloatArray:
    """Expected incidents per cell in [start, start + days) triggered by earlier ones."""
    if fit.theta <= 0:
        return np.zeros(history.grid.n)
    recent = history.t >= start - 12.0 / fit.omega
    age = start - history.t[recent]
    w = fit.theta * (np.exp(-fit.omega * age) - np.exp(-fit.omega * (age + days)))
    trig = history.counts(_put(len(history), recent, w), recent)
    return _smooth(history.grid, trig, fit.sigma_m)


def _put(n: int, mask: npt.NDArray[np.bool_], values: FloatArray) -> FloatArray:
    out = np.zeros(n)
    out[mask] = values
    return out


@dataclass
class SEPP:
    """ETAS / SEPP forecasts, refitted every `refit_weeks` on the last `window_days`."""

    window_days: float = 1460.0
    refit_weeks: int = 4
    bandwidth_m: float = 50.0
    min_sigma_m: float = 30.0
    name: str = "sepp"
    fits: list[tuple[float, SEPPFit]] = field(default_factory=list)

    def forecast(self, history: History, start: float, days: float) -> FloatArray:
        fit = self._fit_for(history, start)
        return fit.background * days + sepp_trigger(history, fit, start, days)

    def _fit_for(self, history: History, start: float) -> SEPPFit:
        if self.fits:
            at, fit = self.fits[-1]
            if 0 <= start - at < 7.0 * self.refit_weeks - 1e-9:
                return fit
        fit = fit_sepp(
            history,
            start=start - self.window_days,
            end=start,
            bandwidth_m=self.bandwidth_m,
            min_sigma_m=self.min_sigma_m,
        )
        self.fits.append((start, fit))
        return fit


# --------------------------------------------------------------------------- registry

MODELS: dict[str, Callable[[], Model]] = {
    "naive": Naive,
    "prospective": Prospective,
    "kde": KDE,
    "sepp": SEPP,
    "blend": Blend,
}
#: The model the console and patrol planning use unless told otherwise.
DEFAULT_MODEL = "blend"


def make_model(name: str) -> Model:
    try:
        return MODELS[name]()
    except KeyError:
        raise InvalidInput(f"unknown model {name!r}; one of: {', '.join(MODELS)}") from None


def model_names(spec: str | list[str] | None) -> list[str]:
    """Model names from a list or a comma-separated string ('all' or None: every model);
    the naive baseline is always included, first."""
    if spec is None or spec == "all" or spec == ["all"]:
        names = list(MODELS)
    else:
        parts = (
            spec.split(",") if isinstance(spec, str) else [p for s in spec for p in s.split(",")]
        )
        names = [p.strip() for p in parts if p.strip()]
        if "all" in names:
            names = list(MODELS)
    for n in names:
        make_model(n)  # refuses unknown names
    return ["naive"] + [n for n in dict.fromkeys(names) if n != "naive"]
