"""Which probes a ``Doctor.step`` must look at: on most steps of a long run only the every-step
probes (losses, D's passed outputs, the loss form's capture), not the scheduled ones.

Looking at every probe at every step (is it switched off, its interval, its hook time, is it
due, arm its hook) cost about 30 us per step in Python, 2% of a tiny MLP GAN's step, although
no scheduled probe is due at most steps. A visit to the scheduled probes is needed only at a
step where one of them is due (``step % every == 0``), and, for a probe with hooks (``arms``:
the gradient taps), at the step before its due one (to arm the hook for the iteration it
measures) and at the due one itself (to disarm it); and such a visit looks at those probes
only, not at the other scheduled ones. Between its visits nothing of a probe's would change, so
the result is what visiting every probe every step gives, as long as steps increase; a step that
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
        self._visit = {p.name: 0 for p in self.scheduled}  # each scheduled probe's next step to look at
        self._next = 0  # the soonest of those

    def at(self, step: int) -> tuple[Probe, ...]:
        """The probes to look at in this step, in their running order."""
        if self._last is not None and self._last < step < self._next and self._revision == self.budget.revision:
            self._last = step
            return self.always
        full = self._last is None or step <= self._last or self._revision != self.budget.revision
        self._last, self._revision = step, self.budget.revision
        # The scheduled probes whose step has come (all of them after a step back or a new plan):
        # the others would only find that they are not due (a third of a 1.5 ms step's doctor
        # time went to looking at all ten whenever the gradient taps needed arming).
        looked = tuple(p for p in self.all if p.schedule_field is None or full or self._visit[p.name] <= step)
        for probe in looked:
            if probe.schedule_field is not None:
                self._visit[probe.name] = self._next_visit(probe, step)
        self._next = min(self._visit.values(), default=2**62)
        return looked

    def _next_visit(self, probe: Probe, step: int) -> int:
        every = self.budget.every(probe)
        if every <= 0:
            return 2**62  # off
        due = (step // every + 1) * every
        # A hook is armed in the step before the iteration it measures.
        return due - 1 if probe.arms and due - 1 > step else due
