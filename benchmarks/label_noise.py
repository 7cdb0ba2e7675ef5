"""How far the oracle's labels move when only the oracle changes: the ceiling a detector meets.

    python fixtures/corpus.py --n 300 --oracle-resample 1 --no-doctor --out DIR   # other oracle samples
    python fixtures/corpus.py --n 300 --oracle-shift 5 --no-doctor --out DIR      # checkpoints 5 steps later
    python benchmarks/label_noise.py --runs fixtures/corpus --relabelled DIR [--json PATH]

Both options train every recipe exactly as before (the scalar logs come out byte-identical):
``--oracle-resample`` has the oracle draw its fresh codes and held-out reals from another
stream, ``--oracle-shift`` has it look at other steps of the same run.
The second labelling is scored against the first as if it were a detector: per mode precision,
recall and F1, healthy runs it calls failing. A detector can hardly agree with the labels more
than the labels agree with themselves. Then gandoctor's sources (rules as shipped, no
calibration) are scored on all runs and on the runs whose label set did not move.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import detection  # noqa: E402  (benchmarks/detection.py: corpus, predictions, scores)


def relabelled_predictions(first: list[detection.Case], second: list[detection.Case]) -> dict[str, dict[str, int]]:
    """The second labelling as predictions for the first's runs (a run missing from it predicts
    nothing); onsets stand in as predicted onsets."""
    by_name = {c.name: c for c in second}
    return {c.name: {m: int(o or 0) for m, o in (by_name[c.name].labels if c.name in by_name else {}).items()} for c in first}


def stable(first: list[detection.Case], second: list[detection.Case]) -> list[detection.Case]:
    """The runs of the first labelling whose set of labelled modes the second repeats."""
    by_name = {c.name: c for c in second}
    return [c for c in first if c.name in by_name and set(c.labels) == set(by_name[c.name].labels)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=str(detection.DEFAULT_RUNS), help="the corpus as labelled first")
    parser.add_argument("--relabelled", required=True, help="the same recipes, labelled from other oracle samples")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    first = detection.load_cases(Path(args.runs))
    second = detection.load_cases(Path(args.relabelled))
    names = {c.name for c in second}
    first = [c for c in first if c.name in names]
    if not first:
        raise SystemExit(f"{args.relabelled}: no run in common with {args.runs}")
    agreement = detection.score(first, relabelled_predictions(first, second))
    kept = stable(first, second)
    predictor = detection.Predictor(detection.LogCache(), detection.load_rules())
    sources = list(detection.SOURCES)
    preds = {s: {c.name: predictor.predict(c, s) for c in first} for s in sources}
    on_all = {s: detection.score(first, preds[s]) for s in sources}
    on_stable = {s: detection.score(kept, preds[s]) for s in sources}

    lines = [f"**The oracle against itself: {len(first)} runs of the same training labelled twice ({args.runs}, then {args.relabelled})**", "",
             "| mode | labelled first | labelled second | both | F1 of the second against the first |", "|---|---|---|---|---|"]
    for m in detection.MODES:
        v = agreement["modes"][m]
        lines.append(f"| {m} | {v['labelled']} | {v['tp'] + v['fp']} | {v['tp']} | {detection._f(v['f1'])} |")
    lines.append(f"| **macro-F1** | | | | **{detection._f(agreement['macro_f1'])}** |")
    lines += ["", f"Healthy in the first labelling and failing in the second: {agreement['healthy_alarmed']} of "
                  f"{agreement['healthy']}. Runs whose set of labelled modes changed: {len(first) - len(kept)} of {len(first)}.", ""]
    lines.append(detection.render(f"All {len(first)} runs, rules as shipped (first labelling)", on_all))
    lines.append("")
    lines.append(detection.render(f"The {len(kept)} runs whose labels did not move, rules as shipped", on_stable))
    text = "\n".join(lines)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": len(first), "stable_runs": len(kept), "agreement": agreement,
                                               "all": on_all, "stable": on_stable}, indent=1, default=detection._no_nan) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
