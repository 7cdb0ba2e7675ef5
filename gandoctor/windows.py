"""The closed vocabulary of windowed statistics rules may use (a registry). Pure numpy, no torch.

Every statistic is evaluated on a grid of steps: at grid step ``t`` it sees the points of one
series whose step lies in ``(t - window, t]``. A statistic that cannot be computed (no finite
values in the window, no reference yet) is NaN, and a condition on NaN never holds.
Reference statistics compare the current window's median with earlier windows:
``log10_vs_start`` with the first window of the series, ``log10_vs_peak`` / ``log10_vs_trough``
with the highest / lowest window median seen on the grid before ``t``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

import numpy as np

from . import rolling
from .rolling import SPREAD_MIN_POINTS, SWING_SAMPLES, BatchFn
from .signals import SeriesView

WindowFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, "float | None"], float]
Reference = Literal["start", "peak", "trough"]


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _median(steps: np.ndarray, values: np.ndarray, counts: np.ndarray, nonfinite: np.ndarray, level: float | None) -> float:
    v = _finite(values)
    return float(np.median(v)) if v.size else math.nan


def _mean(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    v = _finite(values)
    return float(v.mean()) if v.size else math.nan


def _std(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    v = _finite(values)
    return float(v.std()) if v.size >= 2 else math.nan


def _log10_std(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    """Spread in decades: a norm that doubles and halves from step to step reads about 0.3,
    whatever its scale (a critic's gradient norm and a sigmoid D's alike). At least
    ``SPREAD_MIN_POINTS`` values: the spread of a noisy norm over two or three points is noise."""
    v = _finite(values)
    v = v[v > 0]
    return float(np.log10(v).std()) if v.size >= SPREAD_MIN_POINTS else math.nan


def _min(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    v = _finite(values)
    return float(v.min()) if v.size else math.nan


def _max(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    v = _finite(values)
    return float(v.max()) if v.size else math.nan


def _last(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    v = _finite(values)
    return float(v[-1]) if v.size else math.nan


def _cv(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    v = _finite(values)
    if v.size < 2:
        return math.nan
    m = abs(float(v.mean()))
    return float(v.std()) / m if m > 1e-12 else math.nan


def _slope(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    mask = np.isfinite(values)
    if mask.sum() < 3:
        return math.nan
    x = steps[mask].astype(np.float64)
    y = values[mask]
    x = x - x.mean()
    denom = float((x * x).sum())
    if denom <= 0:
        return math.nan
    return float((x * (y - y.mean())).sum() / denom) * 1000.0


def _rel_slope(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    s = _slope(steps, values, counts, nonfinite, level)
    med = _median(steps, values, counts, nonfinite, level)
    if not math.isfinite(s) or not math.isfinite(med) or abs(med) < 1e-12:
        return math.nan
    return s / abs(med)


def _nonfinite_frac(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    total = int(counts.sum())
    return float(nonfinite.sum()) / total if total else math.nan


def _nonfinite_count(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    return float(nonfinite.sum()) if counts.size else math.nan


def _abs_max(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    v = _finite(values)
    return float(np.abs(v).max()) if v.size else math.nan


def _abs_median(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    v = _finite(values)
    return float(np.median(np.abs(v))) if v.size else math.nan


def _frac_above(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    v = _finite(values)
    return float((v > level).mean()) if v.size else math.nan


def _frac_below(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    v = _finite(values)
    return float((v < level).mean()) if v.size else math.nan


def _excess_variation(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    """Total variation minus net change of SWING_SAMPLES evenly spaced values, per gap: 0 for a
    monotone series however steep, large when the series swings away and back (oscillation).
    Each value is the median of the points within half a gap of its step, so a series logged at
    every iteration (batch-to-batch noise) and one logged every 20 steps read alike."""
    return _swing(steps, values, np.median)


def _mean_swing(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    """``excess_variation`` with each value the *mean* of the points within half a gap: for a
    0/1 indicator (``d.real_ahead``) the share of steps, where a median could only read 0 or 1."""
    return _swing(steps, values, np.mean)


def _swing(steps: np.ndarray, values: np.ndarray, aggregate: Callable[[np.ndarray], Any]) -> float:
    mask = np.isfinite(values)
    if mask.sum() < SWING_SAMPLES:
        return math.nan
    s, v = steps[mask].astype(np.float64), values[mask].astype(np.float64)
    half = (s[-1] - s[0]) / (2 * (SWING_SAMPLES - 1))
    targets = s[0] + np.arange(SWING_SAMPLES, dtype=np.float64) * (2 * half)
    lo = np.searchsorted(s, targets - half, side="left")
    hi = np.searchsorted(s, targets + half, side="right")
    near = np.clip(np.searchsorted(s, targets), 0, s.size - 1)
    left = np.clip(near - 1, 0, s.size - 1)
    near = np.where(np.abs(s[left] - targets) <= np.abs(s[near] - targets), left, near)
    # no point within half a gap (a gap in the log): the nearest point stands in
    p = np.array([aggregate(v[a:b]) if b > a else v[j] for a, b, j in zip(lo, hi, near)])
    return float((np.abs(np.diff(p)).sum() - abs(p[-1] - p[0])) / (SWING_SAMPLES - 1))


#: The cycle statistic reads at least this many points (fewer: NaN), at most the newest
#: CYCLE_MAX_POINTS, lags up to a third of them and CYCLE_MAX_LAG, and detrends with a centred
#: moving average over a third of them, CYCLE_TREND_POINTS at most.
CYCLE_MIN_POINTS = 48
CYCLE_MAX_POINTS = 4096
CYCLE_MAX_LAG = 200
CYCLE_TREND_POINTS = 101


def _cycle(steps, values, counts, nonfinite, level):  # type: ignore[no-untyped-def]
    """How strongly the window's values repeat a cycle: the series less its moving average (the
    drift a healthy run has), then its autocorrelation; past the first lag where that turns
    negative, the highest peak, taken only as far as the trough before it is as deep (an
    oscillation swings both ways; a train of isolated spikes, as an epoch's short last batch
    makes, has a peak but no trough), less the peak white noise of as many points would reach
    over as many lags (sqrt(2 ln lags / n)). About 0 or below for noise and drift; 0.2 and more
    for a loss that orbits. Points are read in order as if evenly spaced; NaN under
    CYCLE_MIN_POINTS points or where most points repeat the one before."""
    v = _finite(np.asarray(values, dtype=np.float64))[-CYCLE_MAX_POINTS:]
    n = v.size
    # A series that mostly repeats its last value (held between updates, or rounded past its
    # changes) is a staircase, whose regular steps would read as a cycle once detrended.
    if n < CYCLE_MIN_POINTS or np.count_nonzero(np.diff(v) == 0) > 0.5 * (n - 1):
        return math.nan
    width = max(5, min(CYCLE_TREND_POINTS, (n // 3) | 1))
    half = width // 2
    # Odd reflection at the ends keeps a straight line straight (edge padding bends it there);
    # written out, it is what np.pad(mode="reflect", reflect_type="odd") gives, at a seventh of its cost.
    padded = np.concatenate((2.0 * v[0] - v[half:0:-1], v, 2.0 * v[-1] - v[-2 : -half - 2 : -1]))
    # The centred moving average from a running sum (O(n), not O(n * width)); taken about the
    # first value so the sum's rounding stays at the scale of the swings, not of the level.
    sums = np.concatenate(([0.0], np.cumsum(padded - v[0])))
    x = v - (v[0] + (sums[width:] - sums[:-width]) / width)
    x -= x.mean()
    energy = float(np.dot(x, x))
    if not energy > 1e-12 * max(float(np.dot(v, v)), 1e-300):
        return 0.0  # nothing left once the drift is gone: no cycle
    lags = min(n // 3, CYCLE_MAX_LAG)
    # The autocorrelation up to `lags` from one FFT of at least n + lags points (no wrap-around
    # below that), a length with only the factors 2, 3 and 5, which FFTs take fastest.
    length = _fft_length(n + lags)
    spectrum = np.fft.rfft(x, length)
    acf = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, length)[1 : lags + 1] / energy
    negative = np.flatnonzero(acf < 0)
    if negative.size == 0 or negative[0] >= lags - 1:
        return 0.0
    zero = int(negative[0])
    peak = zero + int(np.argmax(acf[zero:]))
    strength = min(float(acf[peak]), -float(acf[zero : peak + 1].min()))
    return strength - math.sqrt(2.0 * math.log(max(lags - zero, 2)) / n)


@functools.lru_cache(maxsize=512)
def _fft_length(at_least: int) -> int:
    """The smallest number >= ``at_least`` with no prime factor but 2, 3 and 5."""
    best = 1 << max(0, (at_least - 1).bit_length())
    five = 1
    while five < best:
        three = five
        while three < best:
            two = three
            while two < at_least:
                two *= 2
            best = min(best, two)
            three *= 3
        five *= 5
    return best


@dataclass(frozen=True)
class Statistic:
    """A registered statistic: its name, what it means, whether it needs ``level``, its cost, and
    how it is computed. ``window_fn`` sees the points of one window; a statistic with a
    ``reference`` compares each window's median with earlier windows instead ("start": the
    series' first window, "peak"/"trough": the highest/lowest window median seen so far).
    ``batch_fn``, where given, computes every window of a grid at once and must equal
    ``window_fn`` window by window (``window_fn`` stays the reference and the fallback)."""

    name: str
    doc: str
    window_fn: WindowFn | None = None
    needs_level: bool = False
    reference: Reference | None = None
    cost: str = "O(window)"
    batch_fn: BatchFn | None = None
    #: True for statistics about the non-finite samples themselves; every other statistic is NaN
    #: over a window where most raw samples were NaN/inf (see MAX_NONFINITE_SHARE).
    reads_nonfinite: bool = False
    #: The fewest finite points in a window the statistic is defined on (fewer: NaN), said where a
    #: log too sparse for a rule's windows left it nothing to judge.
    min_points: int = 1

    def __post_init__(self) -> None:
        if (self.window_fn is None) == (self.reference is None):
            raise ValueError(f"statistic {self.name!r} needs exactly one of a window function or a reference")
        if self.batch_fn is not None and self.window_fn is None:
            raise ValueError(f"statistic {self.name!r} has a batch function but no window function to check it against")


STATISTICS: dict[str, Statistic] = {}


def register_statistic(stat: Statistic) -> None:
    """Add a statistic to the closed vocabulary. Duplicate names fail fast."""
    if not isinstance(stat, Statistic):
        raise TypeError(f"expected a Statistic, got {type(stat).__name__}")
    if stat.name in STATISTICS:
        raise ValueError(f"statistic {stat.name!r} is already registered")
    STATISTICS[stat.name] = stat


for _stat in [
    Statistic("mean", "mean of the finite values in the window", _mean, batch_fn=rolling.batch_mean),
    Statistic("median", "median of the finite values in the window", _median, batch_fn=rolling.batch_median),
    Statistic("std", "standard deviation of the finite values", _std, batch_fn=rolling.batch_std, min_points=2),
    Statistic("log10_std", "standard deviation of log10 of the positive finite values (spread in decades)", _log10_std, batch_fn=rolling.batch_log10_std,
              min_points=SPREAD_MIN_POINTS),
    Statistic("min", "smallest finite value", _min, batch_fn=rolling.batch_min),
    Statistic("max", "largest finite value", _max, batch_fn=rolling.batch_max),
    Statistic("last", "most recent finite value", _last, batch_fn=rolling.batch_last),
    Statistic("cv", "coefficient of variation: std / |mean|", _cv, batch_fn=rolling.batch_cv, min_points=2),
    Statistic("slope", "least-squares slope per 1000 steps", _slope, batch_fn=rolling.batch_slope, min_points=3),
    Statistic("rel_slope", "slope per 1000 steps divided by |median|", _rel_slope, batch_fn=rolling.batch_rel_slope, min_points=3),
    Statistic("nonfinite_frac", "share of raw samples that were NaN or inf", _nonfinite_frac, batch_fn=rolling.batch_nonfinite_frac, reads_nonfinite=True),
    Statistic("nonfinite_count", "number of raw samples that were NaN or inf", _nonfinite_count, batch_fn=rolling.batch_nonfinite_count, reads_nonfinite=True),
    Statistic("frac_above", "share of finite values above `level`", _frac_above, needs_level=True, batch_fn=rolling.batch_frac_above),
    Statistic("frac_below", "share of finite values below `level`", _frac_below, needs_level=True, batch_fn=rolling.batch_frac_below),
    Statistic("abs_max", "largest absolute finite value", _abs_max, batch_fn=rolling.batch_abs_max),
    Statistic("abs_median", "median of the absolute finite values (a magnitude either sign reaches)", _abs_median,
              batch_fn=rolling.batch_abs_median),
    Statistic(
        "excess_variation",
        f"total variation minus net change of {SWING_SAMPLES} evenly spaced values, per gap (0 when monotone; swings)",
        _excess_variation,
        batch_fn=rolling.batch_excess_variation,
        min_points=SWING_SAMPLES,
    ),
    Statistic(
        "mean_swing",
        f"excess_variation with each of the {SWING_SAMPLES} values the mean of its neighbourhood, not the median "
        "(for 0/1 indicators: the swings of a share)",
        _mean_swing,
        batch_fn=rolling.batch_mean_swing,
        min_points=SWING_SAMPLES,
    ),
    Statistic(
        "cycle",
        "strength of a repeating cycle: the first autocorrelation peak of the detrended values that a trough as deep "
        "precedes, less what noise would reach (about 0 for noise and drift)",
        _cycle,
        cost="O(n log n)",
        min_points=CYCLE_MIN_POINTS,
    ),
    Statistic("log10_vs_start", "log10 of |window median| / |median of the series' first window|", reference="start"),
    Statistic("log10_vs_peak", "log10 of window median / highest earlier window median", reference="peak"),
    Statistic("log10_vs_trough", "log10 of window median / lowest earlier window median", reference="trough"),
]:
    register_statistic(_stat)


#: A window is at least this many times the local spacing of the series' points. On long runs
#: the signal log merges old neighbouring points (bounded memory), so a window of 200 steps may
#: hold no point at all; it widens to the series' own resolution there instead of going empty.
MIN_WINDOW_POINTS = 3


def window_bounds(view: SeriesView, window: int, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index ranges ``[starts[i], ends[i])`` of the points in the window ending at ``grid[i]``."""
    steps = view.steps
    ends = np.searchsorted(steps, grid, side="right")
    # Local resolution: the gap between the last two points at or before t. Merged (old)
    # stretches of a long run have wide gaps; a signal that stopped arriving does not widen.
    last = np.clip(ends - 1, 0, max(steps.shape[0] - 1, 0))
    prev = np.clip(ends - 2, 0, max(steps.shape[0] - 1, 0))
    gaps = (steps[last] - steps[prev]) if steps.size else np.zeros_like(grid)
    widths = np.maximum(window, MIN_WINDOW_POINTS * gaps)
    starts = np.searchsorted(steps, grid - widths, side="right")
    return starts, ends


