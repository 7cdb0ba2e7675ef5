"""What every probe shares: the Schedule, the Probe base class, the inputs of one step, and the
host through which the Doctor lends its probes the models, the feature extractor and its services.

A probe declares its ``name`` (the name a fault switches off), the ``schedule_field`` giving its
interval (None: every step, never stretched by the overhead budget), the ``signals`` it writes
(names or ``*`` patterns, all known to :data:`gandoctor.signals.SIGNALS`) and its ``cost`` (an
estimate in milliseconds per measurement on one CPU core at the default sizes; the budget starts
from it and then uses what it measures). ``measure`` returns values (tensors stay on the device)
and never mutates what other probes wrote.
"""

from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..context import RunContext
from ..errors import ProbeRefused

if TYPE_CHECKING:
    from .samples import FeatureBank

Values = Mapping[str, "torch.Tensor | float"]
DForward = Callable[[nn.Module, torch.Tensor, Any], torch.Tensor]
_ZERO_ALLOWED = ("fidelity_every", "spectrum_every", "ndb_every", "latent_every", "sample_grid_every")


@dataclass(frozen=True)
class Schedule:
    """How often each probe runs, in doctor steps, and the overhead budget.

    ``budget``: the share of the training step's wall time the doctor may take (0.05 = 5%);
    probes whose measured cost exceeds it run at integer multiples of these intervals (never
    more often than set here). None = the fixed intervals below, whatever they cost.
    """

    flush_every: int = 25
    d_probe_every: int = 10
    # Up to this many of the batch's real and fake samples in the doctor's own D forward: the whole
    # batch of most loops (64 measured D's accuracy with more noise: held-out live macro-F1 0.860 /
    # 0.857 -> 0.863 / 0.864 on the corpus at 256, one healthy alarm fewer, fifteenth pass).
    d_probe_batch: int = 256
    weight_every: int = 50
    layer_every: int = 50
    feature_every: int = 25
    feature_batch: int = 128
    sample_stats_every: int = 50
    feature_dim: int = 64
    power_iterations: int = 2
    # Full SVD of D's matrices (Liu et al. 2019's "spectral collapse"); 0 = off. Larger matrices are skipped.
    spectrum_every: int = 200
    spectrum_max_elements: int = 1_000_000
    extended_sample_stats: bool = False  # density, recall, Vendi ratio: ~19 ms instead of ~6.5 ms per measurement
    # torch-fidelity FID/KID on the sample-statistics features every N steps (0 = off); it runs
    # with the sample statistics, so N must be a multiple of sample_stats_every.
    fidelity_every: int = 0
    # NDB (k-means bins on the reals, a two-proportion test per bin) every N steps (0 = off); about
    # 6 ms per measurement on one core for 256 samples of 64 dimensions.
    ndb_every: int = 0
    # Gradient norms are taken at the optimizer steps of every grad_every-th iteration.
    grad_every: int = 1
    # Fixed latent codes through G every N steps (0 = off): latent.drift and latent.cell_churn, and a sample grid
    # written to the run log every ``sample_grid_every`` of those checks (0 = never written).
    latent_every: int = 50
    latent_batch: int = 128
    sample_grid_every: int = 10
    budget: float | None = 0.05
    # Under torch.distributed: seconds a flush waits for the other ranks before the reduction
    # across ranks is switched off (a rank hung or gone); 0 = no reduction (see probes/distributed.py).
    rank_timeout: float = 60.0

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if name == "rank_timeout":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                    raise ValueError(f"Schedule.rank_timeout must be 0 (no reduction across ranks) or a number of seconds, got {value!r}")
                continue
            if name == "budget":
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1):
                    raise ValueError(f"Schedule.budget must be None (fixed intervals) or a fraction in (0, 1), got {value!r}")
                continue
            if name == "extended_sample_stats":
                if not isinstance(value, bool):
                    raise ValueError(f"Schedule.{name} must be True or False, got {value!r}")
                continue
            if name in _ZERO_ALLOWED:
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"Schedule.{name} must be 0 (off) or a positive integer, got {value!r}")
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Schedule.{name} must be a positive integer, got {value!r}")
        for name in ("fidelity_every", "ndb_every"):
            if getattr(self, name) % self.sample_stats_every:
                raise ValueError(
                    f"Schedule.{name} ({getattr(self, name)}) must be a multiple of "
                    f"Schedule.sample_stats_every ({self.sample_stats_every}): it runs on the sample-statistics features"
                )


