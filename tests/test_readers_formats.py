"""One run, logged in every format a user may have, gives the same findings.

Recorded fixture runs are written out as TensorBoard events (SummaryWriter), CSV (csv module),
JSON Lines, a W&B history export and console lines in the DCGAN example's format; each is
analysed and must agree with the others on the modes and rules, for the signals logged."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gandoctor.diagnose import analyze
from gandoctor.readers import read_run

RUNS = Path(__file__).resolve().parent.parent / "fixtures" / "runs"
# The signals a user's script typically logs, under the names such scripts use.
EXPORT = {"loss.d": ("Loss_D", "errD", "loss/D"), "loss.g": ("Loss_G", "errG", "loss/G"), "grad_norm.d": ("grad_norm_D", "grad_norm_D", "grad_norm/D"),
          "grad_norm.g": ("grad_norm_G", "grad_norm_G", "grad_norm/G")}
PER_EPOCH = 100


def _series(run: str) -> tuple[list[int], dict[str, list[float]]]:
    data = read_run(RUNS / run)
    views = {s: data.signals.get(s) for s in EXPORT}
    steps = views["loss.d"].steps.tolist()
    for v in views.values():
        assert v.steps.tolist() == steps and set(v.counts.tolist()) == {1}
    # Six significant digits everywhere: what a console print keeps.
    return steps, {s: [float(f"{x:.6g}") for x in v.values.tolist()] for s, v in views.items()}


def write_all(run: str, folder: Path) -> dict[str, Path]:
    steps, values = _series(run)
    rows = list(zip(steps, *values.values()))
    out: dict[str, Path] = {}
    out["csv"] = folder / "losses.csv"
    with out["csv"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step"] + [names[0] for names in EXPORT.values()])
        w.writerows(rows)
    out["csv-epochs"] = folder / "epochs.csv"
    with out["csv-epochs"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "iter"] + [names[1] for names in EXPORT.values()])
        w.writerows([(r[0] // PER_EPOCH, r[0] % PER_EPOCH, *r[1:]) for r in rows])
    out["jsonl"] = folder / "metrics.jsonl"
    out["jsonl"].write_text("".join(json.dumps({"step": r[0], **{n[0]: v for n, v in zip(EXPORT.values(), r[1:])}}) + "\n" for r in rows))
    out["wandb"] = folder / "history.csv"
    with out["wandb"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["_step", "_runtime"] + [f"train/{names[0]}" for names in EXPORT.values()])
        w.writerows([(r[0], r[0] * 0.1, *r[1:]) for r in rows])
    out["console"] = folder / "train.log"
    epochs = steps[-1] // PER_EPOCH + 1
    out["console"].write_text("".join(
        "[%d/%d][%d/%d]\tLoss_D: %s\tLoss_G: %s\tgrad_norm_D: %s\tgrad_norm_G: %s\n"
        % (r[0] // PER_EPOCH, epochs, r[0] % PER_EPOCH, PER_EPOCH, *(f"{v:.6g}" for v in r[1:]))
        for r in rows
    ))
    SummaryWriter = pytest.importorskip("torch.utils.tensorboard").SummaryWriter

    writer = SummaryWriter(str(folder / "tb"))
    for r in rows:
        for names, v in zip(EXPORT.values(), r[1:]):
            writer.add_scalar(names[2], v, r[0])
    writer.close()
    out["tensorboard"] = folder / "tb"
    return out


@pytest.mark.parametrize("run", ["ddom_digits_s0", "explode_digits_wgan_adam_s0", "vanish_digits_sat_s0", "healthy_digits_mlp_s0"])
def test_the_same_run_in_every_format_gives_the_same_findings(tmp_path, run):
    paths = write_all(run, tmp_path)
    reports = {fmt: analyze(path) for fmt, path in paths.items()}
    formats = {fmt: read_run(path).format for fmt, path in paths.items()}
    assert formats == {"csv": "csv", "csv-epochs": "csv", "jsonl": "jsonl", "wandb": "wandb", "console": "console", "tensorboard": "tensorboard"}
    expected = reports["csv"]
    for fmt, report in reports.items():
        assert (report.first_step, report.last_step) == (expected.first_step, expected.last_step), fmt
        assert report.modes == expected.modes, fmt
        assert sorted(f.rule for f in report.findings) == sorted(f.rule for f in expected.findings), fmt
        assert report.signals == expected.signals, fmt
    if not run.startswith("healthy"):
        assert expected.findings, "an unhealthy run should be flagged from its losses and gradient norms"
