"""D's loss form, learnt from the loss the loop passed and D's outputs on the same step."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gandoctor
from gandoctor.probes import Schedule
from gandoctor.probes.lossform import CHOICES, FORMS, LossForm, LossFormProbe, candidate_losses, errors, match

torch.manual_seed(0)
LOGITS = (torch.randn(64, 1) + 1, torch.randn(64, 1) - 1)
PROBS = (torch.rand(64, 1) * 0.5 + 0.5, torch.rand(64, 1) * 0.5)


def learn(loss: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> tuple[str, float] | None:
    return match(float(loss), candidate_losses(real, fake).tolist())


@pytest.mark.parametrize(
    ("name", "loss", "outputs", "unit"),
    [
        # pytorch/examples dcgan.py: errD_real + errD_fake on a sigmoid D
        ("bce_prob", lambda r, f: F.binary_cross_entropy(r, torch.ones_like(r)) + F.binary_cross_entropy(f, torch.zeros_like(f)), PROBS, 1.0),
        # PyTorch-GAN gan.py: (real_loss + fake_loss) / 2
        ("bce_prob", lambda r, f: 0.5 * (F.binary_cross_entropy(r, torch.ones_like(r)) + F.binary_cross_entropy(f, torch.zeros_like(f))), PROBS, 0.5),
        ("bce_logits", lambda r, f: F.binary_cross_entropy_with_logits(r, torch.ones_like(r)) + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)), LOGITS, 1.0),
        # PyTorch-GAN lsgan.py / cgan.py: MSELoss towards 1 and 0, halved
        ("ls01", lambda r, f: 0.5 * (F.mse_loss(r, torch.ones_like(r)) + F.mse_loss(f, torch.zeros_like(f))), LOGITS, 0.25),
        ("ls01", lambda r, f: F.mse_loss(r, torch.ones_like(r)) + F.mse_loss(f, torch.zeros_like(f)), LOGITS, 0.5),
        ("ls_pm1", lambda r, f: 0.5 * (((r - 1) ** 2).mean() + ((f + 1) ** 2).mean()), LOGITS, 1.0),
        ("hinge", lambda r, f: F.relu(1 - r).mean() + F.relu(1 + f).mean(), LOGITS, 1.0),
        ("wasserstein", lambda r, f: f.mean() - r.mean(), LOGITS, 1.0),
        # d2l's GAN: BCEWithLogitsLoss(reduction='sum') over a batch of 64, (real + fake) / 2
        ("bce_logits", lambda r, f: 0.5 * (F.binary_cross_entropy_with_logits(r, torch.ones_like(r), reduction="sum")
                                           + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f), reduction="sum")), LOGITS, 32.0),
        ("ls01", lambda r, f: F.mse_loss(r, torch.ones_like(r), reduction="sum") + F.mse_loss(f, torch.zeros_like(f), reduction="sum"), LOGITS, 32.0),
        # Udacity's GAN notebooks: the reals' target 0.9 (one-sided label smoothing), learnt as BCE
        ("bce_logits_smoothed", lambda r, f: F.binary_cross_entropy_with_logits(r, torch.full_like(r, 0.9))
                                             + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)), LOGITS, 1.0),
        ("bce_prob_smoothed", lambda r, f: F.binary_cross_entropy(r, torch.full_like(r, 0.9)) + F.binary_cross_entropy(f, torch.zeros_like(f)), PROBS, 1.0),
    ],
)
def test_each_common_form_is_recognised_with_its_unit(name, loss, outputs, unit):
    real, fake = outputs
    assert learn(loss(real, fake), real, fake) == (name, unit)


def test_a_loss_of_another_form_or_other_outputs_is_left_undecided():
    real, fake = LOGITS
    bce = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    assert learn(bce + 0.37, real, fake) is None  # a gradient penalty added
    assert learn(bce, real + 0.1, fake) is None  # a loss of another forward
    assert learn(torch.tensor(float("nan")), real, fake) is None
    assert len(candidate_losses(real, fake)) == len(FORMS) + 1  # and the samples per side
    assert len(errors(1.0, candidate_losses(real, fake).tolist())) == len(CHOICES)


def test_the_form_is_settled_once_and_tried_a_few_times_only():
    form = LossForm()
    real, fake = LOGITS
    wrong = torch.tensor(123.0)
    for _ in range(10):
        attempt = form.tensors(wrong, [(real, fake), (fake, real)])
        assert attempt is not None and len(attempt[0]) == 1 + 2 * (len(FORMS) + 1) and attempt[1] is None
        assert form.settle([float(t) for t in attempt[0]]) == (set(), {})
    assert form.tensors(wrong, [(real, fake)]) is None  # gave up: nothing more is computed
    form = LossForm()
    ls = 0.5 * (((real - 1) ** 2).mean() + (fake**2).mean())
    # The loop's forwards in their order: the pair (fake, real) explains nothing, (real, fake) does.
    # A loss passed as a number stays on the host: only the forms travel.
    attempt = form.tensors(float(ls), [(fake, real), (real, fake)])
    assert attempt is not None and len(attempt[0]) == 2 * (len(FORMS) + 1) and attempt[1] == pytest.approx(float(ls))
    numbers = [attempt[1]] + [float(t) for t in attempt[0]]
    assert form.settle(numbers) == (set(), {})  # one try is not enough: a second must agree
    attempt = form.tensors(float(ls), [(fake, real), (real, fake)])
    assert attempt is not None
    assert form.settle([attempt[1]] + [float(t) for t in attempt[0]]) == ({"least_squares_loss"}, {"d_loss_form": "ls01", "d_loss_unit": 0.25})
    assert form.tensors(ls, [(real, fake)]) is None
    assert form.tensors(None, [(real, fake)]) is None


def _try(form: LossForm, loss: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> tuple[set[str], dict[str, Any]]:
    attempt = form.tensors(loss, [(real, fake)])
    assert attempt is not None
    return form.settle([float(t) for t in attempt[0]])


def test_a_lone_match_among_misses_is_not_taken():
    """A loss of another form (a relativistic D's, say) can meet one form on one try by chance;
    it is taken only when it explains two tries and no fewer than nothing explained."""
    real, fake = LOGITS
    bce = F.softplus(-real).mean() + F.softplus(fake).mean()
    form = LossForm()
    for _ in range(3):
        assert _try(form, torch.tensor(123.0), real, fake) == (set(), {})
    assert _try(form, bce, real, fake) == (set(), {})
    assert _try(form, bce, real, fake) == (set(), {})  # 2 matches, 3 misses
    assert _try(form, bce, real, fake) == (set(), {"d_loss_form": "bce_logits", "d_loss_unit": 1.0})


def test_two_forms_explaining_tries_leave_it_undecided():
    real, fake = LOGITS
    bce = F.softplus(-real).mean() + F.softplus(fake).mean()
    hinge = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    form = LossForm()
    assert _try(form, bce, real, fake) == (set(), {})
    assert _try(form, hinge, real, fake) == (set(), {})
    assert not form.open and form.tensors(bce, [(real, fake)]) is None
    assert form.form is None


def _lsgan_steps(doctor: gandoctor.Doctor, steps: int, pass_outputs: bool = True, as_number: bool = False) -> None:
    """A least-squares GAN towards 1/0 (PyTorch-GAN lsgan.py's D loss) on a 2-D Gaussian."""
    G, D = doctor.generator, doctor.discriminator
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    mse = nn.MSELoss()
    for _ in range(steps):
        real = torch.randn(64, 2) * 0.5 + 2
        fake = G(torch.randn(64, 4))
        d_real, d_fake = D(real), D(fake.detach())
        d_loss = 0.5 * (mse(d_real, torch.ones_like(d_real)) + mse(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = mse(D(fake), torch.ones_like(d_fake))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        outputs = {"d_real": d_real, "d_fake": d_fake} if pass_outputs else {}
        doctor.step(d_loss=d_loss.item() if as_number else d_loss, g_loss=g_loss, real=real, fake=fake, **outputs)


def test_a_least_squares_d_towards_one_and_zero_is_thresholded_at_one_half():
    torch.manual_seed(1)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=5, d_probe_every=1), strict=True)
    _lsgan_steps(doctor, 40)
    doctor.close()
    assert doctor.context.values["d_loss_form"] == "ls01"
    assert doctor.context.values["d_loss_unit"] == 0.25
    assert "least_squares_loss" in doctor.context.flags
    # Every recorded accuracy is the one at 0.5, also those of steps before the form was known.
    torch.manual_seed(1)
    check = gandoctor.Doctor(nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2)), nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1)), d_output="prob", schedule=Schedule(flush_every=5, d_probe_every=1), strict=True)
    _lsgan_steps(check, 40)
    check.close()
    assert doctor.signals.get("d.acc").values == pytest.approx(check.signals.get("d.acc").values)
    # The outputs estimate P(real): kept as D's probabilities although some leave [0, 1].
    assert doctor.signals.get("d_prob.real") is not None and len(doctor.signals.get("d_prob.real").values) == 40


