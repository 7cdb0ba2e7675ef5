"""SignalLog.extend / Series.extend: bulk appends give the points append gives one by one."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gandoctor.signals import Series, SignalLog

values_st = st.floats(allow_nan=True, allow_infinity=True, width=32)


def _same(a, b) -> None:
    va, vb = a.view(), b.view()
    assert va.steps.tolist() == vb.steps.tolist()
    assert va.counts.tolist() == vb.counts.tolist()
    assert va.nonfinite.tolist() == vb.nonfinite.tolist()
    assert np.allclose(va.values, vb.values, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert a.stride == b.stride


@settings(max_examples=80, deadline=None)
@given(
    chunks=st.lists(st.lists(st.tuples(st.integers(0, 3), values_st), max_size=300), max_size=6),
    capacity=st.sampled_from([16, 32, 64]),
)
def test_extend_equals_append_one_by_one(chunks, capacity):
    one, bulk = Series("x", capacity), Series("x", capacity)
    step = 0
    for chunk in chunks:
        steps, values = [], []
        for delta, value in chunk:
            step += delta - 1 if delta == 0 and step > 0 else delta  # mostly increasing, some steps back
            steps.append(step)
            values.append(value)
            one.append(step, value)
        bulk.extend(np.array(steps, dtype=np.int64), np.array(values))
    _same(one, bulk)


def test_signallog_extend_tracks_first_and_last_step_and_series_limit():
    log = SignalLog(capacity=16, max_series=1)
    log.extend("loss.d", np.arange(5, 105), np.ones(100))
    log.extend("loss.g", np.arange(3), np.ones(3))  # over max_series: ignored like record()
    assert log.names() == ["loss.d"] and (log.first_step, log.last_step) == (5, 104)
    view = log.get("loss.d")
    assert int(view.counts.sum()) == 100 and math.isclose(float(view.values.mean()), 1.0)
