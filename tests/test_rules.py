"""gandoctor.rules: loading and validating rule files, the built-in rules, overrides."""

from __future__ import annotations

import math

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from pathlib import Path

import pytest

from gandoctor import MODES, RuleError, load_rules
from gandoctor.rules import _PARAM_DEFAULTS as DEFAULT_PARAMS
from gandoctor.rules import Condition, builtin_rules_dir, in_run_units, with_overrides

DATA = Path(__file__).parent / "data"
BAD_CASES = tomllib.loads((DATA / "bad_rules.toml").read_text(encoding="utf-8"))["case"]

REMEDIES = '''
[remedy.r1]
title = "Remedy one"
action = "Do the first thing."
source = "[X] A source"
section = "Section 1"
'''

VALID_RULE = '''
code = "GD900"
name = "case"
mode = "mode_collapse"
summary = "A summary."
why = "Because."
[params]
auc_high = 0.98
[[conditions]]
signal = "x.a"
stat = "median"
op = ">"
threshold = "auc_high"
[[conditions]]
signal = "x.b"
stat = "frac_above"
level = 0.5
op = ">="
threshold = 0.25
window = 40
optional = true
[[corroborate]]
signal = "x.c"
stat = "slope"
op = "<"
threshold = -1.5
[[remedies]]
id = "r1"
weight = 0.5
'''


def _folder(root: Path, name: str, remedies: str = REMEDIES) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "remedies.toml").write_text(remedies, encoding="utf-8")
    return folder


@pytest.mark.parametrize("case", BAD_CASES, ids=[c["id"] for c in BAD_CASES])
def test_bad_rule_raises_rule_error_naming_file_and_key(tmp_path, case):
    where = case.get("where", "rule")
    a = _folder(tmp_path, "a")
    dirs = [a]
    if where == "rule":
        bad = a / "GD900-case.toml"
        bad.write_text(case["text"], encoding="utf-8")
    elif where == "remedies":
        bad = a / "remedies.toml"
        bad.write_text(case["text"], encoding="utf-8")
        (a / "GD900-case.toml").write_text(VALID_RULE, encoding="utf-8")
    elif where == "second_folder":
        (a / "GD900-case.toml").write_text(VALID_RULE, encoding="utf-8")
        b = _folder(tmp_path, "b")
        bad = b / "GD900-again.toml"
        bad.write_text(case["text"], encoding="utf-8")
        dirs.append(b)
    else:  # pragma: no cover - a typo in the data file
        raise AssertionError(f"unknown 'where' {where!r} in case {case['id']}")
    with pytest.raises(RuleError) as info:
        load_rules(dirs, include_builtin=False)
    message = str(info.value)
    assert str(bad) in message
    expected = f"'{case['key']}'" if case.get("quoted", True) else case["key"]
    assert expected in message


def test_bad_rule_cases_cover_the_required_kinds():
    ids = {c["id"] for c in BAD_CASES}
    for required in (
        "unknown-top-level-key",
        "wrong-type-name",
        "unknown-statistic",
        "unknown-operator",
        "threshold-names-missing-param",
        "duplicate-code-across-folders",
        "unknown-remedy-id",
        "invalid-toml",
    ):
        assert required in ids


def test_duplicate_code_message_names_both_files(tmp_path):
    a, b = _folder(tmp_path, "a"), _folder(tmp_path, "b")
    (a / "GD900-case.toml").write_text(VALID_RULE, encoding="utf-8")
    (b / "GD900-case.toml").write_text(VALID_RULE, encoding="utf-8")
    with pytest.raises(RuleError, match="duplicate rule code GD900") as info:
        load_rules([a, b], include_builtin=False)
    assert str(a / "GD900-case.toml") in str(info.value)
    assert str(b / "GD900-case.toml") in str(info.value)


def test_missing_rules_folder_raises(tmp_path):
    with pytest.raises(RuleError, match="does not exist"):
        load_rules([tmp_path / "nope"], include_builtin=False)


