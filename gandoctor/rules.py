"""Rules as data: types, loading and validation of ``rules/*.toml``.

A rule file holds one rule. Conditions use the closed vocabulary of :mod:`gandoctor.windows`
and the operators in ``OPERATORS``; nothing in a rule file is ever executed. Thresholds may be
numbers or the name of a key in the rule's ``[params]`` table, so a project can override them
without copying the rule.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeGuard

import numpy as np

from ._toml import read_toml
from ._validate import expect as _expect
from ._validate import unknown_keys as _unknown_keys
from ._validate import where as _where
from .context import D_LOSS_UNIT_UNKNOWN, NO_LOSS_UNIT, STEPS_PER_G_STEP
from .derived import DERIVED
from .errors import RuleError
from .findings import MODES
from .remedies import Remedy, RemedyRef, Source, alias_table, parse_remedies, parse_remedy_refs, parse_sources
from .signals import SIGNALS
from .windows import STATISTICS

OPERATORS: tuple[str, ...] = ("<", "<=", ">", ">=")
MATCHES: tuple[str, ...] = ("all", "any")

_RULE_KEYS = {
    "code", "name", "mode", "summary", "why", "example", "match", "skip_if", "only_if", "params",
    "conditions", "corroborate", "remedies", "unless_signals", "inferred", "caveat", "notes",
}
_CONDITION_KEYS = {"signal", "stat", "op", "threshold", "window", "level", "optional", "scale"}
#: Context values a threshold may be measured in (``scale = "..."``; 1 when the run does not say).
SCALES: tuple[str, ...] = ("d_loss_unit",)
#: Timing parameters every rule has (see gandoctor.engine for their meaning); a rule's [params]
#: overrides them. Warm-up and persistence are capped by a share of the run's span, so short
#: runs can be judged; min_run_steps is the shortest run the rule judges at all.
_PARAM_DEFAULTS = {
    "warmup_steps": 300.0,
    "persist_steps": 300.0,
    "window": 200.0,
    "warmup_frac": 0.25,
    "persist_run_frac": 0.25,
    "persist_frac": 0.8,
    "end_frac": 0.6,
    "end_span_frac": 0.5,
    "min_checks": 3.0,
    "min_run_steps": 250.0,
    "window_run_frac": 0.0,  # > 0: every condition's window is this share of the run instead
    "window_run_max": 0.0,  # > 0: ... but at most this many steps (a long run's swings are not averaged away)
    "final_only": 0.0,  # 1: judged on the finished run (report(), analyze), not by live checks mid-run
    # 1: the rule marks an event with an exact first step (a non-finite value): when it fires, its
    # onset is the mode's onset, and an earlier onset of the mode's other rules is the first sign.
    "exact_onset": 0.0,
}
#: Rule codes: letters then digits ("GD101" for the built-ins, "X001" or "ACME12" for a project's own).
_CODE = re.compile(r"^[A-Z]{1,8}[0-9]{1,6}$")


_BUILTIN_NAMESPACES = frozenset(name.split(".")[0] for name in SIGNALS)


def known_signal(name: str) -> bool:
    """A signal in one of gandoctor's own namespaces must be a documented one (catches typos);
    any other namespace ('user.', a CSV column's) is a custom signal."""
    if name.split(".")[0] not in _BUILTIN_NAMESPACES:
        return True
    if name in SIGNALS or name in DERIVED:
        return True
    return name.startswith(("grad_norm.d.layer.", "grad_norm.g.layer.", "spectrum.d.layer.")) or name == "feat.nonfinite"


#: The comparison each ``op`` of a condition stands for (validated at load).
COMPARISONS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


@dataclass(frozen=True)
class Condition:
    """``stat(signal over the last `window` steps) op threshold``."""

    signal: str
    stat: str
    op: str
    threshold: float
    window: int
    level: float | None = None
    optional: bool = False
    threshold_param: str | None = None
    window_from_params: bool = True
    # A context value the threshold is multiplied by (D's loss in its form's units), if the run has it.
    scale: str | None = None

    def label(self) -> str:
        level = f", level={self.level:g}" if self.level is not None else ""
        return f"{self.stat}({self.signal}, {self.window} steps{level})"

    def holds(self, value: float) -> bool:
        return bool(self.holds_at(np.asarray(value, dtype=np.float64)))

    def holds_at(self, values: np.ndarray) -> np.ndarray:
        """``holds`` for every value at once (never on NaN/inf)."""
        return np.isfinite(values) & COMPARISONS.get(self.op, np.greater_equal)(values, self.threshold)


@dataclass(frozen=True)
class Note:
    """A caveat stated beside a finding only where its condition held over the finding's first
    window (``[[notes]]``: a condition's keys and ``text``): what a reader should know about this
    run's evidence, e.g. that D ranking every fake above every real is more likely an energy D
    than a D at chance."""

    condition: Condition
    text: str
    unless: tuple[str, ...] = ()  # context flags under which the note is not said (its advice is taken already)


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    mode: str
    summary: str
    why: str
    example: str
    match: str
    conditions: tuple[Condition, ...]
    corroborate: tuple[Condition, ...]
    remedies: tuple[RemedyRef, ...]
    skip_if: tuple[str, ...]
    params: Mapping[str, float]
    source_file: str
    unless_signals: tuple[str, ...] = ()
    # An inferred rule reads signals that go with the failure rather than the failure itself (a
    # dominant D implies a collapsed G): it can make a mode fail, but its silence clears nothing.
    inferred: bool = False
    # Judged only for runs that use all of these (a rule for one loss form's logs, say).
    only_if: tuple[str, ...] = ()
    # What the evidence cannot rule out, stated beside every finding of the rule (a report reader
    # sees the limit where the finding is, not only in `explain`).
    caveat: str = ""
    notes: tuple[Note, ...] = ()

    @property
    def warmup_steps(self) -> int:
        return int(self.params["warmup_steps"])

    @property
    def persist_steps(self) -> int:
        return int(self.params["persist_steps"])

    def signals(self) -> set[str]:
        return {c.signal for c in self.conditions + self.corroborate}


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    remedies: Mapping[str, Remedy] = field(default_factory=dict)
    sources: Mapping[str, Source] = field(default_factory=dict)  # what remedies cite

    def by_code(self, code: str) -> Rule:
        for rule in self.rules:
            if rule.code == code:
                return rule
        raise KeyError(code)


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_condition(raw: Any, path: Path, key: str, params: Mapping[str, float]) -> Condition:
    _expect(isinstance(raw, dict), path, key, "a table", raw)
    _unknown_keys(raw, _CONDITION_KEYS, path, key + ".")
    for required in ("signal", "stat", "op", "threshold"):
        _expect(required in raw, path, f"{key}.{required}", "a value (required)", None)
    signal = raw["signal"]
    _expect(isinstance(signal, str) and "." in signal, path, f"{key}.signal", "a dotted signal name such as 'loss.d'", signal)
    if not known_signal(signal):
        raise RuleError(
            f"{_where(path, key + '.signal')}: unknown signal {signal!r} in gandoctor's namespace "
            f"'{signal.split('.')[0]}'; known: {', '.join(s for s in SIGNALS if s.split('.')[0] == signal.split('.')[0])} "
            "(custom signals use another prefix, e.g. 'user.')"
        )
    stat = raw["stat"]
    _expect(isinstance(stat, str) and stat in STATISTICS, path, f"{key}.stat", f"one of {', '.join(sorted(STATISTICS))}", stat)
    op = raw["op"]
    _expect(op in OPERATORS, path, f"{key}.op", f"one of {' '.join(OPERATORS)}", op)
    threshold_raw = raw["threshold"]
    threshold_param = None
    if isinstance(threshold_raw, str):
        _expect(threshold_raw in params, path, f"{key}.threshold", f"a number or a key of [params] ({', '.join(sorted(params))})", threshold_raw)
        threshold_param = threshold_raw
        threshold = float(params[threshold_raw])
    else:
        _expect(_number(threshold_raw) and math.isfinite(threshold_raw), path, f"{key}.threshold", "a finite number", threshold_raw)
        threshold = float(threshold_raw)
    window_raw = raw.get("window", params["window"])
    _expect(_number(window_raw) and window_raw >= 1, path, f"{key}.window", "a number of steps >= 1", window_raw)
    level = raw.get("level")
    if STATISTICS[stat].needs_level:
        _expect(_number(level), path, f"{key}.level", f"a number (statistic '{stat}' needs a level)", level)
    elif level is not None:
        raise RuleError(f"{_where(path, key + '.level')}: statistic '{stat}' takes no level")
    optional = raw.get("optional", False)
    _expect(isinstance(optional, bool), path, f"{key}.optional", "true or false", optional)
    scale = raw.get("scale")
    _expect(scale is None or scale in SCALES, path, f"{key}.scale", f"one of {', '.join(SCALES)}", scale)
    return Condition(
        signal=signal,
        stat=stat,
        op=op,
        threshold=threshold,
        window=int(window_raw),
        level=None if level is None else float(level),
        optional=optional,
        threshold_param=threshold_param,
        window_from_params="window" not in raw,
        scale=scale,
    )


def parse_rule(data: Mapping[str, Any], path: Path, shared_notes: Mapping[str, Mapping[str, Any]] | None = None) -> Rule:
    """Validate one rule's table; every error names ``path`` and the key. A ``[[notes]]`` entry
    may be ``use = "name"``: the note of that name in a rules folder's ``notes.toml``."""
    _unknown_keys(data, _RULE_KEYS, path, "")
    for key in ("code", "name", "mode", "summary", "why", "conditions"):
        _expect(key in data, path, key, "a value (required)", None)
    code = data["code"]
    _expect(isinstance(code, str) and _CODE.match(code) is not None, path, "code", "a code of capital letters then digits, like 'GD101' or 'X001'", code)
    name = data["name"]
    _expect(isinstance(name, str) and bool(name) and name == name.lower() and " " not in name, path, "name", "a lowercase-with-dashes name", name)
    mode = data["mode"]
    _expect(mode in MODES, path, "mode", f"one of {', '.join(MODES)}", mode)
    for key in ("summary", "why"):
        _expect(isinstance(data[key], str) and data[key].strip(), path, key, "a non-empty string", data[key])
    example = data.get("example", "")
    _expect(isinstance(example, str), path, "example", "a string", example)
    match = data.get("match", "all")
    _expect(match in MATCHES, path, "match", "'all' or 'any'", match)
    skip_if = data.get("skip_if", [])
    _expect(isinstance(skip_if, list) and all(isinstance(s, str) for s in skip_if), path, "skip_if", "a list of context flags", skip_if)
    only_if = data.get("only_if", [])
    _expect(isinstance(only_if, list) and all(isinstance(s, str) for s in only_if), path, "only_if", "a list of context flags", only_if)

    inferred = data.get("inferred", False)
    _expect(isinstance(inferred, bool), path, "inferred", "true or false", inferred)
    caveat = data.get("caveat", "")
    _expect(isinstance(caveat, str), path, "caveat", "a string", caveat)
    unless = data.get("unless_signals", [])
    _expect(isinstance(unless, list) and all(isinstance(u, str) for u in unless), path, "unless_signals", "a list of signal names", unless)

    params_raw = data.get("params", {})
    _expect(isinstance(params_raw, dict), path, "params", "a table of numbers", params_raw)
    params: dict[str, float] = dict(_PARAM_DEFAULTS)
    for key, value in params_raw.items():
        _expect(_number(value) and math.isfinite(value), path, f"params.{key}", "a finite number", value)
        params[key] = float(value)

    conditions_raw = data["conditions"]
    _expect(isinstance(conditions_raw, list) and bool(conditions_raw), path, "conditions", "a non-empty array of tables ([[conditions]])", conditions_raw)
    conditions = tuple(_parse_condition(c, path, f"conditions[{i}]", params) for i, c in enumerate(conditions_raw))
    corroborate_raw = data.get("corroborate", [])
    _expect(isinstance(corroborate_raw, list), path, "corroborate", "an array of tables ([[corroborate]])", corroborate_raw)
    corroborate = tuple(_parse_condition(c, path, f"corroborate[{i}]", params) for i, c in enumerate(corroborate_raw))

    remedies = parse_remedy_refs(data.get("remedies", []), path)
    notes_raw = data.get("notes", [])
    _expect(isinstance(notes_raw, list), path, "notes", "an array of tables ([[notes]]: a condition and its text)", notes_raw)
    notes = tuple(_parse_note(_shared(n, shared_notes or {}, path, f"notes[{i}]"), path, f"notes[{i}]", params) for i, n in enumerate(notes_raw))
    return Rule(
        code=code,
        name=name,
        mode=mode,
        summary=data["summary"].strip(),
        why=data["why"].strip(),
        example=example.strip(),
        match=match,
        conditions=conditions,
        corroborate=corroborate,
        remedies=remedies,
        skip_if=tuple(skip_if),
        only_if=tuple(only_if),
        params=params,
        source_file=str(path),
        unless_signals=tuple(unless),
        inferred=inferred,
        caveat=" ".join(caveat.split()),
        notes=notes,
    )


def _parse_note(raw: Any, path: Path, key: str, params: Mapping[str, float]) -> Note:
    _expect(isinstance(raw, dict), path, key, "a table (a condition's keys and text)", raw)
    text = raw.get("text")
    _expect(isinstance(text, str) and bool(text.strip()), path, f"{key}.text", "a non-empty string", text)
    unless = raw.get("unless", [])
    _expect(isinstance(unless, list) and all(isinstance(f, str) for f in unless), path, f"{key}.unless", "a list of context flags", unless)
    condition = _parse_condition({k: v for k, v in raw.items() if k not in ("text", "unless")}, path, key, params)
    return Note(condition, " ".join(text.split()), tuple(unless))


def _shared(raw: Any, shared: Mapping[str, Mapping[str, Any]], path: Path, key: str) -> Any:
    """A note written once for several rules (``use = "name"``), or ``raw`` itself."""
    if not (isinstance(raw, dict) and "use" in raw):
        return raw
    name = raw["use"]
    _expect(set(raw) == {"use"}, path, key, "only 'use' beside a shared note's name (its condition and text are in notes.toml)", sorted(raw))
    _expect(isinstance(name, str) and name in shared, path, f"{key}.use", f"the name of a note in a rules folder's notes.toml (known: {', '.join(sorted(shared)) or 'none'})", name)
    return shared[name]


def _read_shared_notes(path: Path, known: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """``notes.toml``: named notes (``[name]``: a condition's keys and ``text``) that rules ``use``."""
    data = _read_toml(path)
    notes: dict[str, Mapping[str, Any]] = {}
    for name, table in data.items():
        _expect(isinstance(table, dict), path, name, "a table ([name]: a condition's keys and text)", table)
        _parse_note(table, path, name, _PARAM_DEFAULTS)  # named errors here, not at the first rule using it
        if name in known and known[name] != table:
            raise RuleError(f"{path}: key '{name}': note already defined differently by an earlier rules folder")
        notes[name] = table
    return notes


def _read_toml(path: Path) -> Mapping[str, Any]:
    return read_toml(path, RuleError)


def builtin_rules_dir() -> Path:
    """The rules shipped with gandoctor (installed as the ``gandoctor.builtin_rules`` package data).

    In a source checkout the ``rules/`` folder beside the package wins, so a second checkout (a
    git worktree) sharing one editable install reads its own rules, not the installed ones."""
    beside = Path(__file__).resolve().parent.parent / "rules"
    if beside.is_dir() and any(beside.glob("GD*.toml")):
        return beside
    try:
        from importlib.resources import files

        candidate = Path(str(files("gandoctor.builtin_rules")))
        if candidate.is_dir() and any(candidate.glob("GD*.toml")):
            return candidate
    except (ModuleNotFoundError, TypeError):
        pass
    return beside


def load_rules(dirs: Iterable[Path | str] | None = None, include_builtin: bool = True) -> RuleSet:
    """Load ``GD*.toml`` rules, ``remedies.toml`` and ``notes.toml`` from the built-in and the given folders."""
    folders: list[Path] = [builtin_rules_dir()] if include_builtin else []
    folders += [Path(d) for d in dirs or []]
    rules: list[Rule] = []
    remedies: dict[str, Remedy] = {}
    sources: dict[str, Source] = {}
    seen: dict[str, str] = {}
    shared_notes: dict[str, Mapping[str, Any]] = {}
    for folder in folders:
        if not folder.is_dir():
            raise RuleError(f"{folder}: rules folder does not exist")
        remedy_file = folder / "remedies.toml"
        if remedy_file.exists():
            data = _read_toml(remedy_file)
            # a later folder's catalogue may cite the sources of an earlier one (the built-in)
            sources |= parse_sources(data, remedy_file)
            for rid, remedy in parse_remedies(data, remedy_file, sources).items():
                if rid in remedies and remedies[rid] != remedy:
                    raise RuleError(f"{remedy_file}: key 'remedy.{rid}': remedy id already defined differently by an earlier rules folder")
                remedies[rid] = remedy
        if (folder / "notes.toml").exists():
            shared_notes |= _read_shared_notes(folder / "notes.toml", shared_notes)
        for path in sorted(folder.glob("*.toml")):
            if path.name in ("remedies.toml", "notes.toml"):
                continue
            rule = parse_rule(_read_toml(path), path, shared_notes)
            if rule.code in seen:
                raise RuleError(f"{path}: key 'code': duplicate rule code {rule.code} (also in {seen[rule.code]})")
            if rule.name in seen:
                raise RuleError(f"{path}: key 'name': duplicate rule name {rule.name!r} (also in {seen[rule.name]})")
            seen[rule.code] = seen[rule.name] = str(path)
            rules.append(rule)
    names = alias_table(remedies)  # a rule may name a remedy by an old name (alias)
    for n, rule in enumerate(rules):
        for i, ref in enumerate(rule.remedies):
            if ref.id not in names:
                raise RuleError(f"{rule.source_file}: key 'remedies[{i}].id': unknown remedy {ref.id!r}; known: {', '.join(sorted(remedies))}")
        rules[n] = replace(rule, remedies=tuple(replace(ref, id=names[ref.id]) for ref in rule.remedies))
    return RuleSet(tuple(sorted(rules, key=lambda r: r.code)), remedies, sources)


def _each_condition(rule: Rule, change: Callable[[Condition], Condition], corroborate: tuple[Condition, ...] | None = None) -> Rule:
    """``rule`` with ``change`` applied to every condition it reads: its conditions, its
    corroborations (``corroborate`` in their place where given) and its notes' conditions."""
    return replace(
        rule,
        conditions=tuple(map(change, rule.conditions)),
        corroborate=tuple(map(change, rule.corroborate if corroborate is None else corroborate)),
        notes=tuple(replace(note, condition=change(note.condition)) for note in rule.notes),
    )


def _rebind(c: Condition, params: Mapping[str, float]) -> Condition:
    """A condition with its window and threshold read again from (overridden) params."""
    window = int(params["window"]) if c.window_from_params else c.window
    threshold = params[c.threshold_param] if c.threshold_param else c.threshold
    return replace(c, threshold=threshold, window=window)


#: Runs whose D loss has no unit a scaled threshold could be read in: a Wasserstein critic's
#: estimate, an energy D's margin or reconstruction error, and a loss of no known form whose unit
#: was not declared.
UNITLESS_D_LOSS = NO_LOSS_UNIT | {D_LOSS_UNIT_UNKNOWN}


def in_run_units(rule: Rule, values: Mapping[str, Any], flags: frozenset[str] = frozenset()) -> Rule:
    """``rule`` in the run's units: its steps in G iterations where the loop makes several doctor
    steps per G step, and each scaled threshold multiplied by the run's context value (unchanged
    when the run does not have it, or has no positive finite number there). Where D's loss has no
    unit (``flags``: a critic, an energy D) a corroboration on a scaled threshold is dropped:
    BEGAN's reconstruction error under BCE's floor corroborates nothing (the rules whose
    conditions read it are skipped for those runs by their ``skip_if``)."""
    per_g = values.get(STEPS_PER_G_STEP)
    if _number(per_g) and 1 < per_g < math.inf:
        rule = in_g_iterations(rule, float(per_g))
    if any(set(note.unless) & flags for note in rule.notes):
        rule = replace(rule, notes=tuple(note for note in rule.notes if not set(note.unless) & flags))

    def scaled(c: Condition) -> Condition:
        factor = values.get(c.scale) if c.scale else None
        if not _number(factor) or not 0 < factor < math.inf or factor == 1:
            return c
        return replace(c, threshold=c.threshold * float(factor))

    if not any(c.scale for c in (*rule.conditions, *rule.corroborate, *(n.condition for n in rule.notes))):
        return rule
    corroborate = tuple(c for c in rule.corroborate if not (c.scale and flags & UNITLESS_D_LOSS))
    return _each_condition(rule, scaled, corroborate)


#: Rule parameters counted in steps (a zero ``window_run_max`` stays off).
STEP_PARAMS = ("warmup_steps", "persist_steps", "window", "min_run_steps", "window_run_max")


def in_g_iterations(rule: Rule, steps_per_g: float) -> Rule:
    """``rule`` with its steps counted in G iterations of a loop that makes ``steps_per_g``
    doctor steps per G step: warm-up, persistence, windows and the shortest run it judges."""
    params = dict(rule.params) | {key: rule.params[key] * steps_per_g for key in STEP_PARAMS if key in rule.params}
    return _each_condition(replace(rule, params=params), lambda c: replace(c, window=max(1, int(round(c.window * steps_per_g)))))


def with_overrides(rules: RuleSet, disable: Iterable[str], params: Mapping[str, Mapping[str, float]], origin: str) -> RuleSet:
    """Apply a project's overrides: disable rules by code or name, override ``[params]``."""
    known = {r.code for r in rules.rules} | {r.name for r in rules.rules}
    disabled = set(disable)
    for item in disabled:
        if item not in known:
            raise RuleError(f"{origin}: key 'disable': unknown rule {item!r}; known codes: {', '.join(sorted(r.code for r in rules.rules))}")
    for item in params:
        if item not in known:
            raise RuleError(f"{origin}: key 'rules.{item}': unknown rule {item!r}")
    out: list[Rule] = []
    for rule in rules.rules:
        if rule.code in disabled or rule.name in disabled:
            continue
        override = dict(params.get(rule.code, {})) | dict(params.get(rule.name, {}))
        if override:
            for key, value in override.items():
                if key not in rule.params:
                    raise RuleError(f"{origin}: key 'rules.{rule.code}.{key}': unknown parameter; {rule.code} has {', '.join(sorted(rule.params))}")
                if not _number(value) or not math.isfinite(value):
                    raise RuleError(f"{origin}: key 'rules.{rule.code}.{key}': expected a finite number, got {value!r}")
            new_params = dict(rule.params) | {k: float(v) for k, v in override.items()}

            rule = _each_condition(replace(rule, params=new_params), functools.partial(_rebind, params=new_params))
        out.append(rule)
    return RuleSet(tuple(out), rules.remedies, rules.sources)
