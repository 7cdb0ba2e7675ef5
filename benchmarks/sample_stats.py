"""Which sample statistic detects mode collapse best, with which features?

    python benchmarks/sample_stats.py --calibrate DIR --evaluate DIR [--evaluate DIR ...]

Each statistic gets the detector the rules use (median over a 300-step window, holding for 500
steps after a 500-step warm-up), with its threshold set on the *calibration* runs: the most
extreme level any healthy run holds that long (so the calibration set has no false alarm by
construction). On the *evaluation* runs it reports, per statistic: detection rate on runs the
oracle labels `mode_collapse`, false alarms on the other runs (and on the healthy ones), and
the median detection delay against the oracle's onset (negative = earlier than the oracle).

Early warning: the detector's onset is the first step of the streak, as the rules report it;
the alarm itself can only be raised ``PERSIST`` steps later. The "earlier" column counts the
detected collapse runs whose onset precedes the oracle's, and "alarm before oracle" those where
even the alarm (onset + PERSIST) does. The oracle ignores its first 25% of checkpoints, so its
labelled onset is never earlier than that; "delay vs first sight" measures instead from the
oracle's first sight: the earliest checkpoint of the unbroken stretch of collapsed checkpoints
(by the oracle's own criterion, warm-up ignored) that leads into the labelled onset.

``--trajectories`` adds, per statistic, the range over the runs of each group (healthy,
collapse, other) of the change from the run's start (median of its first 20%) to its end
(median of its last 20%), in decades for the scale-free spectrum statistics, as a difference
otherwise: a statistic that helps separates the groups.

Statistics a set did not record (NDB, FID/KID, the extended set, the spectrum of D) are left
out of that set's table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gandoctor import windows as stats
from gandoctor.engine import make_grid
from gandoctor.readers import read_run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
from record import collapsed_checkpoint  # noqa: E402  (the oracle's own criterion, not a copy)

# statistic -> direction in which collapse moves it
STATISTICS = {
    "feat.coverage_ratio": "<",
    "feat.coverage": "<",
    "feat.recall": "<",
    "feat.diversity_ratio": "<",
    "feat.vendi_ratio": "<",
    "feat.density": ">",
    "feat.dup_rate": ">",
    "feat.precision": ">",
    "feat.ndb_frac": ">",
    "feat.fid": ">",
    "feat.kid": ">",
    "spectrum.d.stable_rank": "<",
    "spectrum.d.effective_rank": "<",
    "sigma_max.d": ">",
}
# Their level depends on the data set and model; only their change within a run can mean anything.
SCALE_DEPENDENT = {"feat.fid", "feat.kid", "sigma_max.d"}
LOG_SCALE = {"spectrum.d.stable_rank", "spectrum.d.effective_rank", "sigma_max.d", "feat.fid", "feat.kid"}
WINDOW, PERSIST, WARMUP = 300, 500, 500


@dataclass(frozen=True)
class Run:
    name: str
    labels: dict[str, int]
    series: dict[str, tuple[np.ndarray, np.ndarray]]  # stat -> (grid, windowed median)
    raw: dict[str, np.ndarray]  # stat -> recorded values
    first_sight: int | None  # earliest checkpoint of the oracle's collapsed stretch into its onset


def load(folder: Path) -> list[Run]:
    runs = []
    for entry in json.loads((folder / "index.json").read_text()):
        run_dir = folder / entry["run"]
        oracle = json.loads((run_dir / "oracle.json").read_text())
        try:
            data = read_run(run_dir)
        except Exception:
            continue
        grid = make_grid(data.signals.first_step, data.signals.last_step, WINDOW)
        series, raw = {}, {}
        for name in STATISTICS:
            view = data.signals.get(name)
            if view is not None:
                series[name] = (grid, stats.evaluate(view, "median", WINDOW, grid))
                raw[name] = view.values
        labels = {m: (v or {}).get("onset_step") for m, v in oracle["labels"].items()}
        runs.append(Run(entry["run"], labels, series, raw, first_sight(oracle, labels.get("mode_collapse"))))
    return runs


def first_sight(oracle: dict, onset: int | None) -> int | None:
    """Walk back from the labelled onset while the oracle's collapse criterion holds."""
    if onset is None:
        return None
    t, k = oracle["thresholds"], oracle["true_modes"]

    def collapsed(r: dict) -> bool:
        return not r.get("nonfinite") and collapsed_checkpoint(r, k, t)

    timeline = oracle["timeline"]
    steps = [r["step"] for r in timeline]
    if onset not in steps:
        return onset
    i = steps.index(onset)
    while i > 0 and collapsed(timeline[i - 1]):
        i -= 1
    return steps[i]


def persistent_extreme(grid: np.ndarray, values: np.ndarray, op: str) -> float:
    best = math.nan
    start = int(np.searchsorted(grid, grid[0] + WARMUP))
    for i in range(start, len(grid)):
        j = int(np.searchsorted(grid, grid[i] + PERSIST))
        if j >= len(grid):
            break
        seg = values[i : j + 1]
        if not np.isfinite(seg).all():
            continue
        level = seg.max() if op == "<" else seg.min()
        best = level if not math.isfinite(best) else (min(best, level) if op == "<" else max(best, level))
    return best