@dataclass(frozen=True)
class StepInputs:
    """What the training loop passed to one ``Doctor.step`` call."""

    step: int
    d_loss: Any = None
    g_loss: Any = None
    real: torch.Tensor | None = None
    fake: torch.Tensor | None = None
    partial: bool = False  # a batch under half the largest seen (an epoch's last): no sample statistics
    d_real: torch.Tensor | None = None
    d_fake: torch.Tensor | None = None
    labels: Any = None
    fake_labels: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_samples(self) -> bool:
        return self.real is not None and self.fake is not None and not self.partial


def widest_float(device: torch.device) -> torch.dtype:
    """float64, or float32 on a device without it (Apple's MPS): sums of huge norms stay finite."""
    return torch.float32 if device.type == "mps" else torch.float64


def no_hook(*args: Any, **kwargs: Any) -> None:
    """What a copy of a watched module or optimizer holds in place of the doctor's hook."""
    return None


class CopySafeHook:
    """A hook the doctor puts on the user's D or optimizer, which a copy of them does not take
    along: ``copy.deepcopy(D)`` (an EMA or an unrolled GAN's look-ahead D) and ``pickle`` /
    ``torch.save(D)`` of the whole module failed on the doctor's open log file behind a bound
    method ("cannot pickle '_io.TextIOWrapper'"), and a copy's forwards must not feed the
    doctor watching the original. The copy gets :func:`no_hook` instead."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> Callable[..., None]:
        return no_hook

    def __reduce__(self) -> tuple[Any, ...]:
        return (_no_hook_factory, ())


def _no_hook_factory() -> Callable[..., None]:
    return no_hook


_own_forwards = [0]  # > 0 while a probe runs a model itself (inside `untouched`)


def doctor_forward_running() -> bool:
    """True inside a forward the doctor runs itself: hooks that watch the loop's forwards skip it."""
    return _own_forwards[0] > 0


#: Frozen parameters up to this size are copied before the doctor's own forwards (state a forward
#: may write in place); larger ones (a frozen backbone) only have the tensor they hold kept.
_FROZEN_COPY_NUMEL = 1 << 16


@contextlib.contextmanager
def untouched(module: nn.Module, device: torch.device) -> Iterator[None]:
    """Run a forward that leaves no trace: buffers restored, RNG streams forked, and no collective
    (:func:`_local_sync_batch_norm`). Parameters that do not train are state too: spectral-norm
    code that predates ``torch.nn.utils.spectral_norm`` (christiancosgrove's SN-GAN) keeps its
    power-iteration vectors as ``Parameter(requires_grad=False)`` and sets ``u.data = ...`` in
    every forward; the doctor's forward advanced them and training diverged from the first step.
    Python's global generator is forked too: rosinality's StyleGAN draws its style mixing from
    ``random`` inside G's forward (NumPy's is not: its state costs 86 us to save, Python's 12)."""
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    python_state = random.getstate()
    frozen = [p for p in module.parameters() if not p.requires_grad]
    held = [(p, p.data) for p in frozen]  # a forward that swaps in new data (p.data = ...) is undone by swapping back
    copies = [(p, p.detach().clone()) for p in frozen if p.numel() <= _FROZEN_COPY_NUMEL]  # one that writes in place
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    _own_forwards[0] += 1
    try:
        with torch.random.fork_rng(devices=devices), _local_sync_batch_norm(module):
            yield
    finally:
        _own_forwards[0] -= 1
        random.setstate(python_state)
        for buffer, copy in saved:
            buffer.copy_(copy)
        with torch.no_grad():
            for parameter, data in held:
                if parameter.data_ptr() != data.data_ptr() or parameter.shape != data.shape:
                    parameter.data = data
            for parameter, copy in copies:
                parameter.copy_(copy)


