"""D's outputs: balanced accuracy beside the AUC, with the threshold of each output kind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gandoctor
from gandoctor.probes import Schedule


def test_d_accuracy_uses_the_threshold_of_the_output_kind():
    # The passed outputs are read every d_probe_every steps; every step here.
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    real = torch.tensor([2.0, 1.0, -1.0, 3.0])
    fake = torch.tensor([-2.0, 0.5, -3.0, -1.0])
    expected = {"logit": (3 / 4 + 3 / 4) / 2}
    doctor = gandoctor.Doctor(G, D, d_output="logit", schedule=Schedule(flush_every=1, d_probe_every=1), strict=True)
    doctor.step(d_loss=0.5, d_real=real, d_fake=fake)
    assert doctor.signals.get("d.acc").values[-1] == pytest.approx(expected["logit"])
    # A critic's scores drift as a whole: the midpoint of the means (9.9375 here, not 0) is the threshold.
    doctor = gandoctor.Doctor(G, D, d_output="critic", schedule=Schedule(flush_every=1, d_probe_every=1), strict=True)
    doctor.step(d_loss=-0.5, d_real=real + 10, d_fake=fake + 10)
    assert doctor.signals.get("d.acc").values[-1] == pytest.approx(0.75)
    doctor.step(d_loss=-0.5, d_real=real + 10, d_fake=real + 9)
    assert doctor.signals.get("d.acc").values[-1] == pytest.approx((2 / 4 + 3 / 4) / 2)
    doctor = gandoctor.Doctor(G, D, d_output="prob", schedule=Schedule(flush_every=1, d_probe_every=1), strict=True)
    doctor.step(d_loss=0.5, d_real=torch.tensor([0.9, 0.6, 0.4]), d_fake=torch.tensor([0.1, 0.7, 0.5]))
    assert doctor.signals.get("d.acc").values[-1] == pytest.approx((2 / 3 + (1 + 0.5) / 3) / 2)
    # auto: outputs within [0, 1] are probabilities; once one leaves it, logits (threshold 0).
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=1, d_probe_every=1), strict=True)
    doctor.step(d_loss=0.5, d_real=torch.tensor([0.9, 0.6]), d_fake=torch.tensor([0.1, 0.7]))
    assert doctor.signals.get("d.acc").values[-1] == pytest.approx(0.75)
    doctor.step(d_loss=0.5, d_real=real, d_fake=fake)
    assert doctor.signals.get("d.acc").values[-1] == pytest.approx(expected["logit"])


class DictD(nn.Module):
    """A D that returns a dict, as a Hugging Face-style model does (a ModelOutput is a dict)."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.net, self.keys = nn.Linear(2, 1), keys

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(x)
        return {key: out * (i + 1) for i, key in enumerate(self.keys)}


@pytest.mark.parametrize("keys", [("logits", "hidden"), ("validity",), ("anything",)])
def test_a_d_that_returns_a_dict_is_read_by_its_score(keys):
    G, D = nn.Linear(2, 2), DictD(keys)
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=1, d_probe_every=1, latent_every=0, budget=None), strict=True)
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(64, 2, generator=gen) + 3, torch.randn(64, 2, generator=gen) - 3
    doctor.step(d_loss=0.5, g_loss=0.5, real=real, fake=fake)
    expected = D.net(real).squeeze(1)  # the first key's tensor: the score
    assert doctor.signals.get("d_out.real").values[-1] == pytest.approx(float(expected.mean()), rel=1e-5)
    assert doctor.disabled_probes == {}


def test_studiogan_s_dict_is_read_by_its_adv_output():
    # PyTorch-StudioGAN's discriminators return {"h", "adv_output", "embed", "label", ...}: the
    # D probe and the loss form were switched off on every StudioGAN run.
    G, D = nn.Linear(2, 2), DictD(("h", "adv_output", "embed"))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=1, d_probe_every=1, latent_every=0, budget=None), strict=True)
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(64, 2, generator=gen) + 3, torch.randn(64, 2, generator=gen) - 3
    doctor.step(d_loss=0.5, g_loss=0.5, real=real, fake=fake)
    expected = 2 * D.net(real).squeeze(1)  # adv_output, the second key
    assert doctor.signals.get("d_out.real").values[-1] == pytest.approx(float(expected.mean()), rel=1e-5)
    assert doctor.disabled_probes == {}