def test_the_form_is_learnt_from_the_loop_s_own_forwards_when_it_passes_only_the_loss():
    torch.manual_seed(2)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 1))
    # The doctor's own D forward runs every step here: its outputs must not be taken for the loop's.
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=10, d_probe_every=1), strict=True)
    probe = next(p for p in doctor.probes if p.name == "loss_form")
    _lsgan_steps(doctor, 30, pass_outputs=False, as_number=True)  # d_loss.item(), as many loops log it
    assert doctor.context.values.get("d_loss_form") == "ls01"
    assert doctor.context.values.get("d_loss_unit") == 0.25
    # The hook is gone once the form is known (D's probe, measuring every step here, keeps its own).
    catch = next(p for p in doctor.probes if p.name == "d_probe").catch
    assert probe.handle is None and list(D._forward_hooks) == [catch.handles[0].id]
    doctor.close()
    assert not D._forward_hooks


def _loss_form_hooked(D: nn.Module) -> bool:
    """Whether the loss form's hook is on D (D's output probe arms one of its own some iterations)."""
    return any(type(getattr(getattr(h, "fn", None), "__self__", None)) is LossFormProbe for h in D._forward_hooks.values())


def test_a_declared_unit_is_kept_and_d_gets_no_hook_for_the_form():
    torch.manual_seed(1)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
    # Declared wrongly on purpose: the user's word stands (a learnt 0.25 would replace it).
    doctor = gandoctor.Doctor(G, D, uses={"d_loss_unit": 0.5}, schedule=Schedule(flush_every=5), strict=True)
    assert not _loss_form_hooked(D)
    _lsgan_steps(doctor, 20, pass_outputs=False)
    doctor.close()
    assert doctor.context.values["d_loss_unit"] == 0.5 and "d_loss_form" not in doctor.context.values


