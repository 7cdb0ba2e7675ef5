"""Sample features and the statistics computed from them (real vs fake).

Every ``feature_every`` steps the features of a slice of the real and fake batch are kept (the
4 newest real batches: two independent real sets; the 2 newest fake batches); every
``sample_stats_every`` steps, and once more when training ends, :func:`gandoctor.samplestats.compare`
turns them into diversity, coverage, precision, turnover and k-means bin occupancy and churn,
the fakes taken from one step where the batch allows (:func:`same_time_fakes`); FID/KID and NDB,
when switched on, reuse the same arrays.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from .. import samplestats
from ..context import CONDITIONAL
from .base import Probe, ProbeHost, StepInputs, Values, label_slices

_BLAS: Any = None


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """The sample statistics' matrices are small; BLAS threads would only spin against the
    training's own threads (measured: +30% step time on a small MLP GAN with 2 cores)."""
    global _BLAS
    try:
        if _BLAS is None:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()
        return _BLAS.limit(limits=1, user_api="blas")
    except Exception:  # threadpoolctl missing or confused: run as is
        return contextlib.nullcontext()


@dataclass
class Prepared:
    """The arrays of one sample-statistics measurement, for FID/KID and NDB at the same step."""

    step: int
    real: np.ndarray
    fake: np.ndarray
    real_a: np.ndarray


@dataclass
class FeatureBank:
    """Features shared by the feature, sample-statistics and fixed-latent probes (on the device)."""

    real: list[torch.Tensor] = field(default_factory=list)
    fake: list[torch.Tensor] = field(default_factory=list)
    newest_fake_step: int | None = None  # the step of the newest fake batch
    reservoir: list[torch.Tensor] = field(default_factory=list)  # reals for the k-means bins, until fitted
    pool: list[torch.Tensor] = field(default_factory=list)  # the newest reals, up to BLUR_POOL (the blur statistics)
    bins: samplestats.Bins | None = None
    prepared: Prepared | None = None
    generation: int = 0  # restarts so far: a probe that keeps state of its own starts again at a new one
    small_batches: bool = False  # the last feature check's batches were under SAME_TIME_MIN / 2 (SmallBatchTopUp)

    def restart(self) -> None:
        """Forget every feature: the samples changed size, and features of two sizes do not compare."""
        self.real, self.fake, self.reservoir, self.pool = [], [], [], []
        self.newest_fake_step, self.bins, self.prepared = None, None, None
        self.generation += 1

    def reservoir_full(self) -> bool:
        return sum(len(f) for f in self.reservoir) >= samplestats.BIN_RESERVOIR

    def pool_size(self) -> int:
        return sum(len(f) for f in self.pool)

    def trim(self) -> None:
        """Keep the newest fakes, at least the 2 newest batches and enough for ``SAME_TIME_MIN``
        together (the sample statistics take no more), and the newest reals, at least 4 batches and
        ``4 x SAME_TIME_MIN`` (two independent real sets; reals pooled across steps are still draws of the data)."""
        _keep_newest(self.fake, 2, SAME_TIME_MIN)
        _keep_newest(self.real, 4, 4 * SAME_TIME_MIN)

    def add_to_pool(self, batch: torch.Tensor) -> None:
        """Keep the newest reals for the blur statistics: at least BLUR_POOL once there are that many."""
        self.pool.append(batch)
        while self.pool_size() - len(self.pool[0]) >= samplestats.BLUR_POOL:
            del self.pool[0]


def _keep_newest(batches: list[torch.Tensor], least_batches: int, least_samples: int) -> None:
    kept = count = 0
    for batch in reversed(batches):
        if kept >= least_batches and count >= least_samples:
            break
        kept, count = kept + 1, count + len(batch)
    del batches[: len(batches) - kept]


