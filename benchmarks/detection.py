"""Detection quality on a corpus of real GAN runs: gandoctor live, gandoctor on scalar logs, plain heuristics.

    python benchmarks/detection.py [--runs fixtures/corpus] [--json PATH] [--per-run]
    python benchmarks/detection.py --holdout family=dcgan_bn        # calibrate on the rest, score that group
    python benchmarks/detection.py --leave-one-out family           # every family held out in turn
    python benchmarks/detection.py --leave-one-out dataset --spec benchmarks/calibration.toml
    python benchmarks/detection.py --columns loss_D,loss_G     # scalar logs cut to their losses
    python benchmarks/detection.py --every 50                  # scalar logs written every 50 steps only

For every run (a folder with ``oracle.json`` and ``gandoctor.jsonl.gz``; ``scalars.csv.gz`` for
the scalar sources) three predictions are compared with the oracle's labels:

* **live**: gandoctor's diagnosis of the run log the ``Doctor`` wrote;
* **scalars**: gandoctor's diagnosis of the loop's own ``scalars.csv`` (losses, D(x), D(G(z)),
  gradient norms), what ``gandoctor analyze scalars.csv`` reports;
* **heuristics**: the documents' plain heuristics (``heuristics`` below) on the same scalars.

``--columns`` cuts every scalar log to the columns named (and its step) before both scalar
sources read it: what gandoctor and the heuristics make of a poorer log, e.g. a console log of
losses alone. ``--every N`` keeps only the rows at steps divisible by N, as a script that prints
every N steps writes them (a NaN between two such steps is not in it). The live source is
unchanged. ``--d-every N`` cuts the live logs of the runs that passed D's outputs to D's signals
at steps divisible by N: runs recorded while the Doctor read passed outputs at every step, read
as it has read them since the twenty-seventh detection pass (N = 10, its D probe's interval).

Per mode: precision, recall, F1, healthy runs falsely alarmed, median onset delay (predicted
onset minus the oracle's; negative = earlier). Macro-F1 is the mean F1 over the modes the
scored runs are labelled with.

Grouped evaluation fits the calibratable thresholds (``benchmarks/calibration.toml``, see
``benchmarks/calibrate.py``) on the calibration groups only and scores the held-out group;
``--leave-one-out KEY`` does so for every value of KEY and pools the held-out predictions of all
folds into one table. Runs whose ``oracle.json`` says ``never_calibrate`` (the high-dimensional
mixture) are scored but never calibrated on. The heuristics are never fitted.

Only gandoctor's public API is used: ``read_run``, ``infer_from_log``, ``load_rules``, ``diagnose``,
``rules.with_overrides``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import io
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Mapping

import numpy as np

import gandoctor
from gandoctor import MODES, RuleSet, diagnose, infer_from_log, load_rules, read_run
from gandoctor.probes.discriminator import DOutputsProbe
from gandoctor.signals import SignalLog

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUNS = ROOT / "fixtures" / "corpus"
SOURCES = ("live", "scalars", "heuristics")
Prediction = Mapping[str, int]          # mode -> onset step
LIVE_STEP_OFFSET = 1                    # see Predictor.predict


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    folder: Path
    family: str
    dataset: str
    never_calibrate: bool
    labels: Mapping[str, int | None]    # oracle: mode -> onset step
    steps: int
    first_nonfinite_step: int | None
    passes_d_outputs: bool = False      # the loop passed D's outputs to the Doctor (d_real=, d_fake=)
    # The oracle's share of realistic samples at its median check (None: the oracle did not say).
    # A run the oracle calls healthy only because no failure persisted, while G never made a
    # realistic sample, is scored apart from one whose G learned (see LEARNED_QUALITY).
    median_quality: float | None = None

    def group(self, key: str) -> str:
        if key not in ("family", "dataset"):
            raise ValueError(f"group key must be 'family' or 'dataset', got {key!r}")
        return getattr(self, key)


def load_cases(runs: Path) -> list[Case]:
    """Every run folder under ``runs`` with an oracle.json (sorted by name)."""
    cases = []
    for oracle_path in sorted(runs.glob("*/oracle.json")):
        o = json.loads(oracle_path.read_text())
        cases.append(Case(
            name=o["run"], folder=oracle_path.parent, family=o.get("family", o.get("config", {}).get("arch", "mlp")),
            dataset=o["dataset"], never_calibrate=bool(o.get("never_calibrate", False)),
            labels={m: (v or {}).get("onset_step") for m, v in o["labels"].items()},
            steps=int(o["steps"]), first_nonfinite_step=o.get("first_nonfinite_step"),
            passes_d_outputs=bool(o.get("doctor_given_d_outputs", False)),
            median_quality=_median_quality(o.get("timeline") or [])))
    if not cases:
        raise SystemExit(f"{runs}: no run folders with an oracle.json")
    return cases


#: A healthy run whose G "learned": at least this share of its samples realistic (the oracle's
#: quality) at the oracle's median check. Most short healthy runs of the corpus never get there:
#: their G makes nothing realistic, and the oracle calls them healthy because no failure's
#: condition held at enough checks in a row.
LEARNED_QUALITY = 0.1


def _median_quality(timeline: list[dict]) -> float | None:
    q = [r["quality"] for r in timeline if isinstance(r.get("quality"), (int, float)) and math.isfinite(r["quality"])]
    return float(statistics.median(q)) if q else None


@dataclass
class Logs:
    """What one run's files hold, read once: the Doctor's log, the scalar log, the scalar rows."""

    live: gandoctor.RunData | None
    scalars: gandoctor.RunData | None
    rows: dict[str, np.ndarray] = field(default_factory=dict)


class LogCache:
    """Reads each run's logs once per process (calibration diagnoses the same logs many times)."""

    def __init__(self, columns: tuple[str, ...] | None = None, every: int | None = None, d_every: int | None = None) -> None:
        self._logs: dict[Path, Logs] = {}
        #: scalar logs are cut to these columns (and the step) before they are read; None: all
        self.columns = columns
        #: and to the rows at steps divisible by this; None: every row
        self.every = every
        #: live logs of runs that passed D's outputs: D's signals cut to the steps divisible by this
        self.d_every = d_every
        self._cut_dir: tempfile.TemporaryDirectory | None = None

    def get(self, case: Case) -> Logs:
        if case.folder not in self._logs:
            live = _read(case.folder) if any(case.folder.glob("gandoctor.jsonl*")) else None
            if live is not None and self.d_every is not None and case.passes_d_outputs:
                live = dataclasses.replace(live, signals=_d_signals_every(live.signals, self.d_every))
            scalar_file = _scalar_file(case.folder)
            if scalar_file and (self.columns is not None or self.every is not None):
                scalar_file = self._cut(scalar_file, case.name)
            scalars = _read(scalar_file) if scalar_file else None
            rows = read_scalar_rows(scalar_file) if scalar_file else {}
            self._logs[case.folder] = Logs(live, scalars, rows)
        return self._logs[case.folder]

    def _cut(self, path: Path, name: str) -> Path:
        if self._cut_dir is None:
            self._cut_dir = tempfile.TemporaryDirectory(prefix="gandoctor-columns-")
        return cut_scalar_log(path, self.columns, Path(self._cut_dir.name) / f"{name}.csv", self.every)

    def warm(self, cases: Iterable[Case]) -> None:
        for c in cases:
            self.get(c)


