"""Under torch.distributed every rank records, the values are reduced across the ranks at each
flush, and rank 0 alone writes the run log (gandoctor/probes/distributed.py).

Real runs: two processes on gloo (CPU), the demo's MLP GAN. Under DDP each rank takes its shard
of one global batch, so the two-rank run does the arithmetic of the single-process run on the
whole batch, and both must be diagnosed alike.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gandoctor import ProbeRefused, SignalLog, read_run
from gandoctor.demo import RECIPES, mlp, ring_of_gaussians
from gandoctor.diagnose import analyze
from gandoctor.probes import Doctor, Schedule
from gandoctor.probes.distributed import RankReducer, identify, layout_of, merge, pack, takes_max, unpack, with_pending
from gandoctor.runlog.format import LOG_NAME

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with the gloo backend is not available"
)

BATCH = 128  # samples per rank; the single-process run takes both ranks' shards at once
WORLD = 2
TIMEOUT = 3.0  # Schedule.rank_timeout of these runs, in seconds


# -- the training, the same code on one process and on each rank ------------------------------
def train(
    log_dir: Path | None, steps: int, *, recipe: str = "healthy", rank: int = 0, world: int = 1, ddp: bool = True,
    nan_at: int | None = None, fail_at: int | None = None, failure: str = "raises", extra_on_rank: int | None = None,
    report_at: int | None = None, rank_timeout: float = TIMEOUT, said: list[str] | None = None,
) -> tuple[Doctor, list[tuple[int, dict[str, float]]]]:
    """The demo's GAN, its Doctor, and the values this rank recorded before the reduction.

    ``ddp``: G and D wrapped in DDP, rank r takes the r-th shard of one global batch; otherwise
    (or with world 1) each rank trains on its own, from its own seed (their values differ).
    ``nan_at``: from that step the global batch's last real sample (rank 1's shard) is NaN.
    ``fail_at``: there rank 1 raises, hangs or is killed (``failure``). ``extra_on_rank``: that rank
    passes a user value. ``report_at``: there rank 0 alone asks for a report (its warnings go to ``said``).
    """
    r = RECIPES[recipe]
    own = rank if not ddp else 0
    torch.manual_seed(own)
    data = torch.Generator().manual_seed(100 + own)
    G: nn.Module = mlp(r.z_dim, 2, r.hidden)
    D: nn.Module = mlp(2, 1, r.hidden)
    sharded = world > 1 and ddp
    if sharded:
        G, D = DistributedDataParallel(G), DistributedDataParallel(D)
    total = BATCH * WORLD if ddp else BATCH
    shard = slice(rank * BATCH, (rank + 1) * BATCH) if sharded else slice(None)
    opt_g = torch.optim.Adam(G.parameters(), lr=r.lr_g, betas=r.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=r.lr_d, betas=r.betas)
    bce = nn.BCEWithLogitsLoss()
    schedule = Schedule(budget=None, rank_timeout=rank_timeout)  # fixed intervals: both runs measure the same steps
    doctor = Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, log_dir=log_dir, d_output="logit", schedule=schedule)
    local: list[tuple[int, dict[str, float]]] = []
    reduce = doctor._reducer.reduce

    def spy(records: list[tuple[int, dict[str, float]]], final: bool = False) -> list[tuple[int, dict[str, float]]]:
        local.extend((step, dict(values)) for step, values in records)
        return reduce(records, final)

    doctor._reducer.reduce = spy  # type: ignore[method-assign]
    for step in range(steps):
        if fail_at is not None and step == fail_at and rank == 1:
            FAILURES[failure]()
        real_all = ring_of_gaussians(total, data)
        z_all = torch.randn(total, r.z_dim, generator=data)
        if nan_at is not None and step >= nan_at:
            real_all[-1] = float("nan")
        real, z = real_all[shard], z_all[shard]
        fake = G(z)
        d_out = D(torch.cat([real, fake.detach()]))  # one forward: DDP syncs D's gradients once
        d_real, d_fake = d_out[: len(real)], d_out[len(real) :]
        d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = bce(D(fake), torch.ones_like(d_fake))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        extra = {"shard_value": 10.0 * (rank + 1)} if extra_on_rank == rank else {}
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake, d_real=d_real, d_fake=d_fake, **extra)
        if step == report_at and rank == 0:
            warnings = doctor.report().warnings
            if said is not None:
                said.extend(warnings)
    return doctor, local


def _raise() -> None:
    raise RuntimeError("rank 1 fails")  # its interpreter exits; at exit its Doctor closes


def _hang() -> None:
    time.sleep(3600)  # alive, never flushing again: the test ends it


def _killed() -> None:
    os._exit(3)  # gone at once, nothing closed


FAILURES = {"raises": _raise, "hangs": _hang, "is_killed": _killed}


# -- the processes ----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, out: str, jobs: list[dict[str, Any]]) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    for job in jobs:
        name = job.pop("name")
        steps = job.pop("steps")
        steps = steps[rank] if isinstance(steps, list) else steps  # ranks may run different numbers of steps
        said: list[str] = []  # what rank 0's report() before close() said
        doctor, local = train(Path(out) / f"{name}-rank{rank}", steps, rank=rank, world=WORLD, said=said, **job)
        doctor.close()
        kept = {k: doctor.signals.get(k).values.tolist() for k in ("loss.d", "grad_norm.d")}
        after = list(doctor.report().warnings)
        result = {"local": local, "kept": kept, "disabled": list(doctor.disabled_probes), "said_before": said, "said_after": after}
        (Path(out) / f"{name}-rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def launch(out: Path, jobs: list[dict[str, Any]], wait: float = 240.0, then: float = 30.0) -> list[int | None]:
    """Run ``jobs`` on two ranks; their exit codes (None: rank 0 still running after ``wait``
    seconds, or rank 1 ``then`` seconds later; they are killed)."""
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, str(out), jobs)) for rank in range(WORLD)]
    for p in procs:
        p.start()
    procs[0].join(wait)
    procs[1].join(then)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    return codes


def _local(out: Path, name: str, rank: int) -> dict[int, dict[str, float]]:
    return {step: values for step, values in json.loads((out / f"{name}-rank{rank}.json").read_text())["local"]}


def run_values(run: Path, name: str) -> dict[int, float]:
    series = read_run(run).signals.get(name)
    return dict(zip(series.steps.tolist(), series.values.tolist(), strict=True))


def _modes(report: Any) -> dict[str, tuple[str, int | None]]:
    onsets = {f.mode: f.onset_step for f in report.findings}
    return {s.mode: (s.state.value, onsets.get(s.mode)) for s in report.mode_status}


# -- the reduction itself, without processes ----------------------------------------------------
def test_reduce_op_by_signal_name():
    assert all(takes_max(n) for n in ("grad_norm.d", "grad_norm.g.layer.net.0", "weight_norm.g", "sigma_max.d", "grad_nonfinite.d", "feat.nonfinite"))
    assert not any(takes_max(n) for n in ("loss.d", "d.auc", "feat.coverage", "opt_steps.d", "user.lr"))


def test_packed_ranks_reduce_to_means_over_present_values_maxima_and_nans():
    ranks = [
        [(0, {"loss.d": 1.0, "grad_norm.d": 3.0}), (1, {"loss.d": 2.0, "grad_norm.d": 1.0, "d.auc": 0.6})],
        [(0, {"loss.d": 3.0, "grad_norm.d": 5.0}), (1, {"loss.d": math.nan, "grad_norm.d": math.nan}), (2, {"loss.d": 7.0})],
    ]
    locals_ = [identify(records) for records in ranks]
    layout = merge([layout_of(local) for local in locals_])
    packed = [pack(layout, local) for local in locals_]
    sums = torch.stack([p[0] for p in packed]).sum(0)
    maxima = torch.stack([p[1] for p in packed]).amax(0)
    out = unpack(layout, sums, maxima)
    assert [step for step, _ in out] == [0, 1, 2]
    assert out[0][1] == {"loss.d": 2.0, "grad_norm.d": 5.0}
    assert math.isnan(out[1][1]["loss.d"]) and math.isnan(out[1][1]["grad_norm.d"]) and out[1][1]["d.auc"] == 0.6
    assert out[2][1] == {"loss.d": 7.0}  # only rank 1 ran step 2


def test_a_step_passed_twice_stays_two_records():
    layout = merge([layout_of(identify([(5, {"loss.d": 1.0}), (5, {"loss.d": 2.0})]))])
    assert [ident for ident, _ in layout] == [(5, 0), (5, 1)]


def test_single_process_passes_records_through_and_rank_timeout_is_checked():
    doctor, local = train(None, 30)
    doctor.close()
    assert not doctor._reducer.active
    assert doctor.signals.get("loss.d").values.tolist() == pytest.approx([v["loss.d"] for _, v in local], rel=1e-6)
    with pytest.raises(ValueError, match="rank_timeout"):
        Schedule(rank_timeout=-1)


def test_report_under_ddp_diagnoses_the_reduced_values_and_this_ranks_pending_ones_on_a_copy():
    signals = SignalLog()
    signals.record(0, {"loss.d": 1.0})
    preview = with_pending(signals, [(1, {"loss.d": 2.0}), (2, {"loss.d": 3.0})])
    assert preview.get("loss.d").values.tolist() == [1.0, 2.0, 3.0]
    assert signals.get("loss.d").values.tolist() == [1.0]  # the pending values are reduced at the next flush


def test_last_flush_of_an_interpreter_dying_of_an_exception_runs_no_collective(monkeypatch: pytest.MonkeyPatch):
    reducer = RankReducer(TIMEOUT, lambda name, fn: fn(), lambda name, exc: None)
    reducer.group = object()  # would fail in any collective
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(sys, "last_value", RuntimeError("the training failed"), raising=False)
    records = [(0, {"loss.d": 1.0})]
    assert reducer.reduce(records, final=True) == records and not reducer.active


def test_a_doctor_made_on_one_rank_alone_says_to_make_one_on_every_rank(monkeypatch: pytest.MonkeyPatch):
    # It waited for the others' Doctors until the store timed out, then reported "probe 'ranks' failed
    # ...: DistStoreError: wait timeout ..." with a traceback.
    def no_other_rank(**_: Any) -> None:
        raise RuntimeError("wait timeout after 60000ms, keys: /default_pg/0//1//cpu//0/1")

    for name, value in (("is_available", lambda: True), ("is_initialized", lambda: True), ("get_world_size", lambda: 2),
                        ("get_rank", lambda: 0), ("new_group", no_other_rank)):
        monkeypatch.setattr(dist, name, value)
    failures: list[BaseException] = []

    def guard(name: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - as the Doctor's fault containment does
            failures.append(exc)
            return None

    reducer = RankReducer(TIMEOUT, guard, lambda name, exc: None)
    assert not reducer.active
    (refused,) = failures
    assert isinstance(refused, ProbeRefused) and "make the Doctor on every rank" in str(refused)


# -- two real ranks ---------------------------------------------------------------------------
STEPS = 150
NAN_AT = 97


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ranks")
    jobs = [
        {"name": "own", "steps": 60, "ddp": False, "extra_on_rank": 1, "report_at": 30},
        {"name": "uneven", "steps": [60, 80], "ddp": False},
        {"name": "off", "steps": 30, "ddp": False, "rank_timeout": 0},
        {"name": "nan", "steps": STEPS, "nan_at": NAN_AT},
        {"name": "healthy", "steps": 400},
    ]
    assert launch(out, jobs) == [0, 0]
    return out


def test_rank_0_writes_the_means_and_maxima_of_what_the_ranks_recorded(two_ranks: Path):
    run = read_run(two_ranks / "own-rank0")
    assert not (two_ranks / "own-rank1").exists()  # rank 1 writes nothing
    assert run.context.values["world_size"] == WORLD  # the log says over how many ranks
    assert "world_size" not in read_run(two_ranks / "off-rank0").context.values  # not reduced: rank 0's own
    from gandoctor.reporters.console import render_text

    assert "recorded over 2 ranks" in render_text(analyze(two_ranks / "own-rank0"), width=400)
    local0, local1 = _local(two_ranks, "own", 0), _local(two_ranks, "own", 1)
    loss, grad = run.signals.get("loss.d"), run.signals.get("grad_norm.d")
    assert loss.steps.tolist() == list(range(60)) == grad.steps.tolist()
    for step, value in zip(loss.steps.tolist(), loss.values.tolist(), strict=True):
        assert value == pytest.approx((local0[step]["loss.d"] + local1[step]["loss.d"]) / 2, rel=1e-5)
    assert any(local0[s]["loss.d"] != local1[s]["loss.d"] for s in local0)  # the ranks trained apart
    for step, value in zip(grad.steps.tolist(), grad.values.tolist(), strict=True):
        assert value == pytest.approx(max(local0[step]["grad_norm.d"], local1[step]["grad_norm.d"]), rel=1e-5)
    # A value only rank 1 recorded is the mean over the ranks that have it: rank 1's own.
    assert set(run.signals.get("user.shard_value").values.tolist()) == {20.0}
    results = [json.loads((two_ranks / f"own-rank{r}.json").read_text()) for r in range(WORLD)]
    assert results[0]["kept"] == results[1]["kept"]  # every rank holds the same reduced values
    # rank 0's report() at step 30 ran no collective: the flushes after it still met rank 1's
    assert results[0]["disabled"] == results[1]["disabled"] == []
    # ... and it said what it left out (a report before close() under DDP lacks the last sample
    # measurements: a healthy DDP run's read "ended collapsed" on them); after close() nothing.
    assert any("under DDP, report() before close() leaves out" in w for w in results[0]["said_before"])
    assert not any("under DDP" in w for r in results for w in r["said_after"])


def test_ranks_that_run_different_numbers_of_steps_meet_at_the_last_flush(two_ranks: Path):
    local0, local1 = _local(two_ranks, "uneven", 0), _local(two_ranks, "uneven", 1)
    loss = run_values(two_ranks / "uneven-rank0", "loss.d")
    # rank 0's last flush (steps 50-59) met rank 1's flush of steps 50-74, after which rank 1 went on alone
    assert list(loss) == list(range(75))
    assert all(loss[s] == pytest.approx((local0[s]["loss.d"] + local1[s]["loss.d"]) / 2, rel=1e-5) for s in range(60))
    assert all(loss[s] == pytest.approx(local1[s]["loss.d"], rel=1e-5) for s in range(60, 75))
    disabled = [json.loads((two_ranks / f"uneven-rank{r}.json").read_text())["disabled"] for r in range(WORLD)]
    assert disabled == [[], ["ranks"]]  # rank 1 said that it records alone from then on


def test_rank_timeout_0_records_each_rank_alone(two_ranks: Path):
    loss = run_values(two_ranks / "off-rank0", "loss.d")
    assert loss == pytest.approx({s: v["loss.d"] for s, v in _local(two_ranks, "off", 0).items()}, rel=1e-5)


def test_two_rank_run_ending_in_nan_is_diagnosed_as_the_single_process_run(two_ranks: Path, tmp_path: Path):
    doctor, _ = train(tmp_path / "single", STEPS, nan_at=NAN_AT)
    doctor.close()
    single, ranks = analyze(tmp_path / "single"), analyze(two_ranks / "nan-rank0")
    assert ("exploding_gradients", NAN_AT) in {(f.mode, f.onset_step) for f in ranks.findings}
    assert _modes(ranks) == _modes(single)
    # rank 1's NaN alone makes the step's mean NaN
    assert math.isnan(run_values(two_ranks / "nan-rank0", "loss.d")[NAN_AT])
    assert math.isfinite(_local(two_ranks, "nan", 0)[NAN_AT]["loss.d"]) and math.isnan(_local(two_ranks, "nan", 1)[NAN_AT]["loss.d"])


def test_healthy_two_rank_run_is_diagnosed_as_the_single_process_run(two_ranks: Path, tmp_path: Path):
    doctor, _ = train(tmp_path / "single", 400)
    doctor.close()
    single, ranks = analyze(tmp_path / "single"), analyze(two_ranks / "healthy-rank0")
    assert _modes(ranks) == _modes(single)
    assert any(state == "clear" for state, _ in _modes(ranks).values())


@pytest.mark.parametrize("failure", ["raises", "hangs", "is_killed"])
def test_rank_0_finishes_when_rank_1_stops_early(failure: str, tmp_path: Path):
    codes = launch(tmp_path, [{"name": "run", "steps": 120, "ddp": False, "fail_at": 60, "failure": failure}], wait=120, then=1)
    assert codes[0] == 0  # rank 0 neither hung nor failed
    run = read_run(tmp_path / "run-rank0")
    assert run.signals.get("loss.d").steps.tolist() == list(range(120))
    events = [json.loads(line) for line in (tmp_path / "run-rank0" / LOG_NAME).read_text().splitlines() if '"event"' in line]
    assert [e for e in events if e["level"] == "warning" and "'ranks'" in e["message"]], events  # said once
    # From rank 1's last step on, the values are rank 0's own; before, the means of both ranks.
    local0 = _local(tmp_path, "run", 0)
    loss = run_values(tmp_path / "run-rank0", "loss.d")
    assert all(loss[s] == pytest.approx(local0[s]["loss.d"], rel=1e-5) for s in range(60, 120))
    assert all(loss[s] != pytest.approx(local0[s]["loss.d"], rel=1e-5) for s in range(0, 50))
