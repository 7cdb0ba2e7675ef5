"""D's outputs on real and fake samples: means, probabilities, AUC and balanced accuracy.

Every ``d_probe_every`` steps: the loop passed them (``d_real=``, ``d_fake=``: no forward); or
they are kept from the loop's own D forwards of that iteration (a forward hook on D armed for that
iteration only: the outputs of D's calls on the very ``real`` and ``fake`` tensors passed to
``Doctor.step``, which the D step computes before D trains on them: held out, at no cost); or,
where no such call was seen, a no-grad D forward on a slice of the batch produces them, with D's
buffers (BatchNorm statistics, spectral-norm vectors) restored and the RNG streams forked, so
training is bit-identical.

With ``d_output="auto"`` D's kind is learnt from its outputs: while every output seen lies in
[0, 1] they are taken as probabilities. The range check travels to the host with the flush
(no sync per step); from the first step with an output outside [0, 1], ``d_prob.*`` is no
longer written and the context records ``d_output_detected = "score"``. Once D's loss form is
learnt (:mod:`.lossform`), it decides: least squares towards 1/0 and BCE on probabilities put the
accuracy threshold at 0.5 and keep ``d_prob.*`` (their outputs estimate P(real), and may leave
[0, 1] a little), every other form puts it at 0.

A D trained to score reals lower than fakes (the original WGAN code's mean D(real) - mean
D(fake); BCE with the real label 0) is found from the gradient its training loss sends to its
scores on the step's reals, or from the sides of its learnt loss form, and read mirrored
(:meth:`OutputKind._orient`).

``d_output="energy"`` is for a D whose output is lower for real samples (an energy or a
reconstruction error: EBGAN, BEGAN, softmax GAN): its outputs are negated, then read as a
critic's scores (rank, midpoint threshold), so ``d.auc`` still means P(D ranks real above fake).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from ..context import D_LOSS_STEP_SHARE, D_OUTPUTS_TRAINED_ON, FEW_D_SAMPLES, FEW_D_SAMPLES_BELOW
from ..errors import ProbeRefused
from .base import (
    CopySafeHook,
    Probe,
    ProbeHost,
    StepInputs,
    Values,
    d_output_tensor,
    doctor_forward_running,
    label_slices,
    per_sample,
    same_data,
    untouched,
)
from .lossform import PROBABILITY_FORMS, LossForm


def auc(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """P(D(real) > D(fake)) over all pairs, ties counted half; stays on the device."""
    r = real[:256].reshape(-1, 1)
    f = fake[:256].reshape(1, -1)
    value = (r > f).float().mean() + 0.5 * (r == f).float().mean()
    # Non-finite outputs make the ranking meaningless: NaN, not a confident 0 or 1.
    finite = torch.isfinite(r).all() & torch.isfinite(f).all()
    return torch.where(finite, value, torch.full_like(value, float("nan")))


def balanced_accuracy(real: torch.Tensor, fake: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """Mean of the true-real and true-fake rates at ``threshold``, ties counted half; on the device."""
    hit_real = (real > threshold).float().mean() + 0.5 * (real == threshold).float().mean()
    hit_fake = (fake < threshold).float().mean() + 0.5 * (fake == threshold).float().mean()
    acc = 0.5 * (hit_real + hit_fake)
    finite = torch.isfinite(real).all() & torch.isfinite(fake).all()
    return torch.where(finite, acc, torch.full_like(acc, float("nan")))


def constant(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """1 where D's outputs on the reals and fakes, lowest ``lo`` and highest ``hi``, are one value
    (to float rounding), else 0: a dead D (all units off, or saturated to one value), whose d.auc
    of 0.5 is ties, not a D that G has fooled; on the device."""
    return ((hi - lo) <= _TIED * torch.clamp(torch.maximum(hi.abs(), lo.abs()), min=1.0)).float()


def _host_constant(lo: float, hi: float) -> float:
    """:func:`constant` of CPU outputs."""
    return float(hi - lo <= _TIED * max(abs(hi), abs(lo), 1.0))


#: Outputs this close (relative, at least absolute for outputs under 1) are one value.
_TIED = 1e-6


def _all_finite(real: np.ndarray, fake: np.ndarray) -> bool:
    return bool(np.isfinite(real).all() and np.isfinite(fake).all())


def host_auc(real: np.ndarray, fake: np.ndarray) -> float:
    """:func:`auc` of CPU outputs in NumPy: the pairs counted by ranks (sorted fakes, two binary
    searches per real) instead of a 256 x 256 comparison, with the same ties counted half."""
    real, fake = real[:256], fake[:256]
    if not _all_finite(real, fake):
        return math.nan
    ranked = np.sort(fake)
    below = np.searchsorted(ranked, real, side="left")
    tied = np.searchsorted(ranked, real, side="right") - below
    return float((below.sum() + 0.5 * tied.sum()) / (real.size * fake.size))


def host_balanced_accuracy(real: np.ndarray, fake: np.ndarray, threshold: float) -> float:
    """:func:`balanced_accuracy` of CPU outputs in NumPy."""
    if not _all_finite(real, fake):
        return math.nan
    hit_real = (np.count_nonzero(real > threshold) + 0.5 * np.count_nonzero(real == threshold)) / real.size
    hit_fake = (np.count_nonzero(fake < threshold) + 0.5 * np.count_nonzero(fake == threshold)) / fake.size
    return float(0.5 * (hit_real + hit_fake))


#: Checks whose gradients on D's scores of the reals were all the same before D is taken for a critic.
_LINEAR_CHECKS = 2


class OutputKind:
    """What is known of D's output kind, shared by the two D probes (host-side state)."""

    def __init__(self, host: ProbeHost, loss_form: LossForm | None = None) -> None:
        self.host = host
        self.range_ok = True  # every output seen so far lies in [0, 1]
        self.loss_form = loss_form or LossForm()  # learnt by the LossFormProbe
        # Which way D's training pushes its score on the step's reals (see _decide): checks where
        # its loss fell as the score rose (the usual way), where it rose, and checks with no push seen.
        self.pushes = {"up": 0, "down": 0, "none": 0, "linear": 0}
        self.linear: bool | None = None if host.d_output == "auto" else False  # D's loss linear in its scores (a critic)
        self.reversed: bool | None = None if host.d_output != "energy" else False  # an energy D is read negated already
        self.sized = False  # the samples a side were looked at (at the first check: a full batch in nearly every loop)

    def classifier(self) -> bool | None:
        """Whether D's output is a score map of a classifier (a learnt or declared loss form: BCE,
        least squares, hinge, Wasserstein), not an autoencoder's reconstruction; None while the
        form is being learnt (tried on the loop's own D calls, not settled yet)."""
        if self.loss_form.form is not None or self.host.d_output in ("logit", "prob", "critic"):
            return True
        return None if self.loss_form.tries and self.loss_form.deciding() else False

    def scored(self, outputs: tuple[Any, Any], inputs: tuple[torch.Tensor | None, torch.Tensor | None], custom_forward: bool = False) -> tuple[torch.Tensor, torch.Tensor] | None:
        """D's outputs on the reals and on the fakes as one score per sample each (:func:`scores`,
        read as a classifier's where its loss form says so); None while an output shaped like D's
        input waits for the loss form to say what it is."""
        form = self.classifier()
        try:
            return scores(outputs[0], inputs[0], custom_forward, form), scores(outputs[1], inputs[1], custom_forward, form)
        except UndecidedOutput:
            return None

    def probability_like(self) -> bool:
        """The learnt loss form says the outputs estimate P(real) (threshold 0.5)."""
        return self.loss_form.form in PROBABILITY_FORMS

    def _decided_threshold(self) -> float | Literal["midpoint"] | None:
        """The accuracy threshold of an auto D where what is known decides it: the midpoint of the
        means for a critic (a negative D loss, or a learnt Wasserstein form, flags one), 0.5 for a
        loss form whose outputs estimate P(real), 0 for any other learnt form; None while nothing
        is known (the outputs' range decides)."""
        if "critic" in self.host.context().flags:
            return "midpoint"
        if self.probability_like():
            return 0.5
        return 0.0 if self.loss_form.form is not None else None

    def values(self, real: torch.Tensor, fake: torch.Tensor, push: Sequence[torch.Tensor] | None = None) -> Values:
        """D's statistics from its per-sample outputs: in NumPy on the CPU, on the device elsewhere.
        ``push``: the gradients D's training loss sent to its scores on these reals (per backward:
        their sum, spread and largest size) where the loop's D calls are watched (empty where none
        was seen); None where they are not (the loop passes D's outputs)."""
        if real.numel() == 0 or fake.numel() == 0:  # an empty batch: nothing to rank (not a failed probe)
            return {}
        if not self.sized:
            self.sized = True
            n = min(real.shape[0], fake.shape[0])
            if n < FEW_D_SAMPLES_BELOW:
                self.host.note_context({FEW_D_SAMPLES}, {"d_samples": n})
        if real.device.type == "cpu" and fake.device.type == "cpu":
            values = self._host_values(real.numpy(), fake.numpy())
        else:
            values = self._device_values(real, fake)
        if push and (self.reversed is None or self.linear is None):
            self.host.defer_first(push, lambda numbers, step_values: self._note_push(numbers))
        if self.reversed is not False:
            # After the flush's pushes and loss form; where no push can come, the loss form decides at once.
            self.host.defer((), functools.partial(self._orient, 0 if push else 1 if push is not None else 2))
        return values

    def _note_push(self, numbers: list[float]) -> None:
        """One check's gradients on D's scores of the reals, (sum, spread, largest) per backward:
        which way they push, and whether D's loss is linear in them. Two checks of a loss linear in
        D's scores (every sample's gradient the same, as mean D(fake) - mean D(real) gives) and none
        curved, where no known form explains the loss, mark a Wasserstein critic whatever its logged
        total (a WGAN-GP's stays positive: no negative loss marked it, and D's accuracy was read at
        0 as a logit's)."""
        total = sum(numbers[0::3])
        self.pushes["up" if total < 0 else "down" if total > 0 else "none"] += 1
        spread, largest = max(numbers[1::3]), max(numbers[2::3])
        if self.linear is not None or not largest > 0:
            return
        if spread > 1e-6 * largest:
            self.linear = False  # a loss curved in D's scores (BCE, least squares, hinge past its margin)
            return
        self.pushes["linear"] += 1
        # A hinge loss is linear too while every score is inside its margin (a weak D's are): only
        # a loss no known form explains (a Wasserstein loss plus a penalty) is taken for a critic.
        if self.pushes["linear"] >= _LINEAR_CHECKS and not self.loss_form.deciding():
            self.linear = self.loss_form.form is None or self.loss_form.form == "wasserstein"
            # A declared hinge loss is linear inside its margin too (its form unlearnt where the loop
            # accumulates micro-batches: lightweight-gan's default 4), not a critic's.
            if self.linear and not self.host.context().flags & {"critic", "hinge_loss"}:
                self.host.note_context({"critic"}, {})

    def _decide(self) -> None:
        """Which way D is trained: from the gradient its training loss sent to its scores on the
        step's reals (negative: the loss falls as they rise, the usual way), where two checks saw
        one; else, once two checks saw none (D's calls on the reals not seen) or at once where
        none can be (the loop passes D's outputs), from the sides of the learnt loss form. The
        gradient is what D trains on: a loop may log its loss negated (a WGAN that minimises mean D(real) - mean
        D(fake) by ``backward(one)`` / ``backward(mone)`` and prints their difference the other
        way round)."""
        up, down = self.pushes["up"], self.pushes["down"]
        if up + down >= 2:
            self.reversed = down >= 0.8 * (up + down)
        elif self.pushes["none"] >= 2 and self.loss_form.form is not None:
            self.reversed = self.loss_form.reversed
        if self.reversed:
            self.host.note_context({"d_reversed"}, {})

    def _orient(self, unpushed: int, numbers: list[float], values: dict[str, float]) -> None:
        """At flush, where D is trained to score reals lower than fakes (the original WGAN code's
        mean D(real) - mean D(fake), BCE with the real label 0): its statistics read the other way
        round, as ``d_output="energy"`` reads an energy D, so ``d.auc`` is still the share of
        pairs D ranks as its training wants, 1 for a D that separates (read as is, a flipped WGAN
        critic's 0.01 was called G dominance). The ranking and the accuracy are mirrored (ties
        count half: exactly 1 - x), probabilities become P(real). Until it is known, as read."""
        if self.reversed is None:
            self.pushes["none"] += unpushed
            self._decide()
        if not self.reversed:
            return
        for key in ("d.auc", "d.acc", "d_prob.real", "d_prob.fake"):
            if key in values:
                values[key] = 1.0 - values[key]
        probability = self.probability_like()
        for key in ("d_out.real", "d_out.fake"):
            if key in values:
                values[key] = 1.0 - values[key] if probability else -values[key]

    def _device_values(self, real: torch.Tensor, fake: torch.Tensor) -> Values:
        """The statistics as tensors on D's device, read at the flush (no sync per step)."""
        kind = self.host.d_output
        if kind == "energy":  # lower is real (EBGAN, BEGAN, softmax GAN): negated, then read as a critic's scores
            real, fake, kind = -real, -fake, "critic"
        # The outputs' range: whether D gave every sample one value, and (auto) whether they lie in [0, 1].
        lo, hi = torch.minimum(real.min(), fake.min()), torch.maximum(real.max(), fake.max())
        values: dict[str, torch.Tensor | float] = {
            "d_out.real": real.mean(), "d_out.fake": fake.mean(), "d.auc": auc(real, fake), "d.constant": constant(lo, hi)
        }
        midpoint = 0.5 * (real.mean() + fake.mean())
        threshold: torch.Tensor | float
        deferred: list[torch.Tensor] = []
        half = None
        if kind == "logit":
            threshold = 0.0
            values["d_prob.real"] = torch.sigmoid(real).mean()
            values["d_prob.fake"] = torch.sigmoid(fake).mean()
        elif kind == "prob":
            threshold = 0.5
            values["d_prob.real"] = real.mean()
            values["d_prob.fake"] = fake.mean()
        elif kind == "critic":
            threshold = midpoint
        else:
            # auto: written as probabilities (clamped: a least-squares D's outputs leave [0, 1] a
            # little), dropped at flush once an output leaves [0, 1] unless the loss form says they
            # estimate P(real).
            values["d_prob.real"] = real.clamp(0, 1).mean()
            values["d_prob.fake"] = fake.clamp(0, 1).mean()
            deferred = [lo, hi]
            decided = self._decided_threshold()
            if decided is not None:
                threshold = midpoint if decided == "midpoint" else decided
            else:
                # Probabilities while every output seen lies in [0, 1], logits otherwise;
                # decided on the device so no value is read back here. While the loss form may
                # still be learnt, the accuracy at 0.5 travels too, for the flush to pick.
                in_range = (lo >= 0) & (hi <= 1) & self.range_ok
                threshold = torch.where(in_range, torch.full_like(midpoint, 0.5), torch.zeros_like(midpoint))
                if self.loss_form.deciding():
                    half = balanced_accuracy(real, fake, 0.5)
                    deferred.append(half)
        if deferred:
            has_half = half is not None
            self.host.defer(deferred, lambda numbers, step_values: self._settle(numbers, step_values, has_half))
        values["d.acc"] = balanced_accuracy(real, fake, threshold)
        return values

    def _host_values(self, real: np.ndarray, fake: np.ndarray) -> Values:
        """:meth:`_device_values` for CPU outputs: the same statistics in NumPy, read at once (nothing to
        wait for). Forty small tensor operations took 0.4 ms on a tiny MLP GAN's CPU step, their
        NumPy twins a quarter of it; equal to the device path to float32 rounding (tested)."""
        kind = self.host.d_output
        if kind == "energy":
            real, fake, kind = -real, -fake, "critic"
        mean_real, mean_fake = float(real.mean(dtype=np.float64)), float(fake.mean(dtype=np.float64))
        values: dict[str, torch.Tensor | float] = {"d_out.real": mean_real, "d_out.fake": mean_fake, "d.auc": host_auc(real, fake)}
        # The outputs' range (NaN propagates, as on the device): one value for every sample, and (auto) within [0, 1].
        lo, hi = float(np.minimum(real.min(), fake.min())), float(np.maximum(real.max(), fake.max()))
        values["d.constant"] = _host_constant(lo, hi)
        midpoint = 0.5 * (mean_real + mean_fake)
        threshold = midpoint
        if kind == "logit":
            threshold = 0.0
            values["d_prob.real"] = float(_sigmoid(real).mean(dtype=np.float64))
            values["d_prob.fake"] = float(_sigmoid(fake).mean(dtype=np.float64))
        elif kind == "prob":
            threshold = 0.5
            values["d_prob.real"], values["d_prob.fake"] = mean_real, mean_fake
        elif kind != "critic":  # auto, as in _device_values()
            values["d_prob.real"] = float(np.clip(real, 0, 1).mean(dtype=np.float64))
            values["d_prob.fake"] = float(np.clip(fake, 0, 1).mean(dtype=np.float64))
            deferred: list[torch.Tensor | float] = [lo, hi]
            decided = self._decided_threshold()
            if decided is not None:
                threshold = midpoint if decided == "midpoint" else decided
            else:
                threshold = 0.5 if (lo >= 0 and hi <= 1 and self.range_ok) else 0.0
                if self.loss_form.deciding():
                    deferred.append(host_balanced_accuracy(real, fake, 0.5))
            has_half = len(deferred) == 3
            self.host.defer(deferred, lambda numbers, step_values: self._settle(numbers, step_values, has_half))
        values["d.acc"] = host_balanced_accuracy(real, fake, threshold)
        return values

    def _settle(self, numbers: list[float], values: dict[str, float], has_half: bool) -> None:
        """At flush (auto only): the accuracy at 0.5 where the loss form says so; the output range."""
        lo, hi = numbers[0], numbers[1]
        if has_half and self.probability_like() and "d.acc" in values:
            values["d.acc"] = numbers[2]
        if self.range_ok and (lo < -1e-6 or hi > 1 + 1e-6):
            self.range_ok = False
            self.host.note_context(set(), {"d_output_detected": "score"})
        if not self.range_ok and not self.probability_like():
            values.pop("d_prob.real", None)
            values.pop("d_prob.fake", None)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of the negative magnitude only: no overflow warning for large logits
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class DOutputsProbe(Probe):
    """The outputs the loop passed, read every ``d_probe_every`` steps as the doctor's own D
    forward would be (and stretched by the overhead budget alike). The outputs cost no forward,
    but their statistics (means, rank AUC, balanced accuracy: some forty tensor operations) did,
    read at every step: three times the rest of the doctor's time on a tiny MLP GAN (0.30 of 0.40
    ms per 2.5 ms step on the CPU: 1.17x against 1.05x without them), and as many kernel launches
    per step on a GPU. The rules read windows of 60 steps and more and were calibrated on runs of
    both kinds. The corpus's 159 runs that pass their outputs, their logs read at this interval:
    9 diagnoses change, 3 hits lost (one each of D dominance, G dominance, non-convergence) and 2
    false calls more (4 new, 2 gone), no healthy run alarmed more; a fresh draw's 59: one hit more;
    another's 58: two healthy conv GANs more alarmed (D's accuracy swinging between the medians of
    a series ten times sparser: GD602, GD608)."""

    name = "d_outputs"
    schedule_field = "d_probe_every"
    signals = ("d_out.real", "d_out.fake", "d_prob.real", "d_prob.fake", "d.auc", "d.acc", "d.constant")
    cost = 0.3

    def __init__(self, host: ProbeHost, kind: OutputKind) -> None:
        super().__init__(host)
        self.kind = kind

    def due(self, inputs: StepInputs, every: int) -> bool:
        passed = inputs.d_real is not None and inputs.d_fake is not None
        return passed and not inputs.partial and super().due(inputs, every)

    def measure(self, inputs: StepInputs) -> Values:
        assert inputs.d_real is not None and inputs.d_fake is not None
        real = inputs.real if isinstance(inputs.real, torch.Tensor) else None
        pair = self.kind.scored((inputs.d_real, inputs.d_fake), (real, real))
        return {} if pair is None else self.kind.values(*pair)


