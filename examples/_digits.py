"""Shared by the example scripts: sklearn's 8x8 digits as a stand-in for MNIST (no download), and
an oracle that says what G really produces without gandoctor.

The oracle is a logistic regression trained on the real 8x8 digits (93% 3-fold accuracy).
G's samples are downsampled back to 8x8 and classified: which digit classes G produces and how
confidently. "collapse" = G's samples fall into 3 classes or fewer (a class counts when it holds
at least 5% of the samples) or one class holds more than half of them.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

CLASS_SHARE = 0.05  # a class "is produced" when it holds at least this share of the samples
NOT_DIGITS = 0.25  # below this share of realistic samples G does not draw digits (yet)


def parse_args(variants: tuple[str, ...], default_steps: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=default_steps, help="training iterations (batches)")
    parser.add_argument("--out", default="runs/example", help="run directory (gandoctor log, oracle summary)")
    parser.add_argument("--variant", default="healthy", choices=variants)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--oracle-every", type=int, default=0, help="oracle checks during training (0 = steps // 10)")
    return parser.parse_args()


def digits_loader(img_size: int, batch_size: int, seed: int) -> DataLoader:
    """The 1797 digits upsampled to img_size, scaled to [-1, 1] like transforms.Normalize([0.5], [0.5])."""
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 16.0
    if img_size != 8:
        x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.tensor(load_digits().target)
    return DataLoader(TensorDataset(x * 2 - 1, y), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0.0)


@dataclass(frozen=True)
class Verdict:
    step: int
    collapse: bool
    finite: bool
    classes: int  # classes holding >= CLASS_SHARE of the samples
    top_share: float
    confidence: float  # mean max class probability (a grey blob still scores ~0.6: read `realistic` too)
    realistic: float  # share of samples as close to a real digit as real digits are to each other (95th pct)
    counts: list[int]

    def line(self) -> str:
        if not self.finite:
            return f"oracle @ {self.step}: NON-FINITE samples"
        state = ("COLLAPSE" if self.collapse else "diverse") + ("" if self.realistic >= NOT_DIGITS else " (not digit-like)")
        return (f"oracle @ {self.step}: {state}: {self.classes} classes >= {CLASS_SHARE:.0%}, top class {self.top_share:.0%}, "
                f"confidence {self.confidence:.2f}, realistic {self.realistic:.0%}, counts {self.counts}")


class Oracle:
    def __init__(self) -> None:
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression

        digits = load_digits()
        self.real = digits.data / 16.0
        self.model = LogisticRegression(max_iter=2000).fit(self.real, digits.target)
        d = _sq_dist(self.real, self.real)
        np.fill_diagonal(d, np.inf)
        self.nn_radius = float(np.quantile(np.sqrt(d.min(1)), 0.95))
        self.history: list[Verdict] = []

    def judge(self, fakes: torch.Tensor, step: int) -> Verdict:
        x = fakes.detach().float().reshape(len(fakes), 1, *fakes.shape[-2:]) if fakes.dim() != 4 else fakes.detach().float()
        if not torch.isfinite(x).all():
            v = Verdict(step, False, False, 0, 0.0, 0.0, 0.0, [0] * 10)
        else:
            x = F.adaptive_avg_pool2d(x[:, :1], 8) if x.shape[-1] != 8 else x[:, :1]
            flat = ((x.reshape(len(x), 64).numpy() + 1) / 2).clip(0, 1)
            probs = self.model.predict_proba(flat)
            nearest = np.sqrt(_sq_dist(flat, self.real).min(1))
            realistic = float((nearest <= self.nn_radius).mean())
            counts = np.bincount(probs.argmax(1), minlength=10)
            share = counts / counts.sum()
            classes = int((share >= CLASS_SHARE).sum())
            v = Verdict(step, bool(classes <= 3 or share.max() > 0.5), True, classes, float(share.max()), float(probs.max(1).mean()), realistic, counts.tolist())
        self.history.append(v)
        return v

    def sample(self, generator: Callable[[torch.Tensor], torch.Tensor], latent: Callable[[int, torch.Generator], torch.Tensor], step: int, n: int = 1000) -> Verdict:
        """G on n fresh codes from a private RNG (training's RNG stream is not touched)."""
        gen = torch.Generator().manual_seed(12345)
        with torch.no_grad():
            return self.judge(generator(latent(n, gen)), step)

    def sample_last(self, generator: Callable[[torch.Tensor], torch.Tensor], latent: Callable[[int, torch.Generator], torch.Tensor], step: int) -> None:
        """Judge the run's last step too, unless the last check already was at it."""
        if not self.history or self.history[-1].step != step:
            self.sample(generator, latent, step)

    def onset(self) -> int | None:
        """First check from which the run stays collapsed (or non-finite) to the end."""
        bad = [not v.finite or v.collapse for v in self.history]
        if not bad or not bad[-1]:
            return None
        i = len(bad) - 1
        while i > 0 and bad[i - 1]:
            i -= 1
        return self.history[i].step


def summarise(out: str, variant: str, oracle: Oracle, report: Any, stopped_at: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Print the oracle next to gandoctor's report and save both to OUT/summary.json."""
    final = oracle.history[-1] if oracle.history else None
    findings = [
        {"mode": f.mode.value if hasattr(f.mode, "value") else str(f.mode), "rule": f.rule, "onset": f.onset_step, "confidence": round(f.confidence, 2),
         "evidence": {k: round(v, 4) if isinstance(v, float) else v for k, v in dict(f.evidence).items()}}
        for f in report.findings
    ]
    summary = {
        "variant": variant,
        "stopped_at": stopped_at,
        "oracle": asdict(final) if final else None,
        "oracle_onset": oracle.onset(),
        "oracle_history": [v.line() for v in oracle.history],
        "doctor_verdict": report.verdict,
        "doctor_findings": findings,
        "doctor_status": {s.mode.value if hasattr(s.mode, "value") else str(s.mode): s.state.value for s in report.mode_status},
        "doctor_warnings": list(report.warnings),
        **(extra or {}),
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    Path(out, "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print("=" * 30, "oracle (no gandoctor)", "=" * 30)
    for line in summary["oracle_history"]:
        print(line)
    print("oracle collapse onset:", summary["oracle_onset"])
    print("=" * 30, "gandoctor", "=" * 30)
    print("verdict:", report.verdict, "| findings:", [(f["mode"], f["rule"], f["onset"]) for f in findings])
    return summary


def finite(x: float) -> bool:
    return math.isfinite(x)
