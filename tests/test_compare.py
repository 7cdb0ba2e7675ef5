"""gandoctor.compare and `gandoctor compare BEFORE AFTER`: findings gone / new / unchanged,
per-mode status, key signals' medians over the last 20% of each run, exit 1 on a new failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gandoctor.cli import EXIT_ERROR, EXIT_HEALTHY, EXIT_UNHEALTHY, main
from gandoctor.compare import SignalChange, compare_runs, tail_median
from gandoctor.signals import SignalLog

RUNS = Path(__file__).resolve().parent.parent / "fixtures" / "heldout"
DDOM = RUNS / "ddom_ring8_s0_ho100"  # oracle: discriminator dominance and collapse
HEALTHY = RUNS / "healthy_ring8_s0_ho100"
COLLAPSE = RUNS / "collapse_ring8_glr_s0_ho100"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture(scope="module")
def fixed():
    return compare_runs(DDOM, HEALTHY)


def test_a_fix_shows_findings_gone_and_no_new_failure(fixed):
    assert {c.mode for c in fixed.gone} == {"discriminator_dominance", "mode_collapse"}
    assert fixed.new == () and fixed.unchanged == () and fixed.new_failures == ()
    status = {m.mode: (m.before, m.after) for m in fixed.modes}
    assert status["discriminator_dominance"] == ("failing", "ok")
    assert status["exploding_gradients"] == ("ok", "ok")
    auc = next(s for s in fixed.signals if s.name == "d.auc")
    assert auc.before > 0.95 and auc.after < 0.7 and auc.change < 0


def test_tail_median_reads_the_last_fifth_of_the_steps():
    log = SignalLog()
    for step in range(100):
        log.record(step, {"loss.d": 1.0 if step < 80 else 5.0, "loss.g": float("nan") if step >= 80 else 2.0})
    assert tail_median(log.get("loss.d")) == 5.0
    assert tail_median(log.get("loss.g")) is None  # nothing finite in the tail
    assert tail_median(None) is None


def test_signal_change_is_relative_and_missing_safe():
    assert SignalChange("x", 2.0, 3.0).change == 0.5
    assert SignalChange("x", -2.0, -1.0).change == 0.5
    assert SignalChange("x", None, 1.0).change is None and SignalChange("x", 0.0, 1.0).change is None


def test_json_is_serialisable_and_complete(fixed):
    data = json.loads(json.dumps(fixed.to_dict()))
    assert data["schema"] == "gandoctor.compare" and data["new_failures"] == []
    assert [g["mode"] for g in data["gone"]] == ["mode_collapse", "discriminator_dominance"]
    assert data["gone"][1]["before"]["rule"] == "GD101" and data["gone"][1]["after"] is None
    assert len(data["modes"]) == 6 and {s["name"] for s in data["signals"]} >= {"loss.d", "loss.g", "feat.coverage_ratio"}


def test_cli_exit_codes(tmp_path, capsys):
    assert main(["compare", str(DDOM), str(HEALTHY)]) == EXIT_HEALTHY
    out = capsys.readouterr().out
    assert "gone: discriminator_dominance" in " ".join(out.split())
    assert "no new failure; gone: mode_collapse, discriminator_dominance" in " ".join(out.split())
    assert main(["compare", str(HEALTHY), str(COLLAPSE)]) == EXIT_UNHEALTHY
    assert "NEW FAILURE" in capsys.readouterr().out
    assert main(["compare", str(HEALTHY), str(tmp_path / "missing")]) == EXIT_ERROR
    assert "missing" in capsys.readouterr().err


def test_cli_json(capsys):
    assert main(["compare", str(HEALTHY), str(COLLAPSE), "--json"]) == EXIT_UNHEALTHY
    data = json.loads(capsys.readouterr().out)
    assert data["new_failures"] and all(m in {n["mode"] for n in data["new"]} for m in data["new_failures"])


def test_mode_without_signals_is_not_checked(tmp_path):
    csv = tmp_path / "losses.csv"
    rows = ["step,loss_D,loss_G"] + [f"{i},{0.69 + 0.01 * np.sin(i)},{0.7}" for i in range(400)]
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = compare_runs(csv, csv)
    status = {m.mode: m.before for m in result.modes}
    assert status["mode_collapse"] == "not checked"  # no sample statistics in a loss-only CSV
    assert result.new_failures == () and result.gone == ()


def test_samples_that_end_far_from_the_data_after_are_worse_whatever_the_rules_say(capsys):
    # Two healthy corpus runs by their labels: G learned the ring (oracle quality 0.58-0.69) and
    # G never reached the data (0.00-0.04). A change from the first to the second read "no new failure", exit 0.
    corpus = Path(__file__).resolve().parent.parent / "fixtures" / "corpus"
    learned, never = corpus / "c038-healthy-ring-mlp", corpus / "c002-healthy-random2d-sn_d"
    result = compare_runs(learned, never)
    assert result.samples_left_the_data and not result.new_failures
    assert main(["compare", str(learned), str(never)]) == EXIT_UNHEALTHY
    assert "WORSE; G's samples end far from the data after, not before" in " ".join(capsys.readouterr().out.split())
    assert not compare_runs(never, learned).samples_left_the_data
    assert main(["compare", str(never), str(learned), "--json"]) == EXIT_HEALTHY
    assert json.loads(capsys.readouterr().out)["samples_left_the_data"] is False
    assert main(["gate", str(never)]) == EXIT_HEALTHY  # a G that learned nothing fails no rule ...
    assert main(["gate", str(never), "--samples-near-data"]) == EXIT_UNHEALTHY  # ... unless asked
    assert "samples near the data required, G's samples are still far from the data" in " ".join(capsys.readouterr().out.split())
    assert main(["gate", str(learned), "--samples-near-data"]) == EXIT_HEALTHY
