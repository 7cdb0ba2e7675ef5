"""The overhead budget: stretch the intervals of the expensive probes so the doctor's share of
the training step's wall time stays under ``Schedule.budget``.

Times are taken with ``time.perf_counter`` and no device synchronisation: the training time of a
step is the wall time between two ``Doctor.step`` calls minus the doctor's own time in the
previous call; each probe's cost is the time its ``measure`` took. On a GPU both are host times
(launches, not kernels), which is what the training loop waits for unless it synchronises.

Every-step parts (losses, gradient norms, passed D outputs, the flush) are not stretched: their
time is the fixed share. What is left of the budget is shared out by doubling the interval of
the probe with the largest amortised cost (cost / interval) until the sum fits, up to
``MAX_STRETCH`` times the declared interval; intervals never go below the declared ones. Plans
start after ``WARMUP_STEPS`` steps, so short runs (and tests) keep the declared schedule.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from .base import Probe

MAX_STRETCH = 64
WARMUP_STEPS = 50
_STEP_ALPHA = 0.05  # EMA weight of one step's times
_PROBE_ALPHA = 0.25  # EMA weight of one probe measurement


class Budget:
    def __init__(self, share: float | None, probes: Sequence[Probe]) -> None:
        self.share = share
        self.base = {p.name: p.interval() for p in probes if p.schedule_field is not None}
        self.stretch = {name: 1 for name in self.base}
        self.cost = {p.name: p.cost / 1e3 for p in probes}  # seconds per measurement, starts at the declared cost
        self.train: float | None = None  # seconds per training step, without the doctor
        self.fixed = 0.0  # doctor seconds per step outside the stretchable probes
        self.steps = 0
        self._last_start: float | None = None
        self._last_own = 0.0

    def every(self, probe: Probe) -> int:
        """The probe's current interval (0 = off)."""
        base = probe.interval()
        return base * self.stretch.get(probe.name, 1)

    def probe_ran(self, name: str, seconds: float) -> None:
        old = self.cost.get(name, seconds)
        self.cost[name] = old + _PROBE_ALPHA * (seconds - old)

    def step_done(self, start: float, end: float, stretchable: float) -> None:
        """One ``Doctor.step`` call ran from ``start`` to ``end``, ``stretchable`` seconds of it in stretchable probes."""
        if self._last_start is not None:
            train = max(start - self._last_start - self._last_own, 0.0)
            self.train = train if self.train is None else self.train + _STEP_ALPHA * (train - self.train)
        fixed = max(end - start - stretchable, 0.0)
        self.fixed = fixed if self.steps == 0 else self.fixed + _STEP_ALPHA * (fixed - self.fixed)
        self._last_start, self._last_own = start, end - start
        self.steps += 1

    def amortised(self, stretch: Mapping[str, int]) -> float:
        return sum(self.cost[n] / (b * stretch[n]) for n, b in self.base.items() if b > 0)

    def plan(self) -> dict[str, int]:
        """Recompute the stretch factors; returns the ones that changed."""
        if self.share is None or self.train is None or self.steps < WARMUP_STEPS:
            return {}
        allowed = self.share * self.train - self.fixed
        stretch = {name: 1 for name in self.base}
        while self.amortised(stretch) > allowed:
            candidates = [n for n, b in self.base.items() if b > 0 and stretch[n] < MAX_STRETCH]
            if not candidates:
                break
            worst = max(candidates, key=lambda n: self.cost[n] / (self.base[n] * stretch[n]))
            stretch[worst] *= 2
        changed = {n: s for n, s in stretch.items() if s != self.stretch[n]}
        self.stretch = stretch
        return changed
