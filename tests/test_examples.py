"""The example scripts (public GAN scripts wrapped as the README Quickstart says) run with the
doctor attached and leave a run log that gandoctor reads, and console output its console reader
parses. Short runs (most of the time is importing torch and sklearn); what the doctor finds on
full-length runs, next to an oracle, is in examples/README.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gandoctor

pytest.importorskip("sklearn", reason="the examples train on sklearn's digits")

ROOT = Path(__file__).resolve().parents[1]
STEPS = 30
VARIANTS = ("healthy", "collapse")


def start_example(script: str, variant: str, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "examples" / script), "--steps", str(STEPS), "--out", str(out),
               "--variant", variant, "--oracle-every", "1000"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture(scope="module")
def mlp_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Both variants at once: two processes, so the test costs about one import of torch and sklearn."""
    root = tmp_path_factory.mktemp("examples")
    running = {v: start_example("pytorch_gan_mlp.py", v, root / v) for v in VARIANTS}
    done = {}
    for variant, proc in running.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
        done[variant] = (root / variant, stdout)
    return done


@pytest.mark.parametrize("variant", VARIANTS)
def test_mlp_example_runs_with_the_doctor_and_leaves_a_readable_log(mlp_runs, tmp_path, variant):
    out, stdout = mlp_runs[variant]

    run = gandoctor.read_run(out)
    losses = run.signals.get("loss.d")
    assert losses is not None and len(losses.steps) == STEPS
    assert run.signals.get("grad_norm.g") is not None and run.signals.get("d.auc") is not None
    assert run.context.values.get("latent_dim") == (100 if variant == "healthy" else 2)  # found from G's first layer
    summary = json.loads((out / "summary.json").read_text())
    assert summary["variant"] == variant and summary["oracle"]["finite"]
    assert summary["doctor_verdict"] in ("healthy", "unhealthy", "unknown") and not summary["doctor_warnings"]

    console = tmp_path / "train.log"
    console.write_text(stdout)  # as `python pytorch_gan_mlp.py | tee train.log` saves it, the report included
    printed = gandoctor.read_run(console, format="console")
    assert printed.signals.get("loss.d").steps.tolist() == list(range(STEPS))


def test_the_conditional_example_gets_its_z_width_found_and_keeps_every_probe(tmp_path):
    # PyTorch-GAN's cgan.py layout: G's label embedding registered before a first Linear that reads
    # the embedding and z concatenated (110 wide for a 100-wide z); nothing passes latent_dim.
    out = tmp_path / "cgan"
    proc = start_example("cgan.py", "healthy", out)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    run = gandoctor.read_run(out)
    assert run.context.values.get("latent_dim") == 100
    assert run.signals.get("d.auc") is not None and run.signals.get("loss.g") is not None
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["doctor_warnings"]  # no probe switched itself off
