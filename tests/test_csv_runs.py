"""Logs users already have: a plain CSV of losses exported from real recorded runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gandoctor.diagnose import analyze
from gandoctor.readers import read_run

from .test_readers_console import _tiny_gan_loop

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


@pytest.mark.skipif(not (CORPUS / "c011-d_strong-grid-mlp").is_dir(), reason="fixtures/corpus is not in this checkout")
def test_a_finding_that_rests_on_scalars_alone_states_its_caveat_in_every_report(tmp_path):
    from gandoctor.reporters.html import render_html
    from gandoctor.reporters.junit import render_junit
    from gandoctor.reporters.markdown import render_markdown

    # A recorded MLP run whose D won outright: its CSV shows D at the loss floor, no samples.
    # GD305 infers collapse from that; the report says what the inference cannot rule out.
    report = analyze(CORPUS / "c011-d_strong-grid-mlp" / "scalars.csv.gz")
    collapse = next(f for f in report.findings if f.mode == "mode_collapse")
    assert collapse.rule == "GD305" and "g_batchnorm" in collapse.caveat
    assert f"caveat: {collapse.caveat[:40]}" in " ".join(report.render_text(width=400).split())
    as_dict = next(f for f in report.to_dict()["findings"] if f["mode"] == "mode_collapse")
    assert as_dict["caveat"] == collapse.caveat
    assert "> **Caveat:** Inferred" in render_markdown(report)
    assert "caveat: Inferred" in render_junit(report)
    assert '<p class="caveat"><b>Caveat:</b> Inferred' in render_html(report)
    # D's own dominance is measured on its outputs: no caveat there.
    assert all(not f.caveat for f in report.findings if f.mode == "discriminator_dominance")
    # Told that G has BatchNorm, the inference is not made.
    told = analyze(CORPUS / "c011-d_strong-grid-mlp" / "scalars.csv.gz", uses=["g_batchnorm"])
    assert "mode_collapse" not in told.modes


@pytest.mark.skipif(not (CORPUS / "c087-weak_d-grid-mlp").is_dir(), reason="fixtures/corpus is not in this checkout")
def test_g_dominance_read_from_scalars_says_a_converged_run_reads_the_same():
    report = analyze(CORPUS / "c087-weak_d-grid-mlp" / "scalars.csv.gz")
    finding = next(f for f in report.findings if f.mode == "generator_dominance")
    assert finding.rule in ("GD203", "GD206") and "converged fully" in finding.caveat


@pytest.mark.skipif(not (CORPUS / "c011-d_strong-grid-mlp").is_dir(), reason="fixtures/corpus is not in this checkout")
def test_a_recorded_run_whose_d_loss_is_logged_in_two_parts_gets_the_same_diagnosis(tmp_path):
    # The recorded CSV's D loss (BCE on the reals plus BCE on the fakes) written as two columns,
    # as the DCGAN tutorial's errD_real / errD_fake: the same D dominance at the same onset.
    import gzip

    source = CORPUS / "c011-d_strong-grid-mlp" / "scalars.csv.gz"
    with gzip.open(source, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    split = tmp_path / "split.csv"
    with split.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "errD_real", "errD_fake", "errG"])
        for row in rows:
            d = float(row["loss_D"])
            writer.writerow([row["step"], f"{0.4 * d:.6g}", f"{0.6 * d:.6g}", row["loss_G"]])
    whole = tmp_path / "whole.csv"
    with whole.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "errD", "errG"])
        for row in rows:
            writer.writerow([row["step"], row["loss_D"], row["loss_G"]])
    from_parts, from_total = analyze(split), analyze(whole)
    assert "discriminator_dominance" in from_total.modes
    assert [(f.mode, f.onset_step) for f in from_parts.findings] == [(f.mode, f.onset_step) for f in from_total.findings]


def _bce_probability_gan_console(lr: float, steps: int = 300) -> str:
    """The DCGAN example's loop (D ends in a Sigmoid, nn.BCELoss on its probabilities, whose log
    PyTorch clamps at -100) at learning rate ``lr`` for both players, printing
    yunjey/pytorch-tutorial's GAN line."""
    lines = []

    def line(epoch, epochs, i, batches, errD, errG, D_x, D_G_z1, D_G_z2):
        lines.append(f"Epoch [{epoch}/{epochs}], Step [{i + 1}/{batches}], d_loss: {errD:.4f}, g_loss: {errG:.4f}, "
                     f"D(x): {D_x:.2f}, D(G(z)): {D_G_z1:.2f}")

    _tiny_gan_loop(line, epochs=1, batches=steps, lr_d=lr, lr_g=lr)
    return "\n".join(lines) + "\n"


def test_a_bce_d_saturated_at_the_clamp_is_vanishing_gradients_from_its_console_log(tmp_path):
    # At lr 5 the sigmoid saturates within steps: D's loss sits at nn.BCELoss's clamp (100) with D(x)
    # and D(G(z)) at 1.00, where no gradient flows back; at the tutorial's lr the same loop stays quiet.
    saturated, healthy = tmp_path / "lr5.log", tmp_path / "lr2e-4.log"
    saturated.write_text(_bce_probability_gan_console(5.0))
    healthy.write_text(_bce_probability_gan_console(2e-4))
    found = {f.mode: f for f in analyze(saturated).findings}
    assert "GD405" in (found["vanishing_gradients"].rule, *found["vanishing_gradients"].also_fired)
    assert not any("GD405" in (f.rule, *f.also_fired) for f in analyze(healthy).findings)
