"""gandoctor.signals: names, the bounded decimating Series and the SignalLog."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gandoctor.errors import SignalError
from gandoctor.signals import SIGNALS, Series, SignalLog, check_signal_name


# -- names ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["loss.d", "grad_norm.g.layer.conv1", "feat.coverage_ratio", "user.my-col"])
def test_valid_signal_names_pass(name):
    assert check_signal_name(name) == name


@pytest.mark.parametrize("name", ["loss", "Loss.d", ".d", "loss.", "loss d.x", "", 3])
def test_invalid_signal_names_raise(name):
    with pytest.raises(SignalError, match="not valid"):
        check_signal_name(name)


def test_documented_vocabulary_is_all_valid_names():
    for name in SIGNALS:
        assert check_signal_name(name) == name


# -- Series -----------------------------------------------------------------------------
@pytest.mark.parametrize("capacity", [8, 15, 17, 0, -2])
def test_series_capacity_must_be_even_and_at_least_16(capacity):
    with pytest.raises(SignalError, match="capacity"):
        Series("loss.d", capacity)


def test_series_keeps_points_exactly_below_capacity():
    s = Series("loss.d", 16)
    for step in range(10):
        s.append(step, float(step) * 0.5)
    v = s.view()
    assert len(v) == 10
    assert v.steps.tolist() == list(range(10))
    assert v.values.tolist() == [x * 0.5 for x in range(10)]
    assert v.counts.tolist() == [1] * 10
    assert v.nonfinite.tolist() == [0] * 10


def test_series_non_finite_values_are_nan_with_a_count():
    s = Series("loss.d", 16)
    for step, value in enumerate([1.0, math.nan, math.inf, -math.inf, 2.0]):
        s.append(step, value)
    v = s.view()
    assert np.isnan(v.values[1:4]).all()
    assert v.nonfinite.tolist() == [0, 1, 1, 1, 0]


def test_series_drops_out_of_order_steps_but_keeps_equal_steps():
    s = Series("loss.d", 16)
    s.append(10, 1.0)
    s.append(5, 2.0)  # a resumed run re-logging an old step
    s.append(10, 3.0)
    s.append(11, 4.0)
    v = s.view()
    assert v.steps.tolist() == [10, 10, 11]
    assert v.values.tolist() == [1.0, 3.0, 4.0]


def test_series_memory_bounded_after_100k_appends():
    capacity = 64
    s = Series("loss.d", capacity)
    max_len = 0
    for step in range(100_000):
        s.append(step, 1.0)
        max_len = max(max_len, len(s))
    assert max_len <= capacity  # stored points plus the bucket being filled
    # the backing arrays never grow past capacity either
    for attr in ("_steps", "_values", "_counts", "_nonfinite"):
        assert getattr(s, attr).shape[0] <= capacity
    v = s.view()
    assert int(v.counts.sum()) == 100_000
    assert v.steps[-1] == 99_999
    assert np.all(np.diff(v.steps) > 0)


def test_decimation_keeps_counts_nonfinite_counts_and_mean_exact():
    rng = np.random.default_rng(0)
    n = 5_000
    raw = rng.normal(3.0, 2.0, n)
    raw[rng.random(n) < 0.1] = math.nan
    raw[rng.random(n) < 0.02] = math.inf
    s = Series("loss.d", 32)
    for step, value in enumerate(raw):
        s.append(step, float(value))
    v = s.view()
    assert len(v) <= 32
    assert int(v.counts.sum()) == n
    assert int(v.nonfinite.sum()) == int((~np.isfinite(raw)).sum())
    # each point is the mean of the finite raw samples it stands for: the count-weighted mean
    # of the points is the mean of all finite raw samples
    finite_counts = v.counts - v.nonfinite
    ok = finite_counts > 0
    weighted = float((v.values[ok] * finite_counts[ok]).sum() / finite_counts[ok].sum())
    assert weighted == pytest.approx(float(raw[np.isfinite(raw)].mean()), rel=1e-9, abs=1e-12)
    # a point is NaN exactly when all its samples were non-finite
    assert np.array_equal(np.isnan(v.values), finite_counts == 0)


def test_decimated_point_is_mean_of_its_block():
    s = Series("x.y", 16)
    values = [float(i) for i in range(17)]  # the 17th append triggers one decimation
    for step, value in enumerate(values):
        s.append(step, value)
    v = s.view()
    assert len(v) == 9
    assert v.values[:8].tolist() == [0.5, 2.5, 4.5, 6.5, 8.5, 10.5, 12.5, 14.5]
    assert v.counts.tolist() == [2] * 8 + [1]
    assert v.steps.tolist() == [1, 3, 5, 7, 9, 11, 13, 15, 16]  # a merged point keeps its later step


def test_decimation_of_all_nan_pair_stays_nan():
    s = Series("x.y", 16)
    for step in range(17):
        s.append(step, math.nan if step in (0, 1) else 1.0)
    v = s.view()
    assert math.isnan(v.values[0])
    assert v.nonfinite[0] == 2 and v.counts[0] == 2


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan), st.just(math.inf)), min_size=1, max_size=400))
def test_decimation_invariants_property(values):
    s = Series("x.y", 16)
    for step, value in enumerate(values):
        s.append(step, value)
    v = s.view()
    assert len(v) <= 16
    assert int(v.counts.sum()) == len(values)
    assert int(v.nonfinite.sum()) == sum(1 for x in values if not math.isfinite(x))
    finite = [x for x in values if math.isfinite(x)]
    fc = v.counts - v.nonfinite
    if finite:
        got = float((np.nan_to_num(v.values) * fc).sum())
        assert got == pytest.approx(math.fsum(finite), rel=1e-9, abs=1e-6)



@pytest.mark.parametrize("how", ["append", "extend"])
def test_merged_points_keep_the_step_of_their_first_nonfinite_sample(how):
    # A run longer than the capacity that goes on in NaN: its points merge, each stamped with its
    # last step, but the step of the first NaN sample stays exact (a blow-up's onset).
    steps = np.arange(100)
    values = np.where(steps >= 37, math.nan, 1.0)
    s = Series("x.y", 16)
    if how == "append":
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            s.append(step, value)
    else:
        s.extend(steps, values)
    v = s.view()
    assert v.first_nonfinite is not None and v.first_nonfinite.shape == v.steps.shape
    bad = v.nonfinite > 0
    assert v.steps[bad][0] > 37 and v.first_nonfinite[bad][0] == 37  # the point's own step is later
    assert (v.first_nonfinite[~bad] == -1).all()
    # every later point's first NaN lies inside it
    assert ((v.first_nonfinite[bad][1:] > v.steps[bad][:-1]) & (v.first_nonfinite[bad][1:] <= v.steps[bad][1:])).all()

def test_view_is_a_copy():
    s = Series("x.y", 16)
    s.append(0, 1.0)
    v = s.view()
    v.values[0] = 99.0
    assert s.view().values[0] == 1.0


# -- SignalLog --------------------------------------------------------------------------
def test_signal_log_records_and_tracks_steps():
    log = SignalLog(capacity=16)
    log.record(5, {"loss.d": 1.0, "loss.g": 2.0})
    log.record(7, {"loss.d": 0.5})
    assert log.names() == ["loss.d", "loss.g"]
    assert "loss.d" in log and "d.auc" not in log
    assert log.first_step == 5 and log.last_step == 7
    assert log.get("loss.d").values.tolist() == [1.0, 0.5]
    assert log.get("d.auc") is None
    assert [v.name for v in log.views()] == ["loss.d", "loss.g"]


def test_signal_log_empty_record_does_not_move_steps():
    log = SignalLog(capacity=16)
    log.record(3, {})
    assert log.first_step is None and log.last_step is None


def test_signal_log_ignores_new_series_beyond_max_series():
    log = SignalLog(capacity=16, max_series=2)
    log.record(0, {"a.x": 1.0, "b.x": 1.0, "c.x": 1.0})
    log.record(1, {"a.x": 2.0, "d.x": 1.0})
    assert log.names() == ["a.x", "b.x"]
    assert len(log.get("a.x")) == 2


def test_signal_log_from_records():
    log = SignalLog.from_records([(0, {"loss.d": 1.0}), (1, {"loss.d": math.nan})], capacity=16)
    v = log.get("loss.d")
    assert v.steps.tolist() == [0, 1]
    assert v.nonfinite.tolist() == [0, 1]
    assert log.capacity == 16


def test_decimated_history_has_uniform_resolution():
    # Every stored point stands for the same number of samples: the start of a long run is not
    # swallowed into one bucket while the end stays fine-grained.
    s = Series("loss.d", 64)
    for step in range(200_000):
        s.append(step, float(step % 5))
    view = s.view()
    full = view.counts[:-1]
    assert int(view.counts.sum()) == 200_000
    assert full.max() <= 2 * full.min()
    assert view.steps[0] < 200_000 / 32  # the first point still sits near the start


def test_span_is_the_first_and_last_step_of_the_views_without_building_them():
    log = SignalLog(capacity=16)
    for step in range(0, 200, 3):  # merged as the buffer fills, a bucket still filling at the end
        log.record(step, {"loss.d": 1.0, "user.extra": 2.0})
    log.record(250, {"user.extra": 2.0})
    views = {name: log.get(name) for name in log.names()}
    assert all(view is not None and view.counts[0] > 1 for view in views.values())  # merged buckets
    loss = views["loss.d"]
    assert log.span(lambda name: name == "loss.d") == (int(loss.steps[0]), int(loss.steps[-1])) == (int(loss.steps[0]), 198)
    assert log.span(lambda name: True) == (int(loss.steps[0]), 250)
    assert log.span(lambda name: False) == (None, None)
