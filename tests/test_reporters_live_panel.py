"""The live panel: each mode's status, redrawn in place after each live check."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from gandoctor.diagnose import analyze
from gandoctor.reporters.live_panel import LivePanel

RUN = Path(__file__).resolve().parent.parent / "fixtures" / "runs" / "explode_grid25_sgd_s0"


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, color_system=None, width=110), out


def test_the_panel_shows_every_mode_as_failing_clear_or_not_checked():
    report = analyze(RUN)
    assert report.findings, "the fixture must fail a mode for this test to mean anything"
    console, out = _console()
    with LivePanel(console) as panel:
        panel.on_finding(report.findings[0], 900)
        panel.on_check(report, 900)
    text = out.getvalue()
    finding = report.findings[0]
    assert "gandoctor · live · step 900" in text and "UNHEALTHY" in text
    assert f"{finding.rule} {finding.rule_name} from step {finding.onset_step}" in text
    assert f"new: {finding.mode} ({finding.rule})" in text
    label = {"failing": "failing", "clear": "clear", "not_checked": "not checked"}
    for status in report.mode_status:
        row = next(line for line in text.splitlines() if f" {status.mode} " in line)
        assert f" {label[status.state.value]} " in row, (status, row)
    # the run is NaN from step 27 on: one mode failing, the others not checked (nothing finite to judge)
    assert {s.state.value for s in report.mode_status} == {"failing", "not_checked"}


def test_it_redraws_in_place_and_gives_the_terminal_back_on_close():
    report = analyze(RUN)
    console, out = _console()
    panel = LivePanel(console)
    panel.on_check(report, 100)
    panel.on_check(report, 200)
    assert panel.renders == 2 and "step 200" in out.getvalue()
    assert "\x1b[" in out.getvalue()  # cursor movement: the second draw replaces the first
    assert "\x1b[?25l" in out.getvalue() and "\x1b[?25h" not in out.getvalue()  # cursor hidden while drawn
    panel.close()
    panel.close()  # twice is harmless
    assert out.getvalue().rstrip().endswith("\x1b[?25h")  # and shown again