def test_a_loss_no_form_explains_leaves_the_units_alone_and_the_hook_goes():
    torch.manual_seed(3)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=5), strict=True)
    for _ in range(20):
        real, fake = torch.randn(64, 2), G(torch.randn(64, 4)).detach()
        d_real, d_fake = D(real), D(fake)
        # BCE plus a made-up penalty: no form explains it
        bce = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        doctor.step(d_loss=bce + 0.1, real=real, fake=fake)
    assert "d_loss_unit" not in doctor.context.values  # the units stay as calibrated
    assert doctor.context.values.get("d_loss_form") == "unrecognised"  # and the report says why
    assert not _loss_form_hooked(D)
    doctor.close()
    from gandoctor.reporters.console import render_text

    assert "D's loss matched none of the known forms" in render_text(doctor.report(), width=400)


def test_an_error_in_the_hook_never_reaches_the_loop_s_forward(monkeypatch):
    import gandoctor.probes.lossform as lossform

    def broken() -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(lossform, "doctor_forward_running", broken)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=5))
    _lsgan_steps(doctor, 10, pass_outputs=False)  # D's forwards run, the hook fails inside them
    assert "boom" in doctor.disabled_probes["loss_form"]
    assert not _loss_form_hooked(D)
    doctor.close()


def test_once_the_form_cannot_be_learnt_no_accuracy_at_one_half_is_kept_for_it():
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=5), strict=True)
    kind = next(p for p in doctor.probes if p.name == "d_outputs").kind
    assert kind.loss_form.deciding()
    for _ in range(20):  # the loop passes its outputs but never its loss
        real, fake = torch.randn(64, 2), G(torch.randn(64, 4)).detach()
        doctor.step(real=real, fake=fake, d_real=D(real), d_fake=D(fake))
    assert kind.loss_form.deciding()  # the hook waits up to 200 steps for a loss
    next(p for p in doctor.probes if p.name == "loss_form").close()
    assert not kind.loss_form.deciding()
    doctor.close()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_a_d_that_takes_no_hooks_switches_only_this_probe_off(caplog):
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = torch.jit.script(nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1)))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=5, d_probe_every=1))
    for _ in range(10):
        real, fake = torch.randn(64, 2), G(torch.randn(64, 4)).detach()
        d_real, d_fake = D(real), D(fake)
        doctor.step(d_loss=(d_real - d_fake).mean(), real=real, fake=fake, d_real=d_real, d_fake=d_fake)
    assert list(doctor.disabled_probes) == ["loss_form"]
    assert "ScriptModule" in doctor.disabled_probes["loss_form"]
    assert "d_loss_unit" in doctor.disabled_probes["loss_form"]  # what to declare instead
    assert len(doctor.signals.get("d.acc").values) == 10  # the other probes go on
    doctor.close()
    said = [r for r in caplog.records if "loss_form" in r.getMessage()]
    assert len(said) == 1 and said[0].exc_info is None  # a refusal, said once, no traceback: nothing is broken


