"""Two runs side by side, for the change-one-thing workflow: which findings went away, which are
new, which stayed; each mode's status before and after; how the key signals moved.

``compare_runs(before, after)`` returns data; the CLI renders it. "No new failure" (the CI
question) is ``Comparison.new_failures == ()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from .config import Config, load_config
from .diagnose import analyze
from .endstate import tail_median
from .findings import Finding
from .readers import read_run
from .remedies import MODES
from .report import Report
from .rules import RuleSet

Status = Literal["failing", "ok", "not checked"]

# The signals compared: losses, D's view, gradient and weight norms, sample statistics.
KEY_SIGNALS: tuple[str, ...] = (
    "loss.d",
    "loss.g",
    "d.auc",
    "d_prob.real",
    "d_prob.fake",
    "grad_norm.d",
    "grad_norm.g",
    "weight_norm.d",
    "weight_norm.g",
    "feat.coverage_ratio",
    "feat.precision",
    "feat.diversity_ratio",
    "feat.dup_rate",
    "feat.occupancy_ratio",
    "latent.drift",
)


@dataclass(frozen=True)
class SignalChange:
    """Median of a signal over the last 20% of each run's steps (None where the run lacks it)."""

    name: str
    before: float | None
    after: float | None

    @property
    def change(self) -> float | None:
        """Relative change (after - before) / |before|; None when either side is missing or before is 0."""
        if self.before is None or self.after is None or self.before == 0:
            return None
        return (self.after - self.before) / abs(self.before)


@dataclass(frozen=True)
class ModeStatus:
    mode: str
    before: Status
    after: Status


@dataclass(frozen=True)
class FindingChange:
    """A mode's finding on either side (None where that side has none)."""

    mode: str
    before: Finding | None
    after: Finding | None


@dataclass(frozen=True)
class Comparison:
    before: Report
    after: Report
    gone: tuple[FindingChange, ...]
    new: tuple[FindingChange, ...]
    unchanged: tuple[FindingChange, ...]
    modes: tuple[ModeStatus, ...]
    signals: tuple[SignalChange, ...]

    @property
    def new_failures(self) -> tuple[str, ...]:
        """Modes failing after that were not failing before."""
        return tuple(m.mode for m in self.modes if m.after == "failing" and m.before != "failing")

    @property
    def samples_left_the_data(self) -> bool:
        """G's samples end far from the data after and did not before: worse, whatever the rules
        say (a D at lr x10 whose G never reached the data read as "gone: discriminator_dominance")."""
        before, after = self.before.samples, self.after.samples
        return after is not None and after.far_from_data and not (before is not None and before.far_from_data)

    def to_dict(self) -> dict[str, Any]:
        def finding(f: Finding | None) -> dict[str, Any] | None:
            if f is None:
                return None
            return {"rule": f.rule, "also_fired": list(f.also_fired), "onset_step": f.onset_step, "confidence": f.confidence, "active": f.active}

        def num(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else v

        return {
            "schema": "gandoctor.compare",
            "version": 1,
            "before": {"source": self.before.source, "verdict": self.before.verdict, "steps": [self.before.first_step, self.before.last_step]},
            "after": {"source": self.after.source, "verdict": self.after.verdict, "steps": [self.after.first_step, self.after.last_step]},
            "new_failures": list(self.new_failures),
            "samples_left_the_data": self.samples_left_the_data,
            **{
                group: [{"mode": c.mode, "before": finding(c.before), "after": finding(c.after)} for c in changes]
                for group, changes in (("gone", self.gone), ("new", self.new), ("unchanged", self.unchanged))
            },
            "modes": [{"mode": m.mode, "before": m.before, "after": m.after} for m in self.modes],
            "signals": [{"name": s.name, "before": num(s.before), "after": num(s.after), "change": num(s.change)} for s in self.signals],
        }


def mode_status(report: Report, rules: RuleSet) -> dict[str, Status]:
    """failing / ok / not checked per mode, as the report's own per-mode status says (an
    inferred rule that stayed quiet checks nothing)."""
    words: dict[str, Status] = {"failing": "failing", "clear": "ok", "not_checked": "not checked"}
    out: dict[str, Status] = {mode: "not checked" for mode in MODES}
    out.update({s.mode: words[s.state.value] for s in report.mode_status if s.mode in out})
    return out


def compare_runs(
    before: str | Path,
    after: str | Path,
    config: Config | None = None,
    rules_dirs: Iterable[str | Path] = (),
    uses: Iterable[str] | Mapping[str, Any] = (),
    format: str | None = None,
    signals: Iterable[str] = KEY_SIGNALS,
) -> Comparison:
    """Diagnose both runs with the same rules and compare them. Unreadable input raises
    LogFormatError (as ``analyze`` does)."""
    config = config or load_config()
    rules = config.ruleset(tuple(Path(d) for d in rules_dirs))
    reports = [analyze(p, config=config, rules_dirs=rules_dirs, uses=uses, format=format) for p in (before, after)]
    # The report keeps signal names only; the medians need the series, so each log is read again.
    logs = [read_run(p, format=format).signals for p in (before, after)]
    by_mode = [{f.mode: f for f in r.findings} for r in reports]
    gone, new, unchanged = [], [], []
    for mode in MODES:
        b, a = by_mode[0].get(mode), by_mode[1].get(mode)
        if b and a:
            unchanged.append(FindingChange(mode, b, a))
        elif b:
            gone.append(FindingChange(mode, b, None))
        elif a:
            new.append(FindingChange(mode, None, a))
    status = [mode_status(r, rules) for r in reports]
    wanted = list(signals)
    changes = tuple(
        SignalChange(name, tail_median(logs[0].get(name)), tail_median(logs[1].get(name)))
        for name in wanted
        if name in logs[0] or name in logs[1]
    )
    return Comparison(
        before=reports[0],
        after=reports[1],
        gone=tuple(gone),
        new=tuple(new),
        unchanged=tuple(unchanged),
        modes=tuple(ModeStatus(m, status[0][m], status[1][m]) for m in MODES),
        signals=changes,
    )
