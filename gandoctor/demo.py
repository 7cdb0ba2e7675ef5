"""The demo: train tiny GANs on a ring of 8 Gaussians on CPU with gandoctor attached.

Three runs by default: a sound recipe, one that makes G collapse, and one where G outruns D, so
the reader sees a quiet report and diagnoses with evidence and remedies.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from .probes import Doctor
from .runlog import LOG_NAME


@dataclass(frozen=True)
class Recipe:
    name: str
    lr_g: float
    lr_d: float
    betas: tuple[float, float]
    z_dim: int
    hidden: int


RECIPES = {
    "healthy": Recipe("healthy", lr_g=1e-3, lr_d=1e-3, betas=(0.5, 0.999), z_dim=8, hidden=128),
    # D twenty times faster than G: G flees to the one mode D rates best and stays there.
    "collapse": Recipe("collapse", lr_g=1e-3, lr_d=2e-2, betas=(0.5, 0.999), z_dim=8, hidden=128),
    # G ten times faster than D with heavy momentum: D stops being able to tell, samples stay off the data.
    "unbalanced": Recipe("unbalanced", lr_g=3e-3, lr_d=2e-4, betas=(0.9, 0.999), z_dim=2, hidden=64),
}


def ring_of_gaussians(n: int, generator: torch.Generator, modes: int = 8, radius: float = 2.0, std: float = 0.05) -> torch.Tensor:
    k = torch.randint(0, modes, (n,), generator=generator)
    angle = 2 * math.pi * k.float() / modes
    centres = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    return centres + std * torch.randn(n, 2, generator=generator)


def mlp(inp: int, out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out))


def train(recipe: Recipe, steps: int, log_dir: str | Path, seed: int = 0, batch: int = 128) -> Doctor:
    torch.manual_seed(seed)
    data_gen = torch.Generator().manual_seed(seed + 1)
    G, D = mlp(recipe.z_dim, 2, recipe.hidden), mlp(2, 1, recipe.hidden)
    opt_g = torch.optim.Adam(G.parameters(), lr=recipe.lr_g, betas=recipe.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=recipe.lr_d, betas=recipe.betas)
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    doctor = Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, log_dir=log_dir, d_output="logit")
    for _ in range(steps):
        real = ring_of_gaussians(batch, data_gen)
        fake = G(torch.randn(batch, recipe.z_dim))
        d_real, d_fake = D(real), D(fake.detach())
        d_loss = bce(d_real, ones) + bce(d_fake, zeros)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = bce(D(fake), ones)  # non-saturating generator loss
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake, d_real=d_real, d_fake=d_fake)
    return doctor


def run_demo(scenario: str, steps: int, log_dir: str, console: Console) -> int:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    names = list(RECIPES) if scenario == "all" else [scenario]
    for name in names:
        recipe = RECIPES[name]
        run_dir = Path(log_dir) / name
        console.print(f"[bold]Training a tiny GAN on a ring of 8 Gaussians — recipe '{name}' ({steps} steps, CPU)…[/bold]")
        # The demo's own log, replaced each time: a run log appends (a resumed run keeps its
        # history), so a second demo would leave `analyze` warning that an earlier run is ignored.
        (run_dir / LOG_NAME).unlink(missing_ok=True)
        start = time.perf_counter()
        with train(recipe, steps, run_dir) as doctor:
            report = doctor.report()
        console.print(f"[dim]trained in {time.perf_counter() - start:.1f}s; run log: {run_dir / LOG_NAME}[/dim]")
        console.print(report)
        console.print(f"[dim]Read it back: gandoctor analyze {run_dir}   ·   CI gate: gandoctor gate {run_dir}[/dim]\n")
    return 0
