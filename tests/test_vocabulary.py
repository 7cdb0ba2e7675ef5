"""gandoctor.vocabulary and `gandoctor explain`: one vocabulary for modes, rule codes (any case)
and names, remedy ids and their aliases, and `uses` declarations."""

from __future__ import annotations

import pytest

from gandoctor import load_rules
from gandoctor.cli import EXIT_ERROR, EXIT_HEALTHY, main
from gandoctor.errors import GanDoctorError
from gandoctor.remedies import MODES
from gandoctor.vocabulary import UnknownNameError, parse_uses, resolve, resolve_names, unknown_uses, uses_context


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.fixture(autouse=True)
def wide(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no pyproject.toml of the repository may leak in
    monkeypatch.setenv("COLUMNS", "250")


def norm(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    "typed, kind, name",
    [
        ("mode_collapse", "mode", "mode_collapse"),
        ("Mode-Collapse", "mode", "mode_collapse"),
        ("GD301", "rule", "GD301"),
        ("gd301", "rule", "GD301"),
        ("partial-mode-collapse", "rule", "GD301"),
        ("gradient_clipping", "remedy", "gradient_clipping"),
        ("grad_clipping", "remedy", "gradient_clipping"),
        ("wgan_gp", "remedy", "wasserstein_loss"),
        ("critic", "remedy", "wasserstein_loss"),
    ],
)
def test_resolve_accepts_every_name_a_user_would_type(rules, typed, kind, name):
    hit = resolve(typed, rules)
    assert (hit.kind, hit.name, hit.typed) == (kind, name, typed)


def test_unknown_name_says_what_is_known_and_suggests(rules):
    with pytest.raises(UnknownNameError) as exc:
        resolve("mode_colapse", rules)
    assert "did you mean mode_collapse" in str(exc.value)
    assert isinstance(exc.value, GanDoctorError)


def test_resolve_names_splits_modes_and_codes(rules):
    assert resolve_names(["any"], rules) == (frozenset(MODES), frozenset())
    assert resolve_names(["gd102", "mode_collapse", "GD501"], rules) == (frozenset({"mode_collapse"}), frozenset({"GD102", "GD501"}))
    with pytest.raises(UnknownNameError, match="is a remedy"):
        resolve_names(["spectral_norm"], rules)
    with pytest.raises(UnknownNameError, match="got nothing"):
        resolve_names([" ", ""], rules)


def test_parse_uses_numbers_text_and_bare_flags():
    assert parse_uses("gradient_penalty=10, label_smoothing=0.9,unrolled,optimizer=adamw") == {
        "gradient_penalty": 10.0,
        "label_smoothing": 0.9,
        "unrolled": None,
        "optimizer": "adamw",
    }
    assert parse_uses("") == {}
    for bad in ("gradient_penalty=", "=3", "x=nan"):
        with pytest.raises(GanDoctorError, match="--uses"):
            parse_uses(bad)


def test_uses_context_canonical_names_and_values(rules):
    ctx = uses_context({"grad_clipping": None, "gp": 0.1, "wgan": None, "my_custom_flag": None}, rules.remedies)
    assert ctx.flags == {"gradient_clipping", "gradient_penalty", "wasserstein_loss", "critic", "my_custom_flag"}
    assert ctx.values == {"gradient_penalty": 0.1}
    assert uses_context(["spectral_norm"], rules.remedies).flags == {"spectral_norm", "d_spectral_norm"}


def test_unknown_uses_are_the_likely_typos(rules):
    assert unknown_uses(["gradient_penalty", "grad_clipping", "critic", "gradint_penalty"], rules) == ("gradint_penalty",)


# -- gandoctor explain ------------------------------------------------------------------------------
def test_explain_mode_shows_looks_causes_rules_and_cited_remedies(rules, capsys):
    assert main(["explain", "mode_collapse"]) == EXIT_HEALTHY
    out = norm(capsys.readouterr().out)
    assert out.startswith("mode_collapse")
    for heading in ("what it looks like", "causes", "detected by", "remedies", "how to work on it"):
        assert heading in out
    for code in ("GD301", "GD302", "GD303"):
        assert code in out
    assert "(minibatch_discrimination)" in out and "why here:" in out
    assert "Metz et al. 2017, “Unrolled Generative Adversarial Networks”, ICLR 2017, arXiv:1611.02163" in out
    assert "(one_change_at_a_time)" in out
    # the detecting rules' first choice comes first
    assert out.index("(minibatch_discrimination)") < out.index("(unrolled_gan)") < out.index("(larger_latent)")


def test_explain_rule_code_in_any_case(capsys):
    assert main(["explain", "gd301"]) == EXIT_HEALTHY
    assert norm(capsys.readouterr().out).startswith("GD301 partial-mode-collapse → mode_collapse")


def test_explain_remedy_by_alias(capsys):
    assert main(["explain", "grad_clipping"]) == EXIT_HEALTHY
    out = norm(capsys.readouterr().out)
    assert out.startswith("gradient_clipping: Clip gradient norms")
    assert "also named: grad_clipping" in out
    assert "listed by GD501, GD502" in out
    assert "Pascanu, Mikolov, Bengio 2013" in out


def test_explain_remedy_shows_its_checks(capsys):
    assert main(["explain", "gradient_penalty"]) == EXIT_HEALTHY
    out = norm(capsys.readouterr().out)
    assert "in use but misconfigured when" in out
    assert "the gradient-penalty weight {gradient_penalty} is far below the usual 10" in out


def test_explain_unknown_exits_2(capsys):
    assert main(["explain", "mode_colapse"]) == EXIT_ERROR
    assert "did you mean mode_collapse" in capsys.readouterr().err


def test_analyze_takes_uses_as_names_mapping_or_config_items(tmp_path):
    from pathlib import Path

    from gandoctor import analyze
    from gandoctor.config import Config

    run = Path(__file__).resolve().parent.parent / "fixtures" / "heldout" / "explode_grid25_sgd_s0_ho100"

    def gp_remedy(report):  # type: ignore[no-untyped-def]
        f = next(f for f in report.findings if f.mode == "exploding_gradients")
        return next((r for r in f.remedies if r.id == "gradient_penalty"), None), {s.id for s in f.skipped_remedies}

    fix, _ = gp_remedy(analyze(run, uses={"gp": 0.1}))
    assert fix is not None and fix.title.startswith("Fix:") and "0.1 is far below the usual 10" in fix.action
    fix, _ = gp_remedy(analyze(run, config=Config(uses=frozenset({"gradient_penalty=0.1"}))))
    assert fix is not None and "0.1" in fix.action
    proposed, skipped = gp_remedy(analyze(run, uses=["gradient_penalty"]))
    assert proposed is None and "gradient_penalty" in skipped
