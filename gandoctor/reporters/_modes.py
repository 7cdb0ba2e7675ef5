"""Per-mode status shared by the HTML, JUnit and markdown reporters.

``report.to_dict()["modes"]`` is the source when the report carries it (a list of
``{mode, status, reason}``). Older reports lack it, so the status is rebuilt: a mode with a
finding is failing; a mode all of whose built-in rules were skipped, or any mode when no rule
was checked at all, is not checked (with the reasons); any other mode is clear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..report import Report
from ..rules import MODES

Status = Literal["failing", "clear", "not_checked"]
_STATUSES = ("failing", "clear", "not_checked")


@dataclass(frozen=True)
class ModeStatus:
    mode: str
    status: Status
    reason: str
    finding: Mapping[str, Any] | None  # the finding's to_dict() entry when failing


def _rule_modes() -> dict[str, str]:
    from ..errors import GanDoctorError
    from ..rules import load_rules

    try:
        return {rule.code: rule.mode for rule in load_rules().rules}
    except (GanDoctorError, OSError):  # a broken rules folder must not stop a report from rendering
        return {}


def mode_statuses(report: Report, data: Mapping[str, Any] | None = None) -> tuple[ModeStatus, ...]:
    """One status per failure mode, in the order of ``gandoctor.MODES`` (then any other mode seen)."""
    data = data if data is not None else report.to_dict()
    findings = {f["mode"]: f for f in data.get("findings", [])}
    given = data.get("modes")
    if isinstance(given, list) and given:
        out = []
        for entry in given:
            status = entry.get("status", "clear")
            out.append(ModeStatus(
                str(entry.get("mode")), status if status in _STATUSES else "clear", str(entry.get("reason") or ""),
                findings.get(entry.get("mode")),
            ))
        return tuple(out)
    modes = list(MODES) + [m for m in findings if m not in MODES]
    rule_modes = _rule_modes()
    skipped: dict[str, list[str]] = {}
    for entry in data.get("skipped_rules", []):
        mode = rule_modes.get(entry["rule"])
        if mode is not None:
            skipped.setdefault(mode, []).append(f"{entry['rule']}: {entry['reason']}")
    out = []
    nothing_checked = not data.get("rules_checked")
    for mode in modes:
        if nothing_checked and mode not in findings:
            out.append(ModeStatus(mode, "not_checked", "no rule was checked (no signals recorded)", None))
            continue
        if mode in findings:
            f = findings[mode]
            out.append(ModeStatus(mode, "failing", f"{f['rule']} {f['rule_name']} from step {f['onset_step']}", f))
            continue
        codes = [c for c, m in rule_modes.items() if m == mode]
        if codes and len(skipped.get(mode, [])) == len(codes):
            out.append(ModeStatus(mode, "not_checked", "; ".join(skipped[mode]), None))
        else:
            # Counted against the built-in rules: a rule disabled by configuration is not in the
            # report at all, so only "none fired" is certain.
            out.append(ModeStatus(mode, "clear", "checked, no rule fired", None))
    return tuple(out)
