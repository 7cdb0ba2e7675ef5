"""D's loss units from a saved scalar log: its D loss next to its own D(x) and D(G(z)).

The live doctor learns D's loss form exactly (``probes/lossform.py``). A log of another tool has
only means, but means bound the loss from below (Jensen: each form is convex in D's outputs):

- BCE, as the sum of the real and fake means, is at least ``-ln D(x) - ln(1 - D(G(z)))``;
- least squares towards 1/0, as that sum, at least ``(1 - D(x))^2 + D(G(z))^2``.

A loss far under the BCE bound, even halved, at most of the steps where D is unsure (where the
bound says something) is not BCE; if it stays above the least-squares bound there, it is least
squares towards 1/0 (unit 1/4 if it is under the summed bound too, else 1/2).

A log of losses only (a console log) still says something: D's loss bounds what D makes of the
fakes, and so G's loss. Under BCE, hinge or least squares towards +/-1, a D loss of 0.12 means
D(G(z)) is low enough that G's loss is at least 0.76 (hinge, the weakest); least squares towards
1/0 only asks 0.13. G's loss under the weakest of the other bounds at half the steps where they
say something (and over the 1/0 one) is least squares towards 1/0, taken as halved (unit 1/4,
PyTorch-GAN's lsgan.py; the sum cannot be told apart). A negative G loss (minimax, a critic)
says nothing. BCE as a mean is
not inferred (under the summed bound only: least squares towards +/-1 and hinge look the same
early on, on the corpus). Anything else, and logs without D's probabilities, say nothing:
thresholds stay as calibrated.

A log's first record says what D's loss is at chance, where it was written before D learned: a
D whose outputs are still near 0 has a hinge loss of 2 (1 + 1, as the sum of the real and fake
means) where BCE has 2 ln 2 = 1.39, and a hinge G's loss (minus D's mean on the fakes) near 0
where BCE's is near 0.69. A first D loss of 2.0 +/- 0.1 with G's within 0.25 of 0 is a hinge loss
(on the corpus, 23 of 49 hinge runs, and none of the 251 others: their first D losses lie at
0.03-1.79, or 6.5-9.9 for WGAN-GP's penalty, or below 0); without G's loss (31 of 49), at
the first steps only (a BCE D, G-dominated later, may sit at 2.0 too), a D loss at chance 2
(hinge, or least squares towards +/-1 summed): either way not BCE's chance.
"""

from __future__ import annotations

import numpy as np

from .signals import SignalLog

_INFORMATIVE = 0.5  # BCE bound (summed) of at least this: D unsure enough for the bounds to differ
_MIN_STEPS = 10
_SHARE = 0.8  # of the informative steps
_SLACK = 0.9  # under a bound by 10% at least: not rounding
_STRAY, _IN_RANGE = 0.2, 0.9  # 90% of the means within [-0.2, 1.2]
_MIDPOINT = (0.2, 0.8)  # median of (D(x) + D(G(z))) / 2
# Losses only: the other forms' bound on G's loss at least 0.5; G's loss under 0.8 of it at half
# of those steps (on the corpus, 1/0 runs 0.8-1.0 of the steps, every other form 0.02 at most;
# PyTorch-GAN's cgan.py, whose G loss is not halved and whose D has dropout, 0.6).
_G_INFORMATIVE, _G_SLACK, _G_SHARE = 0.5, 0.8, 0.5


def _aligned(log: SignalLog, *names: str) -> tuple[np.ndarray, ...] | None:
    """The values of ``names`` at the steps all of them recorded (None: a signal missing, or
    fewer than _MIN_STEPS such steps)."""
    series = [s for s in (log.get(name) for name in names) if s is not None]
    if len(series) < len(names):
        return None
    steps = series[0].steps
    for s in series[1:]:
        steps = np.intersect1d(steps, s.steps)
    if steps.size < _MIN_STEPS:
        return None
    return tuple(np.asarray(s.values)[np.searchsorted(s.steps, steps)] for s in series)


#: The first record of a hinge loss: D's at 2 (chance), G's near 0; without G's, only this early.
_HINGE_START_D, _HINGE_START_G, _HINGE_FIRST_STEP = (1.9, 2.1), 0.25, 10


def starts_at_hinge_chance(log: SignalLog) -> bool:
    """Whether the log's first D loss (and G's, where logged) is what a hinge loss reads at chance."""
    d = _first(log, "loss.d")
    if d is None or not _HINGE_START_D[0] <= d[1] <= _HINGE_START_D[1]:
        return False
    g = _first(log, "loss.g")
    if g is None or g[0] != d[0]:
        return d[0] <= _HINGE_FIRST_STEP
    return abs(g[1]) <= _HINGE_START_G


