"""Overhead of the Lightning adapter (DoctorCallback) against the plain Doctor, on the same tiny GAN.

Three variants of one LightningModule (the demo's MLP GAN on a ring of 8 Gaussians, manual
optimization, both losses logged with ``self.log`` each batch) train in the same process:

- ``bare``: no doctor;
- ``plain``: a ``gandoctor.Doctor`` built by the module and stepped at the end of ``training_step``
  with the losses, the real batch and the fakes (what a user would write by hand);
- ``callback``: ``DoctorCallback`` (finds G, D and the optimizers, reads the logged losses and the
  batch, steps the same Doctor).

Each variant trains in blocks of ``--steps`` batches on a fresh, identically seeded module; the
order of the variants rotates every round so machine drift hits all alike. The time of one batch
is the gap between two ``on_train_batch_start`` calls (the whole loop iteration, Lightning's own
work included); the first batches of a block are dropped as warm-up. Reported: the median per-batch
time of each variant and the ratios callback/plain (what the adapter costs over the hand-written
call) and each/bare, and the same for the lower decile of batch times (least disturbed by other
load on a shared machine).

    python benchmarks/callback_overhead.py [--blocks 5] [--steps 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import warnings

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

import gandoctor
from gandoctor.demo import mlp, ring_of_gaussians
from gandoctor.integrations.lightning import DoctorCallback

BATCH = 128
Z = 8
WARMUP = 10


class GAN(L.LightningModule):
    def __init__(self, plain_doctor_dir: str | None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator, self.discriminator = mlp(Z, 2, 128), mlp(2, 1, 128)
        self.bce = nn.BCEWithLogitsLoss()
        self.plain_doctor_dir = plain_doctor_dir
        self.doctor: gandoctor.Doctor | None = None

    def on_fit_start(self) -> None:
        if self.plain_doctor_dir is not None:
            g_opt, d_opt = self.optimizers()
            self.doctor = gandoctor.Doctor(self.generator, self.discriminator, g_opt, d_opt, log_dir=self.plain_doctor_dir)

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        fake = self.generator(torch.randn(real.shape[0], Z))
        self.fake = fake
        d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
        d_loss = self.bce(d_real, torch.ones_like(d_real)) + self.bce(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        out = self.discriminator(fake)
        g_loss = self.bce(out, torch.ones_like(out))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss})
        if self.doctor is not None:
            self.doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)

    def on_fit_end(self) -> None:
        if self.doctor is not None:
            self.doctor.close()

    def configure_optimizers(self):
        return (torch.optim.Adam(self.generator.parameters(), lr=1e-3, betas=(0.5, 0.999)),
                torch.optim.Adam(self.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999)))


class BatchTimer(Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:])][WARMUP:]


def block(variant: str, steps: int, data: torch.Tensor, tmp: str) -> list[float]:
    torch.manual_seed(0)
    timer = BatchTimer()
    callbacks: list[Callback] = [timer]
    module = GAN(plain_doctor_dir=f"{tmp}/plain" if variant == "plain" else None)
    if variant == "callback":
        callbacks.insert(0, DoctorCallback(log_dir=f"{tmp}/callback"))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=BATCH)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=steps + 1, accelerator="cpu", devices=1, callbacks=callbacks,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    return timer.gaps()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    data = ring_of_gaussians(BATCH * (args.steps + 1), torch.Generator().manual_seed(1))
    variants = ["bare", "plain", "callback"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.blocks):
            order = variants[r % 3:] + variants[: r % 3]
            for v in order:
                times[v] += block(v, args.steps, data, f"{tmp}/{r}")
    med = {v: statistics.median(t) for v, t in times.items()}
    # On a shared machine the median carries other jobs' load; the lower decile is the batch
    # time with the least interference, so both are reported.
    low = {v: statistics.quantiles(t, n=10)[0] for v, t in times.items()}
    result = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "blocks": args.blocks,
        "steps_per_block": args.steps,
        "median_batch_ms": {v: round(m * 1e3, 3) for v, m in med.items()},
        "ratio_callback_over_plain": round(med["callback"] / med["plain"], 4),
        "ratio_plain_over_bare": round(med["plain"] / med["bare"], 4),
        "ratio_callback_over_bare": round(med["callback"] / med["bare"], 4),
        "p10_batch_ms": {v: round(m * 1e3, 3) for v, m in low.items()},
        "p10_ratio_callback_over_plain": round(low["callback"] / low["plain"], 4),
        "p10_ratio_plain_over_bare": round(low["plain"] / low["bare"], 4),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
