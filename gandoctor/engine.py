"""evaluate(signals, rules) -> findings and typed skip reasons. Pure: no torch, no I/O, no printing.

Each rule's conditions are evaluated on a grid of steps spanning the run. A rule *holds* at a
grid step when its conditions do (all or any); a grid step is *evaluable* when the statistics
it needs are defined there. A rule *fires* at the first evaluable grid step ``t`` after the
warm-up where

1. it holds at ``t`` and at a share of at least ``persist_frac`` of the evaluable checks in
   ``[t, t + persist]`` — a share, not an unbroken streak, so noise and hopping do not reset it;
2. it holds at a share of at least ``end_frac`` of the checks from ``t`` to the last record: the
   run is still in that state, or ended in it (a transient that recovered is no failure);
3. the span ``[t, t + persist]`` fits in the run; where it does not, a shorter span
   (``end_span_frac`` of it) suffices: a condition that holds from ``t`` to the last record is
   the state the run ended in. A rule with ``persist_steps = 0`` (non-finite values) fires on a
   single check.

Warm-up and persistence scale with the run: at most ``warmup_frac`` / ``persist_run_frac`` of
its span, so a 400-step run can be judged. A run shorter than ``min_run_steps`` is not judged
by the rule (``SkipReason.TOO_SHORT``). The onset is ``t``; for a condition on
``nonfinite_frac`` it is the exact first non-finite step.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from . import windows
from .context import RunContext
from .derived import DerivedView
from .findings import Evidence, Finding, ModeState, ModeStatus, SkippedRule, SkipReason
from .rules import MODES, Condition, Rule, RuleSet, in_run_units
from .signals import SignalLog

logger = logging.getLogger("gandoctor")

#: Grid points per run at most; keeps evaluation cost independent of run length.
MAX_GRID_POINTS = 2000
TRACE_POINTS = 48
INFERRED_CONFIDENCE_CAP = 0.6
#: A finding read from fewer records than this (of any signal a required condition reads, from
#: its window before the onset to the end) is thin evidence: a short log printed every 100 steps
#: has 3. Its confidence is capped as an inferred one's and it says how few it read.
THIN_EVIDENCE_RECORDS = 5


@dataclass(frozen=True)
class EngineResult:
    findings: tuple[Finding, ...]
    rule_findings: tuple[Finding, ...]  # one per fired rule, before merging by mode
    skipped: tuple[SkippedRule, ...]
    first_step: int | None
    last_step: int | None
    checked: tuple[str, ...] = ()  # codes of the rules that were evaluated
    mode_status: tuple[ModeStatus, ...] = ()


@dataclass(frozen=True)
class Timing:
    """A rule's warm-up and persistence for one run (they shrink on short runs)."""

    warmup: float
    persist: float


