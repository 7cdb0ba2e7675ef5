"""Live diagnosis during real tiny training runs: findings reported once as they appear, the
opt-in actions (stop, raise), the last-healthy-step marker, sinks, and containment."""

from __future__ import annotations

import gc
import importlib
import logging
import math
import time
from dataclasses import replace

import pytest
import torch
from torch import nn

import gandoctor
from gandoctor.errors import NonFiniteLossError
from gandoctor.findings import Finding
from gandoctor.live import DEFAULT_LIVE_EVERY, LIVE_TIME_FACTOR, AlertSink, LiveMonitor
from gandoctor.probes import Schedule
from gandoctor.readers import read_run
from gandoctor.report import Report

from .test_probes import state
from .test_probes import train as train_bn

BLOW_UP_AT = 40  # the step whose update uses the huge learning rate
FLUSH = 10



@pytest.fixture(autouse=True)
def _no_doctor_left_open():
    """A doctor an earlier test left open is closed at the next one's construction, with a last
    check: before a test that scripts the diagnosis, not inside it."""
    from gandoctor.probes.doctor import close_dropped

    gc.collect()
    close_dropped()

def train(
    steps: int, doctor_kwargs: dict | None, blow_up_at: int | None = None, seed: int = 0, break_on_stop: bool = True, break_on_nan: bool = False,
    collapsed: bool = False,
):
    """SGD on a tiny GAN; from ``blow_up_at`` on the learning rate is 1e3 (a schedule bug), which
    takes the losses to NaN within a few steps; ``collapsed``: every fake at G's last bias from the
    first step, G too slow to leave it. Returns the doctor, the steps run and the losses."""
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    if collapsed:
        with torch.no_grad():
            G[2].weight.zero_()
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=1e-5 if collapsed else 0.01), torch.optim.SGD(D.parameters(), lr=0.01)
    bce = nn.BCEWithLogitsLoss()
    doctor = None if doctor_kwargs is None else gandoctor.Doctor(G, D, opt_g, opt_d, **doctor_kwargs)
    losses: list[tuple[torch.Tensor, torch.Tensor]] = []
    ran = 0
    for step in range(steps):
        if step == blow_up_at:
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = 1e3
        real = torch.randn(64, 2) * 0.1 + torch.tensor([1.0, -1.0])
        fake = G(torch.randn(64, 4))
        d_loss = bce(D(real), torch.ones(64, 1)) + bce(D(fake.detach()), torch.zeros(64, 1))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = bce(D(fake), torch.ones(64, 1))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        losses.append((d_loss.detach(), g_loss.detach()))
        ran += 1
        if doctor is not None:
            doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
            if break_on_stop and doctor.should_stop:
                break
        if break_on_nan and not bool(torch.isfinite(d_loss) & torch.isfinite(g_loss)):
            break  # as most scripts do, after doctor.step (README)
    return doctor, ran, losses