class UndecidedOutput(Exception):
    """D's output is shaped like its input while its loss form is still being learnt: a per-pixel
    classifier's logit map (pix2pix's ``--netD pixel`` on one-channel images) or an autoencoder's
    reconstruction; the check is skipped until the form says which."""


def scores(out: Any, x: torch.Tensor | None, custom_forward: bool = False, classifier: bool | None = False) -> torch.Tensor:
    """D's output as one score per sample; an output shaped like D's input is refused, unless a
    loss form of a classifier was learnt for it (``classifier``; None: not yet known, the check
    skipped): an autoencoder D (BEGAN, EBGAN) returns a reconstruction, whose mean says nothing of
    realness. The refusal establishes an energy D (``energy_d``): its loss is a reconstruction
    error, whose level says nothing of D winning (a BEGAN's read against BCE's floor was called D
    dominance), and the rules on D's loss and outputs stand down."""
    first = d_output_tensor(out)
    shaped_like_input = x is not None and isinstance(first, torch.Tensor) and first.dim() >= 2 and first.shape == x.shape and first[0].numel() > 1
    if shaped_like_input and classifier is None:
        raise UndecidedOutput()
    if shaped_like_input and not classifier and x is not None:
        # EBGAN's D returns (reconstruction, code): the advice reads the first output, as the probe did.
        recon = "D(x)" if first is out else "D(x)[0]" if isinstance(out, (tuple, list)) else next(
            (f"D(x)[{k!r}]" for k, v in out.items() if v is first), "D(x)"
        )
        raise ProbeRefused(
            f"D returns an output shaped like its input {tuple(x.shape)} (an autoencoder D, as in BEGAN or "
            f"EBGAN): its mean is no score of realness; pass Doctor(d_forward=lambda D, x, y: (({recon} - x) ** 2)"
            ".flatten(1).mean(1), d_output='energy') to read its reconstruction error (lower for reals)",
            established={"energy_d"},
        )
    scored = per_sample(out)
    if x is not None and x.dim() >= 1 and x.shape[0] > 1 and scored.numel() == 1:
        # Ranking one number per batch reads 0 or 1 at every check: a weak D would read as separating perfectly.
        if custom_forward:  # D scores whole batches by design (devnag's 1-D GAN: D reads a batch's moments)
            raise ProbeRefused(
                f"the d_forward given returns one number for the {x.shape[0]} samples it was given: a D that scores a whole "
                "batch (from its moments, say) gives no score per sample to rank, so D's outputs are not read; the rules "
                "judge D from its loss"
            )
        raise ProbeRefused(
            f"D returns one number for the {x.shape[0]} samples it was given (its output averaged inside D, as the original WGAN "
            "code's netD returns output.mean(0)): there is no score per sample to rank; let D return one per sample "
            "(average outside it), or pass Doctor(d_forward=...) that returns one score per sample"
        )
    return scored


