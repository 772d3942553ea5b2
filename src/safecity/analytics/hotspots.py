"""Hotspot maps on a grid: counts, kernel density, Getis-Ord Gi*, emerging hotspots.

Getis-Ord Gi* (Getis & Ord 1992; Ord & Getis 1995) is computed here rather than with
`esda` (which pulls in pandas, geopandas and scikit-learn): for cell i with binary weights
w_ij = 1 for the cells j within `radius` cells (Chebyshev distance: the 3x3 block for
radius 1, the cell itself included, "star"),

    Gi* = (sum_j w_ij x_j - xbar W_i) / (S sqrt((n W_i - W_i^2) / (n - 1)))

over the n cells of the study area (cells outside it neither count nor are counted),
W_i = sum_j w_ij, xbar and S the mean and (population) standard deviation of x over the
area. Gi* is a z-score: significance from the normal distribution (two-sided), as esda's
`G_Local(star=True).Zs` (the tests compare the two when esda is installed). A conditional
permutation test (each cell's neighbours drawn at random from the other cells, as esda
does) is available for skewed counts. Bins follow the usual hot/cold spot convention:
+-3 (99%), +-2 (95%), +-1 (90%) confidence, optionally after a Benjamini-Hochberg false
discovery rate correction over the area's cells.

Emerging hotspots (after ESRI's Emerging Hot Spot Analysis): Gi* per time slice (spatial
neighbours only), a Mann-Kendall trend test on each cell's Gi* series, and the categories
new, consecutive, intensifying, persistent, diminishing, sporadic, oscillating, historical
(and none)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage, stats

from safecity.analytics.grid import BoolArray, FloatArray, Grid
from safecity.core.errors import InvalidInput


def kde_surface(grid: Grid, counts: FloatArray, bandwidth_m: float) -> FloatArray:
    """Kernel density (Gaussian, `bandwidth_m` standard deviation) in incidents per km²."""
    img = counts.reshape(grid.shape).astype(np.float64)
    if bandwidth_m > 0:
        img = ndimage.gaussian_filter(img, bandwidth_m / grid.cell_m, mode="constant")
    return np.asarray(img, dtype=np.float64).ravel() / (grid.cell_m**2 / 1e6)


def _window_sum(img: FloatArray, radius: int) -> FloatArray:
    size = 2 * radius + 1
    out = ndimage.uniform_filter(img, size=size, mode="constant") * size * size
    return np.asarray(np.round(out, 9), dtype=np.float64)


@dataclass
class GiStar:
    z: FloatArray  # per grid cell; 0 outside the area
    p: FloatArray  # two-sided p-values (1 outside the area)
    bins: npt.NDArray[np.int64]  # -3..3
    p_perm: FloatArray | None = None


def gi_star(
    grid: Grid,
    values: FloatArray,
    area: BoolArray,
    *,
    radius: int = 1,
    permutations: int = 0,
    fdr: bool = False,
    seed: int = 0,
) -> GiStar:
    """Getis-Ord Gi* z-scores of `values` (per grid cell) over the cells of `area`."""
    if radius < 1:
        raise InvalidInput("the Gi* neighbourhood radius must be at least one cell")
    n = int(np.count_nonzero(area))
    if n < 3:
        raise InvalidInput("Gi* needs at least 3 cells in the area")
    x = np.where(area, values, 0.0).astype(np.float64)
    a = area.astype(np.float64)
    shape = grid.shape
    lag = _window_sum(x.reshape(shape), radius).ravel()
    w = _window_sum(a.reshape(shape), radius).ravel()
    xa = x[area]
    xbar = float(xa.mean())
    s = float(math.sqrt(max((xa**2).mean() - xbar**2, 0.0)))
    z = np.zeros(grid.n)
    if s > 0:
        denom = s * np.sqrt(np.maximum(n * w - w**2, 0.0) / (n - 1))
        ok = area & (denom > 0)
        z[ok] = (lag[ok] - xbar * w[ok]) / denom[ok]
    p = np.ones(grid.n)
    p[area] = 2.0 * stats.norm.sf(np.abs(z[area]))
    p_perm = None
    if permutations > 0 and s > 0:
        p_perm = np.ones(grid.n)
        p_perm[area] = _permutation_p(xa, lag[area], w[area], permutations, seed)
    test_p = p_perm if p_perm is not None else p
    if fdr:
        from safecity.analytics.trends import bh_qvalues

        adj = np.ones(grid.n)
        adj[area] = bh_qvalues(test_p[area])
        test_p = adj
    bins = np.zeros(grid.n, dtype=np.int64)
    sign = np.sign(z).astype(np.int64)
    for level, cut in ((1, 0.10), (2, 0.05), (3, 0.01)):
        bins = np.where(area & (test_p < cut), sign * level, bins)
    return GiStar(z=z, p=p, bins=bins, p_perm=p_perm)


def _permutation_p(
    xa: FloatArray, lag: FloatArray, w: FloatArray, permutations: int, seed: int
) -> FloatArray:
    """Conditional randomisation (pseudo p-values, folded): cell i keeps its own value and
    its W_i - 1 neighbours are drawn at random, without replacement, from the other cells."""
    rng = np.random.default_rng(seed)
    n = xa.size
    k = (w - 1).astype(np.int64)
    kmax = int(k.max()) if k.size else 0
    larger = np.zeros(n)
    obs = lag
    chunk = max(1, 2_000_000 // max(kmax * permutations, 1))
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        m = hi - lo
        draws = rng.integers(0, n - 1, size=(m, permutations, kmax))
        idx = np.arange(lo, hi)[:, None, None]
        draws = draws + (draws >= idx)  # never the cell itself
        vals = xa[draws]
        mask = np.arange(kmax)[None, None, :] < k[lo:hi, None, None]
        sim = (vals * mask).sum(axis=2) + xa[lo:hi, None]
        mean = sim.mean(axis=1)
        above = obs[lo:hi] >= mean
        ext = np.where(above[:, None], sim >= obs[lo:hi, None], sim <= obs[lo:hi, None])
        larger[lo:hi] = ext.sum(axis=1)
    # Folded (one-sided in the observed direction) doubled: a two-sided pseudo p-value.
    return np.minimum(np.asarray(2.0 * (larger + 1.0) / (permutations + 1.0)), 1.0)


def mann_kendall_rows(series: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mann-Kendall S statistic as a z-score and two-sided p-value for each row (no tie
    correction; Gi* z-scores are continuous)."""
    _, t = series.shape
    s = np.zeros(series.shape[0])
    for i in range(t - 1):
        s += np.sign(series[:, i + 1 :] - series[:, i : i + 1]).sum(axis=1)
    var = t * (t - 1) * (2 * t + 5) / 18.0
    z = np.where(s > 0, (s - 1) / math.sqrt(var), np.where(s < 0, (s + 1) / math.sqrt(var), 0.0))
    p = 2.0 * stats.norm.sf(np.abs(z))
    return z, p


