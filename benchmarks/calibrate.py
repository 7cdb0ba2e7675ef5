"""Fit the calibratable rule thresholds on calibration groups only, score the held-out group.

    python benchmarks/calibrate.py --holdout family=dcgan_bn [--runs fixtures/corpus] [--out fitted.toml]
    python benchmarks/calibrate.py --all --out fitted.toml           # fit on every calibratable run

The spec (``benchmarks/calibration.toml``) lists rule parameters: rule code (or name), parameter
name, candidates (a list, or ``range = [lo, hi]`` with ``steps`` and ``scale = "linear"|"log"``),
optionally the mode whose F1 it is fitted for (default: the rule's mode) and the source it is
fitted on (``live``: the Doctor's log, default; ``scalars``: the scalar CSV). Entries whose rule
or parameter the loaded rules do not have are skipped with a note, so the spec survives rule
changes.

Coordinate search from each parameter's middle candidate (never from the shipped value, which was
fitted on every run), two sweeps over the spec in order: each parameter takes the candidate that
maximises its mode's F1 on the calibration runs among those with no false alarm of that mode on
a calibration run the oracle calls healthy (none such: fewest false alarms, then F1); ties keep
the value closest to the current one. Runs marked ``never_calibrate`` are never used here.

The fitted overrides are written as ``[tool.gandoctor.rules.GDxxx]`` tables, which
``gandoctor analyze --config FILE`` and ``Doctor(config=FILE)`` read.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from gandoctor import ConfigError, RuleSet, diagnose
from gandoctor.rules import with_overrides

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import detection  # noqa: E402  (benchmarks/detection.py: corpus, cache, predictions, scores)

SPEC_KEYS = {"rule", "param", "candidates", "range", "steps", "scale", "mode", "source"}


@dataclass(frozen=True)
class Param:
    rule: str
    param: str
    candidates: tuple[float, ...]
    mode: str | None
    source: str


@dataclass(frozen=True)
class Fit:
    overrides: dict[str, dict[str, float]]
    notes: tuple[str, ...]
    calibration: dict = field(default_factory=dict)   # mode -> {"f1", "false_alarms"} on the calibration runs


def load_spec(path: Path) -> list[Param]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the calibration spec: {e}") from e
    out = []
    for i, raw in enumerate(data.get("param", [])):
        where = f"{path}: key 'param[{i}]'"
        at = lambda k, i=i: f"{path}: key 'param[{i}].{k}'"  # noqa: E731
        unknown = set(raw) - SPEC_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(SPEC_KEYS)}")
        for k in ("rule", "param"):
            if not isinstance(raw.get(k), str):
                raise ConfigError(f"{at(k)}: expected a string, got {raw.get(k)!r}")
        if "candidates" in raw:
            cands = raw["candidates"]
            if not isinstance(cands, list) or not cands or not all(isinstance(c, (int, float)) for c in cands):
                raise ConfigError(f"{at('candidates')}: expected a non-empty list of numbers, got {cands!r}")
        elif "range" in raw:
            lo_hi, steps, scale = raw["range"], raw.get("steps", 7), raw.get("scale", "linear")
            if not (isinstance(lo_hi, list) and len(lo_hi) == 2 and all(isinstance(c, (int, float)) for c in lo_hi)):
                raise ConfigError(f"{at('range')}: expected [lo, hi], got {lo_hi!r}")
            if not isinstance(steps, int) or steps < 2:
                raise ConfigError(f"{at('steps')}: expected an integer >= 2, got {steps!r}")
            if scale == "log":
                if min(lo_hi) <= 0:
                    raise ConfigError(f"{at('range')}: a log range needs positive bounds, got {lo_hi!r}")
                cands = list(np.geomspace(lo_hi[0], lo_hi[1], steps))
            elif scale == "linear":
                cands = list(np.linspace(lo_hi[0], lo_hi[1], steps))
            else:
                raise ConfigError(f"{at('scale')}: expected 'linear' or 'log', got {scale!r}")
        else:
            raise ConfigError(f"{where}: needs 'candidates' or 'range'")
        source = raw.get("source", "live")
        if source not in ("live", "scalars"):
            raise ConfigError(f"{at('source')}: expected 'live' or 'scalars', got {source!r}")
        mode = raw.get("mode")
        if mode is not None and mode not in detection.MODES:
            raise ConfigError(f"{at('mode')}: unknown mode {mode!r}; known: {', '.join(detection.MODES)}")
        out.append(Param(raw["rule"], raw["param"], tuple(float(f"{c:.6g}") for c in cands), mode, source))
    return out


def apply(rules: RuleSet, overrides: Mapping[str, Mapping[str, float]]) -> RuleSet:
    return with_overrides(rules, (), overrides, "calibration") if overrides else rules


def _healthy(c: detection.Case) -> bool:
    return not c.labels


class RuleCache:
    """Each rule's onset per run, keyed by the rule's own parameters: when one parameter moves,
    only its rule is re-evaluated, and folds that share runs share the work (one cache for every
    fold of a leave-one-out). The rule is evaluated together with the rule of the smallest window,
    so the evaluation grid is the one the full rule set uses."""

    def __init__(self, predictor: detection.Predictor) -> None:
        self.predictor = predictor
        self.memo: dict[tuple, dict[str, int | None]] = {}

    def onsets(self, rules: RuleSet, code: str, source: str, cases: list[detection.Case]) -> dict[str, int | None]:
        rule = next(r for r in rules.rules if r.code == code)
        anchor = min(rules.rules, key=lambda r: min((c.window for c in r.conditions), default=10**9))
        # only the anchor's smallest window matters (it sets the grid): keep that one condition
        small = min(anchor.conditions, key=lambda c: c.window)
        anchor = replace(anchor, conditions=(replace(small, optional=False),), corroborate=(), match="all")
        key = (source, code, tuple(sorted(rule.params.items())), anchor.code, small.window)
        memo = self.memo.setdefault(key, {})
        sub = None
        for c in cases:
            if c.name in memo:
                continue
            if sub is None:
                sub = replace(rules, rules=(rule,) if anchor.code == code else (rule, anchor))
            logs = self.predictor.cache.get(c)
            data = logs.live if source == "live" else logs.scalars
            found = None
            if data is not None:
                report = diagnose(data.signals, sub, data.context)
                # findings are merged by mode: the rule is the finding's own or among also_fired
                hits = [f.onset_step or 0 for f in report.findings if f.rule == code or code in f.also_fired]
                found = min(hits) + (detection.LIVE_STEP_OFFSET if source == "live" else 0) if hits else None
            memo[c.name] = found
        return memo


def _mode_score(cases: list[detection.Case], mode: str, fired: Mapping[str, bool]) -> tuple[float, int]:
    tp = sum(1 for c in cases if mode in c.labels and fired[c.name])
    fn = sum(1 for c in cases if mode in c.labels and not fired[c.name])
    fp = sum(1 for c in cases if mode not in c.labels and fired[c.name])
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    fa = sum(1 for c in cases if _healthy(c) and fired[c.name])
    return f1, fa


def fit(cases: list[detection.Case], predictor: detection.Predictor, spec: list[Param], sweeps: int = 2,
        cache: RuleCache | None = None) -> Fit:
    cases = [c for c in cases if not c.never_calibrate]
    base = predictor.rules
    by_code = {r.code: r for r in base.rules} | {r.name: r for r in base.rules}
    notes: list[str] = []
    todo: list[Param] = []
    for p in spec:
        rule = by_code.get(p.rule)
        if rule is None:
            notes.append(f"{p.rule}.{p.param}: no such rule in the loaded rules; skipped")
        elif p.param not in rule.params:
            notes.append(f"{p.rule}.{p.param}: {rule.code} has no parameter {p.param!r} "
                         f"(has {', '.join(sorted(rule.params))}); skipped")
        else:
            todo.append(replace(p, rule=rule.code, mode=p.mode or rule.mode))
    cache = cache or RuleCache(predictor)
    # The search starts from each parameter's middle candidate, not from the shipped value: the
    # shipped value was fitted on every run, a held-out group's included, and a fold that started
    # there (and kept it on ties) would carry that fit into the held-out figures.
    overrides: dict[str, dict[str, float]] = {}
    for p in todo:
        overrides.setdefault(p.rule, {})[p.param] = sorted(p.candidates)[(len(p.candidates) - 1) // 2]
    calibration: dict[str, dict] = {}
    for _ in range(sweeps):
        for p in todo:
            mode_rules = [r.code for r in base.rules if r.mode == p.mode]
            current = overrides.get(p.rule, {}).get(p.param, by_code[p.rule].params[p.param])
            best = None
            for v in p.candidates:
                trial = {k: dict(d) for k, d in overrides.items()}
                trial.setdefault(p.rule, {})[p.param] = v
                rules = apply(base, trial)
                per_rule = [cache.onsets(rules, code, p.source, cases) for code in mode_rules]
                fired = {c.name: any(o[c.name] is not None for o in per_rule) for c in cases}
                f1, fa = _mode_score(cases, p.mode, fired)
                # rank: no false alarm on healthy runs first, then F1, then closeness to the current value
                rank = (fa == 0, -fa if fa else 0, round(f1, 6), -abs(math.log(abs(v) + 1e-12) - math.log(abs(current) + 1e-12)))
                if best is None or rank > best[0]:
                    best = (rank, v, f1, fa)
            assert best is not None
            overrides.setdefault(p.rule, {})[p.param] = best[1]
            calibration[p.mode] = {"f1": best[2], "healthy_false_alarms": best[3]}
    # keep only what differs from the shipped rules
    clean = {code: {k: v for k, v in d.items() if v != by_code[code].params[k]} for code, d in overrides.items()}
    return Fit({k: v for k, v in clean.items() if v}, tuple(notes), calibration)


def to_toml(fit_: Fit, header: str) -> str:
    lines = [f"# {line}" for line in header.splitlines()]
    for note in fit_.notes:
        lines.append(f"# note: {note}")
    for code in sorted(fit_.overrides):
        lines += ["", f"[tool.gandoctor.rules.{code}]"]
        lines += [f"{k} = {v!r}" for k, v in sorted(fit_.overrides[code].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=str(detection.DEFAULT_RUNS))
    parser.add_argument("--spec", default=str(HERE / "calibration.toml"))
    g = parser.add_mutually_exclusive_group(required=True)
    g.add_argument("--holdout", metavar="KEY=VALUE", help="fit on every other group, score this one (KEY: family|dataset)")
    g.add_argument("--all", action="store_true", help="fit on every calibratable run (nothing held out)")
    parser.add_argument("--out", help="write the fitted overrides here (TOML)")
    parser.add_argument("--columns", metavar="COL[,COL]",
                        help="fit on scalar logs cut to these columns (and their step), as detection.py --columns scores them")
    args = parser.parse_args(argv)
    t0 = time.time()
    cases = detection.load_cases(Path(args.runs))
    try:
        columns = detection.parse_columns(args.columns, cases)
    except ValueError as exc:
        parser.error(str(exc))
    predictor = detection.Predictor(detection.LogCache(columns), detection.load_rules())
    spec = load_spec(Path(args.spec))
    if args.holdout:
        key, _, value = args.holdout.partition("=")
        if key not in ("family", "dataset") or not value:
            parser.error(f"--holdout expects family=NAME or dataset=NAME, got {args.holdout!r}")
        held = [c for c in cases if c.group(key) == value]
        if not held:
            parser.error(f"--holdout {args.holdout}: no run has {key} {value!r}")
        cal = [c for c in cases if c.group(key) != value]
    else:
        held, cal = [], cases
    result = fit(cal, predictor, spec)
    header = (f"fitted by benchmarks/calibrate.py on {sum(not c.never_calibrate for c in cal)} runs of {args.runs}"
              + (f", {args.holdout} held out" if args.holdout else ""))
    text = to_toml(result, header)
    if args.out:
        Path(args.out).write_text(text)
    print("```toml\n" + text + "```")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if held:
        rules = apply(predictor.rules, result.overrides)
        preds = {s: {c.name: predictor.predict(c, s, rules) for c in held} for s in detection.SOURCES}
        scores = {s: detection.score(held, preds[s]) for s in detection.SOURCES}
        print(detection.render(f"Held out {args.holdout}, thresholds fitted on the other groups", scores))
    print(f"({time.time() - t0:.0f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
