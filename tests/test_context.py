"""RunContext: what inspection reads from the models and optimizers, and its stored form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gandoctor
from gandoctor.context import ContextError, RunContext, inspect_training, norm_layers, parse_uses
from gandoctor.errors import GanDoctorError


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.pow(2).mean(dim=1, keepdim=True).add(1e-8).sqrt()


def dcgan() -> tuple[nn.Module, nn.Module]:
    G = nn.Sequential(nn.ConvTranspose2d(16, 8, 4), nn.BatchNorm2d(8), nn.ReLU(), PixelNorm(), nn.ConvTranspose2d(8, 1, 4), nn.Tanh())
    D = nn.Sequential(
        nn.utils.parametrizations.spectral_norm(nn.Conv2d(1, 8, 4)), nn.LayerNorm([8, 4, 4]), nn.Dropout(0.25),
        nn.Dropout2d(0.4), nn.Flatten(), nn.Linear(128, 1),
    )
    return G, D


def test_inspection_reads_optimizers_norm_layers_dropout_and_the_latent_size():
    G, D = dcgan()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.AdamW(D.parameters(), lr=4e-4, betas=(0.5, 0.99), weight_decay=0.01)
    ctx = inspect_training(G, D, opt_g, opt_d, "logit", uses={"gradient_penalty": 10.0})
    v = ctx.values
    assert (v["optimizer_d"], v["optimizer_g"]) == ("AdamW", "Adam")
    assert (v["beta1_g"], v["beta2_g"], v["beta1_d"], v["beta2_d"]) == (0.0, 0.9, 0.5, 0.99)
    assert (v["weight_decay_d"], v["weight_decay_g"]) == (0.01, 0.0)
    assert v["g_norm"] == ["BatchNorm2d", "PixelNorm"] and v["d_norm"] == ["LayerNorm"]
    assert v["d_dropout_p"] == 0.4 and v["latent_dim"] == 16
    assert v["gradient_penalty"] == 10.0
    assert {"gradient_penalty", "d_spectral_norm", "d_dropout", "g_batchnorm", "ttur", "lr_d_above_lr_g", "weight_decay_d"} <= ctx.flags
    assert "weight_decay_g" not in ctx.flags and "d_batchnorm" not in ctx.flags
    assert v["d_params"] == sum(p.numel() for p in D.parameters())


class SpectralNorm(nn.Module):
    """The wrapper older SN-GAN code writes (christiancosgrove's: ``SpectralNorm(nn.Conv2d(...))``)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


class SNLinear(nn.Linear):
    """BigGAN-PyTorch's layers.SNLinear: a layer class that applies spectral norm itself."""


@pytest.mark.parametrize("layer", [SpectralNorm(nn.Linear(2, 8)), SNLinear(2, 8)], ids=["wrapper", "SNLinear"])
def test_a_spectral_norm_of_the_user_s_own_is_seen_and_is_no_norm_layer(layer):
    G, D = nn.Sequential(nn.Linear(3, 2)), nn.Sequential(layer, nn.LeakyReLU(0.2), nn.Linear(8, 1))
    ctx = inspect_training(G, D, None, None)
    assert "d_spectral_norm" in ctx.flags and ctx.values["d_norm"] == []
    assert "d_spectral_norm" not in inspect_training(G, nn.Sequential(nn.Linear(2, 1), nn.Softsign()), None, None).flags


def test_one_optimizer_over_both_networks_gives_each_the_settings_of_its_own_group():
    G, D = dcgan()
    opt = torch.optim.Adam([{"params": G.parameters(), "lr": 1e-4}, {"params": D.parameters(), "lr": 4e-4, "betas": (0.0, 0.9)}])
    v = inspect_training(G, D, opt, opt).values
    assert (v["lr_g"], v["lr_d"]) == (1e-4, 4e-4)
    assert (v["beta1_g"], v["beta1_d"]) == (0.9, 0.0)


def test_a_plain_mlp_gan_without_optimizers_has_no_optimizer_values():
    G, D = nn.Sequential(nn.Linear(3, 2)), nn.Sequential(nn.Linear(2, 1))
    ctx = inspect_training(G, D, None, None, uses=["ema_g"])
    assert ctx.flags == {"ema_g"}
    assert ctx.values["g_norm"] == [] and ctx.values["d_dropout_p"] == 0.0 and ctx.values["latent_dim"] == 3
    assert not any(k.startswith(("lr_", "beta", "optimizer_", "weight_decay_")) for k in ctx.values)
    assert norm_layers(nn.Sequential(nn.InstanceNorm2d(3), nn.GroupNorm(1, 3))) == ["GroupNorm", "InstanceNorm2d"]


def test_the_declared_d_output_marks_critics_and_energy_discriminators():
    G, D = nn.Sequential(nn.Linear(3, 2)), nn.Sequential(nn.Linear(2, 1))
    assert "critic" in inspect_training(G, D, None, None, "critic").flags
    energy = inspect_training(G, D, None, None, "energy").flags
    assert "energy_d" in energy and "critic" not in energy  # the loss-floor rules skip it; critic remedies still apply
    assert not {"critic", "energy_d"} & inspect_training(G, D, None, None, "logit").flags


def test_uses_must_be_flags_or_a_mapping_of_flags_to_values():
    assert parse_uses(["a", "b"]) == RunContext(frozenset({"a", "b"}))
    assert parse_uses({"gp": 10}).values == {"gp": 10}
    with pytest.raises(TypeError, match="string"):
        parse_uses("gradient_penalty")
    with pytest.raises(ValueError, match="gp"):
        parse_uses({"gp": object()})


def test_to_dict_and_from_dict_round_trip_and_name_the_source_of_a_bad_one():
    ctx = RunContext(frozenset({"critic"}), {"lr_d": 1e-4, "g_norm": ("BatchNorm2d",), "features": "pixels"})
    data = ctx.to_dict()
    assert data == {"flags": ["critic"], "values": {"lr_d": 1e-4, "g_norm": ["BatchNorm2d"], "features": "pixels"}}
    assert RunContext.from_dict(data, "x") == RunContext(ctx.flags, data["values"])
    with pytest.raises(ContextError, match=r"run\.jsonl: line 1: context\.values\.lr_d: expected a finite number") as err:
        RunContext.from_dict({"flags": [], "values": {"lr_d": {"a": 1}}}, "run.jsonl: line 1")
    assert isinstance(err.value, GanDoctorError)
    with pytest.raises(ContextError, match="where.txt: context.flags: expected a list of strings"):
        RunContext.from_dict({"flags": "critic"}, "where.txt")
    with pytest.raises(ContextError, match="got list"):
        RunContext.from_dict([], "where.txt")
    lenient = RunContext.from_dict({"flags": ["a", 3], "values": {"x": 1, "y": None, "z": float("nan")}}, "w", strict=False)
    assert lenient == RunContext(frozenset({"a"}), {"x": 1})


def test_the_run_log_keeps_list_values_and_the_users_values(tmp_path):
    G, D = dcgan()
    doctor = gandoctor.Doctor(G, D, log_dir=tmp_path, uses={"gradient_penalty": 10.0}, latent_dim=16)
    doctor.step(d_loss=0.5)
    doctor.close()
    data = gandoctor.read_run(tmp_path)
    assert data.context.values["g_norm"] == ["BatchNorm2d", "PixelNorm"]
    assert data.context.values["gradient_penalty"] == 10.0 and "gradient_penalty" in data.context.flags
    assert data.context.values["features"] == "pooled" and data.context.values["latent_dim"] == 16


def test_d_steps_per_g_step_follow_the_run_not_its_first_steps():
    """The original WGAN trains D 100 times per G step for G's first 25 steps, 5 times after."""
    from gandoctor.context import ContextInference

    inference, context = ContextInference("critic"), RunContext()
    for gen_iteration in range(200):
        learnt = inference.observe({"opt_steps.d": 100.0 if gen_iteration < 25 else 5.0, "opt_steps.g": 1.0}, context)
        if learnt is not None:
            context = context.merged(learnt)
        if gen_iteration == 0:
            assert "multi_d_steps" in context.flags and context.values["d_steps_per_g"] == 100.0
    assert context.values["d_steps_per_g"] == 5.0


def test_d_steps_per_g_step_are_read_from_the_sums_when_doctor_step_runs_every_batch():
    """PyTorch-GAN's wgan_gp.py trains G on every fifth batch; a loop that calls doctor.step on
    every batch records G step counts of 0 or 1: the ratio comes from their sums."""
    from gandoctor.context import ContextInference

    inference, context = ContextInference("critic"), RunContext()
    learnt = None
    for step in range(40):
        learnt = inference.observe({"opt_steps.d": 1.0, "opt_steps.g": 1.0 if step % 5 == 4 else 0.0}, context) or learnt
    assert learnt is not None and "multi_d_steps" in learnt.flags and learnt.values["d_steps_per_g"] == 5.0
    balanced, seen = ContextInference("logit"), RunContext()
    for _ in range(40):
        learnt = balanced.observe({"opt_steps.d": 1.0, "opt_steps.g": 1.0}, seen)
        seen = seen.merged(learnt) if learnt is not None else seen
    # One step each, known: "train G more often than D" is done already (no multi_d_steps flag).
    assert seen == RunContext(frozenset(), {"d_steps_per_g": 1.0})


def test_d_steps_per_g_step_summed_over_whole_cycles_of_one_g_batch_and_five_d_batches():
    """Lightning 1.x optimizer frequencies (G on one batch, D on the next five): the first twenty
    doctor steps hold 4 G steps and 16 D steps, read 4.0 for 5 and never read again."""
    from gandoctor.context import ContextInference

    inference, context = ContextInference("critic"), RunContext()
    for step in range(600):
        learnt = inference.observe({"opt_steps.d": 0.0 if step % 6 == 0 else 1.0, "opt_steps.g": 1.0 if step % 6 == 0 else 0.0}, context)
        if learnt is not None:
            context = context.merged(learnt)
        if step == 19:
            assert context.values["d_steps_per_g"] == 4.0
    assert "multi_d_steps" in context.flags and context.values["d_steps_per_g"] == 5.0


def test_doctor_steps_per_g_step_are_read_where_the_loop_steps_the_doctor_on_every_d_batch():
    from gandoctor.context import STEPS_PER_G_STEP, ContextInference

    inference, context = ContextInference("critic"), RunContext()
    for step in range(500):
        learnt = inference.observe({"opt_steps.d": 1.0, "opt_steps.g": 1.0 if step % 5 == 4 else 0.0}, context)
        if learnt is not None:
            context = context.merged(learnt)
    assert context.values[STEPS_PER_G_STEP] == 5.0
    once_per_g, plain = ContextInference("critic"), RunContext()
    for _ in range(500):
        learnt = once_per_g.observe({"opt_steps.d": 5.0, "opt_steps.g": 1.0}, plain)
        plain = plain.merged(learnt) if learnt is not None else plain
    assert STEPS_PER_G_STEP not in plain.values and plain.values["d_steps_per_g"] == 5.0


def _critic_run(tmp_path, per_d_batch: bool, g_iterations: int = 60, n_critic: int = 5) -> gandoctor.Report:
    """A WGAN-style MLP on a ring, five critic steps per G step, the doctor stepped once per G step
    or on every D batch (both ways the README allows)."""
    from tests.integrations._gan import discriminator, generator, ring

    torch.manual_seed(0)
    G, D = generator(), discriminator()
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.9)), torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.9))
    doctor = gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, log_dir=tmp_path / ("batch" if per_d_batch else "g"), live_every=0)
    for _ in range(g_iterations):
        for k in range(n_critic):
            real, fake = ring(64), G(torch.randn(64, 4)).detach()
            d_loss = D(fake).mean() - D(real).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            if per_d_batch and k < n_critic - 1:
                doctor.step(d_loss=d_loss, g_loss=None, real=real, fake=fake)
        fake = G(torch.randn(64, 4))
        g_loss = -D(fake).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake.detach())
    report = doctor.report()
    doctor.close()
    return report


