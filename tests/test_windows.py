"""gandoctor.windows: each windowed statistic on synthetic arrays with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gandoctor import windows as stats
from gandoctor.signals import Series, SeriesView


def view(values, steps=None, counts=None, nonfinite=None) -> SeriesView:
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    steps = np.arange(n, dtype=np.int64) if steps is None else np.asarray(steps, dtype=np.int64)
    counts = np.ones(n, dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    if nonfinite is None:
        nonfinite = (~np.isfinite(values)).astype(np.int64)
    values = np.where(np.isfinite(values), values, np.nan)
    return SeriesView("x.y", steps, values, counts, np.asarray(nonfinite, dtype=np.int64))


def at_end(v: SeriesView, stat: str, window: int, level=None) -> float:
    grid = np.array([int(v.steps[-1])], dtype=np.int64)
    return float(stats.evaluate(v, stat, window, grid, level)[0])


def test_slope_of_a_known_line_is_per_1000_steps():
    steps = np.arange(0, 500, 5)
    v = view(2.0 * steps + 1.0, steps=steps)
    assert at_end(v, "slope", 1000) == pytest.approx(2000.0)


def test_slope_ignores_nan_and_needs_three_points():
    v = view([1.0, math.nan, 3.0, 4.0])
    assert at_end(v, "slope", 100) == pytest.approx(1000.0)
    assert math.isnan(at_end(view([1.0, 2.0]), "slope", 100))


def test_rel_slope_divides_by_median():
    v = view(np.arange(1.0, 12.0))  # slope 1000 per 1000 steps, median 6
    assert at_end(v, "rel_slope", 100) == pytest.approx(1000.0 / 6.0)


def test_rel_slope_nan_for_zero_median():
    assert math.isnan(at_end(view([-1.0, 0.0, 1.0]), "rel_slope", 100))


@pytest.mark.parametrize(
    "stat,expected",
    [
        ("mean", 2.5),
        ("median", 2.5),
        ("std", float(np.std([1.0, 2.0, 3.0, 4.0]))),
        ("min", 1.0),
        ("max", 4.0),
        ("last", 4.0),
        ("cv", float(np.std([1.0, 2.0, 3.0, 4.0])) / 2.5),
    ],
)
def test_simple_statistics_ignore_non_finite(stat, expected):
    v = view([1.0, math.nan, 2.0, math.inf, 3.0, 4.0, math.nan])
    assert at_end(v, stat, 100) == pytest.approx(expected)


def test_statistics_nan_when_no_finite_values():
    v = view([math.nan, math.nan, math.inf])
    for stat in ("mean", "median", "std", "min", "max", "last", "cv", "slope"):
        assert math.isnan(at_end(v, stat, 100)), stat


def test_std_needs_two_values_and_cv_needs_nonzero_mean():
    assert math.isnan(at_end(view([5.0]), "std", 10))
    assert math.isnan(at_end(view([-1.0, 1.0]), "cv", 10))


def test_nonfinite_frac_counts_raw_samples_of_decimated_points():
    # two points: one stands for 4 samples of which 3 were NaN, one for 4 finite samples
    v = view([1.0, 2.0], counts=[4, 4], nonfinite=[3, 0])
    assert at_end(v, "nonfinite_frac", 100) == pytest.approx(3 / 8)


def test_nonfinite_frac_through_a_real_series():
    s = Series("x.y", 16)
    for step in range(100):
        s.append(step, math.nan if step % 4 == 0 else 1.0)
    assert at_end(s.view(), "nonfinite_frac", 1000) == pytest.approx(0.25)


def test_frac_above_and_below_use_level():
    v = view([0.1, 0.5, 0.9, 0.95, math.nan])
    assert at_end(v, "frac_above", 100, level=0.8) == pytest.approx(0.5)
    assert at_end(v, "frac_below", 100, level=0.2) == pytest.approx(0.25)


def test_window_is_half_open_t_minus_window_to_t():
    v = view([100.0, 1.0, 2.0, 3.0], steps=[0, 10, 20, 30])
    # window 30 at t=30 covers (0, 30]: step 0 is excluded
    assert at_end(v, "max", 30) == 3.0
    assert at_end(v, "max", 31) == 100.0


def test_empty_window_is_nan():
    v = view([1.0, 2.0], steps=[0, 1])
    out = stats.evaluate(v, "mean", 5, np.array([100], dtype=np.int64))
    assert math.isnan(out[0])


def test_evaluate_on_a_grid():
    v = view(np.arange(10.0))
    out = stats.evaluate(v, "last", 3, np.array([2, 5, 9], dtype=np.int64))
    assert out.tolist() == [2.0, 5.0, 9.0]


# -- reference statistics -----------------------------------------------------------------
def test_log10_vs_peak_on_a_series_that_drops_1000x():
    steps = np.arange(0, 1000)
    values = np.where(steps < 500, 1.0, 1e-3)
    v = view(values, steps=steps)
    grid = np.arange(99, 1000, 100, dtype=np.int64)
    out = stats.evaluate(v, "log10_vs_peak", 100, grid)
    assert math.isnan(out[0])  # no earlier window yet
    assert out[1:5] == pytest.approx([0.0] * 4)
    assert out[-1] == pytest.approx(-3.0)


def test_log10_vs_trough_on_a_series_that_grows_100x():
    steps = np.arange(0, 600)
    values = np.where(steps < 300, 0.5, 50.0)
    grid = np.arange(99, 600, 100, dtype=np.int64)
    out = stats.evaluate(view(values, steps=steps), "log10_vs_trough", 100, grid)
    assert out[-1] == pytest.approx(2.0)


def test_log10_vs_start_compares_with_first_window():
    steps = np.arange(0, 400)
    values = np.where(steps < 200, 10.0, 0.1)
    grid = np.array([399], dtype=np.int64)
    out = stats.evaluate(view(values, steps=steps), "log10_vs_start", 100, grid)
    assert out[0] == pytest.approx(-2.0)


def test_log10_of_exact_zero_is_finite_and_very_low():
    steps = np.arange(0, 300)
    values = np.where(steps < 100, 1.0, 0.0)
    out = stats.evaluate(view(values, steps=steps), "log10_vs_start", 50, np.array([299], dtype=np.int64))
    assert out[0] == -12.0


# -- registry ---------------------------------------------------------------------------
def test_registry_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        stats.register_statistic(stats.Statistic("median", "dup", stats.STATISTICS["mean"].window_fn))


def test_registry_vocabulary_and_level_flags():
    assert {"slope", "median", "nonfinite_frac", "log10_vs_peak"} <= set(stats.STATISTICS)
    needs_level = {name for name, s in stats.STATISTICS.items() if s.needs_level}
    assert needs_level == {"frac_above", "frac_below"}
    assert stats.describe("slope")["doc"] == "least-squares slope per 1000 steps"


def test_windows_widen_to_the_resolution_of_a_decimated_series():
    from gandoctor.signals import SignalLog

    log = SignalLog(capacity=64)
    for step in range(200_000):
        log.record(step, {"x.y": 1.0 + (step % 7)})
    view = log.get("x.y")
    assert len(view) <= 64
    grid = np.array([100_000, 199_999])
    # A 200-step window holds no merged point any more; it must widen rather than go empty.
    values = stats.evaluate(view, "std", 200, grid)
    assert np.isfinite(values).all()


def test_excess_variation_is_zero_for_a_monotone_series_however_steep():
    assert at_end(view(np.linspace(0.0, 1.0, 50)), "excess_variation", 100) == pytest.approx(0.0)
    assert at_end(view(np.linspace(1.0, 0.0, 50)), "excess_variation", 100) == pytest.approx(0.0)


def test_excess_variation_measures_a_swing_that_comes_back():
    # five evenly spaced samples 0, 1, 0, 1, 0 (a square wave of period 20 sampled every 10 steps)
    x = np.array([0.0] * 5 + [1.0] * 10 + [0.0] * 10 + [1.0] * 10 + [0.0] * 6)
    # total variation 4, net change 0, over 4 gaps: 1
    assert at_end(view(x), "excess_variation", 41) == pytest.approx(1.0)


def test_excess_variation_needs_five_finite_values():
    assert math.isnan(at_end(view([0.0, 1.0, np.nan, 0.0]), "excess_variation", 10))


def test_a_window_of_mostly_non_finite_samples_reads_nothing_but_its_non_finite_share():
    # two finite zeros just before a blow-up, then NaN: the zeros are not "the gradient vanished"
    x = np.array([1.0] * 10 + [0.0, 0.0] + [np.nan] * 20)
    v = view(x)
    assert math.isnan(at_end(v, "median", 25))
    assert math.isnan(at_end(v, "log10_vs_peak", 25))
    assert at_end(v, "nonfinite_frac", 25) == pytest.approx(20 / 25)
    # half or less non-finite: the finite values still count
    assert at_end(view(np.array([2.0] * 10 + [np.nan] * 10)), "median", 20) == 2.0