class FeatureProbe(Probe):
    name = "features"
    schedule_field = "feature_every"
    cost = 0.3  # pixels; d_penultimate costs a D forward on the feature batch

    def __init__(self, host: ProbeHost) -> None:
        super().__init__(host)
        self.given: set[str] = set()  # which of real= and fake= have reached the doctor
        self.measured = False

    def due(self, inputs: StepInputs, every: int) -> bool:
        self.given |= {name for name, value in (("real", inputs.real), ("fake", inputs.fake)) if value is not None}
        return inputs.has_samples and super().due(inputs, every)

    def idle_reason(self) -> str | None:
        missing = [f"{name}=" for name in ("real", "fake") if name not in self.given]
        if self.measured or not missing:
            return None
        return (
            f"no {' or '.join(missing)} has reached the doctor: the sample features, D's held-out outputs and the sample "
            "statistics (collapse, coverage, G's hops) have nothing to measure; pass the D step's batches to doctor.step "
            "(under Lightning's DoctorCallback: return {'fake': fake} from training_step, keep it as self.fake, or pass "
            "DoctorCallback(fake_fn=...))"
        )

    def measure(self, inputs: StepInputs) -> Values:
        assert inputs.real is not None and inputs.fake is not None
        self.measured = True
        n = self.host.schedule.feature_batch
        bank = self.host.bank
        y_real, y_fake = label_slices(inputs.labels, inputs.fake_labels, n)
        bank.real.append(self.host.extract(inputs.real[:n].detach(), y_real))
        bank.fake.append(self.host.extract(inputs.fake[:n].detach(), y_fake))
        bank.newest_fake_step = inputs.step
        chosen = getattr(self.host.extract, "chosen", None)
        if chosen is not None and self.host.context().values.get("features") != chosen:
            self.host.note_context(set(), {"features": chosen})  # what `auto` picked
        if (inputs.labels is not None or inputs.fake_labels is not None) and CONDITIONAL not in self.host.context().flags:
            self.host.note_context({CONDITIONAL}, {})
        bank.add_to_pool(bank.real[-1])
        bank.trim()
        bank.small_batches = 2 * min(len(inputs.real), len(inputs.fake)) < SAME_TIME_MIN
        return {}


class SmallBatchTopUp(Probe):
    """Features of the batches of the steps just before each feature check, where batches are
    small: at CycleGAN's batch of 4 the sample statistics compared 8 fakes with 8 reals, where
    every k-NN ball covers everything: precision and coverage read 1.0 at every check and a G
    drawing 3 digit classes read "collapse: clear". With batches under ``SAME_TIME_MIN / 2`` the
    fakes and reals of the ``ceil(SAME_TIME_MIN / batch) - 1`` steps before each multiple of
    ``feature_every`` are kept too, from the first feature check that saw such batches on:
    consecutive steps, so the fakes still come from nearly one G (pooled across checks 25 steps
    apart they overstate a moving G's spread: ``same_time_fakes``). Intervals the budget
    stretched fall on multiples of ``feature_every`` too."""

    name = "small_batch_top_up"
    cost = 0.1

    def due(self, inputs: StepInputs, every: int) -> bool:
        # Asked at every step: where the feature checks saw batches of 32 or more, one attribute read.
        if not self.host.bank.small_batches:
            return False
        real, fake, interval = inputs.real, inputs.fake, self.host.schedule.feature_every
        if real is None or fake is None or not interval or inputs.partial or not real.dim() or not fake.dim():
            return False
        batch = min(real.shape[0], fake.shape[0])
        if not batch or 2 * batch >= SAME_TIME_MIN:
            return False
        return 0 < (-inputs.step) % interval <= math.ceil(SAME_TIME_MIN / batch) - 1

    def measure(self, inputs: StepInputs) -> Values:
        assert inputs.real is not None and inputs.fake is not None
        bank = self.host.bank
        y_real, y_fake = label_slices(inputs.labels, inputs.fake_labels, inputs.real.shape[0])
        bank.real.append(self.host.extract(inputs.real.detach(), y_real))
        bank.fake.append(self.host.extract(inputs.fake.detach(), y_fake))
        bank.add_to_pool(bank.real[-1])
        bank.trim()
        return {}