def per_window(view: SeriesView, stat: Statistic, starts: np.ndarray, ends: np.ndarray, level: float | None) -> np.ndarray:
    """``stat.window_fn`` called on each window in turn: the reference form (NaN where a window is empty)."""
    if stat.window_fn is None:
        raise ValueError(f"statistic {stat.name!r} has no window function")
    out = np.full(starts.shape[0], math.nan)
    fn, steps = stat.window_fn, view.steps
    for i, (a, b) in enumerate(zip(starts, ends)):
        if b > a:
            out[i] = fn(steps[a:b], view.values[a:b], view.counts[a:b], view.nonfinite[a:b], level)
    return out


def _per_grid(view: SeriesView, stat: Statistic, starts: np.ndarray, ends: np.ndarray, level: float | None) -> np.ndarray:
    """The statistic on every window, each distinct run of equal windows computed once (a grid
    finer than the series' points sees the same window at consecutive grid steps)."""
    if starts.size == 0:
        return np.full(0, math.nan)
    new = np.concatenate(([True], (starts[1:] != starts[:-1]) | (ends[1:] != ends[:-1])))
    a, b = starts[new], ends[new]
    if stat.batch_fn is None:
        distinct = per_window(view, stat, a, b, level)
    else:
        distinct = np.asarray(stat.batch_fn(view.steps, view.values, view.counts, view.nonfinite, a, b, level), dtype=np.float64)
    return distinct[np.cumsum(new) - 1]