#: What the Doctor records from D's outputs (passed by the loop, or from its own D forward).
D_OUTPUT_SIGNALS = DOutputsProbe.signals


def _d_signals_every(log: SignalLog, every: int) -> SignalLog:
    """The log with D's output signals kept at the steps divisible by ``every`` only: how a run
    recorded with the loop's D outputs read at every step reads where the Doctor reads them every
    ``every`` steps (its D forward's cadence)."""
    out = SignalLog(capacity=log.capacity, max_series=log.max_series)
    for view in log.views():
        keep = view.steps % every == 0 if view.name in D_OUTPUT_SIGNALS else np.ones(view.steps.shape[0], dtype=bool)
        out.extend(view.name, view.steps[keep], view.values[keep])
    return out


def _scalar_file(folder: Path) -> Path | None:
    for name in ("scalars.csv.gz", "scalars.csv"):
        if (folder / name).exists():
            return folder / name
    return None


def _open_text(path: Path) -> IO[str]:
    """A scalar log for reading as text, gzipped or not."""
    return gzip.open(path, "rt", newline="") if path.name.endswith(".gz") else open(path, newline="")


def cut_scalar_log(path: Path, columns: Iterable[str] | None, out: Path, every: int | None = None) -> Path:
    """A copy of the scalar log at ``out`` with only its step and ``columns`` (None: all), and with
    ``every`` only the rows at steps divisible by it, as a user's poorer log would be (a console
    log of the two losses; a script printing every 50 steps)."""
    wanted = None if columns is None else set(columns)
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        keep = [f for f in reader.fieldnames or [] if f == "step" or wanted is None or f in wanted]
        with out.open("w", newline="") as dst:
            writer = csv.writer(dst)
            writer.writerow(keep)
            writer.writerows([row[k] for k in keep] for row in reader if every is None or int(float(row["step"])) % every == 0)
    return out


