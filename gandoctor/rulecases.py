"""Rule test cases as data, as sqlfluff and ruff keep theirs: series that must fire at an onset,
series that must stay quiet. One file per rule, ``<rules folder>/cases/<CODE>.toml``.

A case builds a signal log from piecewise-constant segments and evaluates that rule alone::

    [[case]]
    name = "losses turn NaN at step 300 and the run stops three steps later"
    expect = "fire"        # fire | quiet | too_short | skipped
    onset = 300            # with expect = "fire"; +- tolerance steps
    tolerance = 0
    steps = 304            # records at steps 0..steps-1
    context = []           # context flags, e.g. ["critic"]
    values = {}            # context values, e.g. {d_loss_unit = 0.25}
    caveat_has = ""        # with expect = "fire": text the finding's caveat must hold
    caveat_lacks = ""      # ... and text it must not (a [[notes]] caveat stated where it holds only)
    [case.signals]
    "loss.d" = [[0, 0.7], [300, "nan"]]                      # from step 0: 0.7; from 300: NaN
    "d.auc" = [[0, [0.3, 0.9]]]                              # a list alternates record by record
    "feat.coverage_ratio" = {every = 100, segments = [[0, 0.9], [600, 0.05]]}

Nothing in a case file is executed; errors name the file and key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

from ._toml import read_toml
from .context import RunContext
from .engine import evaluate
from .errors import RuleError
from .findings import SkipReason
from .rules import RuleSet
from .signals import SignalLog


class Expect(str, Enum):
    FIRE = "fire"
    QUIET = "quiet"
    TOO_SHORT = "too_short"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class SignalSpec:
    every: int
    segments: tuple[tuple[int, tuple[float, ...]], ...]  # (from step, values cycled record by record)

    def value(self, step: int, index: int) -> float:
        current: tuple[float, ...] = (math.nan,)
        for start, values in self.segments:
            if step >= start:
                current = values
        return current[index % len(current)]


@dataclass(frozen=True)
class RuleCase:
    rule: str
    name: str
    expect: Expect
    steps: int
    signals: Mapping[str, SignalSpec]
    onset: int | None = None
    tolerance: int = 0
    context: tuple[str, ...] = ()
    source: str = ""
    values: Mapping[str, float] = field(default_factory=dict)
    caveat_has: str = ""
    caveat_lacks: str = ""

    def signal_log(self) -> SignalLog:
        log = SignalLog()
        for step in range(self.steps):
            values = {
                name: spec.value(step, step // spec.every) for name, spec in self.signals.items() if step % spec.every == 0
            }
            if values:
                log.record(step, values)
        return log


@dataclass(frozen=True)
class CaseResult:
    case: RuleCase
    passed: bool
    got: str


def _number(raw: Any, where: str) -> float:
    if isinstance(raw, str) and raw.lower() in ("nan", "inf", "-inf"):
        return float(raw)
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    raise RuleError(f"{where}: expected a number or \"nan\"/\"inf\", got {raw!r}")


def _signal(raw: Any, where: str) -> SignalSpec:
    every = 1
    if isinstance(raw, dict):
        every = raw.get("every", 1)
        if not isinstance(every, int) or every < 1:
            raise RuleError(f"{where}.every: expected a positive integer, got {every!r}")
        raw = raw.get("segments")
    if not isinstance(raw, list) or not raw:
        raise RuleError(f"{where}: expected a list of [from_step, value] pairs, got {raw!r}")
    segments = []
    for i, seg in enumerate(raw):
        if not (isinstance(seg, list) and len(seg) == 2 and isinstance(seg[0], int)):
            raise RuleError(f"{where}[{i}]: expected [from_step, value or list of values], got {seg!r}")
        values = seg[1] if isinstance(seg[1], list) else [seg[1]]
        segments.append((seg[0], tuple(_number(v, f"{where}[{i}]") for v in values)))
    return SignalSpec(every, tuple(segments))


def load_cases(path: Path) -> list[RuleCase]:
    data = read_toml(path, RuleError)
    raw_cases = data.get("case")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise RuleError(f"{path}: key 'case': expected one or more [[case]] tables")
    cases = []
    for i, raw in enumerate(raw_cases):
        where = f"{path}: key 'case[{i}]"
        if not isinstance(raw, dict):
            raise RuleError(f"{where}': expected a table")
        try:
            expect = Expect(raw.get("expect"))
        except ValueError:
            raise RuleError(f"{where}.expect': expected one of {', '.join(e.value for e in Expect)}, got {raw.get('expect')!r}") from None
        steps = raw.get("steps")
        if not isinstance(steps, int) or steps < 1:
            raise RuleError(f"{where}.steps': expected a positive integer, got {steps!r}")
        signals = raw.get("signals")
        if not isinstance(signals, dict) or not signals:
            raise RuleError(f"{where}.signals': expected a table of signal series")
        onset = raw.get("onset")
        if expect is Expect.FIRE and not isinstance(onset, int):
            raise RuleError(f"{where}.onset': expect = \"fire\" needs the step it must fire at, got {onset!r}")
        context = raw.get("context", [])
        if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
            raise RuleError(f"{where}.context': expected a list of context flags, got {context!r}")
        caveat_has, caveat_lacks = raw.get("caveat_has", ""), raw.get("caveat_lacks", "")
        if not (isinstance(caveat_has, str) and isinstance(caveat_lacks, str)):
            raise RuleError(f"{where}.caveat_has' / 'caveat_lacks': expected text, got {caveat_has!r}, {caveat_lacks!r}")
        values = raw.get("values", {})
        if not isinstance(values, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()):
            raise RuleError(f"{where}.values': expected a table of context values (numbers), got {values!r}")
        cases.append(
            RuleCase(
                rule=path.stem,
                name=str(raw.get("name", f"case {i}")),
                expect=expect,
                steps=steps,
                signals={name: _signal(spec, f"{where}.signals.{name}'") for name, spec in signals.items()},
                onset=onset,
                tolerance=int(raw.get("tolerance", 0)),
                context=tuple(context),
                source=str(path),
                values={k: float(v) for k, v in values.items()},
                caveat_has=caveat_has,
                caveat_lacks=caveat_lacks,
            )
        )
    return cases


def run_case(case: RuleCase, rules: RuleSet) -> CaseResult:
    try:
        rule = rules.by_code(case.rule)
    except KeyError:
        raise RuleError(f"{case.source}: no rule {case.rule!r} in the rules loaded") from None
    result = evaluate(case.signal_log(), RuleSet((rule,), rules.remedies), RunContext(frozenset(case.context), dict(case.values)), strict=True)
    if result.findings:
        got, onset = f"fired at step {result.findings[0].onset_step}", result.findings[0].onset_step
    elif result.skipped:
        got, onset = f"skipped ({result.skipped[0].describe()})", None
    else:
        got, onset = "quiet", None
    if case.expect is Expect.FIRE:
        passed = onset is not None and case.onset is not None and abs(onset - case.onset) <= case.tolerance
        if result.findings and (case.caveat_has or case.caveat_lacks):
            caveat = result.findings[0].caveat or ""
            got += f", caveat {caveat!r}"
            passed = passed and case.caveat_has in caveat and not (case.caveat_lacks and case.caveat_lacks in caveat)
    elif case.expect is Expect.QUIET:
        passed = got == "quiet"
    elif case.expect is Expect.TOO_SHORT:
        passed = bool(result.skipped) and result.skipped[0].reason is SkipReason.TOO_SHORT
    else:
        passed = bool(result.skipped)
    return CaseResult(case, passed, got)


def check_folder(folder: Path, rules: RuleSet) -> list[CaseResult]:
    """Run every case file in ``folder/cases`` against the loaded rules."""
    results: list[CaseResult] = []
    for path in sorted((folder / "cases").glob("*.toml")):
        results.extend(run_case(case, rules) for case in load_cases(path))
    return results
