"""gandoctor.engine mechanics on tiny custom rules: warm-up, persistence, onset, match, skip_if, merging.

These tests check the evaluation machinery with hand-made signals and rules written into
tmp_path. They say nothing about whether the built-in rules detect real failures; that is
tested on recorded runs elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gandoctor import RunContext, load_rules
from gandoctor.engine import MAX_GRID_POINTS, evaluate, evaluate_rule, first_interval, make_grid, merge_by_mode
from gandoctor.findings import Finding, ModeState, SkippedRule, SkipReason
from gandoctor.signals import SignalLog

REMEDIES = '''
[remedy.r1]
title = "Remedy one"
action = "Do it."
source = "[X] src"
section = "1"
'''


def cond(signal: str, op: str = ">", threshold: float = 0.5, stat: str = "last", window: int = 1, optional: bool = False) -> str:
    return (
        f'[[conditions]]\nsignal = "{signal}"\nstat = "{stat}"\nop = "{op}"\nthreshold = {threshold}\n'
        f"window = {window}\noptional = {'true' if optional else 'false'}\n"
    )


def rule_text(
    code: str, *conds: str, mode: str = "mode_collapse", warmup: int = 0, persist: int = 50, match: str = "all", skip_if=(),
    corroborate: str = "", params: str = "", unless: str = "",
) -> str:
    """A rule whose warm-up and persistence do not scale with the run (the mechanics tests below
    pin them); ``params`` adds or overrides [params] lines."""
    skip = ", ".join(f'"{s}"' for s in skip_if)
    base = {"warmup_steps": warmup, "persist_steps": persist, "window": 1, "warmup_frac": 1, "persist_run_frac": 1, "min_run_steps": 0, "min_checks": 1}
    for line in params.splitlines():
        if "=" in line:
            key, value = line.split("=")
            base[key.strip()] = float(value)
    return (
        f'code = "{code}"\nname = "rule-{code.lower()}"\nmode = "{mode}"\nsummary = "summary {code}"\nwhy = "why"\n'
        f'match = "{match}"\nskip_if = [{skip}]\n' + (f"unless_signals = [{unless}]\n" if unless else "")
        + "[params]\n" + "".join(f"{k} = {v}\n" for k, v in base.items())
        + "".join(conds)
        + corroborate
        + '[[remedies]]\nid = "r1"\n'
    )


def ruleset(tmp_path: Path, *texts: str):
    folder = tmp_path / "rules"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "remedies.toml").write_text(REMEDIES, encoding="utf-8")
    for text in texts:
        code = text.split('"')[1]
        (folder / f"{code}.toml").write_text(text, encoding="utf-8")
    return load_rules([folder], include_builtin=False)


def signal_log(n: int = 200, **series: np.ndarray) -> SignalLog:
    log = SignalLog(capacity=4096)
    for step in range(n):
        log.record(step, {name.replace("_", "."): float(values[step]) for name, values in series.items()})
    return log


def on_between(n: int, *spans: tuple[int, int]) -> np.ndarray:
    out = np.zeros(n)
    for a, b in spans:
        out[a : b + 1] = 1.0
    return out


def only(result) -> Finding:
    assert len(result.findings) == 1, result
    return result.findings[0]


# -- grid -------------------------------------------------------------------------------
def test_grid_includes_last_step_and_is_bounded():
    grid = make_grid(0, 10, 1)
    assert grid.tolist() == list(range(11))
    big = make_grid(0, 1_000_003, 1)
    assert big[0] == 0 and big[-1] == 1_000_003
    assert big.size <= MAX_GRID_POINTS + 1
    assert np.all(np.diff(big) > 0)


def test_grid_stride_follows_shortest_window():
    grid = make_grid(0, 800, 80)
    assert np.diff(grid)[:-1].tolist() == [10] * (grid.size - 2)


# -- onset, persistence, warm-up ------------------------------------------------------------
def test_onset_is_first_step_of_the_streak(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), persist=50))
    f = only(evaluate(signal_log(x_a=on_between(200, (100, 199))), rules))
    assert (f.rule, f.mode, f.onset_step, f.last_step, f.active) == ("GD900", "mode_collapse", 100, 199, True)


def test_persistence_is_a_share_of_checks_not_an_unbroken_streak(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), persist=50))
    # holds 9 steps of every 10 from step 100 to the end (hopping, noise): fires at 100
    x = on_between(300, (100, 299))
    x[np.arange(109, 300, 10)] = 0.0
    f = only(evaluate(signal_log(300, x_a=x), rules))
    assert (f.onset_step, f.last_step) == (100, 298)
    # holds only every other step: below persist_frac (0.8): quiet
    x = on_between(300, (100, 299))
    x[np.arange(101, 300, 2)] = 0.0
    assert evaluate(signal_log(300, x_a=x), rules).findings == ()


def test_a_transient_that_recovered_does_not_fire(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), persist=50))
    # 100..160 held long enough, but the run spent the rest of its steps out of that state
    assert evaluate(signal_log(300, x_a=on_between(300, (100, 160))), rules).findings == ()
    # held to the end of the run: fires
    f = only(evaluate(signal_log(300, x_a=on_between(300, (100, 299))), rules))
    assert (f.onset_step, f.active) == (100, True)


def test_the_state_a_run_ended_in_fires_on_a_shorter_tail(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), persist=100))  # end_span_frac 0.5: 50 steps
    f = only(evaluate(signal_log(300, x_a=on_between(300, (240, 299))), rules))
    assert (f.onset_step, f.last_step, f.active) == (240, 299, True)
    assert evaluate(signal_log(300, x_a=on_between(300, (270, 299))), rules).findings == ()


def test_persist_zero_fires_on_the_last_single_check(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), persist=0))
    f = only(evaluate(signal_log(300, x_a=on_between(300, (299, 299))), rules))
    assert f.onset_step == 299


def test_nonfinite_onset_is_the_exact_first_nonfinite_step(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a", stat="nonfinite_frac", op=">", threshold=0.0, window=50), persist=0))
    x = np.ones(300)
    x[137:] = np.nan
    assert only(evaluate(signal_log(300, x_a=x), rules)).onset_step == 137
    # a run that stops two steps after its first NaN
    y = np.ones(140)
    y[137:] = np.nan
    assert only(evaluate(signal_log(140, x_a=y), rules)).onset_step == 137
    # isolated non-finite steps in a run that goes on (a GradScaler skipping steps) do not fire
    z = np.ones(300)
    z[[50, 120, 200]] = np.inf
    assert evaluate(signal_log(300, x_a=z), rules).findings == ()
    # a long run whose log merged its points (here 8 samples to a point) still has the exact step
    long = np.ones(30000)
    long[20003:] = np.nan
    assert only(evaluate(signal_log(30000, x_a=long), rules)).onset_step == 20003


def test_warmup_and_persistence_shrink_on_short_runs(tmp_path):
    scaled = "warmup_frac = 0.25\npersist_run_frac = 0.25\nmin_checks = 3"
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), warmup=300, persist=400, params=scaled))
    # a 400-step run: warm-up 100 steps, persistence 100 steps
    f = only(evaluate(signal_log(400, x_a=on_between(400, (150, 399))), rules))
    assert f.onset_step == 150
    # on a long run the rule's own 300/400 steps apply
    long = only(evaluate(signal_log(4000, x_a=on_between(4000, (150, 3999))), rules))
    assert long.onset_step == 300


def test_runs_shorter_than_the_rule_can_judge_are_skipped_as_too_short(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), params="min_run_steps = 250"))
    result = evaluate(signal_log(100, x_a=np.ones(100)), rules)
    assert result.findings == ()
    assert result.skipped[0].reason is SkipReason.TOO_SHORT
    assert result.mode_status[0].state is ModeState.NOT_CHECKED and "too short" in result.mode_status[0].describe()


def sparse_log(steps: range, value: float = 1.0) -> SignalLog:
    log = SignalLog()
    for step in steps:
        log.record(step, {"loss.d": value, "x.a": value})
    return log


def test_first_interval_is_the_gap_the_first_record_stands_for():
    assert first_interval(sparse_log(range(100, 301, 100))) == 100  # printed every 100 steps from step 100
    assert first_interval(sparse_log(range(1, 301))) == 1  # every step
    assert first_interval(sparse_log(range(5, 6))) == 0  # a single record: nothing to read it from


def test_a_log_printed_every_n_steps_counts_the_steps_its_first_record_stands_for(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), params="min_run_steps = 250"))
    # steps 100, 200, 300 of a 300-step run (a script printing after every 100th step): judged,
    # as the same run's log with a line at step 0 too; it was "too short" (200 steps) before
    for steps in (range(100, 301, 100), range(0, 301, 100)):
        assert only(evaluate(sparse_log(steps), rules)).rule == "GD900"
    # a log of every step starts where it starts: 200 steps are still too short
    assert evaluate(sparse_log(range(100, 301)), rules).skipped[0].reason is SkipReason.TOO_SHORT


def test_the_first_record_s_interval_counts_in_the_warm_up(tmp_path):
    scaled = "warmup_frac = 0.25\npersist_run_frac = 0.25"
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), warmup=300, persist=400, params=scaled))
    # steps 20..400 every 20: a 400-step run from step 1, warm-up 100 steps (a quarter of 400, not
    # of the 380 between the first and last records), so the first check after it is step 101
    assert only(evaluate(sparse_log(range(20, 401, 20)), rules)).onset_step == 101


def test_a_finding_read_from_a_few_records_says_so_and_is_less_confident(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a", stat="median", window=100), params="min_run_steps = 250"))
    thin = only(evaluate(sparse_log(range(100, 301, 100)), rules))  # 3 lines of a 300-step run
    assert thin.caveat == "Read from 3 records of x.a only: thin evidence." and thin.confidence <= 0.6
    dense = only(evaluate(sparse_log(range(1, 301)), rules))
    assert dense.caveat == "" and dense.confidence > 0.6


def test_rule_superseded_when_a_richer_signal_is_recorded(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), unless='"x.rich"'))
    assert only(evaluate(signal_log(x_a=np.ones(200)), rules)).rule == "GD900"
    result = evaluate(signal_log(x_a=np.ones(200), x_rich=np.ones(200)), rules)
    assert result.findings == ()
    assert result.skipped == (SkippedRule("GD900", SkipReason.SUPERSEDED, "mode_collapse", ("x.rich",)),)


def test_mode_status_failing_clear_and_not_checked(tmp_path):
    rules = ruleset(
        tmp_path,
        rule_text("GD900", cond("x.a")),
        rule_text("GD901", cond("x.b"), mode="non_convergence"),
        rule_text("GD902", cond("x.c"), mode="exploding_gradients"),
    )
    result = evaluate(signal_log(x_a=np.ones(200), x_b=np.zeros(200)), rules)
    status = {s.mode: s for s in result.mode_status}
    assert status["mode_collapse"].state is ModeState.FAILING
    assert status["non_convergence"].state is ModeState.CLEAR and status["non_convergence"].rules_checked == ("GD901",)
    assert status["exploding_gradients"].state is ModeState.NOT_CHECKED and status["exploding_gradients"].missing == ("x.c",)
    assert status["vanishing_gradients"].state is ModeState.NOT_CHECKED  # no rule for it here


def test_warmup_hides_early_streaks_and_clamps_onset(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), warmup=80, persist=50))
    # holding only before warm-up ends: no finding
    assert evaluate(signal_log(x_a=on_between(200, (0, 70))), rules).findings == ()
    # holding from the start: onset at the end of warm-up
    f = only(evaluate(signal_log(x_a=np.ones(200)), rules))
    assert f.onset_step == 80


def test_warmup_counts_from_first_logged_step(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), warmup=80, persist=50))
    log = SignalLog()
    for step in range(1000, 1200):
        log.record(step, {"x.a": 1.0})
    assert only(evaluate(log, rules)).onset_step == 1080


def test_later_gap_keeps_onset_and_reports_last_step(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), persist=50))
    # a short gap after the persistence window neither moves the onset nor stops the finding
    f = only(evaluate(signal_log(300, x_a=on_between(300, (20, 100), (120, 280))), rules))
    assert (f.onset_step, f.last_step, f.active) == (20, 280, False)


def test_a_finding_whose_signal_stopped_is_not_still_active(tmp_path):
    """A probe switched off (or a signal logged only early) leaves the rule no check at the run's
    end: what held at its last record is not the state the run ended in (a PGAN's G-dominance
    finding read "still active at the last step" from a signal that stopped 600 steps before)."""
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), persist=50))
    log = SignalLog(capacity=4096)
    for step in range(300):
        log.record(step, {"x.a": 1.0, "x.b": 0.0} if step < 200 else {"x.b": 0.0})
    f = only(evaluate(log, rules))
    assert f.onset_step == 0 and f.last_step < 205 and f.active is False


def test_evidence_details_and_confidence_range(tmp_path):
    corr = '[[corroborate]]\nsignal = "x.c"\nstat = "last"\nop = "<"\nthreshold = 0.0\nwindow = 1\n'
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), persist=50, corroborate=corr))
    log = signal_log(x_a=on_between(200, (50, 199)) * 2.0, x_c=-np.ones(200))
    f = only(evaluate(log, rules))
    roles = [(d.signal, d.role, d.held) for d in f.details]
    assert roles == [("x.a", "condition", True), ("x.c", "corroborate", True)]
    assert f.details[0].value == 2.0 and f.details[0].threshold == 0.5 and f.details[0].op == ">"
    assert f.evidence == {"last(x.a)": 2.0, "last(x.c)": -1.0}
    assert 0.0 <= f.confidence <= 1.0


def test_missing_corroboration_lowers_confidence(tmp_path):
    corr = '[[corroborate]]\nsignal = "x.c"\nstat = "last"\nop = "<"\nthreshold = 0.0\nwindow = 1\n'
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), persist=50, corroborate=corr))
    x = on_between(200, (50, 199))
    with_support = only(evaluate(signal_log(x_a=x, x_c=-np.ones(200)), rules)).confidence
    against = only(evaluate(signal_log(x_a=x, x_c=np.ones(200)), rules))
    assert against.confidence < with_support
    assert against.details[-1].held is False


# -- missing signals, match, optional -------------------------------------------------------
def test_match_all_with_missing_required_signal_is_skipped(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), cond("x.b")))
    result = evaluate(signal_log(x_a=np.ones(200)), rules)
    assert result.findings == ()
    assert result.skipped == (SkippedRule("GD900", SkipReason.MISSING_SIGNALS, "mode_collapse", ("x.b",)),)


def test_match_all_ignores_missing_optional_condition(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), cond("x.b", optional=True)))
    assert only(evaluate(signal_log(x_a=np.ones(200)), rules)).rule == "GD900"


def test_match_all_needs_every_recorded_condition(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), cond("x.b")))
    log = signal_log(x_a=on_between(200, (0, 180)), x_b=on_between(200, (80, 199)))
    f = only(evaluate(log, rules))
    assert (f.onset_step, f.last_step) == (80, 180)


def test_match_any_with_optional_conditions(tmp_path):
    text = rule_text("GD900", cond("x.a", optional=True), cond("x.b", optional=True), match="any")
    rules = ruleset(tmp_path, text)
    # either condition holding keeps the streak alive: 60..99 from x.a, 100..180 from x.b
    log = signal_log(x_a=on_between(200, (60, 99)), x_b=on_between(200, (100, 180)))
    f = only(evaluate(log, rules))
    assert (f.onset_step, f.last_step) == (60, 180)
    # only one optional signal recorded: still evaluated on it
    f = only(evaluate(signal_log(x_b=on_between(200, (100, 180))), rules))
    assert f.onset_step == 100
    assert [d.signal for d in f.details] == ["x.b"]
    # none recorded: skipped with the reason
    result = evaluate(signal_log(y_z=np.ones(200)), rules)
    assert result.findings == ()
    assert result.skipped[0].rule == "GD900"
    assert result.skipped[0].reason is SkipReason.MISSING_SIGNALS and result.skipped[0].missing == ("x.a", "x.b")


def test_same_signals_match_all_does_not_fire_where_any_does(tmp_path):
    log = signal_log(x_a=on_between(200, (0, 99)), x_b=on_between(200, (100, 199)))
    any_rules = ruleset(tmp_path / "any", rule_text("GD900", cond("x.a"), cond("x.b"), match="any"))
    all_rules = ruleset(tmp_path / "all", rule_text("GD900", cond("x.a"), cond("x.b"), match="all"))
    assert only(evaluate(log, any_rules)).onset_step == 0
    assert evaluate(log, all_rules).findings == ()


# -- skip_if ------------------------------------------------------------------------------
def test_skip_if_context_flag(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a"), skip_if=["critic"]))
    log = signal_log(x_a=np.ones(200))
    assert only(evaluate(log, rules)).rule == "GD900"
    assert only(evaluate(log, rules, RunContext(frozenset({"ttur"})))).rule == "GD900"
    result = evaluate(log, rules, RunContext(frozenset({"critic", "ttur"})))
    assert result.findings == ()
    assert result.skipped == (SkippedRule("GD900", SkipReason.NOT_APPLICABLE, "mode_collapse", ("critic",)),)
    assert result.skipped[0].describe() == "not applicable: run uses critic"


def test_only_if_judges_only_runs_that_use_every_flag(tmp_path):
    text = rule_text("GD900", cond("x.a")).replace('skip_if = []', 'skip_if = []\nonly_if = ["hinge_loss"]')
    rules = ruleset(tmp_path, text)
    assert rules.rules[0].only_if == ("hinge_loss",)
    log = signal_log(x_a=np.ones(200))
    assert only(evaluate(log, rules, RunContext(frozenset({"hinge_loss", "ttur"})))).rule == "GD900"
    result = evaluate(log, rules, RunContext(frozenset({"ttur"})))
    assert result.findings == () and result.checked == ()
    assert result.skipped == (SkippedRule("GD900", SkipReason.FOR_OTHER_RUNS, "mode_collapse", ("hinge_loss",)),)
    assert result.skipped[0].describe() == "for other runs: those that use hinge_loss"
    status = next(s for s in result.mode_status if s.mode == "mode_collapse")
    assert status.describe() == "not checked: its rules are for other runs"


# -- merging by mode ------------------------------------------------------------------------
def test_merge_by_mode_keeps_earliest_onset_and_most_confident_rule(tmp_path):
    rules = ruleset(
        tmp_path,
        # fires early with a small margin (value 1 vs threshold 0.5)
        rule_text("GD900", cond("x.a"), persist=20),
        # fires later with a huge margin (value 100 vs 0.5): more confident
        rule_text("GD901", cond("x.b"), persist=20),
        # another mode
        rule_text("GD902", cond("x.a"), persist=20, mode="non_convergence"),
    )
    log = signal_log(x_a=on_between(200, (50, 199)), x_b=on_between(200, (120, 199)) * 100.0)
    result = evaluate(log, rules)
    assert {f.rule for f in result.rule_findings} == {"GD900", "GD901", "GD902"}
    by_mode = {f.mode: f for f in result.findings}
    assert set(by_mode) == {"mode_collapse", "non_convergence"}
    merged = by_mode["mode_collapse"]
    gd900 = next(f for f in result.rule_findings if f.rule == "GD900")
    gd901 = next(f for f in result.rule_findings if f.rule == "GD901")
    assert gd901.confidence > gd900.confidence
    assert merged.rule == "GD901"
    assert merged.onset_step == 50 == gd900.onset_step
    assert merged.confidence == gd901.confidence
    assert merged.also_fired == ("GD900",)
    assert merged.details == gd901.details
    assert by_mode["non_convergence"].also_fired == ()


def _finding(rule, mode, onset, conf, active=True, last=500):
    return Finding(mode, rule, rule.lower(), "s", onset, last, active, conf, {}, ())


def test_merge_by_mode_on_finding_records():
    merged = merge_by_mode(
        [
            _finding("GD1", "mode_collapse", 300, 0.9, active=False, last=400),
            _finding("GD2", "mode_collapse", 100, 0.6, active=True, last=350),
            _finding("GD3", "exploding_gradients", 200, 0.7),
        ]
    )
    assert [(f.mode, f.rule, f.onset_step) for f in merged] == [("mode_collapse", "GD1", 100), ("exploding_gradients", "GD3", 200)]
    assert merged[0].active is True and merged[0].last_step == 400 and merged[0].confidence == 0.9


def test_a_caveat_stands_only_where_every_rule_that_fired_states_one():
    with_caveat = Finding("mode_collapse", "GD1", "gd1", "s", 100, 500, True, 0.9, {}, (), caveat="inferred")
    direct = _finding("GD2", "mode_collapse", 200, 0.5)
    assert merge_by_mode([with_caveat])[0].caveat == "inferred"
    # A direct measurement of the same mode fired too: the inference's limit no longer applies.
    assert merge_by_mode([with_caveat, direct])[0].caveat == ""


def test_a_finding_carries_its_rule_s_caveat(tmp_path):
    text = rule_text("GD900", cond("x.a")).replace('why = "why"\n', 'why = "why"\ncaveat = "cannot tell converged from beaten"\n')
    rules = ruleset(tmp_path, text)
    assert only(evaluate(signal_log(x_a=np.ones(200)), rules)).caveat == "cannot tell converged from beaten"


def test_an_exact_onset_rule_sets_the_mode_s_onset_and_an_earlier_rule_is_the_first_sign():
    burst, nan = _finding("GD7", "exploding_gradients", 230, 0.9), _finding("GD1", "exploding_gradients", 260, 0.7)
    (merged,) = merge_by_mode([burst, nan], frozenset({"GD1"}))
    assert (merged.onset_step, merged.first_sign_step, merged.first_sign_rule) == (260, 230, "GD7")
    assert merged.rule == "GD7" and merged.also_fired == ("GD1",)  # the evidence is still the most confident rule's
    # Without an exact-onset rule the earliest onset is the onset and there is no separate first sign.
    (plain,) = merge_by_mode([burst, nan])
    assert (plain.onset_step, plain.first_sign_step, plain.first_sign_rule) == (230, None, "")
    # An exact-onset rule that fired first: nothing came before it.
    (first,) = merge_by_mode([_finding("GD7", "exploding_gradients", 300, 0.9), nan], frozenset({"GD1"}))
    assert (first.onset_step, first.first_sign_step) == (260, None)


def test_shipped_rules_call_a_burst_then_nan_exploding_at_the_first_nan_with_the_burst_as_first_sign():
    """The issue's criterion: a log that ends in non-finite values is exploding at its first
    non-finite step, even when the gradient norm burst (GD507) a few tens of steps before."""
    n, burst_at, nan_at = 300, 200, 250
    rng = np.random.default_rng(0)
    log = SignalLog(capacity=4096)
    for step in range(n):
        grad = 1e5 if step >= burst_at else 1.0 + 0.1 * rng.random()
        loss = float("nan") if step >= nan_at else 0.7 + 0.01 * rng.random()
        log.record(step, {"loss.d": loss, "loss.g": loss, "grad_norm.d": float("nan") if step >= nan_at else grad, "grad_norm.g": grad})
    result = evaluate(log, load_rules())
    (exploding,) = [f for f in result.findings if f.mode == "exploding_gradients"]
    assert exploding.onset_step == nan_at
    assert exploding.first_sign_rule in {"GD505", "GD507"} and burst_at <= exploding.first_sign_step < nan_at  # type: ignore[operator]
    assert "GD501" in (exploding.rule, *exploding.also_fired)


def test_merge_ties_on_confidence_prefer_earlier_onset():
    merged = merge_by_mode([_finding("GD1", "mode_collapse", 300, 0.8), _finding("GD2", "mode_collapse", 100, 0.8)])
    assert merged[0].rule == "GD2" and merged[0].also_fired == ("GD1",)


# -- empty input ----------------------------------------------------------------------------
def test_empty_log_skips_every_rule(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a")), rule_text("GD901", cond("x.b")))
    result = evaluate(SignalLog(), rules)
    assert result.findings == () and result.first_step is None and result.last_step is None
    assert [(s.rule, s.reason) for s in result.skipped] == [("GD900", SkipReason.NO_DATA), ("GD901", SkipReason.NO_DATA)]
    assert all(s.state is ModeState.NOT_CHECKED for s in result.mode_status)


def test_evaluate_rule_returns_none_when_nothing_holds(tmp_path):
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a")))
    log = signal_log(x_a=np.zeros(200))
    assert evaluate_rule(log, rules.rules[0], make_grid(0, 199, 1)) is None


@pytest.mark.parametrize("stat,window", [("median", 20), ("mean", 50)])
def test_windowed_condition_onset_lags_by_about_half_a_window(tmp_path, stat, window):
    # a step change at 100; the window median/mean crosses 0.5 once more than half the window is past it
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a", stat=stat, window=window), persist=20))
    f = only(evaluate(signal_log(300, x_a=on_between(300, (100, 299))), rules))
    assert 100 < f.onset_step <= 100 + window // 2 + 8  # grid stride is window // 8


def test_an_inferred_rule_can_fail_a_mode_but_its_silence_clears_nothing(tmp_path):
    inferred = rule_text("GD900", cond("x.a")).replace('match = "all"\n', 'match = "all"\ninferred = true\n')
    rules = ruleset(tmp_path, inferred, rule_text("GD901", cond("x.direct")))
    quiet = {s.mode: s for s in evaluate(signal_log(x_a=np.zeros(200)), rules).mode_status}["mode_collapse"]
    assert quiet.state is ModeState.NOT_CHECKED and quiet.missing == ("x.direct",)
    result = evaluate(signal_log(x_a=np.ones(200)), rules)
    firing = {s.mode: s for s in result.mode_status}["mode_collapse"]
    assert firing.state is ModeState.FAILING
    assert result.findings[0].confidence <= 0.6  # an inference is never as sure as a measurement
    direct = {s.mode: s for s in evaluate(signal_log(x_a=np.zeros(200), x_direct=np.zeros(200)), rules).mode_status}
    assert direct["mode_collapse"].state is ModeState.CLEAR and direct["mode_collapse"].rules_checked == ("GD901",)


def test_window_run_frac_scales_the_window_with_the_run(tmp_path):
    # x.a is 1 for the last 60 steps of 400: a 10-step window sees only ones at the end, a window
    # of half the run (200 steps) has a median of 0 there.
    x = on_between(400, (340, 399))
    fixed = ruleset(tmp_path / "a", rule_text("GD900", cond("x.a", stat="median", window=10), persist=20))
    scaled = ruleset(tmp_path / "b", rule_text("GD900", cond("x.a", stat="median", window=10), persist=20, params="window_run_frac = 0.5"))
    assert only(evaluate(signal_log(400, x_a=x), fixed)).onset_step >= 340
    assert not evaluate(signal_log(400, x_a=x), scaled).findings


def test_window_run_max_caps_the_run_scaled_window(tmp_path):
    # x.a is 1 for the last 300 steps of 4000: half the run (2000 steps) has a median of 0 there,
    # the same share capped at 200 steps sees only ones.
    x = on_between(4000, (3700, 3999))
    scaled = "window_run_frac = 0.5"
    uncapped = ruleset(tmp_path / "a", rule_text("GD900", cond("x.a", stat="median", window=10), persist=100, params=scaled))
    capped = ruleset(tmp_path / "b", rule_text("GD900", cond("x.a", stat="median", window=10), persist=100, params=scaled + "\nwindow_run_max = 200"))
    assert not evaluate(signal_log(4000, x_a=x), uncapped).findings
    assert only(evaluate(signal_log(4000, x_a=x), capped)).onset_step >= 3700


def test_an_optional_condition_that_cannot_be_computed_leaves_the_decision_to_the_others(tmp_path):
    # x.b's slope needs 3 points and only ever has 2: with `optional` the rule fires on x.a alone
    a = on_between(300, (100, 299))
    b = np.full(300, np.nan)
    b[[100, 200]] = 0.0
    strict_rule = rule_text("GD900", cond("x.a"), cond("x.b", op="<", threshold=1.0, stat="slope", window=300), persist=50)
    lenient_rule = rule_text("GD901", cond("x.a"), cond("x.b", op="<", threshold=1.0, stat="slope", window=300, optional=True), persist=50)
    log = signal_log(300, x_a=a, x_b=b)
    assert not evaluate(log, ruleset(tmp_path / "s", strict_rule)).findings
    assert only(evaluate(log, ruleset(tmp_path / "l", lenient_rule))).onset_step == 100
    # an optional condition alone is no evidence, and under match = "any" it never counts when undefined
    alone = rule_text("GD902", cond("x.b", op="<", threshold=1.0, stat="slope", window=300, optional=True), persist=50)
    assert not evaluate(log, ruleset(tmp_path / "a", alone)).findings
    any_rule = rule_text("GD903", cond("x.c"), cond("x.b", op="<", threshold=1.0, stat="slope", window=300, optional=True), persist=50, match="any")
    assert not evaluate(signal_log(300, x_b=b, x_c=np.zeros(300)), ruleset(tmp_path / "y", any_rule)).findings


def test_a_scaled_threshold_is_read_in_the_units_the_run_declares(tmp_path):
    text = rule_text("GD900", cond("loss.d", "<", 0.2, stat="median", window=20), persist=50)
    text = text.replace("threshold = 0.2\n", 'threshold = 0.2\nscale = "d_loss_unit"\n', 1)
    rules = ruleset(tmp_path, text)
    assert rules.by_code("GD900").conditions[0].scale == "d_loss_unit"
    log = signal_log(400, loss_d=np.full(400, 0.12))
    # 0.12 is under the calibrated floor; with least squares towards 1/0, halved (unit 1/4), it is not.
    assert only(evaluate(log, rules)).rule == "GD900"
    assert evaluate(log, rules, RunContext(frozenset(), {"d_loss_unit": 0.25})).findings == ()
    finding = only(evaluate(signal_log(400, loss_d=np.full(400, 0.03)), rules, RunContext(frozenset(), {"d_loss_unit": 0.25})))
    assert finding.details[0].threshold == pytest.approx(0.05)


def test_a_rule_with_nothing_to_judge_says_which_signal_and_why(tmp_path):
    # A cycle read over a log printed every 15 steps: 14 records in a 200-step window where the
    # statistic needs 48 (the DCGAN tutorial's console log); a series of NaN; a condition whose
    # statistic was defined is not named.
    rules = ruleset(tmp_path, rule_text("GD900", cond("x.a", stat="cycle", window=200), cond("x.b", op="<", threshold=5, stat="mean")),
                    rule_text("GD901", cond("x.c", stat="mean", window=200)))
    log = SignalLog()
    rng = np.random.default_rng(0)
    for step in range(0, 1500, 15):
        log.record(step, {"x.a": float(rng.normal()), "x.b": 1.0, "x.c": float("nan")})
    skipped = {s.rule: s for s in evaluate(log, rules).skipped}
    assert skipped["GD900"].reason is SkipReason.UNDEFINED
    assert skipped["GD900"].detail == "x.a: about 13 records in a 200-step window, where cycle needs 48"
    assert "where cycle needs 48" in skipped["GD900"].describe()
    assert skipped["GD901"].detail == "x.c: mostly non-finite"


def test_scalars_no_signal_maps_to_do_not_set_the_run_s_length():
    # torchgan's Gradients/* TensorBoard tags count twice as fast as its losses: read as user.*
    # signals, they made a 1,000-step run 2,000 steps long, its windows and warm-ups scaled to that.
    steps = np.arange(0, 1000, 10)
    log = SignalLog()
    log.extend("loss.d", steps, np.full(steps.size, 1.3))
    log.extend("loss.g", steps, np.full(steps.size, 0.7))
    alone = evaluate(log, load_rules())
    log.extend("user.gradients_discriminator", np.arange(0, 2000, 20), np.ones(100))
    both = evaluate(log, load_rules())
    assert (both.first_step, both.last_step) == (alone.first_step, alone.last_step) == (0, 990)
    only_user = SignalLog()
    only_user.extend("user.x", steps, np.ones(steps.size))
    assert (evaluate(only_user, load_rules()).first_step, evaluate(only_user, load_rules()).last_step) == (0, 990)