#: The loop's latest D calls kept in one iteration: D(real), D(fake.detach()), D(fake) and a
#: gradient penalty's D(interpolates) are four; a critic's several steps per G step make more.
_CALLS_KEPT = 8


def _keep_push(pushed: list[torch.Tensor], catch: OutputCatch, grad: torch.Tensor) -> None:
    """A tensor hook on D's output in the loop: the gradient its backward sends there, kept (read
    at the step as its sum, its spread over the samples, max - min: 0 where the loss is linear in
    D's scores, a Wasserstein critic's, and its largest size). A backward that builds a graph
    (``create_graph=True``: a penalty's ``autograd.grad`` of D's output, whose ones say nothing of
    the loss D is trained on) is a gradient penalty on D: noted, not kept."""
    if torch.is_grad_enabled():
        catch.penalised = catch.penalty_since_step = True
        return
    catch.since_step.append(grad.detach())  # did a loss reach D's outputs before its next step (read at the flush)
    pushed.append(grad.detach())  # reduced at the step, for the call on the reals only


def _keep_input_grad(catch: OutputCatch, grad: torch.Tensor) -> None:
    """A tensor hook on D's input in the loop: a penalty's ``autograd.grad(D(x), x, create_graph=True)``
    hands it the gradient the penalty is made of (it requires grad then); a hook on that gradient
    sees what the loss's backward sends into it, 0 where the penalty's weight is 0 (a penalty
    computed and multiplied by ``lambda_gp = 0`` is no penalty)."""
    if grad.requires_grad:
        catch.penalty_inputs_seen = True
        grad.register_hook(lambda into: catch.penalty_weights.append(into.detach().abs().amax()))