def first_nonfinite(losses: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[int, str]:
    for step, (d, g) in enumerate(losses):
        for name, value in (("loss.d", d), ("loss.g", g)):
            if not math.isfinite(float(value)):
                return step, name
    raise AssertionError("the run never went non-finite")


class Recorder:
    """An AlertSink that keeps what it is given."""

    def __init__(self) -> None:
        self.findings: list[tuple[Finding, int]] = []
        self.checks: list[tuple[Report, int]] = []

    def on_finding(self, finding: Finding, step: int) -> None:
        self.findings.append((finding, step))

    def on_check(self, report: Report, step: int) -> None:
        self.checks.append((report, step))


class BrokenSink(Recorder):
    def on_check(self, report: Report, step: int) -> None:
        raise RuntimeError("sink is down")


def test_a_run_that_blows_up_is_reported_once_stops_the_loop_and_marks_the_last_healthy_step(tmp_path, caplog):
    found: list[Finding] = []
    sink = Recorder()
    kwargs = {
        "log_dir": tmp_path, "schedule": Schedule(flush_every=FLUSH), "on_finding": found.append, "alerts": [sink],
        "stop_on": ("exploding_gradients",),
    }
    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        doctor, ran, losses = train(300, kwargs, blow_up_at=BLOW_UP_AT)
    onset, _ = first_nonfinite(losses)
    assert BLOW_UP_AT <= onset < BLOW_UP_AT + FLUSH - 1
    # Stopped in the step whose flush brought the NaN to the host, long before the 300 steps.
    assert doctor.should_stop and ran == BLOW_UP_AT + FLUSH
    assert [(f.mode, f.rule, f.onset_step) for f in found] == [("exploding_gradients", "GD501", onset)]
    assert [(f.rule, step) for f, step in sink.findings] == [("GD501", ran - 1)]
    assert sink.checks and sink.checks[-1][1] == ran - 1
    lines = [r.getMessage() for r in caplog.records if "exploding_gradients" in r.getMessage()]
    assert len(lines) == 1 and lines[0].count("\n") == 0
    assert f"GD501 non-finite-values) from step {onset}" in lines[0] and "top remedy: " in lines[0]
    assert all(r.levelno == logging.WARNING for r in caplog.records if "exploding_gradients" in r.getMessage())
    doctor.close()
    markers = read_run(tmp_path).markers
    assert len(markers) == 1
    marker = markers[0]
    assert marker.last_healthy_step == onset - 1 and marker.onset_step == onset and marker.seen_at == ran - 1
    assert (marker.modes, marker.rules) == (("exploding_gradients",), ("GD501",))
    alerts = doctor.report().alerts  # the live alert, still holding at the end
    assert [(a.rule, a.seen_at, a.onset_step) for a in alerts] == [("GD501", ran - 1, onset)]
    assert not doctor.report().cleared_alerts


def test_a_loop_that_breaks_at_its_first_nan_gets_its_alert_and_marker_at_close(tmp_path):
    """The loop stops before the next flush brings the NaN to the host: close() runs that check."""
    found: list[Finding] = []
    kwargs = {"log_dir": tmp_path, "schedule": Schedule(flush_every=25), "on_finding": found.append}
    doctor, ran, losses = train(300, kwargs, blow_up_at=BLOW_UP_AT, break_on_stop=False, break_on_nan=True)
    onset, _ = first_nonfinite(losses)
    assert ran == onset + 1 and ran % 25 != 0  # stopped between flushes
    assert not found  # nothing had reached the host yet
    doctor.close()
    assert [(f.rule, f.onset_step) for f in found] == [("GD501", onset)]
    (marker,) = read_run(tmp_path).markers
    assert marker.onset_step == onset and marker.rules == ("GD501",)


def test_stop_on_any_and_a_loop_that_goes_on_reports_each_finding_once(tmp_path):
    found: list[Finding] = []
    doctor, ran, _ = train(
        120, {"schedule": Schedule(flush_every=FLUSH), "on_finding": found.append, "stop_on": "any", "live_every": 20},
        blow_up_at=BLOW_UP_AT, break_on_stop=False,
    )
    assert ran == 120 and doctor.should_stop
    keys = [(f.mode, f.rule) for f in found]
    assert ("exploding_gradients", "GD501") in keys and len(keys) == len(set(keys))
    assert doctor._live is not None and doctor._live.checks >= 120 // 20


def test_raise_on_nonfinite_names_the_step_and_the_loss_at_the_flush_that_saw_it():
    torch.manual_seed(0)
    with pytest.raises(NonFiniteLossError) as caught:
        train(300, {"schedule": Schedule(flush_every=FLUSH), "raise_on_nonfinite": True}, blow_up_at=BLOW_UP_AT)
    # The losses the loop saw, replayed without a doctor: the same run (seeded), so the same NaN step.
    _, _, losses = train(BLOW_UP_AT + FLUSH, None, blow_up_at=BLOW_UP_AT)
    onset, loss = first_nonfinite(losses)
    error = caught.value
    assert (error.step, error.loss, error.detected_at) == (onset, loss, BLOW_UP_AT + FLUSH - 1)
    assert not math.isfinite(error.value) and isinstance(error, gandoctor.GanDoctorError)
    argument = {"loss.d": "d_loss", "loss.g": "g_loss"}[loss]
    assert f"{argument} ({loss}) is {error.value} at step {onset}" in str(error)


def test_raise_on_nonfinite_with_flush_every_1_raises_at_that_step_and_only_once():
    doctor = gandoctor.Doctor(*_models(), schedule=Schedule(flush_every=1), raise_on_nonfinite=True, live_every=0)
    doctor.step(d_loss=torch.tensor(0.7), g_loss=torch.tensor(0.7))
    with pytest.raises(NonFiniteLossError, match=r"g_loss \(loss.g\) is inf at step 1") as caught:
        doctor.step(d_loss=torch.tensor(0.7), g_loss=torch.tensor(math.inf))
    assert caught.value.detected_at == 1
    doctor.step(d_loss=torch.tensor(math.nan), g_loss=torch.tensor(0.7))  # reported: not raised again
    assert doctor._live is not None and doctor._live.every is None  # raising with live_every=0 runs no diagnosis


def test_a_healthy_run_triggers_nothing_and_every_check_reaches_the_sinks(tmp_path, caplog):
    found: list[Finding] = []
    sink = Recorder()
    kwargs = {
        "log_dir": tmp_path, "schedule": Schedule(flush_every=FLUSH), "on_finding": found.append, "alerts": [sink],
        "stop_on": "any", "raise_on_nonfinite": True, "live_every": 40,
    }
    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        doctor, ran, _ = train(120, kwargs)
    doctor.close()
    assert ran == 120 and not doctor.should_stop and not found and not sink.findings
    assert [step for _, step in sink.checks] == [39, 79, 119]
    assert all(isinstance(r, Report) and r.last_step == step and len(r.mode_status) == 6 for r, step in sink.checks)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert read_run(tmp_path).markers == ()


def test_training_is_bit_identical_with_live_diagnosis_and_every_option_on(caplog):
    schedule = Schedule(d_probe_every=2, feature_every=2, sample_stats_every=10, weight_every=5, flush_every=5)
    broken, sink = BrokenSink(), Recorder()
    options = {
        "schedule": schedule, "on_finding": [lambda f: None], "alerts": [broken, sink], "stop_on": "any",
        "raise_on_nonfinite": True, "live_every": 5,
    }
    G0, D0, _ = train_bn(40, None)
    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        G1, D1, doctor = train_bn(40, options)
    for a, b in zip(state(G0, D0), state(G1, D1), strict=True):
        assert torch.equal(a, b)
    # The broken sink is switched off, reported once; the other goes on receiving every check.
    assert "alert sink[0] BrokenSink" in doctor.disabled_probes and "live" not in doctor.disabled_probes
    assert sum("sink is down" in r.getMessage() for r in caplog.records) == 1
    assert [step for _, step in sink.checks] == list(range(4, 40, 5))


def test_a_failing_on_finding_callback_is_switched_off_and_training_goes_on(caplog):
    calls: list[str] = []

    def explodes(finding: Finding) -> None:
        raise ValueError("callback bug")

    kwargs = {"schedule": Schedule(flush_every=FLUSH), "on_finding": [explodes, lambda f: calls.append(f.rule)], "live_every": 20}
    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        doctor, ran, _ = train(100, kwargs, blow_up_at=BLOW_UP_AT)
    assert ran == 100 and "GD501" in calls
    assert any(name.startswith("on_finding[0]") and "explodes" in name for name in doctor.disabled_probes)
    assert sum("callback bug" in r.getMessage() for r in caplog.records) == 1


def test_a_diagnosis_that_fails_switches_live_off_once_unless_strict(monkeypatch, caplog):
    diagnose_module = importlib.import_module("gandoctor.diagnose")  # the package exports a function of that name

    def broken(*args, **kwargs):
        raise FloatingPointError("diagnosis exploded")

    monkeypatch.setattr(diagnose_module, "diagnose", broken)
    sink = Recorder()
    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        doctor, ran, _ = train(60, {"schedule": Schedule(flush_every=FLUSH), "alerts": [sink], "live_every": 10})
    assert ran == 60 and "live" in doctor.disabled_probes and not sink.checks
    assert sum("diagnosis exploded" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(FloatingPointError):
        train(60, {"schedule": Schedule(flush_every=FLUSH), "alerts": [sink], "live_every": 10, "strict": True})


def _finding(rule: str = "GD301", onset: int = 5) -> Finding:
    return Finding("mode_collapse", rule, "partial-mode-collapse", "s", onset, onset + 5, True, 0.8, {}, ())


def test_a_finding_that_clears_and_comes_back_is_reported_once(monkeypatch):
    diagnose_module = importlib.import_module("gandoctor.diagnose")  # the package exports a function of that name

    scripted = iter([Report((_finding(),)), Report(()), Report((_finding(onset=30),)), Report((_finding("GD302", 31),))])
    monkeypatch.setattr(diagnose_module, "diagnose", lambda *a, **k: next(scripted))
    sink = Recorder()
    doctor = gandoctor.Doctor(*_models(), schedule=Schedule(flush_every=1), alerts=[sink], live_every=1, stop_on="mode_collapse")
    for _ in range(4):
        doctor.step(d_loss=torch.tensor(0.7), g_loss=torch.tensor(0.7))
        assert doctor.should_stop  # from the first finding on, even while it is clear
    assert [(f.rule, step) for f, step in sink.findings] == [("GD301", 0), ("GD302", 3)]
    assert len(sink.checks) == 4
    live = doctor._live
    assert live is not None and [(m.seen_at, m.onset_step, m.rules) for m in live.markers] == [(0, 5, ("GD301",)), (3, 5, ("GD302",))]


def test_the_last_healthy_marker_stays_before_a_finding_s_first_sign(monkeypatch):
    """A NaN at step 40 whose gradient norms burst from step 30: the rollback point is step 29."""
    diagnose_module = importlib.import_module("gandoctor.diagnose")
    blown = replace(_finding("GD501", 40), mode="exploding_gradients", first_sign_step=30, first_sign_rule="GD507")
    checks = iter([Report(())] * 41 + [Report((blown,))] * 5)  # the checks of steps 0-40, then the NaN shows
    monkeypatch.setattr(diagnose_module, "diagnose", lambda *a, **k: next(checks))
    doctor = gandoctor.Doctor(*_models(), schedule=Schedule(flush_every=1), live_every=1)
    for _ in range(45):
        doctor.step(d_loss=torch.tensor(0.7), g_loss=torch.tensor(0.7))
    live = doctor._live
    assert live is not None and [(m.seen_at, m.onset_step, m.last_healthy_step) for m in live.markers] == [(41, 30, 29)]


def _models() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))