def onset(grid: np.ndarray, values: np.ndarray, op: str, threshold: float) -> int | None:
    holds = np.array([math.isfinite(v) and (v < threshold if op == "<" else v > threshold) for v in values])
    streak = _first_streak(holds, grid, int(np.searchsorted(grid, grid[0] + WARMUP)), PERSIST)
    return None if streak is None else int(grid[streak[0]])


def _first_streak(holds: np.ndarray, grid: np.ndarray, start_idx: int, persist: int) -> tuple[int, int] | None:
    """This benchmark's detector: the first unbroken run of True at or after ``start_idx``
    spanning at least ``persist`` steps (the rules' semantics when these tables were made)."""
    i, n = start_idx, holds.shape[0]
    while i < n:
        if not holds[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and holds[j + 1]:
            j += 1
        if grid[j] - grid[i] >= persist:
            return i, j
        i = j + 1
    return None


def calibrate(runs: list[Run]) -> dict[str, float]:
    thresholds = {}
    for name, op in STATISTICS.items():
        if name in SCALE_DEPENDENT:
            continue
        levels = [persistent_extreme(*r.series[name], op) for r in runs if not r.labels and name in r.series]
        levels = [x for x in levels if math.isfinite(x)]
        if levels:
            thresholds[name] = min(levels) if op == "<" else max(levels)
    return thresholds


def evaluate(runs: list[Run], thresholds: dict[str, float]) -> list[str]:
    lines = [
        "| statistic | threshold | detected / collapse runs | false alarms / other runs | of which healthy | median delay (steps) | onset earlier than oracle | alarm before oracle | median delay vs first sight |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, op in STATISTICS.items():
        if name not in thresholds:
            continue
        thr = thresholds[name]
        hits, delays, fa, fa_healthy, n_pos, n_neg, n_healthy = 0, [], 0, 0, 0, 0, 0
        sight_delays: list[int] = []
        if not any(name in r.series for r in runs):
            continue
        for r in runs:
            if name not in r.series:
                continue
            found = onset(*r.series[name], op, thr)
            if "mode_collapse" in r.labels:
                n_pos += 1
                if found is not None:
                    hits += 1
                    if r.labels["mode_collapse"] is not None:
                        delays.append(found - r.labels["mode_collapse"])
                    if r.first_sight is not None:
                        sight_delays.append(found - r.first_sight)
            else:
                n_neg += 1
                n_healthy += not r.labels
                if found is not None:
                    fa += 1
                    fa_healthy += not r.labels
        delay = f"{sorted(delays)[len(delays) // 2]:+d}" if delays else "–"
        leads = sorted(-d for d in delays if d < 0)
        earlier = f"{len(leads)}/{len(delays)}" + (f" (median {leads[len(leads) // 2]} steps)" if leads else "")
        alarm = f"{sum(1 for d in delays if d + PERSIST < 0)}/{len(delays)}"
        sight = f"{sorted(sight_delays)[len(sight_delays) // 2]:+d}" if sight_delays else "–"
        lines.append(f"| {name} | {op} {thr:.3f} | {hits}/{n_pos} | {fa}/{n_neg} | {fa_healthy}/{n_healthy} | {delay} | {earlier} | {alarm} | {sight} |")
    return lines


def change(values: np.ndarray, log_scale: bool) -> float:
    finite = values[np.isfinite(values)]
    if finite.size < 5:
        return math.nan
    k = max(1, finite.size // 5)
    start, end = float(np.median(finite[:k])), float(np.median(finite[-k:]))
    if log_scale:
        return math.log10(end / start) if start > 0 and end > 0 else math.nan
    return end - start


def trajectories(runs: list[Run]) -> list[str]:
    groups = {"healthy": lambda r: not r.labels, "collapse": lambda r: "mode_collapse" in r.labels,
              "other failing": lambda r: bool(r.labels) and "mode_collapse" not in r.labels}
    lines = ["| statistic | change | " + " | ".join(groups) + " |", "|---|---|" + "---|" * len(groups)]
    for name in STATISTICS:
        cells = []
        for pick in groups.values():
            values = sorted(c for r in runs if pick(r) and name in r.raw for c in [change(r.raw[name], name in LOG_SCALE)] if math.isfinite(c))
            cells.append(f"{values[0]:+.2f} .. {values[-1]:+.2f} (median {values[len(values) // 2]:+.2f}, n={len(values)})" if values else "–")
        if any(c != "–" for c in cells):
            lines.append(f"| {name} | {'decades' if name in LOG_SCALE else 'difference'} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibrate", required=True)
    parser.add_argument("--evaluate", action="append", default=[])
    parser.add_argument("--trajectories", action="store_true", help="also print each statistic's start-to-end change per group")
    args = parser.parse_args()
    calibration = load(Path(args.calibrate))
    thresholds = calibrate(calibration)
    print(f"## calibration: {args.calibrate} (thresholds from its {sum(not r.labels for r in calibration)} healthy runs)\n")
    print("\n".join(evaluate(calibration, thresholds)))
    if args.trajectories:
        print(f"\n### start-to-end change: {args.calibrate}\n")
        print("\n".join(trajectories(calibration)))
    for folder in args.evaluate:
        print(f"\n## evaluation: {folder}\n")
        runs = load(Path(folder))
        print("\n".join(evaluate(runs, thresholds)))
        if args.trajectories:
            print(f"\n### start-to-end change: {folder}\n")
            print("\n".join(trajectories(runs)))


if __name__ == "__main__":
    main()
