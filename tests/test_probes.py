"""The Doctor: what it records, that it leaves training untouched, and that faults stay contained."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

import gandoctor
from gandoctor.diagnose import analyze
from gandoctor.probes import Schedule


def make_models(seed: int = 0, cond: bool = False, sn: bool = False) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(4, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
    lin = nn.Linear(32, 1)
    if sn:
        lin = nn.utils.parametrizations.spectral_norm(lin)
    D = nn.Sequential(nn.Linear(2, 32), nn.BatchNorm1d(32), nn.LeakyReLU(0.2), nn.Dropout(0.3), lin)
    return G, D


class CondD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(3, 2)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
        self.seen_labels: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.seen_labels.append(y)
        return self.net(torch.cat([x, self.emb(y)], dim=1))


def train(
    steps: int, doctor_kwargs: dict | None, seed: int = 0, d_steps: int = 1, pass_outputs: bool = False, sn: bool = False,
    sigmoid_d: bool = False,
):
    """``sigmoid_d``: D ends in a sigmoid, and the losses are nn.BCELoss on its probabilities."""
    G, D = make_models(seed, sn=sn)
    if sigmoid_d:
        D.append(nn.Sigmoid())
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    bce = nn.BCELoss() if sigmoid_d else nn.BCEWithLogitsLoss()
    doctor = None
    if doctor_kwargs is not None:
        doctor = gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, **doctor_kwargs)
    torch.manual_seed(seed + 100)
    for _ in range(steps):
        for _ in range(d_steps):
            real = torch.randn(64, 2) * 0.1 + torch.tensor([1.0, -1.0])
            fake = G(torch.randn(64, 4))
            d_real, d_fake = D(real), D(fake.detach())
            d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        g_loss = bce(D(fake), torch.ones_like(d_fake))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        if doctor is not None:
            extra = {"d_real": d_real, "d_fake": d_fake} if pass_outputs else {}
            doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake, **extra)
    return G, D, doctor


def state(*modules: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for m in modules for t in list(m.parameters()) + list(m.buffers())]


def test_training_is_bit_identical_with_and_without_the_doctor(tmp_path):
    # D has BatchNorm and Dropout; the doctor runs its own D forwards (no d_real passed).
    schedule = Schedule(d_probe_every=1, feature_every=1, sample_stats_every=5, weight_every=3, flush_every=4)
    G0, D0, _ = train(40, None)
    G1, D1, doctor = train(40, {"log_dir": tmp_path, "schedule": schedule, "strict": True})
    doctor.close()
    for a, b in zip(state(G0, D0), state(G1, D1), strict=True):
        assert torch.equal(a, b)
    assert G1.training and D1.training
    assert all(p.requires_grad for p in list(G1.parameters()) + list(D1.parameters()))
    assert "d.auc" in doctor.signals and "feat.coverage" in doctor.signals


def test_the_doctors_own_forwards_leave_python_s_random_where_it_was():
    """rosinality's StyleGAN draws its style-mixing crossover from Python's random inside G's
    forward: the doctor's own forwards of G advanced the training's stream."""
    import random

    from gandoctor.probes.base import untouched

    class Drawing(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * random.random()

    random.seed(0)
    expected = [random.random() for _ in range(3)]
    random.seed(0)
    with untouched(Drawing(), torch.device("cpu")):
        Drawing()(torch.ones(2))
    assert [random.random() for _ in range(3)] == expected


def test_the_doctors_own_forwards_run_no_sync_batch_norm_collective(monkeypatch):
    """Under torch.distributed a SyncBatchNorm in training mode all-reduces on the training's own
    group: a probe forward on one rank would meet another rank's next training collective. Inside
    the doctor's own forwards such a layer normalises with its input's batch alone."""
    from gandoctor.probes.base import untouched

    torch.manual_seed(0)
    g = nn.Sequential(nn.Linear(4, 8), nn.SyncBatchNorm(8), nn.ReLU())
    plain = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
    plain.load_state_dict(g.state_dict())
    x = torch.randn(16, 4)
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: 2)
    with pytest.raises(ValueError, match="GPU"):  # the layer would sync (on CPU torch refuses before the collective)
        g(x)
    state = {k: v.clone() for k, v in g.state_dict().items()}
    with untouched(g, x.device):
        out = g(x)
    assert torch.allclose(out, plain(x), atol=1e-6)
    assert all(torch.equal(v, state[k]) for k, v in g.state_dict().items())
    assert "forward" not in vars(g[1])  # the layer's own forward is back
    with pytest.raises(ValueError, match="GPU"):
        g(x)
    g.eval(), plain.eval()
    plain.load_state_dict(g.state_dict())  # plain's training forward moved its running statistics
    with untouched(g, x.device):  # eval mode: running statistics, as the layer itself does
        assert torch.allclose(g(x), plain(x), atol=1e-6)


def test_spectral_norm_vectors_and_rng_are_untouched(tmp_path):
    schedule = Schedule(d_probe_every=1, weight_every=1, flush_every=2)
    G0, D0, _ = train(15, None, sn=True)
    rng_without = torch.get_rng_state()
    G1, D1, doctor = train(15, {"schedule": schedule, "strict": True}, sn=True)
    rng_with = torch.get_rng_state()
    for a, b in zip(state(G0, D0), state(G1, D1), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(rng_without, rng_with)
    assert "d_spectral_norm" in doctor.context.flags


def test_grad_norms_are_the_ones_the_optimizer_applies():
    torch.manual_seed(0)
    D = nn.Linear(3, 1)
    G = nn.Linear(2, 3)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.1)
    doctor = gandoctor.Doctor(G, D, d_optimizer=opt_d, schedule=Schedule(flush_every=1), strict=True)
    expected = []
    for _ in range(3):
        loss = D(torch.randn(8, 3)).pow(2).mean()
        opt_d.zero_grad()
        loss.backward()
        expected.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in D.parameters()])).item())
        opt_d.step()
    doctor.step(d_loss=loss)
    view = doctor.signals.get("grad_norm.d")
    assert view is not None
    assert view.values[-1] == pytest.approx(sum(expected) / 3, rel=1e-5)
    assert doctor.signals.get("opt_steps.d").values[-1] == 3


def test_an_optimizer_that_also_steps_another_network_is_read_for_the_watched_one():
    """CycleGAN: one Adam over G_AB and G_BA, the Doctor watching G_AB/D_B: grad_norm.g is G_AB's."""
    import itertools

    torch.manual_seed(0)
    g_ab, g_ba, D = nn.Linear(2, 3), nn.Linear(3, 2), nn.Linear(3, 1)
    opt_g = torch.optim.SGD(itertools.chain(g_ab.parameters(), g_ba.parameters()), lr=0.1)
    doctor = gandoctor.Doctor(g_ab, D, g_optimizer=opt_g, schedule=Schedule(flush_every=1), strict=True)
    loss = D(g_ab(torch.randn(8, 2))).mean() + 100 * g_ba(torch.randn(8, 3)).pow(2).mean()  # G_BA's grads dwarf G_AB's
    opt_g.zero_grad()
    loss.backward()
    expected = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in g_ab.parameters()])).item()
    opt_g.step()
    doctor.step(g_loss=loss)
    assert doctor.signals.get("grad_norm.g").values[-1] == pytest.approx(expected, rel=1e-5)


def one_d_step_with_gradients(entry: float, dtype: torch.dtype = torch.float32) -> gandoctor.Doctor:
    """A doctor that watched one optimizer step of a 3-in 1-out linear D whose four gradient
    entries all equal ``entry`` (its gradient norm is 2 x entry)."""
    D = nn.Linear(3, 1).to(dtype)
    G = nn.Linear(2, 3).to(dtype)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.0)
    doctor = gandoctor.Doctor(G, D, d_optimizer=opt_d, schedule=Schedule(flush_every=1), strict=True)
    opt_d.zero_grad()
    for p in D.parameters():
        p.grad = torch.full_like(p, entry)
    opt_d.step()
    doctor.step(d_loss=torch.tensor(1.0, dtype=dtype))
    return doctor


