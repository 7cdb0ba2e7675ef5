"""Faults injected into each part of gandoctor are contained; the training it watches is untouched.

Each test trains the same seeded GAN with and without a doctor whose part is broken, and checks
the weights are bit-identical, the fault is reported once, and the rest keeps working.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from gandoctor import windows as stats
from gandoctor.probes import Schedule

from .test_probes import state, train

FAST = Schedule(d_probe_every=2, feature_every=2, sample_stats_every=10, weight_every=5, flush_every=5)
CUSTOM_RULE = """
code = "GD900"
name = "never-arrives"
mode = "mode_collapse"
summary = "needs a signal no probe writes"
why = "fault injection"
[[conditions]]
signal = "user.never_written"
stat = "median"
op = ">"
threshold = 0.5
"""


def _same_training(doctor_kwargs: dict, steps: int = 40):
    G0, D0, _ = train(steps, None)
    G1, D1, doctor = train(steps, {"schedule": FAST, **doctor_kwargs})
    for a, b in zip(state(G0, D0), state(G1, D1), strict=True):
        assert torch.equal(a, b)
    return doctor


def test_feature_extractor_returning_nan_is_data_not_a_crash():
    doctor = _same_training({"features": lambda x: torch.full((x.shape[0], 3), float("nan")), "strict": True})
    report = doctor.report()
    assert "feat.coverage" not in report.signals  # nothing computed from NaN features
    assert doctor.signals.get("feat.nonfinite") is not None


def test_rule_whose_signal_never_arrives_is_skipped_with_its_reason(tmp_path):
    (tmp_path / "GD900-never.toml").write_text(CUSTOM_RULE)
    doctor = _same_training({"rules_dirs": [tmp_path], "strict": True})
    report = doctor.report()
    skipped = {s.rule: s for s in report.skipped_rules}
    assert skipped["GD900"].missing == ("user.never_written",)
    assert report.rules_checked == report.rules_total - len(report.skipped_rules)


def test_a_diagnosis_that_cannot_run_is_not_called_healthy(tmp_path, caplog):
    """A rule file with a mistyped key makes report() fail: the report says so and every mode is
    unchecked (verdict "unknown"); it was HEALTHY, on nothing, while `analyze` of the same run
    (without that file) said exploding."""
    (tmp_path / "GD900-typo.toml").write_text(CUSTOM_RULE.replace("threshold = 0.5", "treshold = 0.5"))
    doctor = _same_training({"rules_dirs": [tmp_path]})
    with caplog.at_level(logging.WARNING):
        report = doctor.report()
    assert report.verdict == "unknown" and not report.findings
    assert any("diagnosis failed" in w and "treshold" in w for w in report.warnings)
    assert {s.describe() for s in report.mode_status} == {"not checked: evaluating its rules failed (see the warnings)"}
    text = report.render_text(width=200)
    assert "HEALTHY" not in text and "diagnosis failed" in text
    assert "report" in doctor.disabled_probes  # said once, and training was never touched (bit-identical above)


def test_unwritable_log_dir_disables_the_writer_only(tmp_path, caplog):
    # A log_dir whose parent is a file cannot be created, for root too (like a read-only mount).
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        doctor = _same_training({"log_dir": blocker / "run"})
    assert "writer" in doctor.disabled_probes
    assert sum("probe 'writer' failed" in r.getMessage() for r in caplog.records) == 1
    assert doctor.report().signals


def test_writer_that_fails_mid_run_is_switched_off_and_training_goes_on(tmp_path, caplog, monkeypatch):
    # Works as root too: the file system "fills up" after the first flush.
    from gandoctor import runlog

    calls = {"n": 0}
    original = runlog.RunLogWriter.flush

    def failing_flush(self):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(28, "No space left on device")
        original(self)

    monkeypatch.setattr(runlog.RunLogWriter, "flush", failing_flush)
    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        # The writer writes to the OS every 200 records (or 2 s): 250 steps see one such write.
        doctor = _same_training({"log_dir": tmp_path / "run"}, steps=250)
    assert "writer" in doctor.disabled_probes
    assert sum("No space left" in r.getMessage() for r in caplog.records) == 1
    # The sample grid, written to the run log, is not blamed for the full disk (it ran after it).
    assert "sample_grid" not in doctor.disabled_probes
    report = doctor.report()
    assert "loss.d" in report.signals and report.verdict in ("healthy", "unhealthy")


def test_statistic_that_raises_skips_its_rules_not_the_report(monkeypatch, caplog):
    doctor = _same_training({})
    real_evaluate = stats.evaluate

    def broken(view, stat_name, window, grid, level=None):
        if stat_name == "excess_variation":
            raise FloatingPointError("injected")
        return real_evaluate(view, stat_name, window, grid, level)

    monkeypatch.setattr(stats, "evaluate", broken)
    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        report = doctor.report()
    reasons = {s.rule: s.detail for s in report.skipped_rules}
    assert "injected" in reasons["GD602"]  # (GD601 reads "std", but it skips this test's G with BatchNorm)
    assert report.rules_checked >= 1


def test_statistic_that_raises_in_strict_mode_propagates(monkeypatch):
    doctor = _same_training({"strict": True}, steps=10)
    monkeypatch.setattr(stats, "evaluate", lambda *a, **k: (_ for _ in ()).throw(FloatingPointError("injected")))
    with pytest.raises(FloatingPointError):
        doctor.report()


def test_d_forward_that_raises_is_contained(caplog):
    def bad_forward(d: nn.Module, x: torch.Tensor, y):
        raise RuntimeError("D forward exploded")

    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        doctor = _same_training({"d_forward": bad_forward})
    assert "d_probe" in doctor.disabled_probes
    assert sum("D forward exploded" in r.getMessage() for r in caplog.records) == 1


def test_gradient_hook_that_fails_leaves_optimizer_step_intact(monkeypatch):
    from gandoctor.probes import gradients

    monkeypatch.setattr(gradients, "host_norms", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("norms broke")))
    doctor = _same_training({})
    assert "grads.d" in doctor.disabled_probes and "grads.g" in doctor.disabled_probes


def test_a_probe_whose_idle_reason_raises_is_switched_off_not_the_flush(monkeypatch):
    import gandoctor

    from .test_latents import CondG

    doctor = gandoctor.Doctor(CondG(), nn.Linear(2, 1), schedule=Schedule(latent_every=2, flush_every=1))

    def broken() -> str:
        raise RuntimeError("idle reason broke")

    monkeypatch.setattr(doctor._latents, "idle_reason", broken)
    for _ in range(10):
        doctor.step(d_loss=0.5)
    assert "idle reason broke" in doctor.disabled_probes["latents"]
    assert "flush" not in doctor.disabled_probes
    assert len(doctor.signals.get("loss.d")) == 10  # every step still recorded