def _mirrored_pair(seed: int, sigmoid: bool) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """G twice and D twice, the second D the first with its last layer negated: it scores
    every sample exactly the other way round (1 - p behind a sigmoid)."""
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1), *([nn.Sigmoid()] if sigmoid else []))
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    with torch.no_grad():
        D2[2].weight.neg_()
        D2[2].bias.neg_()
    return G, D, G2, D2


def _train(doctor: gandoctor.Doctor, form: str, swapped: bool, steps: int, passes: str = "loss") -> None:
    """A WGAN critic with clipped weights, or BCE on a sigmoid D, on a 2-D Gaussian. ``swapped``:
    the loss with real and fake exchanged, as the original WGAN code minimises mean D(real) -
    mean D(fake) (and G mean D(fake)), or as a loop labelling reals 0 and fakes 1 does.
    ``passes``: what the loop gives the doctor besides the batches: "loss" (the one D minimises),
    "negated loss" (a Wasserstein loop that logs mean D(fake) - mean D(real) while it minimises the
    opposite, as Zeleni9/pytorch-wgan's WGAN-CP does), "nothing", or "outputs" (the loss and D's outputs)."""
    G, D = doctor.generator, doctor.discriminator
    opt_g, opt_d = torch.optim.RMSprop(G.parameters(), 5e-3), torch.optim.RMSprop(D.parameters(), 5e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        real = torch.randn(64, 2, generator=gen) * 0.5 + 2
        fake = G(torch.randn(64, 4, generator=gen))
        d_real, d_fake = D(real), D(fake.detach())
        if form == "wasserstein":
            d_loss = d_real.mean() - d_fake.mean() if swapped else d_fake.mean() - d_real.mean()
        else:
            real_label, fake_label = (0.0, 1.0) if swapped else (1.0, 0.0)
            d_loss = F.binary_cross_entropy(d_real, torch.full_like(d_real, real_label)) + F.binary_cross_entropy(d_fake, torch.full_like(d_fake, fake_label))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        if form == "wasserstein":
            for p in D.parameters():
                p.data.clamp_(-0.1, 0.1)
        d_on_fake = D(fake)
        g_loss = (d_on_fake.mean() if swapped else -d_on_fake.mean()) if form == "wasserstein" else F.binary_cross_entropy(d_on_fake, torch.full_like(d_on_fake, 0.0 if swapped else 1.0))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        logged = {"loss": d_loss, "negated loss": -d_loss, "nothing": None, "outputs": d_loss}[passes]
        outputs = {"d_real": d_real, "d_fake": d_fake} if passes == "outputs" else {}
        doctor.step(d_loss=logged, g_loss=g_loss, real=real, fake=fake, **outputs)


@pytest.mark.parametrize(
    ("form", "passes"),
    [("wasserstein", "loss"), ("bce_prob", "loss"), ("wasserstein", "negated loss"), ("wasserstein", "nothing"), ("wasserstein", "outputs"), ("bce_prob", "outputs")],
)
def test_a_d_trained_to_score_reals_lower_is_read_the_other_way_round(form, passes):
    """The original WGAN code trains its critic on mean D(real) - mean D(fake), so a good critic
    scores reals lower; read as is, its ranking of 0.01 was called G dominance (GD205). The
    gradient D's loss sends to its scores on the step's reals says so (and, where the loop passes
    D's outputs, the loss's form learnt with its sides swapped on the step's own batches): the
    statistics read as those of the mirror-image D trained the usual way."""
    G, D, G2, D2 = _mirrored_pair(5, sigmoid=form == "bce_prob")
    schedule = Schedule(flush_every=5, d_probe_every=1)
    usual = gandoctor.Doctor(G, D, schedule=schedule, strict=True)
    _train(usual, form, swapped=False, steps=30, passes=passes)
    usual.close()
    swapped = gandoctor.Doctor(G2, D2, schedule=schedule, strict=True)
    _train(swapped, form, swapped=True, steps=30, passes=passes)
    swapped.close()
    assert "d_reversed" in swapped.context.flags and "d_reversed" not in usual.context.flags
    if passes != "nothing":
        assert swapped.context.values["d_loss_form"] == usual.context.values["d_loss_form"] == form
    for name in ("d.auc", "d_out.real", "d_out.fake", *(["d_prob.real", "d_prob.fake"] if form == "bce_prob" else [])):
        assert swapped.signals.get(name).values == pytest.approx(usual.signals.get(name).values, abs=1e-3), name
    assert max(usual.signals.get("d.auc").values) > 0.9  # D separates at times: a ranking worth mirroring
    # The accuracy, from the first flush on (before it the outputs' range picks the threshold).
    assert swapped.signals.get("d.acc").values[5:] == pytest.approx(usual.signals.get("d.acc").values[5:], abs=1e-3)


def test_sides_are_learnt_only_from_pairs_on_the_step_s_own_batches():
    form = LossForm()
    real, fake = LOGITS
    swapped = real.mean() - fake.mean()  # f.mean() - r.mean() with the pair (fake, real)
    for sides in ([0, 0], [0, 0]):  # the pair's batches not known: nothing said of the sides
        attempt = form.tensors(swapped, [(real, fake), (fake, real)])
        assert attempt is not None
        flags, learnt = form.settle([float(t) for t in attempt[0]], sides)
    assert learnt["d_loss_form"] == "wasserstein" and not form.reversed and flags == {"critic"}
    form = LossForm()
    for _ in range(2):
        attempt = form.tensors(swapped, [(real, fake), (fake, real)])
        assert attempt is not None
        flags, learnt = form.settle([float(t) for t in attempt[0]], [+1, -1])
    assert form.reversed and flags == {"critic"}  # the D-output probes weigh it with what D's gradient says


def test_the_report_says_d_s_outputs_are_read_mirrored():
    G, D, _, _ = _mirrored_pair(5, sigmoid=False)
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=5), strict=True)
    _train(doctor, "wasserstein", swapped=True, steps=30)
    doctor.close()
    from gandoctor.reporters.console import render_text

    assert "read mirrored" in render_text(doctor.report(), width=400)