def g_loss_takes_both_signs(log: SignalLog) -> bool:
    """Whether G's loss is clearly negative at some records and clearly positive at others while
    D's is never negative: a G loss linear in D's scores (``-D(G(z))``) with a D loss bounded
    below, a hinge loss. Non-saturating BCE and least squares keep G's loss positive, minimax
    BCE negative; a Wasserstein critic's D loss goes negative (marked a critic first). On the
    corpus's scalar logs: 36 of 49 hinge runs, one of 17 WGAN-GP runs, none of the 234 others."""
    g, d = log.get("loss.g"), log.get("loss.d")
    if g is None or d is None:
        return False
    gv, dv = g.values[np.isfinite(g.values)], d.values[np.isfinite(d.values)]
    return bool(dv.size and dv.min() >= -1e-6 and (gv < -_SIGN_MARGIN).any() and (gv > _SIGN_MARGIN).any())


#: How far from 0 a G loss must be to count as of a sign (a loss printed to 3 places reads 0.000).
_SIGN_MARGIN = 1e-3


def _first(log: SignalLog, name: str) -> tuple[int, float] | None:
    """The first recorded (step, value) of ``name``, None where it was never recorded or not finite."""
    view = log.get(name)
    if view is None or not len(view.steps):
        return None
    value = float(view.values[0])
    return (int(view.steps[0]), value) if np.isfinite(value) else None


def infer_d_loss_unit(log: SignalLog) -> float | None:
    """The ``d_loss_unit`` the bounds establish, or None (BCE summed, or nothing established)."""
    unit = _from_d_outputs(log)
    return unit if unit is not None else _from_losses(log)


def _from_losses(log: SignalLog) -> float | None:
    aligned = _aligned(log, "loss.d", "loss.g")
    if aligned is None:
        return None
    d, g = aligned
    ok = np.isfinite(d) & np.isfinite(g) & (d >= 0)
    if (g[ok] < -1e-6).any():
        return None
    x = np.maximum(d[ok], 1e-9)
    g = g[ok]
    # Each form's lowest G loss given D's loss (D's loss as the mean of its two terms, G's as
    # halved where a form has that choice: the weakest bounds).
    bce = -np.log1p(-np.exp(-2 * x))
    hinge = 1 - 2 * x
    ls_pm1 = 0.5 * (2 - np.sqrt(2 * x)) ** 2
    ls01 = 0.5 * np.clip(1 - np.sqrt(2 * x), 0, None) ** 2
    others = np.minimum(np.minimum(bce, hinge), ls_pm1)
    informative = others >= _G_INFORMATIVE
    if int(informative.sum()) < _MIN_STEPS:
        return None
    below = float((g[informative] < _G_SLACK * others[informative]).mean())
    above = float((g[informative] >= _SLACK * ls01[informative]).mean())
    return 0.25 if below >= _G_SHARE and above >= _SHARE else None


def _from_d_outputs(log: SignalLog) -> float | None:
    aligned = _aligned(log, "loss.d", "d_prob.real", "d_prob.fake")
    if aligned is None:
        return None
    loss, p, q = aligned
    ok = np.isfinite(loss) & np.isfinite(p) & np.isfinite(q) & (loss >= 0)
    # Probabilities, or a least-squares D's estimates of them (batch means stray outside [0, 1] at
    # times); scores (hinge, +/-1 targets: fakes near -1) say nothing.
    in_range = ok & (p >= -_STRAY) & (p <= 1 + _STRAY) & (q >= -_STRAY) & (q <= 1 + _STRAY)
    if not ok.any() or in_range.sum() < _IN_RANGE * ok.sum():
        return None
    # A D trained towards 1/0 splits its outputs around 0.5; one towards +/-1 (or hinge) around 0,
    # and near equilibrium its means sit near 0 with a loss near 1, which reads like 1/0 targets.
    midpoint = float(np.median((p[in_range] + q[in_range]) / 2))
    if not _MIDPOINT[0] <= midpoint <= _MIDPOINT[1]:
        return None
    # Clipped into [0, 1], the least-squares bounds only get lower (still bounds).
    p, q = np.clip(p, 1e-6, 1 - 1e-6), np.clip(q, 1e-6, 1 - 1e-6)
    bce = -np.log(p) - np.log1p(-q)
    ls01 = (1 - p) ** 2 + q**2
    informative = ok & (bce >= _INFORMATIVE)
    if int(informative.sum()) < _MIN_STEPS:
        return None
    loss, bce, ls01 = loss[informative], bce[informative], ls01[informative]

    def share(held: np.ndarray) -> float:
        return float(held.mean())

    if share(loss < _SLACK * 0.5 * bce) >= _SHARE:  # not BCE, summed or halved
        if share(loss >= _SLACK * 0.5 * ls01) < _SHARE:
            return None  # under least squares' bound too: another form (hinge, a score)
        return 0.25 if share(loss < _SLACK * ls01) >= _SHARE else 0.5
    # Under BCE's summed bound only would be BCE as a mean (unit 1/2) -- or least squares towards
    # +/-1 or hinge early on, whose means can look like probabilities: not inferred.
    return None
