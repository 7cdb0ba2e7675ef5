"""Live diagnosis during training: findings reported as they appear, and opt-in actions on them.

A :class:`gandoctor.Doctor` holds a :class:`LiveMonitor` when asked for one of::

    Doctor(G, D, opt_g, opt_d, log_dir="runs/exp1",
           on_finding=print,                   # callables, each given every new Finding
           alerts=[my_sink],                   # AlertSink objects (on_finding / on_check)
           stop_on=("exploding_gradients",),   # modes, or "any": doctor.should_stop turns True
           raise_on_nonfinite=True,            # NonFiniteLossError at the first NaN/inf loss
           live_every=500,                     # steps between live diagnoses
           live_panel=True)                    # a rich panel of each mode's status (a terminal)

Live diagnosis is on by default (every ``DEFAULT_LIVE_EVERY`` steps, and never more than ~0.25% of
the wall time: a due check waits until ``LIVE_TIME_FACTOR`` times its last cost has passed);
``live_every=N`` sets the cadence exactly, ``live_every=0`` turns it off.

When it runs. Values reach the host once every ``Schedule.flush_every`` steps (no per-step
GPU->CPU sync). After a flush, the monitor diagnoses the run so far (:func:`gandoctor.diagnose.diagnose`
over the Doctor's bounded SignalLog, the same path as ``doctor.report()``) when ``live_every``
steps (default 500) have passed since the last diagnosis, rounded up to the next flush, or at
once when a flush brings the first non-finite loss, gradient norm, weight norm or D output (so a blow-up is reported at the
flush that saw it, not up to ``live_every`` steps later). ``close()`` runs no diagnosis, except
that one when its last flush brings the first non-finite value (a loop that breaks at its NaN).

Cost. A diagnosis runs on the host, in the training process, inside ``doctor.step()``; it costs
the same whatever the model or device and grows with the recorded steps up to the SignalLog's
capacity (4096 points per signal): measured with ``benchmarks/live.py`` on a shared 2-core CPU
(vectorised windowed statistics), about 0.03-0.1 s from a 500-step to a 5000-step log, the first
check also loading the rules (~0.03 s). At the default cadence that is about 0.1-0.2 ms per
training step. The overhead budget (``Schedule.budget``) does not count it.

What it does with a finding (reported once per (mode, rule) for the run, even if it clears and
comes back): one WARNING line on the logger ``gandoctor`` (mode, rule, onset step, top remedy);
a "last healthy step" marker in the run log (:class:`gandoctor.runlog.HealthyMarker`: the last
recorded step before the earliest onset seen so far, the checkpoint to roll back to); each
``on_finding`` callable and each sink's ``on_finding``; ``should_stop`` when its mode is in
``stop_on``. Every sink's ``on_check`` gets each live report.

Guarded like a probe: an exception in the diagnosis switches live diagnosis off, one in a callback
or sink switches that one off; each is reported once (logger warning and run-log event) and
training goes on, unless ``strict=True``. The training is bit-identical with and without it.
``raise_on_nonfinite=True`` is the one deliberate exception: :class:`gandoctor.errors.NonFiniteLossError`,
raised from the ``doctor.step()`` call whose flush brought the first non-finite ``loss.d`` or
``loss.g`` to the host, so up to ``flush_every - 1`` steps after the step it names
(``Schedule(flush_every=1)`` raises at that step, at the price of a sync every step). It is
raised after the live diagnosis of that flush, so the marker and the alerts are out first.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .errors import NonFiniteLossError
from .findings import MODES, Finding
from .probes.distributed import is_main_process
from .reporters.live_panel import LivePanel
from .runlog import HealthyMarker

if TYPE_CHECKING:
    from .probes.doctor import Doctor
    from .report import Report
    from .rules import RuleSet

__all__ = ["DEFAULT_LIVE_EVERY", "AlertSink", "FindingCallback", "HealthyMarker", "LiveMonitor", "LivePanel", "stop_modes"]

logger = logging.getLogger("gandoctor")

#: Steps between live diagnoses when ``live_every`` is not given.
DEFAULT_LIVE_EVERY = 500
#: At the default cadence a due check waits until at least this many times its last duration has
#: passed since it ended, so live diagnosis takes at most ~0.25% of the wall time on any loop (the
#: overhead budget's 5% is for the probes; at 20x, ~5%, a tiny MLP GAN paid 1.8% for live checks,
#: at 50x ~2%, at 100x 1%: 17 us of its 1.5 ms step; at 200x, 10 us of its 2.1 ms step, a tenth
#: of the doctor's whole time there). At 400x a 25 ms check on that MLP comes every ~10 s of
#: training; a model whose steps are slow still gets a check every ``live_every`` steps, and a
#: non-finite value is checked at the flush that brings it, whatever the cadence.
LIVE_TIME_FACTOR = 400.0
#: The losses ``raise_on_nonfinite`` watches.
LOSSES = ("loss.d", "loss.g")
#: Signals whose first NaN/inf means the run has blown up (what GD501 reads), so a diagnosis runs
#: at that flush instead of up to ``live_every`` steps later. Sample statistics are left out: some
#: are NaN by design (a first measurement has nothing to compare with).
BLOW_UP_PREFIXES = ("loss.", "grad_norm.", "weight_norm.", "d_out.")

FindingCallback = Callable[[Finding], None]


@runtime_checkable
class AlertSink(Protocol):
    """Where live findings go besides the log: a TensorBoard or W&B write-back, a panel, a pager."""

    def on_finding(self, finding: Finding, step: int) -> None:
        """Once per new finding (mode + rule); ``step`` is the doctor's current step."""
        ...

    def on_check(self, report: Report, step: int) -> None:
        """After every live diagnosis, with its report."""
        ...


