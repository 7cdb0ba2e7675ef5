"""attach() under a real Accelerate run on CPU: prepared models and optimizers are unwrapped and watched."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

pytest.importorskip("accelerate", reason="the 'accelerate' extra is not installed (pip install 'gandoctor[accelerate]')")

from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState

from gandoctor.integrations import IntegrationError
from gandoctor.integrations.accelerate import attach

from . import _gan


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    # Accelerate keeps process-wide singletons; each test builds its own Accelerator settings.
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def train(tmp_path, steps: int = 30, accumulate: int = 1, mixed_precision: str = "no", main: bool = True):
    torch.manual_seed(0)
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=accumulate, mixed_precision=mixed_precision)
    G, D = _gan.generator(), _gan.discriminator()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    loader = torch.utils.data.DataLoader(_gan.dataset(32 * steps), batch_size=32)
    G, D, opt_g, opt_d, loader = accelerator.prepare(G, D, opt_g, opt_d, loader)
    original = type(accelerator).__dict__["is_main_process"]
    if not main:  # what a non-main rank sees; the process state is a singleton, so patch the property
        type(accelerator).is_main_process = property(lambda self: False)
    try:
        doctor = attach(accelerator, G, D, opt_g, opt_d, log_dir=tmp_path, d_output="logit")
    finally:
        type(accelerator).is_main_process = original  # `del` took Accelerate's own property with it
    bce = nn.BCEWithLogitsLoss()
    d_steps = 0
    for (real,) in loader:
        with accelerator.accumulate(G, D):
            fake = G(torch.randn(real.shape[0], _gan.Z_DIM, device=accelerator.device))
            d_real, d_fake = D(real), D(fake.detach())
            d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad()
            accelerator.backward(d_loss)
            opt_d.step()
            d_steps += int(accelerator.sync_gradients)
            out = D(fake)
            g_loss = bce(out, torch.ones_like(out))
            opt_g.zero_grad()
            accelerator.backward(g_loss)
            opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
    doctor.close()
    return doctor, d_steps


def test_prepared_models_and_optimizers_are_watched(tmp_path):
    doctor, _ = train(tmp_path)
    assert not isinstance(doctor.generator, torch.nn.parallel.DistributedDataParallel)
    report = doctor.report()
    assert (report.first_step, report.last_step) == (0, 29)
    assert {"loss.d", "loss.g", "grad_norm.d", "grad_norm.g", "d.auc"} <= set(report.signals)
    steps = [json.loads(line) for line in (tmp_path / "gandoctor.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "step" for r in steps) == 30


def test_gradient_accumulation_counts_real_optimizer_steps(tmp_path):
    doctor, d_steps = train(tmp_path, steps=32, accumulate=4)
    assert d_steps == 8
    # the pre-hook fires only when the wrapped optimizer really steps: once every 4 batches
    opt_steps = doctor.signals.get("opt_steps.d")
    assert opt_steps is not None and int(opt_steps.values.sum()) == 8
    grad = doctor.signals.get("grad_norm.d")
    assert grad is not None and len(grad) == 8


def test_bf16_mixed_precision_records_gradients(tmp_path):
    doctor, _ = train(tmp_path, mixed_precision="bf16")
    grad = doctor.signals.get("grad_norm.g")
    assert grad is not None and len(grad) == 30 and bool((grad.values > 0).all())


def test_only_the_main_process_writes(tmp_path):
    doctor, _ = train(tmp_path, main=False)
    assert not (tmp_path / "gandoctor.jsonl").exists()
    assert doctor.report().last_step == 29  # it still diagnoses locally


def test_rejects_what_is_not_a_module():
    with pytest.raises(IntegrationError, match="generator must be a torch.nn.Module"):
        attach(Accelerator(cpu=True), "G", nn.Linear(2, 1))


def test_plain_doctor_takes_prepared_optimizers():
    from gandoctor.probes import Doctor

    accelerator = Accelerator(cpu=True)
    G, D = _gan.generator(), _gan.discriminator()
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)
    Doctor(G, D, opt_g, opt_d).close()


def test_models_accelerate_compiles_are_hooked_outside_their_graphs(tmp_path):
    # Accelerator(dynamo_backend=...) compiles G and D in prepare(); attach() hooked the inner
    # modules, which dynamo traced: 8 graphs against 3 on this loop, the recompile limit.
    graphs: list[object] = []

    def count(gm: torch.fx.GraphModule, example_inputs: object) -> object:
        graphs.append(gm)
        return gm.forward

    def run(with_doctor: bool) -> int:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        torch._dynamo.reset()
        graphs.clear()
        torch.manual_seed(0)
        accelerator = Accelerator(cpu=True)
        G, D = _gan.generator(), _gan.discriminator()
        opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=1e-3), torch.optim.Adam(D.parameters(), lr=1e-3)
        G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)
        G, D = torch.compile(G, backend=count), torch.compile(D, backend=count)  # what prepare() does under dynamo_backend
        doctor = attach(accelerator, G, D, opt_g, opt_d, log_dir=tmp_path / str(with_doctor)) if with_doctor else None
        if doctor is not None:
            assert doctor.discriminator is D._orig_mod  # its own forwards on the inner D
        bce = nn.BCEWithLogitsLoss()
        for _ in range(40):
            real = torch.randn(32, 2)
            fake = G(torch.randn(32, _gan.Z_DIM))
            d_real, d_fake = D(real), D(fake.detach())
            d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad()
            accelerator.backward(d_loss)
            opt_d.step()
            out = D(fake)
            g_loss = bce(out, torch.ones_like(out))
            opt_g.zero_grad()
            accelerator.backward(g_loss)
            opt_g.step()
            if doctor is not None:
                doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
        if doctor is not None:
            assert doctor.signals.get("d.acc") is not None and not doctor.disabled_probes
            doctor.close()
        return len(graphs)

    assert run(with_doctor=True) == run(with_doctor=False)
