"""Live checks replayed from a real recorded run: the run's signals up to each check step are
diagnosed as the live doctor would at that step, and each finding is reported once, when it is
first seen (what an alert sink receives during training)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gandoctor
from gandoctor.config import load_config
from gandoctor.diagnose import diagnose
from gandoctor.findings import Finding
from gandoctor.report import Report
from gandoctor.signals import SignalLog

RUNS = Path(__file__).resolve().parents[2] / "fixtures" / "runs"
#: D dominates, then G collapses: two findings (onsets about 300 and 500) in 1000 steps.
FAILING = RUNS / "ddom_ring8_s0"


@dataclass(frozen=True)
class Check:
    step: int
    report: Report
    new: tuple[Finding, ...]


def replay(run: Path = FAILING, every: int = 100) -> list[Check]:
    data = gandoctor.read_run(run)
    rules = load_config().ruleset()
    views = [data.signals.get(n) for n in data.signals.names()]
    last = max(int(v.steps[-1]) for v in views if v is not None and len(v))
    seen: set[tuple[str, str]] = set()
    checks = []
    for step in range(every, last + 1, every):
        prefix = SignalLog(capacity=data.signals.capacity)
        for v in views:
            if v is not None:
                keep = v.steps <= step
                if keep.any():
                    prefix.extend(v.name, v.steps[keep], v.values[keep])
        report = diagnose(prefix, rules, data.context, source=str(run))
        new = tuple(f for f in report.findings if (f.mode, f.rule) not in seen)
        seen.update((f.mode, f.rule) for f in new)
        checks.append(Check(step, report, new))
    return checks


def feed(sink, checks: list[Check]) -> None:  # type: ignore[no-untyped-def]
    """Give a sink what it gets during training: each new finding, then each live report."""
    for c in checks:
        for f in c.new:
            sink.on_finding(f, c.step)
        sink.on_check(c.report, c.step)
