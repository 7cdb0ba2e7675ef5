"""Detection quality on the recorded fixture runs: gandoctor's findings vs the oracle's labels.

    python benchmarks/detection.py [--runs fixtures/runs] [--markdown]

For every run: the modes the oracle labelled, the modes gandoctor reported, and per mode the
onset delay (gandoctor's onset minus the oracle's; negative = gandoctor saw it first). Then per
mode: detection rate on runs the oracle labelled, false alarms on runs it did not.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from gandoctor.diagnose import analyze
from gandoctor.rules import MODES


@dataclass(frozen=True)
class RunResult:
    run: str
    oracle: dict[str, int | None]
    found: dict[str, int]
    confidence: dict[str, float]


def evaluate(runs_dir: Path) -> list[RunResult]:
    index = json.loads((runs_dir / "index.json").read_text())
    results = []
    for entry in index:
        run_dir = runs_dir / entry["run"]
        oracle = json.loads((run_dir / "oracle.json").read_text())
        labels = {mode: (info or {}).get("onset_step") for mode, info in oracle["labels"].items()}
        report = analyze(run_dir)
        results.append(
            RunResult(
                entry["run"],
                labels,
                {f.mode: f.onset_step for f in report.findings},
                {f.mode: f.confidence for f in report.findings},
            )
        )
    return results


def summarise(results: list[RunResult]) -> dict[str, dict[str, float]]:
    out = {}
    for mode in MODES:
        labelled = [r for r in results if mode in r.oracle]
        unlabelled = [r for r in results if mode not in r.oracle]
        hits = [r for r in labelled if mode in r.found]
        false_alarms = [r for r in unlabelled if mode in r.found]
        delays = [r.found[mode] - r.oracle[mode] for r in hits if r.oracle[mode] is not None]
        out[mode] = {
            "labelled": len(labelled),
            "detected": len(hits),
            "false_alarms": len(false_alarms),
            "unlabelled": len(unlabelled),
            "median_delay": sorted(delays)[len(delays) // 2] if delays else float("nan"),
        }
    return out


def render(results: list[RunResult]) -> str:
    lines = ["| run | oracle labels (onset) | gandoctor (onset) | agree |", "|---|---|---|---|"]
    for r in results:
        oracle = ", ".join(f"{m} ({o})" for m, o in sorted(r.oracle.items())) or "healthy"
        found = ", ".join(f"{m} ({o})" for m, o in sorted(r.found.items())) or "healthy"
        agree = "yes" if set(r.oracle) == set(r.found) else ("missed " + ", ".join(sorted(set(r.oracle) - set(r.found))) if set(r.oracle) - set(r.found) else "") + (
            ("; extra " if set(r.oracle) - set(r.found) else "extra ") + ", ".join(sorted(set(r.found) - set(r.oracle))) if set(r.found) - set(r.oracle) else ""
        )
        lines.append(f"| {r.run} | {oracle} | {found} | {agree} |")
    lines += ["", "| mode | detected / labelled runs | false alarms / unlabelled runs | median onset delay (steps) |", "|---|---|---|---|"]
    for mode, s in summarise(results).items():
        lines.append(f"| {mode} | {s['detected']}/{s['labelled']} | {s['false_alarms']}/{s['unlabelled']} | {s['median_delay']:+.0f} |" if s["median_delay"] == s["median_delay"] else f"| {mode} | {s['detected']}/{s['labelled']} | {s['false_alarms']}/{s['unlabelled']} | – |")
    healthy = [r for r in results if not r.oracle]
    quiet = [r for r in healthy if not r.found]
    lines += ["", f"Healthy runs left quiet: {len(quiet)}/{len(healthy)}."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=str(Path(__file__).resolve().parent.parent / "fixtures" / "runs"))
    args = parser.parse_args()
    results = evaluate(Path(args.runs))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
