"""D's loss form, learnt from the loss the loop passed and D's outputs in the same iteration.

A D loss value means nothing without its form: 0.15 is a D that wins every round under binary
cross-entropy and one that is barely separating under least squares towards 0/1 (chance is 0.25
there). A forward hook on D keeps the outputs of the loop's own D forwards of the iteration
(not those the doctor runs itself); at the first steps that pass ``d_loss``, the usual forms are
computed on each ordered pair of those outputs (real, fake), on the device, and the one the loss
equals (to float rounding) is noted in the context once. Then the hook is removed.

- ``d_loss_form``: ``bce_logits``, ``bce_prob``, ``ls01`` (least squares towards 1/0),
  ``ls_pm1`` (towards +1/-1), ``hinge`` or ``wasserstein``;
- ``d_loss_unit``: the factor by which the form's loss exceeds the conventions the rules' loss
  thresholds were calibrated in (BCE and hinge as the sum of the real and fake means, least
  squares towards +/-1 as half that sum). Least squares scales with the square of the gap
  between its targets, so 0/1 targets (gap 1, not 2) have a unit of 1/4 at the same half sum;
  a mean of the two terms instead of their sum halves it, and sums over the samples instead of
  means (``reduction='sum'``, d2l's GAN) multiply it by the batch's size.

BCE with the reals' target below 1 (one-sided label smoothing, Udacity's 0.9, or the target
declared as ``uses={"label_smoothing": t}``) is BCE too: learnt as such, with the flag
``label_smoothing``. Its unit is BCE's (chance is the same; its floor is above 0).

A loss that no form explains (a gradient penalty or an auxiliary classifier's loss added) is left
undecided after a few tries, and nothing changes: thresholds stay as calibrated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..context import D_LOSS_FORM_UNRECOGNISED
from ..errors import ProbeRefused
from .base import CopySafeHook, Probe, ProbeHost, StepInputs, Values, d_output_tensor, doctor_forward_running, same_data

# Sum-of-means form -> how its sum compares with the calibrated convention of that family.
_FORMS: tuple[tuple[str, float], ...] = (
    ("bce_logits", 1.0),
    ("bce_prob", 1.0),
    ("ls01", 0.5),
    ("ls_pm1", 2.0),
    ("hinge", 1.0),
    ("wasserstein", 1.0),
    ("bce_logits_smoothed", 1.0),
    ("bce_prob_smoothed", 1.0),
)
FORMS: tuple[str, ...] = tuple(name for name, _ in _FORMS)
#: The smoothed forms are learnt as the BCE they are, with the flag ``label_smoothing``.
_SMOOTHED = {"bce_logits_smoothed": "bce_logits", "bce_prob_smoothed": "bce_prob"}
#: The reals' target tried where none is declared: the usual one-sided smoothing.
SMOOTHED_TARGET = 0.9
#: Outputs that estimate P(real) (a threshold of 0.5 splits real from fake).
PROBABILITY_FORMS = frozenset({"bce_prob", "ls01"})
_SCALES = (1.0, 0.5)  # sum of the two means, or their mean
#: Every (form, unit, summed) a loss can be explained by, in the order :func:`errors` lists them;
#: ``summed``: sums over the samples, not means, the unit then times the batch's size.
CHOICES: tuple[tuple[str, float, bool], ...] = tuple(
    (name, base * scale, summed) for name, base in _FORMS for summed in (False, True) for scale in _SCALES
)
#: Numbers per pair in :func:`candidate_losses`: each form, then the samples per side.
_PER_PAIR = len(_FORMS) + 1
_RTOL = 1e-4  # the loss and the form on the same outputs: float rounding only
_TRIES = 10  # steps with a loss and two outputs of the loop's D forwards
_KEEP = 4  # the last outputs of an iteration (the D step's real and fake, a G step's, a penalty's)
# An iteration's first outputs kept besides, for a D step over accumulated micro-batches: its loss
# is the mean over them, the form on the micro-batches' outputs put together (lightweight-gan's
# default accumulates 4: D(fake), D(real) for each, then G's; its hinge D was read as a critic).
_KEEP_FIRST = 8
_GROUPS = (2, 3, 4)
_PATIENCE = 200  # steps without a single try before the hook is removed (the loop passes no loss)
# Tries that must agree before a form is taken: one try's 12 ordered pairs x 12 choices can meet
# a loss of another form by chance where D's outputs are all near 0 (a relativistic loss near
# log 2 once matched BCE on logits); two tries on different outputs hardly both do.
_AGREE = 2


def candidate_losses(real: torch.Tensor, fake: torch.Tensor, target: float = SMOOTHED_TARGET) -> torch.Tensor:
    """Each form of :data:`FORMS` as the sum of its real and fake means (the smoothed forms with
    the reals' ``target``), then the samples per side (NaN where the two differ), on the device."""
    r, f = real.detach().float().reshape(-1), fake.detach().float().reshape(-1)
    # torch's BCELoss clamps the log at -100; the same here so a saturated D matches.
    log_r, log_1mr, log_1mf = torch.log(r).clamp_min(-100), torch.log1p(-r).clamp_min(-100), torch.log1p(-f).clamp_min(-100)
    in_unit = (r.min() >= 0) & (r.max() <= 1) & (f.min() >= 0) & (f.max() <= 1)
    nan = torch.full_like(r[0], float("nan"))
    bce_prob = torch.where(in_unit, -(log_r.mean() + log_1mf.mean()), nan)
    smoothed_prob = torch.where(in_unit, -((target * log_r + (1 - target) * log_1mr).mean() + log_1mf.mean()), nan)
    return torch.stack(
        [
            F.softplus(-r).mean() + F.softplus(f).mean(),
            bce_prob,
            ((r - 1) ** 2).mean() + (f**2).mean(),
            ((r - 1) ** 2).mean() + ((f + 1) ** 2).mean(),
            F.relu(1 - r).mean() + F.relu(1 + f).mean(),
            f.mean() - r.mean(),
            (target * F.softplus(-r) + (1 - target) * F.softplus(r)).mean() + F.softplus(f).mean(),
            smoothed_prob,
            torch.full_like(r[0], float(r.numel()) if r.numel() == f.numel() else float("nan")),
        ]
    )


def errors(loss: float, candidates: list[float]) -> list[float]:
    """The relative error of each (form, unit, summed) of :data:`CHOICES` as the explanation of
    ``loss``; ``candidates``: one pair's :func:`candidate_losses`."""
    *values, n = candidates
    out: list[float] = []
    for value in values:
        for factor in (1.0, n):
            for scale in _SCALES:
                guess = scale * factor * value
                if not (loss == loss and guess == guess) or abs(value) < 1e-4:
                    out.append(float("inf"))
                else:
                    out.append(abs(loss - guess) / max(abs(loss), abs(guess), 1e-6))
    return out


def explained(loss: float, candidates: list[float]) -> dict[tuple[str, float], set[int]]:
    """Each (form, unit) that explains ``loss`` to float rounding, with the pairs (their index
    in ``candidates``, :func:`candidate_losses` of one or more (real, fake) pairs one after the
    other) on which it does."""
    found: dict[tuple[str, float], set[int]] = {}
    for pair, start in enumerate(range(0, len(candidates) - _PER_PAIR + 1, _PER_PAIR)):
        chunk = candidates[start : start + _PER_PAIR]
        for i, e in enumerate(errors(loss, chunk)):
            if e <= _RTOL:
                name, unit, summed = CHOICES[i]
                found.setdefault((name, unit * chunk[-1] if summed else unit), set()).add(pair)
    return found


def match(loss: float, candidates: list[float]) -> tuple[str, float] | None:
    """The one (form, unit) that explains ``loss`` (:func:`explained`); None when none or several
    do (a step where two forms coincide says nothing)."""
    found = explained(loss, candidates)
    return next(iter(found)) if len(found) == 1 else None


class LossForm:
    """What is known of D's loss form (host-side state shared with the D-output probes)."""

    def __init__(self) -> None:
        self.form: str | None = None
        self.unit: float | None = None
        self.tries = 0
        self.settled = 0  # tries whose numbers came back
        self.closed = False  # the probe stopped trying (hook removed)
        self.matches: dict[tuple[str, float], int] = {}  # (form, unit) -> tries it explained
        self.misses = 0  # settled tries that no single form explained
        # Tries whose explaining pair had D's output on the step's reals on the form's real side
        # (+1) or on its fake side (-1): a loss of mean D(real) - mean D(fake), as the original
        # WGAN code minimises, or BCE with the real label 0, trains D to score reals lower.
        self.sides: dict[int, int] = {+1: 0, -1: 0}
        self.reversed = False

    @property
    def open(self) -> bool:
        return self.form is None and self.tries < _TRIES and len(self.matches) <= 1

    def deciding(self) -> bool:
        """The form may still be learnt: trying, or tries still on their way to the host."""
        return self.form is None and (not self.closed or self.settled < self.tries)

    def tensors(
        self, loss: Any, pairs: list[tuple[torch.Tensor, torch.Tensor]], target: float = SMOOTHED_TARGET
    ) -> tuple[list[torch.Tensor], float | None] | None:
        """What to move to the host for one try (scalars: the loss if it is a tensor, then each
        pair's forms) and the loss if the loop passed a number; None when settled, given up, or
        there is no loss or no pair. A number stays on the host: no copy to the device."""
        if not self.open or loss is None or not pairs:
            return None
        head: list[torch.Tensor] = []
        number: float | None = None
        if isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                return None
            head = [loss.detach().float().reshape(1).to(pairs[0][0].device)]
        else:
            number = float(loss)
        self.tries += 1
        return list(torch.cat(head + [candidate_losses(r, f, target) for r, f in pairs]).unbind()), number

    def settle(self, numbers: list[float], sides: Sequence[int] = ()) -> tuple[set[str], dict[str, Any]]:
        """Context flags and values learnt from one try's numbers (empty while undecided).
        ``sides``: for each pair of the try, +1 where its first output is D's on the step's reals
        (or its second on the step's fakes), -1 the other way round, 0 where neither is known. A
        least-squares or Wasserstein loss is also flagged as the technique in use, so remedies do
        not suggest switching to it. ``reversed``: every try that placed the reals put them on the
        form's fake side (D trained to score reals lower, where the loss passed is the one D
        minimises; the D-output probes weigh it, :class:`~.discriminator.OutputKind`)."""
        self.settled += 1
        if self.form is not None:
            return set(), {}
        found = explained(numbers[0], numbers[1:])
        if len(found) != 1:
            self.misses += 1
            return set(), {}
        ((choice, pairs),) = found.items()
        self.matches[choice] = self.matches.get(choice, 0) + 1
        placed = {sides[i] for i in pairs if i < len(sides) and sides[i]}
        if len(placed) == 1:
            self.sides[placed.pop()] += 1
        # Taken once it explains _AGREE tries, at least as many as nothing explained, and no
        # try was explained by another form (then the loss is none of them: undecided).
        if len(self.matches) > 1 or self.matches[choice] < max(_AGREE, self.misses):
            return set(), {}
        form, self.unit = choice
        self.form = _SMOOTHED.get(form, form)
        self.reversed = self.sides[-1] >= _AGREE and self.sides[+1] == 0
        flags = {"least_squares_loss"} if self.form.startswith("ls") else {"critic"} if self.form == "wasserstein" else set()
        if form in _SMOOTHED:
            flags.add("label_smoothing")
        if self.form == "hinge":  # at chance 2, not BCE's 1.39: the rules reading D's loss against chance stand down
            flags.add("hinge_loss")
        return flags, {"d_loss_form": self.form, "d_loss_unit": self.unit}


def _batch_of(x: torch.Tensor | None, inputs: StepInputs) -> str | None:
    """Which of the step's batches D read: "real", "fake" (either as passed, or a detached view of
    it: the same storage, shape and strides), or None."""
    if x is None:
        return None
    for name, batch in (("real", inputs.real), ("fake", inputs.fake)):
        if isinstance(batch, torch.Tensor) and same_data(x, batch):
            return name
    return None


def accumulated_pairs(calls: list[tuple[torch.Tensor, torch.Tensor | None]], inputs: StepInputs) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[int]]:
    """An iteration's first 2k outputs taken as k micro-batches of one D step, each a pair of
    calls (its two sides alternating): the outputs of each side put together, both ways round,
    for k in :data:`_GROUPS`. Sides as the last micro-batch's (the step's batches are its)."""
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    sides: list[int] = []
    for k in _GROUPS:
        if len(calls) < 2 * k:
            break
        first, second = [out for out, _ in calls[: 2 * k : 2]], [out for out, _ in calls[1 : 2 * k : 2]]
        if len({o.numel() for o in first + second}) != 1 or len({o.device for o in first + second}) != 1:
            continue  # micro-batches of one size each side, or not micro-batches at all
        a, b = torch.cat([o.reshape(-1) for o in first]), torch.cat([o.reshape(-1) for o in second])
        last = _side(_batch_of(calls[2 * k - 2][1], inputs), _batch_of(calls[2 * k - 1][1], inputs))
        pairs += [(a, b), (b, a)]
        sides += [last, -last]
    return pairs, sides


