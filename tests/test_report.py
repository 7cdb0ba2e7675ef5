"""gandoctor.report: verdict, dict/JSON form and the rendered text (compared line by line)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from gandoctor import Report, RunContext
from gandoctor.findings import Evidence, Finding, ModeState, ModeStatus, RankedRemedy, SkippedRemedy, SkippedRule, SkipReason
from gandoctor.reporters.console import sparkline


def _lines(report: Report, width: int = 100) -> list[str]:
    return [line.rstrip() for line in report.render_text(width=width).splitlines()]


@pytest.fixture()
def collapse() -> Finding:
    return Finding(
        mode="mode_collapse",
        rule="GD301",
        rule_name="partial-mode-collapse",
        summary="Fakes cover only part of the data.",
        onset_step=1200,
        last_step=4000,
        active=True,
        confidence=0.8712,
        evidence={"median(feat.coverage_ratio)": 0.25},
        details=(
            Evidence("feat.coverage_ratio", "median", 300, "<", 0.5, 0.25, True, "condition", last=0.3),
            Evidence("feat.diversity_ratio", "median", 300, "<", 0.8, math.nan, False, "corroborate"),
        ),
        also_fired=("GD302",),
        remedies=(
            RankedRemedy("minibatch_discrimination", "Minibatch discrimination", "Add a minibatch layer.", "[MC] src", "Solutions", 1.0, ""),
            RankedRemedy("unrolled_gan", "Unroll D", "Unroll 5 steps.", "[MC] src", "Unrolled", 0.8, ""),
            RankedRemedy("wgan_gp", "WGAN-GP", "Use a critic.", "[TI] src", "1.", 0.6, ""),
            RankedRemedy("bigger_z", "Bigger z", "Use more latent dims.", "[MC] src", "Z", 0.3, ""),
        ),
        skipped_remedies=(SkippedRemedy("spectral_norm", "Add SN", "already in use (d_spectral_norm)"),),
    )


@pytest.fixture()
def report(collapse) -> Report:
    return Report(
        findings=(collapse,),
        skipped_rules=(SkippedRule("GD101", SkipReason.MISSING_SIGNALS, "discriminator_dominance", ("d.auc",)),),
        mode_status=(
            ModeStatus("mode_collapse", ModeState.FAILING, ("GD301",)),
            ModeStatus("discriminator_dominance", ModeState.CLEAR, ("GD102",)),
            ModeStatus("exploding_gradients", ModeState.NOT_CHECKED, (), ("grad_norm.d", "loss.d"), (SkipReason.MISSING_SIGNALS,)),
        ),
        rules_checked_codes=("GD301", "GD102"),
        rules_total=3,
        context=RunContext(frozenset({"d_spectral_norm"}), {"lr": math.inf, "batch": 64}),
        source="runs/x",
        first_step=0,
        last_step=4000,
        signals=("feat.coverage_ratio",),
        warnings=("a warning",),
    )


def test_verdict(report):
    assert report.verdict == "unhealthy"
    assert report.modes == ("mode_collapse",)
    assert Report(()).verdict == "healthy"


@pytest.mark.parametrize("width", [80, 120])
def test_render_unhealthy_key_lines(report, width):
    lines = _lines(report, width)
    assert lines[0] == "╭─ gandoctor · runs/x · steps 0..4000 ─╮"
    assert lines[1] == "│ UNHEALTHY — mode_collapse            │"
    assert lines[3].split() == ["mode", "status"]
    assert lines[4].split() == "mode_collapse FAILING from step 1200 (GD301, confidence 0.87)".split()
    assert lines[5].split() == "discriminator_dominance clear (GD102 checked)".split()
    assert lines[6].split() == "exploding_gradients not checked: needs grad_norm.d or loss.d".split()
    assert "mode_collapse — GD301 partial-mode-collapse (also: GD302)" in lines
    assert "  onset step 1200 · confidence 0.87 · still active at the last step" in lines
    assert "  Fakes cover only part of the data." in lines
    # value where the finding was established, the same statistic at the end, the rule
    assert any(line.split() == "✓ median(feat.coverage_ratio, 300 steps) 0.25 0.3 < 0.5".split() for line in lines)
    assert any(line.split() == "· median(feat.diversity_ratio, 300 steps) (corroborating) nan — < 0.8".split() for line in lines)
    assert "   remedies, best first:" in lines
    assert "   1. Minibatch discrimination — Add a minibatch layer." in lines
    assert "      source: [MC] src, section “Solutions”" in lines
    assert "   - not suggested: Add SN — already in use (d_spectral_norm)" in lines
    assert "2 of 3 rules checked; 1 needs signals not recorded (d.auc)" in lines
    assert lines[-1] == "warning: a warning"
    assert all(len(line) <= width for line in lines)


def test_status_line_says_a_failing_mode_has_a_caveat(report):
    # the console's status table says it as the HTML and markdown tables do (reporters._modes)
    caveated = replace(report, findings=(replace(report.findings[0], caveat="Read from 3 records of loss.d only: thin evidence."),))
    lines = _lines(caveated, 120)
    assert lines[4].split() == "mode_collapse FAILING from step 1200 (GD301, confidence 0.87; with a caveat)".split()
    assert "  caveat: Read from 3 records of loss.d only: thin evidence." in lines


def test_wrapped_remedy_text_keeps_its_indent_at_80_columns(collapse):
    long = RankedRemedy("x", "Long remedy", "word " * 40, "[S] src", "1", 1.0, "")
    lines = _lines(Report((replace(collapse, remedies=(long,)),)), 80)
    start = lines.index(next(line for line in lines if line.startswith("   1. Long remedy")))
    assert lines[start + 1].startswith("      word")  # wrapped under the text, not at column 0


def test_render_shows_at_most_three_remedies(report):
    text = report.render_text(width=100)
    assert "   3. WGAN-GP — Use a critic." in text
    assert "Bigger z" not in text


def test_render_inactive_finding_and_live_run():
    f = Finding("exploding_gradients", "GD501", "non-finite-values", "NaN.", 50, 60, False, 0.5, {}, ())
    lines = _lines(Report((f,)))
    assert lines[0] == "╭─ gandoctor · live run · no steps ─╮"
    assert lines[1] == "│ UNHEALTHY — exploding_gradients   │"
    assert "  onset step 50 · confidence 0.50 · last held at step 60" in lines


def test_render_healthy():
    status = tuple(ModeStatus(m, ModeState.CLEAR, ("GD1",)) for m in ("mode_collapse",))
    lines = _lines(Report((), source="runs/h", first_step=0, last_step=10, mode_status=status, rules_checked_codes=("GD1",)))
    assert lines[0].startswith("╭─ gandoctor · runs/h · steps 0..10 ─")
    assert lines[1] == "│ HEALTHY — no failure mode holds in the modes checked. │"
    assert lines[4].split() == ["mode_collapse", "clear", "(GD1", "checked)"]


def test_healthy_in_some_modes_only_names_them():
    status = (
        ModeStatus("exploding_gradients", ModeState.CLEAR, ("GD501",)),
        ModeStatus("mode_collapse", ModeState.NOT_CHECKED, (), ("feat.coverage_ratio",), (SkipReason.MISSING_SIGNALS,)),
        ModeStatus("non_convergence", ModeState.NOT_CHECKED, (), (), (SkipReason.TOO_SHORT,)),
    )
    text = Report((), source="r", first_step=0, last_step=1, mode_status=status, rules_checked_codes=("GD501",)).render_text(width=200)
    assert "HEALTHY in the 1 of 3 modes checked (exploding_gradients); 2 not checked (see below)." in text
    assert "no failure mode holds" not in text


def test_nothing_checked_is_not_healthy():
    status = (ModeStatus("mode_collapse", ModeState.NOT_CHECKED, (), ("feat.coverage_ratio",), (SkipReason.MISSING_SIGNALS,)),)
    report = Report((), source="r", first_step=0, last_step=10, mode_status=status)
    assert report.verdict == "unknown"
    assert "NOT JUDGED" in report.render_text()


def test_render_several_modes_in_verdict(collapse):
    other = Finding("exploding_gradients", "GD501", "non-finite-values", "NaN.", 50, 60, False, 0.5, {}, ())
    lines = _lines(Report((other, collapse), source="r", first_step=0, last_step=1))
    assert lines[1].startswith("│ UNHEALTHY — exploding_gradients, mode_collapse ")


def test_str_is_the_rendering(report):
    assert str(report) == report.render_text()


def test_to_dict_is_strict_json(report):
    d = report.to_dict()
    text = json.dumps(d, allow_nan=False)  # raises if a NaN/inf slipped through
    back = json.loads(text)
    assert back["schema"] == "gandoctor.report" and back["version"] == 2
    assert back["verdict"] == "unhealthy"
    assert back["steps"] == {"first": 0, "last": 4000}
    (f,) = back["findings"]
    assert (f["mode"], f["rule"], f["onset_step"], f["active"], f["also_fired"]) == ("mode_collapse", "GD301", 1200, True, ["GD302"])
    assert f["conditions"][1]["value"] == "nan"
    assert f["conditions"][1]["role"] == "corroborate"
    assert [r["id"] for r in f["remedies"]] == ["minibatch_discrimination", "unrolled_gan", "wgan_gp", "bigger_z"]
    assert f["remedies"][0]["source"] == "[MC] src" and f["remedies"][0]["section"] == "Solutions"
    assert f["skipped_remedies"] == [{"id": "spectral_norm", "title": "Add SN", "reason": "already in use (d_spectral_norm)"}]
    assert back["skipped_rules"] == [
        {"rule": "GD101", "reason": "missing_signals", "detail": "signal(s) not recorded: d.auc", "signals": ["d.auc"]}
    ]
    assert [(m["mode"], m["status"]) for m in back["modes"]] == [
        ("mode_collapse", "failing"), ("discriminator_dominance", "clear"), ("exploding_gradients", "not_checked")
    ]
    assert back["modes"][2]["missing_signals"] == ["grad_norm.d", "loss.d"]
    assert back["context"] == {"flags": ["d_spectral_norm"], "values": {"lr": "inf", "batch": 64}}
    assert back["signals"] == ["feat.coverage_ratio"]
    assert back["warnings"] == ["a warning"]


def test_to_dict_healthy():
    d = Report(()).to_dict()
    assert d["verdict"] == "healthy" and d["findings"] == [] and d["steps"] == {"first": None, "last": None}


def test_skipped_rules_are_summarised_once_per_reason():
    report = Report(
        findings=(),
        skipped_rules=(
            SkippedRule("GD101", SkipReason.MISSING_SIGNALS, "discriminator_dominance", ("d.auc", "feat.coverage_ratio")),
            SkippedRule("GD102", SkipReason.NOT_APPLICABLE, "discriminator_dominance", ("critic",)),
            SkippedRule("GD103", SkipReason.NOT_APPLICABLE, "discriminator_dominance", ("critic",)),
        ),
        source="runs/x",
        first_step=0,
        last_step=10,
        rules_total=5,
    )
    text = " ".join(report.render_text(width=300).split())
    assert "2 of 5 rules checked; 1 needs signals not recorded (d.auc, feat.coverage_ratio); 2 not applicable (run uses critic)" in text


def test_sparkline_scales_to_values_and_threshold():
    assert sparkline((0.0, 0.5, 1.0)) == "▁▅█"
    assert sparkline((0.9, 1.0), include=0.0) == "▇█"
    assert sparkline((1.0, float("nan"), 1.0)) == "▅ ▅"
    assert sparkline(()) == ""


def test_a_first_sign_before_the_onset_is_shown_and_kept_in_json():
    f = Finding("exploding_gradients", "GD501", "non-finite-values", "NaN.", 260, 265, True, 0.9, {}, (), first_sign_step=230, first_sign_rule="GD507")
    report = Report((f,))
    assert "  onset step 260 · first sign at step 230 (GD507) · confidence 0.90 · still active at the last step" in _lines(report)
    (d,) = json.loads(json.dumps(report.to_dict(), allow_nan=False))["findings"]
    assert (d["onset_step"], d["first_sign_step"], d["first_sign_rule"]) == (260, 230, "GD507")
    # Without one, the line and the JSON say nothing of it.
    plain = Report((replace(f, first_sign_step=None, first_sign_rule=""),))
    assert not any("first sign" in line for line in _lines(plain))
    assert plain.to_dict()["findings"][0]["first_sign_step"] is None


def test_skipped_rules_are_summed_up_by_reason_with_a_count_each():
    from gandoctor.reporters._modes import summarise_skipped

    skipped = (
        *(SkippedRule(f"GD{n}", SkipReason.SUPERSEDED, "mode_collapse", ("feat.coverage_ratio",)) for n in (310, 305, 203)),
        SkippedRule("GD306", SkipReason.MISSING_SIGNALS, "mode_collapse", ("latent.eval_diversity_ratio",)),
        SkippedRule("GD602", SkipReason.TOO_SHORT, "non_convergence", min_run_steps=300),
        SkippedRule("GD601", SkipReason.TOO_SHORT, "non_convergence", min_run_steps=600),
    )
    assert summarise_skipped(skipped) == (
        "1 needs signals not recorded (latent.eval_diversity_ratio); "
        "3 superseded by rules that read the richer signals recorded here; 2 need a longer run (300-600 steps)"
    )
    assert summarise_skipped(skipped[:1]) == "1 superseded by a rule that reads the richer signals recorded here"
    assert summarise_skipped(()) == ""


def test_a_mode_needing_scalars_and_sample_statistics_names_the_statistics_in_one_phrase() -> None:
    # A console log's mode_collapse status listed each sample statistic with the live Doctor's
    # schedule ("recorded once the feature checks have kept 512 real samples ..."), a dozen lines
    # no log reader can act on; the scalars it lacks are still named one by one.
    from gandoctor.findings import ModeState, ModeStatus, SkipReason

    status = ModeStatus("mode_collapse", ModeState.NOT_CHECKED, missing=("feat.coverage_ratio", "grad_norm.g", "latent.drift", "loss.d"),
                        reasons=(SkipReason.MISSING_SIGNALS,))
    text = status.describe()
    assert text.startswith("not checked: needs grad_norm.g") and "loss.d" in text
    assert text.count("sample features (feat.*, latent.*") == 1 and "coverage_ratio" not in text and "512" not in text


def test_a_mode_s_state_prints_as_the_readme_and_the_json_name_it():
    # A user's callback printing str(status.state) got 'ModeState.FAILING' (a torchgan wrapper).
    assert [str(s) for s in ModeState] == ["failing", "clear", "not_checked"]
    assert f"{ModeState.CLEAR}" == "clear" and ModeState.CLEAR == "clear"
