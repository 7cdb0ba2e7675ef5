"""The remedy catalogue: types, loading of ``rules/remedies.toml``, and ranking for the run at hand.

A remedy is data: the change, the modes it addresses and why, its citations, and checks on the
run's context from a closed vocabulary (``flag``, ``without``, ``above``, ``below``, ``one_of``,
``contains``). Nothing in the file is executed; ``say`` texts may name context values
(``{lr_d}``, ``{lr_d/4}``, ``{latent_dim*4}``, ``{ratio}``) and nothing else.

Ranking, per finding: the rule's own order and weights give the base; the catalogue weight of
the remedy multiplies it (set from the cure benchmark, with the reason in the file); checks that
hold on the context promote or demote it and say why, with the run's numbers. A remedy the run
already uses is skipped, unless a ``misconfigured`` check holds: then fixing it is proposed
("gradient-penalty weight 0.1 is far below the usual 10"). A remedy several findings call for
is promoted, since one change then addresses more than one failure.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping

from ._validate import expect as _expect
from ._validate import unknown_keys as _unknown
from .errors import RuleError
from .findings import MODES, Finding, RankedRemedy, RunContext, SkippedRemedy

if TYPE_CHECKING:  # rules.py imports this module; the type is only needed for annotations
    from .rules import RuleSet

PREFER_BOOST = 1.5
SHARED_BOOST = 1.25
MISCONFIGURED_BOOST = 2.0
POSITION_DECAY = 0.25  # the k-th remedy of a rule starts at weight / (1 + 0.25 k)

Kind = Literal["change", "workflow"]
KINDS: tuple[Kind, ...] = ("change", "workflow")
Verdict = Literal["propose", "fix", "skip", "inapplicable"]

_REMEDY_KEYS = {
    "title", "action", "why", "addresses", "cites", "source", "section", "not_if", "only_if",
    "prefer_if", "aliases", "weight", "weight_reason", "kind", "promote", "skip", "misconfigured", "offer",
}
_CITE_KEYS = {"source", "section"}
_SOURCE_KEYS = {"title", "kind", "note", "authors", "year", "venue", "arxiv"}
_CHECK_KEYS = {"flag", "without", "above", "below", "one_of", "contains", "say", "boost"}
_COMPARE_KEYS = {"key", "than", "ratio_to", "factor"}
_ROUNDING = 1e-9  # relative: a value at a bound to float rounding is at the bound
_REMEDY_REF_KEYS = {"id", "weight"}
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_FIELD = re.compile(r"\{([a-z][a-z0-9_]*)(?:([*/])([0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?))?\}")


# -- types -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """A document the product rests on, or a primary source (paper)."""

    id: str
    title: str
    kind: str = "paper"  # "document" or "paper"
    note: str = ""
    authors: str = ""
    year: int | None = None
    venue: str = ""
    arxiv: str = ""

    def cite(self, section: str = "") -> str:
        if self.kind == "document":
            where = f", section “{section}”" if section else ""
            note = f" ({self.note})" if self.note else ""
            return f"“{self.title}”{note}{where}"
        parts = [f"{self.authors} {self.year}".strip(), f"“{self.title}”"]
        if self.venue:
            parts.append(self.venue)
        if self.arxiv:
            parts.append(f"arXiv:{self.arxiv}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Citation:
    source: str  # a Source id
    section: str = ""


@dataclass(frozen=True)
class Bound:
    """``above``: ``values[key] > than``, or ``values[key] >= factor * values[ratio_to]`` (a ratio is
    at least its factor, to float rounding); ``below``: ``< than``, or the ratio under its factor."""

    key: str
    than: float | None = None
    ratio_to: str | None = None
    factor: float = 1.0

    def keys(self) -> tuple[str, ...]:
        return (self.key,) if self.ratio_to is None else (self.key, self.ratio_to)


@dataclass(frozen=True)
class Check:
    """All listed tests must hold on the context. ``say`` is the reason shown, with the run's numbers."""

    say: str
    flags: tuple[str, ...] = ()  # all set
    without: tuple[str, ...] = ()  # none set
    above: tuple[Bound, ...] = ()
    below: tuple[Bound, ...] = ()
    one_of: tuple[tuple[str, tuple[str, ...]], ...] = ()  # value (a string) is one of these
    contains: tuple[tuple[str, tuple[str, ...]], ...] = ()  # value (a list of names) has one containing any of these
    boost: float = 1.0

    def keys(self) -> set[str]:
        out = {k for c in self.above + self.below for k in c.keys()}
        return out | {k for k, _ in self.one_of + self.contains}

    def evaluate(self, context: RunContext) -> str | None:
        """The rendered ``say`` when the check holds, else None. A missing value never holds."""
        if any(f not in context.flags for f in self.flags) or any(f in context.flags for f in self.without):
            return None
        numbers: dict[str, float] = {}
        for comparisons, sign in ((self.above, 1.0), (self.below, -1.0)):
            for c in comparisons:
                value = _number_of(context.values.get(c.key))
                if value is None:
                    return None
                numbers[c.key] = value
                if c.ratio_to is not None:
                    other = _number_of(context.values.get(c.ratio_to))
                    if other is None or other <= 0:
                        return None
                    numbers[c.ratio_to] = other
                    numbers["ratio"] = value / other
                    limit = c.factor * other
                    # A ratio is "at least" its factor, to float rounding: D's rate 1.5e-3 against G's
                    # 1.5e-4 is 10x (read as just under it, it got the 2-10x advice: swap the rates).
                    reached = value >= limit - _ROUNDING * abs(limit)
                    holds = reached if sign > 0 else not reached
                else:
                    limit = float(c.than)  # type: ignore[arg-type]
                    holds = sign * (value - limit) > 0
                if not holds:
                    return None
        for key, allowed in self.one_of:
            value = context.values.get(key)
            if not isinstance(value, str) or value not in allowed:
                return None
        for key, parts in self.contains:
            value = context.values.get(key)
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, (list, tuple)) or not any(p in str(n) for n in names for p in parts):
                return None
        return _render(self.say, numbers, context.values)


