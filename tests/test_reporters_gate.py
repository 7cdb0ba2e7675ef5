"""The gate's one-line verdict (gandoctor.reporters.gate.judge)."""

from __future__ import annotations

from gandoctor.findings import Finding
from gandoctor.report import Report
from gandoctor.reporters.gate import GateExit, judge


def _blown(first_sign_step: int | None) -> Report:
    f = Finding(
        "exploding_gradients", "GD501", "non-finite-values", "NaN.", 260, 265, True, 1.0, {}, (),
        first_sign_step=first_sign_step, first_sign_rule="GD507" if first_sign_step is not None else "",
    )
    return Report((f,), first_step=0, last_step=265)


def test_a_failing_finding_names_its_onset_and_first_sign():
    result = judge(_blown(230), ["exploding_gradients"], label="run.csv")
    assert result.exit_code is GateExit.FAIL
    assert "exploding_gradients (GD501, onset step 260, first sign at step 230 (GD507), confidence 1.00)" in result.line
    plain = judge(_blown(None), ["exploding_gradients"], label="run.csv")
    assert "exploding_gradients (GD501, onset step 260, confidence 1.00)" in plain.line
