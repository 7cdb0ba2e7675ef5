"""Markdown for CI job summaries."""

from __future__ import annotations

from pathlib import Path

import gandoctor
from gandoctor.findings import Finding
from gandoctor.report import Report
from gandoctor.reporters.markdown import render_markdown

RUNS = Path(__file__).resolve().parent.parent / "fixtures" / "runs"


def test_failing_run():
    report = gandoctor.analyze(RUNS / "ddom_ring8_s0")
    md = render_markdown(report)
    lines = md.splitlines()
    assert lines[0] == "## gandoctor: unhealthy: discriminator_dominance, mode_collapse"
    rows = [line for line in lines if line.startswith("| ") and "|---" not in line]
    status = {row.split("|")[1].strip(): row.split("|")[2].strip() for row in rows if row.split("|")[1].strip() in gandoctor.MODES}
    assert status == {m: ("❌ failing" if m in report.modes else "✅ clear") for m in gandoctor.MODES}
    for f in report.findings:
        assert f"### {f.mode}: {f.rule} {f.rule_name}" in md
        assert f"Onset step **{f.onset_step}**" in md
        assert f"| {f.mode} | ❌ failing | from step {f.onset_step} ({f.rule}, confidence {f.confidence:.2f}) |" in md
        assert f"1. **{f.remedies[0].title}**" in md
        assert "4. **" not in md.split(f"### {f.mode}")[1].split("###")[0]  # three remedies at most


def test_healthy_run():
    md = render_markdown(gandoctor.analyze(RUNS / "healthy_ring8_s0"))
    assert md.startswith("## gandoctor: healthy\n")
    assert "❌" not in md and "###" not in md


def test_pipes_in_text_do_not_break_the_table():
    log = gandoctor.SignalLog()
    for step in range(50):
        log.record(step, {"loss.d": 0.7})
    report = gandoctor.diagnose(log, gandoctor.load_rules(), gandoctor.RunContext(), source="runs/a|b")
    md = render_markdown(report)
    assert "`runs/a\\|b`" in md
    for line in md.splitlines():
        if line.startswith("| mode_collapse"):
            assert line.count("|") - line.count("\\|") == 4


def test_a_first_sign_is_named_beside_the_onset():
    f = Finding("exploding_gradients", "GD501", "non-finite-values", "NaN.", 260, 265, True, 0.9, {}, (), first_sign_step=230, first_sign_rule="GD507")
    assert "Onset step **260** (first sign at step 230, GD507), confidence 0.90" in render_markdown(Report((f,)))
