"""The plain Doctor under mixed precision (autocast + GradScaler) and with torch.compile'd G and D.

No framework here: these are the loops people write by hand. What must hold: gradient norms are
the unscaled ones the optimizer applies, a step the scaler skips records no gradient at all (so a
scaler doing its job is not an explosion), and compiled modules are probed like eager ones.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import gandoctor
from gandoctor.probes import Doctor, Schedule

from . import _gan

STEPS = 40


def _scaler(enabled: bool, init_scale: float) -> torch.amp.GradScaler:
    if not hasattr(torch.amp, "GradScaler"):
        pytest.skip("torch.amp.GradScaler is missing in this torch (needs 2.3+)")
    return torch.amp.GradScaler("cpu", init_scale=init_scale, enabled=enabled)


def amp_loop(use_scaler: bool, blow_up: frozenset[int] = frozenset(), init_scale: float = 2.0**10) -> tuple[Doctor, list[float]]:
    torch.manual_seed(0)
    data = torch.Generator().manual_seed(1)
    G, D = _gan.generator(), _gan.discriminator()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    scaler = _scaler(use_scaler, init_scale)
    bce = nn.BCEWithLogitsLoss()
    doctor = Doctor(G, D, opt_g, opt_d, d_output="logit", schedule=Schedule(d_probe_every=1), strict=True)
    scales: list[float] = []
    for step in range(STEPS):
        real = _gan.ring(64, data)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fake = G(torch.randn(64, _gan.Z_DIM))
            d_real, d_fake = D(real), D(fake.detach())
            d_loss = bce(d_real.float(), torch.ones(64, 1)) + bce(d_fake.float(), torch.zeros(64, 1))
        opt_d.zero_grad()
        scaler.scale(d_loss).backward()
        scaler.step(opt_d)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = D(fake)
            g_loss = bce(out.float(), torch.ones(64, 1))
        # An overflowing backward (finite loss, inf gradients): the scaler must skip this step.
        push = g_loss * 1e38 if step in blow_up else g_loss
        opt_g.zero_grad()
        scaler.scale(push).backward()
        scaler.step(opt_g)
        scaler.update()
        scales.append(float(scaler.get_scale()) if use_scaler else 1.0)
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake, d_real=d_real, d_fake=d_fake)
    doctor.close()
    return doctor, scales


def test_autocast_with_grad_scaler_records_unscaled_gradient_norms():
    scaled, _ = amp_loop(use_scaler=True)
    plain, _ = amp_loop(use_scaler=False)
    for name in ("grad_norm.d", "grad_norm.g", "loss.d", "loss.g", "d.auc"):
        a, b = scaled.signals.get(name), plain.signals.get(name)
        assert a is not None and b is not None and len(a) == STEPS, name
        # Scaling by a power of two is exact, so the unscaled norms match the run without a scaler;
        # a norm taken before unscaling would be 1024 times larger.
        assert a.values == pytest.approx(b.values, rel=1e-4), name


def test_steps_the_scaler_skips_record_no_gradient_and_are_no_explosion():
    bad = frozenset({10, 11, 25})
    doctor, scales = amp_loop(use_scaler=True, blow_up=bad)
    assert scales[10] < scales[9]  # the scaler saw the overflow and backed off
    steps = doctor.signals.get("opt_steps.g")
    assert steps is not None
    taken = dict(zip(steps.steps.tolist(), steps.values.tolist()))
    assert all(taken[s] == 0 for s in bad)  # the optimizer step never ran
    assert all(taken[s] == 1 for s in range(STEPS) if s not in bad)
    grad = doctor.signals.get("grad_norm.g")
    assert grad is not None and len(grad) == STEPS - len(bad)
    assert all(math.isfinite(v) for v in grad.values)
    assert "exploding_gradients" not in doctor.report().modes


def _compile(module: nn.Module) -> nn.Module:
    # aot_eager runs Dynamo's graph capture and AOTAutograd's backward (what changes how gradients
    # reach the parameters) without a C++ toolchain; inductor adds code generation only.
    return torch.compile(module, backend="aot_eager")


def _bce_loop(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, doctor: Doctor | None) -> None:
    """STEPS iterations of a plain BCE loop on the ring: D's step on ``real`` and ``fake.detach()``,
    G's on the same ``fake``; D's outputs are not passed (the doctor keeps or computes its own)."""
    data = torch.Generator().manual_seed(1)
    bce = nn.BCEWithLogitsLoss()
    for _ in range(STEPS):
        real = _gan.ring(64, data)
        fake = G(torch.randn(64, _gan.Z_DIM))
        d_loss = bce(D(real), torch.ones(64, 1)) + bce(D(fake.detach()), torch.zeros(64, 1))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = bce(D(fake), torch.ones(64, 1))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        if doctor is not None:
            doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)


def test_compiled_generator_and_discriminator_are_probed():
    if not hasattr(torch, "compile"):
        pytest.skip("torch.compile needs torch 2.0+")
    torch.manual_seed(0)
    G, D = _compile(_gan.generator()), _compile(_gan.discriminator())
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
    schedule = gandoctor.Schedule(d_probe_every=5, layer_every=10, weight_every=10, feature_every=5, sample_stats_every=20)
    doctor = Doctor(G, D, opt_g, opt_d, d_output="logit", schedule=schedule, strict=True)
    _bce_loop(G, D, opt_g, opt_d, doctor)
    report = doctor.report()
    doctor.close()
    signals = set(report.signals)
    assert {"loss.d", "loss.g", "grad_norm.d", "grad_norm.g", "d.auc", "weight_norm.d", "feat.coverage"} <= signals
    grad = doctor.signals.get("grad_norm.g")
    assert grad is not None and len(grad) == STEPS and bool((grad.values > 0).all())
    assert any(name.startswith("grad_norm.d.layer.") for name in signals)
    # D's outputs are kept from the loop's own calls through a hook on the module the loop calls
    # (the OptimizedModule runs its hooks outside the graph), not on the compiled inner D.
    catch = next(p for p in doctor.probes if p.name == "d_probe").catch
    assert catch is not None and catch.discriminator is D


def _graphs_compiled(in_place: bool, doctor_on: bool, uses: dict[str, float] | None = None) -> int:
    """Graphs dynamo compiles for D over a plain loop, with or without the doctor attached."""
    graphs: list[object] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: object) -> object:
        graphs.append(gm)
        return gm.forward

    torch.manual_seed(0)
    torch._dynamo.reset()
    G, plain_d = _gan.generator(), _gan.discriminator()
    if in_place:
        plain_d.compile(backend=backend)
        D = plain_d
    else:
        D = torch.compile(plain_d, backend=backend)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=1e-3), torch.optim.Adam(plain_d.parameters(), lr=1e-3)
    schedule = gandoctor.Schedule(d_probe_every=5, feature_every=5, sample_stats_every=20)
    doctor = Doctor(G, D, opt_g, opt_d, schedule=schedule, strict=True, uses=uses or {}) if doctor_on else None
    _bce_loop(G, D, opt_g, opt_d, doctor)
    if doctor is not None:
        assert doctor.signals.get("d.acc") is not None
        doctor.close()
    return len(graphs)


def test_the_doctor_adds_no_graph_to_a_compiled_d():
    if not hasattr(torch, "compile"):
        pytest.skip("torch.compile needs torch 2.0+")
    # torch.compile(D): the hooks hang on the OptimizedModule, outside the graph. Before, the loss
    # form's hook on the inner D (its first steps) took D from 2 graphs to 5.
    assert _graphs_compiled(in_place=False, doctor_on=True) == _graphs_compiled(in_place=False, doctor_on=False)
    # D.compile() traces its own hooks: with D's loss unit declared, no hook is hung on it, and the
    # doctor's own no-grad forward of D runs eagerly (it was a graph of its own: 7 graphs against 2).
    bare = _graphs_compiled(in_place=True, doctor_on=False)
    assert _graphs_compiled(in_place=True, doctor_on=True, uses={"d_loss_unit": 1.0}) == bare


def test_compiled_modules_keep_their_layer_names():
    G, D = _compile(_gan.generator()), _compile(_gan.discriminator())
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=0.01), torch.optim.SGD(D.parameters(), lr=0.01)
    doctor = Doctor(G, D, opt_g, opt_d, schedule=gandoctor.Schedule(layer_every=1), strict=True)
    for _ in range(2):
        loss = D(G(torch.randn(8, _gan.Z_DIM))).mean()
        opt_d.zero_grad()
        opt_g.zero_grad()
        loss.backward()
        opt_d.step()
        opt_g.step()
        doctor.step(d_loss=loss, g_loss=-loss)
    names = set(doctor.report().signals)
    doctor.close()
    assert "grad_norm.d.layer.0" in names


def test_a_compiled_d_is_recognised_however_it_was_compiled():
    from gandoctor.probes.doctor import _compiled

    plain, in_place = nn.Linear(2, 1), nn.Linear(2, 1)
    in_place.compile(backend="aot_eager")
    assert not _compiled(plain)
    assert _compiled(_compile(nn.Linear(2, 1))) and _compiled(in_place)
    assert _compiled(nn.DataParallel(in_place))
