"""Statistics of sample features: real vs fake. Numpy only; inputs are (n, d) float arrays.

Costs are for n samples of dimension d: every statistic here is O(n^2 d) through one or two
distance matrices (each about 1 ms for n=256, d=64 on one CPU core); :func:`compare` computes
each matrix once for all its statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NEAREST_K = 5
# Left out of the signals when not computed: the extended set, and the bins before they are fitted.
_EXTENDED = ("feat.density", "feat.recall", "feat.vendi_ratio", "feat.occupancy_ratio", "feat.bin_tv", "feat.bin_churn")
DUPLICATE_FRACTION = 0.1


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64, copy=False)
    b = b.astype(np.float64, copy=False)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def _kth_smallest(self_distances: np.ndarray, k: int) -> np.ndarray:
    """Row-wise k-th smallest of a square distance matrix whose diagonal is already inf."""
    k = min(k, self_distances.shape[0] - 1)
    return np.partition(self_distances, k - 1, axis=1)[:, k - 1]


def kth_neighbour_radii(x: np.ndarray, k: int = NEAREST_K) -> np.ndarray:
    """Distance from each row to its k-th nearest other row."""
    d = pairwise_distances(x, x)
    np.fill_diagonal(d, np.inf)
    return _kth_smallest(d, k)


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


#: Reals kept across checks for the blur statistics: the real data does not change during training,
#: and the two-sample test needs them (32 digits read 0.58 +- 0.06 apart from their blur, 128 read
#: 0.75 +- 0.03, Gaussian data 0.46-0.50).
BLUR_POOL = 256


def gaussian_blur(real: np.ndarray, radii: np.ndarray, pool: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """What a structureless stand-in for G reads: as many samples as ``pool`` holds of a Gaussian
    with the pooled reals' mean and covariance (a blur of the data). Returns its precision
    against the k-NN balls of ``real`` (``radii``, as for ``precision``) and how far apart it lies
    from the pooled reals (a 1-nearest-neighbour two-sample test, Schilling 1986: the share of
    points of the union whose nearest other point is from their own set; about 0.5 when the blur
    is as good as the data, towards 1 when it is nothing like it).

    Together they say whether a precision reading can vouch for sample quality on this data.
    Where the data has structure a blur of it misses (mixtures of tight modes) the blur lands
    between the balls: precision near 0, and precision can tell. Where the features are
    pixel-like (images, pooled or not) the balls are wide enough to hold the blur (0.72-1.0 on
    the corpus's digits) although the blur is plainly not the data (0.64-0.83 apart, measured):
    a G that has learnt only blobs reads as "precise", and precision cannot vouch. Where the data is
    itself Gaussian-like, the blur reads precise and lies about 0.5 apart: a blur is realistic
    there, and precision is right to pass it.
    Drawn as ``z @ centred reals / sqrt(N - 1)`` (covariance exactly the reals'; no
    factorisation), with its own seeded generator: the training's RNG is never touched.
    """
    n = pool.shape[0]
    if n < 4 or real.shape[0] < 2:
        return math.nan, math.nan
    centred = pool - pool.mean(axis=0, keepdims=True)
    z = np.random.default_rng(seed).standard_normal((n, n))
    blur = pool.mean(axis=0, keepdims=True) + (z @ centred) / math.sqrt(n - 1)
    precision = float((pairwise_distances(real, blur) <= radii[:, None]).any(axis=0).mean())
    d_pb = pairwise_distances(pool, blur)
    d_pp, d_bb = pairwise_distances(pool, pool), pairwise_distances(blur, blur)
    np.fill_diagonal(d_pp, np.inf)
    np.fill_diagonal(d_bb, np.inf)
    own = int((d_pp.min(axis=1) < d_pb.min(axis=1)).sum() + (d_bb.min(axis=1) < d_pb.min(axis=0)).sum())
    return precision, own / (2 * n)


def _blur_values(real_a: np.ndarray, real_b: np.ndarray, radii: np.ndarray, blur: np.ndarray | tuple[float, float] | None) -> tuple[float, float]:
    """``compare``'s blur statistics: given (a tuple, reused), or of the pool given, or of both real sets."""
    if isinstance(blur, tuple):
        return blur
    return gaussian_blur(real_a, radii, np.vstack([real_a, real_b]) if blur is None else blur)


def mean_pairwise_distance(x: np.ndarray) -> float:
    n = x.shape[0]
    if n < 2:
        return math.nan
    d = pairwise_distances(x, x)
    return float(d.sum() / (n * (n - 1)))


def duplicate_rate(real: np.ndarray, fake: np.ndarray, fake_distances: np.ndarray | None = None) -> float:
    """Share of fakes whose nearest other fake is much closer than real samples ever are (give
    a real set as large as the fake one: nearest-neighbour distances shrink with the count).
    ``fake_distances``: the fakes' pairwise distances with an infinite diagonal, if at hand."""
    real_nn = kth_neighbour_radii(real, 1)
    scale = float(np.median(real_nn))
    d = fake_distances
    if d is None:
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
    density: float = math.nan
    recall: float = math.nan
    vendi_ratio: float = math.nan
    occupancy_ratio: float = math.nan
    bin_tv: float = math.nan
    bin_churn: float = math.nan
    precision_null: float = math.nan
    blur_apart: float = math.nan

    def as_signals(self) -> dict[str, float]:
        signals = {
            "feat.diversity_ratio": self.diversity_ratio,
            "feat.coverage": self.coverage,
            "feat.coverage_ratio": self.coverage_ratio,
            "feat.precision": self.precision,
            "feat.dup_rate": self.dup_rate,
            "feat.fake_shift": self.fake_shift,
            "feat.turnover": self.turnover,
            "feat.density": self.density,
            "feat.recall": self.recall,
            "feat.vendi_ratio": self.vendi_ratio,
            "feat.occupancy_ratio": self.occupancy_ratio,
            "feat.bin_tv": self.bin_tv,
            "feat.bin_churn": self.bin_churn,
            "feat.precision_null": self.precision_null,
            "feat.blur_apart": self.blur_apart,
        }
        # Statistics not computed (NaN by construction) are left out rather than logged as NaN.
        return {k: v for k, v in signals.items() if not (k in _EXTENDED and math.isnan(v))}


def _movement(previous_fake: np.ndarray | None, fake: np.ndarray, real_a: np.ndarray, radii: np.ndarray, cov_rr: float) -> tuple[float, float]:
    """(fake_shift, turnover) of ``fake`` against the previous measurement's fakes (see compare)."""
    n = fake.shape[0]
    spread = math.sqrt(float(real_a.var(axis=0).sum()))
    if previous_fake is None or previous_fake.shape[0] < n or spread <= 0:
        return math.nan, math.nan
    previous_fake = previous_fake[:n]
    shift = float(np.linalg.norm(fake.mean(axis=0) - previous_fake.mean(axis=0))) / spread
    # Neighbourhood radii of the previous fakes, floored at the real data's own scale so a
    # collapsed (near-duplicate) fake set does not get vanishing radii.
    prev_radii = np.maximum(kth_neighbour_radii(previous_fake), 0.25 * float(np.median(radii)))
    kept = coverage(previous_fake, fake, prev_radii)
    return shift, max(0.0, 1.0 - kept / cov_rr) if cov_rr > 0 else math.nan


def compare(
    real_a: np.ndarray,
    real_b: np.ndarray,
    fake: np.ndarray,
    previous_fake: np.ndarray | None,
    extended: bool = False,
    bins: Bins | None = None,
    churn: bool = True,
    blur: np.ndarray | tuple[float, float] | None = None,
) -> SampleStats:
    """Fake vs real statistics, each calibrated against a second real set of the same size.

    The fakes may be fewer than the reals (one training step's batch against several steps'
    reals): neighbourhoods and diversity come from all of ``real_a``, the calibration from a
    slice of ``real_b`` as large as the fakes.

    ``previous_fake`` is the fake set of the previous measurement: ``turnover`` is one minus how
    well the previous fakes' neighbourhoods are still covered by the new fakes, relative to how
    well one real set covers another. 0 = the generated distribution stayed put; 1 = it moved
    entirely somewhere else (mode hopping).

    ``bins`` and ``previous_fake`` together add the calibrated bin churn (:func:`bin_churn`),
    unless ``churn`` is False (the previous fakes were featurised in another feature space).

    ``blur``: the reals to blur (:func:`gaussian_blur`; None: ``real_a`` and ``real_b``), or its two values.

    ``extended`` adds density, recall and the Vendi ratio (~19 ms instead of ~2.5 ms for 256 reals
    and 128 fakes, d=64 on one core; the Vendi ratio's eigenvalues are most of it). ``bins`` (fitted once by
    :func:`fit_bins`) adds the bin occupancy ratio and the calibrated bin TV (:func:`occupancy`).
    """
    n_real = min(real_a.shape[0], real_b.shape[0])
    real_a, real_b, fake = real_a[:n_real], real_b[:n_real], fake[:n_real]
    n = fake.shape[0]
    # The real neighbourhoods come from all of real_a: k-NN balls of few points spread over
    # several modes (128 points of a 25-mode grid: ~5 per mode, the 5th neighbour in the next
    # mode), which would make every fake "precise". A real set as large as the fakes
    # (``real_c``) calibrates what depends on the fakes' count.
    real_c = real_b[:n]
    # Each distance matrix once (the definitions below recompute them; same results).
    d_rr, d_ff, d_rf = pairwise_distances(real_a, real_a), pairwise_distances(fake, fake), pairwise_distances(real_a, fake)
    div_real = float(d_rr.sum() / (n_real * (n_real - 1))) if n_real > 1 else math.nan
    div = float(d_ff.sum() / (n * (n - 1))) / div_real if n > 1 and div_real > 0 else math.nan
    np.fill_diagonal(d_rr, np.inf)
    np.fill_diagonal(d_ff, np.inf)
    radii = _kth_smallest(d_rr, NEAREST_K)
    cov = float((d_rf.min(axis=1) < radii).mean())
    d_rc = pairwise_distances(real_a, real_c)
    cov_rr = float((d_rc.min(axis=1) < radii).mean())
    # The fakes inside a real k-NN ball: precision's test, and the bin churn's realistic rows.
    fake_inside: np.ndarray = np.asarray((d_rf <= radii[:, None]).any(axis=0))
    dup = duplicate_rate(real_c, fake, d_ff)
    shift, turnover = _movement(previous_fake, fake, real_a, radii, cov_rr)
    dens = rec = vendi = math.nan
    if extended:
        dens = float((d_rf < radii[:, None]).sum() / (NEAREST_K * n))
        fake_radii = _kth_smallest(d_ff, NEAREST_K)
        rec = float((d_rf <= fake_radii[None, :]).any(axis=1).mean())
        vendi = vendi_ratio(real_a, fake)
    occ = tv = let_go = math.nan
    if bins is not None:
        occ, tv = occupancy(bins, real_a, real_b, fake)
        if previous_fake is not None and churn:
            let_go = bin_churn(bins, previous_fake, fake, real_a, real_b, radii, inside=(fake_inside, np.asarray((d_rc <= radii[:, None]).any(axis=0))))
    precision_null, blur_apart = _blur_values(real_a, real_b, radii, blur)
    return SampleStats(
        precision_null=precision_null, blur_apart=blur_apart,
        diversity_ratio=div,
        coverage=cov,
        coverage_ratio=cov / cov_rr if cov_rr > 0 else math.nan,
        precision=float(fake_inside.mean()),
        dup_rate=dup,
        fake_shift=shift,
        turnover=turnover,
        density=dens,
        recall=rec,
        vendi_ratio=vendi,
        occupancy_ratio=occ,
        bin_tv=tv,
        bin_churn=let_go,
    )


def density(real: np.ndarray, fake: np.ndarray, radii: np.ndarray | None = None, k: int = NEAREST_K) -> float:
    """Naeem et al. (2020): (1 / kM) * sum over fakes of how many real k-NN balls contain it.

    About 1 when fakes follow the real distribution; above 1 when they crowd dense real regions.
    """
    radii = kth_neighbour_radii(real, k) if radii is None else radii
    d = pairwise_distances(fake, real)
    return float((d < radii[None, :]).sum() / (k * fake.shape[0]))


def recall(real: np.ndarray, fake: np.ndarray, k: int = NEAREST_K) -> float:
    """Kynkaanniemi et al. (2019): share of real samples inside the union of the fake k-NN balls."""
    return precision(fake, real, k=k)


def vendi_score(x: np.ndarray, bandwidth: float | None = None) -> float:
    """Friedman & Dieng (2023): exp of the Shannon entropy of the eigenvalues of K/n.

    K is an RBF similarity (K_ii = 1) with the median pairwise distance as bandwidth unless
    given; the score is an effective number of distinct samples, from 1 (all alike) to n.
    Cost: O(n^2 d + n^3) for the eigenvalues.
    """
    n = x.shape[0]
    if n == 0:
        return math.nan
    d = pairwise_distances(x, x)
    if bandwidth is None:
        upper = d[np.triu_indices(n, 1)]
        bandwidth = float(np.median(upper)) if upper.size else 1.0
    if bandwidth <= 0:
        return 1.0
    k = np.exp(-((d / bandwidth) ** 2) / 2.0)
    eig = np.linalg.eigvalsh(k / n)
    eig = eig[eig > 1e-12]
    return float(np.exp(-(eig * np.log(eig)).sum()))


def vendi_ratio(real: np.ndarray, fake: np.ndarray) -> float:
    """Vendi score of the fakes over that of the reals, both with the reals' bandwidth."""
    n = min(real.shape[0], fake.shape[0])
    real, fake = real[:n], fake[:n]
    d = pairwise_distances(real, real)
    bandwidth = float(np.median(d[np.triu_indices(n, 1)])) if n > 1 else 1.0
    base = vendi_score(real, bandwidth)
    return vendi_score(fake, bandwidth) / base if base > 0 else math.nan


def ndb_fraction(real: np.ndarray, fake: np.ndarray, bins: int = 20, alpha: float = 0.05, seed: int = 0) -> float:
    """Share of NDB bins whose fake share differs from the real share (about ``alpha`` for
    two samples of the same distribution, 1 when the fakes sit in few bins)."""
    different, total = ndb(real, fake, bins, alpha, seed, n_init=1)
    return different / total


def ndb(real: np.ndarray, fake: np.ndarray, bins: int = 20, alpha: float = 0.05, seed: int = 0, n_init: int = 3) -> tuple[int, int]:
    """Richardson & Weiss (2018): number of statistically different bins.

    k-means bins on the real samples; for each bin a two-proportion z-test of the real and fake
    shares at level ``alpha``. Returns (different bins, bins). Cost: k-means, O(n k d) per pass.
    """
    from statistics import NormalDist

    from sklearn.cluster import KMeans

    bins = max(2, min(bins, real.shape[0] // 2))
    km = KMeans(n_clusters=bins, n_init=n_init, random_state=seed).fit(real)
    real_counts = np.bincount(km.labels_, minlength=bins).astype(np.float64)
    fake_counts = np.bincount(km.predict(fake), minlength=bins).astype(np.float64)
    n_r, n_f = real.shape[0], fake.shape[0]
    p_r, p_f = real_counts / n_r, fake_counts / n_f
    pooled = (real_counts + fake_counts) / (n_r + n_f)
    se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / n_r + 1 / n_f), 1e-12))
    z = np.abs(p_r - p_f) / se
    different = int((z > NormalDist().inv_cdf(1 - alpha / 2)).sum())
    return different, bins


