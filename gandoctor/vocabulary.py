"""One vocabulary for what a user may type: failure modes, rule codes (any case) and names,
remedy ids and their aliases, and the ``uses`` declarations (``gradient_penalty=10,label_smoothing``).

The same name for a technique is its remedy id and its ``uses`` flag; old names (aliases) are
accepted and mean the same technique.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping

from .context import CONDITIONAL, D_LOSS_UNIT_UNKNOWN, D_OUTPUTS_TRAINED_ON, FEW_D_SAMPLES
from .errors import GanDoctorError
from .findings import RunContext
from .remedies import MODES, Remedy, alias_table
from .rules import SCALES, RuleSet

Kind = Literal["mode", "rule", "remedy"]

# Flags the probes set themselves that are not a remedy's name: accepted in `uses` without a warning.
OBSERVED_FLAGS: frozenset[str] = frozenset(
    {"d_batchnorm", "g_batchnorm", "d_dropout", "ttur", "lr_d_above_lr_g", "weight_decay_d", "weight_decay_g", "multi_d_steps", "critic", "energy_d", "d_reversed", "hinge_loss", "d_spectral_norm", D_LOSS_UNIT_UNKNOWN, FEW_D_SAMPLES, D_OUTPUTS_TRAINED_ON, CONDITIONAL}
)


class UnknownNameError(GanDoctorError):
    """A name that is not a mode, rule or remedy. The message lists what is known and the nearest matches."""


@dataclass(frozen=True)
class Resolved:
    kind: Kind
    name: str  # the canonical name: a mode, a rule code, a remedy id
    typed: str  # what the user typed


def _mode_key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def resolve(name: str, rules: RuleSet) -> Resolved:
    """What ``name`` refers to: a mode (``mode_collapse``, ``mode-collapse``), a rule (``GD301``,
    ``gd301``, ``partial-mode-collapse``) or a remedy (``gradient_clipping`` or an alias such as
    ``grad_clipping``). Raises UnknownNameError with suggestions otherwise."""
    typed = name
    text = name.strip()
    if _mode_key(text) in MODES:
        return Resolved("mode", _mode_key(text), typed)
    for rule in rules.rules:
        if text.upper() == rule.code or text.lower() == rule.name:
            return Resolved("rule", rule.code, typed)
    names = alias_table(rules.remedies)
    key = _mode_key(text)
    if key in names:
        return Resolved("remedy", names[key], typed)
    known = [*MODES, *(r.code for r in rules.rules), *(r.name for r in rules.rules), *names]
    near = difflib.get_close_matches(key, [k.lower() for k in known], n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise UnknownNameError(
        f"unknown name {typed!r}: expected a failure mode ({', '.join(MODES)}), a rule code or name "
        f"(see 'gandoctor rules') or a remedy id (see 'gandoctor explain MODE'){hint}"
    )


def resolve_names(names: Iterable[str], rules: RuleSet) -> tuple[frozenset[str], frozenset[str]]:
    """Split ``names`` (e.g. the items of ``gate --fail-on``) into modes and rule codes.

    ``any`` means every mode. A remedy id is refused: it names a fix, not a failure."""
    modes: set[str] = set()
    codes: set[str] = set()
    items = [n.strip() for n in names if n.strip()]
    if not items:
        raise UnknownNameError(f"expected 'any' or a comma list of modes or rule codes ({', '.join(MODES)}; GD101 ...), got nothing")
    for item in items:
        if item.lower() == "any":
            modes.update(MODES)
            continue
        hit = resolve(item, rules)
        if hit.kind == "remedy":
            raise UnknownNameError(f"{item!r} is a remedy, not a failure mode or rule; expected a mode ({', '.join(MODES)}) or a rule code")
        (modes if hit.kind == "mode" else codes).add(hit.name)
    return frozenset(modes), frozenset(codes)


def parse_uses(text: str, where: str = "--uses") -> dict[str, float | str | None]:
    """``"gradient_penalty=10,label_smoothing"`` -> ``{"gradient_penalty": 10.0, "label_smoothing": None}``.

    A value is a number where it parses as one (a finite one), else kept as text."""
    out: dict[str, float | str | None] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not name or (sep and not value.strip()):
            raise GanDoctorError(f"{where}: expected NAME or NAME=VALUE items separated by commas, got {item!r}")
        if not sep:
            out[name] = None
            continue
        try:
            number = float(value)
        except ValueError:
            out[name] = value.strip()
            continue
        if not math.isfinite(number):
            raise GanDoctorError(f"{where}: {name}: expected a finite number, got {value.strip()!r}")
        out[name] = number
    return out


def uses_context(uses: Iterable[str] | Mapping[str, Any], remedies: Mapping[str, Remedy]) -> RunContext:
    """The context a ``uses`` declaration adds: each name as a flag under the technique's remedy
    id (``grad_clipping`` -> ``gradient_clipping``), plus the flag the probes would set for it
    (``wgan`` -> ``critic``), so rules that skip on probe flags see it; ``values[id] = value`` for
    ``name=value`` items. Unknown names are kept as they are (custom rules may use them)."""
    items: Mapping[str, Any] = uses if isinstance(uses, Mapping) else dict.fromkeys(uses)
    names = alias_table(remedies)
    flags: set[str] = set()
    values: dict[str, Any] = {}
    for name, value in items.items():
        rid = names.get(name)
        if rid is None:
            flags.add(name)
        else:
            flags.add(rid)
            flags.update(a for a in remedies[rid].aliases if a in OBSERVED_FLAGS)
        if value is not None and not isinstance(value, bool):
            values[rid or name] = value
    return RunContext(frozenset(flags), values)


def unknown_uses(uses: Iterable[str], rules: RuleSet) -> tuple[str, ...]:
    """Names in ``uses`` that no remedy, probe or rule knows (likely typos), sorted."""
    known = set(alias_table(rules.remedies)) | OBSERVED_FLAGS | set(SCALES)
    for rule in rules.rules:
        known.update(rule.skip_if + rule.only_if)
    for remedy in rules.remedies.values():
        known.update(remedy.not_if + remedy.only_if + remedy.prefer_if)
        for check in remedy.promote + remedy.skip + remedy.misconfigured:
            known.update(check.flags + check.without)
    return tuple(sorted(set(uses) - known))
