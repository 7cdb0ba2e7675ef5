"""The one path from signals to a Report, shared by the live Doctor and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from . import engine, remedies
from .config import Config, load_config
from .context import RunContext, with_loss_unit_status
from .endstate import summarise_samples
from .lossunits import g_loss_takes_both_signs, infer_d_loss_unit, starts_at_hinge_chance
from .readers import ReadOptions, RunData, read_run
from .report import Alert, Report
from .rules import RuleSet
from .runlog.format import HealthyMarker, RunEnd
from .signals import SignalLog
from .vocabulary import parse_uses, uses_context


def diagnose(
    signals: SignalLog,
    rules: RuleSet,
    context: RunContext,
    source: str = "",
    warnings: Iterable[str] = (),
    strict: bool = False,
    mapped: Mapping[str, str] | None = None,
    alerts: Iterable[Alert] = (),
    ending: RunEnd | None = None,
) -> Report:
    """Evaluate the rules on the signals, rank remedies for the run: the one path used live and by the CLI."""
    mapped = mapped or {}
    context = with_loss_unit_status(context)
    result = engine.evaluate(signals, rules, context, strict=strict)
    findings = remedies.rank(result.findings, rules, context, lambda finding: rates_at(signals, finding.onset_step))
    return Report(
        findings=findings,
        skipped_rules=result.skipped,
        context=context,
        source=source,
        first_step=result.first_step,
        last_step=result.last_step,
        signals=tuple(signals.names()),
        warnings=(*warnings, *declared_output_contradicted(context), *negative_rates(signals)),
        rules_total=len(rules.rules),
        mode_status=result.mode_status,
        rules_checked_codes=result.checked,
        mapped=tuple(sorted(mapped.items())),
        alerts=tuple(alerts),
        samples=summarise_samples(signals),
        ending=ending,
    )


def declared_output_contradicted(context: RunContext) -> tuple[str, ...]:
    """A declared ``d_output`` that the learnt loss form contradicts. Pasted from a snippet onto a
    D that ends in a sigmoid, ``d_output="logit"`` took D's accuracy at 0 on outputs that never go
    below it: every sample read as real, d.acc 0.5 at every check (0.96 under ``auto``), with no word."""
    declared, form = context.values.get("d_output"), context.values.get("d_loss_form")
    if declared == "logit" and form in ("bce_prob", "ls01"):
        return (f"d_output='logit' was declared, but D's loss reads its outputs as probabilities ({form}): D's accuracy is "
                "taken at 0, which they never go below; leave d_output out (auto reads the kind from the loss) or pass d_output='prob'",)
    if declared == "prob" and form == "bce_logits":
        return ("d_output='prob' was declared, but D's loss applies a sigmoid to its outputs (bce_logits): they are logits, "
                "and D's accuracy is taken at 0.5 of them; leave d_output out (auto reads the kind from the loss) or pass d_output='logit'",)
    return ()


def negative_rates(signals: SignalLog) -> tuple[str, ...]:
    """A learning rate that went below zero (a decay schedule overshooting its end): the optimizer
    then climbs the loss it should descend, which no rule reads as such."""
    out = []
    for name, key in RATE_SIGNALS.items():
        view = signals.get(name)
        if view is None:
            continue
        below = np.flatnonzero(np.isfinite(view.values) & (view.values < 0))
        if below.size:
            player = "D" if key == "lr_d" else "G"
            out.append(f"{player}'s learning rate is negative from step {int(view.steps[below[0]])} ({float(view.values[below[0]]):.3g}): "
                       "the optimizer climbs the loss there; check the schedule's end (a linear decay past its last step)")
    return tuple(out)


def alerts_of(markers: Iterable[HealthyMarker]) -> tuple[Alert, ...]:
    """The live alerts a run log's "last healthy step" markers record, one per (mode, rule)."""
    out: dict[tuple[str, str], Alert] = {}
    for marker in markers:
        onsets = marker.onsets or (marker.onset_step,) * len(marker.modes)
        for mode, rule, onset in zip(marker.modes, marker.rules, onsets):
            out.setdefault((mode, rule), Alert(mode, rule, marker.seen_at, onset))
    return tuple(out.values())