def make_grid(first: int, last: int, min_window: int) -> np.ndarray:
    """Evaluation steps: a few per shortest window, never more than MAX_GRID_POINTS."""
    span = max(0, last - first)
    stride = max(1, math.ceil(span / MAX_GRID_POINTS), min_window // 8)
    grid = np.arange(first, last + 1, stride, dtype=np.int64)
    if grid.size == 0 or grid[-1] != last:
        grid = np.append(grid, np.int64(last))
    return grid


#: Signals whose first interval stands for the log's (every logged step has them); others as a fallback.
_STEP_SIGNALS = ("loss.d", "loss.g")


def first_interval(log: Log, first: int | None = None) -> int:
    """The steps the log's first record (at ``first``, by default the log's) stands for: the gap
    to the record after it (a log printed every 100 steps starts at step 100, after 100 steps of
    training; a long run's merged first point stands for the steps merged into it). 0 where no
    series has two points."""
    first = log.first_step if first is None else first
    views = [v for v in map(log.get, _STEP_SIGNALS) if v is not None] or list(log.views())
    for view in views:
        if len(view) >= 2 and int(view.steps[0]) == first:
            return int(view.steps[1] - view.steps[0])
    return 0


def timing(rule: Rule, span: int) -> Timing:
    p = rule.params
    return Timing(
        warmup=min(p["warmup_steps"], p["warmup_frac"] * span),
        persist=min(p["persist_steps"], p["persist_run_frac"] * span),
    )


Log = SignalLog | DerivedView


def effective_window(rule: Rule, cond: Condition, span: int) -> int:
    """A condition's window in steps: its own, or ``window_run_frac`` of the run where the rule
    sets one (a swing in a 300-step run and one in a 5000-step run differ in time scale), up to
    ``window_run_max`` steps where the rule sets that (past it, a long run's faster swings would
    be averaged away inside each value)."""
    frac, cap = rule.params["window_run_frac"], rule.params["window_run_max"]
    if frac <= 0:
        return cond.window
    scaled = frac * span if cap <= 0 else min(frac * span, cap)
    return max(MIN_RUN_WINDOW, int(round(scaled)))


#: The shortest window a run-scaled condition gets (its statistic needs a few points).
MIN_RUN_WINDOW = 20


#: Values of (signal, statistic, window, level) on one grid, shared by the rules that use them.
Memo = dict[tuple[str, str, int, "float | None"], "np.ndarray | None"]


def _condition_values(log: Log, cond: Condition, grid: np.ndarray, window: int, memo: Memo | None = None) -> np.ndarray | None:
    key = (cond.signal, cond.stat, window, cond.level)
    if memo is not None and key in memo:
        return memo[key]
    view = log.get(cond.signal)
    values = None if view is None else windows.evaluate(view, cond.stat, window, grid, cond.level)
    if values is not None:
        values.flags.writeable = False  # shared between rules
    if memo is not None:
        memo[key] = values
    return values


def find_onset(holds: np.ndarray, ok: np.ndarray, grid: np.ndarray, start: float, persist: float, rule: Rule) -> int | None:
    """Index of the first grid step where the rule fires (see the module docstring), or None."""
    p = rule.params
    held = np.concatenate([[0], np.cumsum(holds & ok)])
    seen = np.concatenate([[0], np.cumsum(ok)])
    last = int(grid[-1])
    n = grid.shape[0]
    for i in np.nonzero(holds & ok & (grid >= start))[0]:
        t = int(grid[i])
        fits = t + persist <= last
        span_needed = persist if fits else p["end_span_frac"] * persist
        if last - t < span_needed:
            return None  # later candidates have even less room
        hi = int(np.searchsorted(grid, min(t + persist, last), side="right"))
        checks = seen[hi] - seen[i]
        if checks < p["min_checks"] or held[hi] - held[i] < p["persist_frac"] * checks:
            continue
        to_end = seen[n] - seen[i]
        if held[n] - held[i] >= p["end_frac"] * to_end:
            return int(i)
    return None


def _margin(cond: Condition, value: float) -> float:
    """How far past its threshold a value is, squashed to 0..1."""
    if not math.isfinite(value):
        return 0.0
    scale = max(abs(cond.threshold), 1e-3)
    past = (cond.threshold - value) if cond.op in ("<", "<=") else (value - cond.threshold)
    return float(max(0.0, math.tanh(2.0 * past / scale)))


def _refine_onset(log: Log, rule: Rule, required: list[tuple[Condition, np.ndarray]], onset: int) -> int:
    """A blow-up has an exact first step: the earliest non-finite sample in the window that flagged it."""
    exact = []
    for cond, _ in required:
        view = log.get(cond.signal)
        if cond.stat in ("nonfinite_frac", "nonfinite_count") and view is not None:
            step = windows.first_nonfinite_step(view, onset - cond.window + 1)
            if step is not None and step <= onset:
                exact.append(step)
    return min(exact) if exact else onset


def _combine(rule: Rule, required: list[tuple[Condition, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Where the rule holds, and where it can be judged at all, on the grid. With match = "all",
    an optional condition constrains only where it can be computed: where its statistic is
    undefined (too few points for a slope in a short run) the other conditions decide, but an
    optional condition alone is no evidence."""
    finite = np.vstack([np.isfinite(v) for _, v in required])
    if rule.match != "all":
        return np.any(np.vstack([c.holds_at(v) for c, v in required]), axis=0), np.any(finite, axis=0)
    lenient = np.array([c.optional for c, _ in required])[:, None]
    holds = np.all(np.vstack([c.holds_at(v) for c, v in required]) | (lenient & ~finite), axis=0)
    required_finite = np.all(finite | lenient, axis=0)
    some_required = np.any(finite & ~lenient, axis=0)
    return holds, required_finite & (some_required | np.all(finite, axis=0))


def _judged_conditions(log: Log, rule: Rule, grid: np.ndarray, span: int, memo: Memo | None) -> list[tuple[Condition, np.ndarray]] | SkippedRule:
    """The rule's conditions with their values on ``grid`` (a run of ``span`` steps), or why the rule cannot be judged."""
    present = [c.signal for c in rule.conditions if log.get(c.signal) is not None]
    if rule.unless_signals:
        richer = tuple(s for s in rule.unless_signals if s in log)
        if richer:
            return SkippedRule(rule.code, SkipReason.SUPERSEDED, rule.mode, richer)
    required: list[tuple[Condition, np.ndarray]] = []
    missing: list[str] = []
    for cond in rule.conditions:
        values = _condition_values(log, cond, grid, effective_window(rule, cond, span), memo) if cond.signal in present else None
        if values is None:
            if not cond.optional:
                missing.append(cond.signal)
            continue
        required.append((cond, values))
    if rule.match == "all" and missing:
        return SkippedRule(rule.code, SkipReason.MISSING_SIGNALS, rule.mode, tuple(sorted(set(missing))))
    if not required:
        return SkippedRule(rule.code, SkipReason.MISSING_SIGNALS, rule.mode, tuple(sorted({c.signal for c in rule.conditions})))
    if span + 1 < rule.params["min_run_steps"]:
        return SkippedRule(rule.code, SkipReason.TOO_SHORT, rule.mode, min_run_steps=int(rule.params["min_run_steps"]))
    return required


def _why_undefined(log: Log, rule: Rule, conditions: list[Condition], span: int) -> str:
    """Why each condition whose statistic was undefined at every check left the rule nothing to
    judge (whichever of them did): non-finite, held at one value,
    zero, or fewer points in a window than its statistic needs (a log printing every 15 steps
    holds 13 records in a 200-step window, where a cycle needs 48), else its statistic undefined."""
    parts = []
    for cond in conditions:
        view = log.get(cond.signal)
        values = np.asarray(view.values, dtype=float) if view is not None else np.empty(0)
        finite = values[np.isfinite(values)]
        window, needed = effective_window(rule, cond, span), windows.STATISTICS[cond.stat].min_points
        gap = float(np.median(np.diff(view.steps))) if view is not None and len(view) > 1 else float(span + 1)
        per_window = window / max(gap, 1.0)
        if finite.size < 0.5 * max(values.size, 1):
            why = "mostly non-finite"
        elif np.unique(finite).size <= 1:
            why = "held at one value"
        elif np.count_nonzero(finite == 0) >= 0.5 * finite.size:
            why = "zero at most records"
        elif per_window < needed:
            why = f"about {per_window:.0f} records in a {window}-step window, where {cond.stat} needs {needed}"
        else:
            why = f"{cond.stat} undefined in every window"
        parts.append(f"{cond.signal}: {why}")
    return "; ".join(dict.fromkeys(parts))


def evaluate_rule(log: Log, rule: Rule, grid: np.ndarray, memo: Memo | None = None, origin: int | None = None) -> Finding | SkippedRule | None:
    """The rule's finding on ``grid``, why it was skipped, or None; ``memo`` is shared by rules on
    one grid. ``origin``: the step the run began at (``grid[0]`` where not given), from which its
    span, warm-up and shortest judged run count."""
    origin = int(grid[0]) if origin is None else origin
    span = int(grid[-1] - origin)
    required = _judged_conditions(log, rule, grid, span, memo)
    if isinstance(required, SkippedRule):
        return required
    holds, ok = _combine(rule, required)
    t = timing(rule, span)
    if not ok[grid >= origin + t.warmup].any():
        # Every check after the warm-up had an undefined statistic (windows mostly NaN, too few
        # points, values held): the rule judged nothing, so it is not counted as checked.
        signals = tuple(dict.fromkeys(c.signal for c, _ in required))
        undefined = [c for c, v in required if not np.isfinite(v[grid >= origin + t.warmup]).any()]
        return SkippedRule(rule.code, SkipReason.UNDEFINED, rule.mode, signals, detail=_why_undefined(log, rule, undefined, span))
    i = find_onset(holds, ok, grid, origin + t.warmup, t.persist, rule)
    if i is None:
        return None
    onset = _refine_onset(log, rule, required, int(grid[i]))
    hi = int(np.searchsorted(grid, grid[i] + max(t.persist, 1), side="right"))
    after_ok = ok[i:]
    held_frac = float(holds[i:][after_ok].mean()) if after_ok.any() else 1.0
    last_true = i + int(np.nonzero(holds[i:])[0][-1])

    def evidence(cond: Condition, values: np.ndarray, role: str) -> Evidence:
        seg = values[i:hi]
        finite_seg = seg[np.isfinite(seg)]
        value = float(np.median(finite_seg)) if finite_seg.size else math.nan
        held = bool(cond.holds_at(values)[i:hi].mean() >= 0.5) if hi > i else False
        finite_all = values[np.isfinite(values)]
        last = float(finite_all[-1]) if finite_all.size else math.nan
        return Evidence(cond.signal, cond.stat, effective_window(rule, cond, span), cond.op, cond.threshold, value, held, role, last)

    details = [evidence(c, v, "condition") for c, v in required]
    margins = [_margin(c, d.value) for (c, _), d in zip(required, details) if d.held]
    corroborated = []
    for cond in rule.corroborate:
        values = _condition_values(log, cond, grid, effective_window(rule, cond, span), memo)
        if values is not None:
            corroborated.append(evidence(cond, values, "corroborate"))
    details += corroborated

    # Confidence: how far past the thresholds, how steadily it held, and whether independent
    # signals agree. A finding from the last few checks of a run is less certain than a long one.
    margin = float(np.mean(margins)) if margins else 0.0
    length = min(1.0, (int(grid[last_true]) - int(grid[i]) + 1) / (2.0 * max(rule.persist_steps, 1)))
    if corroborated:
        support = float(np.mean([d.held for d in corroborated]))
        confidence = 0.35 + 0.15 * length + 0.15 * held_frac + 0.15 * margin + 0.2 * support
    else:
        confidence = 0.35 + 0.2 * length + 0.2 * held_frac + 0.25 * margin
    if rule.inferred:  # read from what usually goes with the failure, not the failure itself
        confidence = min(confidence, INFERRED_CONFIDENCE_CAP)
    stated = [rule.caveat] if rule.caveat else []
    for note in rule.notes:  # the caveats for what this run's evidence shows, where it shows it
        values = _condition_values(log, note.condition, grid, effective_window(rule, note.condition, span), memo)
        if values is not None and evidence(note.condition, values, "note").held:
            stated.append(note.text)
    thin = _fewest_records(log, rule, required, int(grid[i]), int(grid[-1]), span)
    if thin is not None:
        confidence = min(confidence, INFERRED_CONFIDENCE_CAP)
        stated.append(f"Read from {thin[1]} records of {thin[0]} only: thin evidence.")
    caveat = " ".join(stated)
    return Finding(
        mode=rule.mode,
        rule=rule.code,
        rule_name=rule.name,
        summary=rule.summary,
        onset_step=onset,
        last_step=int(grid[last_true]),
        active=bool(ok[-1] and holds[-1]),  # at the run's last check: a stopped signal says where it last held, no more
        confidence=round(min(1.0, max(0.0, confidence)), 3),
        evidence={f"{d.stat}({d.signal})": d.value for d in details if math.isfinite(d.value)},
        details=tuple(details),
        trace=_downsample(required[0][1], TRACE_POINTS),
        trace_steps=(int(grid[0]), int(grid[-1])),
        caveat=caveat,
    )


def _fewest_records(log: Log, rule: Rule, required: list[tuple[Condition, np.ndarray]], onset: int, last: int, span: int) -> tuple[str, int] | None:
    """The required signal with the fewest records behind the finding (from its window before
    the onset to the last step), where that is under THIN_EVIDENCE_RECORDS; else None. Raw
    samples count (a long run's merged point stands for many); a non-finite value is exact, so
    conditions on them never make a finding thin."""
    fewest: tuple[str, int] | None = None
    for cond, _ in required:
        view = log.get(cond.signal)
        if cond.optional or view is None or windows.STATISTICS[cond.stat].reads_nonfinite:
            continue
        steps = view.steps
        lo = onset - effective_window(rule, cond, span)
        a, b = np.searchsorted(steps, lo, side="right"), np.searchsorted(steps, last, side="right")
        n = int(view.counts[a:b].sum())
        if n < THIN_EVIDENCE_RECORDS and (fewest is None or n < fewest[1]):
            fewest = (cond.signal, n)
    return fewest


def _downsample(values: np.ndarray, points: int) -> tuple[float, ...]:
    """Mean of equal slices of the grid values (NaN where a slice has none): a sparkline's worth."""
    if values.size == 0:
        return ()
    out = []
    for chunk in np.array_split(values, min(points, values.size)):
        finite = chunk[np.isfinite(chunk)]
        out.append(round(float(finite.mean()), 6) if finite.size else math.nan)
    return tuple(out)


def merge_by_mode(findings: list[Finding], exact_onset: frozenset[str] = frozenset()) -> tuple[Finding, ...]:
    """One finding per mode: the most confident rule's evidence, the earliest onset; a rule's
    caveat only where every rule that fired for the mode states one.

    A rule in ``exact_onset`` marks an event with an exact first step (the first non-finite
    value): when it fired, the mode's onset is that step, and where another rule of the mode
    began earlier (norms bursting before the NaN) that rule and step are the first sign."""
    by_mode: dict[str, list[Finding]] = {}
    for f in findings:
        by_mode.setdefault(f.mode, []).append(f)
    merged: list[Finding] = []
    for mode, group in by_mode.items():
        best = max(group, key=lambda f: (f.confidence, -f.onset_step))
        others = tuple(sorted(f.rule for f in group if f is not best))
        earliest = min(group, key=lambda f: (f.onset_step, f.rule))
        exact = [f for f in group if f.rule in exact_onset]
        onset = min(f.onset_step for f in exact) if exact else earliest.onset_step
        first_sign = earliest if earliest.onset_step < onset else None
        merged.append(
            Finding(
                mode=mode,
                rule=best.rule,
                rule_name=best.rule_name,
                summary=best.summary,
                onset_step=onset,
                last_step=max(f.last_step for f in group),
                active=any(f.active for f in group),
                confidence=best.confidence,
                evidence=best.evidence,
                details=best.details,
                also_fired=others,
                trace=best.trace,
                trace_steps=best.trace_steps,
                # A rule whose evidence has no such limit fired too: the limit no longer stands.
                caveat=best.caveat if all(f.caveat for f in group) else "",
                first_sign_step=None if first_sign is None else first_sign.onset_step,
                first_sign_rule="" if first_sign is None else first_sign.rule,
            )
        )
    return tuple(sorted(merged, key=lambda f: (f.onset_step, -f.confidence, f.mode)))


def mode_status(rules: RuleSet, fired: list[Finding], skipped: list[SkippedRule], checked: list[str]) -> tuple[ModeStatus, ...]:
    """failing / clear / not checked for every mode, with the signals whose absence left it unchecked."""
    modes = list(MODES) + sorted({r.mode for r in rules.rules} - set(MODES))
    by_code = {r.code: r for r in rules.rules}
    out = []
    for mode in modes:
        mode_checked = tuple(c for c in checked if by_code[c].mode == mode)
        direct = tuple(c for c in mode_checked if not by_code[c].inferred)
        if any(f.mode == mode for f in fired):
            out.append(ModeStatus(mode, ModeState.FAILING, mode_checked))
        elif direct:
            out.append(ModeStatus(mode, ModeState.CLEAR, direct))
        else:
            mine = [s for s in skipped if by_code.get(s.rule) is not None and by_code[s.rule].mode == mode]
            missing = sorted({m for s in mine if s.reason is SkipReason.MISSING_SIGNALS for m in s.missing})
            reasons = tuple(dict.fromkeys(s.reason for s in mine))
            flags = sorted({f for s in mine if s.reason is SkipReason.NOT_APPLICABLE for f in s.missing})
            out.append(ModeStatus(mode, ModeState.NOT_CHECKED, (), tuple(missing), reasons, tuple(flags)))
    return tuple(out)


def run_steps(log: Log) -> tuple[int | None, int | None]:
    """The run's first and last step: over the signals gandoctor knows, where the log has any. A
    tool's scalars that map to none (``user.*``) may count other steps: torchgan's ``Gradients/*``
    tags count twice as fast as its losses, and a 1,015-iteration run read as 2,030 steps, its
    windows and warm-ups scaled to that."""
    first, last = log.span(lambda name: not name.startswith("user."))
    return (first, last) if first is not None else (log.first_step, log.last_step)


def evaluate(log: Log, rules: RuleSet, context: RunContext | None = None, strict: bool = False) -> EngineResult:
    context = context or RunContext()
    log = DerivedView(log) if isinstance(log, SignalLog) else log
    first, last = run_steps(log)
    if first is None or last is None:
        nothing = [SkippedRule(r.code, SkipReason.NO_DATA, r.mode) for r in rules.rules]
        return EngineResult((), (), tuple(nothing), None, None, (), mode_status(rules, [], nothing, []))
    min_window = min((c.window for r in rules.rules for c in r.conditions), default=100)
    grid = make_grid(first, last, min_window)
    # A record stands for the steps since the one before it, so the run's first record stands for
    # the steps up to it: a log printed every 100 steps from step 100 to 300 is a 300-step run
    # (steps 1-300), not one of 200 (a log of every step: nothing changes).
    origin = min(first, max(0, first - first_interval(log, first) + 1))
    fired: list[Finding] = []
    skipped: list[SkippedRule] = []
    checked: list[str] = []
    memo: Memo = {}
    for rule in rules.rules:
        absent = tuple(flag for flag in rule.only_if if flag not in context.flags)
        if absent:
            skipped.append(SkippedRule(rule.code, SkipReason.FOR_OTHER_RUNS, rule.mode, absent))
            continue
        blocked = tuple(flag for flag in rule.skip_if if flag in context.flags)
        if blocked:
            skipped.append(SkippedRule(rule.code, SkipReason.NOT_APPLICABLE, rule.mode, blocked))
            continue
        try:
            outcome = evaluate_rule(log, in_run_units(rule, context.values, context.flags), grid, memo, origin)
        except Exception as exc:
            if strict:
                raise
            # One broken rule (a bad custom rule, a statistic that fails on odd data) must not
            # take the whole diagnosis down: it is reported as skipped, with the reason.
            logger.warning("gandoctor: rule %s failed and was skipped: %s", rule.code, exc, exc_info=True)
            skipped.append(SkippedRule(rule.code, SkipReason.ERROR, rule.mode, detail=f"{type(exc).__name__}: {exc}"))
            continue
        if isinstance(outcome, SkippedRule):
            skipped.append(outcome)
            continue
        checked.append(rule.code)
        if outcome is not None:
            fired.append(outcome)
    status = mode_status(rules, fired, skipped, checked)
    exact_onset = frozenset(r.code for r in rules.rules if r.params["exact_onset"])
    return EngineResult(merge_by_mode(fired, exact_onset), tuple(fired), tuple(skipped), first, last, tuple(checked), status)
