"""The overhead budget's plan, on synthetic timings (no clock in these tests)."""

from __future__ import annotations

import pytest
from torch import nn

import gandoctor
from gandoctor.probes import Schedule
from gandoctor.probes.base import Probe
from gandoctor.probes.budget import HEADROOM, WARMUP_STEPS, Budget


class Fake(Probe):
    def __init__(self, name: str, field: str | None, cost_ms: float, schedule: Schedule, cap: int = 8) -> None:
        self.name = name
        self.schedule_field = field  # type: ignore[misc]
        self.cost = cost_ms  # type: ignore[misc]
        self.max_stretch = cap  # type: ignore[misc]
        self.host = type("Host", (), {"schedule": schedule})()  # type: ignore[assignment]


def probes(schedule: Schedule) -> list[Probe]:
    return [
        Fake("losses", None, 0.01, schedule),
        Fake("sample_stats", "sample_stats_every", 7.0, schedule),  # 0.07 ms per step at every 100, 0.14 at 50
        Fake("d_probe", "d_probe_every", 0.3, schedule),  # 0.03 ms per step at every 10
        Fake("grads.d", "grad_every", 0.05, schedule, cap=4),  # 0.05 ms per step at every 1
    ]


def run(budget: Budget, steps: int, train_ms: float, fixed_ms: float) -> None:
    t = 0.0
    for _ in range(steps):
        budget.step_done(t, t + fixed_ms / 1e3, 0.0)
        t += (fixed_ms + train_ms) / 1e3
        if budget.steps % 25 == 0:
            budget.plan()


def test_no_plan_before_the_warm_up_or_without_a_budget():
    schedule = Schedule()
    budget = Budget(0.05, probes(schedule))
    run(budget, WARMUP_STEPS - 1, train_ms=1.0, fixed_ms=0.0)
    assert set(budget.stretch.values()) == {1}
    off = Budget(None, probes(schedule))
    run(off, 2 * WARMUP_STEPS, train_ms=1.0, fixed_ms=0.0)
    assert set(off.stretch.values()) == {1}


def test_a_slow_step_keeps_every_interval_and_a_fast_one_stretches_the_costliest_first():
    schedule = Schedule(sample_stats_every=100)  # the arithmetic below assumes 100
    slow = Budget(0.05, probes(schedule))
    run(slow, WARMUP_STEPS + 50, train_ms=100.0, fixed_ms=0.1)
    assert set(slow.stretch.values()) == {1}
    # 2 ms steps: a plan fills 90% of the 0.1 ms allowed, 0.02 fixed, so 0.07 for probes that amortise
    # to 0.15 ms per step: sample_stats 0.07 -> x2 (0.115 in all), grads 0.05 -> x2 (0.09),
    # sample_stats 0.035 -> x4 (0.0725), d_probe 0.03 -> x2 (0.0575).
    assert HEADROOM == 0.9
    fast = Budget(0.05, probes(schedule))
    run(fast, WARMUP_STEPS + 50, train_ms=2.0, fixed_ms=0.02)
    assert fast.stretch == {"sample_stats": 4, "d_probe": 2, "grads.d": 2}
    assert fast.amortised(fast.stretch) == pytest.approx(0.0575e-3)
    assert fast.every(probes(schedule)[1]) == 400


def test_the_live_checks_share_is_kept_aside():
    # As above, with 1% of the step reserved (0.02 ms): 0.05 ms for the probes, so grads 0.025 -> x4 (0.045).
    schedule = Schedule(sample_stats_every=100)
    reserved = Budget(0.05, probes(schedule), reserved=0.01)
    run(reserved, WARMUP_STEPS + 50, train_ms=2.0, fixed_ms=0.02)
    assert reserved.stretch == {"sample_stats": 4, "d_probe": 2, "grads.d": 4}
    assert reserved.estimated_share() == pytest.approx((0.02 + 0.045) / 2.0 + 0.01)


def test_a_doctor_with_live_checks_at_the_default_cadence_reserves_their_share():
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    from gandoctor.live import LIVE_TIME_FACTOR

    assert gandoctor.Doctor(G, D)._budget.reserved == pytest.approx(1 / LIVE_TIME_FACTOR)
    assert gandoctor.Doctor(G, D, live_every=0)._budget.reserved == 0.0  # no live checks
    assert gandoctor.Doctor(G, D, live_every=100)._budget.reserved == 0.0  # a fixed interval: no bound on their cost


def test_stretch_stops_at_each_probes_cap():
    schedule = Schedule()
    budget = Budget(0.01, probes(schedule))
    run(budget, WARMUP_STEPS + 50, train_ms=0.1, fixed_ms=0.5)  # the fixed share alone is over budget
    assert budget.stretch == {"sample_stats": 8, "d_probe": 8, "grads.d": 4}



def test_the_plan_message_gives_the_estimated_share_and_says_when_the_budget_cannot_be_met():
    schedule = Schedule(sample_stats_every=100)
    fresh = Budget(0.05, probes(schedule))
    assert fresh.estimated_share() is None and fresh.plan_message("x every 2") == "overhead budget: x every 2 steps"
    fits = Budget(0.05, probes(schedule))
    run(fits, WARMUP_STEPS + 50, train_ms=2.0, fixed_ms=0.02)  # as above: 0.0575 ms of probes + 0.02 fixed on 2 ms
    assert fits.estimated_share() == pytest.approx((0.02 + 0.0575) / 2.0)
    message = fits.plan_message("sample_stats every 400")
    assert "about 3.9% of a training step, budget 5%" in message and "longest interval" not in message
    over = Budget(0.01, probes(schedule))
    run(over, WARMUP_STEPS + 50, train_ms=0.1, fixed_ms=0.5)  # the fixed share alone is 5x the step
    assert "over it with every probe at its longest interval, the every-step part alone 500.0%" in over.plan_message("...")

def test_schedule_budget_is_a_fraction_or_none():
    assert Schedule(budget=None).budget is None
    for bad in (0, 1, -0.1, True, "5%"):
        with pytest.raises(ValueError, match="budget"):
            Schedule(budget=bad)


def test_doctor_reports_its_current_intervals():
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(budget=None, spectrum_every=0))
    assert doctor.intervals["sample_stats"] == Schedule().sample_stats_every and doctor.intervals["spectrum"] == 0


def test_the_final_flush_makes_no_new_plan():
    # Its window is the run's last few steps (in the overhead benchmark, a block's gap): a plan made
    # from it went into the run log and the intervals read after close.
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=2), live_every=0)
    plans: list[int] = []
    plan = doctor._budget.plan
    doctor._budget.plan = lambda: plans.append(doctor._step) or plan()  # type: ignore[method-assign]
    for _ in range(3):
        doctor.step(d_loss=0.5, g_loss=0.5)
    assert plans == [1]  # the flush at the second step
    doctor.close()
    assert plans == [1]
