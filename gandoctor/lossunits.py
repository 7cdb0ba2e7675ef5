"""D's loss units from a saved scalar log: its D loss next to its own D(x) and D(G(z)).

The live doctor learns D's loss form exactly (``probes/lossform.py``). A log of another tool has
only means, but means bound the loss from below (Jensen: each form is convex in D's outputs):

- BCE, as the sum of the real and fake means, is at least ``-ln D(x) - ln(1 - D(G(z)))``;
- least squares towards 1/0, as that sum, at least ``(1 - D(x))^2 + D(G(z))^2``.

A loss far under the BCE bound, even halved, at most of the steps where D is unsure (where the
bound says something) is not BCE; if it stays above the least-squares bound there, it is least
squares towards 1/0 (unit 1/4 if it is under the summed bound too, else 1/2). BCE as a mean is
not inferred (under the summed bound only: least squares towards +/-1 and hinge look the same
early on, on the corpus). Anything else, and logs without D's probabilities, say nothing:
thresholds stay as calibrated.
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


def _aligned(log: SignalLog) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    loss, real, fake = (log.get(name) for name in ("loss.d", "d_prob.real", "d_prob.fake"))
    if loss is None or real is None or fake is None:
        return None
    steps = np.intersect1d(np.intersect1d(loss.steps, real.steps), fake.steps)
    if steps.size < _MIN_STEPS:
        return None

    def at(series: object) -> np.ndarray:
        return np.asarray(series.values)[np.searchsorted(series.steps, steps)]  # type: ignore[attr-defined]

    return at(loss), at(real), at(fake)


def infer_d_loss_unit(log: SignalLog) -> float | None:
    """The ``d_loss_unit`` the bounds establish, or None (BCE summed, or nothing established)."""
    aligned = _aligned(log)
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