def test_a_huge_but_finite_gradient_norm_is_recorded_finite():
    # A float32 sum of squares overflows past ~1.8e19; a blow-up's last finite step would read
    # as non-finite one step early (the run's first NaN is the onset GD501 must report).
    view = one_d_step_with_gradients(1e30).signals.get("grad_norm.d")
    assert view is not None
    assert view.nonfinite[-1] == 0
    assert view.values[-1] == pytest.approx(2e30, rel=1e-5)  # four entries of 1e30


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_gradient_norms_of_a_model_in_another_precision(dtype):
    # The fused norm runs in float32; a float64 gradient cannot be narrowed to it (the tap failed
    # and was switched off on double-precision models).
    doctor = one_d_step_with_gradients(2.0, dtype)
    assert doctor.disabled_probes == {}
    assert doctor.signals.get("grad_norm.d").values[-1] == pytest.approx(4.0, rel=1e-3)  # four entries of 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_host_norms_equal_a_float64_norm_of_each_gradient(dtype):
    # NumPy for float32 and float16 (views, no copy), the fused torch norm for bfloat16; a sum of
    # squares past float32's range taken again in float64, NaN kept.
    from gandoctor.probes.gradients import host_norms

    gen = torch.Generator().manual_seed(3)
    grads = [torch.randn(128, 64, generator=gen).to(dtype), torch.randn(64, 128, generator=gen).to(dtype).t(), torch.randn(1, generator=gen).to(dtype)]
    expected = [float(torch.linalg.vector_norm(g.double())) for g in grads]
    assert host_norms(grads) == pytest.approx(expected, rel=1e-5)
    huge = torch.full((4,), 1e30 if dtype == torch.float32 else 6e4, dtype=dtype)
    assert host_norms([huge]) == pytest.approx([float(torch.linalg.vector_norm(huge.double()))], rel=1e-5)
    assert math.isnan(host_norms([torch.tensor([1.0, float("nan")], dtype=dtype)])[0])
    # A double-precision model's gradients in float64, never narrowed (a norm past float32's range stays exact).
    assert host_norms([torch.tensor([3.0, 4.0], dtype=torch.float64), torch.tensor([3e200, 4e200], dtype=torch.float64)]) == pytest.approx([5.0, 5e200])
    # A model turned to double after the tap listed its parameters: each gradient is read by its own dtype.
    assert host_norms([torch.tensor([3.0, 4.0]), torch.tensor([6.0, 8.0], dtype=torch.float64)]) == [5.0, 10.0]
    # backward(create_graph=True) leaves gradients that require grad themselves
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    (w**2).sum().backward(create_graph=True)
    assert w.grad is not None and w.grad.requires_grad
    assert host_norms([w.grad]) == pytest.approx([math.hypot(2.0, 4.0)])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_device_norms_of_gradients_in_any_precision(dtype):
    # The accelerator path (XPU, HPU, ...: not CUDA, not the CPU's host path) summed in float32,
    # which a double-precision model's gradients cannot be narrowed to: the tap failed there.
    from gandoctor.probes.gradients import tensor_norms

    norms = tensor_norms([torch.full((4,), 2.0, dtype=dtype), torch.full((9,), 1.0, dtype=dtype)])
    assert norms.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert norms.tolist() == pytest.approx([4.0, 3.0], rel=1e-3)


def train_on_points(
    G: nn.Module, D: nn.Module, opt_g, opt_d, doctor: gandoctor.Doctor, steps: int, dtype: torch.dtype = torch.float32, after_d_step=None
) -> None:
    """The plain non-saturating loop on 2-D Gaussian points (z of 4), the doctor stepped after
    each G update and closed at the end; ``after_d_step()`` runs after each D update (a scheduler)."""
    bce = nn.BCEWithLogitsLoss()
    for step in range(steps):
        real, fake = torch.randn(64, 2, dtype=dtype), G(torch.randn(64, 4, dtype=dtype))
        ones, zeros = torch.ones(64, 1, dtype=dtype), torch.zeros(64, 1, dtype=dtype)
        d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        if after_d_step is not None:
            after_d_step()
        g_loss = bce(D(fake), ones)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        doctor.step(d_loss, g_loss, real, fake, step=step)
    doctor.close()


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_every_probe_runs_on_a_gan_trained_in_another_precision(dtype, tmp_path):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2)).to(dtype)
    D = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1)).to(dtype)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    schedule = Schedule(flush_every=5, d_probe_every=5, weight_every=5, layer_every=5, feature_every=5, sample_stats_every=10, spectrum_every=10, latent_every=10, budget=None)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, tmp_path, schedule=schedule, strict=True, live_every=0)
    train_on_points(G, D, opt_g, opt_d, doctor, 80, dtype)
    assert doctor.disabled_probes == {}
    for name in ("grad_norm.d", "grad_norm.g", "d.auc", "weight_norm.d", "feat.diversity_ratio", "latent.drift"):
        view = doctor.signals.get(name)
        assert view is not None and np.isfinite(view.values).any(), name


@pytest.mark.parametrize("path", ["cpu values read directly", "one copy per device"])
def test_the_flush_brings_every_scalar_to_the_host_exactly_and_in_order(path):
    from gandoctor.probes.doctor import _to_host, one_copy_to_host

    tensors = [
        torch.tensor(1.5), torch.tensor(0.1, dtype=torch.float64), torch.tensor(2e30, dtype=torch.float64) * 1e10,
        torch.tensor(7), torch.tensor([0.25]), torch.tensor(float("nan")), torch.tensor(0.1, dtype=torch.float16),
        torch.tensor(True), torch.tensor(0.3, dtype=torch.bfloat16),
    ]
    # What each value is, widened on its own: float32 0.1 stays float32's 0.1, 2e40 stays finite.
    expected = [t.reshape(()).to(torch.float64).item() for t in tensors]
    got = _to_host(tensors) if path == "cpu values read directly" else one_copy_to_host(tensors, torch.device("cpu"))
    assert got[:5] == expected[:5] and math.isnan(got[5]) and got[6:] == expected[6:]
    assert all(type(v) is float for v in got) and got[2] == 2e40


def test_several_d_steps_per_g_step_are_counted_and_flagged():
    _, _, doctor = train(30, {"schedule": Schedule(flush_every=5), "strict": True}, d_steps=3, pass_outputs=True)
    doctor.close()
    assert set(doctor.signals.get("opt_steps.d").values.tolist()) == {3.0}
    assert set(doctor.signals.get("opt_steps.g").values.tolist()) == {1.0}
    assert "multi_d_steps" in doctor.context.flags


