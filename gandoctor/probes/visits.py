"""Which probes a ``Doctor.step`` must look at: on most steps of a long run only the every-step
probes (losses, D's passed outputs, the loss form's capture), not the scheduled ones.

Looking at every probe at every step (is it switched off, its interval, its hook time, is it
due, arm its hook) cost about 30 us per step in Python, 2% of a tiny MLP GAN's step, although
no scheduled probe is due at most steps. A visit to the scheduled probes is needed only at a
step where one of them is due (``step % every == 0``), and, for a probe with hooks (``arms``:
the gradient taps), at the step before its due one (to arm the hook for the iteration it
measures) and at the due one itself (to disarm it). Between visits nothing of theirs would
change, so the result is what visiting every step gives, as long as steps increase; a step that
goes back (a resumed or restarted loop) is a full visit, and so is the step after the overhead
budget changed an interval.
"""

from __future__ import annotations

from typing import Sequence

from .base import Probe
from .budget import Budget


class Visits:
    def __init__(self, probes: Sequence[Probe], budget: Budget) -> None:
        self.all = tuple(probes)
        self.always = tuple(p for p in probes if p.schedule_field is None)
        self.scheduled = tuple(p for p in probes if p.schedule_field is not None)
        self.budget = budget
        self._revision = budget.revision
        self._last: int | None = None  # the step of the previous call
        self._next = 0  # the first step after the last visit that must visit the scheduled probes

    def at(self, step: int) -> tuple[Probe, ...]:
        """The probes to look at in this step, in their running order."""
        if self._last is not None and self._last < step < self._next and self._revision == self.budget.revision:
            self._last = step
            return self.always
        self._last, self._revision = step, self.budget.revision
        self._next = self._next_visit(step)
        return self.all

    def _next_visit(self, step: int) -> int:
        soonest: int | None = None
        for probe in self.scheduled:
            every = self.budget.every(probe)
            if every <= 0:
                continue
            due = (step // every + 1) * every
            # A hook is armed in the step before the iteration it measures.
            candidate = due - 1 if probe.arms and due - 1 > step else due
            soonest = candidate if soonest is None else min(soonest, candidate)
        return soonest if soonest is not None else 2**62  # nothing scheduled is on