def stop_modes(stop_on: Iterable[str]) -> frozenset[str]:
    """The modes ``stop_on`` names; ``"any"`` stands for all of them. Unknown names are an error."""
    names = [stop_on] if isinstance(stop_on, str) else list(stop_on)
    for name in names:
        if name != "any" and name not in MODES:
            raise ValueError(f"stop_on: unknown failure mode {name!r}; expected 'any' or one of {', '.join(MODES)}")
    return frozenset(MODES) if "any" in names else frozenset(names)


def _callbacks(on_finding: FindingCallback | Sequence[FindingCallback]) -> list[FindingCallback]:
    found = [on_finding] if callable(on_finding) else list(on_finding)
    for cb in found:
        if not callable(cb):
            raise TypeError(f"on_finding: expected a callable or a sequence of callables, got {type(cb).__name__}")
    return found


def _sinks(alerts: Sequence[AlertSink]) -> list[AlertSink]:
    found = list(alerts)
    for sink in found:
        if not isinstance(sink, AlertSink):
            raise TypeError(f"alerts: {type(sink).__name__} has no on_finding(finding, step) and on_check(report, step) methods")
    return found


#: The live monitors of Doctors not yet closed: where there are several (a CycleGAN's pair of
#: Doctors, one per G and D), each alert line names its Doctor's log.
_OPEN: weakref.WeakSet[LiveMonitor] = weakref.WeakSet()


def headline(finding: Finding, step: int, who: str = "") -> str:
    """The one log line for a new finding: mode, rule, onset, top remedy; ``who`` names the
    Doctor where several are open."""
    remedy = finding.remedies[0].title if finding.remedies else "none ranked"
    return (
        f"gandoctor{f' [{who}]' if who else ''}: {finding.mode} ({finding.rule} {finding.rule_name}) from step {finding.onset_step}, "
        f"seen at step {step}; top remedy: {remedy}"
    )


