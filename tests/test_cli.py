"""gandoctor.cli: exit codes, output formats and the module entry point.

These test the command-line plumbing. Run logs are written here from arrays; the "unhealthy"
ones trip either a custom rule (with the built-in rules disabled, so the outcome does not
depend on their tuning) or a NaN loss series, which GD501 exists to catch.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gandoctor import load_rules
from gandoctor.cli import EXIT_ERROR, EXIT_HEALTHY, EXIT_UNHEALTHY, main
from gandoctor.runlog import RunLogWriter

BUILTIN = [r.code for r in load_rules().rules]

CUSTOM_RULE = '''
code = "GD950"
name = "custom-trigger"
mode = "mode_collapse"
summary = "x.a went high."
why = "A test rule."
[params]
warmup_steps = 0
persist_steps = 50
window = 1
[[conditions]]
signal = "x.a"
stat = "last"
op = ">"
threshold = 0.5
[[remedies]]
id = "r1"
'''

REMEDIES = '''
[remedy.r1]
title = "Remedy one"
action = "Do the thing."
source = "[T] Test source"
section = "T1"
'''


def norm(text: str) -> str:
    return " ".join(text.split())


def write_log(folder: Path, series: dict[str, np.ndarray], flags=()) -> Path:
    w = RunLogWriter(folder, {"flags": list(flags)}, 4096)
    n = len(next(iter(series.values())))
    for step in range(n):
        w.write_step(step, {name: float(values[step]) for name, values in series.items()})
    w.close()
    return folder


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    # no pyproject.toml of the repository may leak in; wide output so lines do not wrap
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture()
def custom(tmp_path) -> list[str]:
    """--rules and --config arguments: only GD950 is active."""
    rules = tmp_path / "custom_rules"
    rules.mkdir()
    (rules / "GD950-custom.toml").write_text(CUSTOM_RULE, encoding="utf-8")
    (rules / "remedies.toml").write_text(REMEDIES, encoding="utf-8")
    config = tmp_path / "gandoctor.toml"
    config.write_text(f"disable = {json.dumps(BUILTIN)}\n", encoding="utf-8")
    return ["--rules", str(rules), "--config", str(config)]


@pytest.fixture()
def healthy(tmp_path) -> str:
    return str(write_log(tmp_path / "healthy", {"x.a": np.zeros(300), "loss.d": np.full(300, 0.69)}))


@pytest.fixture()
def unhealthy(tmp_path) -> str:
    x = np.zeros(300)
    x[120:] = 1.0
    return str(write_log(tmp_path / "unhealthy", {"x.a": x, "loss.d": np.full(300, 0.69)}))


@pytest.fixture()
def nan_run(tmp_path) -> str:
    loss = 0.7 + 0.05 * np.sin(np.arange(400.0))  # losses that move with their batches (frozen ones are GD407's)
    loss[150:] = math.nan
    return str(write_log(tmp_path / "nan", {"loss.d": loss, "loss.g": loss}))


# -- gate --------------------------------------------------------------------------------------
def test_gate_healthy_exits_0(healthy, custom, capsys):
    assert main(["gate", healthy, *custom]) == EXIT_HEALTHY
    out = capsys.readouterr().out
    assert out.startswith("gandoctor gate: PASS — ")
    # Only the custom rule's mode could be checked on this log: the line says so, not "all modes".
    assert "healthy for the gated modes it could check (mode_collapse); not checked: discriminator_dominance" in out


def test_gate_failing_finding_exits_1(unhealthy, custom, capsys):
    assert main(["gate", unhealthy, *custom]) == EXIT_UNHEALTHY
    out = capsys.readouterr().out
    assert out.startswith("gandoctor gate: FAIL — ")
    assert "(steps 0..299): mode_collapse (GD950, onset step 120, confidence" in out


def test_gate_catches_nan_losses_with_builtin_rules(nan_run, capsys):
    assert main(["gate", nan_run]) == EXIT_UNHEALTHY
    out = capsys.readouterr().out
    assert "FAIL — " in out and "exploding_gradients (GD501, onset step 150" in out


def test_gate_judges_the_end_state_and_notes_a_live_alert_that_cleared(tmp_path, capsys):
    from gandoctor.runlog import HealthyMarker

    writer = RunLogWriter(tmp_path, {"flags": [], "values": {}}, 64)
    for step in range(400):
        writer.write_step(step, {"loss.d": 1.3 + 0.05 * math.sin(step), "loss.g": 0.7 + 0.05 * math.cos(step)})
    writer.write_marker(HealthyMarker(49, 29, 30, ("discriminator_dominance",), ("GD102",)))
    writer.close()
    assert main(["gate", str(tmp_path)]) == EXIT_HEALTHY
    captured = capsys.readouterr()
    assert "PASS" in captured.out
    assert "discriminator_dominance (GD102) was raised during training at step 49 and does not hold at the last step" in captured.err


def test_gate_fail_on_only_fails_on_that_mode(nan_run, capsys):
    assert main(["gate", nan_run, "--fail-on", "mode_collapse"]) == EXIT_HEALTHY
    out = capsys.readouterr().out
    assert "PASS — " in out and "healthy for nothing: no gated mode could be checked" in out
    assert "not gating on exploding_gradients" in out
    assert "not checked: mode_collapse" in out  # a loss-only log cannot show collapse, and the gate says so
    assert main(["gate", nan_run, "--fail-on", "exploding_gradients"]) == EXIT_UNHEALTHY
    assert main(["gate", nan_run, "--fail-on", "mode_collapse, exploding_gradients"]) == EXIT_UNHEALTHY


def test_gate_fail_on_with_custom_rule(unhealthy, custom, capsys):
    assert main(["gate", unhealthy, *custom, "--fail-on", "vanishing_gradients"]) == EXIT_HEALTHY
    assert main(["gate", unhealthy, *custom, "--fail-on", "mode_collapse"]) == EXIT_UNHEALTHY


@pytest.mark.parametrize("value", ["sadness", "", "mode_collapse,sadness", ","])
def test_gate_bad_fail_on_exits_2(nan_run, value, capsys):
    assert main(["gate", nan_run, "--fail-on", value]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("gandoctor: error: --fail-on: unknown mode or rule")


def test_gate_fail_on_rule_codes_in_any_case(nan_run, capsys):
    assert main(["gate", nan_run, "--fail-on", "gd501"]) == EXIT_UNHEALTHY
    assert main(["gate", nan_run, "--fail-on", "GD101"]) == EXIT_HEALTHY
    assert main(["gate", nan_run, "--fail-on", "non-finite-values"]) == EXIT_UNHEALTHY


def test_gate_require_checked_fails_when_a_mode_could_not_be_checked(nan_run, capsys):
    assert main(["gate", nan_run, "--fail-on", "vanishing_gradients", "--require-checked", "mode_collapse"]) == EXIT_UNHEALTHY
    out = capsys.readouterr().out
    assert "mode_collapse required but not checked: needs" in out
    assert main(["gate", nan_run, "--fail-on", "mode_collapse", "--require-checked", "exploding_gradients"]) == EXIT_HEALTHY
    assert main(["gate", nan_run, "--require-checked", "sadness"]) == EXIT_ERROR


def test_gate_never_passes_on_nothing_checkable(tmp_path, capsys):
    path = tmp_path / "other.csv"
    path.write_text("step,temperature,humidity\n" + "".join(f"{s},{20 + s % 3},{50}\n" for s in range(500)), encoding="utf-8")
    assert main(["gate", str(path)]) == EXIT_ERROR
    # Nothing in the log maps to a signal: the reader says so, naming what it found (issue 10).
    err = capsys.readouterr().err
    assert "no name in this log maps to a signal" in err and "found: 'temperature', 'humidity'" in err
    # Signals that map but feed no rule: the gate's own judgement.
    path.write_text("step,sigma_max_d\n" + "".join(f"{s},1.0\n" for s in range(5)), encoding="utf-8")
    assert main(["gate", str(path), "--map", "sigma_max.d=sigma_max_d"]) == EXIT_ERROR
    out = capsys.readouterr().out
    assert out.startswith("gandoctor gate: ERROR — ") and "no rule could be checked" in out


def test_bare_command_prints_help(capsys):
    assert main([]) == EXIT_HEALTHY
    out = capsys.readouterr().out
    assert "usage: gandoctor" in out and "analyze" in out and "gate" in out


def test_gate_missing_path_exits_2(tmp_path, capsys):
    assert main(["gate", str(tmp_path / "no_such_run")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "no such file or directory" in err and "no_such_run" in err


@pytest.mark.parametrize(
    "name,content,fragment",
    [
        ("notes.txt", b"hello\n", "not a log gandoctor can read"),
        ("empty.csv", b"", "empty file"),
        ("broken.jsonl.gz", b"this is not gzip", "gandoctor: error:"),
        ("header_only.csv", b"step,loss_D\n", "no usable records"),
    ],
)
def test_gate_unreadable_file_exits_2(tmp_path, capsys, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["gate", str(path)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("gandoctor: error:") and fragment in err


def test_gate_bad_rules_dir_exits_2(healthy, tmp_path, capsys):
    bad = tmp_path / "bad_rules"
    bad.mkdir()
    (bad / "GD960.toml").write_text('code = "GD960"\n', encoding="utf-8")
    assert main(["gate", healthy, "--rules", str(bad)]) == EXIT_ERROR
    assert str(bad / "GD960.toml") in capsys.readouterr().err


def test_gate_bad_config_exits_2(healthy, tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text("[rules.GD101]\nauc_hi = 1\n", encoding="utf-8")
    assert main(["gate", healthy, "--config", str(config)]) == EXIT_ERROR
    assert "'rules.GD101.auc_hi'" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["gate"])
    assert info.value.code == EXIT_ERROR
    assert "gandoctor: error:" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "way"), [("json", "pass --json"), ("html", "pass --html FILE"), ("xml", "choose from auto, runlog")])
def test_format_names_the_log_s_format_and_a_report_format_there_says_where_it_goes(value, way, capsys):
    with pytest.raises(SystemExit) as info:
        main(["analyze", "run.csv", "--format", value])
    assert info.value.code == EXIT_ERROR
    assert way in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == "gandoctor 0.1.0"


# -- analyze -------------------------------------------------------------------------------------
def test_analyze_json_is_valid_with_verdict_and_findings(unhealthy, custom, capsys):
    assert main(["analyze", unhealthy, *custom, "--json", "--uses", "gradient_penalty, ttur"]) == EXIT_HEALTHY
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "unhealthy"
    (finding,) = report["findings"]
    assert (finding["mode"], finding["rule"], finding["onset_step"]) == ("mode_collapse", "GD950", 120)
    assert finding["remedies"][0]["source"] == "[T] Test source"
    assert report["context"]["flags"] == ["gradient_penalty", "ttur"]
    assert report["source"] == unhealthy


def test_analyze_json_healthy(healthy, custom, capsys):
    assert main(["analyze", healthy, *custom, "--json"]) == EXIT_HEALTHY
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "healthy" and report["findings"] == []


def test_analyze_text(unhealthy, custom, capsys):
    assert main(["analyze", unhealthy, *custom]) == EXIT_HEALTHY
    out = capsys.readouterr().out
    assert "UNHEALTHY — mode_collapse" in out
    assert "mode_collapse — GD950 custom-trigger" in out
    assert "onset step 120 ·" in out
    assert "1. Remedy one — Do the thing." in out


def test_analyze_csv_with_nan_losses(tmp_path, capsys):
    rows = ["step,loss_D,loss_G"] + [f"{s},{'nan' if s >= 100 else 0.7},{'nan' if s >= 100 else 0.7}" for s in range(300)]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert main(["analyze", str(path), "--json"]) == EXIT_HEALTHY
    report = json.loads(capsys.readouterr().out)
    assert "exploding_gradients" in [f["mode"] for f in report["findings"]]


def test_analyze_uses_pyproject_of_the_working_directory(unhealthy, custom, tmp_path, capsys):
    rules_dir = custom[1]
    (tmp_path / "pyproject.toml").write_text(
        f"[tool.gandoctor]\ndisable = {json.dumps(BUILTIN + ['GD950'])}\nrules_dirs = [{json.dumps(rules_dir)}]\n", encoding="utf-8"
    )
    # every rule disabled by that pyproject: nothing can be checked, and the gate says so instead of passing
    assert main(["gate", unhealthy]) == EXIT_ERROR
    assert "no rule could be checked" in capsys.readouterr().out


# -- rules and explain -----------------------------------------------------------------------------
def test_rules_lists_every_code(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["rules"]) == EXIT_HEALTHY
    out = capsys.readouterr().out
    for rule in load_rules().rules:
        assert rule.code in out
        assert rule.name in out
    # Readable at 80 columns: every summary whole, not squeezed into a narrow column.
    assert max(len(line) for line in out.splitlines()) <= 80
    flat = norm(out)
    for rule in load_rules().rules:
        assert f"{rule.name} · {rule.mode}" in flat
        assert norm(rule.summary) in flat


def test_explain_says_which_thresholds_are_in_the_run_s_loss_units(capsys):
    assert main(["explain", "GD102"]) == EXIT_HEALTHY
    out = norm(capsys.readouterr().out)
    assert "median(loss.d, 200 steps) < 0.2 (x the run's d_loss_unit)" in out
    assert "min(loss.d, 200 steps) >= 0 corroborated" in out  # unscaled: 0 is 0 in any units


def test_explain_states_the_timing_the_engine_applies(capsys):
    # GD605's windows are a share of the run, capped: the 200 steps its conditions list are not what it reads
    assert main(["explain", "GD605"]) == EXIT_HEALTHY
    out = norm(capsys.readouterr().out)
    assert "after 300 warm-up steps (at most 25% of the run)" in out
    assert "holding at 70% of the checks over 400 steps (at most 25% of the run)" in out
    assert "each window 25% of the run, at most 500 steps, in place of the steps listed" in out
    assert main(["explain", "GD501"]) == EXIT_HEALTHY  # non-finite values: no warm-up, one check suffices
    assert "from the first check, on a single check" in norm(capsys.readouterr().out)


def test_explain_states_the_shortest_run_a_rule_judges(capsys):
    rules = load_rules()
    for code in ("GD202", "GD204"):
        assert main(["explain", code]) == EXIT_HEALTHY
        out = norm(capsys.readouterr().out)
        assert f"runs of {int(rules.by_code(code).params['min_run_steps'])} steps or more" in out
        # GD204 reads the state the run ended in: only the finished run is judged
        assert ("on the finished run only" in out) == bool(rules.by_code(code).params["final_only"])


def test_explain_says_which_runs_a_rule_skips_and_whose_onset_is_exact(capsys):
    assert main(["explain", "GD305"]) == EXIT_HEALTHY
    assert "not judged for runs that use: critic, energy_d, g_batchnorm" in norm(capsys.readouterr().out)
    assert main(["explain", "GD501"]) == EXIT_HEALTHY
    out = norm(capsys.readouterr().out)
    assert "its first step is the mode's onset" in out and "not judged for runs" not in out
    assert main(["explain", "GD507"]) == EXIT_HEALTHY  # a burst: an ordinary onset
    assert "mode's onset" not in norm(capsys.readouterr().out)


def test_explain_shows_a_rule_s_caveat(capsys):
    assert main(["explain", "GD305"]) == EXIT_HEALTHY
    out = norm(capsys.readouterr().out)
    assert "caveat (printed with every finding of this rule) Inferred from a winning D" in out
    assert main(["explain", "GD301"]) == EXIT_HEALTHY  # measured on the samples: nothing to caveat
    assert "caveat" not in norm(capsys.readouterr().out)


def test_explain_gd301_shows_why_and_remedies_with_sources(capsys):
    assert main(["explain", "GD301"]) == EXIT_HEALTHY
    out = norm(capsys.readouterr().out)
    rules = load_rules()
    rule = rules.by_code("GD301")
    assert out.startswith("GD301 partial-mode-collapse → mode_collapse")
    assert norm(rule.why) in out
    assert "why" in out and "fires when" in out and "remedies" in out
    for c in rule.conditions:
        assert f"{c.label()} {c.op} {c.threshold:g}" in out
    for ref in rule.remedies:
        remedy = rules.remedies[ref.id]
        assert norm(f"- {remedy.title} ({remedy.id}): {remedy.action}") in out
        for c in remedy.cites:  # each citation on its own line: document and section, or paper
            assert norm(f"source: {rules.sources[c.source].cite(c.section)}") in out


def test_rule_texts_are_reflowed_per_paragraph():
    from gandoctor.cli import _reflow

    assert _reflow("wrapped in\n  the file\n\nsecond\nparagraph\n") == "wrapped in the file\n\nsecond paragraph"


def test_explain_by_name_and_custom_rules(custom, capsys):
    assert main(["explain", "custom-trigger", *custom]) == EXIT_HEALTHY
    out = norm(capsys.readouterr().out)
    assert "GD950 custom-trigger → mode_collapse" in out
    assert "source: [T] Test source, section “T1”" in out


def test_explain_unknown_rule_exits_2(capsys):
    assert main(["explain", "GD999"]) == EXIT_ERROR
    assert "unknown name 'GD999'" in capsys.readouterr().err


# -- module entry point ---------------------------------------------------------------------------
def test_python_dash_m_gandoctor_rules(tmp_path):
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-m", "gandoctor", "rules"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    for code in BUILTIN:
        assert code in proc.stdout


def test_python_dash_m_gandoctor_gate_exit_code(tmp_path, nan_run):
    proc = subprocess.run([sys.executable, "-m", "gandoctor", "gate", nan_run], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_UNHEALTHY, proc.stderr
    assert "GD501" in proc.stdout


def test_gate_writes_junit_and_markdown(nan_run, tmp_path, capsys):
    import xml.etree.ElementTree as ET

    junit, md = tmp_path / "g.xml", tmp_path / "g.md"
    assert main(["gate", nan_run, "--junit", str(junit), "--markdown", str(md)]) == EXIT_UNHEALTHY
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert any("exploding_gradients" in name for name in failed)
    assert "exploding_gradients" in md.read_text(encoding="utf-8")


def test_analyze_writes_a_self_contained_html_report(nan_run, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the HTML report needs the 'html' extra (matplotlib)")
    page = tmp_path / "report.html"
    assert main(["analyze", nan_run, "--html", str(page)]) == EXIT_HEALTHY
    text = page.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html") and "exploding_gradients" in text and "<svg" in text
    import re

    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing fetched from the network


def test_report_output_to_an_unwritable_place_is_a_clear_error(nan_run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["gate", nan_run, "--junit", str(blocker / "g.xml")]) == EXIT_ERROR
    assert "cannot write the report" in capsys.readouterr().err


def test_a_declared_d_loss_unit_reads_the_loss_floor_in_that_unit(tmp_path, capsys):
    # Least squares towards 1/0, halved (PyTorch-GAN's lsgan.py): chance is 0.25, so a D loss of
    # 0.12-0.14 is under the calibrated floor (0.2) but well above the same floor in its units (0.05).
    rng = np.random.default_rng(0)

    def log(g_loss: float) -> str:
        lines = ["step,loss_D,loss_G"] + [f"{i},{0.12 + 0.02 * rng.random():.4f},{g_loss + 0.05 * rng.random():.4f}" for i in range(1500)]
        path = tmp_path / f"lsgan-{g_loss}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return str(path)

    # G's loss as high as BCE would have it: nothing tells the form, the calibrated floor applies...
    bce_like = log(3.0)
    main(["analyze", bce_like, "--json"])
    assert "GD102" in {f["rule"] for f in json.loads(capsys.readouterr().out)["findings"]}
    # ...unless the unit is declared.
    main(["analyze", bce_like, "--json", "--uses", "d_loss_unit=0.25"])
    out, err = capsys.readouterr()
    assert json.loads(out)["findings"] == [] and "d_loss_unit" not in err  # a known name: no typo warning
    main(["analyze", bce_like, "--uses", "d_loss_unit=0.25"])
    assert "D's loss thresholds are read in this run's units (d_loss_unit 0.25" in norm(capsys.readouterr().out)
    # G's loss of 0.4 with D's at 0.12 is impossible under BCE, hinge or +/-1 least squares: the
    # unit is read from the two losses, as from PyTorch-GAN's lsgan.py console log.
    main(["analyze", log(0.4)])
    out = norm(capsys.readouterr().out)
    assert "HEALTHY" in out and "(least squares towards 1/0, d_loss_unit 0.25" in out
