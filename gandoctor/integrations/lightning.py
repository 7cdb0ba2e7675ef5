"""A Lightning callback that runs a :class:`gandoctor.Doctor` alongside ``trainer.fit``.

Works with manual optimization (two optimizers stepped in ``training_step``, the usual GAN
module) and with automatic optimization. One doctor step per training batch: under manual
optimization ``trainer.global_step`` counts every optimizer step, so it is not the GAN iteration.

Per batch the callback reads:

- the losses: the dict ``training_step`` returned, if any, then what the module logged this batch
  with ``self.log`` / ``self.log_dict`` (``trainer.callback_metrics``); names map onto ``d_loss`` /
  ``g_loss`` through gandoctor's alias table (``d_loss``, ``loss_D``, ``errD``, ``train/g_loss`` …);
- the real batch: the batch itself, its first element, or a ``real``/``image(s)``/``x`` key;
- the fakes: ``"fake"`` in the returned dict, else a module attribute (``fake``, ``generated_imgs`` …),
  else ``fake_fn(module, batch, outputs)``;
- D's outputs, when the returned dict holds ``d_real`` and ``d_fake``.

A ``training_step`` that returns nothing is fine: the losses then come from the log.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..probes import Doctor
from ..report import Report
from ._common import (
    DISCRIMINATOR_NAMES,
    GENERATOR_NAMES,
    IntegrationError,
    find_module,
    loss_argument,
    match_optimizers,
    unwrap_module,
    unwrap_optimizer,
)

try:  # the unified package first; the older standalone one is the same API
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - depends on what is installed
    try:
        from pytorch_lightning import LightningModule, Trainer  # type: ignore[no-redef,assignment]
        from pytorch_lightning.callbacks import Callback  # type: ignore[no-redef,assignment]
    except ImportError as exc:
        raise ImportError(
            "gandoctor.integrations.lightning needs Lightning: pip install 'gandoctor[lightning]'"
        ) from exc

FakeFn = Callable[[Any, Any, Any], "torch.Tensor | None"]
RealFn = Callable[[Any], "torch.Tensor | None"]

FAKE_ATTRIBUTES: tuple[str, ...] = ("fake", "fakes", "fake_images", "fake_imgs", "generated_imgs", "gen_imgs", "x_fake")
_BATCH_KEYS = ("real", "image", "images", "img", "imgs", "x", "input", "inputs", "pixel_values")


def _default_real(batch: Any) -> torch.Tensor | None:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]  # (x, y): labels stay out unless the user asks for them
    if isinstance(batch, Mapping):
        for key in _BATCH_KEYS:
            if isinstance(batch.get(key), torch.Tensor):
                return batch[key]
    return None


class DoctorCallback(Callback):
    """``Trainer(callbacks=[DoctorCallback(log_dir="runs/exp1")])``; after fit, ``callback.report()``.

    ``generator`` / ``discriminator``: the module attribute name(s) holding G and D (defaults:
    generator/G/netG/gen and discriminator/D/netD/critic/disc). ``g_optimizer`` / ``d_optimizer``:
    indices into ``trainer.optimizers`` when the parameter-based matching should be overridden.
    ``loss_names``: extra exact mappings from a logged name to ``"d_loss"`` or ``"g_loss"``.
    ``real_fn(batch)``, ``fake_fn(module, batch, outputs)``, ``labels_fn(batch)``: override how the
    real batch, the fakes and (for conditional GANs) the labels are found. Every other keyword goes
    to :class:`gandoctor.Doctor` (``d_output``, ``uses``, ``schedule``, ``strict``, the live options
    ``on_finding``, ``alerts``, ``stop_on`` …); with ``stop_on`` the callback sets
    ``trainer.should_stop`` once its doctor says so, and ``raise_on_nonfinite``'s error ends ``fit``.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None = None,
        *,
        generator: str | Sequence[str] = GENERATOR_NAMES,
        discriminator: str | Sequence[str] = DISCRIMINATOR_NAMES,
        g_optimizer: int | None = None,
        d_optimizer: int | None = None,
        loss_names: Mapping[str, str] | None = None,
        real_fn: RealFn | None = None,
        fake_fn: FakeFn | None = None,
        labels_fn: Callable[[Any], Any] | None = None,
        **doctor_options: Any,
    ) -> None:
        loss_names = dict(loss_names or {})
        for name, target in loss_names.items():
            if target not in ("d_loss", "g_loss"):
                raise IntegrationError(f"loss_names[{name!r}] must be 'd_loss' or 'g_loss', got {target!r}")
        self.log_dir = log_dir
        self.generator_names = generator
        self.discriminator_names = discriminator
        self.g_optimizer_index = g_optimizer
        self.d_optimizer_index = d_optimizer
        self.loss_names = loss_names
        self.real_fn = real_fn or _default_real
        self.fake_fn = fake_fn
        self.labels_fn = labels_fn
        self.doctor_options = doctor_options
        self.doctor: Doctor | None = None
        self.notes: tuple[str, ...] = ()
        self.steps = 0  # doctor steps taken: training batches seen
        self.losses_seen = {"d_loss": 0, "g_loss": 0}  # batches whose loss reached the doctor
        self._final: Report | None = None
        self._seen: dict[str, torch.Tensor] = {}
        self._targets: dict[str, str | None] = {}
        self._resume_steps = 0

    # -- setup ---------------------------------------------------------------------------
    def _pick(self, trainer: Trainer, index: int | None, role: str) -> torch.optim.Optimizer | None:
        if index is None:
            return None
        if not 0 <= index < len(trainer.optimizers):
            raise IntegrationError(
                f"{role}_optimizer={index} but the trainer has {len(trainer.optimizers)} optimizer(s)"
            )
        return unwrap_optimizer(trainer.optimizers[index])

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close()
        _, g = find_module(pl_module, self.generator_names, "generator")
        _, d = find_module(pl_module, self.discriminator_names, "discriminator")
        g, d = unwrap_module(g), unwrap_module(d)
        match = match_optimizers(trainer.optimizers, g, d)
        g_opt = self._pick(trainer, self.g_optimizer_index, "g") or match.g
        d_opt = self._pick(trainer, self.d_optimizer_index, "d") or match.d
        self.notes = match.notes
        self.doctor = Doctor(g, d, g_optimizer=g_opt, d_optimizer=d_opt, log_dir=self.log_dir, **self.doctor_options)
        self.steps, self._resume_steps = self._resume_steps, 0
        self.losses_seen = {"d_loss": 0, "g_loss": 0}
        self._final = None
        self._seen = {}

    # -- per batch -----------------------------------------------------------------------
    def _fresh_logged(self, trainer: Trainer) -> dict[str, torch.Tensor]:
        """What was logged during this batch. callback_metrics keeps a name's last value until it
        is logged again; each self.log stores a new tensor, so an unchanged storage means stale."""
        fresh: dict[str, torch.Tensor] = {}
        for name, value in trainer.callback_metrics.items():
            if not isinstance(value, torch.Tensor):
                continue
            previous = self._seen.get(name)
            if previous is None or previous.data_ptr() != value.data_ptr():
                fresh[name] = value
            self._seen[name] = value
        return fresh

    def _losses(self, outputs: Any, trainer: Trainer) -> dict[str, Any]:
        found: dict[str, Any] = {}
        sources: list[Mapping[str, Any]] = []
        if isinstance(outputs, Mapping):
            sources.append(outputs)
        sources.append(self._fresh_logged(trainer))
        names = self._targets
        for source in sources:
            for name, value in source.items():
                if name not in names:  # the same few names come back every batch: map each once
                    names[name] = loss_argument(str(name), self.loss_names)
                target = names[name]
                if target is not None and target not in found and isinstance(value, (torch.Tensor, float, int)):
                    found[target] = value
        return found

    def _fake(self, pl_module: LightningModule, batch: Any, outputs: Any) -> torch.Tensor | None:
        if isinstance(outputs, Mapping) and isinstance(outputs.get("fake"), torch.Tensor):
            return outputs["fake"]
        if self.fake_fn is not None:
            return self.fake_fn(pl_module, batch, outputs)
        for name in FAKE_ATTRIBUTES:
            value = getattr(pl_module, name, None)
            if isinstance(value, torch.Tensor):
                return value
        return None

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        doctor = self.doctor
        if doctor is None:
            return
        losses = self._losses(outputs, trainer)
        for key in losses:
            self.losses_seen[key] += 1
        real = self.real_fn(batch)
        fake = self._fake(pl_module, batch, outputs)
        kwargs: dict[str, Any] = {}
        if isinstance(outputs, Mapping) and isinstance(outputs.get("d_real"), torch.Tensor) and isinstance(outputs.get("d_fake"), torch.Tensor):
            kwargs["d_real"], kwargs["d_fake"] = outputs["d_real"], outputs["d_fake"]
        if self.labels_fn is not None:
            kwargs["labels"] = self.labels_fn(batch)
        step, self.steps = self.steps, self.steps + 1  # counted first: raise_on_nonfinite may end the batch inside step()
        doctor.step(real=real, fake=fake, step=step, **losses, **kwargs)
        if self._stop_agreed(trainer, doctor):
            trainer.should_stop = True  # Lightning leaves the loop after this batch

    def _stop_agreed(self, trainer: Trainer, doctor: Doctor) -> bool:
        """``doctor.should_stop`` (``stop_on=``), agreed between processes: one rank leaving the
        loop alone would hang the others in their next collective, so under DDP the ranks vote
        (any rank stops all) at the doctor's flushes only, where values cross to the host anyway."""
        if trainer.world_size <= 1 or not self.doctor_options.get("stop_on"):
            return doctor.should_stop
        if self.steps % doctor.schedule.flush_every:
            return False
        return bool(trainer.strategy.reduce_boolean_decision(doctor.should_stop, all=False))

    # -- end -----------------------------------------------------------------------------
    def _close(self) -> None:
        if self.doctor is not None:
            # close() first: on_fit_end runs on every rank, so under DDP the last measurements and
            # flush (collectives) happen there; a report() before it lacks the run's last stretch.
            self.doctor.close()
            self._final = self.doctor.report()
            self.doctor = None

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # The training's own exception is what the user must see; a strict doctor failing while
        # diagnosing what was recorded must not replace it.
        doctor, self.doctor = self.doctor, None
        if doctor is not None:
            try:
                self._final = doctor.report()
            except Exception:  # noqa: BLE001
                self._final = None
            finally:
                doctor.close()

    # -- checkpoints: a resumed fit goes on counting where it stopped, so the run log stays in order
    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        steps = int(state_dict.get("steps", 0))
        if self.doctor is None:  # restored before on_fit_start (the usual order)
            self._resume_steps = steps
        else:  # strategies that restore after setup
            self.steps = steps

    def report(self) -> Report:
        """The diagnosis: live while fitting, the final one after ``fit`` returns."""
        if self.doctor is not None:
            return self.doctor.report()
        if self._final is not None:
            return self._final
        raise IntegrationError("DoctorCallback.report(): no fit has started yet, so nothing was recorded")
