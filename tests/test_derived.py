"""Derived signals: computed from the log's own series when a rule asks, never stored."""

from __future__ import annotations

import numpy as np
import pytest

from gandoctor.derived import DerivedView
from gandoctor.signals import SignalLog


def _log(**series: list[float]) -> SignalLog:
    log = SignalLog()
    for name, values in series.items():
        log.extend(name.replace("__", "."), np.arange(len(values)), np.asarray(values, dtype=float))
    return log


def test_gap_needs_probabilities():
    view = DerivedView(_log(d_prob__real=[0.9, 0.6], d_prob__fake=[0.1, 0.7]))
    gap = view.get("d.gap")
    assert gap is not None and np.allclose(gap.values, [0.8, -0.1])
    # Raw critic scores in the probability columns are no probabilities: no gap.
    assert DerivedView(_log(d_prob__real=[3.0, 2.0], d_prob__fake=[-1.0, 0.0])).get("d.gap") is None


def test_real_ahead_reads_only_the_sign_in_any_units():
    # Critic scores: D ahead at steps 0 and 2, fooled at 1, tied at 3 (a tie counts half, as in
    # d.auc: torch_mimicry's critic probabilities, logged to 4 places, tie at 1.0000 when D separates).
    view = DerivedView(_log(d_out__real=[5.0, -2.0, 0.1, 1.0], d_out__fake=[-5.0, 3.0, 0.0, 1.0]))
    ahead = view.get("d.real_ahead")
    assert ahead is not None and ahead.values.tolist() == [1.0, 0.0, 1.0, 0.5]


def test_real_ahead_falls_back_to_probabilities_and_skips_missing_steps():
    # A CSV's D_x / D_G_z land in d_prob.*; a step where one side is NaN counts neither way.
    view = DerivedView(_log(d_prob__real=[0.7, float("nan"), 0.4], d_prob__fake=[0.3, 0.2, 0.6]))
    ahead = view.get("d.real_ahead")
    assert ahead is not None
    assert ahead.values[0] == 1.0 and np.isnan(ahead.values[1]) and ahead.values[2] == 0.0
    assert "d.real_ahead" in view.names()


def test_real_ahead_prefers_raw_outputs_when_both_are_logged():
    view = DerivedView(_log(d_out__real=[1.0], d_out__fake=[2.0], d_prob__real=[0.9], d_prob__fake=[0.1]))
    ahead = view.get("d.real_ahead")
    assert ahead is not None and ahead.values.tolist() == [0.0]


def test_no_sources_no_derived_series():
    view = DerivedView(_log(loss__d=[1.0, 2.0]))
    assert view.get("d.real_ahead") is None and view.get("d.gap") is None
    assert "d.real_ahead" not in view.names()


def test_a_view_derives_each_series_once_and_hands_it_out_read_only():
    view = DerivedView(_log(d_out__real=[1.0, 2.0], d_out__fake=[0.0, 3.0]))
    first = view.get("d.real_ahead")
    assert first is not None and view.get("d.real_ahead") is first
    with pytest.raises(ValueError):
        first.values[0] = 0.5  # shared by every rule that asks: nobody may change it for the others


def test_derived_points_keep_the_earlier_first_nonfinite_step_of_their_sources():
    log = SignalLog(capacity=16)
    for step in range(64):
        log.record(step, {"d_out.real": float("nan") if step >= 41 else 1.0, "d_out.fake": float("inf") if step >= 45 else 0.0})
    view = DerivedView(log).get("d.real_ahead")
    assert view is not None and view.first_nonfinite is not None
    bad = view.nonfinite > 0
    assert view.steps[bad][0] > 41 and view.first_nonfinite[bad][0] == 41
    assert not view.first_nonfinite.flags.writeable


def test_d_accuracy_from_the_mean_signs_a_log_gives():
    # StyleGAN2-ADA logs Loss/signs/real and /fake: the mean sign of D's logits on each side.
    log = SignalLog()
    for step, (real, fake) in enumerate([(1.0, -1.0), (0.0, 0.0), (0.5, -0.5), (-1.0, 1.0)]):
        log.record(step, {"d_sign.real": real, "d_sign.fake": fake})
    assert DerivedView(log).get("d.acc").values.tolist() == [1.0, 0.5, 0.75, 0.0]
    recorded = SignalLog()
    recorded.record(0, {"d_sign.real": 1.0, "d_sign.fake": -1.0, "d.acc": 0.6})
    assert DerivedView(recorded).get("d.acc").values.tolist() == [0.6]  # a recorded accuracy wins
