"""Trend monitoring: counts per group and period, a seasonal count model, anomaly alerts.

For each group (all incidents, a district, a station, a type) the counts per day or week
of a baseline window (by default the three years before the monitored periods) are fitted
by a log-linear Poisson model (IRLS) with

* an intercept and a linear trend (when the baseline spans at least a year),
* annual seasonality: two harmonics of the day of the year (smooth month effects; when
  the baseline spans at least a year),
* the weekday (daily counts only).

Overdispersion is estimated from the Pearson residuals (Cameron & Trivedi's moment
estimator): var = mu + mu^2 / k. With k finite the counts are negative binomial, else
Poisson. Each monitored period's count gets its expected value, a central band (99% by
default) and the upper-tail p-value P(Y >= count). A rise is an alert when its
Benjamini-Hochberg q-value over every group and period tested is below `fdr` (5%): a rise
that is statistically unusual for that group, its season and its weekday, not a fixed
threshold, and few false alarms when many groups are watched.

A model is only as rich as its group's baseline allows: each term needs about
`EVENTS_PER_TERM` incidents. A sparse group (a rare type, a quiet station) gets fewer terms
and, when even the weekday is too much, the level alone with its own uncertainty: a Gamma
posterior of the rate (Jeffreys prior), whose predictive count is negative binomial. A
trend and harmonics fitted to six incidents would extrapolate to "expected: nearly zero"
and call the next one an anomaly; a group never seen before expects half an incident over
its baseline, not zero.

Times are local days since 1970-01-01 (`events.Incidents.t`); weeks start on Monday."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
from scipy import stats

from safecity.core.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
EPOCH_DATE = date(1970, 1, 1)
YEAR_DAYS = 365.2425
#: Incidents in a group's baseline per model term it is given.
EVENTS_PER_TERM = 10.0


def monday_on_or_before(day: float) -> float:
    """Day number of the Monday starting the week holding `day` (1970-01-01 is a Thursday)."""
    d = math.floor(day)
    return float(d - (d + 3) % 7)


def day_to_date(day: float) -> date:
    return EPOCH_DATE + timedelta(days=math.floor(day))


def counts_by_period(
    t: FloatArray, codes: IntArray, n_groups: int, *, first: float, periods: int, length: float
) -> IntArray:
    """Incidents per group (row) and period (column); periods of `length` days from `first`."""
    idx = np.floor((t - first) / length).astype(np.int64)
    ok = (idx >= 0) & (idx < periods) & (codes >= 0)
    flat = codes[ok] * periods + idx[ok]
    return np.bincount(flat, minlength=n_groups * periods).reshape(n_groups, periods)


def design(starts: FloatArray, *, length: float, seasonal: bool, trend_origin: float) -> FloatArray:
    """Model matrix for periods starting at `starts` (day numbers)."""
    cols = [np.ones_like(starts)]
    if seasonal:
        cols.append((starts - trend_origin) / YEAR_DAYS)
        mid = starts + length / 2.0
        for k in (1, 2):
            ang = 2.0 * math.pi * k * mid / YEAR_DAYS
            cols.extend([np.sin(ang), np.cos(ang)])
    if length == 1.0:
        wd = (np.floor(starts).astype(np.int64) + 3) % 7  # Monday = 0
        for d in range(1, 7):
            cols.append((wd == d).astype(np.float64))
    return np.column_stack(cols)


def fit_poisson(
    y: FloatArray, x: FloatArray, *, ridge: float = 1e-6, iters: int = 50
) -> FloatArray:
    """Poisson regression with log link by iteratively reweighted least squares."""
    p = x.shape[1]
    beta: FloatArray = np.zeros(p)
    beta[0] = math.log(max(float(y.mean()), 1e-3))
    for _ in range(iters):
        eta = np.clip(x @ beta, -30.0, 30.0)
        mu = np.exp(eta)
        z = eta + (y - mu) / mu
        xtw = x.T * mu
        new = np.asarray(np.linalg.solve(xtw @ x + ridge * np.eye(p), xtw @ z), np.float64)
        if np.max(np.abs(new - beta)) < 1e-8:
            beta = new
            break
        beta = new
    return beta


def nb_size(y: FloatArray, mu: FloatArray, n_params: int) -> float:
    """Negative binomial size k from the moments (0.0: no overdispersion, use Poisson)."""
    dof = max(y.size - n_params, 1)
    alpha = float(((y - mu) ** 2 - y).sum() / (mu**2).sum()) * y.size / dof
    if not math.isfinite(alpha) or alpha <= 1e-3:
        return 0.0
    return 1.0 / alpha


def tail(count: FloatArray, mu: FloatArray, k: float) -> FloatArray:
    """P(Y >= count) under Poisson(mu) (k == 0) or NB(mean mu, size k)."""
    if k <= 0:
        return np.asarray(stats.poisson.sf(count - 1, mu), dtype=np.float64)
    return np.asarray(stats.nbinom.sf(count - 1, k, k / (k + mu)), dtype=np.float64)


def band(mu: FloatArray, k: float, level: float) -> tuple[FloatArray, FloatArray]:
    lo_q, hi_q = (1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0
    if k <= 0:
        return (
            np.asarray(stats.poisson.ppf(lo_q, mu), np.float64),
            np.asarray(stats.poisson.ppf(hi_q, mu), np.float64),
        )
    p = k / (k + mu)
    return (
        np.asarray(stats.nbinom.ppf(lo_q, k, p), np.float64),
        np.asarray(stats.nbinom.ppf(hi_q, k, p), np.float64),
    )


def bh_qvalues(p: FloatArray) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values."""
    n = p.size
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


