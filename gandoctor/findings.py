"""The frozen records that flow from the engine to remedies and reporters."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Mapping

from .context import RunContext
from .signals import SIGNAL_PREREQUISITES

#: The six failure modes, in report order. Kept here, with the finding records, so the rule
#: loader and the remedy catalogue share one tuple without importing each other.
MODES: tuple[str, ...] = (
    "mode_collapse",
    "discriminator_dominance",
    "generator_dominance",
    "vanishing_gradients",
    "exploding_gradients",
    "non_convergence",
)

__all__ = ["MODES", "Evidence", "Finding", "ModeState", "ModeStatus", "RankedRemedy", "RunContext", "SkipReason", "SkippedRemedy", "SkippedRule"]


@dataclass(frozen=True)
class Evidence:
    """One condition of a rule, evaluated where the finding was established."""

    signal: str
    stat: str
    window: int
    op: str
    threshold: float
    value: float
    held: bool
    role: str  # "condition" or "corroborate"
    last: float = math.nan  # the same statistic at the last step judged (a finding still active shows where it is now)

    @property
    def label(self) -> str:
        return f"{self.stat}({self.signal})"


@dataclass(frozen=True)
class RankedRemedy:
    id: str
    title: str
    action: str
    source: str
    section: str
    score: float
    reason: str


@dataclass(frozen=True)
class SkippedRemedy:
    id: str
    title: str
    reason: str


@dataclass(frozen=True)
class Finding:
    """A failure mode that holds, with when it started, how sure we are and why."""

    mode: str
    rule: str
    rule_name: str
    summary: str
    onset_step: int
    last_step: int
    active: bool
    confidence: float
    evidence: Mapping[str, float]
    details: tuple[Evidence, ...]
    also_fired: tuple[str, ...] = ()
    remedies: tuple[RankedRemedy, ...] = ()
    skipped_remedies: tuple[SkippedRemedy, ...] = ()
    trace: tuple[float, ...] = ()  # the first condition's statistic over the run, downsampled
    trace_steps: tuple[int, int] = (0, 0)  # first and last step the trace spans
    caveat: str = ""  # the rule's stated limit: what this evidence cannot tell apart (empty: none)
    # Where the onset is an event's exact step (a rule with exact_onset, e.g. the first NaN) and
    # another rule of the mode saw it coming earlier (a gradient burst): that rule and its onset.
    first_sign_step: int | None = None
    first_sign_rule: str = ""

    @property
    def first_seen_step(self) -> int:
        """The earliest step a rule of this mode held: the first sign where there is one, else the onset."""
        return self.onset_step if self.first_sign_step is None else self.first_sign_step


class SkipReason(str, Enum):
    """Why a rule was not evaluated. A reporter words these; nothing parses prose."""

    NO_DATA = "no_data"  # the log holds no records
    MISSING_SIGNALS = "missing_signals"  # a required signal was never recorded
    NOT_APPLICABLE = "not_applicable"  # the run uses a technique the rule does not apply to (skip_if)
    FOR_OTHER_RUNS = "for_other_runs"  # the rule is for runs that use a technique this one does not (only_if)
    SUPERSEDED = "superseded"  # a richer rule of the same mode has the signals it needs (unless_signals)
    TOO_SHORT = "too_short"  # the run is shorter than the rule can judge
    UNDEFINED = "undefined"  # its signals were recorded, but no check had a value to judge (non-finite, too sparse, held)
    ERROR = "error"  # evaluating the rule raised; the rest of the diagnosis went on


@dataclass(frozen=True)
class SkippedRule:
    rule: str
    reason: SkipReason
    mode: str = ""
    # MISSING_SIGNALS: the signals; NOT_APPLICABLE: the flags; FOR_OTHER_RUNS: the flags the run lacks; SUPERSEDED: the signals present; UNDEFINED: the signals read
    missing: tuple[str, ...] = ()
    detail: str = ""  # ERROR: the exception
    min_run_steps: int = 0  # TOO_SHORT: the shortest run it judges, in steps

    def describe(self) -> str:
        names = ", ".join(self.missing)
        return {
            SkipReason.NO_DATA: "no signals recorded",
            SkipReason.MISSING_SIGNALS: f"signal(s) not recorded: {names}",
            SkipReason.NOT_APPLICABLE: f"not applicable: run uses {names}",
            SkipReason.FOR_OTHER_RUNS: f"for other runs: those that use {names}",
            SkipReason.SUPERSEDED: f"superseded: {names} recorded, read by a richer rule",
            SkipReason.TOO_SHORT: f"run too short to judge (it needs {self.min_run_steps} steps)",
            SkipReason.UNDEFINED: f"nothing to judge in any window: {self.detail or names + ' non-finite, too sparse or held at one value'}",
            SkipReason.ERROR: f"error while evaluating: {self.detail}",
        }[self.reason]


#: Signal prefixes of the sample side (features of real and fake samples, G on fixed codes).
SAMPLE_SIDE = ("feat.", "latent.")


class ModeState(str, Enum):
    FAILING = "failing"  # a rule of this mode fired
    CLEAR = "clear"  # at least one rule of this mode was checked and none fired
    NOT_CHECKED = "not_checked"  # no rule of this mode could be checked (signals missing, run too short, ...)

    def __str__(self) -> str:
        # What the README and the JSON say ('failing'), not 'ModeState.FAILING': a user's callback
        # printing str(status.state) got the latter (a torchgan wrapper's on_finding).
        return self.value


@dataclass(frozen=True)
class ModeStatus:
    """One failure mode's verdict for the run, with what it rests on."""

    mode: str
    state: ModeState
    rules_checked: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # signals whose absence left rules of this mode unchecked
    reasons: tuple[SkipReason, ...] = ()  # why the unchecked rules were skipped
    not_applicable: tuple[str, ...] = ()  # the run's context flags that ruled out the rest (e.g. "critic")

    def describe(self) -> str:
        if self.state is ModeState.FAILING:
            return "failing"
        if self.state is ModeState.CLEAR:
            return f"clear ({', '.join(self.rules_checked)} checked)"
        if SkipReason.NO_DATA in self.reasons:
            return "not checked: no records"
        if SkipReason.ERROR in self.reasons and not self.rules_checked and not self.missing:
            return "not checked: evaluating its rules failed (see the warnings)"
        # The sample statistics in one phrase instead of each with its prerequisite (a log of scalars
        # lists a dozen of them, with details of the live Doctor's schedule no log reader can act on).
        scalars = [f"{m} ({SIGNAL_PREREQUISITES[m]})" if m in SIGNAL_PREREQUISITES else m for m in self.missing if not m.startswith(SAMPLE_SIDE)]
        samples = [m for m in self.missing if m.startswith(SAMPLE_SIDE)]
        needs = " or ".join(scalars + (
            ["sample features (feat.*, latent.*: the live Doctor records them from real= and fake=, where no warning says their probes were switched off)"]
            if samples else []
        ))
        # Rules whose signals were recorded but could not judge (too short a run; NaN after a blow-up
        # or logged too sparsely): that reason first, in this order, then what the others need.
        for reason, why in ((SkipReason.TOO_SHORT, "run too short to judge"), (SkipReason.UNDEFINED, "nothing finite or dense enough to judge")):
            if reason in self.reasons:
                return f"not checked: {why}" + (f"; other rules need {needs}" if needs else "")
        if self.missing:
            return f"not checked: needs {needs}"
        if SkipReason.NOT_APPLICABLE in self.reasons:
            flags = f" ({', '.join(self.not_applicable)})" if self.not_applicable else ""
            return f"not checked: rules not applicable to this run{flags}"
        if SkipReason.FOR_OTHER_RUNS in self.reasons:
            return "not checked: its rules are for other runs"
        return "not checked"