def test_a_dict_with_no_score_the_doctor_knows_is_refused_with_the_way_out():
    G, D = nn.Linear(2, 2), DictD(("a", "b"))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=1, d_probe_every=1, latent_every=0, budget=None))
    doctor.step(d_loss=0.5, g_loss=0.5, real=torch.randn(8, 2), fake=torch.randn(8, 2))
    message = doctor.disabled_probes["d_probe"]
    assert "keys 'a', 'b'" in message and "d_forward=lambda D, x, y: D(x)['<key>']" in message


def test_passed_outputs_are_read_every_d_probe_every_steps_as_the_doctors_own_forward_would_be():
    # Their statistics are some forty tensor operations: every step, they were three times the
    # rest of the doctor's time on a tiny model. Read at the D probe's interval, and budgeted alike.
    torch.manual_seed(0)
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=5), strict=True)
    for _ in range(40):
        doctor.step(d_loss=1.3, d_real=torch.randn(8) + 1, d_fake=torch.randn(8) - 1)
    doctor.close()
    assert list(doctor.signals.get("d.auc").steps) == [0, 10, 20, 30]  # steps 0-39
    probe = next(p for p in doctor.probes if p.name == "d_outputs")
    assert probe.schedule_field == "d_probe_every" and doctor.intervals["d_outputs"] == 10


def _statistics(kind: str, real: torch.Tensor, fake: torch.Tensor, *, host_path: bool, known: str = "nothing") -> tuple[dict[str, float], list[float]]:
    """OutputKind's values and deferred numbers by one path, as host floats; ``known``: what the
    run has taught of D (nothing, a critic flag, a loss form that estimates P(real), another form)."""
    from types import SimpleNamespace

    from gandoctor.context import RunContext
    from gandoctor.probes.discriminator import OutputKind

    deferred: list[float] = []
    context = RunContext(frozenset({"critic"})) if known == "critic" else RunContext()
    host = SimpleNamespace(d_output=kind, context=lambda: context, defer=lambda numbers, then: deferred.extend(float(n) for n in numbers))
    output_kind = OutputKind(host)  # type: ignore[arg-type]
    output_kind.loss_form.form = {"probability_form": "bce_prob", "other_form": "hinge"}.get(known)
    values = output_kind._host_values(real.numpy(), fake.numpy()) if host_path else output_kind._device_values(real, fake)
    return {k: float(v) for k, v in values.items()}, deferred


@pytest.mark.parametrize("kind", ["auto", "logit", "prob", "critic", "energy"])
@pytest.mark.parametrize("case", ["separated", "ties", "in_unit_range", "non_finite", "large_logits"])
def test_the_numpy_path_for_cpu_outputs_equals_the_device_path(kind, case):
    gen = torch.Generator().manual_seed(len(kind) * 7 + len(case))
    real, fake = torch.randn(128, generator=gen) + 1, torch.randn(96, generator=gen) - 1
    if case == "ties":  # rounded: many equal scores across and within the two sets, some at the thresholds
        real, fake = (real * 2).round() / 4, (fake * 2).round() / 4
    elif case == "in_unit_range":
        real, fake = torch.sigmoid(real), torch.sigmoid(fake)
        real[:5], fake[:5] = 0.5, 0.5
    elif case == "non_finite":
        fake[3] = float("nan")
    elif case == "large_logits":
        real, fake = real * 100, fake * 100
    for known in ("nothing", "critic", "probability_form", "other_form"):
        host, host_deferred = _statistics(kind, real, fake, host_path=True, known=known)
        device, device_deferred = _statistics(kind, real, fake, host_path=False, known=known)
        assert host.keys() == device.keys()
        for name in host:
            assert host[name] == pytest.approx(device[name], rel=1e-6, abs=1e-7, nan_ok=True), (known, name)
        assert host_deferred == pytest.approx(device_deferred, rel=1e-6, abs=1e-7, nan_ok=True), known