def test_a_failing_probe_is_reported_once_and_switched_off(caplog):
    calls = []

    def broken_features(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        raise RuntimeError("feature extractor exploded")

    G0, D0, _ = train(30, None)
    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        G1, D1, doctor = train(30, {"features": broken_features, "schedule": Schedule(feature_every=1)})
    assert len(calls) == 2  # the feature probe's try and the bin reservoir's (which leaves the saying to it); no more
    assert "features" in doctor.disabled_probes
    assert sum("feature extractor exploded" in r.getMessage() for r in caplog.records) == 1
    for a, b in zip(state(G0, D0), state(G1, D1), strict=True):
        assert torch.equal(a, b)
    assert "loss.d" in doctor.report().signals


def test_strict_mode_reraises():
    def broken(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        train(3, {"features": broken, "schedule": Schedule(feature_every=1), "strict": True})


def test_non_finite_losses_are_data_not_crashes(tmp_path):
    G, D = make_models()
    doctor = gandoctor.Doctor(G, D, log_dir=tmp_path, schedule=Schedule(flush_every=3), strict=True)
    for step in range(400):
        bad = step >= 100
        doctor.step(d_loss=torch.tensor(float("nan") if bad else 0.7), g_loss=float("inf") if bad else 0.7)
    report = doctor.report()
    doctor.close()
    assert "exploding_gradients" in report.modes
    finding = next(f for f in report.findings if f.mode == "exploding_gradients")
    assert 100 <= finding.onset_step <= 150


def test_conditional_discriminator_gets_the_labels():
    torch.manual_seed(0)
    G, D = nn.Linear(4, 2), CondD()
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(d_probe_every=1), strict=True)
    y = torch.randint(0, 3, (16,))
    doctor.step(d_loss=0.5, g_loss=0.5, real=torch.randn(16, 2), fake=G(torch.randn(16, 4)), labels=y)
    assert len(D.seen_labels) == 2 and torch.equal(D.seen_labels[0], y)
    doctor.close()
    assert "d.auc" in doctor.signals


class AuxD(nn.Module):
    """An ACGAN's D: images only, two heads (validity, class logits)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 16), nn.ReLU())
        self.adv, self.aux = nn.Linear(16, 1), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return torch.sigmoid(self.adv(h)), self.aux(h)


class CondG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.net = nn.Embedding(3, 4), nn.Linear(4, 2)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(self.emb(y) * z)


def test_an_acgan_d_that_takes_no_labels_is_called_without_them():
    """A conditional G needs fake_labels= (its fixed codes run with them) while an ACGAN's D
    classifies the labels itself: the doctor must not hand them to D."""
    torch.manual_seed(0)
    G, D = CondG(), AuxD()
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(d_probe_every=1, flush_every=5, latent_every=5), strict=True)
    for _ in range(20):
        y = torch.randint(0, 3, (32,))
        doctor.step(d_loss=1.0, g_loss=1.0, real=torch.randn(32, 2), fake=G(torch.randn(32, 4), y).detach(), labels=y, fake_labels=y)
    doctor.close()
    assert not doctor.disabled_probes
    assert "d.auc" in doctor.signals and "latent.drift" in doctor.signals


def test_a_d_called_with_other_inputs_says_how_to_pass_them():
    class ThreeInputD(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(2, 1)

        def forward(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    doctor = gandoctor.Doctor(nn.Linear(4, 2), ThreeInputD(), schedule=Schedule(d_probe_every=1))
    y = torch.zeros(8, dtype=torch.long)
    doctor.step(d_loss=0.5, g_loss=0.5, real=torch.randn(8, 2), fake=torch.randn(8, 2), labels=y)
    doctor.close()
    assert "d_forward=" in doctor.disabled_probes["d_probe"]


def test_a_loader_batch_of_images_and_labels_is_taken_as_the_images():
    """The Quickstart's ``for step, real in enumerate(loader)`` over a labelled dataset passes
    ``real`` as an (images, labels) pair or a dict: the images are the real batch."""
    torch.manual_seed(0)
    G, D = make_models()
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(d_probe_every=1, feature_every=1, flush_every=5), strict=True)
    for i in range(10):
        x, y = torch.randn(64, 2), torch.randint(0, 3, (64,))
        batch = [x, y] if i % 2 else {"label": y, "pixel_values": x}  # torchvision-style, Hugging Face-style
        doctor.step(d_loss=1.0, g_loss=1.0, real=batch, fake=G(torch.randn(64, 4)).detach())
    doctor.close()
    assert not doctor.disabled_probes
    assert "d.auc" in doctor.signals and "feat.coverage" in doctor.signals


def test_an_epoch_s_short_last_batch_gives_no_sample_statistics():
    """1797 digits in batches of 64 end each epoch with 5: statistics of 5 samples are noise."""
    torch.manual_seed(0)
    G, D = make_models()
    featurised: list[int] = []

    def features(x: torch.Tensor) -> torch.Tensor:
        featurised.append(x.shape[0])
        return x

    doctor = gandoctor.Doctor(G, D, features=features, schedule=Schedule(d_probe_every=1, feature_every=1, flush_every=4), strict=True)
    sizes = [64, 64, 64, 5, 64, 64, 40]
    for n in sizes:
        real = torch.randn(n, 2)
        d_out = D(real).detach()
        doctor.step(d_loss=1.0, g_loss=1.0, real=real, fake=G(torch.randn(n, 4)).detach(), d_real=d_out, d_fake=d_out - 1)
    doctor.close()
    assert doctor.signals.get("d.auc").steps.tolist() == [0, 1, 2, 4, 5, 6]  # step 3 (5 samples) skipped
    assert featurised and 5 not in featurised and 40 in featurised


def test_an_energy_d_lower_for_reals_is_read_with_its_sign_turned():
    """EBGAN / BEGAN / softmax GAN: D's output is an energy, lower for real samples."""
    G, D = nn.Linear(4, 2), nn.Linear(2, 1)
    with torch.no_grad():
        D.weight.fill_(0.0)
        D.bias.fill_(0.0)
        D.weight[0, 0] = 1.0  # energy = x0: the reals (x0 = -3) lie lower than the fakes (x0 = +3)
    real, fake = torch.randn(32, 2) + torch.tensor([-3.0, 0.0]), torch.randn(32, 2) + torch.tensor([3.0, 0.0])
    for d_output, separates in (("energy", True), ("critic", False)):
        doctor = gandoctor.Doctor(G, D, d_output=d_output, schedule=Schedule(d_probe_every=1, flush_every=1), strict=True)
        doctor.step(d_loss=1.0, g_loss=1.0, real=real, fake=fake)
        doctor.close()
        assert doctor.signals.get("d.auc").values[-1] == (1.0 if separates else 0.0), d_output
        assert bool(doctor.signals.get("d.acc").values[-1] > 0.9) is separates, d_output


def test_an_autoencoder_d_is_refused_with_the_way_to_read_it(caplog):
    """BEGAN / EBGAN: D returns a reconstruction of its input; its mean pixel is no score."""

    class AutoencoderD(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 8))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    torch.manual_seed(0)
    D = AutoencoderD()
    doctor = gandoctor.Doctor(nn.Linear(4, 8), D, schedule=Schedule(d_probe_every=1, flush_every=1))
    real, fake = torch.randn(16, 8), torch.randn(16, 8) + 2
    doctor.step(d_loss=1.0, g_loss=1.0, real=real, fake=fake)
    assert "d_output='energy'" in doctor.disabled_probes["d_probe"]
    (said,) = [r for r in caplog.records if "d_output='energy'" in r.getMessage()]
    assert said.exc_info is None  # a documented refusal: the message, no traceback
    # Its loss is a reconstruction error: the rules on D's loss stand down (a BEGAN's, under
    # BCE's floor, was called D dominance by GD106), and the report asks for no loss unit.
    assert "energy_d" in doctor.context.flags
    doctor.close()
    report = doctor.report()
    skipped = {s.rule for s in report.skipped_rules if "energy_d" in s.missing}
    assert {"GD102", "GD106"} <= skipped
    assert "d_loss_unit" not in report.render_text(width=200)
    # What the message says works: the reconstruction error, lower for reals.
    doctor = gandoctor.Doctor(
        nn.Linear(4, 8), D, d_output="energy", d_forward=lambda D, x, y: ((D(x) - x) ** 2).flatten(1).mean(1),
        schedule=Schedule(d_probe_every=1, flush_every=1), strict=True,
    )
    doctor.step(d_loss=1.0, g_loss=1.0, real=real, fake=fake)
    doctor.close()
    assert "d.auc" in doctor.signals


def test_an_autoencoder_d_returning_its_reconstruction_and_code_is_told_the_d_forward_that_works():
    # znxlwm's EBGAN: D returns (reconstruction, code); the advice's ((D(x) - x) ** 2) failed on the tuple.
    class EBGAND(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encode, self.decode = nn.Linear(8, 4), nn.Linear(4, 8)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            code = self.encode(x)
            return self.decode(code), code

    torch.manual_seed(0)
    D = EBGAND()
    real, fake = torch.randn(16, 8), torch.randn(16, 8) + 2
    doctor = gandoctor.Doctor(nn.Linear(4, 8), D, schedule=Schedule(d_probe_every=1, flush_every=1))
    doctor.step(d_loss=1.0, g_loss=1.0, real=real, fake=fake)
    message = doctor.disabled_probes["d_probe"]
    doctor.close()
    assert "d_forward=lambda D, x, y: ((D(x)[0] - x) ** 2).flatten(1).mean(1)" in message
    advised = lambda D, x, y: ((D(x)[0] - x) ** 2).flatten(1).mean(1)  # noqa: E731 - the message's code, as pasted
    doctor = gandoctor.Doctor(nn.Linear(4, 8), D, d_output="energy", d_forward=advised,
                              schedule=Schedule(d_probe_every=1, flush_every=1), strict=True)
    doctor.step(d_loss=1.0, g_loss=1.0, real=real, fake=fake)
    doctor.close()
    assert "d.auc" in doctor.signals


def test_negative_d_loss_marks_a_critic():
    G, D = make_models()
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=1), strict=True)
    doctor.step(d_loss=-0.3, g_loss=0.2)
    assert "critic" in doctor.context.flags


