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
  a mean of the two terms instead of their sum halves it.

A loss that no form explains (a gradient penalty or an auxiliary classifier's loss added) is left
undecided after a few tries, and nothing changes: thresholds stay as calibrated.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..context import D_LOSS_FORM_UNRECOGNISED
from ..errors import ProbeRefused
from .base import CopySafeHook, Probe, ProbeHost, StepInputs, Values, d_output_tensor, doctor_forward_running

# Sum-of-means form -> how its sum compares with the calibrated convention of that family.
_FORMS: tuple[tuple[str, float], ...] = (
    ("bce_logits", 1.0),
    ("bce_prob", 1.0),
    ("ls01", 0.5),
    ("ls_pm1", 2.0),
    ("hinge", 1.0),
    ("wasserstein", 1.0),
)
FORMS: tuple[str, ...] = tuple(name for name, _ in _FORMS)
#: Outputs that estimate P(real) (a threshold of 0.5 splits real from fake).
PROBABILITY_FORMS = frozenset({"bce_prob", "ls01"})
_SCALES = (1.0, 0.5)  # sum of the two means, or their mean
#: Every (form, unit) a loss can be explained by, in the order :func:`errors` lists them.
CHOICES: tuple[tuple[str, float], ...] = tuple((name, base * scale) for name, base in _FORMS for scale in _SCALES)
_RTOL = 1e-4  # the loss and the form on the same outputs: float rounding only
_TRIES = 10  # steps with a loss and two outputs of the loop's D forwards
_KEEP = 4  # the last outputs of an iteration (the D step's real and fake, a G step's, a penalty's)
_PATIENCE = 200  # steps without a single try before the hook is removed (the loop passes no loss)
# Tries that must agree before a form is taken: one try's 12 ordered pairs x 12 choices can meet
# a loss of another form by chance where D's outputs are all near 0 (a relativistic loss near
# log 2 once matched BCE on logits); two tries on different outputs hardly both do.
_AGREE = 2


def candidate_losses(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Each form of :data:`FORMS` as the sum of its real and fake means, on the device."""
    r, f = real.detach().float().reshape(-1), fake.detach().float().reshape(-1)
    # torch's BCELoss clamps the log at -100; the same here so a saturated D matches.
    log_r, log_1mf = torch.log(r).clamp_min(-100), torch.log1p(-f).clamp_min(-100)
    in_unit = (r.min() >= 0) & (r.max() <= 1) & (f.min() >= 0) & (f.max() <= 1)
    bce_prob = torch.where(in_unit, -(log_r.mean() + log_1mf.mean()), torch.full_like(r[0], float("nan")))
    return torch.stack(
        [
            F.softplus(-r).mean() + F.softplus(f).mean(),
            bce_prob,
            ((r - 1) ** 2).mean() + (f**2).mean(),
            ((r - 1) ** 2).mean() + ((f + 1) ** 2).mean(),
            F.relu(1 - r).mean() + F.relu(1 + f).mean(),
            f.mean() - r.mean(),
        ]
    )


def errors(loss: float, candidates: list[float]) -> list[float]:
    """The relative error of each (form, unit) of :data:`CHOICES` as the explanation of ``loss``."""
    out: list[float] = []
    for value in candidates:
        for scale in _SCALES:
            guess = scale * value
            if not (loss == loss and guess == guess) or abs(value) < 1e-4:
                out.append(float("inf"))
            else:
                out.append(abs(loss - guess) / max(abs(loss), abs(guess), 1e-6))
    return out


def match(loss: float, candidates: list[float]) -> tuple[str, float] | None:
    """The one (form, unit) that explains ``loss`` to float rounding, ``candidates`` being
    :func:`candidate_losses` of one or more (real, fake) pairs one after the other; None when
    none or several do (a step where two forms coincide says nothing)."""
    n = len(_FORMS)
    found = {
        CHOICES[i]
        for start in range(0, len(candidates) - n + 1, n)
        for i, e in enumerate(errors(loss, candidates[start : start + n]))
        if e <= _RTOL
    }
    return found.pop() if len(found) == 1 else None


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

    @property
    def open(self) -> bool:
        return self.form is None and self.tries < _TRIES and len(self.matches) <= 1

    def deciding(self) -> bool:
        """The form may still be learnt: trying, or tries still on their way to the host."""
        return self.form is None and (not self.closed or self.settled < self.tries)

    def tensors(self, loss: Any, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[list[torch.Tensor], float | None] | None:
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
        return list(torch.cat(head + [candidate_losses(r, f) for r, f in pairs]).unbind()), number

    def settle(self, numbers: list[float]) -> tuple[set[str], dict[str, Any]]:
        """Context flags and values learnt from one try's numbers (empty while undecided). A
        least-squares or Wasserstein loss is also flagged as the technique in use, so remedies
        do not suggest switching to it."""
        self.settled += 1
        if self.form is not None:
            return set(), {}
        found = match(numbers[0], numbers[1:])
        if found is None:
            self.misses += 1
            return set(), {}
        self.matches[found] = self.matches.get(found, 0) + 1
        # Taken once it explains _AGREE tries, at least as many as nothing explained, and no
        # try was explained by another form (then the loss is none of them: undecided).
        if len(self.matches) > 1 or self.matches[found] < max(_AGREE, self.misses):
            return set(), {}
        self.form, self.unit = found
        flags = {"least_squares_loss"} if self.form.startswith("ls") else {"critic"} if self.form == "wasserstein" else set()
        return flags, {"d_loss_form": self.form, "d_loss_unit": self.unit}


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
        self.captured: list[torch.Tensor] = []
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
                self.captured.append(out.detach())
                del self.captured[:-_KEEP]
        except Exception as exc:  # noqa: BLE001 - see above
            self.failed = exc
            self.close()

    def due(self, inputs: StepInputs, every: int) -> bool:
        return self.failed is not None or (self.handle is not None and inputs.d_loss is not None and len(self.captured) >= 2)

    def measure(self, inputs: StepInputs) -> Values:
        if self.failed is not None:
            failed, self.failed = self.failed, None
            raise failed
        outs = self.captured
        pairs = [(a, b) for i, a in enumerate(outs) for j, b in enumerate(outs) if i != j]
        attempt = self.form.tensors(inputs.d_loss, pairs)
        if attempt is not None:
            self.idle = 0
            tensors, number = attempt
            self.host.defer_first(tensors, lambda numbers, values: self._settle(numbers if number is None else [number, *numbers]))
        return {}

    def _settle(self, numbers: list[float]) -> None:
        flags, learnt = self.form.settle(numbers)
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