def test_rules_count_g_iterations_whichever_way_the_doctor_is_stepped(tmp_path):
    """crcrpar's SNGAN (n_dis=5), 200 G iterations: stepped once per G step, "too short to judge"
    for five modes; stepped on every D batch (1,000 doctor steps), judged after 54 G iterations."""
    from gandoctor.context import STEPS_PER_G_STEP
    from gandoctor.findings import SkipReason

    per_g, per_batch = _critic_run(tmp_path, per_d_batch=False), _critic_run(tmp_path, per_d_batch=True)
    assert per_batch.context.values[STEPS_PER_G_STEP] == 5.0 and STEPS_PER_G_STEP not in per_g.context.values
    assert gandoctor.analyze(tmp_path / "batch").context.values[STEPS_PER_G_STEP] == 5.0  # the run log keeps it

    def too_short(report: gandoctor.Report) -> set[str]:
        return {s.rule for s in report.skipped_rules if s.reason is SkipReason.TOO_SHORT}

    # (The probes' cadences count doctor steps: a rule may lack a signal in the 60-step log only.)
    assert len(too_short(per_g)) >= 10 and not too_short(per_g) & set(per_batch.rules_checked_codes)
    assert too_short(per_batch) >= too_short(per_g) - {s.rule for s in per_batch.skipped_rules if s.reason is SkipReason.MISSING_SIGNALS}


class _EqualLR:
    """rosinality's StyleGAN equalized learning rate: the weight kept as weight_orig and rescaled
    by a forward pre-hook (no power iteration, no weight_u)."""

    @staticmethod
    def apply(module: nn.Module) -> nn.Module:
        weight = module.weight
        del module._parameters["weight"]
        module.register_parameter("weight_orig", nn.Parameter(weight.data))
        fan_in = weight.data.size(1) * weight.data[0][0].numel()

        def rescale(m: nn.Module, args: object) -> None:
            m.weight = m.weight_orig * (2 / fan_in) ** 0.5

        module.register_forward_pre_hook(rescale)
        return module


def test_an_equalized_learning_rate_is_no_spectral_norm():
    # Every StyleGAN1 report said "Add spectral normalization to D: already in use".
    G = nn.Sequential(nn.Linear(2, 2))
    equal = nn.Sequential(_EqualLR.apply(nn.Linear(2, 8)), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    assert "d_spectral_norm" not in inspect_training(G, equal, None, None).flags
    classic = nn.Sequential(nn.utils.spectral_norm(nn.Linear(2, 8)), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    assert "d_spectral_norm" in inspect_training(G, classic, None, None).flags
