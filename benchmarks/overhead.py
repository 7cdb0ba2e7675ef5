"""Step-time overhead of the Doctor against the bare loop, measured side by side.

Identical copies of each model train in the same process, one bare and one per Doctor
variant, in alternating blocks whose order rotates every round, so drift in machine load and
position effects hit all equally; the ratio of medians of per-block step times to the bare loop's is
reported. Variants:

- ``default``: ``Doctor(G, D, opt_g, opt_d, log_dir)`` as in the README (overhead budget on);
- ``d outputs passed``: the same, the loop passing D's outputs (``d_real=``, ``d_fake=``);
- ``fixed intervals``: the same with ``Schedule(budget=None)``: every probe at its declared
  interval, whatever it costs;
- ``before: default``: the default Doctor of another gandoctor checkout (``--before DIR``, the
  package folder of e.g. ``git archive`` of an older commit), loaded in the same process under
  another name, so the old and new overheads are measured side by side;
- ``no sample features``: the same without the feature probes and sample statistics (what the
  default feature probes cost is the difference between the two);
- ``d_penultimate``: D's own features instead of the default pooled images;
- ``pixels``: the samples unpooled (the default before the ninth detection pass);
- ``everything``: extended statistics, NDB every 1000 and FID/KID every 500 steps.

Identical copies do not train equally fast: on this project's 2-core CPU machine the copy built
first among the variants ran its blocks 2-5% slower than the one built after it, whatever doctor
it carried (the DCGAN, ``default`` and ``before: default`` swapped: 1.068 vs 1.045, then 1.005
vs 1.053). ``--repeats R`` measures R times with fresh copies built in a rotated order (the bare
copy's place rotates too) and reports, per variant, the median ratio over the repeats and their
range, so a copy's own speed cancels out instead of reading as a difference between variants.

Two models: the tiny MLP GAN of the demo (2-D data; the worst case, since its step is so cheap
that any fixed cost shows) and a small DCGAN-style conv GAN on 32x32 images.

Each doctor of the MLP GAN first runs ``--warmup`` steps untimed (default 5100), so the
overhead budget, which plans from measured times after its first 5000 steps, is measured in its
steady state; the DCGAN's doctors run at most 200 warm-up steps (its fixed intervals already
fit the budget, and 5000 CPU steps of it per copy would take minutes).

    python benchmarks/overhead.py [--blocks 8] [--steps 100] [--repeats 1] [--warmup 5100] [--before DIR] [--models mlp,dcgan] [--device cpu|cuda] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

import gandoctor


def mlp_gan() -> tuple[nn.Module, nn.Module, int, tuple[int, ...]]:
    G = nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))
    D = nn.Sequential(nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 1))
    return G, D, 8, (2,)


def conv_gan() -> tuple[nn.Module, nn.Module, int, tuple[int, ...]]:
    G = nn.Sequential(
        nn.Unflatten(1, (64, 1, 1)),
        nn.ConvTranspose2d(64, 128, 4, 1, 0), nn.BatchNorm2d(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ConvTranspose2d(32, 3, 4, 2, 1), nn.Tanh(),
    )
    D = nn.Sequential(
        nn.Conv2d(3, 32, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 1, 4, 1, 0), nn.Flatten(),
    )
    return G, D, 64, (3, 32, 32)


def run_block(models, steps: int, batch: int, device: torch.device, doctor: Any, state: dict) -> float:
    G, D, opt_g, opt_d, z_dim, shape = models
    bce = nn.BCEWithLogitsLoss()
    ones = torch.ones(batch, 1, device=device)
    zeros = torch.zeros(batch, 1, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        real = torch.randn(batch, *shape, device=device)
        fake = G(torch.randn(batch, z_dim, device=device))
        d_real, d_fake = D(real), D(fake.detach())
        d_loss = bce(d_real, ones) + bce(d_fake, zeros)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = bce(D(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if doctor is not None:
            t0 = time.perf_counter()
            passed = {"d_real": d_real, "d_fake": d_fake} if state.get("pass_d") else {}
            doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake, step=state["step"], **passed)
            state["own"] = state.get("own", 0.0) + time.perf_counter() - t0
        state["step"] += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def count_hook_time(doctor: Any, state: dict) -> None:
    """Add the time the doctor's optimizer hooks (gradient taps) report to ``state["own"]``: they
    run inside optimizer.step, outside ``Doctor.step``, and hand their time to each step's visit."""
    for probe in getattr(doctor, "probes", ()):
        report = getattr(probe, "hook_seconds", None)
        if callable(report):
            def counted(report=report) -> float:
                seconds = report()
                state["own"] = state.get("own", 0.0) + seconds
                return seconds
            probe.hook_seconds = counted


