"""Bounded resources: stream many synthetic steps through the signal log + rule engine (and the
Doctor), report steps/s and resident memory as the run grows; then time the CLI on a large log.

    python benchmarks/stream.py [--steps 10000000] [--doctor-steps 1000000] [--log-steps 1000000]

Memory must stay flat once every series has filled its capacity (4096 points, then merged
pairwise), whatever the number of steps.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gandoctor.engine import evaluate
from gandoctor.rules import load_rules
from gandoctor.runlog import RunLogWriter
from gandoctor.signals import SignalLog


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def synthetic(step: int, rng: np.random.Generator) -> dict[str, float]:
    noise = rng.standard_normal(6)
    return {
        "loss.d": 1.3 + 0.1 * noise[0],
        "loss.g": 0.8 + 0.1 * noise[1],
        "d.auc": 0.6 + 0.05 * noise[2],
        "grad_norm.d": math.exp(0.3 * noise[3]),
        "grad_norm.g": math.exp(0.3 * noise[4]),
        "weight_norm.d": 30.0 + noise[5],
    }


def stream_signal_log(steps: int) -> list[tuple[int, float, float]]:
    rng = np.random.default_rng(0)
    rules = load_rules()
    log = SignalLog()
    rows = []
    checkpoints = {int(steps * f) for f in (0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 1.0)}
    start = time.perf_counter()
    for step in range(1, steps + 1):
        log.record(step, synthetic(step, rng))
        if step in checkpoints:
            t = time.perf_counter()
            result = evaluate(log, rules)
            engine_s = time.perf_counter() - t
            rows.append((step, rss_mib(), engine_s))
            assert not result.findings, "synthetic healthy stream must stay quiet"
    rate = steps / (time.perf_counter() - start)
    print(f"signal log + engine: {steps:,} steps at {rate:,.0f} steps/s")
    print(f"{'step':>12} {'RSS MiB':>9} {'engine s':>9}")
    for step, rss, eng in rows:
        print(f"{step:>12,} {rss:>9.1f} {eng:>9.3f}")
    return rows


def stream_doctor(steps: int) -> None:
    import torch
    from torch import nn

    import gandoctor

    G, D = nn.Linear(4, 2), nn.Linear(2, 1)
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        doctor = gandoctor.Doctor(G, D, log_dir=tmp, strict=True)
        start = time.perf_counter()
        marks = {int(steps * f) for f in (0.01, 0.1, 0.5, 1.0)}
        for step in range(1, steps + 1):
            s = synthetic(step, rng)
            doctor.step(d_loss=s["loss.d"], g_loss=s["loss.g"])
            if step in marks:
                print(f"doctor: step {step:>10,}  RSS {rss_mib():7.1f} MiB  ({step / (time.perf_counter() - start):,.0f} steps/s)")
        doctor.close()
        size = Path(tmp, "gandoctor.jsonl").stat().st_size
        print(f"doctor run log: {size / 2**20:.1f} MiB for {steps:,} steps")
        del torch


def cli_on_large_log(steps: int) -> None:
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as tmp:
        writer = RunLogWriter(tmp, {"flags": [], "values": {}}, 4096, flush_records=10_000)
        for step in range(steps):
            writer.write_step(step, synthetic(step, rng))
        writer.close()
        size = Path(tmp, "gandoctor.jsonl").stat().st_size
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", "import sys; from gandoctor.cli import main; rc=main(['gate', sys.argv[1]]); print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(rc)", tmp],
            capture_output=True,
            text=True,
        )
        took = time.perf_counter() - start
        peak_kib = int(proc.stdout.strip().splitlines()[-1])
        print(f"CLI gate on a {size / 2**20:.0f} MiB log ({steps:,} steps): {took:.1f} s, peak RSS {peak_kib / 1024:.0f} MiB, exit {proc.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000_000)
    parser.add_argument("--doctor-steps", type=int, default=1_000_000)
    parser.add_argument("--log-steps", type=int, default=1_000_000)
    args = parser.parse_args()
    stream_signal_log(args.steps)
    if args.doctor_steps:
        stream_doctor(args.doctor_steps)
    if args.log_steps:
        cli_on_large_log(args.log_steps)


if __name__ == "__main__":
    main()
