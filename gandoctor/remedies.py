"""Rank each finding's remedies against the run at hand.

A remedy is skipped when the run already uses it (its ``not_if`` flags are in the context:
no "add spectral normalization" to a D that has it) and promoted when the context makes it
more likely to help (``prefer_if``). The rule's own order and weights give the base score, and
a remedy that several concurrent findings call for is promoted too, since one change then
addresses more than one failure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from .findings import Finding, RankedRemedy, RunContext, SkippedRemedy
from .rules import RuleSet

PREFER_BOOST = 1.5
SHARED_BOOST = 1.25


def rank(findings: tuple[Finding, ...], rules: RuleSet, context: RunContext) -> tuple[Finding, ...]:
    wanted: Counter[str] = Counter()
    for finding in findings:
        # Count findings, not rules: rules merged into one finding (also_fired) are one finding.
        wanted.update({ref.id for code in (finding.rule, *finding.also_fired) for ref in _rule_refs(rules, code)})
    ranked: list[Finding] = []
    for finding in findings:
        refs: dict[str, float] = {}
        for code in (finding.rule, *finding.also_fired):
            for position, ref in enumerate(_rule_refs(rules, code)):
                base = ref.weight / (1.0 + 0.25 * position)
                refs[ref.id] = max(refs.get(ref.id, 0.0), base)
        kept: list[RankedRemedy] = []
        skipped: list[SkippedRemedy] = []
        for rid, base in refs.items():
            remedy = rules.remedies[rid]
            used = [flag for flag in remedy.not_if if flag in context.flags]
            if used:
                skipped.append(SkippedRemedy(rid, remedy.title, f"already in use ({', '.join(used)})"))
                continue
            score = base
            reasons: list[str] = []
            preferred = [flag for flag in remedy.prefer_if if flag in context.flags]
            if preferred:
                score *= PREFER_BOOST
                reasons.append(f"run has {', '.join(preferred)}")
            if wanted[rid] > 1:
                score *= SHARED_BOOST
                reasons.append(f"also addresses {wanted[rid] - 1} other finding(s)")
            kept.append(
                RankedRemedy(rid, remedy.title, remedy.action, remedy.source, remedy.section, round(score, 3), "; ".join(reasons))
            )
        kept.sort(key=lambda r: (-r.score, r.id))
        ranked.append(replace(finding, remedies=tuple(kept), skipped_remedies=tuple(skipped)))
    return tuple(ranked)


def _rule_refs(rules: RuleSet, code: str):  # type: ignore[no-untyped-def]
    try:
        return rules.by_code(code).remedies
    except KeyError:
        return ()
