"""The overhead budget: stretch the intervals of the expensive probes so the doctor's share of
the training step's wall time stays under ``Schedule.budget``.

Times are taken with ``time.perf_counter`` and no device synchronisation: the training time of a
step is the wall time between two ``Doctor.step`` calls minus the doctor's own time in the
previous call and minus the time its optimizer hooks took; a probe's cost is the time its
``measure`` (and its hooks) took. On a GPU these are host times (launches, not kernels), which
is what the training loop waits for unless it synchronises. Each estimate is a median (of the
probe's last measurements; of the steps since the last plan), so a descheduled process or a
garbage collection does not count as a probe's cost.

Parts that run every step and are not scheduled (losses, the flush) are the fixed share; the
live checks' share (``reserved``: paced to 1/400 of the training's time) is kept aside, and the
plan aims at ``HEADROOM`` of the budget: host timers miss what the doctor's work costs the
training step that follows it (caches and allocator state it disturbs), and the doctor at
exactly its budget by its own timers measured 1.056x on the tiny MLP benchmark against the 1.05x
a 5% budget promises. What is left is shared out by doubling the interval of the probe
with the largest amortised cost (cost / interval) until the sum fits, up to each probe's
``max_stretch`` times its declared interval; intervals never go below the declared ones. Plans
start after ``WARMUP_STEPS`` steps: runs up to that length (CI smoke runs, the demo, the short
runs a diagnosis must still judge) are recorded at the declared intervals, in full detail; the
budget is for the long runs, where the overhead adds up. 5000 steps, the longest runs the rules
were calibrated on, all recorded at the declared intervals: so a default Doctor on a run of up
to 5000 steps records what the rules were fitted and measured on, whatever the host's speed (with
plans from step 2000, a tiny model's probes ran at their caps from there on a fast host and not
on a slow one). Measured on two sets of 60 new 5000-step MLP runs, each trained once and recorded
both ways, the effect on detection was within noise (live macro-F1 0.81 with plans from step
2000 against 0.83 at the declared intervals on one, 0.79 against 0.77 on the other). On a step of
1 ms the 3000 more steps at full detail cost about 0.6 s.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Mapping, Sequence

from .base import Probe

WARMUP_STEPS = 5000
HEADROOM = 0.9  # the share of the budget a plan fills (see above)
_RECENT = 9  # measurements per probe behind its median cost
_PLAN_ALPHA = 0.5  # weight of the newest plan window in the per-step estimates


class Budget:
    def __init__(self, share: float | None, probes: Sequence[Probe], reserved: float = 0.0) -> None:
        self.share = share
        self.reserved = reserved  # share of the training's time kept aside (the live checks')
        self.base = {p.name: p.interval() for p in probes if p.schedule_field is not None}
        self.cap = {p.name: p.max_stretch for p in probes}
        self.stretch = {name: 1 for name in self.base}
        self._every = {p.name: p.interval() for p in probes}  # per-step lookups; refreshed by plan()
        self._recent = {p.name: deque([p.cost / 1e3], maxlen=_RECENT) for p in probes}  # seconds; the declared cost first
        self._median: dict[str, float] = {}  # cost() of the probes that have not run since it was taken
        self.train: float | None = None  # seconds per training step, without the doctor
        self.fixed = 0.0  # doctor seconds per step outside the scheduled probes
        self.steps = 0
        self._window_train: list[float] = []
        self._window_fixed: list[float] = []
        self._window_flush = 0.0
        self._last_start: float | None = None
        self._last_own = 0.0
        self.revision = 0  # counts the plans that changed an interval

    def cost(self, name: str) -> float:
        """Median seconds per measurement of a probe."""
        # Kept until the probe runs again: a plan (every flush) reads every probe's cost, and most
        # have not run since the last one.
        cost = self._median.get(name)
        if cost is None:
            cost = self._median[name] = statistics.median(self._recent[name])
        return cost

    def seconds_per_step(self) -> float | None:
        """Wall seconds of one training step with the doctor's fixed share, once estimated (at the
        first flush), else None."""
        return None if self.train is None else self.train + self.fixed

    def every(self, probe: Probe) -> int:
        """The probe's current interval (0 = off)."""
        return self._every[probe.name]

    def probe_ran(self, name: str, seconds: float) -> None:
        recent = self._recent.setdefault(name, deque(maxlen=_RECENT))
        recent.append(seconds)
        self._median.pop(name, None)

    def step_done(self, start: float, end: float, scheduled: float, hooks: float = 0.0) -> None:
        """A ``Doctor.step`` call ran from ``start`` to ``end``; ``scheduled`` seconds of it in
        scheduled probes, ``hooks`` seconds in their hooks during the training step before it."""
        if self._last_start is not None:
            self._window_train.append(max(start - self._last_start - self._last_own - hooks, 0.0))
        self._window_fixed.append(max(end - start - scheduled, 0.0))
        self._last_start, self._last_own = start, end - start
        self.steps += 1

    def flush_ran(self, seconds: float) -> None:
        """A flush (inside a step) took ``seconds``: a fixed cost, spread over the steps it serves."""
        self._window_flush += seconds

    def amortised(self, stretch: Mapping[str, int]) -> float:
        return sum(self.cost(n) / (b * stretch[n]) for n, b in self.base.items() if b > 0)

    def estimated_share(self) -> float | None:
        """The doctor's estimated share of a training step at the current intervals (fixed part,
        scheduled probes and the reserved live checks' share), once a step time is known."""
        if not self.train:
            return None
        return (self.fixed + self.amortised(self.stretch)) / self.train + self.reserved

    def plan_message(self, intervals: str) -> str:
        """The run log's note of a new plan: the intervals, the doctor's estimated share, and where
        the share stays over the budget with every probe at its longest interval, that it does."""
        share, train = self.estimated_share(), self.train
        if share is None or train is None or self.share is None:
            return f"overhead budget: {intervals} steps"
        at_caps = all(self.stretch[n] >= self.cap[n] for n in self.base if self.base[n] > 0)
        over = share > self.share and at_caps
        tail = f"; over it with every probe at its longest interval, the every-step part alone {self.fixed / train:.1%}" if over else ""
        return f"overhead budget: {intervals} steps (the doctor about {share:.1%} of a training step, budget {self.share:.0%}{tail})"

    def _update_estimates(self) -> None:
        # Medians leave out the flush step (one in flush_every): its time is added back, spread out.
        flush = self._window_flush / len(self._window_fixed) if self._window_fixed else 0.0
        for window, attr, extra in ((self._window_train, "train", 0.0), (self._window_fixed, "fixed", flush)):
            if window:
                new = statistics.median(window) + extra
                old = getattr(self, attr)
                setattr(self, attr, new if old is None or self.steps <= len(window) else old + _PLAN_ALPHA * (new - old))
                window.clear()
        self._window_flush = 0.0

    def plan(self) -> dict[str, int]:
        """Recompute the stretch factors (at each flush); returns the ones that changed."""
        self._update_estimates()
        if self.share is None or self.train is None or self.steps < WARMUP_STEPS:
            return {}
        allowed = (self.share * HEADROOM - self.reserved) * self.train - self.fixed
        stretch = {name: 1 for name in self.base}
        # Each probe's median cost once per plan (this runs at every flush), then updated per doubling.
        per_step = {n: self.cost(n) / b for n, b in self.base.items() if b > 0}
        total = sum(per_step.values())
        while total > allowed:
            candidates = [n for n in per_step if stretch[n] < self.cap[n]]
            if not candidates:
                break
            worst = max(candidates, key=per_step.__getitem__)
            stretch[worst] *= 2
            total -= per_step[worst] / 2
            per_step[worst] /= 2
        changed = {n: s for n, s in stretch.items() if s != self.stretch[n]}
        self.revision += bool(changed)
        self.stretch = stretch
        self._every.update({n: self.base[n] * s for n, s in stretch.items()})
        return changed