def _two_player_steps(seed: int, d_loss_of, g_loss_of, lr: tuple[float, float] = (1e-3, 1e-3), optimizer=torch.optim.Adam, real_needs_grad: bool = False, d_scale: float = 1.0, steps: int = 30):  # type: ignore[no-untyped-def]
    """A 2-D GAN trained ``steps`` times with D's loss ``d_loss_of(D, real, fake)`` and G's
    ``g_loss_of(D, fake)``, the doctor stepped after G as the Quickstart says. Returns the doctor
    (closed) and the D losses."""
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
    with torch.no_grad():
        D[2].weight.mul_(d_scale)
    opt_g, opt_d = optimizer(G.parameters(), lr[0]), optimizer(D.parameters(), lr[1])
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=5, d_probe_every=1), strict=True)
    losses = []
    for _ in range(steps):
        real = (torch.randn(64, 2) * 0.5 + 2).requires_grad_(real_needs_grad)
        fake = G(torch.randn(64, 4))
        d_loss = d_loss_of(D, real, fake)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = g_loss_of(D, fake)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        losses.append(d_loss.item())
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
    doctor.close()
    return doctor, losses


def test_an_r1_penalty_s_gradient_of_d_s_scores_is_not_taken_for_the_loss_s():
    """R1 (Mescheder et al.; StyleGAN2) takes autograd.grad of D's summed scores on the reals,
    with create_graph=True: ones flow into those scores, the opposite sign of what the usual loss
    sends. Read as D's training, they made a usual D look reversed."""

    def d_loss_of(D, real, fake):  # type: ignore[no-untyped-def]
        d_real, d_fake = D(real), D(fake.detach())
        (grad_real,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)  # first, as StyleGAN2's d_r1_loss
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean() + 5.0 * grad_real.pow(2).sum(1).mean()

    doctor, _ = _two_player_steps(3, d_loss_of, lambda D, fake: F.softplus(-D(fake)).mean(), real_needs_grad=True)
    kind = next(p for p in doctor.probes if p.name == "d_probe").kind
    assert kind.reversed is False and kind.pushes["up"] >= 2 and kind.pushes["down"] == 0
    assert "d_reversed" not in doctor.context.flags
    assert max(doctor.signals.get("d.auc").values) > 0.9
    # The penalty itself is seen: remedies do not propose adding one. BCE is no critic.
    assert "gradient_penalty" in doctor.context.flags and "critic" not in doctor.context.flags


