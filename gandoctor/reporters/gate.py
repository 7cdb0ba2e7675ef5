"""The CI gate's verdict: an exit code and one reason line, from a Report.

0 pass, 1 a failing finding in the modes (or rules) gated on, or a required mode that could not
be checked; 2 nothing could be judged (no usable record, no rule checkable) — a gate never
passes on nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable

from ..findings import Finding, ModeState
from ..report import Report
from ._modes import ending_note, far_from_data_note, first_sign, summarise_skipped


class GateExit(IntEnum):
    PASS = 0
    FAIL = 1
    ERROR = 2


@dataclass(frozen=True)
class GateResult:
    exit_code: GateExit
    line: str
    failing: tuple[Finding, ...] = ()
    unchecked: tuple[str, ...] = ()


def judge(
    report: Report,
    fail_on_modes: Iterable[str],
    fail_on_rules: Iterable[str] = (),
    require_checked: Iterable[str] = (),
    label: str = "",
    require_near_data: bool = False,
) -> GateResult:
    modes, rules = set(fail_on_modes), {r.upper() for r in fail_on_rules}
    where = label or report.source or "run"
    if report.first_step is None:
        return GateResult(GateExit.ERROR, f"gandoctor gate: ERROR — {where}: no usable record was read; nothing to judge")
    if report.mode_status and report.rules_checked == 0:
        reasons = summarise_skipped(report.skipped_rules) or "no rule applies"
        return GateResult(GateExit.ERROR, f"gandoctor gate: ERROR — {where}: no rule could be checked ({reasons})")
    failing = tuple(
        f for f in report.findings if f.mode in modes or f.rule.upper() in rules or any(c.upper() in rules for c in f.also_fired)
    )
    unchecked = tuple(
        m for m in require_checked if (s := report.status_of(m)) is None or s.state is ModeState.NOT_CHECKED
    )
    span = f"steps {report.first_step}..{report.last_step}"
    far = far_from_data_note(report.samples)
    if failing or unchecked or (require_near_data and far):
        # A finding's caveat goes with it: the gate is where a build is failed on it.
        parts = [
            f"{f.mode} ({f.rule}, onset step {f.onset_step}"
            + (f", {sign}" if (sign := first_sign(f.first_sign_step, f.first_sign_rule)) else "")
            + f", confidence {f.confidence:.2f}"
            + (f"; caveat: {f.caveat}" if f.caveat else "")
            + ")"
            for f in failing
        ]
        for m in unchecked:
            status = report.status_of(m)
            parts.append(f"{m} required but {status.describe() if status else 'not checked: no rule for it'}")
        if require_near_data and far:
            parts.append(f"samples near the data required, {far.removeprefix('but ')}")
        ended = f"; {e}" if (e := ending_note(report)) else ""
        return GateResult(GateExit.FAIL, f"gandoctor gate: FAIL — {where} ({span}): {'; '.join(parts)}{ended}", failing, unchecked)
    gated = sorted(modes | rules)
    others = [f.mode for f in report.findings]
    not_checked = [s.mode for s in report.mode_status if s.state is ModeState.NOT_CHECKED and s.mode in modes]
    tail = (f"; not gating on {', '.join(others)}" if others else "") + (f"; not checked: {', '.join(not_checked)}" if not_checked else "")
    what = "all modes" if len(modes) >= 6 and not rules else ", ".join(gated)
    if not_checked:  # "healthy for all modes" next to five unchecked ones would overstate it
        clear = [s.mode for s in report.mode_status if s.mode in modes and s.state is ModeState.CLEAR] + sorted(rules)
        what = f"the gated modes it could check ({', '.join(clear)})" if clear else "nothing: no gated mode could be checked"
    # Not a failure (no rule holds) unless required, but a pass must not read as "G learned the data".
    return GateResult(
        GateExit.PASS,
        f"gandoctor gate: PASS — {where} ({span}, {report.rules_checked} rules checked): healthy for {what}{tail}"
        + (f"; {far}" if far else "") + (f"; {ended}" if (ended := ending_note(report)) else ""),
    )