def test_live_diagnosis_is_on_by_default_off_with_live_every_0_and_bad_options_are_named():
    default = gandoctor.Doctor(*_models())
    assert default._live is not None and default._live.every == DEFAULT_LIVE_EVERY and default._live.adaptive
    doctor = gandoctor.Doctor(*_models(), live_every=0)
    assert doctor._live is None and doctor.should_stop is False
    with pytest.raises(ValueError, match="stop_on: unknown failure mode 'exploding'"):
        gandoctor.Doctor(*_models(), stop_on=("exploding",))
    with pytest.raises(ValueError, match="live_every must be a number of steps"):
        gandoctor.Doctor(*_models(), live_every=-1)
    with pytest.raises(ValueError, match="live_every=0 turns live diagnosis off"):
        gandoctor.Doctor(*_models(), live_every=0, stop_on="any")
    with pytest.raises(TypeError, match="alerts: object has no on_finding"):
        gandoctor.Doctor(*_models(), alerts=[object()])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="on_finding: expected a callable"):
        gandoctor.Doctor(*_models(), on_finding=[1])  # type: ignore[list-item]
    assert isinstance(Recorder(), AlertSink)
    assert LiveMonitor.attach(doctor, live_every=7) is not None


def test_the_default_cadence_waits_for_many_times_a_checks_cost_in_the_runs_own_step_time():
    doctor = gandoctor.Doctor(*_models())
    live = doctor._live
    assert live is not None and live.adaptive
    live._last_cost, live._last_end = 0.01, time.perf_counter()
    assert not live._affordable()  # no step time estimated yet: wall time, and 1 s has not passed
    doctor._budget.train, doctor._budget.fixed = 0.0009, 0.0001  # 1 ms per step with the doctor's share
    live._steps_since_check = int(LIVE_TIME_FACTOR * 10) - 1
    assert not live._affordable()
    live._steps_since_check += 1
    assert live._affordable()
    live.adaptive = False  # live_every given: the cadence is exact
    live._steps_since_check = 0
    assert live._affordable()


