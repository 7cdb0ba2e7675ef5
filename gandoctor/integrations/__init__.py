"""Thin adapters that attach a :class:`gandoctor.Doctor` to training stacks without changing the loop.

- :mod:`gandoctor.integrations.lightning`: ``DoctorCallback`` for a ``lightning.Trainer``
  (``pip install 'gandoctor[lightning]'``);
- :mod:`gandoctor.integrations.accelerate`: ``attach(accelerator, ...)`` for Hugging Face Accelerate
  (``pip install 'gandoctor[accelerate]'``).

Alert sinks write the doctor's findings back into the user's own logger during training:

- :mod:`gandoctor.integrations.tensorboard`: ``TensorBoardAlerts(writer_or_log_dir)``, findings as
  text and per-mode health as scalars (``pip install 'gandoctor[tensorboard]'``);
- :mod:`gandoctor.integrations.wandb`: ``WandbAlerts(run=None)``, findings as W&B alerts and
  per-mode health logged in the run (``pip install 'gandoctor[wandb]'``).

Each adapter only finds what the Doctor needs (G, D, their optimizers, the losses, the batch) and
calls the Doctor's public API; the framework is imported only by its own adapter module.
"""

from __future__ import annotations

from ._common import IntegrationError

__all__ = ["IntegrationError"]