def infer_from_log(signals: SignalLog, known: RunContext) -> RunContext:
    """What a saved log says about the run that its header may not: a D loss below zero marks a
    Wasserstein critic (BCE, hinge and least-squares D losses never are), as the live doctor infers;
    D's loss units, where its own D(x) and D(G(z)) bound the loss (:mod:`gandoctor.lossunits`);
    a hinge loss, where the log's first losses are what one reads at chance or G's loss takes both
    signs over a D loss never negative; a gradient penalty, where the log gives one above 0; a learning-rate
    schedule, where a logged rate (``lr_D``, ``lr/G`` -> ``opt.lr_*``; or one rate
    whose player the log does not say, ``lr`` or Lightning's ``lr-Adam``) moved."""
    flags: set[str] = set()
    values: dict[str, float | str] = {}
    for name in (*RATE_SIGNALS, *(n for n in signals.names() if _unassigned_rate(n))):
        rates = signals.get(name)
        finite = np.array([]) if rates is None else rates.values[np.isfinite(rates.values)]
        if finite.size and float(finite.max()) > float(finite.min()) * (1 + 1e-6):
            flags.add("lr_schedule")
    penalty = signals.get("penalty.d")  # a penalty term the log gives, above 0 somewhere: one is in use
    if penalty is not None and bool((penalty.values[np.isfinite(penalty.values)] > 0).any()):
        flags.add("gradient_penalty")
    loss_d = signals.get("loss.d")
    if "critic" not in known.flags and loss_d is not None:
        finite = loss_d.values[np.isfinite(loss_d.values)]
        if finite.size and float(finite.min()) < -1e-6:
            flags.add("critic")
    # A Doctor's own log (it records d_output) carries the exact form where one explains the loss.
    if "critic" not in known.flags | flags and "d_loss_unit" not in known.values and "d_output" not in known.values:
        unit = infer_d_loss_unit(signals)
        if unit is not None:  # the bounds establish one form only: least squares towards 1/0
            values["d_loss_unit"] = unit
            values["d_loss_form"] = "ls01"
        elif "hinge_loss" not in known.flags and (starts_at_hinge_chance(signals) or g_loss_takes_both_signs(signals)):
            flags.add("hinge_loss")
    return RunContext(frozenset(flags), values)


#: Learning rates recorded over the run (a schedule moves them) and the context values they update.
RATE_SIGNALS = {"opt.lr_d": "lr_d", "opt.lr_g": "lr_g"}


def _unassigned_rate(name: str) -> bool:
    """A logged learning rate that names neither player (``lr``, ``learning_rate``, Lightning's
    ``lr-Adam`` / ``lr-Adam-1``): it can mark a schedule, but no remedy quotes it as D's or G's."""
    return name in ("user.lr", "user.learning_rate") or name.startswith(("user.lr_", "user.learning_rate_"))


def rates_at(signals: SignalLog, step: int | None) -> dict[str, float]:
    """The learning rates the run had at ``step`` (the last recorded at or before it, else the
    first), where it recorded them: what a finding's remedies quote, not the rate at the end."""
    if step is None:
        return {}
    rates: dict[str, float] = {}
    for name, key in RATE_SIGNALS.items():
        view = signals.get(name)
        if view is None or not len(view.steps):
            continue
        i = max(int(np.searchsorted(view.steps, step, side="right")) - 1, 0)
        value = float(view.values[i])
        if np.isfinite(value):
            rates[key] = value
    return rates


def analyze(
    path: str | Path,
    config: Config | None = None,
    rules_dirs: Iterable[str | Path] = (),
    uses: Iterable[str] | Mapping[str, Any] = (),
    format: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    options: ReadOptions | None = None,
) -> Report:
    """Read a saved run (directory or log file) and diagnose it (see :func:`analyze_run`)."""
    return analyze_run(path, config, rules_dirs, uses, format, progress, options)[0]


def analyze_run(
    path: str | Path,
    config: Config | None = None,
    rules_dirs: Iterable[str | Path] = (),
    uses: Iterable[str] | Mapping[str, Any] = (),
    format: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    options: ReadOptions | None = None,
) -> tuple[Report, RunData]:
    """Read a saved run (directory or log file) and diagnose it; the report and what was read
    (the signals a plot needs).

    ``uses``: techniques the run uses that the probes cannot see, as names or as a mapping
    name -> value (``{"gradient_penalty": 10.0}``); any name of a technique (alias) works.
    ``options``: how to read a foreign log (``--map``, ``--step``, grid tile size)."""
    config = config or load_config()
    rules = config.ruleset(tuple(Path(d) for d in rules_dirs))
    data = read_run(path, format=format, progress=progress, options=options)
    # config items may carry a setting too: uses = ["gradient_penalty=10"]
    configured = parse_uses(",".join(sorted(config.uses)), where=f"{config.origin}: key 'tool.gandoctor.uses'")
    declared = configured | (dict(uses) if isinstance(uses, Mapping) else dict.fromkeys(uses))
    context = data.context.merged(uses_context(declared, rules.remedies))
    context = context.merged(infer_from_log(data.signals, context))
    report = diagnose(
        data.signals, rules, context, source=str(path), warnings=data.warnings, mapped=getattr(data, "mapped", None), alerts=alerts_of(data.markers),
        ending=data.ending,
    )
    return report, data