def test_an_empty_batch_of_passed_outputs_is_skipped_not_a_failure():
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=1, d_probe_every=1), strict=True)
    doctor.step(d_loss=0.5, d_real=torch.empty(0), d_fake=torch.empty(0))
    doctor.step(d_loss=0.5, d_real=torch.tensor([2.0, 1.0]), d_fake=torch.tensor([-1.0, 0.5]))
    assert doctor.signals.get("d.auc").steps.tolist() == [1]


class CountingD(nn.Module):
    """A D with BatchNorm that counts its forwards (the loop's and the doctor's own)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 32), nn.BatchNorm1d(32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(x)


def _loop(doctor_kwargs: dict | None, steps: int = 30, *, concatenated: bool = False, fresh_fake: bool = False, fused: bool = False):
    """A plain BCE loop: D step on D(real), D(fake.detach()), then G step on D(fake). Returns G, D,
    the doctor and the outputs of each iteration's D step (before D's update)."""
    torch.manual_seed(0)
    G, D = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)), CountingD()
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=1e-3), torch.optim.Adam(D.parameters(), lr=2e-3, fused=fused)
    bce = nn.BCEWithLogitsLoss()
    doctor = None if doctor_kwargs is None else gandoctor.Doctor(G, D, opt_g, opt_d, **doctor_kwargs)
    held_out = []
    for _ in range(steps):
        real, fake = torch.randn(64, 2) + 2, G(torch.randn(64, 4))
        if concatenated:  # one D call on both: no call on `real` or `fake` themselves
            d_both = D(torch.cat([real, fake.detach()]))
            d_real, d_fake = d_both[:64], d_both[64:]
        else:
            d_real, d_fake = D(real), D(fake.detach())
        held_out.append((d_real.detach().clone(), d_fake.detach().clone()))
        d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad(), d_loss.backward(), opt_d.step()
        if fresh_fake:  # G's step on fakes of new codes: D sees them only after its update
            fake = G(torch.randn(64, 4))
        g_loss = bce(D(fake), torch.ones_like(d_fake))
        opt_g.zero_grad(), g_loss.backward(), opt_g.step()
        if doctor is not None:
            doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
    if doctor is not None:
        doctor.close()
    return G, D, doctor, held_out


def test_d_outputs_are_kept_from_the_loop_s_d_step_before_d_trains_on_them():
    schedule = Schedule(flush_every=5, budget=None, latent_every=0, feature_every=1000, sample_stats_every=1000)
    _, bare_d, _, _ = _loop(None)
    _, D, doctor, held_out = _loop({"schedule": schedule, "strict": True})
    # No forward of the doctor's at steps 0, 10 and 20: the loop's outputs were kept (armed from
    # the start: a conditional D given G's form of labels failed the doctor's own forward at step 0).
    assert D.calls == bare_d.calls
    auc = doctor.signals.get("d.auc")
    assert list(auc.steps) == [0, 10, 20]
    for step, value in zip(auc.steps, auc.values, strict=True):
        real, fake = held_out[step]
        assert value == pytest.approx(float((real.reshape(-1, 1) > fake.reshape(1, -1)).float().mean()))
        assert doctor.signals.get("d_out.real").values[list(auc.steps).index(step)] == pytest.approx(float(real.mean()), rel=1e-6)
    assert not D._forward_hooks  # disarmed between measured iterations, gone at close


def test_without_a_call_on_the_step_s_own_batches_the_doctor_runs_its_own_d_forward():
    schedule = Schedule(flush_every=5, budget=None, latent_every=0, feature_every=1000, sample_stats_every=1000)
    _, bare_d, _, _ = _loop(None, concatenated=True)
    _, D, doctor, _ = _loop({"schedule": schedule, "strict": True}, concatenated=True)
    assert D.calls == bare_d.calls + 2 * 3  # its own D(real) and D(fake) at steps 0, 10, 20
    assert list(doctor.signals.get("d.auc").steps) == [0, 10, 20]
    # G's step on fresh fakes: D's outputs on `real` (before D's update) and on `fake` (after it)
    # come from two different Ds, whose scores are not ranked against each other.
    _, D, doctor, _ = _loop({"schedule": schedule, "strict": True}, fresh_fake=True)
    assert D.calls == bare_d.calls + 30 + 2 * 3
    # A fused optimizer leaves the parameters' version counters alone: its step count tells.
    _, D, doctor, _ = _loop({"schedule": schedule, "strict": True}, fresh_fake=True, fused=True)
    assert D.calls == bare_d.calls + 30 + 2 * 3
    # A d_forward= of the user's may compute anything from D's output: never kept from the loop.
    _, bare_d, _, _ = _loop(None)
    _, D, doctor, _ = _loop({"schedule": schedule, "strict": True, "d_forward": lambda d, x, y: d(x)})
    assert D.calls == bare_d.calls + 2 * 3 and list(doctor.signals.get("d.auc").steps) == [0, 10, 20]


def test_keeping_d_s_outputs_leaves_training_bit_identical_and_a_hook_error_outside_it(monkeypatch):
    import gandoctor.probes.discriminator as discriminator

    G0, D0, _, _ = _loop(None)

    def broken() -> bool:
        raise RuntimeError("boom")

    schedule = Schedule(flush_every=5, budget=None, latent_every=0, feature_every=1000, sample_stats_every=1000, d_probe_every=3)
    G1, D1, doctor, _ = _loop({"schedule": schedule, "strict": True})
    monkeypatch.setattr(discriminator, "doctor_forward_running", broken)
    G2, D2, broken_doctor, _ = _loop({"schedule": schedule})  # the hook fails inside the loop's D forward
    for a, b, c in zip([*G0.state_dict().values(), *D0.state_dict().values()], [*G1.state_dict().values(), *D1.state_dict().values()],
                       [*G2.state_dict().values(), *D2.state_dict().values()], strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert "boom" in broken_doctor.disabled_probes["d_probe"] and not D2._forward_hooks
    assert len(doctor.signals.get("d.auc")) == 10


def test_several_d_steps_per_step_take_the_outputs_on_the_very_batches_passed():
    # Five D steps per doctor step, each on a fresh real and fake batch freed at the next one: the
    # allocator hands their addresses on, and a batch at the address of an earlier one must not
    # pass for it (D's outputs on fakes were taken for those on reals).
    torch.manual_seed(0)
    G, D = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)), CountingD()
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=1e-3), torch.optim.Adam(D.parameters(), lr=2e-3)
    bce = nn.BCEWithLogitsLoss()
    schedule = Schedule(flush_every=5, budget=None, latent_every=0, feature_every=1000, sample_stats_every=1000, d_probe_every=2)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, schedule=schedule, strict=True)
    last_d_step = []
    for _ in range(40):
        for _ in range(5):
            real, fake = torch.randn(128, 2) + 2, G(torch.randn(128, 4)).detach()
            d_real, d_fake = D(real), D(fake)
            d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad(), d_loss.backward(), opt_d.step()
        last_d_step.append((float(d_real.mean()), float(d_fake.mean())))
        g_loss = bce(D(G(torch.randn(128, 4))), torch.ones_like(d_fake))
        opt_g.zero_grad(), g_loss.backward(), opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
    doctor.close()
    steps = doctor.signals.get("d_out.real").steps
    for step, on_real, on_fake in zip(steps[1:], doctor.signals.get("d_out.real").values[1:], doctor.signals.get("d_out.fake").values[1:], strict=True):
        assert (on_real, on_fake) == pytest.approx(last_d_step[step], rel=1e-5)


class MapsD(nn.Module):
    """A conditional D that takes its labels as one-hot maps beside the image (znxlwm's cDCGAN)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1 + 10, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 4, 1, 0))

    def forward(self, x: torch.Tensor, y_maps: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, y_maps], 1)).reshape(-1)


