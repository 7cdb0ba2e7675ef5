"""Report: the verdict, the findings with ranked remedies, and their renderings (dict, rich text)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any, Iterator

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .findings import Finding, RunContext, SkippedRule

SCHEMA_VERSION = 1
_BARS = "▁▂▃▄▅▆▇█"


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


def _num(value: float) -> float | str | None:
    """JSON has no NaN/inf; spell them as strings so the output stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    skipped_rules: tuple[SkippedRule, ...] = ()
    context: RunContext = field(default_factory=RunContext)
    source: str = ""
    first_step: int | None = None
    last_step: int | None = None
    signals: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    rules_total: int = 0

    @property
    def rules_checked(self) -> int:
        return max(0, self.rules_total - len(self.skipped_rules))

    @property
    def verdict(self) -> str:
        return "unhealthy" if self.findings else "healthy"

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(f.mode for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "gandoctor.report",
            "version": SCHEMA_VERSION,
            "verdict": self.verdict,
            "source": self.source,
            "steps": {"first": self.first_step, "last": self.last_step},
            "findings": [
                {
                    "mode": f.mode,
                    "rule": f.rule,
                    "rule_name": f.rule_name,
                    "summary": f.summary,
                    "onset_step": f.onset_step,
                    "last_step": f.last_step,
                    "active": f.active,
                    "confidence": f.confidence,
                    "also_fired": list(f.also_fired),
                    "evidence": {k: _num(v) for k, v in f.evidence.items()},
                    "conditions": [
                        {
                            "signal": d.signal,
                            "stat": d.stat,
                            "window": d.window,
                            "op": d.op,
                            "threshold": _num(d.threshold),
                            "value": _num(d.value),
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
                for f in self.findings
            ],
            "rules_checked": self.rules_checked,
            "skipped_rules": [{"rule": s.rule, "reason": s.reason} for s in self.skipped_rules],
            "context": {"flags": sorted(self.context.flags), "values": {k: _num(v) for k, v in self.context.values.items()}},
            "signals": list(self.signals),
            "warnings": list(self.warnings),
        }

    # -- rendering -----------------------------------------------------------------------
    def _renderables(self, max_remedies: int = 3) -> Iterator[Any]:
        span = f"steps {self.first_step}..{self.last_step}" if self.first_step is not None else "no steps"
        title = Text.assemble(("gandoctor", "bold"), f" · {self.source or 'live run'} · {span}")
        if not self.findings:
            yield Panel(Text("HEALTHY — no failure mode holds.", style="bold green"), title=title, expand=False)
        else:
            modes = ", ".join(f.mode for f in self.findings)
            yield Panel(Text(f"UNHEALTHY — {modes}", style="bold red"), title=title, expand=False)
        for f in self.findings:
            state = "active" if f.active else f"last held at step {f.last_step}"
            head = Text.assemble(
                (f"{f.mode}", "bold"),
                f"  {f.rule} {f.rule_name}  onset step {f.onset_step}  confidence {f.confidence:.2f}  ({state})",
                (f"  also: {', '.join(f.also_fired)}" if f.also_fired else ""),
            )
            yield head
            yield Text(f"  {f.summary}")
            table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1), pad_edge=False)
            table.add_column("  evidence")
            table.add_column("value", justify="right")
            table.add_column("rule")
            for d in f.details:
                mark = "✓" if d.held else "·"
                table.add_row(f"  {mark} {d.stat}({d.signal}, {d.window})", f"{d.value:.4g}", f"{d.op} {d.threshold:g}")
            yield table
            first = f.details[0] if f.details else None
            line = sparkline(f.trace, first.threshold if first else None)
            if line and first is not None:
                finite = [v for v in f.trace if math.isfinite(v)] + [first.threshold]
                yield Text(
                    f"  {first.stat}({first.signal}), steps {f.trace_steps[0]}..{f.trace_steps[1]}, "
                    f"scale {min(finite):.3g}..{max(finite):.3g}, rule {first.op} {first.threshold:g}:"
                )
                yield Text(f"  {line}")
            if f.remedies:
                yield Text("  remedies, best first:")
                for i, r in enumerate(f.remedies[:max_remedies], 1):
                    yield Text(f"   {i}. {r.title} — {r.action}")
                    yield Text(f"      source: {r.source}, section “{r.section}”", style="dim")
            for s in f.skipped_remedies:
                yield Text(f"   (skipped: {s.title} — {s.reason})", style="dim")
        if self.skipped_rules:
            missing: set[str] = set()
            other: list[str] = []
            for skipped in self.skipped_rules:
                head, _, names = skipped.reason.partition(": ")
                if head in ("signal(s) not recorded", "none of its signals recorded"):
                    missing.update(n.strip() for n in names.split(","))
                else:
                    other.append(f"{skipped.rule} {skipped.reason}")
            parts = ([f"signals not recorded: {', '.join(sorted(missing))}"] if missing else []) + other
            yield Text(
                f"{self.rules_checked} of {self.rules_total} rules checked; {len(self.skipped_rules)} skipped ({'; '.join(parts)})",
                style="dim",
            )
        for w in self.warnings:
            yield Text(f"warning: {w}", style="yellow")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Group(*self._renderables())

    def render_text(self, width: int = 100) -> str:
        buffer = io.StringIO()
        console = Console(file=buffer, width=width, force_terminal=False, color_system=None, highlight=False)
        console.print(self)
        return buffer.getvalue()

    def __str__(self) -> str:
        return self.render_text()
