"""Windowed statistics for every window of a grid at once (numpy, no Python loop per window).

A window is the index range ``[starts[i], ends[i])`` of a series' points. Each function here
computes what the matching per-window function in ``windows`` computes, on the same finite values
in the same order with the same numpy reductions, so the results are equal, not merely close
(tests/test_windows.py checks that on random series). Sums (mean, std, slope) are computed on
the rows of one matrix per count of finite values, since numpy's summation order depends on the
length; order statistics (median, min, max, shares) on rows padded to a common width, which does
not change them. Counts of raw samples come from integer cumulative sums. An empty window is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: The batch form of a statistic: ``(steps, values, counts, nonfinite, starts, ends, level)``
#: -> one value per window.
BatchFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, "float | None"], np.ndarray]

#: How many evenly spaced samples of a window `excess_variation` compares: few enough that the
#: gaps between them are longer than D's step-to-step jitter, enough to see a swing come back.
SWING_SAMPLES = 5
#: Fewest positive values ``log10_std`` reads a spread from (a log printed every 50 steps gave its
#: windows 3 points: GD310 alarmed on 4 healthy corpus runs so cut, and on none at full density).
SPREAD_MIN_POINTS = 4

#: Matrix cells gathered at a time (bounds memory when windows are long and many).
MAX_CELLS = 1 << 20

#: Windows with up to this many finite values share one padded bin (fewer numpy calls).
SHORT_WINDOW = 64


@dataclass(frozen=True)
class FiniteWindows:
    """The finite points of a series, and where each window's finite points lie among them:
    window ``i`` holds ``values[lo[i] : lo[i] + n[i]]`` (the same values, in the same order, that
    the per-window functions see after dropping NaN/inf)."""

    steps: np.ndarray
    values: np.ndarray
    lo: np.ndarray
    n: np.ndarray

    def groups(self, minimum: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(windows, index)`` for windows holding the same number k >= minimum of finite
        values: ``index`` is their k-wide rows of indices into ``values``/``steps``."""
        order = np.argsort(self.n, kind="stable")
        counts = self.n[order]
        first = int(np.searchsorted(counts, max(minimum, 1)))
        order, counts = order[first:], counts[first:]
        for rows in np.split(order, np.flatnonzero(np.diff(counts)) + 1) if order.size else []:
            k = int(self.n[rows[0]])
            chunk = max(1, MAX_CELLS // k)
            for i in range(0, rows.size, chunk):
                part = rows[i : i + chunk]
                yield part, self.lo[part, None] + np.arange(k)

    def padded(self, minimum: int, fill: float) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(windows, n, rows)`` for windows holding at least ``minimum`` finite values, binned by
        powers of two of their count (all short windows in one bin): each row holds a window's
        finite values, then ``fill`` up to the bin's widest window. Few bins, so an order
        statistic costs a few numpy calls per grid, not per window."""
        some = np.flatnonzero(self.n >= max(minimum, 1))
        if not some.size:
            return
        bins = np.ceil(np.log2(np.maximum(self.n[some], SHORT_WINDOW))).astype(np.int64)
        for b in np.unique(bins):
            in_bin = some[bins == b]
            width = int(self.n[in_bin].max())
            # Row i of `windows` is values[i : i + width]; gathering rows copies contiguous runs.
            windows = sliding_window_view(np.concatenate((self.values, np.full(width, fill))), width)
            chunk = max(1, MAX_CELLS // width)
            for i in range(0, in_bin.size, chunk):
                rows = in_bin[i : i + chunk]
                n = self.n[rows]
                cells = windows[self.lo[rows]]
                short = n < width
                if short.any():
                    cells[short] = np.where(np.arange(width) < n[short, None], cells[short], fill)
                yield rows, n, cells


def finite_windows(steps: np.ndarray, values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> FiniteWindows:
    finite = np.isfinite(values)
    before = np.concatenate(([0], np.cumsum(finite, dtype=np.int64)))
    lo = before[starts]
    return FiniteWindows(steps[finite], values[finite], lo, np.maximum(before[ends] - lo, 0))


def _per_row(fw: FiniteWindows, minimum: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn(rows of finite values)`` for every group of windows with at least ``minimum`` finite
    values; NaN for the others."""
    out = np.full(fw.n.shape[0], np.nan)
    for rows, index in fw.groups(minimum):
        out[rows] = fn(fw.values[index])
    return out


def _padded(fw: FiniteWindows, fill: float, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn(counts, padded rows)`` (see FiniteWindows.padded) for every non-empty window; NaN for the others."""
    out = np.full(fw.n.shape[0], np.nan)
    for rows, n, v in fw.padded(1, fill):
        out[rows] = fn(n, v)
    return out


def _medians(fw: FiniteWindows) -> np.ndarray:
    return _padded(fw, np.inf, _row_median)


def _row_median(n: np.ndarray, v: np.ndarray) -> np.ndarray:
    """As np.median: the middle value, or the mean of the middle two (the +inf fill sorts last)."""
    v.sort(axis=1)
    r = np.arange(n.shape[0])
    upper, lower = v[r, n // 2], v[r, (n - 1) // 2]
    return np.where(n % 2 == 1, upper, (lower + upper) / 2)


def _slopes(fw: FiniteWindows) -> np.ndarray:
    out = np.full(fw.n.shape[0], np.nan)
    for rows, index in fw.groups(3):
        out[rows] = _row_slope(fw.values[index], fw.steps[index])
    return out


def _row_slope(v: np.ndarray, s: np.ndarray) -> np.ndarray:
    x = s.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    denom = (x * x).sum(axis=1)
    num = (x * (v - v.mean(axis=1, keepdims=True))).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, num / denom, np.nan) * 1000.0


def _row_mean(v: np.ndarray) -> np.ndarray:
    """ndarray.mean's arithmetic per row (without its Python-level overhead, paid per group)."""
    return np.add.reduce(v, axis=1) / v.shape[1]


def _row_std(v: np.ndarray) -> np.ndarray:
    """ndarray.std's arithmetic per row: squared deviations from the mean, summed, over n."""
    k = v.shape[1]
    x = v - np.add.reduce(v, axis=1, keepdims=True) / k
    np.multiply(x, x, out=x)
    return np.sqrt(np.add.reduce(x, axis=1) / k)


def _row_cv(v: np.ndarray) -> np.ndarray:
    m = np.abs(_row_mean(v))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(m > 1e-12, _row_std(v) / m, np.nan)


def batch_median(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    return _medians(finite_windows(steps, values, starts, ends))


def batch_mean(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    return _per_row(finite_windows(steps, values, starts, ends), 1, _row_mean)


def batch_std(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    return _per_row(finite_windows(steps, values, starts, ends), 2, _row_std)


def batch_log10_std(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    # log10 of zero or a negative value is not finite, so the finite filter drops it as the window form does
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(values)
    return _per_row(finite_windows(steps, logs, starts, ends), SPREAD_MIN_POINTS, _row_std)


def batch_min(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    return _padded(finite_windows(steps, values, starts, ends), np.inf, lambda n, v: v.min(axis=1))


def batch_max(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    return _padded(finite_windows(steps, values, starts, ends), -np.inf, lambda n, v: v.max(axis=1))


def batch_abs_max(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    return _padded(finite_windows(steps, values, starts, ends), 0.0, lambda n, v: np.abs(v).max(axis=1))


def batch_abs_median(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    return _medians(finite_windows(steps, np.abs(values), starts, ends))


def batch_cv(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    return _per_row(finite_windows(steps, values, starts, ends), 2, _row_cv)


def batch_slope(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    return _slopes(finite_windows(steps, values, starts, ends))


def batch_frac_above(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    # NaN fill never compares true; count / n is exactly the mean of the booleans.
    return _padded(finite_windows(steps, values, starts, ends), np.nan, lambda n, v: (v > level).sum(axis=1) / n)


def batch_frac_below(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    return _padded(finite_windows(steps, values, starts, ends), np.nan, lambda n, v: (v < level).sum(axis=1) / n)


def batch_rel_slope(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    fw = finite_windows(steps, values, starts, ends)
    slope, med = _slopes(fw), _medians(fw)
    ok = np.isfinite(slope) & np.isfinite(med) & (np.abs(med) >= 1e-12)
    out = np.full(slope.shape, np.nan)
    out[ok] = slope[ok] / np.abs(med[ok])
    return out


def batch_last(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    fw = finite_windows(steps, values, starts, ends)
    out = np.full(fw.n.shape[0], np.nan)
    some = fw.n > 0
    out[some] = fw.values[fw.lo[some] + fw.n[some] - 1]
    return out


def _sums(per_point: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Exact integer sums of ``per_point`` over each window."""
    before = np.concatenate(([0], np.cumsum(per_point, dtype=np.int64)))
    return before[ends] - before[starts]


def batch_nonfinite_frac(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    total, bad = _sums(counts, starts, ends), _sums(nonfinite, starts, ends)
    out = np.full(total.shape, np.nan)
    ok = (ends > starts) & (total != 0)
    out[ok] = bad[ok] / total[ok]
    return out


def batch_nonfinite_count(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    return np.where(ends > starts, _sums(nonfinite, starts, ends), np.nan)


def batch_excess_variation(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    """Per window with enough finite values: SWING_SAMPLES evenly spaced steps from its first to its
    last finite point, each read as the median of the finite values within half a gap of it (the
    nearest point where none is), then total variation minus net change per gap."""
    return _batch_swing(finite_windows(steps, values, starts, ends), _medians)


def batch_mean_swing(steps, values, counts, nonfinite, starts, ends, level):  # type: ignore[no-untyped-def]
    """``batch_excess_variation`` with each neighbourhood read as its mean."""
    return _batch_swing(finite_windows(steps, values, starts, ends), lambda near: _per_row(near, 1, _row_mean))


def _batch_swing(fw: FiniteWindows, neighbourhood: Callable[[FiniteWindows], np.ndarray]) -> np.ndarray:
    out = np.full(fw.n.shape[0], np.nan)
    rows = np.flatnonzero(fw.n >= SWING_SAMPLES)
    if not rows.size:
        return out
    lo, hi = fw.lo[rows], fw.lo[rows] + fw.n[rows]
    s = fw.steps.astype(np.float64)
    first, last = s[lo], s[hi - 1]
    half = (last - first) / (2 * (SWING_SAMPLES - 1))
    targets = first[:, None] + np.arange(SWING_SAMPLES, dtype=np.float64)[None, :] * (2 * half)[:, None]
    a = np.clip(np.searchsorted(s, targets - half[:, None], side="left"), lo[:, None], hi[:, None])
    b = np.clip(np.searchsorted(s, targets + half[:, None], side="right"), lo[:, None], hi[:, None])
    # each neighbourhood read as one value: rows of FiniteWindows over the same finite values
    p = neighbourhood(FiniteWindows(fw.steps, fw.values, a.ravel(), (b - a).ravel())).reshape(a.shape)
    # no point within half a gap (a gap in the log): the nearest point stands in, as per window
    near = np.clip(np.searchsorted(s, targets), lo[:, None], hi[:, None] - 1)
    left = np.clip(near - 1, lo[:, None], hi[:, None] - 1)
    near = np.where(np.abs(s[left] - targets) <= np.abs(s[near] - targets), left, near)
    p = np.where(b > a, p, fw.values[near]).astype(np.float64)
    out[rows] = (np.abs(np.diff(p, axis=1)).sum(axis=1) - np.abs(p[:, -1] - p[:, 0])) / (SWING_SAMPLES - 1)
    return out
