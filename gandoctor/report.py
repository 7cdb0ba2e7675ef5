"""Report: the verdict, the per-mode status and the findings with ranked remedies. Data only.

Rendering lives in :mod:`gandoctor.reporters` (console, JSON, gate, ...); ``to_dict`` and
``str(report)`` are shortcuts to the JSON and console reporters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .context import RunContext
from .endstate import SampleSummary
from .findings import MODES, Finding, ModeState, ModeStatus, SkippedRule, SkipReason
from .runlog.format import RunEnd

SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Alert:
    """A finding a live check raised during training (from the run log's markers or the Doctor's
    live monitor): its mode and rule, the step of that check and the onset it had then."""

    mode: str
    rule: str
    seen_at: int
    onset_step: int


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    skipped_rules: tuple[SkippedRule, ...] = ()
    context: RunContext = field(default_factory=RunContext)
    source: str = ""
    first_step: int | None = None
    last_step: int | None = None
    signals: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    rules_total: int = 0
    mode_status: tuple[ModeStatus, ...] = ()
    rules_checked_codes: tuple[str, ...] = ()
    mapped: tuple[tuple[str, str], ...] = ()  # (signal, the name it had in the user's log)
    alerts: tuple[Alert, ...] = ()  # raised live during training, in order
    samples: SampleSummary | None = None  # the sample statistics over the run's last fifth
    #: where the run log says the run did not finish (an uncaught exception, a killed process): the
    #: verdict is on the records up to there
    ending: RunEnd | None = None

    @property
    def cleared_alerts(self) -> tuple[Alert, ...]:
        """Live alerts whose mode does not hold at the last step: the run was in that state and
        left it (or the evidence thinned), which a verdict on the end state alone would hide."""
        failing = {f.mode for f in self.findings}
        return tuple(a for a in self.alerts if a.mode not in failing)

    @property
    def rules_checked(self) -> int:
        if self.rules_checked_codes or self.mode_status:
            return len(self.rules_checked_codes)
        return max(0, self.rules_total - len(self.skipped_rules))

    @property
    def verdict(self) -> str:
        """"unhealthy" when a mode fails; "healthy" when none does and something was checked;
        "unknown" when nothing could be checked (no records, no usable signals)."""
        if self.findings:
            return "unhealthy"
        if self.mode_status and not any(s.state is ModeState.CLEAR for s in self.mode_status):
            return "unknown"
        return "healthy"

    @classmethod
    def failed(cls, context: RunContext, message: str) -> Report:
        """The report of a diagnosis that could not run (a rule file that does not load, say):
        every mode not checked, so the verdict is "unknown", never a HEALTHY that rests on nothing."""
        unchecked = tuple(ModeStatus(mode, ModeState.NOT_CHECKED, reasons=(SkipReason.ERROR,)) for mode in MODES)
        return cls(findings=(), context=context, warnings=(message,), mode_status=unchecked)

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(f.mode for f in self.findings)

    def status_of(self, mode: str) -> ModeStatus | None:
        return next((s for s in self.mode_status if s.mode == mode), None)

    def to_dict(self) -> dict[str, Any]:
        from .reporters.json import report_to_dict

        return report_to_dict(self)

    def render_text(self, width: int = 100) -> str:
        from .reporters.console import render_text

        return render_text(self, width=width)

    def __rich__(self) -> Any:
        from .reporters.console import renderable

        return renderable(self)

    def __str__(self) -> str:
        return self.render_text()
