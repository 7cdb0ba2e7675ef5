"""The report as strict JSON data (the CLI's ``--json``; ``Report.to_dict()``)."""

from __future__ import annotations

import math
from typing import Any

from ..findings import Finding
from ..report import SCHEMA_VERSION, Report


def _num(value: Any) -> Any:
    """JSON has no NaN/inf; spell them as strings so the output stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def finding_to_dict(f: Finding) -> dict[str, Any]:
    """One finding as strict JSON data (an entry of the report's ``findings``)."""
    return {
        "mode": f.mode,
        "rule": f.rule,
        "rule_name": f.rule_name,
        "summary": f.summary,
        "onset_step": f.onset_step,
        # An earlier rule of the mode (a burst before the first NaN) and its onset; null: none.
        "first_sign_step": f.first_sign_step,
        "first_sign_rule": f.first_sign_rule,
        "last_step": f.last_step,
        "active": f.active,
        "confidence": f.confidence,
        "also_fired": list(f.also_fired),
        "caveat": f.caveat,
        "evidence": {k: _num(v) for k, v in f.evidence.items()},
        "conditions": [
            {
                "signal": d.signal,
                "stat": d.stat,
                "window": d.window,
                "op": d.op,
                "threshold": _num(d.threshold),
                "value": _num(d.value),
                "last": _num(d.last),
                "held": d.held,
                "role": d.role,
            }
            for d in f.details
        ],
        "remedies": [
            {
                "id": r.id,
                "title": r.title,
                "action": r.action,
                "source": r.source,
                "section": r.section,
                "score": r.score,
                "reason": r.reason,
            }
            for r in f.remedies
        ],
        "skipped_remedies": [{"id": s.id, "title": s.title, "reason": s.reason} for s in f.skipped_remedies],
        "trace": {"values": [_num(v) for v in f.trace], "first_step": f.trace_steps[0], "last_step": f.trace_steps[1]},
    }


def report_to_dict(report: Report) -> dict[str, Any]:
    cleared = report.cleared_alerts
    return {
        "schema": "gandoctor.report",
        "version": SCHEMA_VERSION,
        "verdict": report.verdict,
        "source": report.source,
        "steps": {"first": report.first_step, "last": report.last_step},
        "modes": [
            {
                "mode": s.mode,
                "status": s.state.value,
                "reason": s.describe(),
                "rules_checked": list(s.rules_checked),
                "missing_signals": list(s.missing),
            }
            for s in report.mode_status
        ],
        "findings": [finding_to_dict(f) for f in report.findings],
        "rules_checked": report.rules_checked,
        "skipped_rules": [
            {"rule": s.rule, "reason": s.reason.value, "detail": s.describe(), "signals": list(s.missing)} for s in report.skipped_rules
        ],
        "context": {"flags": sorted(report.context.flags), "values": {k: _num(v) for k, v in report.context.values.items()}},
        "signals": list(report.signals),
        "mapped": {signal: original for signal, original in report.mapped},
        "warnings": list(report.warnings),
        # Where the run log says the run did not finish; null where it did, or the log cannot say.
        "ending": None if (end := report.ending) is None else {"how": end.how.value, "step": end.step, "message": end.message()},
        # The sample statistics over the run's last fifth; null where none were recorded.
        "samples": None if (samples := report.samples) is None else {
            "first_step": samples.first_step,
            "last_step": samples.last_step,
            "precision": _num(samples.precision),
            "precision_null": _num(samples.precision_null),  # a blurred copy of the data's precision
            "coverage_ratio": _num(samples.coverage_ratio),
            "diversity_ratio": _num(samples.diversity_ratio),
            "far_from_data": samples.far_from_data,
        },
        "alerts": [
            {"mode": a.mode, "rule": a.rule, "seen_at": a.seen_at, "onset_step": a.onset_step, "holds_at_end": a not in cleared}
            for a in report.alerts
        ],
    }
