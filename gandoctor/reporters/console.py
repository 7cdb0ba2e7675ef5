"""The report as rich console output: per-mode status, each finding's evidence, trend and remedies.

Laid out with rich's own tables so wrapped lines keep their indent at any width (tested at 80
and 120 columns).
"""

from __future__ import annotations

import io
import math
from typing import Any, Iterator

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..context import D_LOSS_UNIT_UNKNOWN, NO_LOSS_UNIT, WORLD_SIZE, with_loss_unit_status
from ..findings import Finding, ModeState
from ..report import Report
from ._modes import ending_note, failing_detail, far_from_data_note, first_sign, samples_line, summarise_skipped

_BARS = "▁▂▃▄▅▆▇█"
MAX_REMEDIES = 3
_STATE_STYLE = {ModeState.FAILING: "bold red", ModeState.CLEAR: "green", ModeState.NOT_CHECKED: "yellow"}


def sparkline(values: tuple[float, ...], include: float | None = None) -> str:
    """Unicode bars scaled to the finite range of ``values`` (and ``include``, e.g. the rule's
    threshold, so the bars show where the line is crossed); a space where a value is missing."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    bounds = finite + ([include] if include is not None and math.isfinite(include) else [])
    lo, hi = min(bounds), max(bounds)
    span = hi - lo
    out = []
    for v in values:
        if not math.isfinite(v):
            out.append(" ")
        elif span <= 0:
            out.append(_BARS[len(_BARS) // 2])
        else:
            out.append(_BARS[min(len(_BARS) - 1, int((v - lo) / span * (len(_BARS) - 1) + 0.5))])
    return "".join(out)


def _hanging(rows: list[tuple[str, Text | str]], indent: int = 2) -> Table:
    """Two-column grid: a short label and text that wraps under itself, not under the label."""
    grid = Table.grid(padding=(0, 1), pad_edge=False)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, text in rows:
        grid.add_row(" " * indent + label, text)
    return grid


def _header(report: Report) -> Panel:
    span = f"steps {report.first_step}..{report.last_step}" if report.first_step is not None else "no steps"
    title = Text.assemble(("gandoctor", "bold"), f" · {report.source or 'live run'} · {span}")
    if report.findings:
        verdict = Text(f"UNHEALTHY — {', '.join(f.mode for f in report.findings)}", style="bold red")
        # Beside a finding too: a mode read "clear" (collapse) says little of samples far from the data.
        if note := far_from_data_note(report.samples).removeprefix("but "):
            verdict.append(f"\n{note[0].upper()}{note[1:]}.", style="bold yellow")
    elif report.verdict == "unknown":
        verdict = Text("NOT JUDGED — no failure mode could be checked (see below).", style="bold yellow")
    else:
        verdict = _healthy_banner(report)
        note = far_from_data_note(report.samples)
        if note:
            verdict.append(f"\n{note[0].upper()}{note[1:]}.", style="bold yellow")
    if ended := ending_note(report):
        verdict.append(f"\n{ended[0].upper()}{ended[1:]}.", style="bold yellow")
    return Panel(verdict, title=title, title_align="left", expand=False)


def _healthy_banner(report: Report) -> Text:
    """A bare HEALTHY only when every mode was checked; otherwise which ones (a two-step log with
    only the non-finite check behind it must not read like a judged run)."""
    checked = [s.mode for s in report.mode_status if s.state is ModeState.CLEAR]
    if not report.mode_status or len(checked) == len(report.mode_status):
        return Text("HEALTHY — no failure mode holds in the modes checked.", style="bold green")
    unchecked = len(report.mode_status) - len(checked)
    return Text(
        f"HEALTHY in the {len(checked)} of {len(report.mode_status)} modes checked ({', '.join(checked)}); "
        f"{unchecked} not checked (see below).",
        style="bold green" if len(checked) * 2 > len(report.mode_status) else "bold yellow",
    )


def _status_table(report: Report) -> Table:
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold", padding=(0, 1))
    table.add_column("mode", no_wrap=True)
    table.add_column("status", overflow="fold")
    findings = {f.mode: f for f in report.findings}
    for status in report.mode_status:
        if status.state is ModeState.FAILING and status.mode in findings:
            f = findings[status.mode]
            text = "FAILING " + " ".join(failing_detail(f.onset_step, f.rule, f.confidence, f.caveat))
        else:
            text = status.describe()
        table.add_row(status.mode, Text(text, style=_STATE_STYLE[status.state]))
    return table


def _finding(f: Finding) -> Iterator[Any]:
    state = "still active at the last step" if f.active else f"last held at step {f.last_step}"
    yield Text("")
    yield Text.assemble((f.mode, "bold"), f" — {f.rule} {f.rule_name}", (f" (also: {', '.join(f.also_fired)})" if f.also_fired else ""))
    sign = first_sign(f.first_sign_step, f.first_sign_rule)
    yield _hanging([("", Text(f"onset step {f.onset_step}{' · ' + sign if sign else ''} · confidence {f.confidence:.2f} · {state}"))], indent=1)
    yield _hanging([("", Text(f.summary))], indent=1)
    if f.caveat:
        yield _hanging([("", Text(f"caveat: {f.caveat}", style="yellow"))], indent=1)
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold", padding=(0, 1))
    table.add_column("   evidence (✓ held, · did not)", overflow="fold")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("end", justify="right", no_wrap=True)  # the statistic at the last step
    table.add_column("rule", no_wrap=True)
    for d in f.details:
        mark = "✓" if d.held else "·"
        role = "" if d.role == "condition" else " (corroborating)"
        end = f"{d.last:.4g}" if math.isfinite(d.last) else "—"
        table.add_row(f"   {mark} {d.stat}({d.signal}, {d.window} steps){role}", f"{d.value:.4g}", end, f"{d.op} {d.threshold:g}")
    yield table
    first = f.details[0] if f.details else None
    line = sparkline(f.trace, first.threshold if first else None)
    if line and first is not None:
        finite = [v for v in f.trace if math.isfinite(v)] + [first.threshold]
        yield _hanging([("", Text(
            f"{first.stat}({first.signal}) over steps {f.trace_steps[0]}..{f.trace_steps[1]} "
            f"(scale {min(finite):.3g}..{max(finite):.3g}; rule {first.op} {first.threshold:g}):", style="dim"))], indent=1)
        yield Text("   " + line)
    if f.remedies:
        yield Text("   remedies, best first:")
        rows: list[tuple[str, Text | str]] = []
        for i, r in enumerate(f.remedies[:MAX_REMEDIES], 1):
            body = Text.assemble((r.title, "bold"), f" — {r.action}")
            if r.reason:
                body.append(f" (ranked up: {r.reason})", style="italic")
            body.append(f"\nsource: {r.source}, section “{r.section}”", style="dim")
            rows.append((f"{i}.", body))
        yield _hanging(rows, indent=3)
    for s in f.skipped_remedies:
        yield _hanging([("-", Text(f"not suggested: {s.title} — {s.reason}", style="dim"))], indent=3)


_FORM_NAMES = {
    "bce_logits": "BCE on logits",
    "bce_prob": "BCE on probabilities",
    "ls01": "least squares towards 1/0",
    "ls_pm1": "least squares towards +1/-1",
    "hinge": "hinge",
    "wasserstein": "Wasserstein",
}


def _loss_units(report: Report) -> str:
    """Why D's loss thresholds read as they do in this report, when they are not as calibrated."""
    if report.context.flags & NO_LOSS_UNIT:  # no unit to declare: the rules on D's loss skip such a D
        return ""
    if D_LOSS_UNIT_UNKNOWN in with_loss_unit_status(report.context).flags:  # the rules' own test, not spelled again
        return (
            "D's loss matched none of the known forms (a penalty or an auxiliary classifier's term added, a D with two heads, "
            "a relativistic D, one call of D on reals and fakes put together?): the rules that read it against a unit's floor "
            "or chance (GD102, GD106, GD207) are not checked, and D dominance rests on D's outputs; where it is a known form, "
            "declare it, e.g. Doctor(uses={'hinge_loss'}) (--uses hinge_loss), or its unit, e.g. "
            "--uses d_loss_unit=0.25 (least squares towards 1/0) or Doctor(uses={'d_loss_unit': 0.25})"
        )
    unit = report.context.values.get("d_loss_unit")
    if not isinstance(unit, (int, float)) or isinstance(unit, bool) or unit == 1:
        return ""
    form = report.context.values.get("d_loss_form")
    what = f"{_FORM_NAMES.get(str(form), str(form))}, " if form else ""
    return f"D's loss thresholds are read in this run's units ({what}d_loss_unit {unit:g}: x{unit:g} the calibrated ones)"