class BinReservoirProbe(Probe):
    """Reals for the k-means bins at every step until the reservoir holds BIN_RESERVOIR of them.

    Gathered at the feature checks alone, 512 reals took about 800 steps at a batch of 16 (every
    25 steps), so a 500-step StyleGAN2 run that hopped between two digit classes never had its
    bins, and no rule that reads them could see the collapse. The reals are i.i.d. draws of the
    data wherever in the run they come from, so the first steps' batches serve as well; the cost
    is one feature extraction of the real batch per step, for the few steps it takes. Features
    that move with D (``d_penultimate``) are binned afresh at each check and need no reservoir.
    """

    name = "bin_reservoir"
    cost = 0.1

    def __init__(self, host: ProbeHost) -> None:
        super().__init__(host)
        self.done = False
        self.generation = 0

    def due(self, inputs: StepInputs, every: int) -> bool:
        if self.generation != self.host.bank.generation:  # the bank restarted: its bins are to fit again
            self.generation, self.done = self.host.bank.generation, False
        return not self.done and inputs.real is not None and not inputs.partial

    def measure(self, inputs: StepInputs) -> Values:
        bank = self.host.bank
        if bank.bins is not None or self.host.features_move_with_d():
            self.done = True
            return {}
        if bank.reservoir_full():  # the sample statistics fit the bins at their next check
            return {}
        assert inputs.real is not None
        if bank.newest_fake_step == inputs.step and bank.real:  # the feature check of this step has extracted them
            bank.reservoir.append(bank.real[-1])
            return {}
        n = self.host.schedule.feature_batch
        y_real, _ = label_slices(inputs.labels, inputs.fake_labels, n)
        try:
            features = self.host.extract(inputs.real[:n].detach(), y_real)
        except Exception:  # the feature probe calls the same extractor: its failure is said (and raised under strict) there, once
            self.done = True
            return {}
        if self.host.features_move_with_d():  # `auto` has just chosen D's features
            self.done, bank.reservoir = True, []
            return {}
        bank.reservoir.append(features)
        return {}


SAME_TIME_MIN = 64  # fakes per measurement before older batches are added
BLUR_EVERY = 8  # checks between recomputations of the blur statistics once the pool is full


class _BlurMemo(NamedTuple):
    """The blur statistics of the last check that computed them, and the pool they came from."""

    precision_null: float
    blur_apart: float
    pool_size: int
    check: int


def same_time_fakes(bank: FeatureBank) -> list[torch.Tensor]:
    """The newest fake batch, with older ones added only while there are fewer than
    ``SAME_TIME_MIN`` fakes. Fakes pooled across steps overstate the diversity and coverage of a
    G that moves: a collapsed G whose one mode drifts reads as diverse across two batches 25
    steps apart (measured: diversity ratio 0.87 pooled where the oracle saw 0.14)."""
    chosen: list[torch.Tensor] = []
    for batch in reversed(bank.fake):
        chosen.insert(0, batch)
        if sum(len(b) for b in chosen) >= SAME_TIME_MIN:
            break
    return chosen


