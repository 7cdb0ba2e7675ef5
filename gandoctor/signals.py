"""The signal log: named series of (step, value) with bounded memory. No torch here.

Every series keeps fewer than ``capacity`` points plus the bucket being filled. When it is
full, neighbouring points are merged pairwise (mean of the finite values, counts of samples and
of non-finite samples kept) and later samples are gathered in buckets twice as large, so a run
of millions of steps keeps its whole history at one coarser, uniform resolution while memory
stays flat. A point therefore stands for ``count`` raw samples, ``nonfinite`` of which were
NaN or inf.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from .errors import SignalError

#: The documented signal vocabulary. Readers map foreign names onto these; probes write them.
#: Per-layer series are written as ``grad_norm.d.layer.<module>`` / ``grad_norm.g.layer.<module>``
#: and ``spectrum.d.layer.<module>`` (that layer's normalised stable rank).
SIGNALS: Mapping[str, str] = {
    "loss.d": "discriminator / critic loss, as passed to Doctor.step",
    "loss.g": "generator loss, as passed to Doctor.step",
    "loss.d_real": "D's loss on the real batch, where a log splits D's loss (its sum with loss.d_fake stands for loss.d when the log has no total)",
    "loss.d_fake": "D's loss on the fake batch, where a log splits D's loss",
    "d_out.real": "mean raw D output on the real batch (logit, probability or critic score)",
    "d_out.fake": "mean raw D output on the fake batch",
    "d_prob.real": "mean D(x) as a probability (sigmoid of logits); absent for critics",
    "d_prob.fake": "mean D(G(z)) as a probability; absent for critics",
    "d.auc": "P(D(real) > D(fake)) over the batch pairs: 1 = D separates perfectly, 0.5 = cannot tell, <0.5 = fooled",
    "d.constant": "1 where D gave every real and fake sample of the batch the same output (a dead D: its d.auc of 0.5 is ties), else 0",
    "d.acc": "balanced accuracy of D's outputs (threshold 0 for logits, 0.5 for probabilities and least squares towards 1/0, midpoint of the real and fake means for critics)",
    "d_sign.real": "mean sign of D's raw outputs on the reals, as a log gives it (StyleGAN2-ADA's Loss/signs/real): twice the share scored real, less 1; logs only, read into d.acc",
    "d_sign.fake": "mean sign of D's raw outputs on the fakes, as a log gives it (StyleGAN2-ADA's Loss/signs/fake); logs only",
    "penalty.d": "D's gradient-penalty term, as a log gives it (StyleGAN2-ADA's Loss/r1_penalty, a gradient_penalty column); logs only: marks the run as using one",
    "grad_norm.d": "global L2 norm of D's gradients at its optimizer step (mean over D steps since the last doctor step)",
    "grad_norm.g": "global L2 norm of G's gradients at its optimizer step",
    "grad_nonfinite.d": "number of D parameter tensors whose gradient held NaN/inf (on the per-layer schedule)",
    "grad_nonfinite.g": "number of G parameter tensors whose gradient held NaN/inf (on the per-layer schedule)",
    "opt_steps.d": "D optimizer steps since the last doctor step",
    "opt_steps.g": "G optimizer steps since the last doctor step",
    "weight_norm.d": "global L2 norm of D's weights",
    "weight_norm.g": "global L2 norm of G's weights",
    "weight_growth.d": "log10 of D's weight norm over its norm when the Doctor was made (before training's first update)",
    "weight_growth.g": "log10 of G's weight norm over its norm when the Doctor was made",
    "sigma_max.d": "largest singular value over D's weight matrices (power iteration, raw weights)",
    "opt.lr_d": "learning rate of the parameter group that trains D, as the optimizer holds it (a schedule moves it)",
    "opt.lr_g": "learning rate of the parameter group that trains G",
    "spectrum.d.stable_rank": "mean over D's matrices of the stable rank (sum s^2 / s_max^2) divided by the matrix rank: 1 flat spectrum, near 0 one direction",
    "spectrum.d.effective_rank": "mean over D's matrices of the effective rank (exp entropy of s / sum s, Roy & Vetterli 2007) divided by the matrix rank",
    "feat.diversity_ratio": "mean pairwise distance among fake features / the same among real features",
    "feat.coverage": "coverage (Naeem et al. 2020): share of real samples whose k-NN ball holds a fake",
    "feat.coverage_ratio": "feat.coverage divided by the coverage of a second real set at the same size",
    "feat.precision": "improved precision (Kynkaanniemi et al. 2019): share of fakes inside the real k-NN manifold",
    "feat.precision_null": "precision of a Gaussian with the reals' mean and covariance (a blur of the data): near 0 where precision can tell realistic samples from a blur of the data, high where it cannot (pixel-like image features)",
    "feat.blur_apart": "1-nearest-neighbour two-sample statistic between the reals and that blur: about 0.5 when a blur is as good as the data (Gaussian-like data), towards 1 when it is plainly not the data",
    "feat.dup_rate": "share of fakes whose nearest other fake is closer than a tenth of the typical real neighbour distance",
    "feat.fake_shift": "distance moved by the fake feature centroid since the last measurement, in units of real spread",
    "feat.density": "density (Naeem et al. 2020): ~1 when fakes follow the real data, 0 off its support",
    "feat.recall": "improved recall (Kynkaanniemi et al. 2019): share of reals inside the fake k-NN manifold",
    "feat.vendi_ratio": "Vendi score (Friedman & Dieng 2023) of the fakes over that of the reals: effective number of distinct samples",
    "feat.ndb_frac": "share of NDB bins (Richardson & Weiss 2018; k-means on real features) whose fake share differs at the 5% level (Schedule.ndb_every)",
    "feat.fid": "FID (torch-fidelity's code) between real and fake features of the doctor's extractor (Schedule.fidelity_every)",
    "feat.kid": "KID mean (torch-fidelity's code) on the same features",
    "feat.occupancy_ratio": "share of k-means cells (k=16, fitted once on real features) holding a fake / the same for a second real set of the same size",
    "feat.bin_tv": "TV distance between the fakes' and the reals' k-means cell histograms minus the real-vs-real TV at the same size: 0 as good as real",
    "latent.drift": "median distance G's outputs for a fixed batch of latent codes moved since the previous check / median nearest-neighbour distance among as many real samples (sample features)",
    "latent.eval_diversity_ratio": "mean pairwise distance of G's outputs for the fixed latent codes in eval mode (BatchNorm on its running statistics) / that of real samples (sample features); only for a G with BatchNorm",
    "latent.cell_churn": "share of the k-means cells G's outputs for the fixed latent codes held at the previous check that they hold none of now: 0 keeps its modes, 1 hopped to others",
    "feat.nonfinite": "1 at a sample-statistics check whose real or fake features held NaN/inf (nothing else is computed then)",
    "feat.bin_churn": "share of the k-means cells G's previous fakes held that the new fakes no longer hold, minus the real-vs-real share: 0 keeps its modes, 0.5 let half go",
    "feat.turnover": "1 - coverage of the previous fake set by the new one, relative to real-vs-real coverage: 0 stayed put, 1 moved away entirely",
}

#: The k-means cells' signals wait for their reservoir of reals, taken at every step until full.
_CELLS_FITTED = (
    "recorded once 512 real samples are kept (up to Schedule.feature_batch of each step's real batch: with a batch "
    "of 8, 64 steps), on which its k-means cells are fitted, and from the next sample-statistics check on"
)

#: Why a recorded run may lack a signal although its probe is on: said where a mode is "not checked".
SIGNAL_PREREQUISITES: Mapping[str, str] = {
    "feat.occupancy_ratio": _CELLS_FITTED,
    "feat.bin_tv": _CELLS_FITTED,
    "feat.bin_churn": _CELLS_FITTED,
    "latent.cell_churn": "recorded once the k-means cells are fitted (on 512 real samples kept by the feature checks) and G has run on its fixed codes twice",
    "latent.drift": "recorded from G's second run on its fixed codes (a latent code G takes, or Doctor(sample_latent=...))",
    "latent.eval_diversity_ratio": "recorded only for a G with BatchNorm",
    "d.acc": "from D's outputs on batches it has not trained on yet (real= and fake= or d_real=/d_fake=)",
}

_NAME = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_\-]+)+$")


def check_signal_name(name: str) -> str:
    """Return ``name`` if it is a dotted lowercase signal name, else raise SignalError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise SignalError(
            f"signal name {name!r} is not valid: expected dotted lowercase words such as 'loss.d'"
        )
    return name