def _push_parts(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return g.sum(), g.max() - g.min(), g.abs().max()


class OutputCatch:
    """A forward hook on D, armed for one iteration: the outputs of D's calls in the loop, each
    beside its input and D's state (its optimizer's steps so far, a parameter's version counter),
    so the doctor's step can take D's outputs on the very ``real`` and ``fake`` it is given, from
    one and the same D. The inputs are held (detached) until that step: their storage cannot be
    freed and its address given to another batch, which then passed for ``real`` (a critic's five
    steps per G step freed and reused the addresses of its batches: D's outputs on a fake taken
    for those on the reals). The latest ``_CALLS_KEPT`` calls: most loops' are those on ``real``
    and ``fake``, alive until the step anyway. The first such pair is taken: the D step's, before
    D's update. A loop whose G step draws a fresh ``fake`` (D sees it only after its update, while
    ``real`` was seen before) gives no pair, as D's scores before and after an update are not
    ranked against each other; the doctor's own forward then stands in. (Matched by address alone
    and across D's updates, draw 35's live macro-F1 fell from 0.865 to 0.841: D's accuracy swung,
    11 non-convergence false calls more; as here, every call is as before.)

    The hook is on D only while armed (an iteration in ten by default), so other iterations run
    D's forward as if the doctor were not there. It hangs on the module the loop calls where that
    runs its hooks outside a compiled graph (``torch.compile(D)``'s OptimizedModule); a D compiled
    in place gets none (dynamo guards on D's hooks: see ``_hook_point`` in the Doctor)."""

    def __init__(self, discriminator: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        self.discriminator = discriminator
        self.optimizer = optimizer
        self.handles: list[Any] = []
        # Each call: D's input, D's state, its output, and the gradients the loop's backward sent to that output.
        self.calls: list[tuple[torch.Tensor, tuple[int, int], Any, list[torch.Tensor]]] = []
        self.d_steps = 0  # D's optimizer steps while armed
        self.d_steps_at_arm = 0  # where this iteration's count began
        # The gradients a loss's backward sent to D's outputs before each of D's steps in this
        # iteration, and since the last one: a step none reached with a non-zero gradient trained
        # D on a penalty alone (SAGAN's WGAN-GP steps D's optimizer again on the penalty;
        # StyleGAN2's lazy R1 backpropagates it with 0 * D's output added).
        self.step_pushes: list[list[torch.Tensor] | None] = []  # None: no penalty before that step
        self.since_step: list[torch.Tensor] = []
        # A penalty's backward reached D's outputs since D's last step. A step without one trained
        # on a loss whatever gradient it sent: a hinge D beyond its margin sends exactly 0 (SNGAN
        # at D's lr x10 read 4 D steps per G step for 5).
        self.penalty_since_step = False
        # Fused optimizers leave the version counter alone, hence the optimizer's own count too.
        self.parameter = next((p for p in discriminator.parameters() if p.requires_grad), None)
        self.seconds = 0.0
        self.failed: Exception | None = None
        self.usable = not isinstance(discriminator, torch.jit.ScriptModule)  # takes no forward hooks
        self.penalised = False  # a backward with create_graph=True reached D's output: a gradient penalty
        # Whether a penalty's gradient with respect to D's input was seen, and the largest gradient a
        # loss sent into it since the last read (on the device): a weight of 0 sends exactly 0.
        self.penalty_inputs_seen = False
        self.penalty_weights: list[torch.Tensor] = []
        self.input_handles: list[Any] = []  # removed at the next arm: a batch the loop reuses would gather hooks

    def arm(self, on: bool) -> None:
        self.calls.clear()
        for handle in self.input_handles:
            handle.remove()
        self.input_handles = []
        self.d_steps_at_arm = self.d_steps
        self.step_pushes, self.since_step, self.penalty_since_step = [], [], False
        if on and not self.handles and self.usable and self.failed is None:
            self.handles.append(self.discriminator.register_forward_hook(CopySafeHook(self._keep)))
            if self.optimizer is not None:
                self.handles.append(self.optimizer.register_step_post_hook(CopySafeHook(self._stepped)))
        elif not on and self.handles:
            for handle in self.handles:
                handle.remove()
            self.handles = []

    def _stepped(self, *args: Any) -> None:
        self.d_steps += 1
        self.step_pushes.append(self.since_step if self.penalty_since_step else None)
        self.since_step, self.penalty_since_step = [], False

    def step_marks(self) -> list[torch.Tensor | float]:
        """Per D step of this iteration where a penalty reached D's outputs before it, the largest
        gradient a loss's backward sent there (0.0 where none did: a penalty-only step); 1.0 where
        no penalty did (a loss step, whatever its gradient); on the device, read at the flush."""
        return [
            1.0 if grads is None else torch.stack([g.abs().amax() for g in grads]).amax() if grads else 0.0 for grads in self.step_pushes
        ]

    def _keep(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        # Runs inside the loop's forward: an error is kept for the probe to raise under the
        # doctor's guard (reported once), never raised into training.
        if torch.compiler.is_compiling():  # traced into a graph: nothing kept, nothing more traced
            return
        start = time.perf_counter()
        try:
            if doctor_forward_running():
                return
            x = args[0] if args else None
            if isinstance(x, torch.Tensor):
                out = d_output_tensor(output)
                if isinstance(out, torch.Tensor):
                    state = (self.d_steps, -1 if self.parameter is None else self.parameter._version)
                    if len(self.calls) >= _CALLS_KEPT:  # the latest ones: the step's batches come last
                        del self.calls[0]
                    pushed: list[torch.Tensor] = []
                    if out.requires_grad:  # returns None: the gradient flows on unchanged
                        out.register_hook(functools.partial(_keep_push, pushed, self))
                    if x.requires_grad:  # a penalty's interpolates or R1's reals (also G's fakes in its step)
                        self.input_handles.append(x.register_hook(functools.partial(_keep_input_grad, self)))
                    self.calls.append((x.detach(), state, out.detach(), pushed))
        except Exception as exc:  # noqa: BLE001 - see above
            self.failed = exc
            self.arm(False)
        finally:
            self.seconds += time.perf_counter() - start

    def outputs_on(self, real: Any, fake: Any) -> tuple[Any, Any] | None:
        """D's outputs in the loop's first calls on ``real`` and on ``fake`` by the same D, or None."""
        if not (isinstance(real, torch.Tensor) and isinstance(fake, torch.Tensor)) or len(self.calls) < 2:
            return None
        on_real, on_fake = self._calls_on(real), self._calls_on(fake)
        return next(((r, f) for state, r, _ in on_real for state_f, f, _ in on_fake if state == state_f), None)

    def push_on(self, real: Any) -> list[torch.Tensor]:
        """The gradients the loop's backward sent to D's output in its first call on ``real`` that
        got any, each as its sum, its spread over the samples and its largest size (:func:`_keep_push`).
        Where D's optimizer stepped in this iteration, only a call it stepped after: one made
        after D's last step was G's (a relativistic G loss calls D on fresh reals, and its
        backward pushes their scores down; passed as ``real=``, that batch made a usual D read
        reversed). Where it did not (no ``d_optimizer``, or its step comes after the doctor's),
        any call."""
        if not isinstance(real, torch.Tensor):
            return []
        stepped = self.d_steps > self.d_steps_at_arm
        grads = next((pushed for (steps, _), _, pushed in self._calls_on(real) if pushed and (not stepped or steps < self.d_steps)), [])
        return [part for g in grads if g.numel() for part in _push_parts(g.reshape(-1).float())]

    def saw(self, x: Any) -> bool:
        """Whether the loop called D on ``x`` while armed."""
        return isinstance(x, torch.Tensor) and bool(self._calls_on(x))

    def _calls_on(self, x: torch.Tensor) -> list[tuple[tuple[int, int], Any, list[torch.Tensor]]]:
        # The kept inputs hold their storage: an input at x's address, shape and strides is x's data.
        return [(state, out, pushed) for kept, state, out, pushed in self.calls if same_data(kept, x)]


class DForwardProbe(Probe):
    """D's outputs when the loop does not pass them: kept from the loop's own D calls on the
    step's ``real`` and ``fake`` (:class:`OutputCatch`), else a no-grad D forward on a slice of
    the batch. On a DCGAN-style conv GAN that forward was 0.96 of the doctor's 2.4 ms per 70 ms
    step (twenty-eighth pass)."""

    name = "d_probe"
    schedule_field = "d_probe_every"
    signals = DOutputsProbe.signals
    cost = 0.3
    arms = True

    def __init__(self, host: ProbeHost, kind: OutputKind, d_optimizer: torch.optim.Optimizer | None = None) -> None:
        super().__init__(host)
        self.kind = kind
        # Only for D(x) / D(x, labels): a d_forward= may compute something else from D's output.
        hooked = host.d_hook_point if host.plain_d_forward else None
        self.catch = OutputCatch(hooked, d_optimizer) if hooked is not None else None
        if self.catch is not None:  # the first step is a measured one: its D calls are kept too
            self.catch.arm(True)
        self.loop_passes = False  # the loop passed D's outputs at the last due step: nothing to keep
        # Checked iterations where D's optimizer stepped: with none of the loop's D calls seen, and with some.
        self.unseen_calls = self.seen_calls = 0
        # Of those with calls seen: none on the step's real= and fake= (augmented, concatenated) and some.
        self.unmatched_calls = self.matched_calls = 0

    def due(self, inputs: StepInputs, every: int) -> bool:
        self.loop_passes = passed = inputs.d_real is not None and inputs.d_fake is not None
        return not passed and inputs.has_samples and super().due(inputs, every)

    def after_step(self, step: int, every: int) -> None:
        if self.catch is not None:  # armed for the next iteration when it is a measured one
            self.catch.arm(every > 0 and (step + 1) % every == 0 and not self.loop_passes)

    def hook_seconds(self) -> float:
        if self.catch is None:
            return 0.0
        seconds, self.catch.seconds = self.catch.seconds, 0.0
        return seconds

    def close(self) -> None:
        if self.catch is not None:
            self.catch.arm(False)

    def _note_penalty(self, catch: OutputCatch) -> None:
        """A gradient penalty is noted where its gradient reached a loss with a weight above 0 (read
        at the flush); where the penalty's gradient was not seen at D's input, from its backward alone."""
        weights, catch.penalty_weights = catch.penalty_weights, []
        if not catch.penalised or "gradient_penalty" in self.host.context().flags:
            return
        if not catch.penalty_inputs_seen:
            self.host.note_context({"gradient_penalty"}, {})
        elif weights:
            self.host.defer([torch.stack(weights).amax()], lambda numbers, step_values: self._weighed_penalty(numbers[0]))

    def _weighed_penalty(self, weight: float) -> None:
        if weight > 0 and "gradient_penalty" not in self.host.context().flags:
            self.host.note_context({"gradient_penalty"}, {})

    def _note_loss_steps(self, marks: list[float]) -> None:
        """The share of D's steps a loss reached its outputs before (not a penalty alone), where any did."""
        on_loss = sum(1 for m in marks if m > 0)
        share = round(on_loss / len(marks), 2) if on_loss else None
        if share is not None and share != self.host.context().values.get(D_LOSS_STEP_SHARE, 1.0):
            self.host.note_context(set(), {D_LOSS_STEP_SHARE: share})

    def idle_reason(self) -> str | None:
        """Said once: D trained while its forward hooks saw none of the loop's D calls, or none on
        the step's ``real=`` and ``fake=``."""
        if self.unmatched_calls >= 2 and not self.matched_calls and not self.unseen_calls:
            return (
                f"at {self.unmatched_calls} checked iterations none of the loop's calls of D was on the step's real= and fake= "
                "(D sees them augmented or put together with other samples), so D's outputs come from the doctor's "
                "own forward on them after D's step: a D that memorises its batches reads as separating them; pass "
                "doctor.step(d_real=, d_fake=) the loop's own outputs of D before its step"
            )
        if self.unseen_calls < 2 or self.seen_calls:
            return None
        return (
            f"D's optimizer stepped at {self.unseen_calls} checked iterations while D's forward hooks saw no call of D: the loop "
            "calls D.forward(x) directly (torch_mimicry's train_step does), not D(x), so D's loss form and a gradient penalty "
            "cannot be read from its calls, and D's outputs come from the doctor's own forward; call D(x), or declare what the "
            "loop uses (Doctor(d_output=..., uses={'gradient_penalty'}))"
        )

    def measure(self, inputs: StepInputs) -> Values:
        assert inputs.real is not None and inputs.fake is not None
        push: list[torch.Tensor] = []
        if self.catch is not None:
            if self.catch.failed is not None:
                failed, self.catch.failed = self.catch.failed, None
                raise failed
            if self.catch.d_steps > self.catch.d_steps_at_arm:
                self.seen_calls += bool(self.catch.calls)
                self.unseen_calls += not self.catch.calls
            caught = self.catch.outputs_on(inputs.real, inputs.fake)
            if self.catch.d_steps > self.catch.d_steps_at_arm and self.catch.calls:
                # A call on real= (a loop whose G step draws fake= after D's) is the usual loop.
                self.matched_calls += caught is not None or self.catch.saw(inputs.real)
                self.unmatched_calls += caught is None
            if self.kind.reversed is None or self.kind.linear is None:  # once both are known no push is read
                push = self.catch.push_on(inputs.real)
            self._note_penalty(self.catch)
            marks = self.catch.step_marks()
            if marks:
                self.host.defer(marks, lambda numbers, step_values: self._note_loss_steps(numbers))
            if caught is not None:
                pair = self.kind.scored(caught, (inputs.real, inputs.fake))
                return {} if pair is None else self.kind.values(*pair, push)
        n = self.host.schedule.d_probe_batch
        real, fake = inputs.real[:n].detach(), inputs.fake[:n].detach()
        y_real, y_fake = label_slices(inputs.labels, inputs.fake_labels, n)
        d = self.host.discriminator
        with untouched(d, real.device):
            custom = not self.host.plain_d_forward
            try:
                pair = self.kind.scored((self.host.d_forward(d, real, y_real), self.host.d_forward(d, fake, y_fake)), (real, fake), custom)
            except (RuntimeError, TypeError, ValueError, IndexError) as exc:
                if custom or isinstance(exc, ProbeRefused):
                    raise
                if y_real is None and y_fake is None:
                    raise ProbeRefused(
                        f"D's forward on the step's real= and fake= batches failed: {exc}. If D takes its input in another "
                        "form than the batches passed (preprocessed, reshaped, with other inputs), pass "
                        "Doctor(d_forward=lambda D, x, y: D(...)) that gives D x as the loop does"
                    ) from exc
                raise ProbeRefused(
                    f"D's forward on the step's samples with the labels given (labels=, fake_labels=) failed: {exc}. "
                    "The loop's own D calls on real= and fake= were not seen at this step, so the doctor ran D itself; "
                    "where D takes its labels in another form than G (one-hot maps against vectors), pass "
                    "Doctor(d_forward=lambda D, x, y: ...) that gives D its form, or d_real=/d_fake= to doctor.step"
                ) from exc
        if pair is None:
            return {}
        if min(real.shape[0], fake.shape[0]) < FEW_D_SAMPLES_BELOW and D_OUTPUTS_TRAINED_ON not in self.host.context().flags:
            self.host.note_context({D_OUTPUTS_TRAINED_ON}, {})
        return self.kind.values(*pair, push if self.catch is not None else None)
