"""What the write-back sinks send, shared by the TensorBoard and W&B sinks: each mode's health
as a number, and a finding's title and Markdown text."""

from __future__ import annotations

import math

from ..findings import Finding, ModeState
from ..report import Report

#: Health of a failure mode at a check: 1 = clear (checked, no rule fired); 0 = failing (a rule
#: fired and still holds); 0.5 = a rule fired earlier in the run but no longer holds. A mode that
#: could not be checked (signals missing, run too short) gets no value at all: no point is drawn.
CLEAR, RECOVERED, FAILING = 1.0, 0.5, 0.0


def health(report: Report) -> dict[str, float]:
    """Mode -> health (see CLEAR, RECOVERED, FAILING) for the modes the report could judge."""
    active: dict[str, bool] = {}
    for f in report.findings:
        active[f.mode] = active.get(f.mode, False) or bool(f.active)
    out: dict[str, float] = {}
    for status in report.mode_status:
        if status.state is ModeState.CLEAR:
            out[status.mode] = CLEAR
        elif status.state is ModeState.FAILING:
            out[status.mode] = FAILING if active.get(status.mode, True) else RECOVERED
    for mode, still in active.items():  # a report built without a per-mode status
        out.setdefault(mode, FAILING if still else RECOVERED)
    return out


def confidences(report: Report) -> dict[str, float]:
    """Mode -> the highest confidence among its findings (finite values only)."""
    out: dict[str, float] = {}
    for f in report.findings:
        c = float(f.confidence)
        if math.isfinite(c):
            out[f.mode] = max(c, out.get(f.mode, c))
    return out


def title(finding: Finding) -> str:
    """One line that names the finding: mode, rule and onset."""
    return f"gandoctor: {finding.mode} ({finding.rule} {finding.rule_name}) from step {finding.onset_step}"


def markdown(finding: Finding, max_remedies: int = 3) -> str:
    """The finding as Markdown: onset, confidence, evidence, the top remedies with their sources."""
    from ..reporters.markdown import finding_markdown

    return finding_markdown(finding, max_remedies=max_remedies, heading="####")