@dataclass(frozen=True)
class SeriesView:
    """A read-only snapshot of one series (arrays are copies)."""

    name: str
    steps: np.ndarray  # int64, increasing
    values: np.ndarray  # float64, mean of finite samples (NaN where all were non-finite)
    counts: np.ndarray  # int64, raw samples per point
    nonfinite: np.ndarray  # int64, non-finite raw samples per point
    # int64, the step of each point's first non-finite raw sample (-1 where it has none): a merged
    # point is stamped with its last step, and a blow-up's onset must stay exact however long the run.
    first_nonfinite: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.steps.shape[0])


class Series:
    """One bounded series with uniform resolution.

    Raw samples are gathered into buckets of ``stride`` samples; every time the buffer fills,
    neighbouring buckets are merged pairwise and ``stride`` doubles. So every stored point
    stands for the same number of samples: the whole history at one (coarser) resolution,
    rather than recent points fine and old ones swallowed into a single bucket.
    """

    __slots__ = (
        "_acc_count",
        "_acc_finite",
        "_acc_first_nonfinite",
        "_acc_nonfinite",
        "_acc_step",
        "_acc_sum",
        "_counts",
        "_first_nonfinite",
        "_n",
        "_nonfinite",
        "_steps",
        "_values",
        "capacity",
        "name",
        "stride",
    )

    def __init__(self, name: str, capacity: int) -> None:
        if capacity < 16 or capacity % 2:
            raise SignalError(f"capacity must be an even number >= 16, got {capacity}")
        self.name = name
        self.capacity = capacity
        self.stride = 1
        size = min(capacity, 64)  # grow on demand: thousands of rarely-written series stay cheap
        self._steps = np.zeros(size, dtype=np.int64)
        self._values = np.zeros(size, dtype=np.float64)
        self._counts = np.zeros(size, dtype=np.int64)
        self._nonfinite = np.zeros(size, dtype=np.int64)
        self._first_nonfinite = np.full(size, -1, dtype=np.int64)
        self._n = 0
        self._reset_bucket()

    def _reset_bucket(self) -> None:
        self._acc_step = -1
        self._acc_sum = 0.0
        self._acc_finite = 0
        self._acc_count = 0
        self._acc_nonfinite = 0
        self._acc_first_nonfinite = -1

    def _grow(self) -> None:
        size = min(self.capacity, 2 * self._steps.shape[0])
        for attr in ("_steps", "_values", "_counts", "_nonfinite", "_first_nonfinite"):
            old = getattr(self, attr)
            new = np.full(size, -1 if attr == "_first_nonfinite" else 0, dtype=old.dtype)
            new[: old.shape[0]] = old
            setattr(self, attr, new)

    def _last_step(self) -> int:
        if self._acc_count:
            return self._acc_step
        return int(self._steps[self._n - 1]) if self._n else -1

    def append(self, step: int, value: float) -> None:
        if step < self._last_step():
            # Out-of-order steps (a resumed run re-logging old steps) are dropped rather than
            # corrupting the ordering every statistic relies on.
            return
        if math.isfinite(value):
            self._acc_sum += value
            self._acc_finite += 1
        else:
            if not self._acc_nonfinite:
                self._acc_first_nonfinite = step
            self._acc_nonfinite += 1
        self._acc_count += 1
        self._acc_step = step
        if self._acc_count >= self.stride:
            self._commit_bucket()

    def _commit_bucket(self) -> None:
        if self._n == self._steps.shape[0]:
            self._grow()
        i = self._n
        self._steps[i] = self._acc_step
        self._values[i] = self._acc_sum / self._acc_finite if self._acc_finite else math.nan
        self._counts[i] = self._acc_count
        self._nonfinite[i] = self._acc_nonfinite
        self._first_nonfinite[i] = self._acc_first_nonfinite
        self._n += 1
        self._reset_bucket()
        if self._n == self.capacity:
            # Merge as soon as the buffer is full, so the next bucket already has the new
            # stride: every point then stands for the same number of samples.
            self._decimate()

    def _decimate(self) -> None:
        half = self.capacity // 2
        counts = self._counts.reshape(half, 2)
        nonfinite = self._nonfinite.reshape(half, 2)
        values = self._values.reshape(half, 2)
        weights = np.where(np.isfinite(values), counts - nonfinite, 0)
        total = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            merged = np.where(total > 0, np.nansum(values * weights, axis=1) / np.maximum(total, 1), np.nan)
        self._steps[:half] = self._steps.reshape(half, 2)[:, 1]
        self._values[:half] = merged
        self._counts[:half] = counts.sum(axis=1)
        self._nonfinite[:half] = nonfinite.sum(axis=1)
        firsts = self._first_nonfinite.reshape(half, 2)
        self._first_nonfinite[:half] = np.where(firsts[:, 0] >= 0, firsts[:, 0], firsts[:, 1])
        self._n = half
        self.stride *= 2

    def extend(self, steps: np.ndarray, values: np.ndarray) -> None:
        """Append many samples at once: the same points as ``append`` one at a time (up to the
        summation order of the bucket means), with whole buckets summarised by numpy. Readers of
        long logs use it; a sample whose step is below the last one is dropped, as by append."""
        steps = np.asarray(steps, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if not steps.shape[0]:
            return
        before = np.maximum.accumulate(np.concatenate(([self._last_step()], steps[:-1])))
        keep = steps >= before
        if not keep.all():
            steps, values = steps[keep], values[keep]
        i, n = 0, steps.shape[0]
        while i < n:
            stride = self.stride
            if self._acc_count or n - i < stride:
                # Finish the open bucket (or the last partial one) sample by sample.
                take = min(stride - self._acc_count, n - i)
                for step, value in zip(steps[i : i + take].tolist(), values[i : i + take].tolist(), strict=True):
                    self.append(step, value)
                i += take
                continue
            k = min((n - i) // stride, self.capacity - self._n)
            block = values[i : i + k * stride].reshape(k, stride)
            finite = np.isfinite(block)
            count = finite.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = np.where(count > 0, np.where(finite, block, 0.0).sum(axis=1) / np.maximum(count, 1), math.nan)
            while self._steps.shape[0] < self._n + k:
                self._grow()
            j = self._n
            self._steps[j : j + k] = steps[i + stride - 1 : i + k * stride : stride]
            self._values[j : j + k] = means
            self._counts[j : j + k] = stride
            self._nonfinite[j : j + k] = stride - count
            bad = ~finite
            first = np.argmax(bad, axis=1)  # the first non-finite sample of each bucket, if any
            self._first_nonfinite[j : j + k] = np.where(bad.any(axis=1), steps[i : i + k * stride].reshape(k, stride)[np.arange(k), first], -1)
            self._n += k
            i += k * stride
            if self._n == self.capacity:
                self._decimate()

    def view(self) -> SeriesView:
        n = self._n
        steps, values = self._steps[:n], self._values[:n]
        counts, nonfinite, first = self._counts[:n], self._nonfinite[:n], self._first_nonfinite[:n]
        if self._acc_count:  # the bucket still filling is data too
            value = self._acc_sum / self._acc_finite if self._acc_finite else math.nan
            steps = np.append(steps, self._acc_step)
            values = np.append(values, value)
            counts = np.append(counts, self._acc_count)
            nonfinite = np.append(nonfinite, self._acc_nonfinite)
            first = np.append(first, self._acc_first_nonfinite)
        return SeriesView(self.name, steps.copy(), values.copy(), counts.copy(), nonfinite.copy(), first.copy())

    def __len__(self) -> int:
        return self._n + (1 if self._acc_count else 0)

    def bounds(self) -> tuple[int, int] | None:
        """The first and last step of :meth:`view`'s points, without building it (None: no point)."""
        if not len(self):
            return None
        return (int(self._steps[0]) if self._n else self._acc_step), self._last_step()


class SignalLog:
    """Named series of (step, value). Append-only, memory bounded by ``capacity`` per series."""

    def __init__(self, capacity: int = 4096, max_series: int = 4096) -> None:
        self.capacity = capacity
        self.max_series = max_series
        self._series: dict[str, Series] = {}
        self.last_step: int | None = None
        self.first_step: int | None = None

    def record(self, step: int, values: Mapping[str, float]) -> None:
        """Append one step's values. Unknown new names beyond ``max_series`` are ignored."""
        for name, value in values.items():
            series = self._series.get(name)
            if series is None:
                if len(self._series) >= self.max_series:
                    continue
                series = self._series[name] = Series(name, self.capacity)
            series.append(int(step), float(value))
        if values:
            if self.first_step is None:
                self.first_step = int(step)
            if self.last_step is None or step > self.last_step:
                self.last_step = int(step)

    def extend(self, name: str, steps: np.ndarray, values: np.ndarray) -> None:
        """Append many (step, value) samples of one series at once (see Series.extend)."""
        steps = np.asarray(steps, dtype=np.int64)
        if not steps.shape[0]:
            return
        series = self._series.get(name)
        if series is None:
            if len(self._series) >= self.max_series:
                return
            series = self._series[name] = Series(name, self.capacity)
        series.extend(steps, values)
        first, last = int(steps[0]), int(steps.max())
        if self.first_step is None:
            self.first_step = first
        if self.last_step is None or last > self.last_step:
            self.last_step = last

    def names(self) -> list[str]:
        return sorted(self._series)

    def __contains__(self, name: object) -> bool:
        return name in self._series

    def rename(self, old: str, new: str) -> None:
        """Give a series another name (a reader that learns what a column really holds); ``new``
        must not exist yet."""
        if new in self._series:
            raise SignalError(f"cannot rename {old!r} to {new!r}: {new!r} is already recorded")
        series = self._series.pop(check_signal_name(old))
        series.name = check_signal_name(new)
        self._series[new] = series

    def get(self, name: str) -> SeriesView | None:
        series = self._series.get(name)
        return None if series is None or not len(series) else series.view()

    def views(self) -> Iterator[SeriesView]:
        for name in self.names():
            view = self.get(name)
            if view is not None:
                yield view

    def span(self, keep: Callable[[str], bool]) -> tuple[int | None, int | None]:
        """The first and last step over the series whose names ``keep`` accepts (None, None: none)."""
        bounds = [b for name, series in self._series.items() if keep(name) and (b := series.bounds()) is not None]
        if not bounds:
            return None, None
        return min(first for first, _ in bounds), max(last for _, last in bounds)

    @classmethod
    def from_records(cls, records: Iterable[tuple[int, Mapping[str, float]]], capacity: int = 4096) -> SignalLog:
        log = cls(capacity=capacity)
        for step, values in records:
            log.record(step, values)
        return log


# -- the alias table ----------------------------------------------------------------------
#: Other tools' names for gandoctor's signals, one table for every reader (CSV, JSON Lines,
#: TensorBoard tags, console logs, W&B exports). Keys are normalised with :func:`alias_key`
#: (lowercase; spaces and hyphens become ``_``); a run-name or ``train/`` prefix is stripped
#: first (see :data:`ALIAS_PREFIXES`). Values are names in :data:`SIGNALS`. A name that maps
#: nowhere is kept as ``user.<name>``, so it shows up in ``--json`` without feeding any rule by
#: accident; ``--map signal=name`` maps it explicitly.
ALIASES: Mapping[str, str] = {
    **dict.fromkeys(
        [
            "loss_d", "d_loss", "lossd", "errd", "err_d", "disc_loss", "discriminator_loss", "loss_disc",
            "loss_discriminator", "loss/d", "d/loss", "loss.d", "critic_loss", "loss_critic", "loss/discriminator",
            "loss/disc", "loss/dis", "dis/loss", "loss/critic", "crit_loss", "loss_crit", "losses/d", "discriminator/loss", "critic/loss", "loss/loss_d", "loss/d_loss",
            "d_total_loss", "loss_d_total", "errd_total", "lossd_total", "dis_loss", "loss_dis",
            "disc/loss", "loss/discriminator_loss", "loss/disc_loss", "loss/d/loss",  # the last: StyleGAN2-ADA / StyleGAN3
            "losses_d", "d_loss_total", "loss/d_total",  # {"losses": {"D": ...}} flattened; totals
            "disc_cost", "d_cost", "critic_cost",  # improved_wgan_training's lib/plot.py names ("train disc cost")
            "d_error", "error_d",  # diegoalejogm/gans' Logger (TensorBoard '<model>/D_error')
            "d_err",
        ],
        "loss.d",
    ),
    **dict.fromkeys(
        [
            "loss_g", "g_loss", "lossg", "errg", "err_g", "gen_loss", "generator_loss", "loss_gen", "loss_generator",
            "loss/g", "g/loss", "loss.g", "loss/generator", "loss/gen", "losses/g", "generator/loss", "loss/loss_g",
            "loss/g_loss", "g_total_loss", "loss_g_total", "gen/loss", "loss/generator_loss", "loss/gen_loss", "loss/g/loss",
            "losses_g", "g_loss_total", "loss/g_total", "gen_cost", "g_cost", "g_error", "error_g",
            "g_err",  # devnag's 1-D GAN: 'G (0.69 err)'
        ],
        "loss.g",
    ),
    # D's loss in two parts (pix2pix's loss_D_real / loss_D_fake, the DCGAN tutorial's errD_real /
    # errD_fake): a log without the total gets loss.d as their sum (readers' Collector).
    **dict.fromkeys(
        [
            "d_loss_real", "loss_d_real", "errd_real", "err_d_real", "d_real_loss", "lossd_real", "loss/d_real",
            "d_loss/real", "loss_real_d", "disc_loss_real", "loss/d/real",
            "loss_disc_real", "disc_real_loss", "loss/disc_real",  # MMGeneration / MMagic
            "d_real_err", "d_real_error",  # devnag's 1-D GAN: 'D (0.69 real_err, 0.70 fake_err)'
        ],
        "loss.d_real",
    ),
    **dict.fromkeys(
        [
            "d_loss_fake", "loss_d_fake", "errd_fake", "err_d_fake", "d_fake_loss", "lossd_fake", "loss/d_fake",
            "d_loss/fake", "loss_fake_d", "disc_loss_fake", "loss/d/fake",
            "loss_disc_fake", "disc_fake_loss", "loss/disc_fake",
            "d_fake_err", "d_fake_error",
        ],
        "loss.d_fake",
    ),
    **dict.fromkeys(
        ["d_x", "dx", "d(x)", "d_real", "d_prob_real", "d_prob.real", "d_real_prob", "d/real", "prob/real", "d(x)_mean"],
        "d_prob.real",
    ),
    **dict.fromkeys(
        [
            "d_g_z", "dgz", "d(g(z))", "d_g_z1", "d_fake", "d_prob_fake", "d_prob.fake", "d_fake_prob",
            "d/fake", "prob/fake", "d(g(z))_1", "d(g(z))_before",
        ],
        "d_prob.fake",
    ),
    # StyleGAN2-ADA / StyleGAN3 log D's mean logits as Loss/scores/real and Loss/scores/fake; D's raw
    # output is gandoctor's d_out (``d_out_real``, its own name, was once read as a probability).
    **dict.fromkeys(["loss/signs/real"], "d_sign.real"),
    **dict.fromkeys(["loss/signs/fake"], "d_sign.fake"),
    **dict.fromkeys(
        ["loss/r1_penalty", "r1_penalty", "gradient_penalty", "loss/gradient_penalty", "grad_penalty", "loss_gp", "gp_loss", "d_gp", "loss/gp"],
        "penalty.d",
    ),
    **dict.fromkeys(["loss/scores/real", "d_out_real", "d_out/real"], "d_out.real"),
    **dict.fromkeys(["loss/scores/fake", "d_out_fake", "d_out/fake"], "d_out.fake"),
    # Learning rates (a schedule's, logged per step): what a finding's remedies quote at its onset.
    **dict.fromkeys(["lr_d", "d_lr", "lr/d", "lr_disc", "disc_lr", "lr/discriminator", "lr_discriminator", "opt.lr_d"], "opt.lr_d"),
    **dict.fromkeys(["lr_g", "g_lr", "lr/g", "lr_gen", "gen_lr", "lr/generator", "lr_generator", "opt.lr_g"], "opt.lr_g"),
    **dict.fromkeys(
        [
            "grad_norm_d", "d_grad_norm", "grad_norm.d", "gradnorm_d", "d_gradnorm", "grad_norm/d", "grad/d", "grads/d", "d/grad_norm",
            "gradient_norm/d", "gnorm_d", "d_gnorm", "gnorm/d", "grad_norm_disc", "disc_grad_norm", "grad_norm_discriminator",
            "discriminator_grad_norm", "grad_norm/discriminator", "d_grad", "grad_d", "d_gradient_norm", "gradient_norm_d",
        ],
        "grad_norm.d",
    ),
    **dict.fromkeys(
        [
            "grad_norm_g", "g_grad_norm", "grad_norm.g", "gradnorm_g", "g_gradnorm", "grad_norm/g", "grad/g", "grads/g", "g/grad_norm",
            "gradient_norm/g", "gnorm_g", "g_gnorm", "gnorm/g", "grad_norm_gen", "gen_grad_norm", "grad_norm_generator",
            "generator_grad_norm", "grad_norm/generator", "g_grad", "grad_g", "g_gradient_norm", "gradient_norm_g",
        ],
        "grad_norm.g",
    ),
}

#: Prefixes stripped before the alias lookup: experiment trackers group metrics as ``train/...``.
ALIAS_PREFIXES: tuple[str, ...] = ("train/", "training/", "train_", "train.", "metrics/", "scalars/")
#: Suffixes stripped likewise: Lightning's ``self.log(..., on_step=True, on_epoch=True)`` writes
#: ``d_loss_step`` (and ``d_loss_epoch``, one value per epoch: not the step's loss, so not
#: stripped); a JSON record's ``{"mean": ..., "num": ..., "std": ...}`` flattens to ``<name>_mean``;
#: TensorBoard tags group as ``d_loss/train``.
ALIAS_SUFFIXES: tuple[str, ...] = ("_step", "_mean", "/train")


#: The first part of a tag that names a split other than training: never stripped.
HELD_OUT_SPLITS: frozenset[str] = frozenset({"val", "valid", "validation", "test", "eval", "evaluation", "dev"})
#: A tag grouped under its network (LynnHo's DCGAN-LSGAN-WGAN-GP-DRAGAN: ``D/d_loss``, ``G/g_loss``):
#: the rest is looked up, and taken where it names a signal of that network.
ALIAS_GROUPS: Mapping[str, str] = {
    **dict.fromkeys(("d/", "disc/", "discriminator/", "critic/", "netd/"), "d"),
    **dict.fromkeys(("g/", "gen/", "generator/", "netg/"), "g"),
}


def _network(signal: str) -> str:
    """Which network a signal is of: 'd', 'g' or '' (neither)."""
    if signal.startswith(("loss.d", "d_prob.", "d_out.")) or signal.endswith(".d") or signal == "opt.lr_d":
        return "d"
    return "g" if signal.endswith(".g") or signal == "opt.lr_g" else ""


def alias_key(name: str) -> str:
    """The normalised form a foreign name is looked up under in :data:`ALIASES`."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def alias_for(name: str) -> str | None:
    """The signal a foreign name stands for, or None: ``'Loss_D'`` and ``'train/errD'`` -> ``'loss.d'``.

    A W&B chart export's ``'<run> - <metric>'`` column is looked up by its metric part.
    """
    if " - " in name:
        name = name.rsplit(" - ", 1)[1]
    key = alias_key(name)
    stems = [key] + [key[: -len(suffix)] for suffix in ALIAS_SUFFIXES if key.endswith(suffix) and len(key) > len(suffix)]
    for stem in stems:
        if stem in ALIASES:
            return ALIASES[stem]
        for prefix in ALIAS_PREFIXES:
            if stem.startswith(prefix) and stem[len(prefix):] in ALIASES:
                return ALIASES[stem[len(prefix):]]
    for tag in [key] + [key[len(prefix):] for prefix in ALIAS_PREFIXES if key.startswith(prefix)]:
        for group, network in ALIAS_GROUPS.items():
            if tag.startswith(group) and (signal := alias_for(tag[len(group):])) is not None and _network(signal) == network:
                return signal
    # A run's or model's name before the tag (diegoalejogm's '<model>_<data>/D_error'): the rest, where
    # the table has it whole; never a held-out split's ('val/d_loss' is no training loss).
    head, _, rest = key.partition("/")
    if rest and head not in HELD_OUT_SPLITS and head + "/" not in ALIAS_GROUPS and rest in ALIASES:
        return ALIASES[rest]
    # A loss logged under its class's name (torchgan's 'Losses/MinimaxDiscriminatorLoss',
    # 'Losses/WassersteinGeneratorLoss'); not a running mean of it, nor a held-out split's.
    last = key.rsplit("/", 1)[-1]
    if head not in HELD_OUT_SPLITS and "running" not in key:
        for suffix, signal in LOSS_CLASS_SUFFIXES.items():
            if last.endswith(suffix) and len(last) > len(suffix):
                return signal
    return None


#: The ends of a loss class's name (lower case) and the loss it is.
LOSS_CLASS_SUFFIXES = {"discriminatorloss": "loss.d", "generatorloss": "loss.g"}
