"""What a live diagnosis costs the training loop, as the recorded log grows (gandoctor.live).

The demo's healthy recipe (MLP GAN on a ring of 8 Gaussians, CPU, one thread) trains for
``--steps`` steps with a Doctor whose live diagnosis runs every ``--every`` steps (an AlertSink
notes the steps where it ran). The time of every ``doctor.step()`` call is taken; a step that ran
a diagnosis costs the diagnosis more than the median step around it, which is what is reported,
per check, with the log length it diagnosed. The diagnosis is host work over the Doctor's bounded
SignalLog (up to ``capacity`` points per signal), so it does not depend on the model's size or device.

    python benchmarks/live.py [--steps 5000] [--every 500] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch
from torch import nn

import gandoctor
from gandoctor.demo import RECIPES, mlp, ring_of_gaussians
from gandoctor.findings import Finding
from gandoctor.report import Report


class Steps:
    """An AlertSink that notes where the live checks ran."""

    def __init__(self) -> None:
        self.checked: list[int] = []

    def on_finding(self, finding: Finding, step: int) -> None:
        pass

    def on_check(self, report: Report, step: int) -> None:
        self.checked.append(step)


def run(steps: int, every: int, log_dir: str) -> list[dict[str, float]]:
    torch.manual_seed(0)
    recipe = RECIPES["healthy"]
    data = torch.Generator().manual_seed(1)
    G, D = mlp(recipe.z_dim, 2, recipe.hidden), mlp(2, 1, recipe.hidden)
    opt_g = torch.optim.Adam(G.parameters(), lr=recipe.lr_g, betas=recipe.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=recipe.lr_d, betas=recipe.betas)
    bce = nn.BCEWithLogitsLoss()
    sink = Steps()
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=log_dir, d_output="logit", alerts=[sink], live_every=every)
    ones, zeros = torch.ones(128, 1), torch.zeros(128, 1)
    took: list[float] = []
    for _ in range(steps):
        real = ring_of_gaussians(128, data)
        fake = G(torch.randn(128, recipe.z_dim))
        d_real, d_fake = D(real), D(fake.detach())
        d_loss = bce(d_real, ones) + bce(d_fake, zeros)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = bce(D(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        t0 = time.perf_counter()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake, d_real=d_real, d_fake=d_fake)
        took.append(time.perf_counter() - t0)
    doctor.close()
    rows = []
    for step in sink.checked:
        around = took[max(0, step - 50) : step] + took[step + 1 : step + 51]
        rows.append({"steps_logged": step + 1, "check_s": took[step] - statistics.median(around)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args.steps, args.every, tmp)
    print(f"live diagnosis every {args.every} steps ({platform.processor() or platform.machine()}, torch {torch.__version__})")
    print(f"{'steps logged':>13}  {'check (s)':>9}")
    for row in rows:
        print(f"{row['steps_logged']:>13}  {row['check_s']:>9.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"every": args.every, "checks": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
