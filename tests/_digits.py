"""A tiny real GAN on sklearn's 8x8 digits with the doctor attached (CPU, about 2 s): G learns
100 times slower than D, so D dominates from about step 150. The doctor saves G's outputs for
its fixed latent codes every 50 steps (``samples`` events in the run log)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import gandoctor
from gandoctor.probes import Schedule

GRID_EVERY = 50


def record(log_dir: str | Path, steps: int = 600, batch: int = 64, seed: int = 0) -> None:
    from sklearn.datasets import load_digits

    torch.manual_seed(seed)
    x = (torch.tensor(load_digits().images, dtype=torch.float32) / 8.0 - 1.0)[:, None]  # (n, 1, 8, 8) in [-1, 1]
    G = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)))
    D = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-5, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(seed)
    schedule = Schedule(budget=None, latent_every=GRID_EVERY, sample_grid_every=1)
    with gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, log_dir=log_dir, d_output="logit", schedule=schedule) as doctor:
        for _ in range(steps):
            real = x[torch.randint(0, len(x), (batch,), generator=gen)]
            fake = G(torch.randn(batch, 16))
            d_real, d_fake = D(real), D(fake.detach())
            d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_loss = bce(D(fake), torch.ones_like(d_fake))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake, d_real=d_real, d_fake=d_fake)
