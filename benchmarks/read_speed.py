"""Read speed of TensorBoard event files: gandoctor next to what users use today.

    python benchmarks/read_speed.py [--scalars 1200000] [--out /tmp/gandoctor-bench] [--repeat N] [--only NAMES]

Writes one event file with torch's SummaryWriter (four tags a step: Loss_D, Loss_G, D(x),
D(G(z)); cached between runs), then reads it in a fresh subprocess per reader, so each peak
memory (ru_maxrss) is that reader's alone:

- gandoctor analyze: the whole CLI path (read, rules, report) of ``gandoctor analyze --json``
- gandoctor read: ``read_run`` only, checking the CRC32C of each chunk's records together
  (numpy, the default), or with one call per record (C ``google-crc32c``, or pure Python), and
  gandoctor's framing with the protobuf library decoding the records (iterating only, nothing
  stored) instead of the hand-written decoder: the choices this benchmark settles
- tbparse ``SummaryReader(file).scalars``, TensorBoard's ``EventAccumulator`` (all scalars kept)
  and ``EventFileLoader`` (iteration only), where installed (pip install tbparse tensorboard).

Prints a Markdown table: seconds, scalars per second, peak RSS, and time relative to tbparse.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

TAGS = ("Loss_D", "Loss_G", "D(x)", "D(G(z))")

READERS = {
    "gandoctor analyze (CLI, whole diagnosis)": """
from gandoctor.cli import main
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    main(["analyze", PATH, "--json", "--quiet"])
n = None
""",
    "gandoctor read_run (CRC32C of a chunk's records at once, numpy)": """
from gandoctor.readers import read_run
data = read_run(PATH)
n = sum(int(v.counts.sum()) for v in data.signals.views())
""",
    "gandoctor read_run, CRC32C one call per record (google-crc32c, C)": """
from gandoctor.readers import tensorboard as tb
assert tb._C_CRC is not None, "no C crc32c installed"
tb.VECTOR_CRC = False
from gandoctor.readers import read_run
data = read_run(PATH)
n = sum(int(v.counts.sum()) for v in data.signals.views())
""",
    "gandoctor read_run, CRC32C one call per record (pure Python)": """
from gandoctor.readers import tensorboard as tb
tb.VECTOR_CRC = False
tb._C_CRC = None
from gandoctor.readers import read_run
data = read_run(PATH)
n = sum(int(v.counts.sum()) for v in data.signals.views())
""",
    "gandoctor framing + protobuf library decode (iterate only)": """
from pathlib import Path
from gandoctor.readers import tensorboard as tb
from tensorboard.compat.proto import event_pb2
n = 0
with open(PATH, "rb") as fh:
    for _off, payload in tb.iter_records(fh, Path(PATH), []):
        ev = event_pb2.Event.FromString(payload)
        for v in ev.summary.value:
            if v.WhichOneof("value") == "simple_value":
                n += 1
""",
    "tbparse SummaryReader().scalars": """
from tbparse import SummaryReader
n = len(SummaryReader(PATH).scalars)
""",
    "TensorBoard EventAccumulator": """
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(PATH, size_guidance={"scalars": 0})
acc.Reload()
n = sum(len(acc.Scalars(t)) for t in acc.Tags()["scalars"])
""",
    "TensorBoard EventFileLoader (iterate only)": """
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
n = 0
for ev in EventFileLoader(PATH).Load():
    n += len(ev.summary.value)
""",
}

CHILD = """
import resource, sys, time, json
PATH = sys.argv[1]
t0 = time.perf_counter()
{body}
dt = time.perf_counter() - t0
# VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]
peak = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": dt, "scalars": n, "peak_mb": peak}}))
"""


def make_file(folder: Path, scalars: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / f"DONE-{scalars}"
    run = folder / f"run-{scalars}"
    if done.exists():
        return next(run.glob("events.out.tfevents.*"))
    import math

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run), flush_secs=3600, max_queue=100_000)
    for step in range(scalars // len(TAGS)):
        x = step / 1000.0
        writer.add_scalar("Loss_D", 0.7 + 0.1 * math.sin(x), step)
        writer.add_scalar("Loss_G", 1.4 + 0.2 * math.cos(x), step)
        writer.add_scalar("D(x)", 0.6, step)
        writer.add_scalar("D(G(z))", 0.4, step)
    writer.close()
    done.write_text("ok")
    return next(run.glob("events.out.tfevents.*"))


def run_one(body: str, path: Path) -> dict | str:
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", CHILD.format(body=body), str(path)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return last[:120]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scalars", type=int, default=1_200_000)
    parser.add_argument("--out", default="/tmp/gandoctor-bench")
    parser.add_argument("--only", default="", help="comma-separated substrings of reader names to run")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs per reader (timings on a shared machine are noisy)")
    parser.add_argument("--write-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_only:
        make_file(Path(args.out), args.scalars)
        return
    # Written in a child process so this one stays small (peak memory is per child).
    subprocess.run([sys.executable, __file__, "--scalars", str(args.scalars), "--out", args.out, "--write-only"], check=True)
    path = make_file(Path(args.out), args.scalars)
    size = path.stat().st_size
    print(f"{args.scalars:,} scalars, {size / 1e6:.1f} MB, one event file written by SummaryWriter")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load:.1f} at start\n")
    results: dict[str, dict | str] = {}
    for name, body in READERS.items():
        if args.only and not any(s.strip() in name for s in args.only.split(",")):
            continue
        runs = [run_one(body, path) for _ in range(max(1, args.repeat))]
        timed = [r for r in runs if isinstance(r, dict)]
        results[name] = min(timed, key=lambda r: r["seconds"]) if timed else runs[0]
        print(f"  {name}: {results[name]}", file=sys.stderr)
    base = results.get("tbparse SummaryReader().scalars")
    base_s = base["seconds"] if isinstance(base, dict) else None
    print("| reader | seconds | scalars/s | peak RSS (MB) | vs tbparse |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        if isinstance(r, str):
            print(f"| {name} | not run: {r} | | | |")
            continue
        rate = f"{args.scalars / r['seconds']:,.0f}"
        ratio = f"{base_s / r['seconds']:.1f}x faster" if base_s else ""
        print(f"| {name} | {r['seconds']:.2f} | {rate} | {r['peak_mb']:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
