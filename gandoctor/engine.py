"""evaluate(signals, rules) -> findings. Pure: no torch, no I/O, no printing.

For each rule, every condition is evaluated on a grid of steps spanning the run. A rule
*holds* at a grid step when its conditions do (all or any); it *fires* when it holds without a
break for at least ``persist_steps`` after ``warmup_steps``. The onset is the first grid step
of that streak. Requiring persistence is what keeps noisy but healthy curves quiet.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from . import stats
from .findings import Evidence, Finding, RunContext, SkippedRule
from .rules import Condition, Rule, RuleSet
from .signals import SignalLog

logger = logging.getLogger("gandoctor")

#: Grid points per run at most; keeps evaluation cost independent of run length.
MAX_GRID_POINTS = 2000


@dataclass(frozen=True)
class EngineResult:
    findings: tuple[Finding, ...]
    rule_findings: tuple[Finding, ...]  # one per fired rule, before merging by mode
    skipped: tuple[SkippedRule, ...]
    first_step: int | None
    last_step: int | None


def make_grid(first: int, last: int, min_window: int) -> np.ndarray:
    """Evaluation steps: a few per shortest window, never more than MAX_GRID_POINTS."""
    span = max(0, last - first)
    stride = max(1, math.ceil(span / MAX_GRID_POINTS), min_window // 8)
    grid = np.arange(first, last + 1, stride, dtype=np.int64)
    if grid.size == 0 or grid[-1] != last:
        grid = np.append(grid, np.int64(last))
    return grid


def _condition_values(log: SignalLog, cond: Condition, grid: np.ndarray) -> np.ndarray | None:
    view = log.get(cond.signal)
    if view is None:
        return None
    return stats.evaluate(view, cond.stat, cond.window, grid, cond.level)


def _holds(cond: Condition, values: np.ndarray) -> np.ndarray:
    return np.array([cond.holds(float(v)) for v in values], dtype=bool)


def _first_streak(holds: np.ndarray, grid: np.ndarray, start_idx: int, persist: int) -> tuple[int, int] | None:
    """First run of True at or after ``start_idx`` spanning at least ``persist`` steps."""
    i = start_idx
    n = holds.shape[0]
    while i < n:
        if not holds[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and holds[j + 1]:
            j += 1
        if grid[j] - grid[i] >= persist:
            return i, j
        i = j + 1
    return None


def _margin(cond: Condition, value: float) -> float:
    """How far past its threshold a value is, squashed to 0..1."""
    if not math.isfinite(value):
        return 0.0
    scale = max(abs(cond.threshold), 1e-3)
    past = (cond.threshold - value) if cond.op in ("<", "<=") else (value - cond.threshold)
    return float(max(0.0, math.tanh(2.0 * past / scale)))


def evaluate_rule(log: SignalLog, rule: Rule, grid: np.ndarray) -> Finding | SkippedRule | None:
    required: list[tuple[Condition, np.ndarray]] = []
    missing: list[str] = []
    for cond in rule.conditions:
        values = _condition_values(log, cond, grid)
        if values is None:
            if not cond.optional:
                missing.append(cond.signal)
            continue
        required.append((cond, values))
    if rule.match == "all" and missing:
        return SkippedRule(rule.code, f"signal(s) not recorded: {', '.join(sorted(set(missing)))}")
    if not required:
        return SkippedRule(rule.code, f"none of its signals recorded: {', '.join(sorted(rule.signals()))}")

    per_cond = [_holds(c, v) for c, v in required]
    stacked = np.vstack(per_cond)
    holds = stacked.all(axis=0) if rule.match == "all" else stacked.any(axis=0)
    first = int(grid[0])
    start_idx = int(np.searchsorted(grid, first + rule.warmup_steps, side="left"))
    streak = _first_streak(holds, grid, start_idx, rule.persist_steps)
    if streak is None:
        return None
    i, j = streak
    onset = int(grid[i])
    after = holds[i:]
    held_frac = float(after.mean())
    last_true = i + int(np.nonzero(after)[0][-1])

    corroborating: list[tuple[Condition, np.ndarray]] = []
    for cond in rule.corroborate:
        values = _condition_values(log, cond, grid)
        if values is not None:
            corroborating.append((cond, values))

    def evidence(cond: Condition, values: np.ndarray, role: str) -> Evidence:
        seg = values[i : j + 1]
        finite = seg[np.isfinite(seg)]
        value = float(np.median(finite)) if finite.size else math.nan
        held = bool(_holds(cond, values)[i : j + 1].mean() >= 0.5)
        return Evidence(cond.signal, cond.stat, cond.window, cond.op, cond.threshold, value, held, role)

    details = [evidence(c, v, "condition") for c, v in required]
    margins = [_margin(d_cond, d.value) for (d_cond, _), d in zip(required, details) if d.held]
    corroborated = [evidence(c, v, "corroborate") for c, v in corroborating]
    corr_held = [d.held for d in corroborated]
    details += corroborated

    streak_span = int(grid[j] - grid[i])
    persistence = min(1.0, streak_span / (2.0 * max(rule.persist_steps, 1)))
    margin = float(np.mean(margins)) if margins else 0.0
    support = float(np.mean(corr_held)) if corr_held else margin
    confidence = 0.35 + 0.25 * persistence + 0.2 * held_frac + 0.2 * support
    if corr_held:
        confidence = 0.35 + 0.2 * persistence + 0.15 * held_frac + 0.1 * margin + 0.2 * support
    evidence = {f"{d.stat}({d.signal})": d.value for d in details if math.isfinite(d.value)}
    trace = _downsample(required[0][1], TRACE_POINTS)
    return Finding(
        mode=rule.mode,
        rule=rule.code,
        rule_name=rule.name,
        summary=rule.summary,
        onset_step=onset,
        last_step=int(grid[last_true]),
        active=bool(holds[-1]),
        confidence=round(min(1.0, max(0.0, confidence)), 3),
        evidence=evidence,
        details=tuple(details),
        trace=trace,
        trace_steps=(int(grid[0]), int(grid[-1])),
    )


TRACE_POINTS = 48


def _downsample(values: np.ndarray, points: int) -> tuple[float, ...]:
    """Mean of equal slices of the grid values (NaN where a slice has none): a sparkline's worth."""
    if values.size == 0:
        return ()
    out = []
    for chunk in np.array_split(values, min(points, values.size)):
        finite = chunk[np.isfinite(chunk)]
        out.append(round(float(finite.mean()), 6) if finite.size else math.nan)
    return tuple(out)