#: A window where more than this share of the raw samples were NaN/inf says nothing about the
#: finite few: a run that blew up at step 14 and went on in NaN must not read "G's gradient fell
#: to 0" from the last two finite values before the blow-up, 200 steps later.
MAX_NONFINITE_SHARE = 0.5


def _mostly_nonfinite(view: SeriesView, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    counts = np.concatenate([[0], np.cumsum(view.counts)])
    bad = np.concatenate([[0], np.cumsum(view.nonfinite)])
    total = counts[ends] - counts[starts]
    return (total > 0) & ((bad[ends] - bad[starts]) > MAX_NONFINITE_SHARE * total)


def evaluate(view: SeriesView, stat_name: str, window: int, grid: np.ndarray, level: float | None = None) -> np.ndarray:
    """Value of ``stat_name`` over ``(t - window, t]`` for every ``t`` in ``grid``.

    The window widens to ``MIN_WINDOW_POINTS`` times the local point spacing where the signal
    log has merged points (long runs), so it never goes empty for lack of resolution. Where most
    of a window's raw samples were NaN/inf, every statistic but the non-finite ones is NaN.
    """
    stat = STATISTICS[stat_name]
    starts, ends = window_bounds(view, window, grid)
    out = _unmasked(view, stat, window, starts, ends, level)
    if not stat.reads_nonfinite:
        out[_mostly_nonfinite(view, starts, ends)] = math.nan
    return out


def _unmasked(view: SeriesView, stat: Statistic, window: int, starts: np.ndarray, ends: np.ndarray, level: float | None) -> np.ndarray:
    if stat.window_fn is not None:
        return _per_grid(view, stat, starts, ends, level)
    steps = view.steps
    medians = _per_grid(view, STATISTICS["median"], starts, ends, None)
    if stat.reference == "start":
        first_end = np.searchsorted(steps, steps[0] + window, side="right") if steps.size else 0
        ref = _median(steps[:first_end], view.values[:first_end], view.counts[:first_end], view.nonfinite[:first_end], None)
        return _log10_ratios(medians, np.full(medians.shape, ref))
    # The highest (lowest) finite window median strictly before each grid step.
    best = np.where(np.isfinite(medians), medians, math.nan)
    best = (np.fmax if stat.reference == "peak" else np.fmin).accumulate(best) if best.size else best
    return _log10_ratios(medians, np.concatenate(([math.nan], best[:-1])))


def _log10_ratios(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """log10 of |num| / |den| element by element; NaN where either is not finite or den is 0, and
    -12 for an exact zero ("many orders of magnitude below", kept finite). math.log10 itself."""
    out = np.full(num.shape, math.nan)
    num, den = np.abs(num), np.abs(den)
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0)
    out[ok & (num <= 0)] = -12.0
    pos = ok & (num > 0)
    # a quotient that underflows to 0 (a subnormal over a large value) is "many orders below" too
    out[pos] = [math.log10(q) if q > 0 else -12.0 for q in (num[pos] / den[pos]).tolist()]
    return out


def first_nonfinite_step(view: SeriesView, after: int) -> int | None:
    """The first step at or after ``after`` that held a NaN/inf sample (exact onset of a blow-up):
    the raw sample's own step, also where a long run's log merged it into a wider point."""
    idx = np.nonzero((view.nonfinite > 0) & (view.steps >= after))[0]
    if not idx.size:
        return None
    first = -1 if view.first_nonfinite is None else int(view.first_nonfinite[idx[0]])
    # A point that began before ``after`` may hold its first NaN there: its own step stands, as before.
    return first if first >= after else int(view.steps[idx[0]])


def describe(stat_name: str) -> Mapping[str, str]:
    stat = STATISTICS[stat_name]
    return {"name": stat.name, "doc": stat.doc, "cost": stat.cost}