def test_live_report_and_cli_agree(tmp_path):
    # The recipe that collapses in the demo: the live report and the log read back must agree.
    from gandoctor.demo import RECIPES
    from gandoctor.demo import train as demo_train

    with demo_train(RECIPES["collapse"], 2500, tmp_path / "run") as doctor:  # the demo's own length
        live = doctor.report()
    offline = analyze(tmp_path / "run")
    assert live.findings, "the collapse recipe must produce findings for this comparison to mean anything"
    assert live.verdict == offline.verdict
    assert [(f.mode, f.rule, f.onset_step, f.confidence) for f in live.findings] == [
        (f.mode, f.rule, f.onset_step, f.confidence) for f in offline.findings
    ]
    assert live.context.flags == offline.context.flags


def test_rejects_bad_arguments():
    G, D = make_models()
    with pytest.raises(TypeError, match="discriminator must be a torch.nn.Module"):
        gandoctor.Doctor(G, "not a module")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="d_output"):
        gandoctor.Doctor(G, D, d_output="softmax")
    with pytest.raises(ValueError, match="Schedule.flush_every"):
        Schedule(flush_every=0)


def test_memory_stays_bounded_over_many_steps():
    G, D = make_models()
    doctor = gandoctor.Doctor(G, D, capacity=64, schedule=Schedule(flush_every=50), strict=True)
    for step in range(5000):
        doctor.step(d_loss=0.69 + 0.01 * math.sin(step), g_loss=0.7)
    doctor.close()
    view = doctor.signals.get("loss.d")
    assert len(view) <= 64
    assert int(view.counts.sum()) == 5000


def test_wrapped_optimizers_and_modules_are_unwrapped():
    class Wrapper:  # the shape of Lightning's LightningOptimizer / Accelerate's AcceleratedOptimizer
        def __init__(self, optimizer):
            self.optimizer = optimizer

    G, D = make_models()
    opt_d = torch.optim.SGD(D.parameters(), lr=0.1)
    dp = nn.DataParallel(D)
    doctor = gandoctor.Doctor(G, dp, d_optimizer=Wrapper(opt_d), schedule=Schedule(flush_every=1), strict=True)
    assert doctor.discriminator is D
    D(torch.randn(8, 2)).mean().backward()
    opt_d.step()
    doctor.step(d_loss=0.1)
    assert doctor.signals.get("grad_norm.d") is not None
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        gandoctor.Doctor(G, D, d_optimizer=object())  # type: ignore[arg-type]

    class OptimWrapper:  # fastai's wrapper of a torch optimizer holds it as .opt
        def __init__(self, opt):
            self.opt = opt

    assert gandoctor.Doctor(G, D, d_optimizer=OptimWrapper(opt_d)).probes  # accepted
    # fastai's own optimizer class is also named Optimizer: "expected an Optimizer, got Optimizer" read as nonsense.
    fastai_own = type("Optimizer", (), {"__module__": "fastai.optimizer"})
    with pytest.raises(TypeError, match=r"got fastai\.optimizer\.Optimizer: fastai's own optimizers are not torch's"):
        gandoctor.Doctor(G, D, d_optimizer=fastai_own())  # type: ignore[arg-type]


def test_d_spectrum_matches_the_singular_values_of_its_matrices():
    _, D, doctor = train(5, {"schedule": Schedule(flush_every=1, spectrum_every=2), "strict": True})
    doctor.close()
    stable, effective = [], []
    for _name, p in D.named_parameters():
        if p.dim() < 2:
            continue
        s = torch.linalg.svdvals(p.detach().double().reshape(p.shape[0], -1))
        stable.append(float((s**2).sum() / s[0] ** 2 / len(s)))
        q = s / s.sum()
        effective.append(float(torch.exp(-(q * q.log()).sum())) / len(s))
    assert doctor.signals.get("spectrum.d.stable_rank").steps.tolist() == [0, 2, 4]
    # The last record (step 4) is after training ended; the models have not moved since.
    assert doctor.signals.get("spectrum.d.stable_rank").values[-1] == pytest.approx(sum(stable) / len(stable), rel=1e-4)
    assert doctor.signals.get("spectrum.d.effective_rank").values[-1] == pytest.approx(sum(effective) / len(effective), rel=1e-4)
    assert "spectrum.d.layer.4" in doctor.signals  # D's output layer, by its module name
    assert all(0 < v <= 1 for v in stable + effective)


def test_spectrum_is_off_with_zero_and_skips_matrices_over_the_size_cap():
    _, _, off = train(3, {"schedule": Schedule(flush_every=1, spectrum_every=0), "strict": True})
    off.close()
    assert "spectrum.d.stable_rank" not in off.signals
    _, _, capped = train(3, {"schedule": Schedule(flush_every=1, spectrum_every=1, spectrum_max_elements=40), "strict": True})
    capped.close()
    # Only the output layer (1x32 = 32 elements) is under the cap; the input layer (32x2 = 64) is skipped.
    assert "spectrum.d.layer.4" in capped.signals and "spectrum.d.layer.0" not in capped.signals


def test_ndb_runs_on_its_schedule_with_the_sample_statistics():
    schedule = Schedule(feature_every=1, sample_stats_every=5, ndb_every=10, flush_every=5)
    _, _, doctor = train(21, {"schedule": schedule, "strict": True})
    doctor.close()
    view = doctor.signals.get("feat.ndb_frac")
    assert view is not None and view.steps.tolist() == [10, 20]
    assert all(0 <= v <= 1 for v in view.values)
    with pytest.raises(ValueError, match="ndb_every"):
        Schedule(sample_stats_every=100, ndb_every=150)


def test_every_optional_probe_leaves_training_and_global_rngs_untouched(tmp_path):
    import numpy as np

    schedule = Schedule(
        d_probe_every=1, feature_every=1, sample_stats_every=5, weight_every=3, flush_every=4,
        extended_sample_stats=True, ndb_every=10, fidelity_every=10, spectrum_every=3,
    )
    np.random.seed(7)
    G0, D0, _ = train(21, None)
    rngs_without = (torch.get_rng_state(), np.random.get_state()[1].copy())
    np.random.seed(7)
    G1, D1, doctor = train(21, {"log_dir": tmp_path, "schedule": schedule, "strict": True})
    rngs_with = (torch.get_rng_state(), np.random.get_state()[1].copy())
    doctor.close()
    for a, b in zip(state(G0, D0), state(G1, D1), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(rngs_without[0], rngs_with[0])
    assert np.array_equal(rngs_without[1], rngs_with[1])
    for name in ("feat.ndb_frac", "feat.fid", "feat.kid", "feat.vendi_ratio", "spectrum.d.stable_rank"):
        assert name in doctor.signals, name


def test_spectrum_skips_non_finite_weights_without_switching_itself_off():
    G, D = make_models()
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=1, spectrum_every=1))
    doctor.step(d_loss=1.0)
    with torch.no_grad():
        D[0].weight[0, 0] = float("nan")
    doctor.step(d_loss=1.0)
    with torch.no_grad():
        D[0].weight[0, 0] = 0.5
    doctor.step(d_loss=1.0)
    doctor.close()
    assert "spectrum" not in doctor.disabled_probes
    assert doctor.signals.get("spectrum.d.layer.0").steps.tolist() == [0, 2]
    assert doctor.signals.get("spectrum.d.layer.4").steps.tolist() == [0, 1, 2]


def bank(doctor):
    return next(p for p in doctor.probes if p.name == "sample_stats").host.bank


def test_bins_are_fitted_once_on_fixed_features_and_refitted_on_d_features():
    schedule = Schedule(feature_every=1, feature_batch=64, sample_stats_every=5, flush_every=5)
    _, _, doctor = train(31, {"schedule": schedule, "strict": True})
    fitted = bank(doctor).bins
    assert fitted is not None and fitted.centroids.shape == (16, 2)
    occupancy = doctor.signals.get("feat.occupancy_ratio")
    # 8 batches of 64 reals fill the 512-feature reservoir at step 7; the first measurement after is step 10.
    assert occupancy.steps[0] == 10 and ((occupancy.values > 0) & (occupancy.values <= 2)).all()
    assert "feat.bin_tv" in doctor.signals
    _, _, doctor = train(11, {"schedule": schedule, "strict": True, "features": "d_penultimate"})
    # Refitted on the current reals at each measurement: present at step 5, before a reservoir could fill.
    occupancy = doctor.signals.get("feat.occupancy_ratio")
    assert occupancy.steps[0] == 5 and bank(doctor).bins.centroids.shape[1] == 32


