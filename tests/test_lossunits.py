"""D's loss units from a scalar log's own D(x) and D(G(z)) (Jensen bounds of each form)."""

from __future__ import annotations

import numpy as np
import pytest

from gandoctor import RunContext, infer_from_log
from gandoctor.lossunits import infer_d_loss_unit
from gandoctor.signals import SignalLog


def simulated_log(form: str, steps: int = 300, seed: int = 0, losses_only: bool = False) -> SignalLog:
    """Batches of D's outputs (unsure at first, more confident later), the D and G losses of
    ``form`` on them and their means, as a training script logs loss_D, loss_G, D_x and D_G_z."""
    rng = np.random.default_rng(seed)
    log = SignalLog()
    for step in range(steps):
        sure = 1 + 6 * step / steps
        real = rng.beta(sure, 1.5, 64)
        fake = rng.beta(1.5, sure, 64)
        eps = 1e-7
        bce = -np.log(real + eps).mean() - np.log(1 - fake + eps).mean()
        ls01 = ((real - 1) ** 2).mean() + (fake**2).mean()
        loss = {"bce_sum": bce, "bce_mean": bce / 2, "ls01_half": ls01 / 2, "ls01_sum": ls01, "minimax": bce}[form]
        g_loss = {"ls01_half": ((fake - 1) ** 2).mean(), "ls01_sum": ((fake - 1) ** 2).mean(), "minimax": np.log(1 - fake + eps).mean()}.get(form, -np.log(fake + eps).mean())
        values = {"loss.d": loss, "loss.g": g_loss}
        if not losses_only:
            values |= {"d_prob.real": real.mean(), "d_prob.fake": fake.mean()}
        log.record(step, values)
    return log


@pytest.mark.parametrize(("form", "unit"), [("bce_sum", None), ("bce_mean", None), ("ls01_half", 0.25), ("ls01_sum", 0.5)])
def test_each_form_s_units_follow_from_its_bounds(form, unit):
    assert infer_d_loss_unit(simulated_log(form)) == unit


@pytest.mark.parametrize(("form", "unit"), [("bce_sum", None), ("bce_mean", None), ("minimax", None), ("ls01_half", 0.25), ("ls01_sum", None)])
def test_losses_alone_tell_least_squares_towards_one_and_zero(form, unit):
    # D's loss bounds what D makes of the fakes, and so G's loss: too low a G loss for BCE is 1/0
    # least squares, taken as halved. Summed, D's loss is twice as high and these G losses no
    # longer fall under the other forms' bounds: nothing is inferred (units as calibrated).
    assert infer_d_loss_unit(simulated_log(form, losses_only=True)) == unit


def test_scores_and_short_or_partial_logs_say_nothing():
    log = SignalLog()
    for step in range(300):  # hinge scores: outside [0, 1]
        log.record(step, {"loss.d": 0.3, "d_prob.real": 2.0, "d_prob.fake": -2.0})
    assert infer_d_loss_unit(log) is None
    assert infer_d_loss_unit(simulated_log("ls01_half", steps=5)) is None
    losses_only = SignalLog()
    for step in range(300):
        losses_only.record(step, {"loss.d": 0.12})
    assert infer_d_loss_unit(losses_only) is None


def test_a_declared_or_recorded_unit_wins_over_the_inferred_one():
    log = simulated_log("ls01_half")
    assert infer_from_log(log, RunContext()).values == {"d_loss_unit": 0.25, "d_loss_form": "ls01"}
    assert infer_from_log(log, RunContext(frozenset(), {"d_loss_unit": 1.0})).values == {}
    # a Doctor's own log: the live form (or none) is what it recorded
    assert infer_from_log(log, RunContext(frozenset(), {"d_output": "auto"})).values == {}
