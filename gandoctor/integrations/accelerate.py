"""Attach a :class:`gandoctor.Doctor` to a Hugging Face Accelerate loop.

``accelerator.prepare`` wraps the models (DDP, mixed-precision forward, torch.compile) and the
optimizers (``AcceleratedOptimizer``); the Doctor must see the user's own modules and the torch
optimizers inside, whose step pre-hooks fire only when a step really happens (after the
gradient-accumulation boundary, after the fp16 scaler has unscaled and checked the gradients).
Only the main process writes the run log.

::

    G, D, opt_g, opt_d, loader = accelerator.prepare(G, D, opt_g, opt_d, loader)
    doctor = gandoctor.integrations.accelerate.attach(accelerator, G, D, opt_g, opt_d, log_dir="runs/exp1")
    for real in loader:
        ...  # the loop, unchanged
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from ..probes import Doctor
from ..probes.doctor import _compiled, _wrappers
from ._common import IntegrationError, unwrap_module, unwrap_optimizer


def _unwrap(accelerator: Any, model: nn.Module) -> nn.Module:
    # Keep Accelerate's mixed-precision forward wrapper, so the doctor's own D forward runs in the
    # same precision as training; drop DDP (no collective in a probe) and torch.compile (no recompile).
    try:
        inner = accelerator.unwrap_model(model, keep_torch_compile=False)
    except TypeError:  # older Accelerate: no keep_torch_compile argument
        inner = accelerator.unwrap_model(model)
    inner = unwrap_module(inner)
    # Compiled by Accelerate (dynamo_backend, `accelerate config`): the Doctor is given the module
    # the loop calls, to hang its hooks there, outside the graph, and runs its own forwards on the
    # inner one, which it reaches itself. Hooked on the inner module, dynamo traced and guarded on
    # the hooks: 8 graphs against 3 on a tiny MLP (the recompile limit), 11 against 6 on HugGAN's DCGAN.
    if _compiled(model) and _wrappers(model)[-1] is inner:
        return model
    return inner


def attach(
    accelerator: Any,
    generator: nn.Module,
    discriminator: nn.Module,
    g_optimizer: Any = None,
    d_optimizer: Any = None,
    *,
    log_dir: str | os.PathLike[str] | None = None,
    **doctor_options: Any,
) -> Doctor:
    """A Doctor watching the prepared (or unprepared) G, D and optimizers; ``doctor_options`` go to
    :class:`gandoctor.Doctor`. On processes other than the main one nothing is written."""
    for role, module in (("generator", generator), ("discriminator", discriminator)):
        if not isinstance(module, nn.Module):
            raise IntegrationError(f"attach(): {role} must be a torch.nn.Module, got {type(module).__name__}")
    g = _unwrap(accelerator, generator)
    d = _unwrap(accelerator, discriminator)
    g_opt = None if g_optimizer is None else unwrap_optimizer(g_optimizer)
    d_opt = None if d_optimizer is None else unwrap_optimizer(d_optimizer)
    return Doctor(
        g, d, g_optimizer=g_opt, d_optimizer=d_opt,
        log_dir=log_dir if accelerator.is_main_process else None,
        **doctor_options,
    )