def test_valid_rule_parses_with_defaults_and_params(tmp_path):
    a = _folder(tmp_path, "a")
    (a / "GD900-case.toml").write_text(VALID_RULE, encoding="utf-8")
    ruleset = load_rules([a], include_builtin=False)
    rule = ruleset.by_code("GD900")
    assert rule.params == dict(DEFAULT_PARAMS, auc_high=0.98)
    assert (rule.params["warmup_steps"], rule.params["persist_steps"], rule.params["window"]) == (300.0, 300.0, 200.0)
    assert rule.warmup_steps == 300 and rule.persist_steps == 300
    assert rule.match == "all" and rule.skip_if == ()
    first, second = rule.conditions
    assert (first.threshold, first.threshold_param, first.window, first.window_from_params) == (0.98, "auc_high", 200, True)
    assert (second.level, second.window, second.window_from_params, second.optional) == (0.5, 40, False, True)
    assert rule.corroborate[0].threshold == -1.5
    assert [(r.id, r.weight) for r in rule.remedies] == [("r1", 0.5)]
    assert rule.signals() == {"x.a", "x.b", "x.c"}
    assert rule.source_file == str(a / "GD900-case.toml")
    assert ruleset.remedies["r1"].title == "Remedy one"
    with pytest.raises(KeyError):
        ruleset.by_code("GD999")


def test_a_rule_s_caveat_is_read_as_one_line(tmp_path):
    a = _folder(tmp_path, "a")
    (a / "GD900-case.toml").write_text(VALID_RULE.replace('why = "Because."', 'why = "Because."\ncaveat = """\nScalars alone cannot\ntell this apart.\n"""'), encoding="utf-8")
    assert load_rules([a], include_builtin=False).by_code("GD900").caveat == "Scalars alone cannot tell this apart."
    (a / "GD900-case.toml").write_text(VALID_RULE, encoding="utf-8")
    assert load_rules([a], include_builtin=False).by_code("GD900").caveat == ""


def test_a_rule_s_notes_are_read_with_their_condition_and_a_bad_one_is_named(tmp_path):
    a = _folder(tmp_path, "a")
    note = '\n[[notes]]\nsignal = "x.a"\nstat = "median"\nop = "<"\nthreshold = 0.1\ntext = """\nSaid only\nwhere it holds."""\n'
    (a / "GD900-case.toml").write_text(VALID_RULE + note, encoding="utf-8")
    (read,) = load_rules([a], include_builtin=False).by_code("GD900").notes
    assert (read.text, read.condition.signal, read.condition.op, read.condition.threshold) == ("Said only where it holds.", "x.a", "<", 0.1)
    (a / "GD900-case.toml").write_text(VALID_RULE + note.replace("text = ", "words = "), encoding="utf-8")
    with pytest.raises(RuleError, match=r"notes\[0\]\.text.*a non-empty string"):
        load_rules([a], include_builtin=False)
    # A note's condition follows the rule's overridden params and the run's units as its conditions do.
    (a / "GD900-case.toml").write_text(VALID_RULE + note.replace("threshold = 0.1", 'threshold = "auc_high"\nscale = "d_loss_unit"'), encoding="utf-8")
    out = with_overrides(load_rules([a], include_builtin=False), [], {"case": {"window": 10, "auc_high": 0.5}}, "test").by_code("GD900")
    assert (out.notes[0].condition.window, out.notes[0].condition.threshold) == (10, 0.5)
    assert in_run_units(out, {"d_loss_unit": 0.25}).notes[0].condition.threshold == 0.125


def test_every_inferred_builtin_rule_states_its_caveat():
    # An inference can be wrong in ways the evidence cannot show; the report must say how.
    rules = load_rules()
    assert all(r.caveat for r in rules.rules if r.inferred)


@pytest.mark.parametrize(
    "op,value,expected",
    [(">", 1.0, False), (">", 1.5, True), (">=", 1.0, True), ("<", 1.0, False), ("<", 0.5, True), ("<=", 1.0, True)],
)
def test_condition_holds(op, value, expected):
    c = Condition(signal="x.a", stat="median", op=op, threshold=1.0, window=10)
    assert c.holds(value) is expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_condition_never_holds_on_non_finite(value):
    for op in (">", ">=", "<", "<="):
        assert not Condition(signal="x.a", stat="median", op=op, threshold=0.0, window=10).holds(value)


def test_condition_label():
    c = Condition(signal="d.auc", stat="frac_above", op=">", threshold=0.5, window=200, level=0.9)
    assert c.label() == "frac_above(d.auc, 200 steps, level=0.9)"


# -- built-in rules -------------------------------------------------------------------------
def test_builtin_rules_load_and_are_consistent():
    ruleset = load_rules()
    codes = [r.code for r in ruleset.rules]
    assert codes == sorted(codes)
    assert set(codes) >= {"GD101", "GD102", "GD201", "GD202", "GD301", "GD302", "GD401", "GD402", "GD501", "GD502", "GD601"}
    files = {p.stem for p in builtin_rules_dir().glob("GD*.toml")}
    for rule in ruleset.rules:
        assert rule.mode in MODES
        assert f"{rule.code}-{rule.name}" in files
        assert rule.remedies, rule.code
        for ref in rule.remedies:
            remedy = ruleset.remedies[ref.id]
            assert remedy.source and remedy.section
    names = [r.name for r in ruleset.rules]
    assert len(names) == len(set(names))