def _footer(report: Report) -> Iterator[Any]:
    if report.samples is not None:
        yield Text("")
        yield Text(samples_line(report.samples), style="dim")
    if report.skipped_rules:
        if report.samples is None:
            yield Text("")
        yield Text(f"{report.rules_checked} of {report.rules_total} rules checked; {summarise_skipped(report.skipped_rules)}", style="dim")
    if report.mapped:
        yield Text("signals read from: " + ", ".join(f"{orig} → {sig}" for sig, orig in report.mapped), style="dim")
    units = _loss_units(report)
    if units:
        yield Text(units, style="dim")
    ranks = report.context.values.get(WORLD_SIZE)
    if isinstance(ranks, int) and ranks > 1:
        yield Text(
            f"recorded over {ranks} ranks (torch.distributed): losses and D's statistics are their mean, norms their largest",
            style="dim",
        )
    if "d_reversed" in report.context.flags:
        yield Text(
            "D is trained to score reals lower than fakes (its loss has real and fake the other way round from the usual form, "
            "as the original WGAN code does): its outputs are read mirrored, so d.auc 1.0 is a D that separates",
            style="dim",
        )
    cleared = report.cleared_alerts
    if cleared:
        yield Text("")
        seen = "; ".join(f"{a.mode} ({a.rule}) alerted at step {a.seen_at}, onset {a.onset_step}" for a in cleared)
        yield Text(f"Raised during training, not holding at the last step: {seen}", style="yellow")
    for w in report.warnings:
        yield Text(f"warning: {w}", style="yellow")


def renderable(report: Report) -> Group:
    parts: list[Any] = [_header(report)]
    if report.mode_status:
        parts.append(_status_table(report))
    for f in report.findings:
        parts.extend(_finding(f))
    parts.extend(_footer(report))
    return Group(*parts)


def render_text(report: Report, width: int = 100) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None, highlight=False)
    console.print(renderable(report))
    return buffer.getvalue()