@dataclass
class GroupFit:
    label: str
    key: int | str | None
    starts: FloatArray  # period start days shown (baseline tail + monitored)
    counts: FloatArray
    expected: FloatArray
    low: FloatArray
    high: FloatArray
    p_value: FloatArray
    monitored: npt.NDArray[np.bool_]
    k: float
    model: str


@dataclass
class Alert:
    label: str
    key: int | str | None
    start: float
    count: int
    expected: float
    high: float
    p_value: float
    q_value: float


def monitor(
    t: FloatArray,
    codes: IntArray,
    groups: Sequence[tuple[str, int | str | None]],
    *,
    period: str,
    monitor_start: float,
    end: float,
    baseline_days: float = 3 * 365.0,
    show_periods: int | None = None,
    level: float = 0.99,
    fdr: float = 0.05,
    min_baseline_days: float = 56.0,
) -> tuple[list[GroupFit], list[Alert]]:
    """Fit each group on the baseline before `monitor_start` and test the periods from
    `monitor_start` to `end`. `codes[i]` is the group of incident i (-1: none)."""
    if period not in ("day", "week"):
        raise InvalidInput("period must be 'day' or 'week'")
    length = 1.0 if period == "day" else 7.0
    m0 = math.floor(monitor_start) if period == "day" else monday_on_or_before(monitor_start)
    n_mon = max(1, math.ceil((end - m0) / length))
    n_base = int(baseline_days // length)
    first = m0 - n_base * length
    data_first = float(t.min()) if t.size else m0
    if data_first > first:  # less history than asked: start where the data starts
        n_base = int((m0 - data_first) // length)
        first = m0 - n_base * length
    if n_base * length < min_baseline_days:
        raise InvalidInput(
            f"too little history before {day_to_date(m0)} to learn what is normal: "
            f"{n_base * length:.0f} days, at least {min_baseline_days:.0f} needed"
        )
    total = n_base + n_mon
    counts = counts_by_period(
        t, codes, len(groups), first=first, periods=total, length=length
    ).astype(np.float64)
    starts = np.asarray(first + length * np.arange(total), dtype=np.float64)
    seasonal = n_base * length >= 365.0
    x = design(starts, length=length, seasonal=seasonal, trend_origin=m0)
    base = slice(0, n_base)
    show = total if show_periods is None else max(n_mon, min(total, show_periods))
    n_season = 5 if seasonal else 0  # trend and two harmonics (sin, cos)
    weekday = list(range(1 + n_season, x.shape[1]))
    fits: list[GroupFit] = []
    for g, (label, key) in enumerate(groups):
        y = counts[g]
        seen = float(y[base].sum())
        if seen >= EVENTS_PER_TERM * x.shape[1]:
            cols = list(range(x.shape[1]))
        elif weekday and seen >= EVENTS_PER_TERM * (1 + len(weekday)):
            cols = [0, *weekday]
        else:
            cols = []
        if cols:
            xs = x[:, cols]
            beta = fit_poisson(y[base], xs[base])
            mu = np.exp(np.clip(xs @ beta, -30.0, 30.0))
            k = nb_size(y[base], mu[base], len(cols))
            terms = "trend, annual seasonality" if 1 in cols and n_season else "level only"
            if weekday and cols[-1] == weekday[-1]:
                terms += ", weekday"
        else:
            terms = f"level only: {seen:.0f} incidents in the baseline"
            # Gamma(seen + 1/2, n_base) posterior of the rate; its predictive count is
            # negative binomial with size seen + 1/2 and this mean.
            k = seen + 0.5
            mu = np.full(total, k / n_base)
        lo, hi = band(mu, k, level)
        pv = tail(y, mu, k)
        sl = slice(total - show, total)
        mon = np.zeros(total, dtype=bool)
        mon[n_base:] = True
        fits.append(
            GroupFit(
                label=label,
                key=key,
                starts=starts[sl],
                counts=y[sl],
                expected=mu[sl],
                low=lo[sl],
                high=hi[sl],
                p_value=pv[sl],
                monitored=mon[sl],
                k=k,
                model=("negative binomial" if k > 0 else "poisson") + f" ({terms})",
            )
        )
    # Alerts: rises in the monitored periods, FDR-controlled over everything tested.
    tested = [(gi, j) for gi, f in enumerate(fits) for j in np.flatnonzero(f.monitored)]
    pvals = np.array([fits[gi].p_value[j] for gi, j in tested], dtype=np.float64)
    qvals = bh_qvalues(pvals)
    alerts = []
    for (gi, j), q in zip(tested, qvals, strict=True):
        f = fits[gi]
        if q < fdr and f.counts[j] > f.expected[j]:
            alerts.append(
                Alert(
                    label=f.label,
                    key=f.key,
                    start=float(f.starts[j]),
                    count=int(f.counts[j]),
                    expected=float(f.expected[j]),
                    high=float(f.high[j]),
                    p_value=float(f.p_value[j]),
                    q_value=float(q),
                )
            )
    alerts.sort(key=lambda a: (a.q_value, -a.count))
    return fits, alerts


def profiles(t: FloatArray) -> tuple[list[float], list[float], list[float]]:
    """Shares of incidents by weekday (Mon..Sun), hour (0..23) and month (Jan..Dec)."""
    if t.size == 0:
        return [0.0] * 7, [0.0] * 24, [0.0] * 12
    day = np.floor(t).astype(np.int64)
    wd = np.bincount((day + 3) % 7, minlength=7)
    hour = np.bincount(np.clip(((t - day) * 24).astype(np.int64), 0, 23), minlength=24)
    months = np.asarray(day, dtype="datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12
    mo = np.bincount(months, minlength=12)
    n = float(t.size)
    return (
        [round(float(v) / n, 4) for v in wd],
        [round(float(v) / n, 4) for v in hour],
        [round(float(v) / n, 4) for v in mo],
    )