@contextlib.contextmanager
def _local_sync_batch_norm(module: nn.Module) -> Iterator[None]:
    """SyncBatchNorm layers normalise with this rank's batch alone during the doctor's own forwards.

    In training mode under torch.distributed, SyncBatchNorm all-reduces its batch statistics on
    the training's own process group. A probe forward on one rank (each rank's overhead budget
    stretches its own schedule) would then be matched with another rank's next training
    collective: a hang, or statistics mixed into the training. Here such a layer computes plain
    batch-norm on its input instead; in eval mode it runs as usual (it syncs nothing there).
    """
    layers = [m for m in module.modules() if isinstance(m, nn.SyncBatchNorm)]
    own = [(m, vars(m).get("forward")) for m in layers]  # a forward set on the instance, if any
    for layer in layers:
        vars(layer)["forward"] = _local_batch_norm(layer)  # nn.Module calls self.forward: the instance's first
    try:
        yield
    finally:
        for layer, previous in own:
            del vars(layer)["forward"]
            if previous is not None:
                vars(layer)["forward"] = previous


def _local_batch_norm(layer: nn.SyncBatchNorm) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        if not layer.training:
            return nn.SyncBatchNorm.forward(layer, x)
        # Batch statistics, no running-statistics update (the buffers are restored anyway).
        return nn.functional.batch_norm(x, None, None, layer.weight, layer.bias, True, 0.0, layer.eps)

    return forward


#: What a deferred value's owner does at the flush: ``then(numbers, step_values)``.
Settle = Callable[[list[float], dict[str, float]], None]


@dataclass
class ProbeHost:
    """What the Doctor lends its probes: the models, shared state and a few services.

    ``note_context`` adds facts to the run context; ``defer(tensors, then)`` moves ``tensors``
    to the host with the next flush (in its one transfer; host floats pass as they are) and calls
    ``then(numbers, values)`` with that step's host values before they are recorded (``defer_first``: before every other
    ``then`` of the flush); ``guard(name, fn)`` runs a sub-part
    under the Doctor's fault containment; ``write_samples(step, grid)`` writes a sample grid.
    """

    generator: nn.Module
    discriminator: nn.Module
    d_forward: DForward
    d_output: str
    schedule: Schedule
    extract: Callable[[torch.Tensor, Any], torch.Tensor]
    rng: torch.Generator  # the doctor's own stream (projections, power iteration); never the global one
    seed: int
    bank: FeatureBank
    context: Callable[[], RunContext]
    note_context: Callable[[set[str], Mapping[str, Any]], None]
    defer: Callable[[Sequence[torch.Tensor | float], Settle], None]
    guard: Callable[[str, Callable[[], Any]], Any]
    write_samples: Callable[[int, Mapping[str, Any] | None], None]
    # Like ``defer``, but settled before every other deferred value of the same flush: for what
    # other probes' settling reads (the loss form, learnt from tries that agree).
    defer_first: Callable[[Sequence[torch.Tensor | float], Settle], None]
    # D is called as ``D(x)`` / ``D(x, labels)`` (no ``d_forward=`` given): its outputs in the
    # loop's own forwards are the outputs the doctor's D forward would compute, and may be kept.
    plain_d_forward: bool = False
    # Where a forward hook sees the loop's own D calls without entering a compiled graph (dynamo
    # traces a compiled module's hooks and guards on them: arming one recompiles D); None where
    # the module the loop calls is itself compiled in place (``D.compile()``). See Doctor.
    d_hook_point: nn.Module | None = None

    def features_move_with_d(self) -> bool:
        """True when the sample features are D's own (``d_penultimate``): they change as D trains,
        so k-means cells and features kept from an earlier check describe another space."""
        chosen = getattr(self.extract, "chosen", None)  # what `auto` picked, as soon as it has (before the run context hears it)
        return (chosen or self.context().values.get("features")) == "d_penultimate"


