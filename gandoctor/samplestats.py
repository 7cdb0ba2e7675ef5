"""Statistics of sample features: real vs fake. Numpy only; inputs are (n, d) float arrays.

Costs are for n samples of dimension d: every statistic here is O(n^2 d) through one or two
distance matrices, about 2 ms for n=256, d=64 on one CPU core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NEAREST_K = 5  # k of Naeem et al. (2020) and Kynkaanniemi et al. (2019)
DUPLICATE_FRACTION = 0.1


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64, copy=False)
    b = b.astype(np.float64, copy=False)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def kth_neighbour_radii(x: np.ndarray, k: int = NEAREST_K) -> np.ndarray:
    """Distance from each row to its k-th nearest other row."""
    d = pairwise_distances(x, x)
    np.fill_diagonal(d, np.inf)
    k = min(k, x.shape[0] - 1)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def coverage(real: np.ndarray, fake: np.ndarray, radii: np.ndarray | None = None, k: int = NEAREST_K) -> float:
    """Naeem et al. (2020): share of real samples with at least one fake inside their k-NN ball."""
    radii = kth_neighbour_radii(real, k) if radii is None else radii
    d = pairwise_distances(real, fake)
    return float((d.min(axis=1) < radii).mean())


def precision(real: np.ndarray, fake: np.ndarray, radii: np.ndarray | None = None, k: int = NEAREST_K) -> float:
    """Kynkaanniemi et al. (2019): share of fakes inside the union of the real k-NN balls."""
    radii = kth_neighbour_radii(real, k) if radii is None else radii
    d = pairwise_distances(fake, real)
    return float((d <= radii[None, :]).any(axis=1).mean())


def mean_pairwise_distance(x: np.ndarray) -> float:
    n = x.shape[0]
    if n < 2:
        return math.nan
    d = pairwise_distances(x, x)
    return float(d.sum() / (n * (n - 1)))


def duplicate_rate(real: np.ndarray, fake: np.ndarray) -> float:
    """Share of fakes whose nearest other fake is much closer than real samples ever are."""
    real_nn = kth_neighbour_radii(real, 1)
    scale = float(np.median(real_nn))
    d = pairwise_distances(fake, fake)
    np.fill_diagonal(d, np.inf)
    nn = d.min(axis=1)
    if scale <= 0:
        return float((nn <= 0).mean())
    return float((nn < DUPLICATE_FRACTION * scale).mean())


@dataclass(frozen=True)
class SampleStats:
    diversity_ratio: float
    coverage: float
    coverage_ratio: float
    precision: float
    dup_rate: float
    fake_shift: float
    turnover: float

    def as_signals(self) -> dict[str, float]:
        return {
            "feat.diversity_ratio": self.diversity_ratio,
            "feat.coverage": self.coverage,
            "feat.coverage_ratio": self.coverage_ratio,
            "feat.precision": self.precision,
            "feat.dup_rate": self.dup_rate,
            "feat.fake_shift": self.fake_shift,
            "feat.turnover": self.turnover,
        }


def compare(real_a: np.ndarray, real_b: np.ndarray, fake: np.ndarray, previous_fake: np.ndarray | None) -> SampleStats:
    """Fake vs real statistics, each calibrated against a second real set of the same size.

    ``previous_fake`` is the fake set of the previous measurement: ``turnover`` is one minus how
    well the previous fakes' neighbourhoods are still covered by the new fakes, relative to how
    well one real set covers another. 0 = the generated distribution stayed put; 1 = it moved
    entirely somewhere else (mode hopping).
    """
    n = min(real_a.shape[0], real_b.shape[0], fake.shape[0])
    real_a, real_b, fake = real_a[:n], real_b[:n], fake[:n]
    radii = kth_neighbour_radii(real_a)
    cov = coverage(real_a, fake, radii)
    cov_rr = coverage(real_a, real_b, radii)
    div_real = mean_pairwise_distance(real_a)
    div = mean_pairwise_distance(fake) / div_real if div_real > 0 else math.nan
    spread = math.sqrt(float(real_a.var(axis=0).sum()))
    shift = turnover = math.nan
    if previous_fake is not None and previous_fake.shape[0] >= n and spread > 0:
        previous_fake = previous_fake[:n]
        shift = float(np.linalg.norm(fake.mean(axis=0) - previous_fake.mean(axis=0))) / spread
        # Neighbourhood radii of the previous fakes, floored at the real data's own scale so a
        # collapsed (near-duplicate) fake set does not get vanishing radii.
        floor = float(np.median(radii))
        prev_radii = np.maximum(kth_neighbour_radii(previous_fake), 0.25 * floor)
        kept = coverage(previous_fake, fake, prev_radii)
        turnover = max(0.0, 1.0 - kept / cov_rr) if cov_rr > 0 else math.nan
    return SampleStats(
        diversity_ratio=div,
        coverage=cov,
        coverage_ratio=cov / cov_rr if cov_rr > 0 else math.nan,
        precision=precision(real_a, fake, radii),
        dup_rate=duplicate_rate(real_a, fake),
        fake_shift=shift,
        turnover=turnover,
    )
