"""Do the ranked remedies cure? Retrain recorded failing runs with the top-ranked remedy applied.

    python benchmarks/cures.py [--runs fixtures/runs] [--per-mode 2] [--ranks 1] [--modes M1,M2] [--datasets ring8,grid25] [--jobs 1] [--out FILE] [--plan]

For each failure mode, a few recorded runs of fixtures/record.py that the oracle labelled with
it and gandoctor detected: gandoctor ranks the remedies for that finding from the recorded log
(as a user would see them); the best-ranked remedies that the recorder can express as a change
of its configuration (learning rates, update ratio, spectral norm, loss, latent size, widths,
optimizer) are applied as the change the remedy describes; the run is retrained with the same
seed (no doctor attached) and the oracle labels it again. Next to it, a no-change rerun of the
same configuration (same seed: it shows the recorded labels reproduce on this machine, so a
change of label is the remedy's doing). Remedies the recorder cannot express (minibatch
discrimination, unrolled updates, label tricks, ...) are counted as such.

Cost: one tiny CPU training per run and remedy (about 20-120 s each on one core).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

from gandoctor.diagnose import analyze
from gandoctor.findings import RankedRemedy
from gandoctor.rules import MODES

REPO = Path(__file__).resolve().parent.parent


def _record_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gandoctor_fixture_record", REPO / "fixtures" / "record.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# -- remedies as configuration changes of the recorder (the change each remedy's text describes) --
Change = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def _at_least(ratio: float, factor: float) -> bool:
    # As the catalogue compares a ratio with its factor: "at least", to float rounding.
    return ratio >= factor * (1 - 1e-9)


def _slow_down(c: dict[str, Any], fast: str, slow: str) -> dict[str, Any] | None:
    ratio = c[fast] / c[slow]
    if _at_least(ratio, 10) and c[fast] > 0.05:  # "... far above the rates GANs train at: bring <fast> down to <slow's>"
        return {fast: c[slow]}
    if _at_least(ratio, 10):  # "... cannot keep up at all: try both at <fast's>"
        return {slow: c[fast]}
    if _at_least(ratio, 2):  # "fast's lr is Nx slow's: try fast <slow's> / slow <fast's>"
        return {fast: c[slow], slow: c[fast]}
    if _at_least(1 / ratio, 10):  # skipped: "already far below" (the other's is at least 10x)
        return None
    return {fast: c[fast] / 2}


def _lower_d_lr(c: dict[str, Any]) -> dict[str, Any] | None:
    return _slow_down(c, "d_lr", "g_lr")


def _lower_g_lr(c: dict[str, Any]) -> dict[str, Any] | None:
    return _slow_down(c, "g_lr", "d_lr")


def _lower_lr(c: dict[str, Any]) -> dict[str, Any]:
    f = 5.0 if max(c["d_lr"], c["g_lr"]) > 5e-4 else 2.0
    return {"d_lr": c["d_lr"] / f, "g_lr": c["g_lr"] / f}


def _optimizer(c: dict[str, Any]) -> dict[str, Any] | None:
    if "sgd" in (c["d_opt"], c["g_opt"]):
        return {"d_opt": "adam", "g_opt": "adam", "d_lr": 2e-4, "g_lr": 2e-4, "betas": (0.5, 0.999)}
    if c["betas"][0] > 0.7:
        return {"betas": (0.5, c["betas"][1])}
    return None  # already at the usual settings: nothing the remedy's checks would change


def _wasserstein(c: dict[str, Any]) -> dict[str, Any] | None:
    if c["loss"].startswith("wgan"):
        return None
    return {"loss": "wgan-gp", "gp": 10.0, "d_steps": 5, "betas": (0.0, 0.9), "d_lr": 1e-4, "g_lr": 1e-4}


CHANGES: dict[str, Change] = {
    "lower_d_lr": _lower_d_lr,
    "lower_g_lr": _lower_g_lr,
    "lower_lr": _lower_lr,
    "fewer_d_steps": lambda c: {"d_steps": 1} if c["d_steps"] > 1 else None,
    "more_d_steps": lambda c: {"d_steps": 3} if c["d_steps"] < 3 else None,
    "spectral_norm": lambda c: None if c["d_sn"] else {"d_sn": True},
    "wasserstein_loss": _wasserstein,
    "gradient_penalty": lambda c: {"loss": "wgan-gp", "gp": 10.0} if c["loss"] == "wgan" else None,
    "gp_weight": lambda c: {"gp": c["gp"] * 2} if c["loss"] == "wgan-gp" else None,
    "larger_latent": lambda c: {"z_dim": c["z_dim"] * 8} if c["z_dim"] < 16 else {"z_dim": c["z_dim"] * 2},
    "stronger_g": lambda c: {"g_hidden": c["g_hidden"] * 2},
    "weaker_g": lambda c: {"g_hidden": max(1, c["g_hidden"] // 2)},
    "stronger_d": lambda c: {"d_hidden": c["d_hidden"] * 2},
    "weaker_d": lambda c: {"d_hidden": max(1, c["d_hidden"] // 2)},
    "optimizer": _optimizer,
}


@dataclasses.dataclass(frozen=True)
class Trial:
    run: str
    mode: str
    arm: str  # "no change" or "rank k: remedy_id"
    change: dict[str, Any]
    labels_before: tuple[str, ...]


def pick_trials(
    runs_dir: Path, per_mode: int, ranks: int, datasets: set[str], modes: tuple[str, ...] = MODES
) -> tuple[list[Trial], dict[str, dict[str, int]]]:
    """Cases (run, mode): labelled by the oracle and detected by gandoctor; the arms to train."""
    index = json.loads((runs_dir / "index.json").read_text(encoding="utf-8"))
    trials: list[Trial] = []
    unexpressible: dict[str, dict[str, int]] = {m: {} for m in MODES}
    used_runs: dict[str, int] = {}
    for mode in modes:
        # the recipe meant to produce this mode first, then the others the oracle labelled with it
        candidates = sorted(
            (r for r in index if mode in r["labels"] and r["dataset"] in datasets), key=lambda r: (r["scenario"] != mode, r["run"])
        )
        taken = 0
        for entry in candidates:
            if taken >= per_mode:
                break
            run_dir = runs_dir / entry["run"]
            finding = next((f for f in analyze(run_dir).findings if f.mode == mode), None)
            if finding is None:
                continue  # not detected: no ranking to test
            config = json.loads((run_dir / "oracle.json").read_text(encoding="utf-8"))["config"]
            arms = _arms(finding.remedies, config, ranks, unexpressible[mode])
            if not arms:
                continue
            taken += 1
            used_runs[entry["run"]] = used_runs.get(entry["run"], 0) + 1
            labels = tuple(sorted(entry["labels"]))
            trials.append(Trial(entry["run"], mode, "no change", {}, labels))
            trials += [Trial(entry["run"], mode, arm, change, labels) for arm, change in arms]
    return trials, unexpressible


def _arms(remedies: tuple[RankedRemedy, ...], config: dict[str, Any], ranks: int, unexpressible: dict[str, int]) -> list[tuple[str, dict[str, Any]]]:
    arms: list[tuple[str, dict[str, Any]]] = []
    for position, remedy in enumerate(remedies, 1):
        if len(arms) >= ranks:
            break
        change_fn = CHANGES.get(remedy.id)
        change = change_fn(config) if change_fn else None
        if change is None:
            unexpressible[remedy.id] = unexpressible.get(remedy.id, 0) + 1
            continue
        arms.append((f"rank {position}: {remedy.id}", change))
    return arms


def _train(job: tuple[str, dict[str, Any], dict[str, Any], str]) -> tuple[list[str], float]:
    run, config, change, out = job
    record = _record_module()
    cfg = dict(config) | change
    cfg["betas"] = tuple(cfg["betas"])
    cfg["name"] = f"{run}__{abs(hash(json.dumps(change, sort_keys=True, default=str))) % 10**8}"
    t0 = time.time()
    result = record.run_one(record.Cfg(**cfg), use_doctor=False, out_root=Path(out))
    return list(result["labels"]), time.time() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=str(REPO / "fixtures" / "runs"))
    parser.add_argument("--per-mode", type=int, default=2, help="failing runs per mode (default 2)")
    parser.add_argument("--ranks", type=int, default=1, help="expressible remedies per case, best-ranked first (default 1)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", help="write the per-trial results as JSON here")
    parser.add_argument("--plan", action="store_true", help="list the trials and stop (no training)")
    parser.add_argument("--modes", default=",".join(MODES), help="failure modes to test (default: all six)")
    parser.add_argument("--datasets", default="ring8,grid25", help="recipes' datasets to use (default ring8,grid25: digits runs cost 3-5x more)")
    args = parser.parse_args(argv)

    runs_dir = Path(args.runs)
    modes = [m for m in MODES if m in args.modes.split(",")]
    trials, unexpressible = pick_trials(runs_dir, args.per_mode, args.ranks, set(args.datasets.split(",")), modes)
    # one training per distinct (run, change), shared by the modes of that run
    jobs: dict[tuple[str, str], dict[str, Any]] = {}
    for t in trials:
        jobs.setdefault((t.run, json.dumps(t.change, sort_keys=True, default=str)), t.change)
    print(f"{len(trials)} trials, {len(jobs)} trainings", file=sys.stderr)
    if args.plan:
        for t in trials:
            print(f"{t.mode:24s} {t.run:28s} {t.arm:32s} {t.change}")
        return 0
    with tempfile.TemporaryDirectory() as out:
        configs = {t.run: json.loads((runs_dir / t.run / "oracle.json").read_text(encoding="utf-8"))["config"] for t in trials}
        work = [(run, configs[run], change, out) for (run, _), change in jobs.items()]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            outcomes = dict(zip(jobs, pool.map(_train, work)))
    rows = []
    for t in trials:
        labels, seconds = outcomes[(t.run, json.dumps(t.change, sort_keys=True, default=str))]
        rows.append({**dataclasses.asdict(t), "labels_after": labels, "cured": t.mode not in labels,
                     "new_labels": sorted(set(labels) - set(t.labels_before)), "seconds": round(seconds, 1)})
    if args.out:
        Path(args.out).write_text(json.dumps({"trials": rows, "unexpressible": unexpressible}, indent=1, default=str), encoding="utf-8")
    print(render(rows, unexpressible))
    return 0


def render(rows: list[dict[str, Any]], unexpressible: dict[str, dict[str, int]]) -> str:
    lines = ["| mode | cases | no-change rerun: gone | best expressible remedy: gone | which (rank: remedy → gone?) | new labels after the remedy |",
             "|---|---|---|---|---|---|"]
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        base = [r for r in mine if r["arm"] == "no change"]
        first = [r for r in mine if r["arm"] != "no change"]
        # the first remedy arm of each case
        per_case: dict[str, dict[str, Any]] = {}
        for r in first:
            per_case.setdefault(r["run"], r)
        which = "; ".join(f"{r['run']} {r['arm'].split(': ')[0]}: {r['arm'].split(': ')[1]} → {'yes' if r['cured'] else 'no'}" for r in per_case.values())
        new = "; ".join(f"{r['run']}: {', '.join(r['new_labels'])}" for r in per_case.values() if r["new_labels"]) or "–"
        lines.append(f"| {mode} | {len(base)} | {sum(r['cured'] for r in base)}/{len(base)} | "
                     f"{sum(r['cured'] for r in per_case.values())}/{len(per_case)} | {which} | {new} |")
    skipped = {m: u for m, u in unexpressible.items() if u}
    if skipped:
        lines.append("")
        lines.append("Higher-ranked remedies the recorder cannot express (skipped to reach the one applied): "
                     + "; ".join(f"{m}: {', '.join(f'{k} x{v}' for k, v in sorted(u.items()))}" for m, u in skipped.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