def parse_columns(text: str | None, cases: Iterable[Case]) -> tuple[str, ...] | None:
    """``--columns`` as a tuple, checked against every run's scalar log: a column no log has is
    a typo that would leave the logs empty, and is refused with the file and what it has."""
    if text is None:
        return None
    columns = tuple(c.strip() for c in text.split(",") if c.strip())
    for case in cases:
        path = _scalar_file(case.folder)
        if path is None:
            continue
        with _open_text(path) as fh:
            header = next(csv.reader(fh), [])
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"--columns: {path} has no column {', '.join(missing)}; it has {', '.join(header)}")
    return columns


def _read(path: Path) -> gandoctor.RunData | None:
    try:
        data = read_run(path)
    except gandoctor.GanDoctorError:
        return None     # an unreadable log predicts nothing (counted as all modes missed)
    # What `gandoctor analyze` adds from the log itself (a critic's negative loss, D's loss units).
    return dataclasses.replace(data, context=data.context.merged(infer_from_log(data.signals, data.context)))


def read_scalar_rows(path: Path) -> dict[str, np.ndarray]:
    with _open_text(path) as fh:
        reader = csv.DictReader(io.StringIO(fh.read()))
        cols: dict[str, list[float]] = {k: [] for k in reader.fieldnames or []}
        for row in reader:
            for k in cols:
                try:
                    cols[k].append(float(row[k]))
                except (TypeError, ValueError):
                    cols[k].append(math.nan)
    return {k: np.asarray(v, dtype=float) for k, v in cols.items()}


# --------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------
def gandoctor_prediction(data: gandoctor.RunData | None, rules: RuleSet) -> dict[str, int]:
    if data is None:
        return {}
    report = diagnose(data.signals, rules, data.context, source=data.source)
    out: dict[str, int] = {}
    for f in report.findings:
        onset = f.onset_step if f.onset_step is not None else 0
        out[f.mode] = min(out.get(f.mode, onset), onset)
    return out


def _persistent_onset(steps: np.ndarray, holds: np.ndarray, min_span: float, share: float = 0.8) -> int | None:
    """Onset of the first stretch of at least ``min_span`` steps in which the condition holds on
    >= ``share`` of the rows, or of a condition that holds from some row to the end of the log
    on >= ``share`` of the rows (a state the run ended in; at least 3 rows)."""
    n = len(steps)
    if n == 0 or not holds.any():
        return None
    csum = np.concatenate([[0], np.cumsum(holds)])
    for i in np.nonzero(holds)[0]:
        j = int(np.searchsorted(steps, steps[i] + min_span, side="left"))
        if j < n and (csum[j + 1] - csum[i]) >= share * (j + 1 - i):
            return int(steps[i])
        if j >= n and n - i >= 3 and (csum[n] - csum[i]) >= share * (n - i):
            return int(steps[i])
    return None