# -- overrides ----------------------------------------------------------------------------
def test_with_overrides_disables_by_code_and_name_and_rebinds_params():
    ruleset = load_rules()
    shipped = ruleset.by_code("GD101").conditions[0].threshold
    assert shipped != 0.9
    out = with_overrides(ruleset, ["GD402", "partial-mode-collapse"], {"GD101": {"auc_high": 0.9, "window": 50}}, "test")
    codes = {r.code for r in out.rules}
    assert "GD402" not in codes and "GD301" not in codes and "GD101" in codes
    gd101 = out.by_code("GD101")
    assert gd101.params["auc_high"] == 0.9
    assert gd101.conditions[0].threshold == 0.9
    assert all(c.window == 50 for c in gd101.conditions + gd101.corroborate if c.window_from_params)
    # the original rule set is untouched
    assert ruleset.by_code("GD101").conditions[0].threshold == shipped


def test_with_overrides_keeps_explicit_windows(tmp_path):
    a = _folder(tmp_path, "a")
    (a / "GD900-case.toml").write_text(VALID_RULE, encoding="utf-8")
    out = with_overrides(load_rules([a], include_builtin=False), [], {"case": {"window": 10}}, "test")
    first, second = out.by_code("GD900").conditions
    assert first.window == 10
    assert second.window == 40


@pytest.mark.parametrize(
    "disable,params,key",
    [
        (["GD999"], {}, "disable"),
        ([], {"GD999": {"window": 1}}, "rules.GD999"),
        ([], {"GD101": {"nope": 1}}, "rules.GD101.nope"),
        ([], {"GD101": {"auc_high": "high"}}, "rules.GD101.auc_high"),
    ],
)
def test_with_overrides_errors_name_origin_and_key(disable, params, key):
    with pytest.raises(RuleError) as info:
        with_overrides(load_rules(), disable, params, "my/pyproject.toml")
    assert "my/pyproject.toml" in str(info.value)
    assert f"'{key}'" in str(info.value)


def test_readme_rule_table_lists_every_builtin_rule():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| GD")}
    rules = load_rules().rules
    assert set(rows) == {r.code for r in rules}
    for rule in rules:
        assert f"| {rule.code} | {rule.name} | {rule.mode} | {int(rule.params['min_run_steps'])} |" in rows[rule.code]


def test_scaled_thresholds_are_in_the_run_s_units():
    rules = load_rules()
    gd102 = rules.by_code("GD102")
    floor = next(c for c in gd102.conditions if c.scale == "d_loss_unit")
    assert floor.threshold == pytest.approx(0.2)
    quarter = in_run_units(gd102, {"d_loss_unit": 0.25})
    assert next(c for c in quarter.conditions if c.scale).threshold == pytest.approx(0.05)
    # Unscaled conditions (D's loss not negative) keep their thresholds.
    assert [c.threshold for c in quarter.conditions if not c.scale] == [c.threshold for c in gd102.conditions if not c.scale]
    # A run that does not say, or says nonsense, keeps the calibrated thresholds.
    for values in ({}, {"d_loss_unit": "ls"}, {"d_loss_unit": 0.0}, {"d_loss_unit": math.inf}, {"d_loss_unit": True}):
        assert in_run_units(gd102, values) == gd102


def test_a_d_loss_without_a_unit_corroborates_nothing():
    """A critic's or an energy D's loss has no unit a scaled threshold could be read in: GD101's
    corroboration "D's loss under 0.2 units" is dropped there (BEGAN's reconstruction error of
    4.4 was shown as a failed corroboration; a critic's negative estimate held it trivially)."""
    gd101 = load_rules().by_code("GD101")
    scaled = [c for c in gd101.corroborate if c.scale]
    assert scaled  # the case this test is about
    for flags in (frozenset({"critic"}), frozenset({"energy_d"})):
        unitless = in_run_units(gd101, {}, flags)
        assert not any(c.scale for c in unitless.corroborate)
        assert unitless.conditions == gd101.conditions
        assert [c for c in unitless.corroborate if not c.scale] == [c for c in gd101.corroborate if not c.scale]
    assert in_run_units(gd101, {}, frozenset({"g_batchnorm"})) == gd101


