"""gandoctor.remedies: ranking by rule order and weight, skipping what the run already uses,
promoting what the context favours and what several findings share."""

from __future__ import annotations

from pathlib import Path

import pytest

from gandoctor import RunContext, load_rules
from gandoctor.findings import Finding
from gandoctor.remedies import PREFER_BOOST, SHARED_BOOST, rank

REMEDIES = '''
[remedy.a]
title = "Remedy A"
action = "Do A."
source = "[S] Source A"
section = "A1"

[remedy.b]
title = "Remedy B"
action = "Do B."
source = "[S] Source B"
section = "B1"
not_if = ["d_spectral_norm"]

[remedy.c]
title = "Remedy C"
action = "Do C."
source = "[S] Source C"
section = "C1"
prefer_if = ["critic"]

[remedy.d]
title = "Remedy D"
action = "Do D."
source = "[S] Source D"
section = "D1"
'''


def _rule(code: str, mode: str, refs: list[tuple[str, float]]) -> str:
    body = "".join(f'[[remedies]]\nid = "{rid}"\nweight = {w}\n' for rid, w in refs)
    return (
        f'code = "{code}"\nname = "r-{code.lower()}"\nmode = "{mode}"\nsummary = "s"\nwhy = "w"\n'
        '[[conditions]]\nsignal = "x.a"\nstat = "median"\nop = ">"\nthreshold = 1\n' + body
    )


@pytest.fixture()
def rules(tmp_path: Path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "remedies.toml").write_text(REMEDIES, encoding="utf-8")
    (folder / "GD900.toml").write_text(_rule("GD900", "mode_collapse", [("a", 1.0), ("b", 1.0), ("c", 1.0)]), encoding="utf-8")
    (folder / "GD901.toml").write_text(_rule("GD901", "mode_collapse", [("d", 2.0), ("a", 0.5)]), encoding="utf-8")
    (folder / "GD902.toml").write_text(_rule("GD902", "exploding_gradients", [("c", 1.0)]), encoding="utf-8")
    return load_rules([folder], include_builtin=False)


def finding(rule: str, mode: str = "mode_collapse", also: tuple[str, ...] = ()) -> Finding:
    return Finding(mode, rule, rule.lower(), "s", 10, 20, True, 0.9, {}, (), also_fired=also)


def test_rule_order_and_weights_give_the_base_score(rules):
    (f,) = rank((finding("GD900"),), rules, RunContext())
    assert [(r.id, r.score) for r in f.remedies] == [("a", 1.0), ("b", 0.8), ("c", round(1 / 1.5, 3))]
    assert all(r.reason == "" for r in f.remedies)
    top = f.remedies[0]
    assert (top.title, top.action, top.source, top.section) == ("Remedy A", "Do A.", "[S] Source A", "A1")


def test_remedy_already_in_use_is_skipped_with_reason(rules):
    (f,) = rank((finding("GD900"),), rules, RunContext(frozenset({"d_spectral_norm"})))
    assert [r.id for r in f.remedies] == ["a", "c"]
    assert [(s.id, s.title, s.reason) for s in f.skipped_remedies] == [("b", "Remedy B", "already in use (d_spectral_norm)")]


def test_prefer_if_promotes(rules):
    (f,) = rank((finding("GD900"),), rules, RunContext(frozenset({"critic"})))
    c = next(r for r in f.remedies if r.id == "c")
    assert c.score == round(PREFER_BOOST / 1.5, 3)
    assert c.reason == "run has critic"
    # c (third, 0.667) is boosted to 1.0: above b (0.8), tied with a and ordered by id
    assert [r.id for r in f.remedies] == ["a", "c", "b"]


def test_also_fired_rules_contribute_remedies_with_the_best_base(rules):
    (f,) = rank((finding("GD900", also=("GD901",)),), rules, RunContext())
    scores = {r.id: r.score for r in f.remedies}
    assert scores["d"] == 2.0  # GD901's first remedy, weight 2
    assert scores["a"] == 1.0  # max(GD900 pos 0 w 1, GD901 pos 1 w 0.5)
    assert f.remedies[0].id == "d"
    # two rules merged into one finding are one finding: no "shared" promotion
    assert all(r.reason == "" for r in f.remedies)


def test_remedy_shared_by_several_findings_is_promoted(rules):
    ranked = rank((finding("GD900"), finding("GD902", mode="exploding_gradients")), rules, RunContext())
    gd900, gd902 = ranked
    c900 = next(r for r in gd900.remedies if r.id == "c")
    assert c900.score == round(SHARED_BOOST / 1.5, 3)
    assert c900.reason == "also addresses 1 other finding(s)"
    assert gd902.remedies[0].score == SHARED_BOOST
    a900 = next(r for r in gd900.remedies if r.id == "a")
    assert a900.score == 1.0 and a900.reason == ""


def test_unknown_rule_code_gets_no_remedies(rules):
    (f,) = rank((finding("GD999"),), rules, RunContext())
    assert f.remedies == () and f.skipped_remedies == ()


def test_rank_keeps_finding_fields(rules):
    original = finding("GD900")
    (f,) = rank((original,), rules, RunContext())
    assert (f.rule, f.mode, f.onset_step, f.confidence) == (original.rule, original.mode, original.onset_step, original.confidence)
    assert original.remedies == ()  # findings are frozen; rank returns new ones


def test_builtin_spectral_norm_remedy_is_skipped_when_d_has_it():
    rules = load_rules()
    gd101 = rules.by_code("GD101")
    (f,) = rank((finding("GD101", mode=gd101.mode),), rules, RunContext(frozenset({"d_spectral_norm"})))
    assert "spectral_norm" not in {r.id for r in f.remedies}
    assert "spectral_norm" in {s.id for s in f.skipped_remedies}
