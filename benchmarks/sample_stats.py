"""Which sample statistic detects mode collapse best, with which features?

    python benchmarks/sample_stats.py --calibrate DIR --evaluate DIR [--evaluate DIR ...]

Each statistic gets the detector the rules use (median over a 300-step window, holding for 500
steps after a 500-step warm-up), with its threshold set on the *calibration* runs: the most
extreme level any healthy run holds that long (so the calibration set has no false alarm by
construction). On the *evaluation* runs it reports, per statistic: detection rate on runs the
oracle labels `mode_collapse`, false alarms on the other runs (and on the healthy ones), and
the median detection delay against the oracle's onset (negative = earlier than the oracle).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gandoctor import stats
from gandoctor.engine import _first_streak, make_grid
from gandoctor.readers import read_run

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
}
WINDOW, PERSIST, WARMUP = 300, 500, 500


@dataclass(frozen=True)
class Run:
    name: str
    labels: dict[str, int]
    series: dict[str, tuple[np.ndarray, np.ndarray]]  # stat -> (grid, windowed median)


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
        series = {}
        for name in STATISTICS:
            view = data.signals.get(name)
            if view is not None:
                series[name] = (grid, stats.evaluate(view, "median", WINDOW, grid))
        labels = {m: (v or {}).get("onset_step") for m, v in oracle["labels"].items()}
        runs.append(Run(entry["run"], labels, series))
    return runs


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


def calibrate(runs: list[Run]) -> dict[str, float]:
    thresholds = {}
    for name, op in STATISTICS.items():
        levels = [persistent_extreme(*r.series[name], op) for r in runs if not r.labels and name in r.series]
        levels = [x for x in levels if math.isfinite(x)]
        if levels:
            thresholds[name] = min(levels) if op == "<" else max(levels)
    return thresholds


def evaluate(runs: list[Run], thresholds: dict[str, float]) -> list[str]:
    lines = ["| statistic | threshold | detected / collapse runs | false alarms / other runs | of which healthy | median delay (steps) |", "|---|---|---|---|---|---|"]
    for name, op in STATISTICS.items():
        if name not in thresholds:
            continue
        thr = thresholds[name]
        hits, delays, fa, fa_healthy, n_pos, n_neg, n_healthy = 0, [], 0, 0, 0, 0, 0
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
            else:
                n_neg += 1
                n_healthy += not r.labels
                if found is not None:
                    fa += 1
                    fa_healthy += not r.labels
        delay = f"{sorted(delays)[len(delays) // 2]:+d}" if delays else "–"
        lines.append(f"| {name} | {op} {thr:.3f} | {hits}/{n_pos} | {fa}/{n_neg} | {fa_healthy}/{n_healthy} | {delay} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibrate", required=True)
    parser.add_argument("--evaluate", action="append", default=[])
    args = parser.parse_args()
    calibration = load(Path(args.calibrate))
    thresholds = calibrate(calibration)
    print(f"## calibration: {args.calibrate} (thresholds from its {sum(not r.labels for r in calibration)} healthy runs)\n")
    print("\n".join(evaluate(calibration, thresholds)))
    for folder in args.evaluate:
        print(f"\n## evaluation: {folder}\n")
        print("\n".join(evaluate(load(Path(folder)), thresholds)))


if __name__ == "__main__":
    main()
