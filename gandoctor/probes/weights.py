"""Weight norms of G and D, and the largest singular value over D's matrices (power iteration)."""

from __future__ import annotations

import torch

from .base import Probe, ProbeHost, StepInputs, Values


class WeightProbe(Probe):
    name = "weights"
    schedule_field = "weight_every"
    signals = ("weight_norm.d", "weight_norm.g", "sigma_max.d")
    cost = 0.5

    def __init__(self, host: ProbeHost) -> None:
        super().__init__(host)
        self._u: dict[str, torch.Tensor] = {}  # power-iteration vectors, kept between measurements

    def measure(self, inputs: StepInputs) -> Values:
        values: dict[str, torch.Tensor | float] = {}
        for role, module in (("d", self.host.discriminator), ("g", self.host.generator)):
            params = [p.detach() for p in module.parameters()]
            if params:
                values[f"weight_norm.{role}"] = torch.linalg.vector_norm(torch.stack([n.float() for n in torch._foreach_norm(params)]))
        sigmas = []
        for name, p in self.host.discriminator.named_parameters():
            if p.dim() < 2 or name.endswith("bias"):
                continue
            w = p.detach().float().reshape(p.shape[0], -1)
            u = self._u.get(name)
            if u is None or u.shape[0] != w.shape[0] or u.device != w.device:
                u = torch.randn(w.shape[0], generator=self.host.rng).to(w.device)
                u = u / (u.norm() + 1e-12)
            for _ in range(self.host.schedule.power_iterations):
                v = w.t() @ u
                v = v / (v.norm() + 1e-12)
                u = w @ v
                u = u / (u.norm() + 1e-12)
            self._u[name] = u
            sigmas.append(u @ w @ v)
        if sigmas:
            values["sigma_max.d"] = torch.stack(sigmas).max()
        return values