def _conditional_loop(doctor_kwargs: dict, steps: int = 12, fresh_fake: bool = False):
    """G takes one-hot vectors, D one-hot maps; the loop passes D's maps as labels= and G's vectors
    as fake_labels=, as the README's conditional-GAN line says."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(8 + 10, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)))
    D = MapsD()
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    bce = nn.BCEWithLogitsLoss()
    eye = torch.eye(10)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, **doctor_kwargs)
    for _ in range(steps):
        real, y_real, y_fake = torch.rand(32, 1, 8, 8) * 2 - 1, torch.randint(0, 10, (32,)), torch.randint(0, 10, (32,))
        maps_real, vec_fake = eye[y_real][:, :, None, None].expand(-1, -1, 8, 8), eye[y_fake]
        maps_fake = vec_fake[:, :, None, None].expand(-1, -1, 8, 8)
        fake = G(torch.cat([torch.randn(32, 8), vec_fake], 1))
        d_loss = bce(D(real, maps_real), torch.ones(32)) + bce(D(fake.detach(), maps_fake), torch.zeros(32))
        opt_d.zero_grad(), d_loss.backward(), opt_d.step()
        if fresh_fake:
            fake = G(torch.cat([torch.randn(32, 8), vec_fake], 1))
        g_loss = bce(D(fake, maps_fake), torch.ones(32))
        opt_g.zero_grad(), g_loss.backward(), opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake, labels=maps_real, fake_labels=vec_fake)
    doctor.close()
    return doctor


def test_a_conditional_d_taking_labels_in_another_form_than_g_is_read_from_the_loop_s_own_calls_from_step_0():
    schedule = Schedule(flush_every=5, budget=None, latent_every=0, feature_every=1000, sample_stats_every=1000)
    doctor = _conditional_loop({"schedule": schedule})
    assert "d_probe" not in doctor.disabled_probes
    assert list(doctor.signals.get("d.auc").steps) == [0, 10]
    # Where the loop's calls cannot be paired (G's step on fresh fakes), the doctor's own forward
    # gives D G's form of labels; its refusal says what to pass instead.
    doctor = _conditional_loop({"schedule": schedule}, fresh_fake=True)
    refused = doctor.disabled_probes["d_probe"]
    assert "labels=, fake_labels=" in refused and "d_forward=" in refused and "d_real=/d_fake=" in refused


def _moments(x: torch.Tensor) -> torch.Tensor:
    """devnag's preprocessing: D reads a batch's first four moments, not its samples."""
    d = x.reshape(1, -1)
    mean = d.mean()
    diffs = d - mean
    std = diffs.pow(2).mean().sqrt()
    z = diffs / std
    return torch.stack([mean, std, z.pow(3).mean(), z.pow(4).mean() - 3.0]).reshape(1, 4)


def _moments_loop(doctor_kwargs: dict, steps: int = 12):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(1, 16), nn.ELU(), nn.Linear(16, 1))
    D = nn.Sequential(nn.Linear(4, 16), nn.ELU(), nn.Linear(16, 1), nn.Sigmoid())
    opt_g, opt_d = torch.optim.SGD(G.parameters(), 1e-3), torch.optim.SGD(D.parameters(), 1e-3)
    bce = nn.BCELoss()
    schedule = Schedule(flush_every=5, budget=None, latent_every=0, feature_every=1000, sample_stats_every=1000)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, schedule=schedule, **doctor_kwargs)
    for _ in range(steps):
        real, fake = torch.randn(100, 1) * 1.25 + 4, G(torch.rand(100, 1))
        d_loss = bce(D(_moments(real)), torch.ones(1, 1)) + bce(D(_moments(fake.detach())), torch.zeros(1, 1))
        opt_d.zero_grad(), d_loss.backward(), opt_d.step()
        g_loss = bce(D(_moments(fake)), torch.ones(1, 1))
        opt_g.zero_grad(), g_loss.backward(), opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
    doctor.close()
    return doctor


def test_a_d_that_reads_preprocessed_batches_is_told_to_pass_d_forward_and_a_batch_scoring_one_why_it_is_not_read():
    # devnag's 1-D GAN: D(preprocess(x)) on a batch's moments. The doctor's own D(x) fails on the
    # raw samples: the refusal names d_forward=. Given one, D still scores whole batches: said so,
    # without asking again for the d_forward that was given.
    refused = _moments_loop({}).disabled_probes["d_probe"]
    assert "mat1 and mat2" in refused and "d_forward=lambda D, x, y" in refused
    given = _moments_loop({"d_forward": lambda D, x, y: D(_moments(x))}).disabled_probes["d_probe"]
    assert "the d_forward given returns one number for the" in given and "pass Doctor(d_forward" not in given


def _small_pair() -> tuple[nn.Sequential, nn.Sequential]:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)), nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))


def _nonsaturating_steps(doctor, G, score, opt_g, opt_d, steps: int, real_mean: float, real_std: float) -> None:  # type: ignore[no-untyped-def]
    """The non-saturating GAN on 2-D data, D's scores by ``score`` (D, or D.forward), the doctor
    stepped after G as the Quickstart says; the doctor is closed at the end."""
    from .test_probes import softplus_gan_steps

    softplus_gan_steps(G, score, opt_g, opt_d, doctor, steps, lambda step: torch.randn(64, 2) * real_std + real_mean, z_dim=4)
    doctor.close()


@pytest.mark.parametrize("call", ["D(x)", "D.forward(x)"])
def test_a_loop_that_calls_d_forward_directly_is_told_what_the_doctor_cannot_see(call: str):
    """torch_mimicry's train_step calls self.forward(x): D's forward hooks never fire, so D's loss
    form and its gradient penalty went unseen without a word. Said once, where D trained and no
    call of it was seen; a loop calling D(x) hears nothing."""
    G, D = _small_pair()
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-4), torch.optim.Adam(D.parameters(), 1e-4)
    doctor = gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, schedule=Schedule(flush_every=5, d_probe_every=5))
    _nonsaturating_steps(doctor, G, D if call == "D(x)" else D.forward, opt_g, opt_d, steps=40, real_mean=3.0, real_std=1.0)
    said = [w for w in doctor.report().warnings if "D.forward(x) directly" in w]
    assert len(said) == (0 if call == "D(x)" else 1)


@pytest.mark.parametrize("augmented", [False, True])
def test_a_loop_whose_d_sees_its_batches_augmented_is_told_where_d_s_outputs_come_from(augmented: bool):
    """DiffAugment's loop calls D on augmented reals and fakes (put together): no call of D is on
    the step's real= and fake=, so D's outputs came silently from the doctor's own forward after
    D's step, on batches D had just trained on. Said once; a loop calling D on them hears nothing."""
    G, D = _small_pair()
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-4), torch.optim.Adam(D.parameters(), 1e-4)
    doctor = gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, schedule=Schedule(flush_every=5, d_probe_every=5))
    score = (lambda x: D(x + 0.05 * torch.randn_like(x))) if augmented else D
    _nonsaturating_steps(doctor, G, score, opt_g, opt_d, steps=40, real_mean=3.0, real_std=1.0)
    said = [w for w in doctor.report().warnings if "none of the loop's calls of D was on the step's real= and fake=" in w]
    assert len(said) == (1 if augmented else 0)
    assert augmented or not any("doctor's own forward" in w for w in doctor.report().warnings)


