"""The optimizers' learning rates as training goes: a learning-rate schedule is noted in the context.

The context reads each optimizer's settings when the Doctor is made; a scheduler made after it
(``torch.optim.lr_scheduler.*``) or one that has since decayed the rate would leave the remedies
quoting a rate the run no longer uses ("D's lr is 0.001: try 0.0005" after a cosine schedule took
it to 1e-5) and suggesting a schedule the run already has. Every ``weight_every`` steps this probe
reads the rate of the parameter group that trains each network (a few dictionary lookups: nothing
on the device); when it has changed, or a PyTorch scheduler has marked the group (its
``initial_lr``), the context gets the flag ``lr_schedule`` and the current ``lr_d`` / ``lr_g``,
written to the run log as the context's other updates are. The rates are also recorded as
signals (``opt.lr_d``, ``opt.lr_g``), so a finding's remedies quote the rate the run had at the
finding's onset, not the one a schedule has decayed it to since.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..context import training_group
from .base import Probe, ProbeHost, StepInputs, Values


class OptimizerProbe(Probe):
    name = "optimizers"
    schedule_field = "weight_every"
    signals = ("opt.lr_d", "opt.lr_g")
    cost = 0.005

    def __init__(self, host: ProbeHost, optimizers: dict[str, tuple[torch.optim.Optimizer, nn.Module]]) -> None:
        super().__init__(host)
        self._optimizers = optimizers
        # A rate set once between Doctor(...) and the first step (rosinality's StyleGAN calls its
        # adjust_lr() there) is the run's rate, not a schedule: the first reading only takes it.
        self._read_before = False

    def measure(self, inputs: StepInputs) -> Values:
        return self._read()

    def final(self, step: int) -> Values:
        # The rates training ended with, in the context (whatever the schedule did since the last
        # reading); not as a record of their own: the last step's record holds the sample statistics.
        self._read()
        return {}

    def _read(self) -> Values:
        context = self.host.context()
        flags: set[str] = set()
        values: dict[str, Any] = {}
        rates: dict[str, torch.Tensor | float] = {}
        for role, (opt, module) in self._optimizers.items():
            group = training_group(opt, module)
            lr = group.get("lr")
            if not isinstance(lr, (int, float)) or isinstance(lr, bool):  # a tensor rate: read it, and it syncs
                continue
            rates[f"opt.lr_{role}"] = float(lr)
            noted = context.values.get(f"lr_{role}")  # the rate the context holds: at Doctor(...) or the last change
            if "initial_lr" in group or (self._read_before and isinstance(noted, float) and lr != noted):
                flags.add("lr_schedule")
            if noted != float(lr):
                values[f"lr_{role}"] = float(lr)
        self._read_before = True
        if flags - context.flags or values:
            self.host.note_context(flags, values)
        return rates
