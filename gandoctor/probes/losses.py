"""Losses and the user's own values, every step, kept on the device."""

from __future__ import annotations

from .base import Probe, StepInputs, Values, scalar


class LossProbe(Probe):
    name = "losses"
    signals = ("loss.d", "loss.g", "user.*")
    cost = 0.01

    def measure(self, inputs: StepInputs) -> Values:
        values = {}
        for name, raw in (("loss.d", inputs.d_loss), ("loss.g", inputs.g_loss)):
            value = scalar(raw)
            if value is not None:
                values[name] = value
        for key, raw in inputs.extra.items():
            value = scalar(raw)
            if value is not None:
                values[f"user.{key.lower()}"] = value
        return values
