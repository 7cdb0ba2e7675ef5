"""JUnit XML for CI test panels: one test case per failure mode.

A failing mode is a ``<failure>`` whose message names the rule and onset and whose text holds the
evidence and the top remedy with its source; a mode no rule could check (its signals were not
recorded) is ``<skipped>`` with the reason; a clear mode is a passing case.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from ..report import Report
from ._modes import first_sign_aside, mode_statuses


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _failure_text(f: Mapping[str, Any]) -> str:
    lines = [f["summary"], f"onset step {f['onset_step']}{first_sign_aside(f)}, last held at step {f['last_step']}, confidence {f['confidence']:.2f}"]
    if f.get("caveat"):
        lines.append(f"caveat: {f['caveat']}")
    lines.append("evidence:")
    for c in f.get("conditions", []):
        mark = "held" if c["held"] else "not held"
        lines.append(f"  {c['stat']}({c['signal']}, window {c['window']}) = {_num(c['value'])} (rule {c['op']} {_num(c['threshold'])}; {mark})")
    remedies = f.get("remedies", [])
    if remedies:
        r = remedies[0]
        lines.append(f"top remedy: {r['title']}: {r['action']} (source: {r['source']}, section \"{r['section']}\")")
    return "\n".join(lines)


def render_junit(report: Report, suite: str = "gandoctor") -> str:
    """The report as a JUnit XML document (a string, UTF-8 declared)."""
    data = report.to_dict()
    statuses = mode_statuses(report, data)
    failures = sum(s.status == "failing" for s in statuses)
    skipped = sum(s.status == "not_checked" for s in statuses)
    root = ET.Element("testsuites", name=suite, tests=str(len(statuses)), failures=str(failures), skipped=str(skipped))
    steps = data.get("steps", {})
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(statuses)), failures=str(failures),
                       errors="0", skipped=str(skipped))
    props = ET.SubElement(ts, "properties")
    for name, value in (("source", data.get("source") or "live run"), ("verdict", data["verdict"]),
                        ("first_step", steps.get("first")), ("last_step", steps.get("last"))):
        ET.SubElement(props, "property", name=name, value="" if value is None else str(value))
    for s in statuses:
        case = ET.SubElement(ts, "testcase", classname=f"{suite}.modes", name=s.mode)
        if s.status == "failing" and s.finding is not None:
            f = s.finding
            failure = ET.SubElement(case, "failure", type=f["rule"],
                                    message=f"{s.mode}: {f['rule']} {f['rule_name']} from step {f['onset_step']}")
            failure.text = _failure_text(f)
        elif s.status == "not_checked":
            ET.SubElement(case, "skipped", message=s.reason or "not checked")
    if data.get("warnings"):
        ET.SubElement(ts, "system-err").text = "\n".join(data["warnings"])
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
