"""Where the samples stood as the run ended: the sample statistics over its last fifth.

A verdict of "healthy" says that no failure mode holds; it does not say that G has learned the
data. A G whose samples still lie far from every real one (a young G, or one that never found the
data) fails no rule, so the report says so beside the verdict instead of a bare HEALTHY.
"Far" is precision under 0.1 (a tenth of the fakes inside the reals' k-NN balls). On the 285
corpus runs with sample statistics 161 read under it over their last fifth, and the oracle's
quality (its share of good samples) over the same steps was at most 0.02 on 90% of them and 0.19
at most (two over 0.1, the bar under which the detection benchmark counts a G as not having
learned); on a fresh draw (seed 38) 65 of 114, all under 0.1. Precision over the bar does not
vouch for the samples on pixel-like features (a blur of 8x8 digits reads precise:
``feat.precision_null``), so only the low side is worded as a judgement.
A G a little nearer (precision under 0.2) that covers under a tenth of what a real set covers is
far too (pytorch-ignite's DCGAN at D's lr x10: precision 0.19, coverage 0.06, never one digit-like
sample by its classifier): on the corpus, 12 runs read so over their last fifth, with the
oracle's quality at most 0.24 (median 0.05). Coverage alone is not enough: a G on few modes with
precise samples is collapse (ten corpus runs above quality 0.3 have coverage under 0.1), and one
run at precision 0.28 and coverage 0.09 reached every mode (quality 0.48).
Precision no higher than a blur's (``precision_vouches`` false) is said beside the number, not
as a judgement: on the corpus none of the 43 runs so read had learned (the oracle's quality at
most 0.07, against 0.19 median for the 62 others at precision 0.2 or more), but on a fresh draw
(seed 43) 2 of 13 had (quality up to 0.33).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .signals import SeriesView, SignalLog

TAIL_FRACTION = 0.2  # the run's last fifth: its end state, not one noisy check
FAR_PRECISION = 0.1
NEAR_PRECISION, FAR_COVERAGE = 0.2, 0.1  # nearer, but covering under a tenth of a real set's


def _in_tail(view: SeriesView, fraction: float) -> np.ndarray:
    """Which records lie in the last ``fraction`` of the series' step range."""
    first, last = int(view.steps[0]), int(view.steps[-1])
    return view.steps >= last - fraction * (last - first)


def tail_median(view: SeriesView | None, fraction: float = TAIL_FRACTION) -> float | None:
    """Median of the finite values over the last ``fraction`` of the series' step range."""
    if view is None or len(view) == 0:
        return None
    values = view.values[_in_tail(view, fraction) & np.isfinite(view.values)]
    return float(np.median(values)) if values.size else None


@dataclass(frozen=True)
class SampleSummary:
    """Medians of the sample statistics over the last fifth of the steps they were measured at."""

    first_step: int
    last_step: int
    precision: float | None  # share of the fakes inside the reals' k-NN balls
    coverage_ratio: float | None  # share of the reals with a fake nearby, over a second real set's
    diversity_ratio: float | None  # the fakes' mean pairwise distance over the reals'
    precision_null: float | None = None  # the precision of a blurred copy of the data: what precision alone cannot tell from

    @property
    def precision_vouches(self) -> bool:
        """False where a blur of the data reads as precise as G's samples (8x8 digits, small pooled
        images): precision then cannot say that the samples look like the data. Udacity's collapsed
        DCGAN read precision 1.0 and StyleGAN2's blobs 0.98 beside a blur's 0.98 (thirty-seventh pass)."""
        if self.precision is None or self.precision_null is None or self.far_from_data:
            return True  # nothing said, or said already: far is far, whatever a blur reads
        return self.precision > self.precision_null

    @property
    def far_from_data(self) -> bool:
        """True when under a tenth of G's samples lie among the real ones, or under a fifth while
        they cover under a tenth of what a real set covers (see the module)."""
        if self.precision is None:
            return False
        covers_little = self.coverage_ratio is not None and self.coverage_ratio < FAR_COVERAGE
        return self.precision < FAR_PRECISION or (self.precision < NEAR_PRECISION and covers_little)


def summarise_samples(signals: SignalLog) -> SampleSummary | None:
    """The end state of the samples; None where the run recorded no sample statistics."""
    precision = signals.get("feat.precision")
    if precision is None or len(precision) == 0:
        return None
    return SampleSummary(
        first_step=int(precision.steps[_in_tail(precision, TAIL_FRACTION)][0]),
        last_step=int(precision.steps[-1]),
        precision=tail_median(precision),
        coverage_ratio=tail_median(signals.get("feat.coverage_ratio")),
        diversity_ratio=tail_median(signals.get("feat.diversity_ratio")),
        precision_null=tail_median(signals.get("feat.precision_null")),
    )
