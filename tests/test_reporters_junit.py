"""JUnit XML: one test case per mode, failures carry onset, evidence and the top remedy."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import gandoctor
from gandoctor.findings import Finding
from gandoctor.report import Report
from gandoctor.reporters.junit import render_junit

RUNS = Path(__file__).resolve().parent.parent / "fixtures" / "runs"


def cases(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml.encode("utf-8"))
    assert root.tag == "testsuites"
    return {case.get("name"): case for case in root.iter("testcase")}


def test_failing_run_one_failure_per_failing_mode():
    report = gandoctor.analyze(RUNS / "ddom_ring8_s0")
    xml = render_junit(report)
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    by_mode = cases(xml)
    assert set(by_mode) == set(gandoctor.MODES)
    suite = ET.fromstring(xml.encode()).find("testsuite")
    assert suite is not None and suite.get("tests") == "6" and suite.get("failures") == "2" and suite.get("skipped") == "0"
    for f in report.findings:
        failure = by_mode[f.mode].find("failure")
        assert failure is not None
        assert failure.get("type") == f.rule
        assert f"from step {f.onset_step}" in failure.get("message", "")
        text = failure.text or ""
        assert f"onset step {f.onset_step}" in text
        assert f"{f.details[0].stat}({f.details[0].signal}, window {f.details[0].window})" in text
        assert f"top remedy: {f.remedies[0].title}" in text and f.remedies[0].source in text
    for mode in set(gandoctor.MODES) - set(report.modes):
        assert list(by_mode[mode]) == []  # a passing case


def test_modes_that_could_not_be_checked_are_skipped():
    # A run log with losses only: the rules on D's outputs and samples cannot run (vanishing
    # gradients can: GD404 reads G's loss).
    log = gandoctor.SignalLog()
    for step in range(400):
        log.record(step, {"loss.d": 0.7, "loss.g": 0.7})
    report = gandoctor.diagnose(log, gandoctor.load_rules(), gandoctor.RunContext())
    by_mode = cases(render_junit(report))
    skipped = {m for m, case in by_mode.items() if case.find("skipped") is not None}
    assert "mode_collapse" in skipped and "non_convergence" in skipped
    assert "vanishing_gradients" not in skipped
    reason = by_mode["mode_collapse"].find("skipped").get("message")
    assert "feat." in reason  # names the signals that were missing


def test_report_modes_entry_wins():
    @dataclass(frozen=True)
    class WithModes(Report):
        def to_dict(self):
            data = super().to_dict()
            data["modes"] = [{"mode": "exploding_gradients", "status": "not_checked", "reason": "no gradients"}]
            return data

    by_mode = cases(render_junit(WithModes(findings=())))
    assert set(by_mode) == {"exploding_gradients"}
    assert by_mode["exploding_gradients"].find("skipped").get("message") == "no gradients"


def test_text_is_escaped():
    report = gandoctor.analyze(RUNS / "ddom_ring8_s0")
    xml = render_junit(report)
    assert "(rule &lt; " in xml  # the '<' of a rule survives as text, the document still parses
    cases(xml)


def test_a_report_with_nothing_checked_skips_every_mode():
    by_mode = cases(render_junit(Report(findings=())))
    assert all(case.find("skipped") is not None for case in by_mode.values())


def test_a_failure_names_the_first_sign_beside_the_onset():
    f = Finding("exploding_gradients", "GD501", "non-finite-values", "NaN.", 260, 265, True, 0.9, {}, (), first_sign_step=230, first_sign_rule="GD507")
    xml = render_junit(Report((f,), first_step=0, last_step=265))
    assert "onset step 260 (first sign at step 230, GD507), last held at step 265" in xml
