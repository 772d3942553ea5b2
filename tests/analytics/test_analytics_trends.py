"""Anomaly detection on synthetic series with a planted rise, and its building blocks."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from safecity.analytics.trends import (
    bh_qvalues,
    day_to_date,
    monday_on_or_before,
    monitor,
    nb_size,
    profiles,
)
from safecity.core.errors import InvalidInput

D0 = 17532.0  # 2018-01-01, a Monday


def series(
    seed: int,
    *,
    days: int,
    base: float,
    rise: tuple[int, int, float] | None = None,
    nb_k: float | None = None,
) -> np.ndarray:
    """Incident times: daily counts with weekday and annual seasonality, a rise planted on
    days [a, b) times `factor`, Poisson or (nb_k) negative binomial."""
    rng = np.random.default_rng(seed)
    d = D0 + np.arange(days)
    wd = (d.astype(int) + 3) % 7
    mu = base * np.exp(0.3 * np.sin(2 * math.pi * d / 365.2425) + np.where(wd >= 5, 0.35, 0.0))
    if rise:
        a, b, factor = rise
        mu = mu * np.where((d >= D0 + a) & (d < D0 + b), factor, 1.0)
    y = rng.poisson(mu) if nb_k is None else rng.poisson(rng.gamma(nb_k, mu / nb_k))
    return np.repeat(d, y) + rng.random(int(y.sum()))


def test_daily_planted_rise_is_found_and_nothing_else() -> None:
    """Three years of history, 120 days watched; days 60-69 doubled."""
    days = 3 * 365 + 120
    mon = 3 * 365
    t = series(1, days=days, base=12.0, rise=(mon + 60, mon + 70, 2.0))
    codes = np.zeros(t.size, dtype=np.int64)
    fits, alerts = monitor(
        t, codes, [("all", None)], period="day", monitor_start=D0 + mon, end=D0 + days
    )
    assert "weekday" in fits[0].model and "annual seasonality" in fits[0].model
    planted = {day_to_date(D0 + mon + i) for i in range(60, 70)}
    flagged = {day_to_date(a.start) for a in alerts}
    assert len(flagged & planted) >= 7
    assert len(flagged - planted) <= 1
    for a in alerts:
        assert a.count > a.high and a.q_value < 0.05


def test_weekly_overdispersed_rise_and_a_quiet_control() -> None:
    """Negative binomial counts: a 60% rise over 3 weeks in district A is an alert;
    district B, same model with no rise, has none; the fitted weekly k is about right."""
    days = 4 * 365 + 12 * 7
    mon = 4 * 365 - (4 * 365) % 7
    a = series(2, days=days, base=10.0, rise=(mon + 35, mon + 56, 1.6), nb_k=20.0)
    b = series(3, days=days, base=10.0, nb_k=20.0)
    t = np.concatenate([a, b])
    codes = np.concatenate([np.zeros(a.size, np.int64), np.ones(b.size, np.int64)])
    order = np.argsort(t)
    fits, alerts = monitor(
        t[order],
        codes[order],
        [("district A", 1), ("district B", 2)],
        period="week",
        monitor_start=D0 + mon,
        end=D0 + mon + 12 * 7,
    )
    assert all(f.model.startswith("negative binomial") for f in fits)
    assert all(50 < f.k < 400 for f in fits)  # a week of 7 daily NB(k=20): k ~ 7 * 20 = 140
    assert {x.label for x in alerts} == {"district A"}
    weeks = {day_to_date(x.start) for x in alerts}
    planted = {day_to_date(D0 + mon + 35 + 7 * i) for i in range(3)}
    assert weeks <= planted and len(weeks) >= 2


def test_a_poisson_model_would_cry_wolf_on_overdispersed_counts() -> None:
    """Why the dispersion matters: on strongly overdispersed weekly counts (k=3) with no rise,
    the negative binomial band raises no alert."""
    days = 4 * 365 + 26 * 7
    mon = 4 * 365 - (4 * 365) % 7
    t = series(4, days=days, base=8.0, nb_k=3.0)
    fits, alerts = monitor(
        t,
        np.zeros(t.size, np.int64),
        [("all", None)],
        period="week",
        monitor_start=D0 + mon,
        end=D0 + mon + 26 * 7,
    )
    assert fits[0].k > 0
    assert alerts == []


def test_short_history_fits_a_level_only_and_too_short_is_refused() -> None:
    t = series(5, days=120, base=5.0)
    codes = np.zeros(t.size, np.int64)
    fits, _ = monitor(t, codes, [("all", None)], period="day", monitor_start=D0 + 100, end=D0 + 120)
    assert "level only" in fits[0].model
    with pytest.raises(InvalidInput, match="too little history"):
        monitor(t, codes, [("all", None)], period="day", monitor_start=D0 + 20, end=D0 + 40)


def test_helpers() -> None:
    assert day_to_date(D0) == date(2018, 1, 1)
    assert monday_on_or_before(D0 + 6.5) == D0
    assert monday_on_or_before(D0 + 7) == D0 + 7
    q = bh_qvalues(np.array([0.01, 0.04, 0.03, 0.5]))
    assert np.allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    rng = np.random.default_rng(0)
    mu = np.full(20000, 6.0)
    assert nb_size(rng.poisson(mu).astype(float), mu, 1) == 0.0
    k = nb_size(rng.poisson(rng.gamma(4.0, 6.0 / 4.0, 20000)).astype(float), mu, 1)
    assert 3.3 < k < 4.8
    wd, hours, months = profiles(np.array([D0 + 0.5, D0 + 1.25, D0 + 31.1]))
    assert wd[0] == pytest.approx(1 / 3, abs=1e-3) and hours[12] == pytest.approx(1 / 3, abs=1e-3)
    assert months[0] == pytest.approx(2 / 3, abs=1e-3) and months[1] == pytest.approx(
        1 / 3, abs=1e-3
    )