def test_a_loop_whose_g_step_draws_fresh_fakes_is_not_told_its_d_calls_went_unseen():
    # D's call on real= is seen; fake= is G's step's own (D saw it after its update): the usual loop.
    import torch.nn.functional as F

    G, D = _small_pair()
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-4), torch.optim.Adam(D.parameters(), 1e-4)
    doctor = gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, schedule=Schedule(flush_every=5, d_probe_every=5))
    for _ in range(40):
        real = torch.randn(64, 2) + 3
        d_loss = F.softplus(-D(real)).mean() + F.softplus(D(G(torch.randn(64, 4)).detach())).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        fake = G(torch.randn(64, 4))
        g_loss = F.softplus(-D(fake)).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
    doctor.close()
    assert not any("none of the loop's calls of D" in w for w in doctor.report().warnings)


@pytest.mark.parametrize("batch", [8, 64])
def test_d_statistics_from_few_samples_a_side_are_flagged(batch: int):
    """d2l's GAN trains on batches of 8: d.auc's spread at chance is then 0.149 from sampling
    alone, at GD601's bar, and its healthy run was called cycling. Such a run is flagged
    (few_d_samples, with d_samples), and GD601 does not judge it."""
    torch.manual_seed(0)
    G, D = nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=5, d_probe_every=5), strict=True)
    for _ in range(10):
        real = torch.randn(batch, 2)
        doctor.step(d_loss=1.3, g_loss=0.7, real=real, fake=G(torch.randn(batch, 2)).detach())
    doctor.close()
    few = batch < 32
    assert ("few_d_samples" in doctor.context.flags) == few
    assert doctor.context.values.get("d_samples") == (batch if few else None)


