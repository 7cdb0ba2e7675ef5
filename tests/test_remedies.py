"""gandoctor.remedies: the catalogue as data, and ranking against the run at hand (rule order and
weights, what the run already uses, checks on its context with its numbers, shared remedies)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gandoctor import RunContext, load_rules
from gandoctor.errors import RuleError
from gandoctor.findings import Finding
from gandoctor.remedies import (
    MODES,
    PREFER_BOOST,
    SHARED_BOOST,
    assess,
    expand_context,
    parse_remedies,
    rank,
    remedies_for_mode,
)

REPO = Path(__file__).resolve().parent.parent

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


@pytest.fixture(scope="module")
def builtin():
    return load_rules()


def finding(rule: str, mode: str = "mode_collapse", also: tuple[str, ...] = ()) -> Finding:
    return Finding(mode, rule, rule.lower(), "s", 10, 20, True, 0.9, {}, (), also_fired=also)


def ranked(rules, code: str, flags=(), values=None):  # type: ignore[no-untyped-def]
    mode = rules.by_code(code).mode
    (f,) = rank((finding(code, mode=mode),), rules, RunContext(frozenset(flags), values or {}))
    return f


# -- ranking mechanics -----------------------------------------------------------------------
def test_rule_order_and_weights_give_the_base_score(rules):
    (f,) = rank((finding("GD900"),), rules, RunContext())
    assert [(r.id, r.score) for r in f.remedies] == [("a", 1.0), ("b", 0.8), ("c", round(1 / 1.5, 3))]
    assert [r.reason for r in f.remedies] == ["GD900's 1st choice", "GD900's 2nd choice", "GD900's 3rd choice"]
    top = f.remedies[0]
    assert (top.title, top.action, top.source, top.section) == ("Remedy A", "Do A.", "[S] Source A", "A1")


def test_remedy_already_in_use_is_skipped_with_reason(rules):
    (f,) = rank((finding("GD900"),), rules, RunContext(frozenset({"d_spectral_norm"})))
    assert [r.id for r in f.remedies] == ["a", "c"]
    assert [(s.id, s.title, s.reason) for s in f.skipped_remedies] == [("b", "Remedy B", "does not apply: run has d_spectral_norm")]
    (f,) = rank((finding("GD900"),), rules, RunContext(frozenset({"b"})))
    assert [(s.id, s.reason) for s in f.skipped_remedies] == [("b", "already in use (b)")]


def test_prefer_if_promotes(rules):
    (f,) = rank((finding("GD900"),), rules, RunContext(frozenset({"critic"})))
    c = next(r for r in f.remedies if r.id == "c")
    assert c.score == round(PREFER_BOOST / 1.5, 3)
    assert c.reason == "GD900's 3rd choice; run has critic"
    # c (third, 0.667) is boosted to 1.0: above b (0.8), tied with a and ordered by id
    assert [r.id for r in f.remedies] == ["a", "c", "b"]


def test_also_fired_rules_contribute_remedies_with_the_best_base(rules):
    (f,) = rank((finding("GD900", also=("GD901",)),), rules, RunContext())
    scores = {r.id: r.score for r in f.remedies}
    assert scores["d"] == 2.0  # GD901's first remedy, weight 2
    assert scores["a"] == 1.0  # max(GD900 pos 0 w 1, GD901 pos 1 w 0.5)
    assert f.remedies[0].id == "d" and f.remedies[0].reason == "GD901's 1st choice"
    # two rules merged into one finding are one finding: no "shared" promotion
    assert not any("other finding" in r.reason for r in f.remedies)


def test_remedy_shared_by_several_findings_is_promoted(rules):
    gd900, gd902 = rank((finding("GD900"), finding("GD902", mode="exploding_gradients")), rules, RunContext())
    c900 = next(r for r in gd900.remedies if r.id == "c")
    assert c900.score == round(SHARED_BOOST / 1.5, 3)
    assert c900.reason.endswith("also addresses 1 other finding(s)")
    assert gd902.remedies[0].score == SHARED_BOOST
    a900 = next(r for r in gd900.remedies if r.id == "a")
    assert a900.score == 1.0 and "other finding" not in a900.reason


def test_unknown_rule_code_gets_no_remedies(rules):
    (f,) = rank((finding("GD999"),), rules, RunContext())
    assert f.remedies == () and f.skipped_remedies == ()


def test_rank_keeps_finding_fields(rules):
    original = finding("GD900")
    (f,) = rank((original,), rules, RunContext())
    assert (f.rule, f.mode, f.onset_step, f.confidence) == (original.rule, original.mode, original.onset_step, original.confidence)
    assert original.remedies == ()  # findings are frozen; rank returns new ones


# -- the built-in catalogue against a run's context -----------------------------------------
def test_builtin_spectral_norm_remedy_is_skipped_when_d_has_it(builtin):
    f = ranked(builtin, "GD101", {"d_spectral_norm"})
    assert "spectral_norm" not in {r.id for r in f.remedies}
    assert ("spectral_norm", "already in use (d_spectral_norm)") in {(s.id, s.reason) for s in f.skipped_remedies}


def test_learning_rate_numbers_come_from_the_context(builtin):
    f = ranked(builtin, "GD101", values={"lr_d": 4e-4, "lr_g": 1e-4})
    top = f.remedies[0]
    assert top.id == "lower_d_lr"
    assert "D's lr 0.0004 is 4x G's 0.0001: try D 0.0001 / G 0.0004" in top.reason
    # equal rates: no promotion, a plain halving with the run's number
    f = ranked(builtin, "GD101", values={"lr_d": 2e-4, "lr_g": 2e-4})
    r = next(r for r in f.remedies if r.id == "lower_d_lr")
    assert "D's lr is 0.0002: try 0.0001" in r.reason
    assert r.score < top.score
    # far apart: swapping would stall the other network; the slow one is brought up instead
    f = ranked(builtin, "GD101", values={"lr_d": 2e-3, "lr_g": 1e-5})
    assert "D's lr 0.002 is 200x G's 1e-05, G so slow it cannot keep up at all: try both at 0.002" in f.remedies[0].reason
    # ... unless the fast one is far above any rate GANs train at (D's lr 5 beside G's 2e-4): it comes down
    f = ranked(builtin, "GD101", values={"lr_d": 5.0, "lr_g": 2e-4})
    assert "far above the rates GANs train at: bring D's down to 0.0002" in f.remedies[0].reason
    assert "try both at 5" not in f.remedies[0].reason
    # StyleGAN1 at G's rate x10 (0.01 beside D's 0.001): "Slow G down" said "try both at 0.01",
    # raising D tenfold to a rate "Lower the learning rates" called too high beside it
    f = ranked(builtin, "GD601", values={"lr_d": 1e-3, "lr_g": 1e-2})
    r = next(r for r in f.remedies if r.id == "lower_g_lr")
    assert "bring G's down to 0.001" in r.reason and "try both" not in r.reason
    # 10x to float rounding, either side (a rate read back from the optimizer may be an ulp off):
    # 10x, not the 2-10x advice that swapped the rates nor none at all
    for lr_g in (2e-4, math.nextafter(2e-4, 1.0), math.nextafter(2e-4, 0.0)):
        f = ranked(builtin, "GD101", values={"lr_d": 2e-3, "lr_g": lr_g})
        assert "is 10x G's" in f.remedies[0].reason and "try both at 0.002" in f.remedies[0].reason, lr_g
    # D already far slower than G: halving it again is no remedy
    f = ranked(builtin, "GD401", values={"lr_d": 1e-6, "lr_g": 1e-3})
    assert ("lower_d_lr", "D's lr 1e-06 is already far below G's 0.001") in {(s.id, s.reason) for s in f.skipped_remedies}


def test_missing_values_leave_the_check_silent(builtin):
    f = ranked(builtin, "GD101", values={"lr_d": 4e-4})  # no lr_g: no ratio to speak of
    r = next(r for r in f.remedies if r.id == "lower_d_lr")
    assert r.reason == "GD101's 1st choice"


def test_misconfigured_remedy_in_use_is_proposed_as_a_fix(builtin):
    f = ranked(builtin, "GD501", {"gradient_penalty"}, {"gradient_penalty": 0.1})
    fix = next(r for r in f.remedies if r.id == "gradient_penalty")
    assert fix.title.startswith("Fix: ")
    assert "gradient-penalty weight 0.1 is far below the usual 10" in fix.action
    assert "in use but misconfigured" in fix.reason
    # well configured: skipped as in use
    f = ranked(builtin, "GD501", {"gradient_penalty"}, {"gradient_penalty": 10.0})
    assert "gradient_penalty" not in {r.id for r in f.remedies}
    assert "gradient_penalty" in {s.id for s in f.skipped_remedies}


def test_only_if_remedy_appears_only_with_its_flag(builtin):
    assert "gp_weight" not in {r.id for r in ranked(builtin, "GD301").remedies}
    assert "gp_weight" not in {s.id for s in ranked(builtin, "GD301").skipped_remedies}
    f = ranked(builtin, "GD301", {"gradient_penalty"}, {"gradient_penalty": 10})
    gp = next(r for r in f.remedies if r.id == "gp_weight")
    assert "the penalty weight is 10: try 20" in gp.reason


def test_latent_size_promotes_or_skips(builtin):
    small = ranked(builtin, "GD302", values={"latent_dim": 2})
    big = ranked(builtin, "GD302", values={"latent_dim": 512})
    plain = ranked(builtin, "GD302")
    score = {name: {r.id: r.score for r in f.remedies} for name, f in (("small", small), ("plain", plain))}
    assert score["small"]["larger_latent"] == 2 * score["plain"]["larger_latent"]
    assert "z has only 2 dimensions: try 16" in next(r for r in small.remedies if r.id == "larger_latent").reason
    assert ("larger_latent", "z already has 512 dimensions") in {(s.id, s.reason) for s in big.skipped_remedies}


def test_optimizer_settings_promote_the_optimizer_remedy(builtin):
    f = ranked(builtin, "GD601", values={"optimizer_d": "SGD", "beta1_g": 0.9})
    r = next(r for r in f.remedies if r.id == "optimizer")
    assert "D is trained with SGD" in r.reason and "G's Adam beta1 is 0.9: try 0.5" in r.reason
    assert f.remedies[0].id == "optimizer"


def test_alias_flags_name_the_same_technique(builtin):
    # the old flag name grad_clipping means gradient_clipping, the remedy's id
    f = ranked(builtin, "GD502", {"grad_clipping"})
    assert "gradient_clipping" not in {r.id for r in f.remedies}
    assert any(s.id == "gradient_clipping" and "grad_clipping" in s.reason for s in f.skipped_remedies)
    expanded = expand_context(RunContext(frozenset({"wgan"}), {"gp": 5.0}), builtin.remedies)
    assert {"wasserstein_loss", "critic", "wgan"} <= expanded.flags
    assert expanded.values["gradient_penalty"] == 5.0


def test_critic_runs_get_no_label_tricks(builtin):
    f = ranked(builtin, "GD401", {"critic"})
    ids = {r.id for r in f.remedies}
    assert "label_smoothing" not in ids and "wasserstein_loss" not in ids
    assert ("label_smoothing", "does not apply: run has wasserstein_loss") in {(s.id, s.reason) for s in f.skipped_remedies}


def test_hinge_runs_get_no_label_tricks(builtin):
    # A StudioGAN hinge D was offered "one-sided label smoothing (target 0.9)": its loss has no targets.
    f = ranked(builtin, "GD101", {"hinge_loss"})
    ids = {r.id for r in f.remedies}
    assert "label_smoothing" not in ids and "noisy_labels" not in ids
    assert ("label_smoothing", "does not apply: run has hinge_loss") in {(s.id, s.reason) for s in f.skipped_remedies}


def test_recorded_run_gets_its_own_numbers(builtin):
    from gandoctor import analyze

    report = analyze(REPO / "fixtures" / "heldout" / "ddom_ring8_s0_ho100")
    dd = next(f for f in report.findings if f.mode == "discriminator_dominance")
    assert dd.remedies[0].id == "lower_d_lr"
    assert "D's lr 0.002 is 200x G's 1e-05" in dd.remedies[0].reason
    assert any(r.id == "fewer_d_steps" and "D takes 5 steps per G step: try 1" in r.reason for r in dd.remedies)


def test_an_unrolled_gan_s_look_ahead_steps_are_not_read_as_d_outrunning_g(builtin):
    # D's optimizer counts an unrolled GAN's look-ahead steps: 11 per G step with 10 unrolled.
    steps = {"d_steps_per_g": 11.0}
    plain = {r.id: r.reason for r in ranked(builtin, "GD101", (), steps).remedies}
    assert "D takes 11 steps per G step: try 1" in plain["fewer_d_steps"]
    unrolled = {r.id: r.reason for r in ranked(builtin, "GD101", {"unrolled_gan"}, steps).remedies}
    assert "steps per G step" not in unrolled.get("fewer_d_steps", "")


# -- the catalogue as data ----------------------------------------------------------------------
ISSUE_REMEDIES = [
    "wasserstein_loss", "gradient_penalty", "gp_weight", "weight_clipping", "spectral_norm", "dcgan_architecture",
    "lower_d_lr", "lower_g_lr", "fewer_d_steps", "more_d_steps", "optimizer", "lr_schedule", "lower_lr", "weight_decay",
    "label_smoothing", "noisy_labels", "instance_noise", "d_dropout", "g_dropout", "minibatch_discrimination",
    "feature_matching", "diversity_term", "unrolled_gan", "larger_latent", "stronger_g", "weaker_g", "stronger_d",
    "weaker_d", "relativistic_loss", "least_squares_loss", "data_augmentation", "initialization", "normalization",
    "gradient_clipping", "check_loss_and_data", "train_longer", "simplify", "fixed_noise_grid", "one_change_at_a_time",
]


def test_catalogue_names_every_remedy_of_the_issue(builtin):
    assert set(ISSUE_REMEDIES) <= set(builtin.remedies)


def test_every_remedy_says_what_why_for_which_modes_and_cites_a_document(builtin):
    documents = {sid for sid, s in builtin.sources.items() if s.kind == "document"}
    assert len(documents) == 5
    cited = set()
    for remedy in builtin.remedies.values():
        assert remedy.action and remedy.why and remedy.addresses, remedy.id
        assert any(c.source in documents and c.section for c in remedy.cites), remedy.id
        cited |= {c.source for c in remedy.cites}
    assert documents <= cited
    assert set(builtin.sources) == cited  # no source listed that nothing cites
    for mode in MODES:
        assert len(remedies_for_mode(mode, builtin.remedies)) >= 4, mode


def test_citations_are_followable_not_file_names():
    text = (REPO / "rules" / "remedies.toml").read_text(encoding="utf-8")
    assert "seeds/" not in text
    rules = load_rules()
    for remedy in rules.remedies.values():
        assert "seeds" not in remedy.source
        for c in remedy.cites:
            s = rules.sources[c.source]
            assert s.kind == "document" or (s.authors and s.year and (s.arxiv or s.venue)), c.source
    gp = rules.remedies["gradient_penalty"]
    assert "Gulrajani et al. 2017, “Improved Training of Wasserstein GANs”, NeurIPS 2017, arXiv:1704.00028" in gp.source
    assert "“Training Instability Issues and Improvement Methods for Generative Adversarial Networks (GANs)”" in gp.source
    assert gp.section.startswith("2. Adding Gradient Penalty (WGAN-GP)")
    doc = rules.sources[gp.cites[0].source]
    assert doc.cite(gp.cites[0].section) == (
        "“Training Instability Issues and Improvement Methods for Generative Adversarial Networks (GANs)” "
        "(question-and-answer article), section “2. Adding Gradient Penalty (WGAN-GP)”"
    )


def test_every_rule_lists_remedies_that_address_its_mode(builtin):
    for rule in builtin.rules:
        assert rule.remedies, rule.code
        for ref in rule.remedies:
            assert rule.mode in builtin.remedies[ref.id].addresses, (rule.code, ref.id)


def test_old_remedy_ids_in_a_rule_resolve_through_aliases(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "GD950.toml").write_text(_rule("GD950", "mode_collapse", [("wgan_gp", 1.0), ("bigger_z", 1.0)]), encoding="utf-8")
    rules = load_rules([folder])
    assert [r.id for r in rules.by_code("GD950").remedies] == ["wasserstein_loss", "larger_latent"]


@pytest.mark.parametrize(
    "body, key, expected",
    [
        ('[[remedy.x.promote]]\nabove = {key = "lr_d", than = 1}\nsay = "{lr_g} is high"\n', "remedy.x.promote[0].say", "values this check compares"),
        ('[[remedy.x.promote]]\nabove = {key = "lr_d", than = 1, ratio_to = "lr_g"}\nsay = "s"\n', "remedy.x.promote[0].above", "exactly one of"),
        ('[[remedy.x.promote]]\nsay = "s"\n', "remedy.x.promote[0]", "at least one of"),
        ('[[remedy.x.promote]]\nflag = "a"\nsay = "s"\nrun = "os.system"\n', "remedy.x.promote[0].run", "unknown key"),
        ('[[remedy.x.promote]]\nflag = "a"\nsay = "{__class__}"\n', "remedy.x.promote[0].say", "fields of the form"),
        ('weight = 0.5\n', "remedy.x.weight_reason", "the reason"),
        ('cites = [{source = "nowhere"}]\n', "remedy.x.cites[0].source", "a source id"),
        ('[addresses]\nbogus_mode = "w"\n', "remedy.x.addresses.bogus_mode", "one of mode_collapse"),
    ],
)
def test_catalogue_errors_name_file_and_key(tmp_path, body, key, expected):
    head = '[remedy.x]\ntitle = "t"\naction = "a"\nsource = "s"\nsection = "c"\n'
    if body.startswith("[addresses]"):
        body = body.replace("[addresses]", "[remedy.x.addresses]")
    path = tmp_path / "remedies.toml"
    import tomllib

    with pytest.raises(RuleError) as exc:
        parse_remedies(tomllib.loads(head + body), path)
    assert str(path) in str(exc.value) and f"key '{key}'" in str(exc.value) and expected in str(exc.value)


def test_an_alias_may_name_only_one_remedy(tmp_path):
    import tomllib

    text = '[remedy.x]\ntitle="t"\naction="a"\nsource="s"\nsection="c"\naliases=["y"]\n[remedy.y]\ntitle="t"\naction="a"\nsource="s"\nsection="c"\n'
    with pytest.raises(RuleError, match="already names remedy"):
        parse_remedies(tomllib.loads(text), tmp_path / "remedies.toml")


def test_weight_decay_on_d_counts_as_in_use_and_beta2_is_checked(builtin):
    f = ranked(builtin, "GD101", {"weight_decay_d"}, {"beta2_d": 0.5})
    assert ("weight_decay", "already in use (weight_decay_d)") in {(s.id, s.reason) for s in f.skipped_remedies}
    f = ranked(builtin, "GD601", values={"beta2_d": 0.5})
    assert "D's Adam beta2 is 0.5: the usual is 0.999" in next(r for r in f.remedies if r.id == "optimizer").reason


def test_cure_benchmark_changes_mirror_the_catalogue_texts(builtin):
    import importlib.util

    spec = importlib.util.spec_from_file_location("cures_bench", REPO / "benchmarks" / "cures.py")
    assert spec is not None and spec.loader is not None
    cures = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = cures  # dataclasses look their module up there
    spec.loader.exec_module(cures)
    assert set(cures.CHANGES) <= set(builtin.remedies)
    # the same numbers the ranking quotes: 4x -> swapped; 200x -> the slow one brought up; far below -> none
    assert cures.CHANGES["lower_d_lr"]({"d_lr": 4e-4, "g_lr": 1e-4}) == {"d_lr": 1e-4, "g_lr": 4e-4}
    assert cures.CHANGES["lower_d_lr"]({"d_lr": 2e-3, "g_lr": 1e-5}) == {"g_lr": 2e-3}
    assert cures.CHANGES["lower_d_lr"]({"d_lr": 1e-6, "g_lr": 1e-3}) is None
    assert cures.CHANGES["larger_latent"]({"z_dim": 2}) == {"z_dim": 16}


def test_lowering_both_rates_is_demoted_when_they_are_far_apart(builtin):
    apart = ranked(builtin, "GD601", values={"lr_d": 2e-4, "lr_g": 5e-3})
    r = next(r for r in apart.remedies if r.id == "lower_lr")
    assert "G's lr is 25x D's: balance the two rates first" in r.reason
    assert apart.remedies[0].id != "lower_lr"
    assert ranked(builtin, "GD601", values={"lr_d": 2e-3, "lr_g": 2e-3}).remedies[0].id == "lower_lr"


def test_non_convergence_with_rates_far_apart_ranks_balancing_them_first(builtin):
    f = ranked(builtin, "GD601", values={"lr_d": 2e-4, "lr_g": 5e-3})
    assert f.remedies[0].id == "lower_g_lr"
    assert "try both at 0.005" in f.remedies[0].reason
    # equal rates: balancing is not the point, the general remedies lead
    f = ranked(builtin, "GD601", values={"lr_d": 2e-3, "lr_g": 2e-3})
    ids = [r.id for r in f.remedies]
    assert ids[:2] == ["lower_lr", "optimizer"] and ids.index("lower_g_lr") > 2


def _floor_run(rates: bool):
    """D's loss at the floor for 2000 steps (GD102) in a run whose D rate a schedule took from 1e-3
    to 1e-5 at step 1000; the context holds the rate at the end, the signals (when recorded) all of it."""
    import numpy as np

    from gandoctor.diagnose import diagnose
    from gandoctor.signals import SignalLog

    log = SignalLog(capacity=4096)
    steps = np.arange(2000)
    log.extend("loss.d", steps, np.full(2000, 0.01))
    log.extend("loss.g", steps, np.full(2000, 5.0))
    if rates:
        log.extend("opt.lr_d", steps[::50], np.where(steps[::50] < 1000, 1e-3, 1e-5))
        log.extend("opt.lr_g", steps[::50], np.full(40, 1e-3))
    report = diagnose(log, load_rules(), RunContext(frozenset({"lr_schedule"}), {"lr_d": 1e-5, "lr_g": 1e-3}))
    return next(f for f in report.findings if f.mode == "discriminator_dominance")


def test_remedies_quote_the_learning_rate_the_run_had_at_the_onset():
    finding = _floor_run(rates=True)
    assert finding.onset_step < 1000
    lower = next(r for r in finding.remedies if r.id == "lower_d_lr")
    assert "D's lr is 0.001: try 0.0005" in lower.reason  # the rate when D took over, not the decayed one


def test_without_recorded_rates_the_context_s_rate_is_quoted():
    finding = _floor_run(rates=False)  # a log from before the rates were recorded: the context's (end) rate
    assert any(r.id == "lower_d_lr" and "1e-05 is already far below" in r.reason for r in finding.skipped_remedies)


def test_a_scalar_log_s_learning_rates_are_quoted_at_the_onset_and_mark_a_schedule(tmp_path):
    # A CSV that logs the rates (lr_D, lr_G: a schedule's, per step): the same onset rate as live.
    from gandoctor.diagnose import analyze

    rows = ["step,loss_D,loss_G,lr_D,lr_G"] + [f"{s},0.01,5.0,{1e-3 if s < 1000 else 1e-5},0.001" for s in range(2000)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    report = analyze(tmp_path / "train.csv")
    assert "lr_schedule" in report.context.flags  # the logged rate moved
    finding = next(f for f in report.findings if f.mode == "discriminator_dominance")
    assert any(r.id == "lower_d_lr" and "D's lr is 0.001: try 0.0005" in r.reason for r in finding.remedies)
    constant = tmp_path / "constant.csv"
    constant.write_text("\n".join(["step,loss_D,loss_G,lr_D"] + [f"{s},0.01,5.0,0.001" for s in range(2000)]) + "\n")
    assert "lr_schedule" not in analyze(constant).context.flags
    # One rate that names neither player (Lightning's LearningRateMonitor: lr-Adam) marks a schedule
    # too, but is quoted as neither D's nor G's.
    shared = tmp_path / "shared.csv"
    shared.write_text("\n".join(["step,loss_D,loss_G,lr-Adam"] + [f"{s},0.01,5.0,{1e-3 if s < 1000 else 1e-5}" for s in range(2000)]) + "\n")
    shared_report = analyze(shared)
    assert "lr_schedule" in shared_report.context.flags
    assert "lr_d" not in shared_report.context.values


def test_a_collapse_read_from_d_s_win_offers_to_slow_d_down(builtin):
    # GD305 infers collapse from D winning outright: the documents' first fix for that is D's rate.
    ids = [ref.id for ref in builtin.by_code("GD305").remedies]
    assert "lower_d_lr" in ids and "mode_collapse" in builtin.remedies["lower_d_lr"].addresses


def test_a_learning_rate_far_outside_any_range_is_offered_first_for_any_finding(builtin):
    """A DCGAN at lr 5 died (grads 0, losses clamped): its G-dominance finding's first remedy was
    "Give D more capacity", though the rate is the cause of everything that failed."""
    for code in ("GD202", "GD301", "GD101"):
        f = ranked(builtin, code, values={"lr_d": 5.0, "lr_g": 5.0})
        assert f.remedies[0].id == "lower_lr", code
        assert "offered for any finding (D's lr 5)" in f.remedies[0].reason
        assert "far outside any working range: start at 1e-4 to 2e-4" in f.remedies[0].reason
        assert "try D 1 and G 1" not in f.remedies[0].reason  # not a fifth of a rate that is wrong by 10^4
    # A usual rate: not offered where the rule does not list it.
    f = ranked(builtin, "GD301", values={"lr_d": 2e-4, "lr_g": 2e-4})
    assert all("offered for any finding" not in r.reason for r in f.remedies)


def test_several_d_steps_rank_fewer_d_steps_up_but_not_past_a_lower_d_rate(builtin):
    # The cure benchmark: runs taking 5 D steps were cured by a lower D rate (2/2), not by one step (0/2).
    for code in ("GD101", "GD104"):
        remedies = ranked(builtin, code, (), {"d_steps_per_g": 5.0}).remedies
        ids = [r.id for r in remedies]
        assert ids[0] == "lower_d_lr" and "fewer_d_steps" in ids[:3]
        assert "D takes 5 steps per G step: try 1" in next(r.reason for r in remedies if r.id == "fewer_d_steps")


@pytest.mark.parametrize("lr_g", [3e-4 * 10, 3e-3, 3.1e-3])
def test_at_ten_times_one_ratio_reads_one_way_for_both_rates(lr_g: float):
    # G's lr exactly 10x D's (3e-4 x 10): "lower G's lr" said "D cannot keep up at all" while the
    # skip on "lower D's lr" held only strictly under 0.1x, so a D-dominance finding ranked
    # lowering D's rate first with no caveat (aladdinpersson's simple GAN with G's lr x10).
    remedies = load_rules().remedies
    context = expand_context(RunContext(frozenset(), {"lr_d": 3e-4, "lr_g": lr_g}), remedies)
    assert assess(remedies["lower_d_lr"], context).verdict == "skip"
    assert "D cannot keep up at all" in assess(remedies["lower_g_lr"], context).reasons[0]


def test_train_g_more_often_is_not_offered_where_d_already_takes_one_step_or_is_a_critic():
    # gordicaleksa's DCGAN (one D step) and jalola's WGAN-GP (a critic) were offered "one D step per G step".

    rules = load_rules()
    remedy = rules.remedies["fewer_d_steps"]
    one = RunContext(frozenset(), {"d_steps_per_g": 1.0})
    assert any(check.evaluate(one) for check in remedy.skip)
    critic = RunContext(frozenset({"critic", "multi_d_steps"}), {"d_steps_per_g": 5.0})
    assert any(check.evaluate(critic) for check in remedy.skip)
    five = RunContext(frozenset({"multi_d_steps"}), {"d_steps_per_g": 5.0})
    assert not any(check.evaluate(five) for check in remedy.skip)
