"""Per-mode status shared by the HTML, JUnit and markdown reporters: the report's own
``mode_status`` (computed once, by the engine), with each failing mode's finding attached.

A report built by hand without a per-mode status shows its findings' modes as failing and says
nothing about the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..report import Report

Status = Literal["failing", "clear", "not_checked"]


@dataclass(frozen=True)
class ModeStatus:
    mode: str
    status: Status
    reason: str
    finding: Mapping[str, Any] | None  # the finding's to_dict() entry when failing


def failing_detail(onset_step: int | None, rule: str, confidence: float, caveat: str | None) -> tuple[str, str]:
    """A failing mode's detail in two parts, where it began and on what: ``("from step 101",
    "(GD305, confidence 0.60; with a caveat)")``. Every reporter's status table says it so (the
    HTML page links the first part to the finding)."""
    with_caveat = "; with a caveat" if caveat else ""
    return f"from step {onset_step}", f"({rule}, confidence {confidence:.2f}{with_caveat})"


def first_sign(step: int | None, rule: str) -> str:
    """``"first sign at step 230 (GD507)"`` where an earlier rule saw the mode coming before its
    onset (a burst before the first NaN); "" where none did (and in reports of older versions)."""
    return "" if step is None else f"first sign at step {int(step)} ({rule})"


def first_sign_aside(finding: Mapping[str, Any]) -> str:
    """The first sign of a finding's ``to_dict()`` entry as the Markdown and JUnit reports set it
    after the onset: ``" (first sign at step 230, GD507)"``; "" where there is none."""
    step = finding.get("first_sign_step")
    return "" if step is None else f" (first sign at step {step}, {finding.get('first_sign_rule', '')})"


def failing_detail_of(finding: Mapping[str, Any]) -> tuple[str, str]:
    """:func:`failing_detail` of a finding's ``to_dict()`` entry."""
    return failing_detail(finding["onset_step"], finding["rule"], finding["confidence"], finding.get("caveat"))


def mode_statuses(report: Report, data: Mapping[str, Any] | None = None) -> tuple[ModeStatus, ...]:
    """One status per failure mode, in the report's order (``gandoctor.MODES`` first)."""
    data = data if data is not None else report.to_dict()
    findings = {f["mode"]: f for f in data.get("findings", [])}
    given = data.get("modes") or []
    if not given:
        return tuple(
            ModeStatus(mode, "failing", f"{f['rule']} {f['rule_name']} from step {f['onset_step']}", f) for mode, f in findings.items()
        )
    return tuple(ModeStatus(e["mode"], e["status"], e["reason"], findings.get(e["mode"])) for e in given)
