"""Recording: the Doctor and its probes, one module per probe family.

What runs when (defaults in :class:`Schedule`; the overhead budget may stretch the scheduled ones):

- every step: losses (kept on the device), the gradient norms captured by optimizer step
  pre-hooks (:mod:`.gradients`);
- every ``d_probe_every`` steps: D's outputs if the loop passes them, else a no-grad D forward
  on a slice of the real and fake batch, leaving D untouched (:mod:`.discriminator`);
- every ``weight_every`` steps: weight norms and D's largest singular value (:mod:`.weights`),
  and the optimizers' learning rates, a schedule noted in the context (:mod:`.optimizers`);
- every ``spectrum_every`` steps: the singular-value spectrum of D's matrices (:mod:`.spectrum`);
- every ``feature_every`` steps: features of a slice of real and fake samples; every
  ``sample_stats_every`` steps: diversity / coverage / precision / bin occupancy against the
  real data, with FID/KID and NDB when switched on (:mod:`.samples`);
- every ``latent_every`` steps: G on a fixed batch of latent codes (:mod:`.latents`).

Values stay on the device until a flush every ``flush_every`` steps moves them to the host in
one transfer, so there is no GPU-to-CPU synchronisation per step (:mod:`.doctor`). Under
torch.distributed (DDP) the flush also reduces the values across the ranks, and rank 0 alone
writes the run log (:mod:`.distributed`).
"""

from __future__ import annotations

from .base import Probe, ProbeHost, Schedule, StepInputs
from .doctor import Doctor

__all__ = ["Doctor", "Probe", "ProbeHost", "Schedule", "StepInputs"]
