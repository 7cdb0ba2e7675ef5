"""Per-rule cases kept as data (rules/cases/<CODE>.toml), expanded into one test each, and the
case-file loader's errors. Whether the rules detect real failures is tested on recorded runs
(test_detection.py); these pin each rule's semantics: where it must fire, where it must not."""

from __future__ import annotations

from pathlib import Path

import pytest

from gandoctor import RuleError, load_rules
from gandoctor.cli import main
from gandoctor.rulecases import Expect, load_cases, run_case
from gandoctor.rules import builtin_rules_dir

RULES = load_rules()
CASE_FILES = sorted((builtin_rules_dir() / "cases").glob("*.toml"))
CASES = [case for path in CASE_FILES for case in load_cases(path)]


def test_every_builtin_rule_has_a_firing_and_a_non_firing_case():
    by_rule: dict[str, set[Expect]] = {}
    for case in CASES:
        by_rule.setdefault(case.rule, set()).add(case.expect)
    for rule in RULES.rules:
        assert Expect.FIRE in by_rule.get(rule.code, set()), f"{rule.code} has no case where it must fire"
        assert by_rule[rule.code] - {Expect.FIRE}, f"{rule.code} has no case where it must stay quiet or be skipped"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rule}:{c.name}" for c in CASES])
def test_rule_case(case):
    result = run_case(case, RULES)
    assert result.passed, f"{case.source}: {case.name!r}: expected {case.expect.value} {case.onset or ''}, got {result.got}"


def test_a_case_that_expects_the_wrong_onset_fails():
    case = next(c for c in CASES if c.rule == "GD501" and c.expect is Expect.FIRE)
    from dataclasses import replace

    assert not run_case(replace(case, onset=case.onset + 50), RULES).passed


@pytest.mark.parametrize(
    "text,key",
    [
        ('[[case]]\nname = "x"\nexpect = "explode"\nsteps = 10\n[case.signals]\n"loss.d" = [[0, 1.0]]\n', "case[0].expect"),
        ('[[case]]\nname = "x"\nexpect = "fire"\nsteps = 10\n[case.signals]\n"loss.d" = [[0, 1.0]]\n', "case[0].onset"),
        ('[[case]]\nname = "x"\nexpect = "quiet"\nsteps = 0\n[case.signals]\n"loss.d" = [[0, 1.0]]\n', "case[0].steps"),
        ('[[case]]\nname = "x"\nexpect = "quiet"\nsteps = 10\n[case.signals]\n"loss.d" = [[0, "lots"]]\n', "case[0].signals.loss.d"),
        ('[[case]]\nname = "x"\nexpect = "quiet"\nsteps = 10\n', "case[0].signals"),
        ("title = 'no cases'\n", "case"),
    ],
)
def test_bad_case_files_name_the_file_and_key(tmp_path, text, key):
    path = tmp_path / "GD501.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RuleError) as info:
        load_cases(path)
    assert str(path) in str(info.value) and key in str(info.value)


CUSTOM = '''code = "ACME1"
name = "critic-gap-wide"
mode = "non_convergence"
summary = "s"
why = "w"
[params]
min_run_steps = 0
warmup_steps = 0
persist_steps = 50
window = 10
[[conditions]]
signal = "user.critic_gap"
stat = "median"
op = ">"
threshold = 5.0
[[remedies]]
id = "lower_lr"
'''


def test_rules_check_validates_a_project_folder_and_runs_its_cases(tmp_path, capsys):
    folder = tmp_path / "gan_rules"
    (folder / "cases").mkdir(parents=True)
    (folder / "ACME1-critic-gap.toml").write_text(CUSTOM, encoding="utf-8")
    (folder / "cases" / "ACME1.toml").write_text(
        '[[case]]\nname = "gap opens at 100"\nexpect = "fire"\nonset = 105\ntolerance = 10\nsteps = 400\n'
        '[case.signals]\n"user.critic_gap" = [[0, 1.0], [100, 9.0]]\n', encoding="utf-8"
    )
    assert main(["rules", "--check", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "1 rule(s) valid" in out and "1 of 1 case(s) passed" in out
    (folder / "cases" / "ACME1.toml").write_text(
        '[[case]]\nname = "never opens"\nexpect = "fire"\nonset = 105\nsteps = 400\n[case.signals]\n"user.critic_gap" = [[0, 1.0]]\n',
        encoding="utf-8",
    )
    assert main(["rules", "--check", str(folder)]) == 1
    assert "0 of 1 case(s) passed" in capsys.readouterr().out
    (folder / "ACME1-critic-gap.toml").write_text(CUSTOM.replace('mode = "non_convergence"', 'mode = "sadness"'), encoding="utf-8")
    assert main(["rules", "--check", str(folder)]) == 2


def test_builtin_rules_check_from_the_command_line(capsys):
    assert main(["rules", "--check", str(builtin_rules_dir())]) == 0
    out = capsys.readouterr().out
    assert f"{len(RULES.rules)} rule(s) valid" in out and f"{len(CASES)} of {len(CASES)} case(s) passed" in out
