"""Markdown for a CI job summary (GitHub's ``$GITHUB_STEP_SUMMARY`` and the like): the verdict,
a status table of the six modes, then each finding with its evidence and ranked remedies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..findings import Finding
from ..report import Report
from ._modes import ending_note, failing_detail_of, far_from_data_note, first_sign_aside, mode_statuses, samples_line
from .json import finding_to_dict

_ICON = {"failing": "❌ failing", "clear": "✅ clear", "not_checked": "⚪ not checked"}


def _cell(text: Any) -> str:
    # A pipe or a newline would break the table row.
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _finding_lines(f: Mapping[str, Any], max_remedies: int, heading: str = "###") -> list[str]:
    out = [f"{heading} {f['mode']}: {f['rule']} {f['rule_name']}", "",
           (f"{f['summary']} Onset step **{f['onset_step']}**"
            + first_sign_aside(f)
            + f", confidence {f['confidence']:.2f}"
            f" ({'still active' if f['active'] else 'last held at step ' + str(f['last_step'])})."), ""]
    if f.get("caveat"):
        out += [f"> **Caveat:** {f['caveat']}", ""]
    out += ["| evidence | value | rule |", "|---|---|---|"]
    for c in f["conditions"]:
        mark = "✓" if c["held"] else "·"
        out.append(f"| {mark} `{c['stat']}({c['signal']}, {c['window']})` | {_num(c['value'])} | {c['op']} {_num(c['threshold'])} |")
    if f["remedies"]:
        out += ["", "Remedies, best first:", ""]
        for i, r in enumerate(f["remedies"][:max_remedies], 1):
            out.append(f"{i}. **{r['title']}**: {r['action']} _(source: {r['source']}, “{r['section']}”)_")
    return out


def finding_markdown(finding: Finding, max_remedies: int = 3, heading: str = "###") -> str:
    """One finding as Markdown: mode, rule, onset, confidence, evidence table, top remedies with
    their sources (what the write-back sinks send to TensorBoard and W&B)."""
    return "\n".join(_finding_lines(finding_to_dict(finding), max_remedies, heading)) + "\n"


def render_markdown(report: Report, max_remedies: int = 3) -> str:
    data = report.to_dict()
    steps = data.get("steps", {})
    span = f"steps {steps.get('first')}–{steps.get('last')}" if steps.get("first") is not None else "no steps recorded"
    head = "healthy" if data["verdict"] == "healthy" else "unhealthy: " + ", ".join(f["mode"] for f in data["findings"])
    out = [f"## gandoctor: {head}", "", f"`{_cell(data.get('source') or 'live run')}` · {span} · {data['rules_checked']} rules checked", ""]
    note = far_from_data_note(report.samples) if data["verdict"] == "healthy" else ""
    if note:
        out += [f"> **Healthy, {note}.**", ""]
    if ended := ending_note(report):
        out += [f"> **{ended[0].upper()}{ended[1:]}.**", ""]
    if report.samples is not None:
        line = samples_line(report.samples)
        out += [line[0].upper() + line[1:] + ".", ""]
    out += ["| mode | status | detail |", "|---|---|---|"]
    for s in mode_statuses(report, data):
        detail = " ".join(failing_detail_of(s.finding)) if s.status == "failing" and s.finding is not None else s.reason
        out.append(f"| {s.mode} | {_ICON[s.status]} | {_cell(detail)} |")
    for f in data["findings"]:
        out += [""] + _finding_lines(f, max_remedies)
    cleared = [a for a in data.get("alerts", []) if not a["holds_at_end"]]
    if cleared:
        out += ["", "Raised during training, not holding at the last step:", ""]
        out += [f"- {a['mode']} ({a['rule']}) alerted at step {a['seen_at']}, onset {a['onset_step']}" for a in cleared]
    if data.get("warnings"):
        out += ["", "Warnings:", ""] + [f"- {_cell(w)}" for w in data["warnings"]]
    out.append("")
    out.append("✓ = the condition held where the finding was established; · = it did not.")
    return "\n".join(out) + "\n"