def test_a_relativistic_g_step_on_fresh_reals_passed_as_real_does_not_make_d_read_reversed():
    """ozanciga's RaLSGAN draws a fresh real batch for G's step, calls D on it in G's relativistic
    loss and passes the loop's variables, reassigned by that step, to the doctor. The only
    backward that reached D's scores on that ``real`` was G's, which pushes them down: a usual D
    was read reversed. D's direction is read only from a call D's optimizer stepped after."""
    torch.manual_seed(5)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    doctor = gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, schedule=Schedule(flush_every=5, d_probe_every=1), strict=True)
    for _ in range(30):
        real, fake = torch.randn(64, 2) * 0.5 + 2, G(torch.randn(64, 4))
        d_real, d_fake = D(real), D(fake.detach())
        d_loss = ((d_real - d_fake.mean() - 1) ** 2).mean() + ((d_fake - d_real.mean() + 1) ** 2).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        real, fake = torch.randn(64, 2) * 0.5 + 2, G(torch.randn(64, 4))  # G's step: both drawn again
        d_real, d_fake = D(real), D(fake)
        g_loss = ((d_real - d_fake.mean() + 1) ** 2).mean() + ((d_fake - d_real.mean() - 1) ** 2).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
    doctor.close()
    assert "d_reversed" not in doctor.context.flags
    kind = next(p for p in doctor.probes if p.name == "d_probe").kind
    assert kind.pushes["down"] == 0  # G's push on those reals was not taken for D's