def build(factory, device: torch.device):
    torch.manual_seed(0)
    G, D, z_dim, shape = factory()
    G, D = G.to(device), D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return G, D, opt_g, opt_d, z_dim, shape


OFF = 10**9
VARIANTS: dict[str, dict] = {
    "default": {},
    "no live diagnosis": {"live_every": 0},
    "d outputs passed": {},  # the loop passes d_real=, d_fake= (the outputs of its own D update)
    "fixed intervals": {"schedule": gandoctor.Schedule(budget=None)},
    "no sample features": {"schedule": gandoctor.Schedule(feature_every=OFF, sample_stats_every=OFF)},
    "d_penultimate": {"features": "d_penultimate"},
    "pixels": {"features": "pixels"},
    "everything": {"schedule": gandoctor.Schedule(extended_sample_stats=True, ndb_every=1000, fidelity_every=500)},
    "before: default": {},
    "before: d outputs passed": {},
}
BEFORE: ModuleType | None = None


def load_before(package_dir: str) -> ModuleType:
    """Another gandoctor package folder, imported as ``gandoctor_before`` (its imports are relative)."""
    init = Path(package_dir) / "__init__.py"
    spec = importlib.util.spec_from_file_location("gandoctor_before", init, submodule_search_locations=[str(init.parent)])
    if spec is None or spec.loader is None:
        raise SystemExit(f"--before {package_dir}: no gandoctor package there")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gandoctor_before"] = module
    spec.loader.exec_module(module)
    return module


def make_doctor(variant: str, G, D, opt_g, opt_d, log_dir: str) -> Any:
    if variant.startswith("before: "):
        if BEFORE is None:
            raise SystemExit(f"variant {variant!r} needs --before DIR")
        return BEFORE.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, log_dir=log_dir, **VARIANTS[variant])
    return gandoctor.Doctor(G, D, g_optimizer=opt_g, d_optimizer=opt_d, log_dir=log_dir, **VARIANTS[variant])


