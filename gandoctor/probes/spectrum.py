"""The whole singular-value spectrum of each D matrix, summarised as normalised stable and
effective rank (Liu et al. 2019's "spectral collapse")."""

from __future__ import annotations

import torch

from .base import Probe, StepInputs, Values, layer_of


class SpectrumProbe(Probe):
    """Normalised stable rank (sum s^2 / s_max^2) and effective rank (exp entropy of s / sum s),
    each divided by the matrix's full rank: 1 = flat spectrum, 1/rank = one direction left."""

    name = "spectrum"
    schedule_field = "spectrum_every"
    signals = ("spectrum.d.stable_rank", "spectrum.d.effective_rank", "spectrum.d.layer.*")
    cost = 5.0

    def measure(self, inputs: StepInputs) -> Values:
        values: dict[str, torch.Tensor | float] = {}
        stable, effective = [], []
        for name, p in self.host.discriminator.named_parameters():
            if p.dim() < 2 or name.endswith("bias") or p.numel() > self.host.schedule.spectrum_max_elements:
                continue
            w = p.detach().float().reshape(p.shape[0], -1)
            if not bool(torch.isfinite(w).all()):  # a blown-up D is GD501's finding, not a probe fault
                continue
            s = torch.linalg.svdvals(w)
            full = s.shape[0]
            top = s[0].clamp_min(1e-12)
            sr = (s * s).sum() / (top * top) / full
            q = s / s.sum().clamp_min(1e-12)
            er = torch.exp(-(q * torch.log(q.clamp_min(1e-30))).sum()) / full
            stable.append(sr)
            effective.append(er)
            values[f"spectrum.d.layer.{layer_of(name)}"] = sr
        if stable:
            values["spectrum.d.stable_rank"] = torch.stack(stable).mean()
            values["spectrum.d.effective_rank"] = torch.stack(effective).mean()
        return values
