"""Weight norms of G and D, and the largest singular value over D's matrices (power iteration)."""

from __future__ import annotations

import torch

from .base import Probe, ProbeHost, StepInputs, Values


def _norm(module: torch.nn.Module) -> torch.Tensor | None:
    params = [p.detach() for p in module.parameters() if not torch.nn.parameter.is_lazy(p)]
    return torch.linalg.vector_norm(torch.stack([n.float() for n in torch._foreach_norm(params)])) if params else None


class WeightProbe(Probe):
    """``weight_growth.*`` compares each norm with the one the Doctor saw when it was made, before
    training's first update: the first record comes after it, and at a rate of 5 that update alone
    grew a CycleGAN's D 250-fold, so growth read from the run's own lowest record missed it."""

    name = "weights"
    schedule_field = "weight_every"
    signals = ("weight_norm.d", "weight_norm.g", "weight_growth.d", "weight_growth.g", "sigma_max.d")
    cost = 0.5

    def __init__(self, host: ProbeHost) -> None:
        super().__init__(host)
        self._u: dict[str, torch.Tensor] = {}  # power-iteration vectors, kept between measurements
        # On the device, no sync: two numbers; none for a lazy module, whose parameters have no
        # values before its first forward.
        self._initial = {
            role: None if any(torch.nn.parameter.is_lazy(p) for p in module.parameters()) else _norm(module)
            for role, module in (("d", host.discriminator), ("g", host.generator))
        }

    def measure(self, inputs: StepInputs) -> Values:
        values: dict[str, torch.Tensor | float] = {}
        for role, module in (("d", self.host.discriminator), ("g", self.host.generator)):
            norm = _norm(module)
            if norm is not None:
                values[f"weight_norm.{role}"] = norm
                initial = self._initial.get(role)
                if initial is not None and initial.device == norm.device:  # not where the model moved since
                    growth = torch.log10(norm / initial.clamp_min(1e-30))
                    values[f"weight_growth.{role}"] = torch.where(initial > 0, growth, torch.full_like(growth, float("nan")))
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
