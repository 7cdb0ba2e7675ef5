"""Logs users already have: a plain CSV of losses exported from real recorded runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gandoctor.diagnose import analyze
from gandoctor.readers import read_run

RUNS = Path(__file__).resolve().parent.parent / "fixtures" / "runs"


def export_losses(run: str, path: Path) -> Path:
    data = read_run(RUNS / run)
    d, g = data.signals.get("loss.d"), data.signals.get("loss.g")
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss_D", "loss_G"])
        for step, ld, lg in zip(d.steps, d.values, g.values):
            writer.writerow([int(step), f"{ld:.6g}", f"{lg:.6g}"])
    return path


@pytest.mark.parametrize("run", ["ddom_digits_s0", "nonconv_digits_adam_s0"])
def test_loss_only_csv_of_a_dominated_run_is_flagged(tmp_path, run):
    report = analyze(export_losses(run, tmp_path / "losses.csv"))
    assert "discriminator_dominance" in report.modes
    # GD102 fires (the finding's headline may be GD106, the same floor held to the end)
    assert any("GD102" in (f.rule, *f.also_fired) for f in report.findings)


@pytest.mark.parametrize("run", ["healthy_ring8_s0", "healthy_digits_mlp_s0", "healthy_grid25_s1"])
def test_loss_only_csv_of_a_healthy_run_stays_quiet_and_says_what_it_could_not_check(tmp_path, run):
    report = analyze(export_losses(run, tmp_path / "losses.csv"))
    assert report.verdict == "healthy"
    assert report.rules_checked < report.rules_total
    status = {s.mode: s for s in report.mode_status}
    assert status["mode_collapse"].state.value == "not_checked"  # a loss-only log cannot show collapse
    assert "not checked: needs" in report.render_text()


CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "corpus"


@pytest.mark.skipif(not (CORPUS / "c077-g_lr_high-ring-mlp").is_dir(), reason="fixtures/corpus is not in this checkout")
def test_a_critic_s_scalar_log_says_in_one_line_why_modes_were_not_checked():
    # A WGAN-GP run's six scalars: most D dominance rules do not apply to a critic (its negative
    # loss marks it); GD107 does, but needs D's held-out rank and accuracy, which the live doctor
    # records and a scalar log lacks: the status names those. Collapse needs the sample side.
    report = analyze(CORPUS / "c077-g_lr_high-ring-mlp" / "scalars.csv.gz")
    assert "critic" in report.context.flags
    status = {s.mode: s for s in report.mode_status}
    dominance = status["discriminator_dominance"]
    assert dominance.describe().startswith("not checked: needs d.acc (from D's outputs on batches it has not trained on")
    assert dominance.not_applicable == ("critic",) and set(dominance.missing) == {"d.acc", "d.auc"}
    collapse = status["mode_collapse"]
    assert collapse.describe().startswith("not checked: needs sample features (feat.*, latent.*")
    assert "feat.coverage_ratio" in collapse.missing  # the full list stays in the data (and the JSON)
    # The sign of D(x) - D(G(z)) reads a critic's scores: G dominance and non-convergence are judged.
    assert status["generator_dominance"].state.value != "not_checked"
    assert status["non_convergence"].state.value != "not_checked"
