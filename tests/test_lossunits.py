"""D's loss units from a scalar log's own D(x) and D(G(z)) (Jensen bounds of each form)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from gandoctor import RunContext, analyze, infer_from_log
from gandoctor.lossunits import g_loss_takes_both_signs, infer_d_loss_unit, starts_at_hinge_chance
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


CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "corpus"


def first_rows(run: Path, columns: tuple[str, ...], rows: int = 3) -> SignalLog:
    """The first rows of a corpus run's scalar log, ``columns`` only (a log of losses)."""
    names = {"loss_D": "loss.d", "loss_G": "loss.g"}
    log = SignalLog()
    with gzip.open(run / "scalars.csv.gz", "rt") as f:
        for row, _ in zip(csv.DictReader(f), range(rows)):
            log.record(int(row["step"]), {names[c]: float(row[c]) for c in columns})
    return log


@pytest.mark.skipif(not CORPUS.is_dir(), reason="fixtures/corpus is not in this checkout")
@pytest.mark.parametrize("columns", [("loss_D", "loss_G"), ("loss_D",)])
def test_a_hinge_loss_is_told_by_the_first_losses_of_real_runs(columns):
    # Every corpus run, its log cut to the losses: the hinge runs are the only ones that start at
    # hinge's chance, and most of them do (the others' D had learned by the first record).
    told: dict[bool, list[bool]] = {True: [], False: []}
    for oracle in sorted(CORPUS.glob("c*/oracle.json")):
        hinge = json.loads(oracle.read_text())["recipe"]["loss"] == "hinge"
        told[hinge].append(starts_at_hinge_chance(first_rows(oracle.parent, columns)))
    assert len(told[True]) >= 20 and len(told[False]) >= 100
    assert not any(told[False])
    assert sum(told[True]) >= 0.4 * len(told[True])


def all_rows(run: Path) -> SignalLog:
    """A corpus run's scalar log cut to its two losses."""
    log = SignalLog(capacity=1 << 14)
    with gzip.open(run / "scalars.csv.gz", "rt") as f:
        for row in csv.DictReader(f):
            log.record(int(row["step"]), {"loss.d": float(row["loss_D"]), "loss.g": float(row["loss_G"])})
    return log


@pytest.mark.skipif(not CORPUS.is_dir(), reason="fixtures/corpus is not in this checkout")
def test_a_g_loss_of_both_signs_over_a_d_loss_never_negative_is_a_hinge_loss_on_real_runs():
    # G's loss -D(G(z)) takes both signs; NS BCE and least squares keep it positive, minimax BCE
    # negative; a WGAN critic's D loss goes negative. Of the corpus: hinge runs, and one WGAN-GP
    # whose penalty kept D's loss positive (its D loss has no BCE unit either).
    told: dict[str, list[bool]] = {}
    for oracle in sorted(CORPUS.glob("c*/oracle.json")):
        loss = json.loads(oracle.read_text())["recipe"]["loss"]
        told.setdefault(loss, []).append(g_loss_takes_both_signs(all_rows(oracle.parent)))
    assert len(told["hinge"]) >= 20 and sum(told["hinge"]) >= 0.5 * len(told["hinge"])
    assert sum(told["wgan-gp"]) <= 1 and not any(v for loss, flags in told.items() if loss not in ("hinge", "wgan-gp") for v in flags)


def test_biggan_s_hinge_logs_are_read_as_hinge_though_d_had_learnt_by_the_first_record():
    report = analyze(Path(__file__).resolve().parent.parent / "fixtures" / "public" / "biggan_pytorch_lr5")
    assert "hinge_loss" in report.context.flags and "GD207" not in report.rules_checked_codes


def test_a_hinge_start_marks_the_log_unless_the_form_is_known():
    log = SignalLog()
    log.record(0, {"loss.d": 2.01, "loss.g": -0.03})
    log.record(5, {"loss.d": 1.62, "loss.g": 0.4})
    assert "hinge_loss" in infer_from_log(log, RunContext()).flags
    assert "hinge_loss" not in infer_from_log(log, RunContext(frozenset(), {"d_output": "auto"})).flags
    bce = SignalLog()
    bce.record(0, {"loss.d": 2.01, "loss.g": 0.69})  # G's loss at BCE's chance: not a hinge start
    assert not starts_at_hinge_chance(bce)
    late = SignalLog()
    late.record(100, {"loss.d": 2.01})  # D's loss alone, first printed after D has trained: says nothing
    assert not starts_at_hinge_chance(late)