def test_bins_wait_for_no_feature_check_to_gather_their_reals():
    # At the default schedule the feature checks (every 25 steps) alone gathered 512 reals of 64 at
    # step 175; the reservoir now takes the real batch at every step until it is full (step 7).
    _, _, doctor = train(60, {"strict": True})
    doctor.close()
    occupancy = doctor.signals.get("feat.occupancy_ratio")
    assert occupancy.steps.tolist()[0] == 50 and bank(doctor).bins is not None
    assert not bank(doctor).reservoir  # emptied once the bins are fitted


def test_the_recording_side_imports_no_diagnosis_at_module_level():
    import ast
    from pathlib import Path

    root = Path(gandoctor.__file__).parent
    recording = [*sorted((root / "probes").glob("*.py")), *(root / f for f in ("context.py", "features.py", "samplestats.py", "fidelity.py"))]
    recording += sorted((root / "runlog").glob("*.py"))
    diagnosis = {"engine", "rules", "report", "analysis", "diagnose", "remedies", "windows", "stats", "config", "reporters"}
    offenders = []
    for path in recording:
        for node in ast.parse(path.read_text()).body:  # module level only; imports inside functions are lazy
            if isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[-1]} | {a.name for a in node.names if not node.module or node.level}
                if node.level and names & diagnosis:
                    offenders.append(f"{path.name}: from {'.' * node.level}{node.module or ''} import ...")
    assert len(recording) >= 14 and not offenders, offenders


def test_every_recorded_signal_is_declared_by_a_probe_and_known_to_the_registry(tmp_path):
    from fnmatch import fnmatch

    from gandoctor.signals import SIGNALS

    schedule = Schedule(
        d_probe_every=1, feature_every=1, sample_stats_every=5, weight_every=3, flush_every=4, layer_every=2,
        extended_sample_stats=True, ndb_every=10, fidelity_every=10, spectrum_every=3, latent_every=2, budget=None,
    )
    G, D, doctor = train(21, {"log_dir": tmp_path, "schedule": schedule, "strict": True})
    doctor.step(d_loss=0.5, g_loss=0.5, custom=1.0)
    doctor.close()
    declared = [s for p in doctor.probes for s in p.signals]
    assert all(s in SIGNALS for s in declared if "*" not in s), [s for s in declared if "*" not in s and s not in SIGNALS]
    recorded = doctor.signals.names()
    undeclared = [n for n in recorded if not any(fnmatch(n, s) for s in declared)]
    assert len(recorded) > 30 and not undeclared, undeclared


def test_gradient_norms_on_every_other_iteration_measure_only_those():
    _, _, doctor = train(20, {"schedule": Schedule(grad_every=2, flush_every=5, budget=None), "strict": True}, d_steps=3)
    doctor.close()
    norms, steps = doctor.signals.get("grad_norm.d"), doctor.signals.get("opt_steps.d")
    assert norms.steps.tolist() == list(range(0, 20, 2)) and (norms.values > 0).all()
    assert set(steps.values.tolist()) == {3.0}  # the D steps of the measured iteration, not of two


def test_sample_statistics_use_one_step_s_fakes_and_measure_once_more_when_training_ends():
    # A collapsed G whose single output point drifts: pooled across feature steps its fakes look
    # spread out; from one step they are all the same point.
    G, D = make_models()
    doctor = gandoctor.Doctor(G, D, features="pixels", schedule=Schedule(budget=None, latent_every=0), strict=True)
    gen = torch.Generator().manual_seed(0)
    for step in range(150):
        real = torch.randn(128, 2, generator=gen)
        point = torch.tensor([[math.cos(step / 10), math.sin(step / 10)]]) * 2
        fake = point + 1e-4 * torch.randn(128, 2, generator=gen)
        doctor.step(d_loss=torch.tensor(1.0), g_loss=torch.tensor(1.0), real=real, fake=fake)
    doctor.close()
    view = doctor.signals.get("feat.diversity_ratio")
    assert view is not None
    assert view.steps.tolist() == [50, 100, 149]  # the schedule's checks, then the newest features (step 125) at the end
    assert (view.values < 0.01).all()


def test_a_report_before_close_measures_the_newest_features_once():
    # The Quickstart prints doctor.report() before doctor.close(): the report must not stop at the
    # last scheduled check (a 700-step run read "samples over steps 550..650"), and close() after
    # it measures nothing twice.
    G, D = make_models()
    doctor = gandoctor.Doctor(G, D, features="pixels", schedule=Schedule(budget=None, latent_every=0), strict=True)
    gen = torch.Generator().manual_seed(0)
    for _ in range(140):
        doctor.step(d_loss=torch.tensor(1.0), g_loss=torch.tensor(1.0), real=torch.randn(128, 2, generator=gen),
                    fake=torch.randn(128, 2, generator=gen))
    report = doctor.report()
    assert report.samples is not None and report.samples.last_step == 139
    doctor.close()
    assert doctor.signals.get("feat.diversity_ratio").steps.tolist() == [50, 100, 139]


def test_a_pair_of_image_batches_as_real_is_read_as_its_first_and_said_once(caplog):
    """CoGAN's two domains passed as one tuple: the probes read the first batch (as they do a
    loader's (images, labels)), and the doctor says so once, where the report shows it."""
    G, D = nn.Sequential(nn.Linear(4, 8)), nn.Sequential(nn.Flatten(), nn.Linear(8, 1))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=1))
    a, b = torch.randn(16, 1, 2, 4), torch.randn(16, 1, 2, 4)
    for _ in range(3):
        doctor.step(d_loss=1.0, g_loss=1.0, real=(a, b), fake=(b, a))
    said = [w for w in doctor.report().warnings if "pair of image batches" in w]
    assert len(said) == 1 and sum("pair of image batches" in r.getMessage() for r in caplog.records) == 1
    labelled = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=1))
    labelled.step(d_loss=1.0, g_loss=1.0, real=(a, torch.arange(16)), fake=a)  # (images, labels): nothing to say
    assert not any("pair of image batches" in w for w in labelled.report().warnings)


