"""gandoctor.config: [tool.gandoctor] in pyproject.toml, --config files, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gandoctor import Config, ConfigError, load_config

CUSTOM_RULE = '''
code = "GD950"
name = "custom-rule"
mode = "non_convergence"
summary = "s"
why = "w"
[[conditions]]
signal = "loss.d"
stat = "median"
op = ">"
threshold = 100
'''


def pyproject(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n\n' + body, encoding="utf-8")
    return path


def test_defaults_when_no_pyproject_has_a_table(tmp_path):
    pyproject(tmp_path, "[tool.black]\nline-length = 100\n")
    config = load_config(search_from=tmp_path)
    assert config == Config()
    assert {r.code for r in config.ruleset().rules} >= {"GD101", "GD301", "GD501"}


def test_disable_by_code_and_by_name(tmp_path):
    path = pyproject(tmp_path, '[tool.gandoctor]\ndisable = ["GD402", "discriminator-separates"]\n')
    config = load_config(search_from=tmp_path)
    assert config.origin == str(path)
    codes = {r.code for r in config.ruleset().rules}
    assert "GD402" not in codes and "GD101" not in codes
    assert "GD102" in codes and "GD401" in codes


def test_param_override_changes_the_threshold_that_refers_to_it(tmp_path):
    pyproject(tmp_path, "[tool.gandoctor.rules.GD101]\nauc_high = 0.9\nwarmup_steps = 1000\n")
    rule = load_config(search_from=tmp_path).ruleset().by_code("GD101")
    assert rule.params["auc_high"] == 0.9
    cond = next(c for c in rule.conditions if c.threshold_param == "auc_high")
    assert cond.threshold == 0.9
    assert rule.warmup_steps == 1000
    # thresholds written as numbers are untouched
    assert [c.threshold for c in rule.corroborate] == [0.1, 0.2]


def test_param_override_by_rule_name(tmp_path):
    pyproject(tmp_path, '[tool.gandoctor.rules."discriminator-separates"]\nauc_high = 0.95\n')
    rule = load_config(search_from=tmp_path).ruleset().by_code("GD101")
    assert rule.conditions[0].threshold == 0.95


def test_search_walks_up_from_a_subfolder(tmp_path):
    pyproject(tmp_path, '[tool.gandoctor]\ndisable = ["GD601"]\n')
    sub = tmp_path / "src" / "pkg"
    sub.mkdir(parents=True)
    assert load_config(search_from=sub).disable == ("GD601",)


def test_nearest_pyproject_wins_even_without_a_table(tmp_path):
    pyproject(tmp_path, '[tool.gandoctor]\ndisable = ["GD601"]\n')
    pyproject(tmp_path / "inner", "")
    assert load_config(search_from=tmp_path / "inner") == Config()


def test_uses_and_rules_dirs_relative_to_the_config(tmp_path):
    rules = tmp_path / "gan_rules"
    rules.mkdir()
    (rules / "GD950-custom.toml").write_text(CUSTOM_RULE, encoding="utf-8")
    pyproject(tmp_path, '[tool.gandoctor]\nuses = ["gradient_penalty"]\nrules_dirs = ["gan_rules"]\n')
    config = load_config(search_from=tmp_path)
    assert config.uses == frozenset({"gradient_penalty"})
    assert config.rules_dirs == (tmp_path / "gan_rules",)
    assert config.ruleset().by_code("GD950").name == "custom-rule"


def test_explicit_config_file_top_level_or_tool_table(tmp_path):
    flat = tmp_path / "flat.toml"
    flat.write_text('disable = ["GD501"]\n[rules.GD101]\nauc_high = 0.97\n', encoding="utf-8")
    config = load_config(flat)
    assert config.disable == ("GD501",)
    assert config.ruleset().by_code("GD101").conditions[0].threshold == 0.97
    nested = tmp_path / "nested.toml"
    nested.write_text('[tool.gandoctor]\ndisable = ["GD502"]\n', encoding="utf-8")
    assert load_config(nested).disable == ("GD502",)


@pytest.mark.parametrize(
    "body,key",
    [
        ("[tool.gandoctor.rules.GD999]\nwindow = 10\n", "rules.GD999"),
        ("[tool.gandoctor.rules.GD101]\nauc_hi = 0.9\n", "rules.GD101.auc_hi"),
        ('[tool.gandoctor.rules.GD101]\nauc_high = "high"\n', "rules.GD101.auc_high"),
        ('[tool.gandoctor]\ndisable = ["GD999"]\n', "disable"),
    ],
)
def test_unknown_rule_or_param_raises_config_error_naming_the_key(tmp_path, body, key):
    path = pyproject(tmp_path, body)
    config = load_config(search_from=tmp_path)
    with pytest.raises(ConfigError) as info:
        config.ruleset()
    assert str(path) in str(info.value)
    assert f"'{key}'" in str(info.value)


@pytest.mark.parametrize(
    "body,key",
    [
        ("[tool.gandoctor]\ncolour = 1\n", "tool.gandoctor.colour"),
        ('[tool.gandoctor]\ndisable = "GD101"\n', "tool.gandoctor.disable"),
        ("[tool.gandoctor]\nuses = [1, 2]\n", "tool.gandoctor.uses"),
        ("[tool.gandoctor]\nrules = 5\n", "tool.gandoctor.rules"),
        ("[tool.gandoctor.rules]\nGD101 = 0.9\n", "tool.gandoctor.rules"),
    ],
)
def test_malformed_table_raises_config_error_naming_the_key(tmp_path, body, key):
    path = pyproject(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(search_from=tmp_path)
    assert str(path) in str(info.value)
    assert f"'{key}'" in str(info.value)


def test_invalid_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("disable = [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "missing.toml")