@dataclass(frozen=True)
class Remedy:
    id: str
    title: str
    action: str
    source: str  # the cited works as one line: documents by title, then papers
    section: str  # the documents' sections, in the same order
    not_if: tuple[str, ...] = ()
    prefer_if: tuple[str, ...] = ()
    why: str = ""
    addresses: Mapping[str, str] = field(default_factory=dict)  # mode -> why it helps there
    cites: tuple[Citation, ...] = ()
    only_if: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    weight: float = 1.0
    weight_reason: str = ""
    kind: Kind = "change"
    promote: tuple[Check, ...] = ()
    skip: tuple[Check, ...] = ()
    misconfigured: tuple[Check, ...] = ()
    # Offered for a finding of any rule where one of these holds (a learning rate of 5, far outside
    # any working range, is the first thing to change whatever failed), not only where a rule lists it.
    offer: tuple[Check, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The flag names that mean "the run does this": the id and its aliases."""
        return (self.id, *self.aliases)


@dataclass(frozen=True)
class RemedyRef:
    """A rule's reference to a remedy, in the rule's order of preference."""

    id: str
    weight: float = 1.0


@dataclass(frozen=True)
class ModeNote:
    """What a failure mode looks like and its causes, as the documents describe them."""

    mode: str
    looks_like: str
    causes: tuple[str, ...]
    cites: tuple[Citation, ...]


# -- parsing ---------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number_of(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def _str_list(raw: Any, path: Path | str, key: str, what: str = "a list of names") -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    _expect(isinstance(raw, list) and all(isinstance(v, str) and v for v in raw), path, key, what, raw)
    return tuple(raw)


def _parse_bound(raw: Any, path: Path | str, key: str) -> tuple[Bound, ...]:
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        k = key if len(items) == 1 else f"{key}[{i}]"
        _expect(isinstance(item, dict), path, k, "a table {key = ..., than = N} or {key = ..., ratio_to = ..., factor = N}", item)
        _unknown(item, _COMPARE_KEYS, path, k + ".")
        _expect(isinstance(item.get("key"), str) and item["key"], path, k + ".key", "a context value name", item.get("key"))
        has_than, has_ratio = "than" in item, "ratio_to" in item
        _expect(has_than != has_ratio, path, k, "exactly one of 'than' or 'ratio_to'", item)
        if has_than:
            _expect(_is_number(item["than"]), path, k + ".than", "a finite number", item["than"])
        else:
            _expect(isinstance(item["ratio_to"], str) and bool(item["ratio_to"]), path, k + ".ratio_to", "a context value name", item["ratio_to"])
        factor = item.get("factor", 1.0)
        _expect(_is_number(factor) and factor > 0, path, k + ".factor", "a positive number", factor)
        out.append(Bound(item["key"], float(item["than"]) if has_than else None, item.get("ratio_to"), float(factor)))
    return tuple(out)


def _parse_membership(raw: Any, path: Path | str, key: str, field_name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        k = key if len(items) == 1 else f"{key}[{i}]"
        _expect(isinstance(item, dict) and set(item) == {"key", field_name}, path, k, f"a table {{key = ..., {field_name} = [...]}}", item)
        _expect(isinstance(item["key"], str) and bool(item["key"]), path, k + ".key", "a context value name", item["key"])
        out.append((item["key"], _str_list(item[field_name], path, f"{k}.{field_name}", "a list of strings")))
    return tuple(out)


def _parse_check(raw: Any, path: Path | str, key: str, boost_default: float) -> Check:
    _expect(isinstance(raw, dict), path, key, "a table", raw)
    _unknown(raw, _CHECK_KEYS, path, key + ".")
    _expect(isinstance(raw.get("say"), str) and raw["say"].strip(), path, key + ".say", "a non-empty string", raw.get("say"))
    tests = {"flag", "without", "above", "below", "one_of", "contains"} & set(raw)
    _expect(bool(tests), path, key, "at least one of flag, without, above, below, one_of, contains", sorted(raw))
    boost = raw.get("boost", boost_default)
    _expect(_is_number(boost) and boost > 0, path, key + ".boost", "a positive number", boost)
    check = Check(
        say=" ".join(raw["say"].split()),
        flags=_str_list(raw.get("flag", []), path, key + ".flag"),
        without=_str_list(raw.get("without", []), path, key + ".without"),
        above=_parse_bound(raw["above"], path, key + ".above") if "above" in raw else (),
        below=_parse_bound(raw["below"], path, key + ".below") if "below" in raw else (),
        one_of=_parse_membership(raw["one_of"], path, key + ".one_of", "values") if "one_of" in raw else (),
        contains=_parse_membership(raw["contains"], path, key + ".contains", "any_of") if "contains" in raw else (),
        boost=float(boost),
    )
    # Every field of `say` must be a number the check itself reads, so rendering cannot fail.
    numeric = {k for c in check.above + check.below for k in c.keys()} | (
        {"ratio"} if any(c.ratio_to for c in check.above + check.below) else set()
    )
    text = {k for k, _ in check.one_of + check.contains}
    for match in _FIELD.finditer(check.say):
        name, op = match.group(1), match.group(2)
        ok = name in numeric or (name in text and op is None)
        _expect(ok, path, key + ".say", f"fields naming values this check compares ({', '.join(sorted(numeric | text)) or 'none'})", match.group(0))
    stray = _FIELD.sub("", check.say)
    _expect("{" not in stray and "}" not in stray, path, key + ".say", "fields of the form {name}, {name*N} or {name/N}", check.say)
    return check


def _checks(raw: Any, path: Path | str, key: str, boost_default: float) -> tuple[Check, ...]:
    if raw is None:
        return ()
    _expect(isinstance(raw, list), path, key, "an array of tables ([[remedy.<id>.%s]])" % key.rsplit(".", 1)[-1], raw)
    return tuple(_parse_check(c, path, f"{key}[{i}]", boost_default) for i, c in enumerate(raw))


def parse_sources(data: Mapping[str, Any], path: Path | str) -> dict[str, Source]:
    table = data.get("sources", {})
    _expect(isinstance(table, dict), path, "sources", "tables [sources.<id>]", table)
    out: dict[str, Source] = {}
    for sid, raw in table.items():
        key = f"sources.{sid}"
        _expect(isinstance(raw, dict), path, key, "a table", raw)
        _unknown(raw, _SOURCE_KEYS, path, key + ".")
        _expect(isinstance(raw.get("title"), str) and raw["title"].strip(), path, key + ".title", "a non-empty string", raw.get("title"))
        kind = raw.get("kind", "paper")
        _expect(kind in ("document", "paper"), path, key + ".kind", "'document' or 'paper'", kind)
        if kind == "paper":
            _expect(isinstance(raw.get("authors"), str) and raw["authors"], path, key + ".authors", "the authors (a paper needs them)", raw.get("authors"))
            _expect(isinstance(raw.get("year"), int) and not isinstance(raw.get("year"), bool), path, key + ".year", "a year (a paper needs it)", raw.get("year"))
        for text in ("note", "venue", "arxiv"):
            _expect(isinstance(raw.get(text, ""), str), path, f"{key}.{text}", "a string", raw.get(text))
        out[sid] = Source(sid, raw["title"].strip(), kind, raw.get("note", ""), raw.get("authors", ""), raw.get("year"), raw.get("venue", ""), raw.get("arxiv", ""))
    return out


def parse_remedies(data: Mapping[str, Any], path: Path | str, sources: Mapping[str, Source] | None = None) -> dict[str, Remedy]:
    """Validate ``[remedy.<id>]`` tables; every error names ``path`` and the key.

    A remedy cites either catalogue sources (``cites = [{source = "...", section = "..."}]``,
    resolved against ``[sources]`` of this file and ``sources``) or free text (``source`` and
    ``section``, for a project's own catalogue)."""
    _unknown(data, {"remedy", "sources", "modes"}, path, "")
    table = data.get("remedy")
    _expect(isinstance(table, dict), path, "remedy", "tables [remedy.<id>]", table)
    assert isinstance(table, dict)  # for the type checker: _expect raised otherwise
    known_sources = dict(sources or {}) | parse_sources(data, path)
    remedies: dict[str, Remedy] = {}
    for rid, raw in table.items():
        key = f"remedy.{rid}"
        _expect(bool(_ID.match(rid)), path, key, "an id of lowercase letters, digits and underscores", rid)
        _expect(isinstance(raw, dict), path, key, "a table", raw)
        _unknown(raw, _REMEDY_KEYS, path, key + ".")
        for req in ("title", "action"):
            _expect(isinstance(raw.get(req), str) and raw[req].strip(), path, f"{key}.{req}", "a non-empty string", raw.get(req))
        cites = _parse_cites(raw.get("cites", []), path, key + ".cites", known_sources)
        if cites:
            # Reporters print "source: <source>, section “<section>”": the works here, their
            # sections there in the same order (per-citation text: Source.cite(section)).
            source = "; ".join(known_sources[c.source].cite() for c in cites)
            section = "; ".join(c.section for c in cites if c.section)
        else:
            for req in ("source", "section"):
                _expect(isinstance(raw.get(req), str) and raw[req].strip(), path, f"{key}.{req}", "a non-empty string (or 'cites')", raw.get(req))
            source, section = raw["source"].strip(), raw["section"].strip()
        addresses = raw.get("addresses", {})
        _expect(isinstance(addresses, dict), path, key + ".addresses", "a table mode = \"why it helps\"", addresses)
        for mode, why in addresses.items():
            _expect(mode in MODES, path, f"{key}.addresses.{mode}", f"one of {', '.join(MODES)}", mode)
            _expect(isinstance(why, str) and bool(why.strip()), path, f"{key}.addresses.{mode}", "a non-empty string", why)
        weight = raw.get("weight", 1.0)
        _expect(_is_number(weight) and weight > 0, path, key + ".weight", "a positive number", weight)
        weight_reason = raw.get("weight_reason", "")
        _expect(isinstance(weight_reason, str), path, key + ".weight_reason", "a string", weight_reason)
        _expect(weight == 1.0 or bool(weight_reason.strip()), path, key + ".weight_reason", "the reason for a weight other than 1", weight_reason)
        kind = raw.get("kind", "change")
        _expect(kind in KINDS, path, key + ".kind", f"one of {', '.join(KINDS)}", kind)
        why_text = raw.get("why", "")
        _expect(isinstance(why_text, str), path, key + ".why", "a string", why_text)
        aliases = _str_list(raw.get("aliases", []), path, key + ".aliases")
        for alias in aliases:
            _expect(bool(_ID.match(alias)), path, key + ".aliases", "names of lowercase letters, digits and underscores", alias)
        remedies[rid] = Remedy(
            id=rid,
            title=raw["title"].strip(),
            action=" ".join(raw["action"].split()),
            source=source,
            section=section,
            not_if=_str_list(raw.get("not_if", []), path, key + ".not_if", "a list of context flags"),
            prefer_if=_str_list(raw.get("prefer_if", []), path, key + ".prefer_if", "a list of context flags"),
            why=" ".join(why_text.split()),
            addresses={m: " ".join(w.split()) for m, w in addresses.items()},
            cites=cites,
            only_if=_str_list(raw.get("only_if", []), path, key + ".only_if", "a list of context flags"),
            aliases=aliases,
            weight=float(weight),
            weight_reason=" ".join(weight_reason.split()),
            kind=kind,
            promote=_checks(raw.get("promote"), path, key + ".promote", 1.5),
            skip=_checks(raw.get("skip"), path, key + ".skip", 1.0),
            misconfigured=_checks(raw.get("misconfigured"), path, key + ".misconfigured", MISCONFIGURED_BOOST),
            offer=_checks(raw.get("offer"), path, key + ".offer", 1.0),
        )
    _check_aliases(remedies, path)
    return remedies


def _parse_cites(raw: Any, path: Path | str, key: str, sources: Mapping[str, Source]) -> tuple[Citation, ...]:
    _expect(isinstance(raw, list), path, key, "an array of tables {source = ..., section = ...}", raw)
    cites = []
    for i, c in enumerate(raw):
        ck = f"{key}[{i}]"
        _expect(isinstance(c, dict), path, ck, "a table {source = ..., section = ...}", c)
        _unknown(c, _CITE_KEYS, path, ck + ".")
        _expect(c.get("source") in sources, path, ck + ".source", f"a source id ({', '.join(sorted(sources)) or 'none defined'})", c.get("source"))
        _expect(isinstance(c.get("section", ""), str), path, ck + ".section", "a string", c.get("section"))
        cites.append(Citation(c["source"], c.get("section", "").strip()))
    return tuple(cites)


def parse_modes(data: Mapping[str, Any], path: Path | str, sources: Mapping[str, Source] | None = None) -> dict[str, ModeNote]:
    """``[modes.<mode>]`` tables: ``looks_like``, ``causes`` and ``cites``."""
    table = data.get("modes", {})
    _expect(isinstance(table, dict), path, "modes", "tables [modes.<mode>]", table)
    known_sources = dict(sources or {}) | parse_sources(data, path)
    out: dict[str, ModeNote] = {}
    for mode, raw in table.items():
        key = f"modes.{mode}"
        _expect(mode in MODES, path, key, f"one of {', '.join(MODES)}", mode)
        _expect(isinstance(raw, dict), path, key, "a table", raw)
        _unknown(raw, {"looks_like", "causes", "cites"}, path, key + ".")
        _expect(isinstance(raw.get("looks_like"), str) and raw["looks_like"].strip(), path, key + ".looks_like", "a non-empty string", raw.get("looks_like"))
        causes = _str_list(raw.get("causes", []), path, key + ".causes", "a list of strings")
        out[mode] = ModeNote(mode, " ".join(raw["looks_like"].split()), causes, _parse_cites(raw.get("cites", []), path, key + ".cites", known_sources))
    return out


def load_mode_notes(dirs: Iterable[Path | str] = ()) -> tuple[dict[str, ModeNote], dict[str, Source]]:
    """The mode notes and sources of the built-in catalogue and of ``dirs``' remedies.toml (later folders win)."""
    from ._toml import read_toml
    from .rules import builtin_rules_dir  # rules imports this module; import at call time

    notes: dict[str, ModeNote] = {}
    sources: dict[str, Source] = {}
    for folder in (builtin_rules_dir(), *map(Path, dirs)):
        path = Path(folder) / "remedies.toml"
        if path.is_file():
            data = read_toml(path, RuleError)
            sources |= parse_sources(data, path)
            notes |= parse_modes(data, path, sources)
    return notes, sources


def _check_aliases(remedies: Mapping[str, Remedy], path: Path | str) -> None:
    owner: dict[str, str] = {}
    for remedy in remedies.values():
        for name in remedy.names:
            if name in owner and owner[name] != remedy.id:
                raise RuleError(f"{path}: key 'remedy.{remedy.id}.aliases': name {name!r} already names remedy {owner[name]!r}")
            owner[name] = remedy.id


def parse_remedy_refs(raw: Any, path: Path | str) -> tuple[RemedyRef, ...]:
    """A rule's ``[[remedies]]`` list: ids (checked against the catalogue when the rules are loaded) and weights."""
    _expect(isinstance(raw, list), path, "remedies", "an array of tables ([[remedies]])", raw)
    refs = []
    for i, ref in enumerate(raw):
        key = f"remedies[{i}]"
        _expect(isinstance(ref, dict), path, key, "a table with 'id'", ref)
        _unknown(ref, _REMEDY_REF_KEYS, path, key + ".")
        _expect(isinstance(ref.get("id"), str), path, key + ".id", "a remedy id from remedies.toml", ref.get("id"))
        weight = ref.get("weight", 1.0)
        _expect(_is_number(weight) and weight > 0, path, key + ".weight", "a positive number", weight)
        refs.append(RemedyRef(ref["id"], float(weight)))
    return tuple(refs)


# -- vocabulary ------------------------------------------------------------------------
def alias_table(remedies: Mapping[str, Remedy]) -> dict[str, str]:
    """Every name of a technique (id or alias) -> the remedy id."""
    return {name: r.id for r in remedies.values() for name in r.names}


def expand_context(context: RunContext, remedies: Mapping[str, Remedy]) -> RunContext:
    """One vocabulary: a flag set under any name of a technique sets all its names, and a value
    given under an alias is also given under the remedy id (``grad_clipping=1`` -> ``gradient_clipping``)."""
    names = alias_table(remedies)
    flags = set(context.flags)
    values = dict(context.values)
    for flag in context.flags:
        if flag in names:
            flags.update(remedies[names[flag]].names)
    for key, value in context.values.items():
        rid = names.get(key)
        if rid is not None and rid != key:
            values.setdefault(rid, value)
    return RunContext(frozenset(flags), values)


# -- ranking ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Assessment:
    """What the context says about one remedy: proposed (with a factor and reasons), a fix of
    something in use, or skipped (with the reason)."""

    verdict: Verdict
    factor: float = 1.0
    reasons: tuple[str, ...] = ()


def assess(remedy: Remedy, context: RunContext, declared: frozenset[str] | None = None) -> Assessment:
    """Judge one remedy against an (alias-expanded) context; ``declared``, the flags before the
    expansion, are the names reasons quote."""
    if remedy.only_if and not any(f in context.flags for f in remedy.only_if):
        return Assessment("inapplicable", reasons=(f"applies only with {' or '.join(remedy.only_if)}",))
    own = [f for f in remedy.names if f in context.flags]
    blocking = [f for f in remedy.not_if if f in context.flags and f not in remedy.names]
    if own:
        fixes = [(c, text) for c in remedy.misconfigured if (text := c.evaluate(context)) is not None]
        if fixes:
            factor = math.prod(c.boost for c, _ in fixes)
            return Assessment("fix", factor, tuple(text for _, text in fixes))
        shown = [f for f in own if declared is None or f in declared] or own
        return Assessment("skip", reasons=(f"already in use ({', '.join(shown)})",))
    if blocking:
        shown = [f for f in blocking if declared is None or f in declared] or blocking
        return Assessment("skip", reasons=(f"does not apply: run has {', '.join(shown)}",))
    for c in remedy.skip:
        text = c.evaluate(context)
        if text is not None:
            return Assessment("skip", reasons=(text,))
    factor = 1.0
    reasons: list[str] = []
    preferred = [f for f in remedy.prefer_if if f in context.flags]
    if preferred:
        factor *= PREFER_BOOST
        reasons.append(f"run has {', '.join(preferred)}")
    for c in remedy.promote:
        text = c.evaluate(context)
        if text is not None:
            factor *= c.boost
            reasons.append(text)
    return Assessment("propose", factor, tuple(reasons))


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def rank(
    findings: tuple[Finding, ...], rules: "RuleSet", context: RunContext, at_onset: Callable[[Finding], Mapping[str, Any]] | None = None
) -> tuple[Finding, ...]:
    """Each finding with its remedies ranked for this run (best first) and the skipped ones with
    reasons. ``at_onset(finding)``: values the run had at the finding's onset (the learning rates
    a schedule has moved since), taking precedence over the context's for that finding."""
    declared = context.flags
    run_context = expand_context(context, rules.remedies)
    wanted: Counter[str] = Counter()
    for finding in findings:
        # Count findings, not rules: rules merged into one finding (also_fired) are one finding.
        wanted.update({ref.id for code in (finding.rule, *finding.also_fired) for ref in _rule_refs(rules, code)})
    ranked: list[Finding] = []
    for finding in findings:
        then = at_onset(finding) if at_onset is not None else {}
        context = run_context.merged(RunContext(frozenset(), then)) if then else run_context
        bases: dict[str, tuple[float, str]] = {}
        for code in (finding.rule, *finding.also_fired):
            for position, ref in enumerate(_rule_refs(rules, code)):
                base = ref.weight / (1.0 + POSITION_DECAY * position)
                if ref.id not in bases or base > bases[ref.id][0]:
                    bases[ref.id] = (base, f"{code}'s {_ordinal(position + 1)} choice")
        for rid, remedy in rules.remedies.items():
            offered = next((said for check in remedy.offer if (said := check.evaluate(context)) is not None), None)
            if offered is not None and (rid not in bases or bases[rid][0] < 1.0):
                bases[rid] = (1.0, f"offered for any finding ({offered})")
        kept: list[RankedRemedy] = []
        skipped: list[SkippedRemedy] = []
        for rid, (base, origin) in bases.items():
            remedy = rules.remedies[rid]
            verdict = assess(remedy, context, declared)
            if verdict.verdict == "inapplicable":
                continue  # e.g. "raise the penalty weight" for a run without a penalty: not worth a line
            if verdict.verdict == "skip":
                skipped.append(SkippedRemedy(rid, remedy.title, verdict.reasons[0]))
                continue
            score = base * remedy.weight * verdict.factor
            reasons = [origin]
            if remedy.weight != 1.0:
                reasons.append(f"catalogue weight {remedy.weight:g}: {remedy.weight_reason}")
            action, title = remedy.action, remedy.title
            if verdict.verdict == "fix":
                title = f"Fix: {remedy.title}"
                action = " ".join(verdict.reasons)
                reasons.append("in use but misconfigured")
            else:
                reasons.extend(verdict.reasons)
            if wanted[rid] > 1:
                score *= SHARED_BOOST
                reasons.append(f"also addresses {wanted[rid] - 1} other finding(s)")
            kept.append(RankedRemedy(rid, title, action, remedy.source, remedy.section, round(score, 3), "; ".join(reasons)))
        kept.sort(key=lambda r: (-r.score, r.id))
        ranked.append(replace(finding, remedies=tuple(kept), skipped_remedies=tuple(skipped)))
    return tuple(ranked)


def remedies_for_mode(mode: str, remedies: Mapping[str, Remedy]) -> tuple[Remedy, ...]:
    """The catalogue's remedies that address ``mode``, changes first, in catalogue order."""
    hits = [r for r in remedies.values() if mode in r.addresses]
    return tuple(sorted(hits, key=lambda r: r.kind != "change"))


def _rule_refs(rules: "RuleSet", code: str) -> tuple[RemedyRef, ...]:
    try:
        return rules.by_code(code).remedies
    except KeyError:
        return ()


def _render(template: str, numbers: Mapping[str, float], values: Mapping[str, Any]) -> str:
    def sub(match: re.Match[str]) -> str:
        name, op, operand = match.group(1), match.group(2), match.group(3)
        if name not in numbers:
            value = values.get(name, match.group(0))
            return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        value = numbers[name]
        if op == "*":
            value *= float(operand)
        elif op == "/":
            value /= float(operand)
        return _fmt(value)

    return _FIELD.sub(sub, template)


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.2g}"


def used_names(flags: Iterable[str], remedies: Mapping[str, Remedy]) -> tuple[str, ...]:
    """The remedy ids among ``flags`` (under any of their names), sorted."""
    names = alias_table(remedies)
    return tuple(sorted({names[f] for f in flags if f in names}))