def test_a_dead_d_is_not_read_as_fooled():
    """torch_mimicry's DCGAN at lr 5 left D giving one output (-0.8333) for every sample: its
    d.auc of 0.5 is ties, G's gradient 0. It was called G dominance (GD202: D blind, samples
    poor), whose remedies train D more. d.constant marks such a D; the rules reading D at chance
    do not hold on it."""
    G, D = _small_pair()
    with torch.no_grad():
        D[2].weight.zero_()  # every unit cut off: D(x) is its last bias, whatever x
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.SGD([D[2].bias], 1e-3)
    doctor = gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, schedule=Schedule(flush_every=25), strict=True)
    _nonsaturating_steps(doctor, G, D, opt_g, opt_d, steps=800, real_mean=5.0, real_std=0.3)
    assert set(doctor.signals.get("d.constant").values.tolist()) == {1.0}
    assert set(doctor.signals.get("d.auc").values.tolist()) == {0.5}
    assert "generator_dominance" not in {f.mode for f in doctor.report().findings}


@pytest.mark.parametrize("declared", ["logit", "auto"])
def test_a_declared_kind_the_learnt_loss_form_contradicts_is_said(declared: str):
    # nocotan's Lightning GAN (D ends in a Sigmoid, F.binary_cross_entropy) under the README's
    # old snippet, d_output="logit": D's accuracy sat at 0.5 at every check, with no word.
    from .test_probes import train

    _, _, doctor = train(60, {"d_output": declared, "schedule": Schedule(flush_every=10)}, sigmoid_d=True)
    doctor.close()
    report = doctor.report()
    assert report.context.values["d_loss_form"] == "bce_prob"
    said = [w for w in report.warnings if "d_output='logit' was declared" in w]
    assert len(said) == (declared == "logit")
    if said:
        assert "pass d_output='prob'" in said[0] and set(doctor.signals.get("d.acc").values.tolist()) == {0.5}