def test_a_numpy_batch_is_read_and_anything_else_is_said_once_not_failed_on(caplog):
    """real= as a NumPy array (float64, beside G's float32 samples) is read like a tensor; a list of
    numbers is no batch the probes can read: said once, and no probe is switched off over it."""
    G, D = make_models()
    schedule = Schedule(flush_every=5, d_probe_every=5, feature_every=5, sample_stats_every=10, latent_every=0, budget=None)
    doctor = gandoctor.Doctor(G, D, schedule=schedule, features="pixels", strict=True)
    listed = gandoctor.Doctor(G, D, schedule=schedule, features="pixels")
    gen = torch.Generator().manual_seed(0)
    for step in range(40):
        real = torch.randn(64, 2, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            fake = G(torch.randn(64, 4, generator=gen))
        doctor.step(d_loss=1.0, g_loss=1.0, real=real.numpy(), fake=fake, step=step)
        listed.step(d_loss=1.0, g_loss=1.0, real=real.tolist(), fake=fake, step=step)
    doctor.close()
    listed.close()
    assert doctor.signals.get("d.auc") is not None and doctor.signals.get("feat.diversity_ratio") is not None
    assert listed.disabled_probes == {}
    assert listed.signals.get("d.auc") is None  # nothing to read it from
    said = [w for w in listed.report().warnings if "real= is a builtins.list" in w]
    assert len(said) == 1 and sum("real= is a builtins.list" in r.getMessage() for r in caplog.records) == 1


def test_a_watched_d_and_its_optimizer_can_be_copied_and_saved_whole(tmp_path):
    """copy.deepcopy(D) (an EMA, an unrolled GAN's look-ahead D) and torch.save(D) failed on the
    doctor's hooks ("cannot pickle '_io.TextIOWrapper'": the log file behind a bound method); the
    copies get a hook that does nothing, and their forwards do not reach the doctor."""
    import copy
    import io as _io

    G, D = make_models()
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, tmp_path, strict=True)
    assert D._forward_hooks  # the loss form's capture is on, as in the first steps of a run
    copied, opt_copied = copy.deepcopy(D), copy.deepcopy(opt_d)
    buffer = _io.BytesIO()
    torch.save(D, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    probe = next(p for p in doctor.probes if p.name == "loss_form")
    before = len(probe.captured)
    x = torch.randn(8, 2)
    for module in (copied, loaded):
        module(x)
    assert len(probe.captured) == before  # the copies' forwards are not the loop's D
    D(x)
    assert len(probe.captured) == before + 1
    opt_copied.step()  # its hook does nothing either
    doctor.close()
    assert doctor.disabled_probes == {}


def test_a_gan_of_lazy_modules_is_watched_from_before_its_first_forward(tmp_path):
    """nn.LazyLinear has no size until its first forward: Doctor(...) failed on counting its
    parameters, and the fixed-latent probe guessed a zero-width code from the empty first layer."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.LazyLinear(32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.LazyLinear(32), nn.ReLU(), nn.Linear(32, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    schedule = Schedule(latent_every=10, flush_every=5, budget=None)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, tmp_path, schedule=schedule, strict=True, live_every=0)
    train_on_points(G, D, opt_g, opt_d, doctor, 40)
    assert doctor.disabled_probes == {}
    assert doctor.signals.get("latent.drift") is not None and doctor.signals.get("grad_norm.g") is not None


def test_a_second_open_doctor_on_the_same_models_is_said_once(caplog):
    """One Doctor made per epoch and never closed: each adds its hooks; the newer one says so."""
    G, D = make_models()
    first = gandoctor.Doctor(G, D)
    second = gandoctor.Doctor(G, D)
    said = [w for w in second.report().warnings if "another Doctor, still open" in w]
    assert len(said) == 1 and not first.report().warnings
    first.close()
    second.close()
    assert not gandoctor.Doctor(G, D).report().warnings  # closed ones do not count


def test_swapped_optimizers_are_refused_before_training():
    G, D = make_models()
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    with pytest.raises(ValueError, match=r"g_optimizer steps D's parameters and none of its own network's: swapped\?"):
        gandoctor.Doctor(G, D, g_optimizer=opt_d, d_optimizer=opt_g)
    both = torch.optim.Adam([*G.parameters(), *D.parameters()])  # one optimizer over both networks: fine
    gandoctor.Doctor(G, D, g_optimizer=both, d_optimizer=both).close()


def _scheduled_run(tmp_path, scheduler_first: bool, steps: int = 120):
    """The plain loop with D's rate decayed tenfold every 40 iterations by a StepLR made before
    or after the Doctor."""
    torch.manual_seed(0)
    G, D = nn.Sequential(nn.Linear(4, 2)), nn.Sequential(nn.Linear(2, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=1e-3), torch.optim.Adam(D.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt_d, step_size=40, gamma=0.1) if scheduler_first else None
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=tmp_path, schedule=Schedule(weight_every=10, flush_every=10))
    if sched is None:
        sched = torch.optim.lr_scheduler.StepLR(opt_d, step_size=40, gamma=0.1)
    train_on_points(G, D, opt_g, opt_d, doctor, steps, after_d_step=sched.step)
    return doctor, opt_d


@pytest.mark.parametrize("scheduler_first", [True, False])
def test_a_learning_rate_schedule_is_noted_with_the_rate_in_use(tmp_path, scheduler_first):
    # Remedies quote the run's rates ("D's lr is 0.001: try 0.0005") and skip what it uses: a
    # scheduler made after the Doctor, or one that has decayed the rate since, must reach the context.
    doctor, opt_d = _scheduled_run(tmp_path, scheduler_first)
    current = opt_d.param_groups[0]["lr"]
    assert current == pytest.approx(1e-6)  # three decays of the 1e-3 it started at
    context = doctor.context
    assert "lr_schedule" in context.flags
    assert context.values["lr_d"] == pytest.approx(current) and context.values["lr_g"] == pytest.approx(1e-3)
    read_back = gandoctor.read_run(tmp_path).context  # the run log holds the update too
    assert "lr_schedule" in read_back.flags and read_back.values["lr_d"] == pytest.approx(current)
    rates = doctor.signals.get("opt.lr_d")  # and the rates over the run, for remedies at a finding's onset
    assert rates.values[0] == pytest.approx(1e-3) and rates.values[-1] == pytest.approx(1e-5)  # step 110's
    assert any(v == pytest.approx(1e-4) for v in rates.values.tolist())  # the schedule's steps in between
    assert doctor.disabled_probes == {}


def test_a_decay_schedule_overshooting_below_zero_is_said_with_its_first_step(tmp_path):
    """A linear decay written for 60 iterations run for 120 (LambdaLR ``1 - it / 60``) takes D's
    rate below zero: D then climbs its loss; the report says so, live and from the run log."""
    torch.manual_seed(0)
    G, D = nn.Sequential(nn.Linear(4, 2)), nn.Sequential(nn.Linear(2, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=1e-3), torch.optim.SGD(D.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt_d, lambda it: 1 - it / 60)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=tmp_path, schedule=Schedule(weight_every=10, flush_every=10))
    train_on_points(G, D, opt_g, opt_d, doctor, 120, after_d_step=sched.step)
    said = [w for w in doctor.report().warnings if "learning rate is negative" in w]
    assert len(said) == 1 and said[0].startswith("D's learning rate is negative from step 60 (-0.000167)")
    doctor.close()
    assert [w for w in gandoctor.analyze(tmp_path).warnings if "learning rate is negative" in w] == said


def _halve_at_30(d_steps, opt_d: torch.optim.Optimizer, moved: bool) -> None:  # type: ignore[no-untyped-def]
    if next(d_steps) == 30 and moved:
        for group in opt_d.param_groups:
            group["lr"] = 5e-4


def test_a_constant_rate_is_no_schedule(tmp_path):
    G, D = nn.Sequential(nn.Linear(4, 2)), nn.Sequential(nn.Linear(2, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=1e-3), torch.optim.Adam(D.parameters(), lr=2e-4)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, schedule=Schedule(weight_every=10, flush_every=10))
    train_on_points(G, D, opt_g, opt_d, doctor, 60)
    assert "lr_schedule" not in doctor.context.flags
    assert doctor.context.values["lr_d"] == 2e-4
    # Set once after Doctor(...) and before the first step (rosinality's StyleGAN's adjust_lr()):
    # the run's rate, no schedule; a manual schedule that moves it afterwards is one.
    for moved_later in (False, True):
        doctor = gandoctor.Doctor(G, D, opt_g, opt_d, schedule=Schedule(weight_every=10, flush_every=10))
        for group in opt_d.param_groups:
            group["lr"] = 1e-3
        train_on_points(G, D, opt_g, opt_d, doctor, 60, after_d_step=functools.partial(_halve_at_30, iter(range(60)), opt_d, moved_later))
        assert ("lr_schedule" in doctor.context.flags) is moved_later
        assert doctor.context.values["lr_d"] == (5e-4 if moved_later else 1e-3)


def test_a_d_that_averages_its_batch_inside_is_refused_not_ranked(caplog):
    """The original WGAN code's netD returns output.mean(0): one number per batch. Ranked, it
    reads 0 or 1 at every check, a weak D as one that separates perfectly."""

    class BatchMeanD(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).mean(0).view(1)

    torch.manual_seed(0)
    doctor = gandoctor.Doctor(nn.Linear(4, 8), BatchMeanD(), schedule=Schedule(d_probe_every=1, flush_every=1))
    real, fake = torch.randn(16, 8), torch.randn(16, 8) + 2
    doctor.step(d_loss=1.0, g_loss=1.0, real=real, fake=fake)
    assert "one number for the 16 samples it was given" in doctor.disabled_probes["d_probe"]
    assert doctor.signals.get("d.auc") is None  # nothing ranked
    doctor.step(d_loss=1.0, g_loss=1.0, real=real, fake=fake)  # the rest goes on
    assert len(doctor.signals.get("loss.d").values) == 2
    doctor.close()


class FrozenVectorSpectralNorm(nn.Module):
    """Spectral norm as code older than torch.nn.utils.spectral_norm writes it (christiancosgrove's
    SN-GAN): the power-iteration vectors are Parameters that do not train, replaced in every
    forward (``u.data = ...``), and the weight is set as an attribute from them."""

    def __init__(self, module: nn.Linear) -> None:
        super().__init__()
        self.module = module
        w = module.weight
        del module._parameters["weight"]
        self.w_bar = nn.Parameter(w.data)
        self.u = nn.Parameter(nn.functional.normalize(torch.randn(w.shape[0]), dim=0), requires_grad=False)
        self.v = nn.Parameter(nn.functional.normalize(torch.randn(w.shape[1]), dim=0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.v.data = nn.functional.normalize(self.w_bar.data.t() @ self.u.data, dim=0)
        self.u.data = nn.functional.normalize(self.w_bar.data @ self.v.data, dim=0)
        sigma = self.u @ self.w_bar @ self.v
        self.module.weight = self.w_bar / sigma
        return self.module(x)


def test_a_spectral_norm_whose_vectors_are_frozen_parameters_trains_bit_identically():
    def run(with_doctor: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        D = nn.Sequential(FrozenVectorSpectralNorm(nn.Linear(2, 16)), nn.LeakyReLU(0.2), FrozenVectorSpectralNorm(nn.Linear(16, 1)))
        opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
        doctor = gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, schedule=Schedule(d_probe_every=1, flush_every=4),
                                  strict=True) if with_doctor else None
        for _ in range(20):
            real, fake = torch.randn(32, 2) + 1, G(torch.randn(32, 4))
            d_loss = nn.functional.relu(1 - D(real)).mean() + nn.functional.relu(1 + D(fake.detach())).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = -D(G(torch.randn(32, 4))).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            if doctor is not None:
                doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
        if doctor is not None:
            doctor.close()
            assert "d.auc" in doctor.signals  # the doctor's own D forwards ran (the G step's fakes are not the D step's)
        return state(G, D)

    for a, b in zip(run(False), run(True), strict=True):
        assert torch.equal(a, b)


def test_real_and_fake_of_other_sample_sizes_are_said_once_not_failed_on(caplog):
    """devnag's 1-D GAN keeps its real batch as one row of 500 values and G's as 500 rows of one: the
    probes read the first dimension as the batch, so the sample statistics failed deep in NumPy and
    were switched off; now the shapes are named once and those steps skipped."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(1, 16), nn.ELU(), nn.Linear(16, 1))
    D = nn.Sequential(nn.Linear(4, 16), nn.ELU(), nn.Linear(16, 1), nn.Sigmoid())  # D reads the batch's moments
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=5, feature_every=5, sample_stats_every=10, budget=None))
    for step in range(40):
        real = torch.randn(1, 500) * 1.25 + 4  # one row of 500 samples, as the script draws them
        fake = G(torch.rand(500, 1))
        doctor.step(d_loss=1.0, g_loss=1.0, real=real, fake=fake, step=step)
    doctor.close()
    assert doctor.disabled_probes == {}
    said = [w for w in doctor.report().warnings if "real= holds 500 values a sample" in w]
    assert len(said) == 1 and "(500, 1)" in said[0] and sum("real= holds 500" in r.getMessage() for r in caplog.records) == 1