def test_a_wgan_gp_whose_total_loss_stays_positive_is_read_as_a_critic_with_a_penalty():
    """A WGAN-GP's loss (mean D(fake) - mean D(real) + 10 x penalty) can stay positive: no
    negative loss marked it a critic and no form explains it, so D's accuracy was read at 0 as a
    logit's and the remedies proposed a gradient penalty and a Wasserstein loss, both in use. The
    gradients its loss sends to D's scores on the reals, all the same (it is linear in them),
    mark the critic; the penalty's create_graph backward through D marks the penalty."""

    def d_loss_of(D, real, fake):  # type: ignore[no-untyped-def]
        alpha = torch.rand(64, 1)
        mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_()
        (grad,) = torch.autograd.grad(D(mixed).sum(), mixed, create_graph=True)
        return D(fake.detach()).mean() - D(real).mean() + 10.0 * ((grad.norm(2, dim=1) - 1) ** 2).mean()

    doctor, losses = _two_player_steps(4, d_loss_of, lambda D, fake: -D(fake).mean(), lr=(1e-4, 1e-4))
    assert min(losses) > 0  # never negative: the loss gave no sign of a critic
    assert doctor.context.values.get("d_loss_form") == "unrecognised"
    assert {"critic", "gradient_penalty"} <= doctor.context.flags and "d_reversed" not in doctor.context.flags
    from gandoctor.reporters.console import render_text

    assert "d_loss_unit" not in render_text(doctor.report(), width=400)  # no unit to declare for a critic


def test_a_hinge_loss_inside_its_margin_is_not_taken_for_a_critic():
    """While every score is inside the hinge's margin its gradient is the same for every sample,
    as a critic's: a weak hinge D (the corpus's c094 of seed 39) was taken for one, its accuracy
    read at the midpoint, and its swings called non-convergence. The learnt form decides."""

    def d_loss_of(D, real, fake):  # type: ignore[no-untyped-def]
        d_real, d_fake = D(real), D(fake.detach())
        assert d_real.abs().max() < 1 and d_fake.abs().max() < 1  # inside the margin throughout
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()

    doctor, _ = _two_player_steps(6, d_loss_of, lambda D, fake: -D(fake).mean(), lr=(1e-4, 1e-5), optimizer=torch.optim.RMSprop, d_scale=0.01)
    kind = next(p for p in doctor.probes if p.name == "d_probe").kind
    assert kind.pushes["linear"] >= 2  # linear as far as the gradients show
    assert doctor.context.values["d_loss_form"] == "hinge" and "critic" not in doctor.context.flags
    assert "hinge_loss" in doctor.context.flags  # at chance 2, not 1.39: GD207 stands down


def _least_squares_towards_minus_one_and_zero(uses: dict[str, float] | None = None, steps: int = 400) -> Any:
    """ChristophReich1996/Mode_Collapse's least-squares loss (reals towards -1, fakes towards 0,
    halved) on 8 Gaussians: no known form explains it, and its chance level (0.25) sits under BCE's
    floor (0.2) scaled by nothing."""
    torch.manual_seed(0)
    angles = torch.arange(8) * (2 * torch.pi / 8)
    centres = torch.stack([angles.cos(), angles.sin()], 1) * 2
    G = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2))
    D = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    with gandoctor.Doctor(G, D, opt_g, opt_d, uses=uses or {}, schedule=Schedule(budget=None)) as doctor:
        for _ in range(steps):
            real = centres[torch.randint(0, 8, (128,))] + 0.05 * torch.randn(128, 2)
            fake = G(torch.randn(128, 4))
            d_loss = 0.5 * (((D(real) + 1) ** 2).mean() + (D(fake.detach()) ** 2).mean())
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = 0.5 * ((D(fake) + 1) ** 2).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
        return doctor.report()