class LiveMonitor:
    """The Doctor's live side: cheap bookkeeping at each flush, a diagnosis when one is due."""

    def __init__(
        self,
        doctor: Doctor,
        callbacks: Sequence[FindingCallback] = (),
        sinks: Sequence[AlertSink] = (),
        stop_on: frozenset[str] = frozenset(),
        raise_on_nonfinite: bool = False,
        every: int | None = DEFAULT_LIVE_EVERY,
        owned: Sequence[AlertSink] = (),
    ) -> None:
        self._doctor = doctor
        self.callbacks, self.sinks, self.stop_on = tuple(callbacks), tuple(sinks), stop_on
        self.raise_on_nonfinite = raise_on_nonfinite
        self.every = every  # None: no diagnosis, only the non-finite check
        self._owned = tuple(owned)  # sinks the monitor made (the panel): it closes them
        # Guard names: a failing callback or sink is switched off alone, and named in disabled_probes.
        self._callback_names = [f"on_finding[{i}] {getattr(cb, '__qualname__', type(cb).__name__)}" for i, cb in enumerate(self.callbacks)]
        self._sink_names = [f"alert sink[{i}] {type(s).__name__}" for i, s in enumerate(self.sinks)]
        self.should_stop = False
        self.reported: dict[tuple[str, str], Finding] = {}
        self.markers: list[HealthyMarker] = []
        self.checks = 0
        self.last_report: Report | None = None
        self._rules: RuleSet | None = None  # every rule but those about the state a run ended in
        self._all_rules: RuleSet | None = None
        self._seen: int | None = None  # the last step a flush brought
        self._checked = -1  # the last step diagnosed
        self._urgent = False
        self._nonfinite_signals: set[str] = set()
        self._first_nonfinite_loss: tuple[int, str, float] | None = None
        self._raised = False
        self._earliest_onset: int | None = None
        self.adaptive = False  # the default cadence: a due check also waits for LIVE_TIME_FACTOR x its cost
        self._last_cost, self._last_end = 0.0, -math.inf
        self._steps_since_check = 0  # doctor.step calls since the last diagnosis ended
        _OPEN.add(self)

    def _name(self) -> str:
        """The Doctor's log folder, or its place among the open ones where it writes none."""
        writer = self._doctor._writer
        return str(writer.path.parent) if writer is not None else f"Doctor {sorted(id(m) for m in _OPEN).index(id(self)) + 1}"

    @classmethod
    def attach(
        cls,
        doctor: Doctor,
        on_finding: FindingCallback | Sequence[FindingCallback] = (),
        alerts: Sequence[AlertSink] = (),
        stop_on: Iterable[str] = (),
        raise_on_nonfinite: bool = False,
        live_every: int | None = None,
        live_panel: bool = False,
    ) -> LiveMonitor | None:
        """The monitor for the Doctor's keyword arguments, or None when none asks for one."""
        callbacks, sinks, stops = _callbacks(on_finding), _sinks(alerts), stop_modes(stop_on)
        if live_every is not None and (not isinstance(live_every, int) or isinstance(live_every, bool) or live_every < 0):
            raise ValueError(f"live_every must be a number of steps (0 = no live diagnosis) or None, got {live_every!r}")
        owned: list[AlertSink] = []
        if live_every == 0:
            if callbacks or sinks or stops or live_panel:
                raise ValueError("live_every=0 turns live diagnosis off, but on_finding, alerts, stop_on or live_panel need it")
            return cls(doctor, raise_on_nonfinite=True, every=None) if raise_on_nonfinite else None
        if live_panel:
            owned.append(LivePanel())
        monitor = cls(doctor, callbacks, sinks + owned, stops, raise_on_nonfinite, live_every or DEFAULT_LIVE_EVERY, owned)
        monitor.adaptive = live_every is None
        return monitor

    def time_share(self) -> float:
        """The share of the training's time its checks may take: 1 / LIVE_TIME_FACTOR at the
        default cadence (the overhead budget keeps it aside), 0 where no bound is known
        (``live_every`` set: checks at a fixed interval, whatever they cost)."""
        return 1.0 / LIVE_TIME_FACTOR if self.adaptive and self.every is not None else 0.0

    # -- called by the Doctor --------------------------------------------------------------------
    def observe(self, step: int, values: Mapping[str, float]) -> None:
        """One step's values as they reach the host (inside the flush): note the first non-finite ones."""
        if all(map(math.isfinite, values.values())):
            return
        for name, value in values.items():
            if math.isfinite(value):
                continue
            if name not in self._nonfinite_signals and name.startswith(BLOW_UP_PREFIXES):
                self._nonfinite_signals.add(name)
                self._urgent = True
            if name in LOSSES and self._first_nonfinite_loss is None:
                self._first_nonfinite_loss = (step, name, value)

    def after_step(self, step: int) -> None:
        """After each ``doctor.step()``: a diagnosis if a flush brought values and one is due; the
        one deliberate exception, outside every guard, when asked for."""
        self._steps_since_check += 1
        last = self._doctor.signals.last_step
        if last is None or last == self._seen:
            return
        self._seen = last
        if self.every is not None and (self._urgent or (last - self._checked >= self.every and self._affordable())):
            self._run_check(step, last)
        found = self._first_nonfinite_loss
        if self.raise_on_nonfinite and found is not None and not self._raised:
            self._raised = True
            raise NonFiniteLossError(found[0], found[1], found[2], step)

    def at_close(self, step: int) -> None:
        """At ``Doctor.close``, after the last flush: a last check of the records no check has
        read, so the callbacks and sinks hear of what the run ended with: a blow-up the loop
        stopped at before a flush brought it to the host (a loop that breaks at its first NaN, as
        the README asks, ends before the next flush), and any finding of a run shorter than the
        check interval (a 300-step run was never checked: its alert sinks heard nothing while its
        report held two findings) or of its last stretch. The rules about the state the run ended
        in (``final_only``: GD307's collapse at the end, GD104's separation) are judged there too:
        the run has ended, and the findings they make in the report reach the callbacks and sinks."""
        last = self._doctor.signals.last_step
        if self.every is not None and last is not None:
            # A last step already checked is not shown to the sinks' on_check twice.
            self._run_check(step, last, final=True, show_check=self._urgent or last > self._checked)

    def _run_check(self, step: int, last: int, final: bool = False, show_check: bool = True) -> None:
        """One guarded diagnosis of the steps up to ``last``, timed for the adaptive cadence."""
        self._urgent = False
        self._checked = last
        start = time.perf_counter()
        self._doctor._guard("live", lambda: self.check(step, final, show_check))
        self._last_end = time.perf_counter()
        self._last_cost = self._last_end - start
        self._steps_since_check = 0

    def _affordable(self) -> bool:
        """Whether the training since the last check took LIVE_TIME_FACTOR times that check's cost:
        in the run's own step time once the overhead budget has estimated it (wall time also runs
        while other work shares the process, e.g. a second model trained in turns), before that
        in wall time."""
        if not self.adaptive:
            return True
        per_step = self._doctor._budget.seconds_per_step()
        if per_step is None:
            return time.perf_counter() - self._last_end >= LIVE_TIME_FACTOR * self._last_cost
        return self._steps_since_check * per_step >= LIVE_TIME_FACTOR * self._last_cost

    def close(self) -> None:
        _OPEN.discard(self)
        for name, sink in zip(self._sink_names, self.sinks):
            close = getattr(sink, "close", None)
            if any(sink is own for own in self._owned) and callable(close):
                self._doctor._guard(name, close)

    # -- the diagnosis ---------------------------------------------------------------------------
    def check(self, step: int, final: bool = False, show_check: bool = True) -> Report:
        """Diagnose what was recorded so far and act on what is new (see the module's docstring);
        ``final``: the run has ended, and every rule is judged; ``show_check``: the sinks' on_check
        hears of it (new findings reach them either way)."""
        from .diagnose import diagnose  # the diagnosis side, only once a check is due

        doctor = self._doctor
        if self._all_rules is None or self._rules is None:
            self._all_rules = doctor.config.ruleset(doctor._rules_dirs)
            # A rule about the state a run ended in (GD307) says nothing mid-run: a young G is
            # still spreading out there, which is what GD302's rising-diversity exemption is for.
            self._rules = replace(self._all_rules, rules=tuple(r for r in self._all_rules.rules if not r.params["final_only"]))
        source = str(doctor._writer.path) if doctor._writer is not None else ""
        report = diagnose(
            doctor.signals, self._all_rules if final else self._rules, doctor.context, source=source, warnings=tuple(doctor.disabled_probes.values()), strict=doctor.strict
        )
        self.checks += 1
        self.last_report = report
        new = [f for f in report.findings if (f.mode, f.rule) not in self.reported]
        for finding in new:
            self.reported[(finding.mode, finding.rule)] = finding
        if new:
            self._mark(report, new, step)
            self.should_stop = self.should_stop or any(f.mode in self.stop_on for f in new)  # every rank stops
        if not is_main_process():  # under DDP the ranks hold the same reduced values: rank 0 alone speaks, as it alone writes the log
            return report
        who = self._name() if len(_OPEN) > 1 else ""
        for finding in new:
            logger.warning("%s", headline(finding, step, who))
        for finding in new:
            for name, callback in zip(self._callback_names, self.callbacks):
                doctor._guard(name, partial(callback, finding))
            for name, sink in zip(self._sink_names, self.sinks):
                doctor._guard(name, partial(sink.on_finding, finding, step))
        for name, sink in zip(self._sink_names, self.sinks if show_check else ()):
            doctor._guard(name, partial(sink.on_check, report, step))
        return report

    def _mark(self, report: Report, new: Sequence[Finding], step: int) -> None:
        # The rollback point is before the first sign (a burst before the NaN), not the event.
        onsets = [f.first_seen_step for f in report.findings] + ([self._earliest_onset] if self._earliest_onset is not None else [])
        self._earliest_onset = onset = min(onsets)
        marker = HealthyMarker(step, self._step_before(onset), onset, tuple(f.mode for f in new), tuple(f.rule for f in new),
                               tuple(f.onset_step for f in new))
        self.markers.append(marker)
        writer = self._doctor._writer
        if writer is not None:
            self._doctor._guard("writer", lambda: writer.write_marker(marker))

    def _step_before(self, onset: int) -> int | None:
        """The last recorded step before ``onset`` (the losses first: they are recorded every step)."""
        signals = self._doctor.signals
        names = [n for n in LOSSES if n in signals] or signals.names()
        best: int | None = None
        for name in names:
            view = signals.get(name)
            if view is None:
                continue
            earlier = view.steps[view.steps < onset]
            if earlier.size and (best is None or int(earlier[-1]) > best):
                best = int(earlier[-1])
        return best
