"""The samples' end state beside the verdict: a healthy verdict on a G that never reached the data
says so (real corpus runs, labelled healthy by the corpus oracle, whose quality says which G
learned)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gandoctor import analyze
from gandoctor.endstate import FAR_PRECISION, summarise_samples
from gandoctor.remedies import MODES
from gandoctor.reporters._modes import samples_line
from gandoctor.reporters.gate import GateExit, judge
from gandoctor.reporters.markdown import render_markdown
from gandoctor.signals import SignalLog

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "corpus"
# Healthy by the oracle's labels; G never reached the data (the oracle's quality 0.00-0.04 over
# the last checks) and G learned the ring (0.58-0.69).
NEVER_LEARNED = CORPUS / "c002-healthy-random2d-sn_d"
LEARNED = CORPUS / "c038-healthy-ring-mlp"


def _oracle_quality_at_end(run: Path, first_step: int) -> float:
    timeline = json.loads((run / "oracle.json").read_text())["timeline"]
    return float(np.median([c["quality"] for c in timeline if c["step"] >= first_step]))


def test_summary_reads_the_last_fifth_of_the_measured_steps() -> None:
    log = SignalLog()
    steps = np.arange(0, 1001, 50)
    log.extend("feat.precision", steps, np.where(steps >= 800, 0.02, 0.9))
    log.extend("feat.coverage_ratio", steps, np.where(steps >= 800, 0.05, 0.8))
    summary = summarise_samples(log)
    assert summary is not None
    assert (summary.first_step, summary.last_step) == (800, 1000)
    assert summary.precision == 0.02 and summary.coverage_ratio == 0.05
    assert summary.diversity_ratio is None  # not recorded: not invented
    assert summary.far_from_data


def test_a_g_a_little_nearer_that_covers_little_is_far_too_and_precise_few_mode_samples_are_not() -> None:
    # pytorch-ignite's DCGAN at D's lr x10: precision 0.19, coverage 0.06, no digit-like sample.
    def summary(precision: float, coverage: float):  # type: ignore[no-untyped-def]
        log = SignalLog()
        log.extend("feat.precision", np.arange(10), np.full(10, precision))
        log.extend("feat.coverage_ratio", np.arange(10), np.full(10, coverage))
        return summarise_samples(log)

    assert summary(0.19, 0.06).far_from_data
    assert not summary(0.19, 0.3).far_from_data
    assert not summary(0.8, 0.03).far_from_data  # precise samples on few modes: collapse, not far


def test_no_sample_statistics_no_summary() -> None:
    log = SignalLog()
    log.extend("loss.d", np.arange(10), np.ones(10))
    assert summarise_samples(log) is None


def test_a_healthy_verdict_on_a_g_that_never_reached_the_data_says_so() -> None:
    report = analyze(NEVER_LEARNED)
    assert report.verdict == "healthy" and report.samples is not None
    assert report.samples.far_from_data and report.samples.precision is not None
    assert report.samples.precision < FAR_PRECISION
    assert _oracle_quality_at_end(NEVER_LEARNED, report.samples.first_step) < 0.1  # the oracle agrees
    text = report.render_text(width=200)
    assert "HEALTHY" in text and "still far from the data" in text
    assert f"over steps {report.samples.first_step}..{report.samples.last_step}" in text
    result = judge(report, MODES)
    assert result.exit_code is GateExit.PASS and "still far from the data" in result.line  # a note, not a failure
    assert "still far from the data" in render_markdown(report)
    data = report.to_dict()
    assert data["samples"]["far_from_data"] is True
    assert data["samples"]["first_step"] == report.samples.first_step
    json.dumps(data, allow_nan=False)


def test_a_learned_g_gets_no_note() -> None:
    report = analyze(LEARNED)
    assert report.verdict == "healthy" and report.samples is not None
    assert not report.samples.far_from_data
    assert _oracle_quality_at_end(LEARNED, report.samples.first_step) > 0.5
    text = report.render_text(width=200)
    assert "still far from the data" not in text
    assert "samples over steps" in text  # the end state is shown all the same
    assert "still far from the data" not in judge(report, MODES).line
    assert report.to_dict()["samples"]["far_from_data"] is False


def test_a_log_without_sample_statistics_has_no_samples_entry() -> None:
    report = analyze(CORPUS / "c002-healthy-random2d-sn_d" / "scalars.csv.gz")
    assert report.samples is None
    assert report.to_dict()["samples"] is None
    assert "samples over steps" not in report.render_text(width=200)


def test_the_table_over_several_runs_keeps_the_note_beside_healthy(capsys, monkeypatch) -> None:
    from gandoctor.cli import main

    # CI's checkout sits under a longer path than a developer's; at 80 columns the full
    # paths once squeezed the run names out of the table.
    monkeypatch.setenv("COLUMNS", "80")
    main(["analyze", str(NEVER_LEARNED), str(LEARNED)])
    table = capsys.readouterr().out.split("verdict")[-1].splitlines()
    (never,), (learned,) = ([line for line in table if run.name[:4] in line] for run in (NEVER_LEARNED, LEARNED))
    assert "healthy (samples far from the data)" in never
    assert "healthy" in learned and "far from" not in learned
    assert never.split()[0] == NEVER_LEARNED.name  # named relative to the folder the runs share


def test_precision_no_higher_than_a_blurs_is_said_beside_the_number() -> None:
    # A DCGAN with BatchNorm on 8x8 digits, healthy by its labels but with no digit-like sample by
    # the oracle over its last fifth: precision 0.87 where a blur of the data reads 0.93.
    blurred = CORPUS / "c066-healthy-digits8-dcgan_bn"
    samples = analyze(blurred).samples
    assert samples is not None and samples.precision is not None and samples.precision_null is not None
    assert samples.precision <= samples.precision_null and not samples.precision_vouches
    assert _oracle_quality_at_end(blurred, samples.first_step) < 0.1
    line = samples_line(samples)
    assert "a blur of the data reads" in line and "precision cannot tell these samples from a blur" in line
    learned = analyze(LEARNED).samples
    assert learned is not None and learned.precision_vouches
    assert "cannot tell" not in samples_line(learned)
    assert _oracle_quality_at_end(LEARNED, learned.first_step) > 0.5


def test_an_unhealthy_verdict_says_too_where_g_s_samples_end_far_from_the_data(capsys) -> None:
    # jalola's WGAN-GP without its penalty: 98-100% of samples one digit, collapse "clear" (the
    # collapse rules ask for samples near the data), and the far-from-the-data note was shown
    # beside HEALTHY verdicts only. A corpus run found G-dominated whose G never reached the data:
    from gandoctor.cli import main
    from gandoctor.reporters.html import render_html

    run = CORPUS / "c000-weak_d-grid-mlp"
    report = analyze(run)
    assert report.findings and report.samples is not None and report.samples.far_from_data
    main(["analyze", str(run)])
    banner = " ".join(capsys.readouterr().out.split("mode ")[0].split())
    assert "UNHEALTHY" in banner and "G's samples are still far from the data" in banner
    assert "G&#x27;s samples are still far from the data" in render_html(report) or "G's samples are still far from the data" in render_html(report)
