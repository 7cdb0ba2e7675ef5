"""The frozen records that flow from the engine to remedies and reporters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .context import RunContext as RunContext  # re-exported: RunContext lives in context.py


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


@dataclass(frozen=True)
class SkippedRule:
    rule: str
    reason: str
