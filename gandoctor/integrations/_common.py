"""What every adapter needs: find G and D on a model object, tell which optimizer steps which
network, and map a logged metric name onto the Doctor's ``d_loss`` / ``g_loss``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..errors import GanDoctorError

Role = Literal["g", "d", "both", "neither"]

GENERATOR_NAMES: tuple[str, ...] = ("generator", "G", "netG", "gen", "g_model")
DISCRIMINATOR_NAMES: tuple[str, ...] = ("discriminator", "D", "netD", "critic", "disc", "d_model")


class IntegrationError(GanDoctorError):
    """An adapter cannot find what the Doctor needs (G, D, optimizers) in the user's objects."""


def _signal_aliases() -> Mapping[str, str]:
    # The alias table lives with the tabular reader today; the redesign moves it into signals.py.
    from .. import signals

    table: Mapping[str, str] | None = getattr(signals, "ALIASES", None)
    if table is None:
        from ..readers.tabular import ALIASES

        table = ALIASES
    return table


def unwrap_module(module: nn.Module) -> nn.Module:
    """The user's own module under DDP/DataParallel (``.module``) and torch.compile (``._orig_mod``)."""
    for _ in range(4):
        inner = getattr(module, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            module = inner
            continue
        inner = getattr(module, "module", None)
        if isinstance(inner, nn.Module) and type(module).__name__ in ("DistributedDataParallel", "DataParallel"):
            module = inner
            continue
        break
    return module


def unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside Lightning's / Accelerate's wrappers (both keep it in ``.optimizer``).
    Accelerate's wrapper is itself an Optimizer subclass, so the inner one is preferred when present."""
    opt = optimizer
    for _ in range(4):
        inner = getattr(opt, "optimizer", None)
        if isinstance(inner, torch.optim.Optimizer) and inner is not opt:
            opt = inner
            continue
        if isinstance(opt, torch.optim.Optimizer):
            return opt
        break
    raise IntegrationError(
        f"expected a torch.optim.Optimizer (or a wrapper holding one in .optimizer), got {type(optimizer).__name__}"
    )


def find_module(owner: Any, names: str | Sequence[str], role: str) -> tuple[str, nn.Module]:
    """The first attribute of ``owner`` among ``names`` that is an ``nn.Module``."""
    candidates = (names,) if isinstance(names, str) else tuple(names)
    for name in candidates:
        value = getattr(owner, name, None)
        if isinstance(value, nn.Module):
            return name, value
    raise IntegrationError(
        f"{type(owner).__name__} has no {role} module: looked for attribute(s) {', '.join(candidates)}; "
        f"pass {role}='<attribute name>' to say which one it is"
    )


def optimizer_role(optimizer: torch.optim.Optimizer, generator: nn.Module, discriminator: nn.Module) -> Role:
    """Which network an optimizer steps, by the modules its parameters belong to."""
    g_ids = {id(p) for p in generator.parameters()}
    d_ids = {id(p) for p in discriminator.parameters()}
    owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
    in_g, in_d = bool(owned & g_ids), bool(owned & d_ids)
    if in_g and in_d:
        return "both"
    return "g" if in_g else "d" if in_d else "neither"


@dataclass(frozen=True)
class OptimizerMatch:
    g: torch.optim.Optimizer | None
    d: torch.optim.Optimizer | None
    notes: tuple[str, ...]


def match_optimizers(
    optimizers: Iterable[Any], generator: nn.Module, discriminator: nn.Module
) -> OptimizerMatch:
    """G's and D's optimizers among ``optimizers``. An optimizer that steps both networks is left
    out (its gradient norm would mix G and D), and said so in ``notes``."""
    g = d = None
    notes: list[str] = []
    for i, raw in enumerate(optimizers):
        opt = unwrap_optimizer(raw)
        role = optimizer_role(opt, generator, discriminator)
        name = f"optimizer {i} ({type(opt).__name__})"
        if role == "g" and g is None:
            g = opt
        elif role == "d" and d is None:
            d = opt
        elif role == "both":
            notes.append(f"{name} steps both G and D: gradient norms are not recorded for it")
        elif role == "neither":
            notes.append(f"{name} steps neither G nor D: ignored")
        else:
            notes.append(f"{name} is a second optimizer of {role.upper()}: only the first is watched")
    return OptimizerMatch(g, d, tuple(notes))


_SUFFIX = re.compile(r"_(step|epoch)$")
_PREFIXES = ("train/", "train_", "training/", "training_")


def loss_argument(name: str, extra: Mapping[str, str] = {}) -> Literal["d_loss", "g_loss"] | None:
    """``d_loss`` / ``g_loss`` for a logged metric name (``errD``, ``loss_D``, ``train/g_loss_step`` …),
    None for anything else. ``extra`` maps further names exactly (``{"adv": "g_loss"}``)."""
    if name in extra:
        return extra[name]  # type: ignore[return-value]
    if name.endswith("_epoch"):
        return None  # an epoch aggregate, not this batch's value
    key = _SUFFIX.sub("", name.strip().lower().replace(" ", "_").replace("-", "_"))
    aliases = _signal_aliases()
    candidates = [key, key.rsplit("/", 1)[-1]] + [key[len(p):] for p in _PREFIXES if key.startswith(p)]
    for candidate in candidates:
        signal = aliases.get(candidate)
        if signal == "loss.d":
            return "d_loss"
        if signal == "loss.g":
            return "g_loss"
    return None