def _side(first: str | None, second: str | None) -> int:
    """+1 where the pair (first, second) has the reals first or the fakes second, -1 where it
    has them the other way round, 0 where that is not known or contradictory."""
    standard = (first == "real" and second != "real") or (second == "fake" and first != "fake")
    swapped = (first == "fake" and second != "fake") or (second == "real" and first != "real")
    return 0 if standard == swapped else (+1 if standard else -1)


class LossFormProbe(Probe):
    """Keeps the outputs of the loop's D forwards of each iteration (a forward hook on D, removed
    once the form is known or given up) and tries the loss passed against them."""

    name = "loss_form"
    signals = ()
    cost = 0.05  # one try: 12 pairs' forms, a few small reductions; at most 10 tries per run
    arms = True

    def __init__(self, host: ProbeHost, form: LossForm) -> None:
        super().__init__(host)
        self.form = form
        self.captured: list[tuple[torch.Tensor, torch.Tensor | None]] = []  # D's outputs and inputs
        self.idle = 0
        self.failed: Exception | None = None
        self.handle: Any = None
        if "d_loss_unit" in host.context().values:
            # Declared by the user (uses={"d_loss_unit": ...}): the rules read that, and D gets no
            # hook (a D compiled in place would trace it into graphs of its own).
            self.form.closed = True
            return
        if isinstance(host.discriminator, torch.jit.ScriptModule):
            # Not an error in the user's code: TorchScript modules take no forward hooks. Said once,
            # without a traceback, with the way to give what the probe would have learnt.
            self.failed = ProbeRefused(
                "D is a TorchScript ScriptModule (torch.jit.script), which takes no forward hooks: the form of D's loss "
                "is not learnt from D's outputs; declare its unit if the loss is not BCE summed over the two "
                "batches, e.g. Doctor(..., uses={'d_loss_unit': 0.5}) for BCE averaged over them"
            )
            self.form.closed = True
            return
        try:
            hooked = host.d_hook_point if host.d_hook_point is not None else host.discriminator
            self.handle = hooked.register_forward_hook(CopySafeHook(self._capture))
        except Exception as exc:  # noqa: BLE001 - a D that takes no hooks otherwise: reported once at the first step, like any probe error
            self.failed = exc
            self.form.closed = True

    def _capture(self, module: nn.Module, args: Any, output: Any) -> None:
        # Runs inside the loop's forward: an error here is kept for measure() to raise under the
        # doctor's guard (reported once, probe switched off), never raised into training.
        try:
            if doctor_forward_running():
                return
            out = d_output_tensor(output)
            if isinstance(out, torch.Tensor) and out.numel() > 0:
                # The input, held to the step (its storage cannot be reused meanwhile): which of the
                # step's batches D read, to learn which side of the loss D's reals are on.
                x = args[0].detach() if args and isinstance(args[0], torch.Tensor) else None
                self.captured.append((out.detach(), x))
                if len(self.captured) > _KEEP_FIRST + _KEEP:
                    del self.captured[_KEEP_FIRST]  # the first ones (micro-batches) and the last ones
        except Exception as exc:  # noqa: BLE001 - see above
            self.failed = exc
            self.close()

    def due(self, inputs: StepInputs, every: int) -> bool:
        return self.failed is not None or (self.handle is not None and inputs.d_loss is not None and len(self.captured) >= 2)

    def measure(self, inputs: StepInputs) -> Values:
        if self.failed is not None:
            failed, self.failed = self.failed, None
            raise failed
        kept = self.captured[-_KEEP:]
        pairs = [(a, b) for i, (a, _) in enumerate(kept) for j, (b, _) in enumerate(kept) if i != j]
        batch = [_batch_of(x, inputs) for _, x in kept]
        sides = [_side(batch[i], batch[j]) for i in range(len(kept)) for j in range(len(kept)) if i != j]
        grouped, grouped_sides = accumulated_pairs(self.captured[:_KEEP_FIRST], inputs)
        pairs, sides = pairs + grouped, sides + grouped_sides
        declared = self.host.context().values.get("label_smoothing")
        target = float(declared) if isinstance(declared, (int, float)) and 0.5 < declared < 1 else SMOOTHED_TARGET
        attempt = self.form.tensors(inputs.d_loss, pairs, target)
        if attempt is not None:
            self.idle = 0
            tensors, number = attempt
            self.host.defer_first(tensors, lambda numbers, values: self._settle(numbers if number is None else [number, *numbers], sides))
        return {}

    def _settle(self, numbers: list[float], sides: list[int]) -> None:
        flags, learnt = self.form.settle(numbers, sides)
        if learnt:
            self.host.note_context(flags, learnt)
        self._note_if_unrecognised()

    def _note_if_unrecognised(self) -> None:
        """Tried and none of the forms explained the loss (a penalty or auxiliary term added, a D
        with two heads, a relativistic D): the context says so, and the report that D's loss is
        read in the calibrated units for want of its own."""
        form = self.form
        if form.form is None and form.tries and (form.closed or not form.open) and form.settled >= form.tries:
            self.host.note_context(set(), {"d_loss_form": D_LOSS_FORM_UNRECOGNISED})

    def after_step(self, step: int, every: int) -> None:
        if self.handle is None:  # done (or never hooked): nothing left to do at any step
            return
        self.captured.clear()
        self.idle += 1
        if not self.form.open or self.idle > _PATIENCE:
            self.close()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        self.captured.clear()
        self.form.closed = True
        self._note_if_unrecognised()
