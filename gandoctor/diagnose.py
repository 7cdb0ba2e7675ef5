"""The one path from signals to a Report, shared by the live Doctor and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping

from . import engine, remedies
from .config import Config, load_config
from .context import RunContext
from .readers import read_run
from .report import Report
from .rules import RuleSet
from .signals import SignalLog


def diagnose(
    signals: SignalLog,
    rules: RuleSet,
    context: RunContext,
    source: str = "",
    warnings: Iterable[str] = (),
    strict: bool = False,
    mapped: Mapping[str, str] | None = None,
) -> Report:
    """Evaluate the rules on the signals, rank remedies for the run: the one path used live and by the CLI."""
    mapped = mapped or {}
    result = engine.evaluate(signals, rules, context, strict=strict)
    findings = remedies.rank(result.findings, rules, context)
    return Report(
        findings=findings,
        skipped_rules=result.skipped,
        context=context,
        source=source,
        first_step=result.first_step,
        last_step=result.last_step,
        signals=tuple(signals.names()),
        warnings=tuple(warnings),
        rules_total=len(rules.rules),
        mode_status=result.mode_status,
        rules_checked_codes=result.checked,
        mapped=tuple(sorted(mapped.items())),
    )


def analyze(
    path: str | Path,
    config: Config | None = None,
    rules_dirs: Iterable[str | Path] = (),
    uses: Iterable[str] = (),
    format: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Report:
    """Read a saved run (directory or log file) and diagnose it."""
    config = config or load_config()
    rules = config.ruleset(tuple(Path(d) for d in rules_dirs))
    data = read_run(path, format=format, progress=progress)
    context = data.context.merged(RunContext(frozenset(config.uses) | frozenset(uses)))
    return diagnose(data.signals, rules, context, source=str(path), warnings=data.warnings, mapped=getattr(data, "mapped", None))