def _rolling_median(x: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(x) == 0:
        return x
    out = np.empty_like(x)
    for i in range(len(x)):
        seg = x[max(0, i - k + 1): i + 1]
        seg = seg[np.isfinite(seg)]
        out[i] = np.median(seg) if seg.size else math.nan
    return out


def heuristics(rows: Mapping[str, np.ndarray]) -> dict[str, int]:
    """The documents' plain heuristics on a scalar log (written once; constants are the documents'
    round numbers, not fitted): D loss near 0 for long / D(x) -> 1 with D(G(z)) -> 0 (D wins), D
    loss high or D(G(z)) near 1 (G wins), G's gradient norm close to zero (vanishing), a gradient
    norm above 100 or any NaN/inf (exploding), D loss low while G loss does not rise (collapse),
    wildly oscillating losses without a trend (non-convergence). A level condition must hold on
    80% of the rows of max(100 steps, 10% of the run), or from some row to the end."""
    if "step" not in rows or len(rows["step"]) == 0:
        return {}
    steps = rows["step"]
    n = len(steps)
    span = max(100.0, 0.1 * (steps[-1] - steps[0]))
    every = max(1.0, float(np.median(np.diff(steps))) if n > 1 else 1.0)
    k = max(1, int(round(50 / every)))          # 50-step rolling median against batch noise
    get = lambda c: rows.get(c, np.full(n, math.nan))  # noqa: E731
    ld, lg, dx, dgz, gd, gg = (get(c) for c in ("loss_D", "loss_G", "D_x", "D_G_z", "grad_norm_D", "grad_norm_G"))
    out: dict[str, int] = {}

    # exploding: first non-finite value, or a gradient-norm spike above 100
    # a column the log does not have is absent, not a non-finite value at every row
    present = [v for c, v in zip(("loss_D", "loss_G", "grad_norm_D", "grad_norm_G"), (ld, lg, gd, gg)) if c in rows]
    bad = ~np.isfinite(np.vstack(present)).all(axis=0) if present else np.zeros(n, bool)
    if bad.any():
        out["exploding_gradients"] = int(steps[np.argmax(bad)])
    big = (np.nan_to_num(gd) > 100) | (np.nan_to_num(gg) > 100)
    if big.any():
        on = int(steps[np.argmax(big)])
        out["exploding_gradients"] = min(out.get("exploding_gradients", on), on)
    ok = ~bad
    md, mg = _rolling_median(ld, k), _rolling_median(lg, k)
    mdx, mdgz = _rolling_median(dx, k), _rolling_median(dgz, k)
    probs = bool(np.nanmin(np.r_[dx, dgz, 0.5]) >= 0 and np.nanmax(np.r_[dx, dgz, 0.5]) <= 1)

    def fire(mode: str, holds: np.ndarray) -> None:
        on = _persistent_onset(steps, holds & ok, span)
        if on is not None:
            out[mode] = on

    critic = bool(np.nanmin(np.r_[ld, 0.0]) < -1e-3)    # a negative D loss: Wasserstein critic
    # D wins: D loss near zero, or D(x) -> 1 while D(G(z)) -> 0
    d_wins = (np.abs(md) < 0.05) if not critic else np.zeros(n, bool)
    if probs:
        d_wins = d_wins | ((mdx > 0.9) & (mdgz < 0.1))
    fire("discriminator_dominance", d_wins)
    # G wins: D(G(z)) near 1, or D's loss high (above chance for BCE: 2 ln 2)
    g_wins = (mdgz > 0.8) if probs else np.zeros(n, bool)
    if not critic:
        g_wins = g_wins | (md > 1.6)
    fire("generator_dominance", g_wins)
    # vanishing: G's gradient norm close to zero (absolute, or 1% of its early value)
    early = gg[np.isfinite(gg)][: max(3, n // 20)]
    ref = float(np.median(early)) if early.size else math.nan
    fire("vanishing_gradients", (gg < 1e-3) | (gg < 0.01 * ref))
    # collapse: D loss suspiciously low while G's loss does not rise
    if not critic:
        g_flat = np.r_[np.zeros(k), mg[k:] - mg[:-k]] <= 0.05 if n > k else np.zeros(n, bool)
        fire("mode_collapse", (md < 0.3) & g_flat)
    # non-convergence: wild oscillation of either loss without a trend, over a sliding window
    w = max(5, int(round(span / every)))
    osc = np.zeros(n, bool)
    if n > w:
        import warnings

        from numpy.lib.stride_tricks import sliding_window_view
        for x in (ld, lg):
            win = sliding_window_view(np.where(np.isfinite(x), x, np.nan), w)[:-1]   # rows i-w .. i-1 for i = w..n-1
            with warnings.catch_warnings():   # all-NaN windows (after a blow-up) are simply not oscillating
                warnings.simplefilter("ignore", RuntimeWarning)
                lo, hi = np.nanpercentile(win, 5, axis=1), np.nanpercentile(win, 95, axis=1)
                scale = np.nanmedian(np.abs(win), axis=1) + 0.1
            rng = hi - lo
            net = np.abs(win[:, -1] - win[:, 0])
            tv = np.nansum(np.abs(np.diff(win, axis=1)), axis=1)
            enough = np.isfinite(win).sum(axis=1) >= 5
            osc[w:] |= enough & (rng > scale) & (net < 0.25 * rng) & (tv > 4 * rng)
    fire("non_convergence", osc)
    return out


@dataclass
class Predictor:
    """Predictions of every source for a set of runs, with the rules given."""

    cache: LogCache
    rules: RuleSet

    def predict(self, case: Case, source: str, rules: RuleSet | None = None) -> dict[str, int]:
        logs = self.cache.get(case)
        if source == "live":
            # The recorders' loops count steps from 1 (scalars.csv, the oracle); the Doctor, called
            # as the Quickstart says (no step=), counts its calls from 0: loop step = Doctor step + 1.
            found = gandoctor_prediction(logs.live, rules or self.rules)
            return {m: s + LIVE_STEP_OFFSET for m, s in found.items()}
        if source == "scalars":
            return gandoctor_prediction(logs.scalars, rules or self.rules)
        if source == "heuristics":
            return heuristics(logs.rows)
        raise ValueError(source)


# --------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------
def score(cases: list[Case], preds: Mapping[str, Prediction], modes: Iterable[str] = MODES) -> dict:
    """Per mode P/R/F1, healthy false alarms and onset delay; macro-F1 over the labelled modes."""
    per_mode = {}
    healthy = [c for c in cases if not c.labels]
    for m in modes:
        tp = [c for c in cases if m in c.labels and m in preds[c.name]]
        fn = [c for c in cases if m in c.labels and m not in preds[c.name]]
        fp = [c for c in cases if m not in c.labels and m in preds[c.name]]
        p = len(tp) / (len(tp) + len(fp)) if tp or fp else math.nan
        r = len(tp) / (len(tp) + len(fn)) if tp or fn else math.nan
        f1 = 2 * len(tp) / (2 * len(tp) + len(fp) + len(fn)) if tp or fp or fn else math.nan
        delays = [preds[c.name][m] - c.labels[m] for c in tp if c.labels[m] is not None]
        per_mode[m] = {
            "labelled": len(tp) + len(fn), "tp": len(tp), "fp": len(fp), "fn": len(fn),
            "precision": p, "recall": r, "f1": f1 if (tp or fn) else (0.0 if fp else math.nan),
            "healthy_false_alarms": sum(1 for c in healthy if m in preds[c.name]),
            "median_delay": float(statistics.median(delays)) if delays else math.nan,
        }
    labelled = [v["f1"] for v in per_mode.values() if v["labelled"] > 0]
    alarmed = sum(1 for c in healthy if preds[c.name])
    learned = [c for c in healthy if c.median_quality is not None and c.median_quality >= LEARNED_QUALITY]
    nonfinite = [c for c in cases if c.first_nonfinite_step is not None]
    at_first = sum(1 for c in nonfinite if preds[c.name].get("exploding_gradients") == c.first_nonfinite_step)
    return {"modes": per_mode, "macro_f1": float(np.mean(labelled)) if labelled else math.nan,
            "runs": len(cases), "healthy": len(healthy), "healthy_alarmed": alarmed,
            "healthy_quality_known": sum(1 for c in healthy if c.median_quality is not None),
            "healthy_learned": len(learned), "healthy_learned_alarmed": sum(1 for c in learned if preds[c.name]),
            "nonfinite_runs": len(nonfinite), "nonfinite_called_at_first_step": at_first}


def _f(x: float, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def render(title: str, scores: Mapping[str, dict]) -> str:
    """One markdown table: the sources side by side."""
    src = [s for s in SOURCES if s in scores]
    head = "| mode | runs | " + " | ".join(f"{s} P | {s} R | {s} F1 | {s} delay" for s in src) + " |"
    lines = [f"**{title}**", "", head, "|" + "---|" * (2 + 4 * len(src))]
    for m in MODES:
        any_s = scores[src[0]]["modes"][m]
        cells = []
        for s in src:
            v = scores[s]["modes"][m]
            d = v["median_delay"]
            cells += [_f(v["precision"]), _f(v["recall"]), _f(v["f1"]), "–" if math.isnan(d) else f"{d:+.0f}"]
        lines.append(f"| {m} | {any_s['labelled']} | " + " | ".join(cells) + " |")
    cells = [c for s in src for c in ("", "", f"**{_f(scores[s]['macro_f1'])}**", "")]
    lines.append("| **macro-F1** | | " + " | ".join(cells) + " |")
    lines.append("")
    s0 = scores[src[0]]
    learned_note = "" if not s0.get("healthy_quality_known") else (
        f" (of the {s0['healthy_learned']} whose G learned, the oracle's median quality {LEARNED_QUALITY} or more: "
        + ", ".join(f"{s} {scores[s]['healthy_learned_alarmed']}" for s in src) + ")")
    lines.append(f"{s0['runs']} runs. Healthy runs falsely alarmed: " + ", ".join(
        f"{s} {scores[s]['healthy_alarmed']}/{scores[s]['healthy']}" for s in src) + learned_note + ". Runs ending in or passing "
        "through non-finite values called exploding at the first non-finite step: " + ", ".join(
        f"{s} {scores[s]['nonfinite_called_at_first_step']}/{scores[s]['nonfinite_runs']}" for s in src) + ".")
    return "\n".join(lines)


def render_runs(cases: list[Case], preds: Mapping[str, Mapping[str, Prediction]]) -> str:
    lines = ["| run | oracle (onset) | live | scalars | heuristics |", "|---|---|---|---|---|"]
    fmt = lambda d: ", ".join(f"{m} ({o})" for m, o in sorted(d.items())) or "healthy"  # noqa: E731
    for c in cases:
        lines.append(f"| {c.name} | {fmt(c.labels)} | " + " | ".join(fmt(preds[s][c.name]) for s in SOURCES) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Evaluations
# --------------------------------------------------------------------------
def evaluate_plain(cases: list[Case], predictor: Predictor) -> dict[str, dict[str, Prediction]]:
    return {s: {c.name: predictor.predict(c, s) for c in cases} for s in SOURCES}


def evaluate_fold(cases: list[Case], predictor: Predictor, key: str, value: str, spec: list, rule_cache) -> tuple[dict, dict]:
    """Fit on the runs outside the group (never on never_calibrate runs), predict the group's runs."""
    import calibrate  # benchmarks/calibrate.py (same folder)
    held = [c for c in cases if c.group(key) == value]
    cal = [c for c in cases if c.group(key) != value and not c.never_calibrate]
    t0 = time.time()
    fit = calibrate.fit(cal, predictor, spec, cache=rule_cache)
    rules = calibrate.apply(predictor.rules, fit.overrides)
    preds = {s: {c.name: predictor.predict(c, s, rules) for c in held} for s in SOURCES}
    info = {"held_out": f"{key}={value}", "held_out_runs": len(held), "calibration_runs": len(cal),
            "overrides": fit.overrides, "notes": list(fit.notes), "seconds": round(time.time() - t0, 1)}
    return preds, info


def evaluate_grouped(cases: list[Case], predictor: Predictor, key: str, values: list[str], spec_path: Path,
                     log: Callable[[str], None] = lambda s: None, rule_cache=None) -> tuple[dict[str, dict[str, Prediction]], list[dict]]:
    """For each held-out value: fit on the other groups, predict the held-out runs with the fitted
    rules. Returns the pooled held-out predictions and the folds (one process)."""
    import calibrate
    spec = calibrate.load_spec(spec_path)
    rule_cache = rule_cache or calibrate.RuleCache(predictor)
    pooled: dict[str, dict[str, Prediction]] = {s: {} for s in SOURCES}
    folds = []
    for value in values:
        preds, info = evaluate_fold(cases, predictor, key, value, spec, rule_cache)
        for s in SOURCES:
            pooled[s].update(preds[s])
        folds.append(info)
        log(f"fold {key}={value}: {info['held_out_runs']} held out, {info['calibration_runs']} calibration runs, {info['seconds']:.0f}s")
    return pooled, folds


# Worker processes (--jobs): each reads the corpus and keeps its own log and rule caches, so a
# worker that gets several folds reuses what it evaluated for the earlier ones.
_WORKER: dict = {}


def _worker_init(runs: str, spec_path: str, columns: tuple[str, ...] | None = None, every: int | None = None,
                 d_every: int | None = None) -> None:
    # An exception raised here would make multiprocessing start a new worker forever (the pool
    # hangs, silent): it is kept and raised by the first task instead, and reaches the caller.
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import calibrate
        predictor = Predictor(LogCache(columns, every, d_every), load_rules())
        _WORKER.update(cases=load_cases(Path(runs)), predictor=predictor, rule_cache=calibrate.RuleCache(predictor),
                       spec=calibrate.load_spec(Path(spec_path)))
    except Exception as exc:
        _WORKER["error"] = exc


def _worker_task(task: tuple) -> tuple:
    w = _WORKER
    if "error" in w:
        raise w["error"]
    if task[0] == "plain":
        names = set(task[1])
        return ("plain", evaluate_plain([c for c in w["cases"] if c.name in names], w["predictor"]))
    _, key, value = task
    preds, info = evaluate_fold(w["cases"], w["predictor"], key, value, w["spec"], w["rule_cache"])
    return ("fold", key, preds, info)


def run_tasks(runs: Path, spec_path: Path, cases: list[Case], plain: bool, keys: list[tuple[str, list[str]]], jobs: int,
              log: Callable[[str], None], columns: tuple[str, ...] | None = None, every: int | None = None,
              d_every: int | None = None) -> tuple[dict | None, dict[str, tuple[dict, list[dict]]]]:
    """The plain predictions (in chunks) and every fold of every key, on ``jobs`` processes."""
    tasks: list[tuple] = [("fold", key, v) for key, values in keys for v in values]
    # the largest held-out groups have the smallest calibration sets: start the small groups' folds first
    tasks.sort(key=lambda t: sum(c.group(t[1]) == t[2] for c in cases))
    if plain:
        names = [c.name for c in cases]
        step = max(1, len(names) // (4 * max(1, jobs)))
        tasks += [("plain", names[i:i + step]) for i in range(0, len(names), step)]
    plain_preds: dict | None = {s: {} for s in SOURCES} if plain else None
    grouped: dict[str, tuple[dict, list[dict]]] = {k: ({s: {} for s in SOURCES}, []) for k, _ in keys}

    def take(res: tuple) -> None:
        if res[0] == "plain":
            for s in SOURCES:
                plain_preds[s].update(res[1][s])  # type: ignore[index]
        else:
            _, key, preds, info = res
            for s in SOURCES:
                grouped[key][0][s].update(preds[s])
            grouped[key][1].append(info)
            log(f"fold {info['held_out']}: {info['held_out_runs']} held out, {info['calibration_runs']} calibration runs, "
                f"{info['seconds']:.0f}s")

    if jobs <= 1:
        _worker_init(str(runs), str(spec_path), columns, every, d_every)
        for t in tasks:
            take(_worker_task(t))
    else:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(jobs, initializer=_worker_init, initargs=(str(runs), str(spec_path), columns, every, d_every)) as pool:
            for res in pool.imap_unordered(_worker_task, tasks):
                take(res)
    for key, values in keys:   # folds in group order, whatever order they finished in
        order = {f"{key}={v}": i for i, v in enumerate(values)}
        grouped[key][1].sort(key=lambda f: order[f["held_out"]])
    return plain_preds, grouped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=str(DEFAULT_RUNS), help="corpus folder (run folders with oracle.json)")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--holdout", metavar="KEY=VALUE", help="calibrate on the other groups, score this one (KEY: family|dataset)")
    g.add_argument("--leave-one-out", metavar="KEY[,KEY]", help="every value of KEY (family, dataset) held out in turn")
    parser.add_argument("--all", action="store_true",
                        help="the plain table and leave-one-family-out and leave-one-dataset-out")
    parser.add_argument("--spec", default=str(Path(__file__).resolve().parent / "calibration.toml"), help="calibratable parameters")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (folds and chunks of runs in parallel)")
    parser.add_argument("--json", metavar="PATH", help="also write the scores (and per-run predictions) as JSON")
    parser.add_argument("--per-run", action="store_true", help="also print the per-run table (plain evaluation)")
    parser.add_argument("--columns", metavar="COL[,COL]",
                        help="cut every scalar log to these columns (and its step) first, e.g. loss_D,loss_G for a log of losses alone")
    parser.add_argument("--every", type=int, metavar="N",
                        help="keep only the scalar rows at steps divisible by N, as a script printing every N steps writes them")
    parser.add_argument("--d-every", type=int, metavar="N",
                        help="in the live logs of runs that passed D's outputs, keep D's signals at steps divisible by N only "
                             "(runs recorded when the Doctor read passed outputs at every step, read as it reads them now: N = 10)")
    args = parser.parse_args(argv)
    if args.every is not None and args.every < 1:
        parser.error(f"--every expects a positive number of steps, got {args.every}")
    if args.d_every is not None and args.d_every < 1:
        parser.error(f"--d-every expects a positive number of steps, got {args.d_every}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    t0 = time.time()
    runs = Path(args.runs)
    cases = load_cases(runs)
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    keys: list[str] = []
    if args.leave_one_out:
        keys = [k for k in args.leave_one_out.split(",") if k]
        bad = [k for k in keys if k not in ("family", "dataset")]
        if bad:
            parser.error(f"--leave-one-out expects family and/or dataset, got {', '.join(bad)}")
    if args.all:
        keys = ["family", "dataset"]
    plain = args.all or not (args.holdout or keys)
    grouped_keys: list[tuple[str, list[str]]] = [(k, sorted({c.group(k) for c in cases})) for k in keys]
    if args.holdout:
        key, _, value = args.holdout.partition("=")
        if key not in ("family", "dataset") or not value:
            parser.error(f"--holdout expects family=NAME or dataset=NAME, got {args.holdout!r}")
        if not any(c.group(key) == value for c in cases):
            parser.error(f"--holdout {args.holdout}: no run has {key} {value!r}; known: "
                         f"{', '.join(sorted({c.group(key) for c in cases}))}")
        grouped_keys = [(key, [value])]
    say(f"{len(cases)} runs; {'plain + ' if plain else ''}{sum(len(v) for _, v in grouped_keys)} folds on {args.jobs} process(es)")
    try:
        columns = parse_columns(args.columns, cases)
    except ValueError as exc:
        parser.error(str(exc))
    if columns is not None:
        print(f"Scalar logs cut to the columns {', '.join(columns)} (and the step); the live source unchanged.\n")
    if args.every is not None:
        print(f"Scalar logs cut to the rows at steps divisible by {args.every}; the live source unchanged.\n")
    if args.d_every is not None:
        print(f"Live logs of the runs that passed D's outputs: D's signals at steps divisible by {args.d_every} only.\n")
    plain_preds, grouped = run_tasks(runs, Path(args.spec), cases, plain, grouped_keys, args.jobs, say, columns, args.every, args.d_every)

    blocks: list[tuple[str, str | None, list[str], dict, list[dict]]] = []
    if plain_preds is not None:
        blocks.append(("All runs, rules as shipped (no calibration)", None, [], plain_preds, []))
    for key, values in grouped_keys:
        title = (f"Held out {key}={values[0]} (thresholds fitted on the other groups)" if args.holdout else
                 f"Leave-one-{key}-out: held-out predictions of {len(values)} folds pooled "
                 f"(thresholds fitted on the other {key} groups each time)")
        blocks.append((title, key, values, *grouped[key]))
    out: dict = {"runs_dir": str(args.runs), "runs": len(cases), "columns": list(columns) if columns else None,
                 "every": args.every, "d_every": args.d_every, "tables": []}
    for title, key, values, preds, folds in blocks:
        scored = [c for c in cases if c.name in preds["live"]]
        scores = {s: score(scored, preds[s]) for s in SOURCES}
        print(render(title, scores))
        print()
        if folds:
            print("| held out | runs | calibration runs | fitted overrides |")
            print("|---|---|---|---|")
            for f in folds:
                ov = "; ".join(f"{code}.{k}={v:g}" for code, p in sorted(f["overrides"].items()) for k, v in sorted(p.items()))
                print(f"| {f['held_out']} | {f['held_out_runs']} | {f['calibration_runs']} | {ov or '(rules as shipped)'} |")
            for n in sorted({n for f in folds for n in f["notes"]}):
                print(f"\nnote: {n}")
            print()
        if args.per_run and key is None:
            print(render_runs(scored, preds))
            print()
        out["tables"].append({"title": title, "group_key": key, "held_out": values, "scores": scores, "folds": folds,
                              "predictions": {s: {k: dict(v) for k, v in preds[s].items()} for s in SOURCES}})
    out["oracle"] = {c.name: dict(c.labels) for c in cases}
    out["groups"] = {c.name: {"family": c.family, "dataset": c.dataset, "never_calibrate": c.never_calibrate} for c in cases}
    if args.json:
        Path(args.json).write_text(json.dumps(_no_nan(out), indent=1) + "\n")
    say(f"done in {time.time() - t0:.1f}s")
    return 0


def _no_nan(x):
    """NaN (an undefined precision, no delay) as null: JSON has no NaN."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _no_nan(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_no_nan(v) for v in x]
    return x


if __name__ == "__main__":
    sys.exit(main())