def measure_once(
    factory, blocks: int, steps: int, batch: int, device: torch.device, variants: list[str], warmup: int, rotate: int
) -> tuple[dict[str, list[float]], dict[str, dict[str, int]], dict[str, float]]:
    """Per-block step times of the bare copy and each variant; the copies are built in the order
    ``["bare", *variants]`` rotated by ``rotate``; each variant's probe intervals at the end of the
    timed blocks; and each variant's own time per timed step (seconds)."""
    order = ["bare", *variants]
    built = order[rotate % len(order) :] + order[: rotate % len(order)]
    models = {v: build(factory, device) for v in built}
    times: dict[str, list[float]] = {v: [] for v in order}
    states = {v: {"step": 0, "pass_d": v.endswith("d outputs passed")} for v in order}
    with tempfile.TemporaryDirectory() as tmp:
        doctors: dict[str, Any] = {}
        for v in variants:
            G, D, opt_g, opt_d, _, _ = models[v]
            doctors[v] = make_doctor(v, G, D, opt_g, opt_d, f"{tmp}/{len(doctors)}")
            count_hook_time(doctors[v], states[v])
        run_block(models["bare"], max(5, steps // 4), batch, device, None, states["bare"])  # warm-up
        for v in variants:
            run_block(models[v], max(5, steps // 4, warmup), batch, device, doctors[v], states[v])
        for v in order:  # the doctor's own time counts from the timed blocks on
            states[v]["own"], states[v]["timed"] = 0.0, 0
        for block in range(blocks):
            # Rotate the order each block so no variant always runs right after another.
            shift = block % len(order)
            for v in order[shift:] + order[:shift]:
                times[v].append(run_block(models[v], steps, batch, device, doctors.get(v), states[v]))
                states[v]["timed"] += steps
        # Read before close: the final flush plans again from a window that holds the last block's gap.
        intervals = {v: dict(doctors[v].intervals) for v in variants if hasattr(doctors[v], "intervals")}
        for doctor in doctors.values():
            doctor.close()
    own = {v: states[v]["own"] / max(states[v]["timed"], 1) for v in variants}  # seconds per timed step
    return times, intervals, own


def measure(
    name: str, factory, blocks: int, steps: int, batch: int, device: torch.device, variants: list[str], warmup: int, repeats: int = 1
) -> list[dict]:
    # Identical copies of the models: one bare, one per variant; their blocks alternate. Each
    # repeat builds fresh copies in a rotated order (a copy's own speed must not read as a variant's).
    ratios: dict[str, list[float]] = {v: [] for v in variants}
    bare_ms: list[float] = []
    doctor_ms: dict[str, list[float]] = {v: [] for v in variants}
    own_us: dict[str, list[float]] = {v: [] for v in variants}
    intervals: dict[str, dict[str, int]] = {}
    for repeat in range(repeats):
        times, intervals, own = measure_once(factory, blocks, steps, batch, device, variants, warmup, rotate=repeat)
        bare = statistics.median(times["bare"])
        bare_ms.append(bare * 1e3)
        for v in variants:
            doctor_ms[v].append(statistics.median(times[v]) * 1e3)
            ratios[v].append(statistics.median(times[v]) / bare)
            own_us[v].append(own[v] * 1e6)
    return [
        {
            "model": name,
            "variant": v,
            "batch": batch,
            "bare_ms": round(statistics.median(bare_ms), 3),
            "doctor_ms": round(statistics.median(doctor_ms[v]), 3),
            # Timed directly: Doctor.step and its optimizer hooks, per step (the ratio also holds
            # the training's own slowdown beside the doctor's Python, which no timer sees).
            "own_us": round(statistics.median(own_us[v]), 1),
            "ratio": round(statistics.median(ratios[v]), 4),
            "ratios": [round(r, 4) for r in ratios[v]],
            "blocks": blocks,
            "steps_per_block": steps,
            "repeats": repeats,
        }
        for v in variants
    ] + [
        {"model": name, "variant": v, "intervals": intervals[v]} for v in variants if v in intervals
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1, help="measure again with fresh copies built in a rotated order; the median ratio is reported")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of: {', '.join(VARIANTS)}")
    parser.add_argument("--warmup", type=int, default=5100, help="untimed steps each doctor runs first (the budget settles)")
    parser.add_argument("--before", help="package folder of another gandoctor version, for the 'before: default' variant")
    parser.add_argument("--models", default="mlp,dcgan", help="comma list of: mlp, dcgan")
    parser.add_argument("--json")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.before:
        global BEFORE
        BEFORE = load_before(args.before)
    elif "--variants" not in sys.argv:
        variants = [v for v in variants if not v.startswith("before: ")]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    models = {m.strip() for m in args.models.split(",") if m.strip()}
    if not models or models - {"mlp", "dcgan"}:
        parser.error(f"--models takes a comma list of mlp, dcgan; got {args.models!r}")
    results = []
    if "mlp" in models:
        results += measure("mlp-2d (demo GAN)", mlp_gan, args.blocks, args.steps, 128, device, variants, args.warmup, args.repeats)
    if "dcgan" in models:
        results += measure("dcgan-32x32", conv_gan, args.blocks, max(10, args.steps // 4), 64, device, variants, min(args.warmup, 200), args.repeats)
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, device {device}"
    if device.type == "cuda":
        machine += f" ({torch.cuda.get_device_name(device)})"
    print(f"machine: {machine}")
    print(f"{'model':<20} {'doctor':<20} {'batch':>5} {'bare ms/step':>13} {'doctor ms/step':>15} {'own us/step':>12} {'ratio':>7}  repeats")
    for r in results:
        if "intervals" in r:
            continue
        spread = f"  {min(r['ratios']):.3f}-{max(r['ratios']):.3f} over {r['repeats']}" if r["repeats"] > 1 else ""
        print(f"{r['model']:<20} {r['variant']:<20} {r['batch']:>5} {r['bare_ms']:>13.3f} {r['doctor_ms']:>15.3f} {r['own_us']:>12.1f} {r['ratio']:>7.3f}{spread}")
    for r in results:
        if "intervals" in r:
            print(f"intervals {r['model']} / {r['variant']}: " + ", ".join(f"{k} {v}" for k, v in r["intervals"].items() if v))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
