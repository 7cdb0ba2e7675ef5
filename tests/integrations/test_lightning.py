"""DoctorCallback under a real lightning.Trainer on CPU: one doctor step per batch, losses arrive."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

pytest.importorskip("lightning", reason="the 'lightning' extra is not installed (pip install 'gandoctor[lightning]')")

import lightning as L

import gandoctor
from gandoctor.integrations import IntegrationError
from gandoctor.integrations.lightning import DoctorCallback

from . import _gan

BATCH = 32


class ManualGAN(L.LightningModule):
    """Manual optimization, two optimizers, training_step returns nothing; G every ``g_every`` batches."""

    def __init__(self, g_every: int = 1, names: tuple[str, str] = ("loss_D", "loss_G")) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.netG, self.netD = _gan.generator(), _gan.discriminator()
        self.g_every = g_every
        self.names = names
        self.bce = nn.BCEWithLogitsLoss()

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        self.fake = self.netG(torch.randn(real.shape[0], _gan.Z_DIM))
        d_real, d_fake = self.netD(real), self.netD(self.fake.detach())
        d_loss = self.bce(d_real, torch.ones_like(d_real)) + self.bce(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        self.log(self.names[0], d_loss)
        if batch_idx % self.g_every == 0:
            g_out = self.netD(self.fake)
            g_loss = self.bce(g_out, torch.ones_like(g_out))
            opt_g.zero_grad()
            self.manual_backward(g_loss)
            opt_g.step()
            self.log(self.names[1], g_loss)
        # returns nothing: Lightning's SpikeDetection would reject this step, the doctor must not

    def configure_optimizers(self):
        # G first, D second: the callback must match them by parameters, not by position
        return (torch.optim.Adam(self.netG.parameters(), lr=1e-3, betas=(0.5, 0.999)),
                torch.optim.Adam(self.netD.parameters(), lr=1e-3, betas=(0.5, 0.999)))


class AutoGAN(L.LightningModule):
    """Automatic optimization with one optimizer, alternating D (even batches) and G (odd batches)."""

    def __init__(self) -> None:
        super().__init__()
        self.generator, self.discriminator = _gan.generator(), _gan.discriminator()
        self.bce = nn.BCEWithLogitsLoss()

    def training_step(self, batch, batch_idx):
        (real,) = batch
        fake = self.generator(torch.randn(real.shape[0], _gan.Z_DIM))
        self.fake = fake
        if batch_idx % 2 == 0:
            d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
            loss = self.bce(d_real, torch.ones_like(d_real)) + self.bce(d_fake, torch.zeros_like(d_fake))
            return {"loss": loss, "d_loss": loss.detach()}
        self.discriminator.requires_grad_(False)  # G's loss must not move D
        out = self.discriminator(fake)
        self.discriminator.requires_grad_(True)
        loss = self.bce(out, torch.ones_like(out))
        return {"loss": loss, "g_loss": loss.detach()}

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def fit(module: L.LightningModule, callback: DoctorCallback, batches: int = 40, epochs: int = 1) -> L.Trainer:
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(_gan.dataset(BATCH * batches), batch_size=BATCH, shuffle=True)
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, callbacks=[callback], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(module, loader)
    return trainer


def step_records(path) -> list[dict]:
    lines = (path / "gandoctor.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "step"]


def test_manual_optimization_one_doctor_step_per_batch(tmp_path):
    callback = DoctorCallback(log_dir=tmp_path, d_output="logit")
    trainer = fit(ManualGAN(), callback, batches=40)
    # Lightning counts both optimizer steps; the doctor counts GAN iterations.
    assert trainer.global_step == 80
    assert callback.steps == 40
    assert callback.losses_seen == {"d_loss": 40, "g_loss": 40}
    report = callback.report()
    assert (report.first_step, report.last_step) == (0, 39)
    # optimizers matched by their parameters although configure_optimizers lists G's first
    assert {"loss.d", "loss.g", "grad_norm.d", "grad_norm.g", "d.auc"} <= set(report.signals)
    assert callback.doctor is None  # closed at fit end
    records = step_records(tmp_path)
    # one record per iteration; the sample statistics of the last step's features, measured when the
    # callback's final report was made (before close), are in the last step's record and that report
    assert [r["step"] for r in records] == list(range(40))
    assert {name for name in records[-1]["s"] if name.startswith("feat.")}
    assert report.samples is not None and report.samples.last_step == 39


def test_losses_are_the_values_the_module_logged(tmp_path):
    logged: list[float] = []

    class Recording(ManualGAN):
        def log(self, name, value, *args, **kwargs):
            if name == "errD":
                logged.append(float(value.detach()))
            super().log(name, value, *args, **kwargs)

    callback = DoctorCallback(log_dir=tmp_path)
    fit(Recording(names=("errD", "errG")), callback, batches=10)
    recorded = [r["s"]["loss.d"] for r in step_records(tmp_path)]
    assert recorded == pytest.approx(logged, rel=1e-6)
    assert len(recorded) == 10


def test_losses_logged_every_other_batch_are_not_repeated(tmp_path):
    callback = DoctorCallback(log_dir=tmp_path)
    fit(ManualGAN(g_every=2, names=("train/d_loss", "train/g_loss")), callback, batches=20)
    assert callback.steps == 20
    assert callback.losses_seen == {"d_loss": 20, "g_loss": 10}
    with_g = [r["step"] for r in step_records(tmp_path) if "loss.g" in r["s"]]
    assert with_g == list(range(0, 20, 2))


def test_automatic_optimization_alternating_losses(tmp_path):
    callback = DoctorCallback(log_dir=tmp_path)
    trainer = fit(AutoGAN(), callback, batches=20)
    assert trainer.global_step == 20
    assert callback.steps == 20
    assert callback.losses_seen == {"d_loss": 10, "g_loss": 10}
    # one optimizer steps both networks: its gradient norm would mix G and D, so it is left out, and said so
    assert any("both G and D" in note for note in callback.notes)
    assert "grad_norm.d" not in callback.report().signals


def test_steps_continue_across_epochs(tmp_path):
    callback = DoctorCallback(log_dir=None)
    fit(ManualGAN(), callback, batches=5, epochs=3)
    assert callback.steps == 15
    assert callback.report().last_step == 14


def test_missing_generator_names_the_attributes():
    callback = DoctorCallback(generator="gen_net")
    with pytest.raises(IntegrationError, match="gen_net"):
        fit(ManualGAN(), callback, batches=2)


def test_options_are_checked():
    with pytest.raises(IntegrationError, match="d_loss"):
        DoctorCallback(loss_names={"adv": "generator"})
    with pytest.raises(IntegrationError, match="has 2 optimizer"):
        fit(ManualGAN(), DoctorCallback(g_optimizer=5), batches=2)


class DictGAN(ManualGAN):
    """Returns its losses, fakes and D's outputs instead of logging them."""

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        fake = self.netG(torch.randn(real.shape[0], _gan.Z_DIM))
        d_real, d_fake = self.netD(real), self.netD(fake.detach())
        d_loss = self.bce(d_real, torch.ones_like(d_real)) + self.bce(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        out = self.netD(fake)
        g_loss = self.bce(out, torch.ones_like(out))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        return {"errD": d_loss.detach(), "errG": g_loss.detach(), "fake": fake.detach(), "d_real": d_real.detach(), "d_fake": d_fake.detach()}


def test_returned_dict_gives_losses_fakes_and_d_outputs(tmp_path, monkeypatch):
    passed = []
    step = gandoctor.Doctor.step

    def spy(self, *args, **kwargs):
        passed.append(kwargs.get("d_real") is not None and kwargs.get("d_fake") is not None)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(gandoctor.Doctor, "step", spy)
    # D's outputs read at every step here (d_probe_every=1), so each step's record holds them.
    callback = DoctorCallback(log_dir=tmp_path, d_output="logit", schedule=gandoctor.Schedule(d_probe_every=1))
    fit(DictGAN(), callback, batches=12)
    assert callback.losses_seen == {"d_loss": 12, "g_loss": 12}
    assert passed == [True] * 12  # D's outputs came from the dict on every step
    records = step_records(tmp_path)
    assert sum("d.auc" in r["s"] for r in records) == 12


def test_bf16_mixed_precision_trainer(tmp_path):
    callback = DoctorCallback(log_dir=None)
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(_gan.dataset(BATCH * 20), batch_size=BATCH)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, precision="bf16-mixed", callbacks=[callback],
                        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(ManualGAN(), loader)
    assert callback.steps == 20
    assert {"loss.d", "loss.g", "grad_norm.d", "grad_norm.g"} <= set(callback.report().signals)


def test_training_error_surfaces_and_what_was_recorded_stays(tmp_path):
    class Breaks(ManualGAN):
        def training_step(self, batch, batch_idx):
            if batch_idx == 7:
                raise RuntimeError("user bug at batch 7")
            return super().training_step(batch, batch_idx)

    callback = DoctorCallback(log_dir=tmp_path, strict=True)
    with pytest.raises(RuntimeError, match="user bug at batch 7"):
        fit(Breaks(), callback, batches=20)
    assert callback.doctor is None and callback.steps == 7
    assert callback.report().last_step == 6
    assert [r["step"] for r in step_records(tmp_path)] == list(range(7))


def test_resumed_fit_goes_on_counting(tmp_path):
    callback = DoctorCallback(log_dir=tmp_path / "log")
    trainer = fit(ManualGAN(), callback, batches=10)
    checkpoint = tmp_path / "last.ckpt"
    trainer.save_checkpoint(checkpoint)

    resumed = DoctorCallback(log_dir=tmp_path / "log")
    loader = torch.utils.data.DataLoader(_gan.dataset(BATCH * 10), batch_size=BATCH)
    L.Trainer(max_epochs=2, accelerator="cpu", devices=1, callbacks=[resumed], logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(ManualGAN(), loader, ckpt_path=checkpoint)
    assert resumed.steps == 20
    assert [r["step"] for r in step_records(tmp_path / "log")] == list(range(20))


class BlowsUp(ManualGAN):
    """SGD whose learning rate jumps to 1e3 at batch 15 (a schedule bug): the losses go NaN a few batches later."""

    def training_step(self, batch, batch_idx):
        if batch_idx == 15:
            for opt in self.optimizers():
                for group in opt.optimizer.param_groups:
                    group["lr"] = 1e3
        return super().training_step(batch, batch_idx)

    def configure_optimizers(self):
        return (torch.optim.SGD(self.netG.parameters(), lr=0.01), torch.optim.SGD(self.netD.parameters(), lr=0.01))


def test_stop_on_stops_the_trainer_early(tmp_path):
    from gandoctor.probes import Schedule
    from gandoctor.readers import read_run

    found = []
    callback = DoctorCallback(log_dir=tmp_path, stop_on=("exploding_gradients",), on_finding=found.append, schedule=Schedule(flush_every=5))
    trainer = fit(BlowsUp(), callback, batches=100)
    assert trainer.should_stop and 15 < callback.steps <= 15 + 10  # at the flush after the NaN, not after 100 batches
    assert [f.mode for f in found] == ["exploding_gradients"]
    assert "exploding_gradients" in callback.report().modes
    (marker,) = read_run(tmp_path).markers
    assert marker.last_healthy_step is not None and 15 <= marker.last_healthy_step < marker.onset_step < callback.steps


def test_without_stop_on_the_trainer_runs_to_the_end(tmp_path):
    callback = DoctorCallback(log_dir=None, on_finding=lambda f: None, live_every=20)
    trainer = fit(BlowsUp(), callback, batches=40)
    assert not trainer.should_stop and callback.steps == 40


def test_raise_on_nonfinite_ends_fit_with_the_named_error(tmp_path):
    from gandoctor.errors import NonFiniteLossError
    from gandoctor.probes import Schedule

    callback = DoctorCallback(log_dir=tmp_path, raise_on_nonfinite=True, schedule=Schedule(flush_every=5))
    with pytest.raises(NonFiniteLossError, match=r"_loss \(loss\.[dg]\) is (nan|inf|-inf) at step 1\d"):
        fit(BlowsUp(), callback, batches=100)
    assert callback.doctor is None and 15 < callback.steps <= 25  # the doctor was closed, the log kept
    assert step_records(tmp_path)[-1]["step"] == callback.steps - 1