def merge_by_mode(findings: list[Finding]) -> tuple[Finding, ...]:
    """One finding per mode: the most confident rule's evidence, the earliest onset."""
    by_mode: dict[str, list[Finding]] = {}
    for f in findings:
        by_mode.setdefault(f.mode, []).append(f)
    merged: list[Finding] = []
    for mode, group in by_mode.items():
        best = max(group, key=lambda f: (f.confidence, -f.onset_step))
        others = tuple(sorted(f.rule for f in group if f is not best))
        merged.append(
            Finding(
                mode=mode,
                rule=best.rule,
                rule_name=best.rule_name,
                summary=best.summary,
                onset_step=min(f.onset_step for f in group),
                last_step=max(f.last_step for f in group),
                active=any(f.active for f in group),
                confidence=best.confidence,
                evidence=best.evidence,
                details=best.details,
                also_fired=others,
                trace=best.trace,
                trace_steps=best.trace_steps,
            )
        )
    return tuple(sorted(merged, key=lambda f: (f.onset_step, -f.confidence, f.mode)))


def evaluate(log: SignalLog, rules: RuleSet, context: RunContext | None = None, strict: bool = False) -> EngineResult:
    context = context or RunContext()
    if log.first_step is None or log.last_step is None:
        return EngineResult((), (), tuple(SkippedRule(r.code, "no signals recorded") for r in rules.rules), None, None)
    min_window = min((c.window for r in rules.rules for c in r.conditions), default=100)
    grid = make_grid(log.first_step, log.last_step, min_window)
    fired: list[Finding] = []
    skipped: list[SkippedRule] = []
    for rule in rules.rules:
        blocked = [flag for flag in rule.skip_if if flag in context.flags]
        if blocked:
            skipped.append(SkippedRule(rule.code, f"not applicable: run uses {', '.join(blocked)}"))
            continue
        try:
            outcome = evaluate_rule(log, rule, grid)
        except Exception as exc:
            if strict:
                raise
            # One broken rule (a bad custom rule, a statistic that fails on odd data) must not
            # take the whole diagnosis down: it is reported as skipped, with the reason.
            logger.warning("gandoctor: rule %s failed and was skipped: %s", rule.code, exc, exc_info=True)
            skipped.append(SkippedRule(rule.code, f"error while evaluating: {type(exc).__name__}: {exc}"))
            continue
        if isinstance(outcome, SkippedRule):
            skipped.append(outcome)
        elif outcome is not None:
            fired.append(outcome)
    return EngineResult(merge_by_mode(fired), tuple(fired), tuple(skipped), log.first_step, log.last_step)