class Probe:
    """One measurement. Subclasses set the class attributes and implement :meth:`measure`."""

    name: str
    schedule_field: ClassVar[str | None] = None
    signals: tuple[str, ...] = ()
    cost: ClassVar[float] = 0.0  # ms per measurement, one CPU core, default sizes
    arms: ClassVar[bool] = False  # has hooks: after_step and hook_seconds are called every step
    max_stretch: ClassVar[int] = 8  # the overhead budget never makes the interval longer than this many times the declared one

    def __init__(self, host: ProbeHost) -> None:
        self.host = host

    def interval(self) -> int:
        """The declared interval in steps; 0 = off."""
        if self.schedule_field is None:
            return 1
        return int(getattr(self.host.schedule, self.schedule_field))

    def due(self, inputs: StepInputs, every: int) -> bool:
        """Whether to run at this step, ``every`` being the (possibly stretched) interval.
        The Doctor checks the interval first; subclasses add what else they need."""
        return every > 0 and inputs.step % every == 0

    def measure(self, inputs: StepInputs) -> Values:
        raise NotImplementedError

    def final(self, step: int) -> Values:
        """Called once when training ends (``Doctor.close``), ``step`` the last step: a last
        measurement of what the schedule has not yet measured. Nothing by default."""
        return {}

    def after_step(self, step: int, every: int) -> None:
        """With ``arms``: called after every step (due or not), e.g. to arm a hook for the next one."""

    def hook_seconds(self) -> float:
        """Seconds spent in this probe's hooks (inside the training step) since the last call."""
        return 0.0

    def idle_reason(self) -> str | None:
        """Why this probe, on in the schedule, has not measured yet and what would let it; None
        when nothing stops it. The Doctor says it once (a warning, in the run log and the report)
        after the probe has had two intervals to run."""
        return None

    def close(self) -> None:
        """Release hooks; called once by ``Doctor.close``."""


def scalar(value: Any) -> torch.Tensor | float | None:
    """A loss or user value as a 0-d float tensor (kept on its device) or a float."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        numel = value.numel()
        if numel == 0:
            return None
        if numel == 1 and value.is_cpu:
            # A CPU value is read at once: no device to wait for, and a read costs a quarter of
            # the detach and the flush's later read it replaces (every step, for each loss).
            return float(value.item())
        # On an accelerator, kept there (the flush converts all values in one transfer).
        return value.detach().float().mean() if numel > 1 else value.detach()
    return float(value)


#: Keys under which a D that returns a dict (or a Hugging Face ``ModelOutput``) holds its score.
#: ``adv_output``: PyTorch-StudioGAN's discriminators (``{"h", "adv_output", "embed", "label", ...}``).
D_OUTPUT_KEYS = ("logits", "logit", "score", "scores", "validity", "output", "out", "pred", "d_out", "adv_output")


def same_data(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``a`` and ``b`` view the same data: one storage address, shape and strides (a tensor and its
    ``.detach()``). Held tensors keep their storage, so an address cannot have been reused."""
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()


def d_output_tensor(out: Any) -> Any:
    """D's score from what its forward returns: the first of a tuple (validity, class logits), a
    dict's score under a known key (:data:`D_OUTPUT_KEYS`) or its one tensor; anything else as is."""
    if isinstance(out, (tuple, list)):
        return out[0] if out else out
    if isinstance(out, Mapping):
        for key in D_OUTPUT_KEYS:
            if isinstance(out.get(key), torch.Tensor):
                return out[key]
        tensors = [v for v in out.values() if isinstance(v, torch.Tensor)]
        if len(tensors) == 1:
            return tensors[0]
        raise ProbeRefused(
            f"D returns a dict with keys {', '.join(repr(k) for k in list(out)[:8])}, none of them a score the doctor "
            f"knows ({', '.join(D_OUTPUT_KEYS)}): pass Doctor(d_forward=lambda D, x, y: D(x)['<key>']) (D(x, y) where D takes labels) for D's outputs "
            "(its loss form, read from the loop's own calls of D, stays unread: declare it, e.g. Doctor(uses={'hinge_loss'}))"
        )
    return out


def per_sample(out: Any) -> torch.Tensor:
    """D output of any shape (B,), (B,1), (B,1,H,W) → (B,) mean score per sample."""
    out = d_output_tensor(out).detach().float()
    return out.reshape(out.shape[0], -1).mean(dim=1) if out.dim() > 1 else out.reshape(-1)


def label_slices(labels: Any, fake_labels: Any, n: int) -> tuple[Any, Any]:
    """Labels for the first ``n`` samples; fakes share the real labels unless given their own."""
    y_real = labels[:n] if isinstance(labels, torch.Tensor) else labels
    if fake_labels is None:
        return y_real, y_real
    return y_real, fake_labels[:n] if isinstance(fake_labels, torch.Tensor) else fake_labels


def layer_of(param_name: str) -> str:
    """The module a parameter belongs to (``net.0.weight`` → ``net.0``), spectral norm unwrapped."""
    name = param_name
    for suffix in (".parametrizations.weight.original", ".weight_orig", ".weight", ".bias"):
        if name.endswith(suffix):
            return name[: -len(suffix)] or "root"
    return name.rsplit(".", 1)[0] if "." in name else name
