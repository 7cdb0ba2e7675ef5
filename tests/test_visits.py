"""Visits: the scheduled probes are looked at only on the steps where one of them needs it, with
the same result as looking at every probe on every step."""

from __future__ import annotations

import torch
from torch import nn

import gandoctor
from gandoctor.probes import Schedule
from gandoctor.probes.base import Probe
from gandoctor.probes.budget import Budget
from gandoctor.probes.visits import Visits


class Fake(Probe):
    def __init__(self, name: str, field: str | None, schedule: Schedule, arms: bool = False) -> None:
        self.name = name
        self.schedule_field = field  # type: ignore[misc]
        self.arms = arms  # type: ignore[misc]
        self.host = type("Host", (), {"schedule": schedule})()  # type: ignore[assignment]


def naive_needs(probes: list[Probe], budget: Budget, step: int) -> set[str]:
    """The probes a look at every probe in this step would act on: due ones, and hooks to (dis)arm."""
    needs = set()
    for probe in probes:
        every = budget.every(probe)
        if probe.schedule_field is None or (every and step % every == 0):
            needs.add(probe.name)
        elif probe.arms and every and (step + 1) % every == 0:
            needs.add(probe.name)  # arms its hook for the next step, which it measures
    return needs


def test_a_step_looks_at_the_every_step_probes_and_only_the_scheduled_ones_it_needs():
    schedule = Schedule(grad_every=4, d_probe_every=10, weight_every=7, budget=None)
    probes: list[Probe] = [
        Fake("losses", None, schedule),
        Fake("grads.d", "grad_every", schedule, arms=True),
        Fake("d_probe", "d_probe_every", schedule),
        Fake("weights", "weight_every", schedule),
    ]
    budget = Budget(None, probes)
    visits = Visits(probes, budget)
    looks = {p.name: 0 for p in probes}
    for step in range(200):
        order = [p.name for p in visits.at(step)]
        assert order == [p.name for p in probes if p.name in order]  # the running order
        looked = set(order)
        assert "losses" in looked
        if step:  # the first call is a full visit
            assert looked == naive_needs(probes, budget, step), step
        for name in looked:
            looks[name] += 1
    # grads every 4 (armed the step before): 2 of 4 steps; d_probe every 10th; weights every 7th.
    assert looks == {"losses": 200, "grads.d": 100, "d_probe": 20, "weights": 29}


def test_a_step_that_goes_back_or_an_interval_changed_by_the_budget_is_a_full_visit():
    schedule = Schedule(d_probe_every=10, budget=None)
    probes: list[Probe] = [Fake("losses", None, schedule), Fake("d_probe", "d_probe_every", schedule)]
    budget = Budget(None, probes)
    visits = Visits(probes, budget)
    assert len(visits.at(0)) == 2
    assert len(visits.at(3)) == 1
    assert len(visits.at(1)) == 2  # a resumed loop restarting its step count
    assert len(visits.at(4)) == 1
    budget._every["d_probe"] = 5  # what Budget.plan does when it stretches or shrinks an interval
    budget.revision += 1
    assert len(visits.at(6)) == 2
    assert len(visits.at(9)) == 1
    assert len(visits.at(10)) == 2


def _train(skip_visits: bool, tmp_path, name: str) -> dict[str, list[tuple[int, float]]]:
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    opt_g = torch.optim.Adam(G.parameters(), 1e-3)
    opt_d = torch.optim.Adam(D.parameters(), 1e-3)
    schedule = Schedule(grad_every=3, d_probe_every=5, weight_every=7, layer_every=6, flush_every=4, budget=None, latent_every=0)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, tmp_path / name, schedule=schedule, live_every=0)
    if skip_visits:
        doctor._visits.at = lambda step: doctor._visits.all  # type: ignore[method-assign]
    bce = nn.BCEWithLogitsLoss()
    for step in range(60):
        real = torch.randn(32, 2)
        fake = G(torch.randn(32, 4))
        d_loss = bce(D(real), torch.ones(32, 1)) + bce(D(fake.detach()), torch.zeros(32, 1))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = bce(D(fake), torch.ones(32, 1))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        doctor.step(d_loss, g_loss, real, fake, step=step)
    doctor.close()
    # NaN as a string: a first measurement with nothing to compare with is NaN by design.
    return {v.name: [(s, repr(x)) for s, x in zip(v.steps.tolist(), v.values.tolist(), strict=True)] for v in doctor.signals.views()}


def test_a_run_records_the_same_values_as_when_every_probe_is_looked_at_every_step(tmp_path):
    visited = _train(False, tmp_path, "visits")
    every_step = _train(True, tmp_path, "every")
    assert visited.keys() == every_step.keys()
    assert any(k.startswith("grad_norm.d.layer.") for k in visited)  # per-layer norms on the layer schedule
    for name in visited:
        assert visited[name] == every_step[name], name
    assert [s for s, _ in visited["grad_norm.d"]] == list(range(0, 60, 3))