def test_the_live_panel_is_opened_by_the_doctor_and_closed_with_it():
    doctor, _, _ = train(40, {"schedule": Schedule(flush_every=FLUSH), "live_panel": True, "live_every": 20})
    live = doctor._live
    assert live is not None
    panel = live.sinks[-1]
    assert type(panel).__name__ == "LivePanel" and panel.renders == 2 and panel._live is not None
    doctor.close()
    assert panel._live is None


def test_rules_about_the_state_a_run_ended_in_are_left_to_the_finished_run():
    """GD307 (collapsed at every check to the end) says nothing mid-run, where a young G is still
    spreading out: live checks leave it out; the report of the finished run has it."""
    from gandoctor import load_rules

    assert load_rules().by_code("GD307").params["final_only"] == 1
    doctor, _, _ = train(60, {"schedule": Schedule(flush_every=FLUSH), "live_every": 20})
    live = doctor._live
    assert live is not None and live.checks >= 1 and live._rules is not None
    codes = {r.code for r in live._rules.rules}
    assert "GD307" not in codes and "GD302" in codes
    doctor.close()


def test_a_finding_about_the_state_the_run_ended_in_reaches_the_sinks_at_close(tmp_path):
    """GD307/GD308 (collapsed to the end) are judged at close, where the run has ended: their
    findings were in the report, never at on_finding, the sinks or the run log's markers."""
    from gandoctor import load_rules

    final_only = {r.code for r in load_rules().rules if r.params["final_only"]}
    sink = Recorder()
    doctor, _, _ = train(400, {"log_dir": tmp_path, "schedule": Schedule(flush_every=FLUSH), "live_every": 100, "alerts": [sink]}, collapsed=True)
    doctor.close()
    ended = {f.rule for f in doctor.report().findings} & final_only
    assert ended and ended <= {f.rule for f, _ in sink.findings}
    assert ended <= {rule for marker in read_run(tmp_path).markers for rule in marker.rules}