def test_a_d_loss_of_no_known_form_is_not_read_against_bce_s_floor_until_its_unit_is_declared():
    report = _least_squares_towards_minus_one_and_zero()
    assert report.context.values.get("d_loss_form") == "unrecognised" and "d_loss_unit_unknown" in report.context.flags
    unit_rules = {"GD102", "GD106", "GD207"}
    skipped = {s.rule for s in report.skipped_rules if s.rule in unit_rules}
    assert skipped == unit_rules and not unit_rules & set(report.rules_checked_codes)
    assert "discriminator_dominance" not in report.modes
    declared = _least_squares_towards_minus_one_and_zero(uses={"d_loss_unit": 0.25})
    assert "d_loss_unit_unknown" not in declared.context.flags
    assert {"GD102", "GD106"} <= set(declared.rules_checked_codes)
    assert not any(s.rule in unit_rules and "d_loss_unit_unknown" in s.missing for s in declared.skipped_rules)


@pytest.mark.parametrize(("target", "declared"), [(0.9, None), (0.8, 0.8)])
def test_a_d_trained_with_smoothed_real_labels_is_learnt_as_bce_that_smooths(target: float, declared: float | None):
    """Udacity's notebooks train D towards 0.9 on the reals: no form explained the loss, so the
    rules reading D's loss against BCE's chance (GD207) and floor were not checked. Another
    target is learnt where it is declared (uses={"label_smoothing": 0.8})."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16))
    D = nn.Sequential(nn.Linear(16, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    uses = {"label_smoothing": declared} if declared else {}
    doctor = gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, uses=uses, schedule=Schedule(flush_every=5), strict=True)
    for _ in range(30):
        real, fake = torch.randn(64, 16) + 1, G(torch.randn(64, 8))
        d_real, d_fake = D(real), D(fake.detach())
        d_loss = F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, target)) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(D(fake), torch.ones(64, 1))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
    doctor.close()
    assert doctor.context.values["d_loss_form"] == "bce_logits" and doctor.context.values["d_loss_unit"] == 1.0
    assert "label_smoothing" in doctor.context.flags



def accumulated_hinge_run(log_dir: Any, accumulate: int, steps: int, fake_first: bool, uses: Any = ()) -> gandoctor.Doctor:
    """A hinge GAN on 2-D points whose D step accumulates ``accumulate`` micro-batches (D called on
    each side of each, the fakes first where ``fake_first``, as lightweight-gan does), logging the
    mean of their losses; the Doctor given the last micro-batch's samples, closed at the end."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 2))
    D = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.9)), torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.9))
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=log_dir, uses=uses)
    for _ in range(steps):
        opt_d.zero_grad()
        total = 0.0
        for _ in range(accumulate):
            real = torch.randn(32, 2) * 0.2 + 1
            with torch.no_grad():
                fake = G(torch.randn(32, 8))
            if fake_first:
                d_loss = (F.relu(1 + D(fake)) + F.relu(1 - D(real))).mean()
            else:
                d_loss = (F.relu(1 - D(real)) + F.relu(1 + D(fake))).mean()
            (d_loss / accumulate).backward()
            total += d_loss.item()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = -D(G(torch.randn(32, 8))).mean()
        g_loss.backward()
        opt_g.step()
        doctor.step(d_loss=total / accumulate, g_loss=g_loss, real=real, fake=fake)
    doctor.close()
    return doctor


@pytest.mark.parametrize("accumulate", [2, 4])
def test_a_hinge_loss_over_accumulated_micro_batches_is_learnt(tmp_path, accumulate):
    """lightweight-gan accumulates 4 micro-batches per D step (D(fake), D(real) for each) and logs
    the mean of their hinge losses: no single batch's outputs explain it, and the hinge D (linear
    inside its margin) was read as a Wasserstein critic, 12 rules off."""
    doctor = accumulated_hinge_run(tmp_path, accumulate, steps=60, fake_first=True)
    assert doctor.context.values["d_loss_form"] == "hinge" and "critic" not in doctor.context.flags
