"""Hotspot maps: Getis-Ord Gi* by hand and against esda, KDE, emerging hotspots."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from safecity.analytics.grid import Grid
from safecity.analytics.hotspots import emerging, gi_star, kde_surface
from safecity.core.errors import InvalidInput


def grid(nx: int, ny: int, cell_m: float = 100.0) -> Grid:
    return Grid(epsg=32643, x0=400_000.0, y0=3_760_000.0, cell_m=cell_m, nx=nx, ny=ny)


def test_gi_star_by_hand() -> None:
    """4 x 4 cells, 16 incidents in cell 5 (row 1, column 1), none elsewhere: mean 1,
    S = sqrt(256/16 - 1) = sqrt(15). Cell 5: W = 9, sum = 16, z = 7 / sqrt(63). Corner 0:
    W = 4, sum = 16, z = 12 / sqrt(48). Corner 15: W = 4, sum = 0, z = -4 / sqrt(48)."""
    g = grid(4, 4)
    x = np.zeros(16)
    x[5] = 16.0
    res = gi_star(g, x, np.ones(16, dtype=bool))
    assert res.z[5] == pytest.approx(7 / math.sqrt(63))
    assert res.z[0] == pytest.approx(12 / math.sqrt(48))
    assert res.z[15] == pytest.approx(-4 / math.sqrt(48))
    assert res.p[0] == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(res.z[0] / math.sqrt(2)))))
    assert res.bins[0] == 1  # p = 0.083: 90% confidence only


def test_gi_star_finds_a_planted_cluster_and_respects_the_area() -> None:
    rng = np.random.default_rng(0)
    g = grid(30, 30)
    x = rng.poisson(1.0, g.n).astype(float)
    block = [r * 30 + c for r in range(10, 13) for c in range(10, 13)]
    x[block] += 6
    area = np.ones(g.n, dtype=bool)
    area[:30] = False  # the bottom row lies outside the study area
    res = gi_star(g, x, area, fdr=True)
    assert res.bins[11 * 30 + 11] == 3
    assert (res.bins[block] >= 2).all()
    assert (res.bins[~area] == 0).all() and (res.z[~area] == 0).all()
    hot_far = [c for c in np.flatnonzero(res.bins > 0) if min(abs(c - b) for b in block) > 62]
    assert len(hot_far) <= 2  # FDR keeps false hot spots rare
    perm = gi_star(g, x, area, permutations=199, seed=1)
    assert perm.p_perm is not None
    assert perm.p_perm[11 * 30 + 11] <= 0.01
    with pytest.raises(InvalidInput):
        gi_star(g, x, area, radius=0)


def test_gi_star_equals_esda() -> None:
    """Same z-scores as esda's G_Local(star=True) with binary queen weights plus self."""
    esda = pytest.importorskip(
        "esda", reason="esda (the reference implementation) is not installed"
    )
    libpysal = pytest.importorskip("libpysal")
    rng = np.random.default_rng(3)
    g = grid(12, 9)
    x = rng.poisson(2.0, g.n).astype(float)
    x[40] += 15
    area = np.ones(g.n, dtype=bool)
    area[[0, 1, 2, 50, 51]] = False
    ours = gi_star(g, x, area).z
    cells = np.flatnonzero(area)
    pos = {int(c): i for i, c in enumerate(cells)}
    neighbours = {}
    for c in cells.tolist():
        r, k = divmod(c, g.nx)
        neighbours[pos[c]] = [
            pos[(r + dr) * g.nx + k + dk]
            for dr in (-1, 0, 1)
            for dk in (-1, 0, 1)
            if (dr or dk)
            and 0 <= r + dr < g.ny
            and 0 <= k + dk < g.nx
            and (r + dr) * g.nx + k + dk in pos
        ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = libpysal.weights.W(neighbours)
        ref = esda.G_Local(x[cells], w, star=True, transform="B", permutations=0)
    assert np.allclose(ours[cells], ref.Zs, atol=1e-9)


def test_kde_keeps_the_mass() -> None:
    g = grid(41, 41, cell_m=50.0)
    counts = np.zeros(g.n)
    counts[20 * 41 + 20] = 10
    dens = kde_surface(g, counts, 100.0)
    cell_km2 = 0.05 * 0.05
    assert dens.sum() * cell_km2 == pytest.approx(10.0, rel=1e-3)
    assert dens.argmax() == 20 * 41 + 20


def test_emerging_categories() -> None:
    t = 10
    z = {
        "persistent": [3.0] * t,
        "intensifying": list(np.linspace(2.5, 6.0, t)),
        "diminishing": list(np.linspace(6.0, 2.5, t)),
        "new": [0.0] * (t - 1) + [3.0],
        "consecutive": [0.0] * (t - 3) + [3.0] * 3,
        "sporadic": [0.0, 0.0, 3.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 3.0],
        "oscillating": [0.0, -3.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0],
        "historical": [3.0] * (t - 1) + [0.5],
        "none": [0.0] * t,
    }
    names = list(z)
    cat, trend = emerging(np.array([z[n] for n in names]), np.ones(len(names), dtype=bool))
    assert list(cat) == names
    assert trend[names.index("intensifying")] > 2 and trend[names.index("diminishing")] < -2
    with pytest.raises(InvalidInput):
        emerging(np.zeros((3, 1)), np.ones(3, dtype=bool))