def test_a_run_that_never_passes_fake_is_told_once_what_the_sample_probes_lack(caplog):
    """lightning-bolts' DCGAN keeps its fakes local, so DoctorCallback found none: 870 steps without
    fake= and not a word, collapse 'not checked'. Now said once, with the ways to pass them."""
    G, D = make_models()
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=5, feature_every=5, latent_every=0, budget=None))
    for step in range(40):
        doctor.step(d_loss=1.0, g_loss=1.0, real=torch.randn(64, 2), step=step)
    said = [w for w in doctor.report().warnings if "no fake= has reached the doctor" in w]
    doctor.close()
    assert len(said) == 1 and "fake_fn=" in said[0] and "self.fake" in said[0]
    assert sum("no fake= has reached" in r.getMessage() for r in caplog.records) == 1
    both = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=5, feature_every=5, latent_every=0, budget=None))
    for step in range(40):
        both.step(d_loss=1.0, g_loss=1.0, real=torch.randn(64, 2), fake=torch.randn(64, 2), step=step)
    assert not any("has reached the doctor" in w for w in both.report().warnings)
    both.close()


def _critic_pair() -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.optim.Optimizer, gandoctor.Doctor]:
    """A small G and critic on 2-D points, their Adam optimizers and a strict Doctor on them."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-4), torch.optim.Adam(D.parameters(), 1e-4)
    return G, D, opt_g, opt_d, gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, schedule=Schedule(flush_every=5), strict=True)


def _critic_then_g_step(D: nn.Module, opt_d: torch.optim.Optimizer, opt_g: torch.optim.Optimizer, d_loss: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The critic's step on ``d_loss``, then G's on -D(fake) (WGAN); G's loss."""
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = -D(fake).mean()
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return g_loss


@pytest.mark.parametrize(("weight", "added"), [(10.0, True), (0.0, True), (0.0, False)])
def test_a_gradient_penalty_weighed_zero_is_no_gradient_penalty(weight: float, added: bool):
    """jalola's WGAN-GP at lambda 0 computes the penalty and adds 0 times it: read from the
    penalty's backward alone, the run was said to use one, and "add a gradient penalty" was skipped
    as already in use on the very run that lacked it. A penalty computed and never added is none either."""
    G, D, opt_g, opt_d, doctor = _critic_pair()
    for _ in range(30):
        real, fake = torch.randn(32, 2) + 3, G(torch.randn(32, 4))
        alpha = torch.rand(32, 1)
        mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_()
        (grad,) = torch.autograd.grad(D(mixed).sum(), mixed, create_graph=True)
        penalty = weight * ((grad.norm(2, dim=1) - 1) ** 2).mean()
        d_loss = D(fake.detach()).mean() - D(real).mean() + (penalty if added else 0)
        g_loss = _critic_then_g_step(D, opt_d, opt_g, d_loss, fake)
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
    doctor.close()
    assert ("gradient_penalty" in doctor.context.flags) is (weight > 0)
    assert "critic" in doctor.context.flags


@pytest.mark.parametrize(("d_steps", "zero_term"), [(1, False), (3, False), (1, True)])
def test_a_d_step_on_a_gradient_penalty_alone_is_not_counted_as_a_d_step(d_steps: int, zero_term: bool):
    """SAGAN's WGAN-GP steps D's optimizer on the adversarial loss, then again on the penalty
    alone: read as two D steps per G step, the remedies said to train G more often. A D step
    that no backward of a loss on D's outputs preceded is not counted; real extra D steps are.
    StyleGAN2's lazy R1 adds 0 * D's output to the penalty (for DDP): a zero gradient is no loss."""
    G, D, opt_g, opt_d, doctor = _critic_pair()
    for _ in range(30):
        for _ in range(d_steps):
            real, fake = torch.randn(32, 2) + 3, G(torch.randn(32, 4))
            d_loss = D(fake.detach()).mean() - D(real).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            alpha = torch.rand(32, 1)
            mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_()
            on_mixed = D(mixed)
            (grad,) = torch.autograd.grad(on_mixed.sum(), mixed, create_graph=True)
            penalty = 10 * ((grad.norm(2, dim=1) - 1) ** 2).mean() + (0 * on_mixed[0].sum() if zero_term else 0)
            opt_d.zero_grad()
            penalty.backward()
            opt_d.step()
        g_loss = -D(fake).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
    doctor.close()
    assert set(doctor.signals.get("opt_steps.d").values.tolist()) == {2.0 * d_steps}  # what the optimizer did
    assert doctor.context.values["d_loss_step_share"] == 0.5
    if d_steps == 1:
        assert "multi_d_steps" not in doctor.context.flags and doctor.context.values["d_steps_per_g"] == 1.0
    else:
        assert "multi_d_steps" in doctor.context.flags and doctor.context.values["d_steps_per_g"] == 3.0


