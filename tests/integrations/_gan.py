"""A tiny GAN on a ring of 8 Gaussians, shared by the integration tests (CPU, seconds)."""

from __future__ import annotations

import math

import torch
from torch import nn

Z_DIM = 4


def ring(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=generator)
    angle = 2 * math.pi * k.float() / 8
    return torch.stack([2 * torch.cos(angle), 2 * torch.sin(angle)], dim=1) + 0.05 * torch.randn(n, 2, generator=generator)


def generator() -> nn.Module:
    return nn.Sequential(nn.Linear(Z_DIM, 32), nn.ReLU(), nn.Linear(32, 2))


def discriminator() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))


def dataset(n: int, seed: int = 0) -> torch.utils.data.TensorDataset:
    return torch.utils.data.TensorDataset(ring(n, torch.Generator().manual_seed(seed)))
