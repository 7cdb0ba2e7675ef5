"""Per-mode status shared by the HTML, JUnit and markdown reporters: the report's own
``mode_status`` (computed once, by the engine), with each failing mode's finding attached; and
the skipped rules summed up in one line (console and gate); the samples' end state in words.

A report built by hand without a per-mode status shows its findings' modes as failing and says
nothing about the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..endstate import SampleSummary
from ..findings import SkippedRule, SkipReason
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


def samples_line(samples: SampleSummary) -> str:
    """The samples' end state in one line: ``"samples over steps 2000..2499: precision 0.85 (the
    share near a real sample), coverage 0.93 of a real set's, spread 0.98 of the reals'"``."""
    parts = []
    if samples.precision is not None:
        null = "" if samples.precision_null is None else f"; a blur of the data reads {samples.precision_null:.2g}"
        vouch = "" if samples.precision_vouches else ": precision cannot tell these samples from a blur"
        parts.append(f"precision {samples.precision:.2g} (the share near a real sample{null}{vouch})")
    if samples.coverage_ratio is not None:
        parts.append(f"coverage {samples.coverage_ratio:.2g} of a real set's")
    if samples.diversity_ratio is not None:
        parts.append(f"spread {samples.diversity_ratio:.2g} of the reals'")
    return f"samples over steps {samples.first_step}..{samples.last_step}: " + ", ".join(parts)


def far_from_data_note(samples: SampleSummary | None) -> str:
    """What a healthy verdict must not hide: G's samples still far from the data at the end
    (:attr:`SampleSummary.far_from_data`); "" where they are not, or were not measured."""
    if samples is None or not samples.far_from_data or samples.precision is None:
        return ""
    cover = f", covering {samples.coverage_ratio:.0%} of what a real set covers," if samples.coverage_ratio is not None else ""
    return (f"but G's samples are still far from the data: {samples.precision:.0%} of them near a real sample{cover} over "
            f"steps {samples.first_step}..{samples.last_step}; G has not learned the data (yet)")


def ending_note(report: Report) -> str:
    """Where the run log says the run did not finish (an uncaught exception, a killed process),
    said with the verdict: it is a verdict on the records up to there; "" otherwise."""
    return report.ending.message() if report.ending is not None else ""


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


def summarise_skipped(skipped: Sequence[SkippedRule]) -> str:
    """The skipped rules in one line, grouped by reason with a count each, for people to read
    (a report's footer, the gate's error): "10 superseded by richer rules" rather than ten
    descriptions. Reasons in a fixed order, names sorted and each said once."""
    groups = ([s for s in skipped if s.reason is reason] for reason in SkipReason)
    return "; ".join(_skipped_phrase(group) for group in groups if group)


def _skipped_phrase(group: Sequence[SkippedRule]) -> str:
    """One reason's phrase for its skipped rules (all of one reason)."""
    reason, n, one = group[0].reason, len(group), len(group) == 1
    need = "needs" if one else "need"
    names = ", ".join(sorted({m for s in group for m in s.missing}))
    if reason is SkipReason.NO_DATA:
        return "no signals recorded"
    if reason is SkipReason.MISSING_SIGNALS:
        return f"{n} {need} signals not recorded ({names})"
    if reason is SkipReason.NOT_APPLICABLE:
        return f"{n} not applicable (run uses {names})"
    if reason is SkipReason.FOR_OTHER_RUNS:
        return f"{n} for other runs (those that use {names})"
    if reason is SkipReason.SUPERSEDED:
        return f"{n} superseded by {'a rule that reads' if one else 'rules that read'} the richer signals recorded here"
    if reason is SkipReason.TOO_SHORT:
        shortest = sorted({s.min_run_steps for s in group if s.min_run_steps})
        span = "" if not shortest else f" ({shortest[0]}" + (f"-{shortest[-1]}" if len(shortest) > 1 else "") + " steps)"
        return f"{n} {need} a longer run{span}"
    if reason is SkipReason.UNDEFINED:
        details = "; ".join(sorted({s.detail for s in group if s.detail}))
        return f"{n} had nothing to judge ({details or names + ': non-finite, too sparse or held at one value'})"
    return f"{n} failed ({'; '.join(sorted({s.detail for s in group if s.detail}))})"