def test_a_shared_note_is_written_once_in_notes_toml_and_a_bad_reference_is_named(tmp_path):
    a = _folder(tmp_path, "a")
    (a / "notes.toml").write_text('[tied]\nsignal = "x.a"\nstat = "median"\nop = ">="\nthreshold = 0.99\ntext = "Tied outputs."\n', encoding="utf-8")
    (a / "GD900-case.toml").write_text(VALID_RULE + '\n[[notes]]\nuse = "tied"\n', encoding="utf-8")
    (read,) = load_rules([a], include_builtin=False).by_code("GD900").notes
    assert (read.text, read.condition.signal, read.condition.threshold) == ("Tied outputs.", "x.a", 0.99)
    (a / "GD900-case.toml").write_text(VALID_RULE + '\n[[notes]]\nuse = "untied"\n', encoding="utf-8")
    with pytest.raises(RuleError, match=r"GD900-case\.toml.*notes\[0\]\.use.*known: tied"):
        load_rules([a], include_builtin=False)
    (a / "GD900-case.toml").write_text(VALID_RULE + '\n[[notes]]\nuse = "tied"\ntext = "more"\n', encoding="utf-8")
    with pytest.raises(RuleError, match=r"notes\[0\].*only 'use'"):
        load_rules([a], include_builtin=False)
    # A broken shared note is named in notes.toml itself, even before a rule uses it.
    (a / "notes.toml").write_text('[tied]\nsignal = "x.a"\nstat = "median"\nop = ">="\nthreshold = 0.99\n', encoding="utf-8")
    with pytest.raises(RuleError, match=r"notes\.toml.*tied\.text"):
        load_rules([a], include_builtin=False)


def test_the_builtin_rules_sharing_a_note_state_the_same_one():
    rules = load_rules()
    texts = {r.code: {n.text for n in r.notes} for r in rules.rules}
    assert texts["GD202"] == texts["GD204"] == texts["GD205"] == texts["GD208"]
    assert len(texts["GD202"]) == 2 and texts["GD201"] < texts["GD202"]


def test_a_conditional_g_that_draws_one_image_per_label_is_collapse_and_a_healthy_one_is_not():
    # The Packt book's cGAN with a 2-d z and G's rate x10: 92% of its fakes repeat another while
    # across their labels they spread as widely as the data (GD303 asks for both, and stayed quiet).
    from gandoctor import analyze

    public = Path(__file__).resolve().parent.parent / "fixtures" / "public"
    collapsed = analyze(public / "packt_cgan_z2_glr10", uses={"conditional"})
    assert [(f.mode, f.rule) for f in collapsed.findings] == [("mode_collapse", "GD311")]
    assert analyze(public / "packt_cgan_z2_glr10").findings == ()  # without labels: GD303's to judge, and quiet
    assert analyze(public / "packt_cgan_healthy", uses={"conditional"}).verdict == "healthy"



def test_a_rule_counts_g_iterations_where_the_doctor_steps_several_times_per_g_step():

    rule = load_rules().by_code("GD601")
    scaled = in_run_units(rule, {"doctor_steps_per_g": 5.0})
    for key in ("warmup_steps", "persist_steps", "window", "min_run_steps"):
        assert scaled.params[key] == 5 * rule.params[key]
    assert [c.window for c in scaled.conditions] == [5 * c.window for c in rule.conditions]
    assert in_run_units(rule, {"doctor_steps_per_g": 1.0}) == rule and in_run_units(rule, {}) == rule



def test_a_note_whose_advice_the_run_has_taken_is_not_said():
    # lightweight-gan's D is trained with reals low and read mirrored (d_reversed): its G-dominated
    # run (G's rate x10) was told to pass d_output="energy", which would flip D a second time.
    from gandoctor import analyze

    rule = load_rules().by_code("GD204")
    (note,) = [n for n in rule.notes if "energy" in n.text]
    assert {"d_reversed", "energy_d"} <= set(note.unless)
    assert note not in in_run_units(rule, {}, frozenset({"d_reversed"})).notes and note in in_run_units(rule, {}, frozenset()).notes
    report = analyze(Path(__file__).resolve().parent.parent / "fixtures" / "public" / "lightweight_gan_glr10")
    assert "d_reversed" in report.context.flags and [f.rule for f in report.findings] == ["GD204"]
    assert not any("d_output=\"energy\"" in (f.caveat or "") for f in report.findings)
