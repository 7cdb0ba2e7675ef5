"""Detection on real recorded GAN runs (fixtures/), against labels set by an oracle the doctor never sees.

The cases are data: every run in fixtures/runs/index.json (2-D mixtures and 8x8 digits, where
the rules were calibrated) and fixtures/images/index.json (1x32x32 digits with conv G/D, never
used for calibration), with its oracle.json. A healthy run
(the oracle found nothing) must stay silent; every mode the oracle labelled must be reported.
Known disagreements are listed, each with its reason, in tests/data/detection_exceptions.toml
so that they stay visible rather than tuned away.
"""

from __future__ import annotations

import json
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from functools import lru_cache
from pathlib import Path

import pytest

from gandoctor.diagnose import analyze
from gandoctor.report import Report

ROOT = Path(__file__).resolve().parent.parent
SETS = (ROOT / "fixtures" / "runs", ROOT / "fixtures" / "images")
EXCEPTIONS = tomllib.loads((Path(__file__).parent / "data" / "detection_exceptions.toml").read_text())


def _index() -> dict[str, Path]:
    """Run name -> its folder, over every fixture set (names are unique across sets)."""
    return {entry["run"]: folder / entry["run"] for folder in SETS for entry in json.loads((folder / "index.json").read_text())}


FOLDERS = _index()


def _oracle(run: str) -> dict:
    return json.loads((FOLDERS[run] / "oracle.json").read_text())


@lru_cache(maxsize=None)
def _report(run: str) -> Report:
    return analyze(FOLDERS[run])


def _exception(run: str, kind: str, mode: str) -> str | None:
    for case in EXCEPTIONS.get("case", []):
        if case["run"] == run and case["kind"] == kind and case["mode"] == mode:
            return case["reason"]
    return None


RUN_NAMES = list(FOLDERS)
HEALTHY = [r for r in RUN_NAMES if not _oracle(r)["labels"]]
LABELLED = [(r, mode) for r in RUN_NAMES for mode in sorted(_oracle(r)["labels"])]


def test_fixture_set_covers_every_mode_and_healthy_runs():
    labelled_modes = {mode for _, mode in LABELLED}
    assert len(HEALTHY) >= 6
    assert labelled_modes == {
        "mode_collapse", "discriminator_dominance", "generator_dominance",
        "vanishing_gradients", "exploding_gradients", "non_convergence",
    }


@pytest.mark.parametrize("run", HEALTHY)
def test_healthy_runs_stay_quiet(run):
    report = _report(run)
    unexpected = [f.mode for f in report.findings if not _exception(run, "false_alarm", f.mode)]
    assert unexpected == [], f"{run}: false alarm(s) {unexpected}\n{report.render_text()}"


@pytest.mark.parametrize("run,mode", LABELLED)
def test_oracle_labelled_modes_are_detected(run, mode):
    if _exception(run, "miss", mode):
        report = _report(run)
        # A listed miss must still be a miss: if it starts being detected, drop the exception.
        assert mode not in report.modes, f"{run}: {mode} is detected now; remove its exception"
        return
    report = _report(run)
    assert mode in report.modes, f"{run}: oracle labels {mode}, gandoctor reported {report.modes}\n{report.render_text()}"


@pytest.mark.parametrize("run", [r for r in RUN_NAMES if _oracle(r)["labels"]])
def test_failing_runs_raise_no_mode_the_oracle_rules_out(run):
    report = _report(run)
    labels = set(_oracle(run)["labels"])
    extra = [m for m in report.modes if m not in labels and not _exception(run, "extra", m)]
    assert extra == [], f"{run}: reported {extra}, not labelled by the oracle ({sorted(labels)})"