CATEGORIES = (
    "new",
    "consecutive",
    "intensifying",
    "persistent",
    "diminishing",
    "sporadic",
    "oscillating",
    "historical",
    "none",
)


def emerging(
    z_slices: FloatArray, area: BoolArray, *, alpha: float = 0.05
) -> tuple[npt.NDArray[np.str_], FloatArray]:
    """Emerging hotspot category per cell from Gi* z-scores (cells x slices), and the
    Mann-Kendall z of each cell's trend. ESRI's definitions, hot side:

    * new: hot in the final slice only;
    * consecutive: a run of hot slices at the end, never hot before it, < 90% of slices;
    * intensifying / persistent / diminishing: hot in >= 90% of slices (the final one
      included), with a significant rising / no / falling trend;
    * sporadic: hot in the final slice, on and off before, never cold;
    * oscillating: hot in the final slice, cold in some earlier slice;
    * historical: not hot in the final slice, hot in >= 90% of the slices."""
    n_cells, t = z_slices.shape
    if t < 2:
        raise InvalidInput("emerging hotspots need at least two time slices")
    crit = stats.norm.isf(alpha / 2.0)
    hot = z_slices >= crit
    cold = z_slices <= -crit
    mk_z, mk_p = mann_kendall_rows(z_slices)
    trend_up = (mk_p < alpha) & (mk_z > 0)
    trend_down = (mk_p < alpha) & (mk_z < 0)
    n_hot = hot.sum(axis=1)
    final = hot[:, -1]
    many = n_hot >= 0.9 * t
    # length of the run of hot slices at the end
    run = np.zeros(n_cells, dtype=np.int64)
    still = np.ones(n_cells, dtype=bool)
    for j in range(t - 1, -1, -1):
        still &= hot[:, j]
        run += still
    ever_cold = cold.any(axis=1)
    cat = np.full(n_cells, "none", dtype="<U12")
    cat[final & ~ever_cold & (n_hot > run)] = "sporadic"
    cat[final & ever_cold] = "oscillating"
    cat[final & (run == n_hot) & (run >= 2) & ~many] = "consecutive"
    cat[final & (n_hot == 1)] = "new"
    cat[final & many] = "persistent"
    cat[final & many & trend_up] = "intensifying"
    cat[final & many & trend_down] = "diminishing"
    cat[~final & many] = "historical"
    cat[~area] = "none"
    return cat, mk_z