def test_under_ddp_only_rank_0_alerts_and_every_rank_stops(monkeypatch, caplog):
    # Two ranks hold the same reduced values: each logged the alert and called on_finding and the
    # sinks, so a webhook posted twice. Rank 0 alone speaks now, as it alone writes the run log.
    import gandoctor.live as live

    monkeypatch.setattr(live, "is_main_process", lambda: False)  # this process as rank 1
    found: list[Finding] = []
    sink = Recorder()
    kwargs = {"schedule": Schedule(flush_every=FLUSH), "on_finding": found.append, "alerts": [sink], "stop_on": ("exploding_gradients",)}
    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        doctor, ran, _ = train(300, kwargs, blow_up_at=BLOW_UP_AT)
    assert doctor.should_stop and ran == BLOW_UP_AT + FLUSH  # it stops with rank 0
    assert not found and not sink.findings and not sink.checks
    assert not [r for r in caplog.records if "exploding_gradients" in r.getMessage()]
    doctor.close()


def test_a_run_shorter_than_the_check_interval_is_checked_at_close():
    """A 300-step run under live_every=500 was never checked: its callbacks and alert sinks heard
    nothing while its report held two findings (torch_mimicry at lr 5). close() checks the
    records no check has read."""
    found: list[Finding] = []
    sink = Recorder()
    doctor, ran, _ = train(300, {"on_finding": found.append, "alerts": [sink], "live_every": 500}, collapsed=True)
    assert ran == 300 and not found and not sink.checks  # no check before close
    doctor.close()
    assert {f.mode for f in found} == {f.mode for f in doctor.report().findings} >= {"mode_collapse"}
    assert [step for _, step in sink.checks] == [299] and sink.findings


def test_with_two_doctors_open_each_alert_names_its_doctor_s_log(tmp_path, caplog):
    # CycleGAN's README recipe: one Doctor per pair (G_A/D_A, G_B/D_B); their alert lines could not
    # be told apart. With one Doctor open, the line stays as it was.
    other = gandoctor.Doctor(nn.Linear(2, 2), nn.Linear(2, 1), log_dir=tmp_path / "B")
    kwargs = {"log_dir": tmp_path / "A", "schedule": Schedule(flush_every=FLUSH), "stop_on": ("exploding_gradients",)}
    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        doctor, _, _ = train(300, kwargs, blow_up_at=BLOW_UP_AT)
    doctor.close()
    other.close()
    (line,) = [r.getMessage() for r in caplog.records if "exploding_gradients" in r.getMessage()]
    assert line.startswith(f"gandoctor [{tmp_path / 'A'}]: exploding_gradients (GD501")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gandoctor"):
        alone, _, _ = train(300, {**kwargs, "log_dir": tmp_path / "C"}, blow_up_at=BLOW_UP_AT)
    alone.close()
    (line,) = [r.getMessage() for r in caplog.records if "exploding_gradients" in r.getMessage()]
    assert line.startswith("gandoctor: exploding_gradients (GD501")