BINS = 16
BIN_RESERVOIR = 512


@dataclass(frozen=True)
class Bins:
    """k-means cells of the real features: the data's modes as far as the features can tell."""

    centroids: np.ndarray  # (k, d) float64

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Index of the nearest centroid for each row."""
        c = self.centroids
        sq = (c * c).sum(1)[None, :] - 2.0 * x.astype(np.float64, copy=False) @ c.T
        return np.argmin(sq, axis=1)

    def counts(self, x: np.ndarray) -> np.ndarray:
        """Rows of ``x`` in each cell."""
        return np.bincount(self.assign(x), minlength=self.centroids.shape[0])

    def histogram(self, x: np.ndarray) -> np.ndarray:
        """Share of the rows of ``x`` in each cell."""
        return self.counts(x).astype(np.float64) / max(1, x.shape[0])


def fit_bins(real: np.ndarray, k: int = BINS, seed: int = 0, iterations: int = 30) -> Bins:
    """k-means (k-means++ seeding, Lloyd iterations) on real features, deterministic for a seed.

    Numpy only, about 5 ms for 512 x 64 on one core; it runs once per run, so a few percent of
    k-means quality lost to a single initialisation does not matter next to a stable binning.
    """
    x = np.asarray(real, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"fit_bins needs an (n, d) array with n >= 2, got shape {x.shape}")
    k = max(1, min(k, x.shape[0]))
    rng = np.random.default_rng(seed)
    centroids = np.empty((k, x.shape[1]))
    centroids[0] = x[rng.integers(x.shape[0])]
    closest = ((x - centroids[0]) ** 2).sum(1)
    for i in range(1, k):
        total = closest.sum()
        j = int(rng.choice(x.shape[0], p=closest / total)) if total > 0 else int(rng.integers(x.shape[0]))
        centroids[i] = x[j]
        closest = np.minimum(closest, ((x - centroids[i]) ** 2).sum(1))
    labels = np.full(x.shape[0], -1)
    for _ in range(iterations):
        new = Bins(centroids).assign(x)
        if np.array_equal(new, labels):
            break
        labels = new
        for i in range(k):
            members = x[labels == i]
            if members.shape[0]:
                centroids[i] = members.mean(0)
    return Bins(centroids)


def _tv(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


def occupancy(bins: Bins, real_a: np.ndarray, real_b: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """Bin occupancy of the fakes against a second real set of the same size.

    Returns (occupancy ratio, calibrated TV): the share of cells holding at least one fake over
    the share holding at least one sample of ``real_b`` (1 = as spread as real data, 0.25 = a
    quarter of the modes); and the total-variation distance between the fakes' and ``real_a``'s
    cell histograms minus that between ``real_b``'s and ``real_a``'s (0 = as close as a second
    real sample; it can dip below 0 by sampling noise). Cost: O(n k d), well under 1 ms.
    """
    n = min(real_a.shape[0], real_b.shape[0], fake.shape[0])
    if n == 0:
        return math.nan, math.nan
    h_a, h_b, h_f = (bins.histogram(x[:n]) for x in (real_a, real_b, fake))
    occupied_real = int((h_b > 0).sum())
    ratio = int((h_f > 0).sum()) / occupied_real if occupied_real else math.nan
    return ratio, _tv(h_f, h_a) - _tv(h_b, h_a)


CHURN_HELD = 3  # realistic fakes a cell must have held to count as a mode G held (Poisson: P(0 | 3) = 5%)


def held_threshold(n: int, k: int) -> float:
    """Rows a cell must hold, of ``n`` spread over ``k`` cells, to count as a mode held: at least
    ``CHURN_HELD`` and a fifth of a fair share (shared by the fakes' and the fixed codes' churn)."""
    return max(CHURN_HELD, 0.2 * n / k)


def _let_go(before: np.ndarray, after: np.ndarray, n: int) -> tuple[int, int]:
    """(cells held before, of them empty after): held = :func:`held_threshold` rows; let go = not
    one row left. Sampling noise alone rarely empties a cell that held three or more, where
    "fewer than the threshold" would flip on noise."""
    held = before >= held_threshold(n, before.shape[0])
    return int(held.sum()), int((held & (after == 0)).sum())


def bin_churn(
    bins: Bins,
    previous_fake: np.ndarray,
    fake: np.ndarray,
    real_a: np.ndarray,
    real_b: np.ndarray,
    radii: np.ndarray | None = None,
    inside: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """How many of the modes G held at the previous measurement it has let go of, beyond chance.

    A cell is held by the fakes that fall inside the real data's k-NN balls (``precision``'s
    test: samples that look real) when at least three of them and a fifth of a fair share land
    in it, and let go of when the new realistic fakes have not one sample left there. The
    statistic is the share of the held cells let go of, minus the same share from one real set to
    another of the same size (the sampling floor). 0 = G keeps its modes (or gains more); 0.5 =
    half of them are gone, as when G hops from mode to mode. NaN when the previous fakes held no
    cell (nothing good to lose). ``radii``: real_a's k-NN radii, if at hand (compare has them);
    ``inside``: which rows of ``fake`` and of ``real_b`` lie in those balls, if at hand (likewise).
    """
    n = min(previous_fake.shape[0], fake.shape[0], real_a.shape[0], real_b.shape[0])
    if n <= NEAREST_K:
        return math.nan
    if radii is None:
        radii = kth_neighbour_radii(real_a)  # all of real_a: see compare()

    def realistic(x: np.ndarray, known: np.ndarray | None) -> np.ndarray:
        # Row by row, so a mask of more rows, cut to these, is the same test.
        mask = (pairwise_distances(x, real_a) <= radii[None, :]).any(axis=1) if known is None else known[: x.shape[0]]
        return x[mask]

    fake_inside, real_b_inside = inside if inside is not None else (None, None)
    held, lost = _let_go(bins.counts(realistic(previous_fake[:n], None)), bins.counts(realistic(fake[:n], fake_inside)), n)
    if not held:
        return math.nan
    real_held, real_lost = _let_go(bins.counts(real_a[:n]), bins.counts(realistic(real_b[:n], real_b_inside)), n)
    floor = real_lost / real_held if real_held else 0.0
    return lost / held - floor