def _pix2pix_batch_of_one(tmp_path, own_forward: bool, steps: int = 1000) -> gandoctor.Report:
    """pix2pix's shape at its default batch of 1: a PatchGAN D with BatchNorm scores the pair
    cat(a, b); the doctor reads D by ``d_forward=`` (after D's step) or is given the loop's own
    outputs (before it). The same training both ways."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1), nn.Tanh())
    D = nn.Sequential(nn.Conv2d(2, 16, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(16, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.LeakyReLU(0.2), nn.Conv2d(32, 1, 4, 1, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999)), torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    base = torch.randn(64, 1, 16, 16).tanh()
    fixed_a = base[:16] + 0.3 * torch.randn(16, 1, 16, 16)
    extra = {"d_forward": lambda D, x, y: D(torch.cat((y, x), 1))} if own_forward else {}
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=tmp_path / str(own_forward), sample_latent=lambda n, gen: fixed_a[:n], **extra)
    bce = nn.BCEWithLogitsLoss()
    for _ in range(steps):
        b = base[torch.randint(0, 64, (1,))]
        a = b + 0.3 * torch.randn_like(b)
        fake_b = G(a)
        pred_fake, pred_real = D(torch.cat((a, fake_b.detach()), 1)), D(torch.cat((a, b), 1))
        d_loss = 0.5 * (bce(pred_fake, torch.zeros_like(pred_fake)) + bce(pred_real, torch.ones_like(pred_real)))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        pred_g = D(torch.cat((a, fake_b), 1))
        g_loss = bce(pred_g, torch.ones_like(pred_g)) + 100 * (fake_b - b).abs().mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        outputs = {} if own_forward else {"d_real": pred_real.detach(), "d_fake": pred_fake.detach()}
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=b, fake=fake_b, labels=a, **outputs)
    report = doctor.report()
    doctor.close()
    return report


def test_d_s_outputs_read_after_its_step_on_a_pair_are_not_read_as_a_d_that_separates(tmp_path):
    # d_forward's outputs at batch 1: d.acc 0.98, "separates perfectly to the end" (GD107) on a
    # run whose loop-side outputs read 0.75 and healthy (pix2pix, its digit oracle: 97% realistic).
    own, passed = _pix2pix_batch_of_one(tmp_path, own_forward=True), _pix2pix_batch_of_one(tmp_path, own_forward=False)
    assert "d_outputs_trained_on" in own.context.flags and "d_outputs_trained_on" not in passed.context.flags
    assert "discriminator_dominance" not in {f.mode for f in own.findings} | {f.mode for f in passed.findings}
    assert {"GD101", "GD104", "GD107"} <= {s.rule for s in own.skipped_rules}


def test_a_declared_hinge_loss_accumulated_over_micro_batches_is_not_taken_for_a_critic(tmp_path):
    """lightweight-gan accumulates 4 micro-batches per D step: the logged loss is their mean, so
    its form is not learnt from one batch's outputs, and the hinge D (linear inside its margin)
    was marked a Wasserstein critic even where the user declared the hinge loss."""
    from .test_lossform import accumulated_hinge_run

    doctor = accumulated_hinge_run(tmp_path, 2, steps=100, fake_first=False, uses={"hinge_loss"})
    assert "hinge_loss" in doctor.context.flags and not doctor.context.flags & {"critic", "d_loss_unit_unknown"}


def test_a_per_pixel_classifier_d_on_one_channel_images_is_no_autoencoder(tmp_path):
    """pix2pix's ``--netD pixel`` (1x1 convolutions) returns a logit map shaped like a grey image:
    refused as an autoencoder D, the run marked energy_d and 19 rules stood down, though its BCE
    loss was learnt. A BEGAN-style reconstruction (no classifier's loss) is still refused."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1), nn.Tanh())
    D = nn.Sequential(nn.Conv2d(1, 16, 1), nn.LeakyReLU(0.2), nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.LeakyReLU(0.2), nn.Conv2d(32, 1, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 2e-4), torch.optim.Adam(D.parameters(), 2e-4)
    fixed_a = torch.randn(128, 1, 16, 16)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=tmp_path, sample_latent=lambda n, gen: fixed_a[:n])
    bce = nn.BCEWithLogitsLoss()
    for _ in range(150):
        a, b = torch.randn(32, 1, 16, 16), torch.randn(32, 1, 16, 16).tanh()
        fake_b = G(a)
        pred_real, pred_fake = D(b), D(fake_b.detach())
        d_loss = 0.5 * (bce(pred_real, torch.ones_like(pred_real)) + bce(pred_fake, torch.zeros_like(pred_fake)))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        pred_g = D(fake_b)
        g_loss = bce(pred_g, torch.ones_like(pred_g))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=b, fake=fake_b)
    doctor.close()
    assert doctor.disabled_probes == {} and "energy_d" not in doctor.context.flags
    assert doctor.context.values["d_loss_form"] == "bce_logits" and "d.auc" in doctor.signals


class _StyleGANLikeD(nn.Module):
    """StyleGAN2-ADA's D as the doctor's own forward meets it: ``forward(img, c)``, c required
    even with no classes (``c_dim`` 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.c_dim = 0
        self.net = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def forward(self, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        assert c.shape == (img.shape[0], 0)
        return self.net(img)


def test_an_unconditional_stylegan_d_gets_an_empty_c_in_the_doctor_s_own_forward():
    # Under ADA the loop's D calls see augmented images: the doctor ran D(x), which StyleGAN's
    # D(img, c) refused, and D's outputs went unread for the whole run.
    G, D = nn.Linear(2, 2), _StyleGANLikeD()
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=1, d_probe_every=1, latent_every=0, budget=None), strict=True)
    gen = torch.Generator().manual_seed(0)
    doctor.step(d_loss=0.5, g_loss=0.5, real=torch.randn(64, 2, generator=gen) + 3, fake=torch.randn(64, 2, generator=gen) - 3)
    doctor.close()
    assert doctor.disabled_probes == {} and "d.auc" in doctor.signals