def test_a_hinge_d_beyond_its_margin_still_counts_its_steps():
    """SNGAN's hinge D at D's lr x10 wins by a wide margin: relu(1 - D(x)) and relu(1 + D(G(z)))
    send exactly 0 to D's outputs at most of its 5 steps per G step, which read as steps on a
    penalty alone (4 D steps per G step, 3 in this loop). Only a step after a penalty's backward
    can be one."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 1))
    opt_g = torch.optim.Adam(G.parameters(), 1e-5, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), 1e-2, betas=(0.0, 0.9))
    doctor = gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, strict=True)
    for _ in range(300):
        g_loss = -D(G(torch.randn(64, 4))).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        for _ in range(5):
            real, fake = torch.randn(64, 2) * 0.1 + 3.0, G(torch.randn(64, 4))
            d_loss = torch.relu(1 - D(real)).mean() + torch.relu(1 + D(fake.detach())).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
    doctor.close()
    assert float(d_loss) == 0.0  # D beyond its margin on every sample
    assert doctor.context.values["d_loss_form"] == "hinge" and doctor.context.values["d_steps_per_g"] == 5.0


def test_samples_passed_with_labels_flag_the_run_conditional():
    G = nn.Sequential(nn.Linear(4, 2))
    D = nn.Sequential(nn.Linear(2, 1))
    for labels, flagged in ((torch.arange(8) % 2, True), (None, False)):
        doctor = gandoctor.Doctor(G, D, schedule=Schedule(feature_every=1))
        doctor.step(d_loss=0.5, real=torch.randn(8, 2), fake=torch.randn(8, 2), labels=labels)
        doctor.close()
        assert ("conditional" in doctor.context.flags) is flagged


def test_one_optimizer_given_for_both_networks_is_said(tmp_path):
    # fastai's Learner steps G and D with one optimizer (freezing the other by phase): passed as
    # both, its steps were read as both networks' and WGAN's five critic steps per G step were lost, silently.
    G, D = make_models()
    shared = torch.optim.Adam([*G.parameters(), *D.parameters()], lr=1e-3)
    doctor = gandoctor.Doctor(G, D, g_optimizer=shared, d_optimizer=shared, log_dir=tmp_path)
    doctor.close()
    assert any("the same optimizer was given as g_optimizer and d_optimizer" in w for w in doctor.report().warnings)
    apart = gandoctor.Doctor(G, D, g_optimizer=torch.optim.Adam(G.parameters()), d_optimizer=torch.optim.Adam(D.parameters()))
    apart.close()
    assert not any("same optimizer" in w for w in apart.report().warnings)


class Distribution(torch.Tensor):
    """BigGAN-PyTorch's utils.Distribution, cut down: a tensor subclass whose .to() reads an
    attribute that its slices and clones lack."""

    def to(self, *args, **kwargs):  # type: ignore[override]
        return Distribution(super().to(*args, **kwargs)).with_kind(self.kind)

    def with_kind(self, kind: str) -> Distribution:
        self.kind = kind
        return self


def non_saturating_step(G, D, opt_g, opt_d, real, fake):  # type: ignore[no-untyped-def]
    """One D update and one G update of the non-saturating loss (softplus on logits); the losses."""
    d_loss = nn.functional.softplus(-D(real)).mean() + nn.functional.softplus(D(fake.detach())).mean()
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = nn.functional.softplus(-D(fake)).mean()
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss, g_loss


def test_tensor_subclasses_given_to_the_doctor_are_read_as_plain_tensors():
    # BigGAN draws z and y as a Distribution: its labels passed as fake_labels= switched the
    # fixed-latent probe off, and a loss made from z the loss form's ('no attribute dist_type').
    G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    z_ = Distribution(torch.randn(64, 4)).with_kind("normal")
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, schedule=Schedule(latent_every=5, flush_every=5), strict=True)
    for _ in range(12):
        z_.normal_()
        real, fake = torch.randn(32, 2), G(z_[:32].clone())
        assert type(fake) is Distribution and not hasattr(fake, "kind")  # what the loop has in hand
        d_loss, g_loss = non_saturating_step(G, D, opt_g, opt_d, real, fake)
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake, labels=z_[:32, 0].clone())
    doctor.close()
    assert not doctor.disabled_probes and doctor.signals.get("loss.d") is not None


def test_a_progressive_gan_s_new_scale_restarts_the_sample_statistics_and_switches_nothing_off(tmp_path, caplog):
    """pytorch_GAN_zoo's PGAN grows G's samples from 4x4 to 8x8 (and on): the features of the two
    sizes were compared, sample_stats and latents failed and were switched off for the rest of the
    run, and the report kept the first scale's reading as the run's end."""
    import torch.nn.functional as F

    class Growing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.size = nn.Linear(8, 64), 4

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            x = torch.tanh(self.fc(z)).view(-1, 1, 8, 8)
            return F.adaptive_avg_pool2d(x, self.size)

    torch.manual_seed(0)
    G, D = Growing(), nn.Sequential(nn.Flatten(), nn.LazyLinear(1))
    D(torch.zeros(1, 1, 8, 8))
    D = nn.Sequential(nn.Upsample(size=8), D)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=tmp_path)
    def reals(step: int) -> torch.Tensor:
        G.size = 4 if step < 150 else 8
        return torch.rand(64, 1, G.size, G.size) * 2 - 1

    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        softplus_gan_steps(G, D, opt_g, opt_d, doctor, 300, reals, z_dim=8)
    doctor.close()
    assert doctor.disabled_probes == {}
    assert [r.getMessage() for r in caplog.records if "changed size" in r.getMessage()] == [
        "gandoctor: G's samples changed size at step 150, 1x4x4 -> 1x8x8 (a progressive GAN's new scale?): the sample statistics start again from here"
    ]
    for name in ("feat.diversity_ratio", "latent.drift"):
        assert doctor.signals.get(name).steps.max() > 200  # measured at the new size too
    report = doctor.report()
    assert report.samples is not None and report.samples.last_step > 200


@pytest.mark.parametrize("replaced", [True, False])
def test_optimizers_replaced_mid_run_are_said_once_each(tmp_path, replaced):
    """pytorch_GAN_zoo's PGAN makes new Adam optimizers at every scale: the hooks stayed on the old
    ones, gradient norms and step counts ended without a word while the report read them as checked."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    G, D = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2)), nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=tmp_path)
    for step in range(400):
        if replaced and step == 100:
            opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
        real, fake = torch.randn(64, 2) + 1, G(torch.randn(64, 4))
        d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        if step % 5 == 4:  # G on every fifth batch: its gaps are no replacement
            g_loss = F.softplus(-D(fake)).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss if step % 5 == 4 else None, real=real, fake=fake)
    doctor.close()
    said = [w for w in doctor.report().warnings if "optimizer given to the Doctor has not stepped" in w]
    assert [w[:1] for w in said] == (["D", "G"] if replaced else [])


def softplus_gan_steps(G: nn.Module, D: Callable[[torch.Tensor], torch.Tensor], opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                       doctor: gandoctor.Doctor, steps: int, reals: Callable[[int], torch.Tensor], z_dim: int) -> None:
    """The non-saturating loop (softplus of D's logits: D, or what scores for it, D.forward) for
    ``steps`` iterations, ``reals(step)`` giving each step's real batch, the doctor stepped once
    per iteration, after G, as the Quickstart says."""
    import torch.nn.functional as F

    for step in range(steps):
        real = reals(step)
        fake = G(torch.randn(real.shape[0], z_dim))
        d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-D(fake)).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)


def test_weight_growth_is_read_from_the_weights_before_training_s_first_update():
    # At a rate of 5 a CycleGAN's first update grew D's weights 250-fold: the first weight record
    # comes after it, so growth read from the run's lowest record (GD502) never saw it.
    torch.manual_seed(0)
    G, D = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)), nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    initial = {role: float(torch.cat([p.detach().flatten() for p in m.parameters()]).norm()) for role, m in (("d", D), ("g", G))}
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=0.5), torch.optim.Adam(D.parameters(), lr=0.5)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, schedule=Schedule(weight_every=5, flush_every=5, budget=None))
    train_on_points(G, D, opt_g, opt_d, doctor, 20)
    for role in ("d", "g"):
        norms, growth = doctor.signals.get(f"weight_norm.{role}").values, doctor.signals.get(f"weight_growth.{role}").values
        assert growth.tolist() == pytest.approx(np.log10(norms / initial[role]).tolist(), rel=1e-4)
    assert doctor.signals.get("weight_growth.d").values[0] > 0.15  # grown by half already at the first record