class SampleStatsProbe(Probe):
    name = "sample_stats"
    schedule_field = "sample_stats_every"
    signals = (
        "feat.diversity_ratio", "feat.coverage", "feat.coverage_ratio", "feat.precision", "feat.precision_null", "feat.blur_apart", "feat.dup_rate",
        "feat.fake_shift", "feat.turnover", "feat.density", "feat.recall", "feat.vendi_ratio",
        "feat.occupancy_ratio", "feat.bin_tv", "feat.bin_churn", "feat.nonfinite",
    )
    cost = 3.0  # 256 reals, 128 fakes, d=64, one core (2.5 ms measured); ~19 ms with extended_sample_stats

    def __init__(self, host: ProbeHost) -> None:
        super().__init__(host)
        self._rng = np.random.default_rng(host.seed)
        self._prev_fake: np.ndarray | None = None
        self._measured_step: int | None = None  # the newest fake batch already measured
        self._checks = 0
        self._blur: _BlurMemo | None = None
        self._generation = 0

    def due(self, inputs: StepInputs, every: int) -> bool:
        return inputs.step > 0 and super().due(inputs, every)

    def final(self, step: int) -> Values:
        """At the end of training: measure the newest features if no measurement has seen them
        (a 300-step run measured at steps 100 and 200 would otherwise never show its last 100)."""
        bank = self.host.bank
        newest = bank.newest_fake_step
        if newest is None or newest == self._measured_step or newest <= 0:
            return {}
        return self.measure(StepInputs(step))

    def measure(self, inputs: StepInputs) -> Values:
        bank = self.host.bank
        if self._generation != bank.generation:  # the samples changed size: nothing of the old size compares
            self._generation, self._prev_fake, self._blur = bank.generation, None, None
        if len(bank.real) < 2 or not bank.fake:
            return {}
        real = torch.cat(bank.real).cpu().numpy().astype(np.float64)
        fake = torch.cat(same_time_fakes(bank)).cpu().numpy().astype(np.float64)
        self._measured_step = bank.newest_fake_step
        if not (np.isfinite(real).all() and np.isfinite(fake).all()):
            return {"feat.nonfinite": 1.0}
        perm = self._rng.permutation(real.shape[0])
        half = real.shape[0] // 2
        real_a, real_b = real[perm[:half]], real[perm[half:]]
        # D's features move as D trains: bins fitted once would describe an old feature space, and
        # the previous fakes were featurised by an older D (no churn across feature spaces).
        moving_features = self.host.features_move_with_d()
        with one_blas_thread():
            if moving_features:
                bank.bins = samplestats.fit_bins(real, seed=self.host.seed)  # refitted on the current reals (~5 ms)
            elif bank.bins is None and bank.reservoir_full():
                self.host.guard("bins", lambda: self._fit_bins(bank))
            blur = self._blur_input(bank, moving_features)
            stats = samplestats.compare(
                real_a, real_b, fake, self._prev_fake, self.host.schedule.extended_sample_stats, bank.bins,
                churn=not moving_features, blur=blur,
            )
        self._prev_fake = fake
        self._check_done(blur, stats.precision_null, stats.blur_apart, bank.pool_size())
        bank.prepared = Prepared(inputs.step, real, fake, real_a)
        return stats.as_signals()

    def _blur_input(self, bank: FeatureBank, moving_features: bool) -> np.ndarray | tuple[float, float] | None:
        """The reals to blur, or the blur statistics of an earlier check: they describe the real
        data, which does not change, so once the pool has stopped growing they are recomputed
        every BLUR_EVERY checks only (6.8 ms on one core for 256 reals of 64 dimensions; the rest of
        a check takes 0.75 ms).
        Features that move with D describe another space at every check: blurred afresh."""
        last = self._blur
        if last is not None and not moving_features and last.pool_size == bank.pool_size() and self._checks - last.check < BLUR_EVERY:
            return last.precision_null, last.blur_apart
        if not bank.pool or moving_features:
            return None
        pool = torch.cat(bank.pool).cpu().numpy().astype(np.float64)
        return pool if np.isfinite(pool).all() else None

    def _check_done(self, blur: np.ndarray | tuple[float, float] | None, precision_null: float, blur_apart: float, pool_size: int) -> None:
        """Count the check, and remember blur statistics it computed (not reused) for the next ones."""
        if not isinstance(blur, tuple):
            self._blur = _BlurMemo(precision_null, blur_apart, pool_size, self._checks)
        self._checks += 1

    def _fit_bins(self, bank: FeatureBank) -> None:
        reservoir = torch.cat(bank.reservoir).cpu().numpy().astype(np.float64)
        if np.isfinite(reservoir).all():  # else wait for finite reals; the reservoir refills
            bank.bins = samplestats.fit_bins(reservoir, seed=self.host.seed)
        bank.reservoir = []


class _OnPrepared(Probe):
    """A statistic that runs on the arrays of the sample-statistics measurement of the same step."""

    def due(self, inputs: StepInputs, every: int) -> bool:
        prepared = self.host.bank.prepared
        return prepared is not None and prepared.step == inputs.step and super().due(inputs, every)


class FidelityProbe(_OnPrepared):
    name = "fidelity"
    schedule_field = "fidelity_every"
    signals = ("feat.fid", "feat.kid")
    cost = 30.0

    def measure(self, inputs: StepInputs) -> Values:
        from ..fidelity import metrics_from_features

        prepared = self.host.bank.prepared
        assert prepared is not None
        with one_blas_thread():
            m = metrics_from_features(
                torch.from_numpy(prepared.real), torch.from_numpy(prepared.fake), kid_subset_size=min(100, len(prepared.fake))
            )
        return {"feat.fid": m.fid, "feat.kid": m.kid_mean}


class NdbProbe(_OnPrepared):
    name = "ndb"
    schedule_field = "ndb_every"
    signals = ("feat.ndb_frac",)
    cost = 6.0

    def measure(self, inputs: StepInputs) -> Values:
        prepared = self.host.bank.prepared
        assert prepared is not None
        with one_blas_thread():
            return {"feat.ndb_frac": samplestats.ndb_fraction(prepared.real_a, prepared.fake, seed=inputs.step)}
