"""Doctor: attaches to G, D and their optimizers, records signals, never breaks training.

The Doctor schedules probes (see :mod:`gandoctor.probes`), guards them, buffers their values on
the device, moves them to the host in one transfer every ``flush_every`` steps, and writes them.
Under torch.distributed every rank records and each flush reduces the values across the ranks
(:mod:`.distributed`); rank 0 alone writes the run log.
Any exception inside a probe is logged once (logger ``gandoctor``) with its traceback, written
to the run log as an event, and that probe is switched off; ``strict=True`` re-raises instead.
The diagnosis is imported only by :meth:`Doctor.report` and, when a live option is given
(``on_finding``, ``alerts``, ``stop_on``, ``raise_on_nonfinite``, ``live_every``, ``live_panel``),
by the live monitor of :mod:`gandoctor.live`, which runs after each flush.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import math
import os
import sys
import time
import weakref
from collections import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable, Mapping, Sequence, TypeVar

import torch
from torch import nn

from ..context import ContextInference, RunContext, inspect_training, latent_shape_candidates
from ..errors import ProbeRefused, RuleError
from ..features import FeatureContext, build_extractor
from ..runlog import RunLogWriter, round_value
from ..signals import SignalLog
from .base import DForward, Probe, ProbeHost, Schedule, Settle, StepInputs, untouched, widest_float
from .budget import Budget
from .discriminator import DForwardProbe, DOutputsProbe, OutputKind
from .distributed import RankReducer, is_main_process, with_pending
from .gradients import GradientProbe
from .latents import LatentProbe, SampleLatent, takes_empty_classes, takes_two_inputs
from .losses import LossProbe
from .lossform import LossForm, LossFormProbe
from .optimizers import OptimizerProbe
from .samples import BinReservoirProbe, FeatureBank, FeatureProbe, FidelityProbe, NdbProbe, SampleStatsProbe, SmallBatchTopUp
from .spectrum import SpectrumProbe
from .visits import Visits
from .weights import WeightProbe

if TYPE_CHECKING:
    from ..config import Config
    from ..live import AlertSink, FindingCallback, LiveMonitor
    from ..report import Report

logger = logging.getLogger("gandoctor")
FeatureFn = Callable[[torch.Tensor], torch.Tensor]
_Self = TypeVar("_Self", bound="_ClosedOnExit")
Deferred = tuple[Sequence[torch.Tensor | float], Settle, bool]  # tensors, then, settled before the others


_CALLS_D = frozenset({"d_probe", "features"})  # probes that run D themselves (through d_forward)


def _default_d_forward(discriminator: nn.Module) -> DForward:
    """``D(x, labels)`` when D's forward has room for labels (its signature read once), else
    ``D(x)``: an ACGAN's D classifies the labels itself, while its G needs ``fake_labels=``.
    StyleGAN2-ADA's unconditional ``D(img, c)`` gets an empty c (:func:`takes_empty_classes`)."""
    takes_labels, no_classes = takes_two_inputs(discriminator), takes_empty_classes(discriminator)

    def d_forward(d: nn.Module, x: torch.Tensor, labels: Any) -> torch.Tensor:
        # A D compiled in place runs eagerly here: the doctor's no-grad forward would be a graph
        # of its own (grad mode is guarded), one more towards dynamo's cache limit.
        call = d._call_impl if _compiled_in_place(d) else d
        if no_classes:
            return call(x, x.new_zeros(x.shape[0], 0))
        return call(x) if labels is None or not takes_labels else call(x, labels)

    return d_forward


class _Batches:
    """The samples of a step as the probes take them: the images of a loader's ``(images,
    labels)`` or ``{"pixel_values": images, ...}`` batch passed whole (the Quickstart's ``for
    step, real in enumerate(loader)`` over a labelled dataset), and whether the batch is an
    epoch's short last one (e.g. 5 of 1797 digits in batches of 64: under half the largest
    seen), whose handful of samples is noise."""

    def __init__(self, warn: Callable[[str], None], on_resize: Callable[[tuple[int, ...], tuple[int, ...]], None] = lambda old, new: None) -> None:
        self.largest = 0
        self.warn = warn
        self.on_resize = on_resize  # the samples changed size (a progressive GAN grew): the sample statistics restart
        self.paired_said = False
        self.not_tensor_said = False
        self.shapes_said = False
        self.reshaped_said = False
        self.sample_shape: tuple[int, ...] | None = None

    def take(self, real: Any, fake: Any) -> tuple[Any, Any, bool]:
        if not (isinstance(real, torch.Tensor) and isinstance(fake, torch.Tensor)):  # plain tensors (the common case) pass as they are
            if not self.paired_said and (_image_pair(real) or _image_pair(fake)):
                self.paired_said = True  # a CoGAN's two domains: the probes read the first only, and say so once
                self.warn(
                    "real= or fake= is a pair of image batches of one shape (two domains, as in CoGAN?): the doctor reads "
                    "the first as the samples, as it does for a loader's (images, labels); attach a second Doctor for the "
                    "other domain's G/D pair to watch it too"
                )
            real_given = real
            real, fake = self._samples(_batch_tensor(real), "real"), self._samples(_batch_tensor(fake), "fake")
            if _is_numpy(real_given) and isinstance(real, torch.Tensor) and isinstance(fake, torch.Tensor) and fake.is_floating_point():
                real = real.to(device=fake.device, dtype=fake.dtype)  # NumPy's float64 on the host, beside G's samples
        if not isinstance(real, torch.Tensor) or real.dim() == 0:
            return real, fake, False
        # One shape comparison a step; sizes are compared only where the shapes differ.
        if isinstance(fake, torch.Tensor) and fake.dim() >= 1 and fake.shape[1:] != real.shape[1:]:
            if math.prod(real.shape[1:]) != math.prod(fake.shape[1:]):
                if not self.shapes_said:  # devnag's 1-D GAN: real (1, 500), fake (500, 1)
                    self.shapes_said = True
                    self.warn(
                        f"real= holds {math.prod(real.shape[1:])} values a sample (shape {tuple(real.shape)}) and fake= {math.prod(fake.shape[1:])} "
                        f"(shape {tuple(fake.shape)}): the probes read the first dimension as the batch; pass both as "
                        "(batch, ...) of one sample's size (500 scalars are (500, 1)), or the probes that read samples "
                        "(D probe, features, sample statistics) skip the steps that pass them so"
                    )
                return None, None, False
            self._settle_shape(real, fake)
        elif self.sample_shape is None:
            self._settle_shape(real, fake)
        elif real.shape[1:] != self.sample_shape and math.prod(real.shape[1:]) != math.prod(self.sample_shape):
            # Real and fake of one new size: PGAN's 4x4 -> 8x8. Features of the two sizes do not compare.
            old = self.sample_shape
            self._settle_shape(real, fake)
            self.on_resize(old, tuple(real.shape[1:]))
        self.largest = max(self.largest, int(real.shape[0]))
        return real, fake, 2 * int(real.shape[0]) < self.largest

    def _settle_shape(self, real: torch.Tensor, fake: Any) -> None:
        """The shape the sample features read every sample in: the reals', or the fakes' where they
        hold the same values in more dimensions. An MLP G's flat (N, 784) beside the loader's (N, 1,
        28, 28) was compared as it came: the features pooled the images and projected the flat rows,
        so real digits passed flat read as far from the data and a collapse went unseen."""
        shape = tuple(real.shape[1:])
        if isinstance(fake, torch.Tensor) and fake.dim() >= 1 and fake.shape[1:] != real.shape[1:]:
            shape = max(shape, tuple(fake.shape[1:]), key=len)
            if not self.reshaped_said:
                self.reshaped_said = True
                self.warn(f"real= is {tuple(real.shape)} and fake= {tuple(fake.shape)}: the sample features read both in the shape {shape}")
        self.sample_shape = shape

    def in_one_shape(self, extract: Callable[[torch.Tensor, Any], torch.Tensor]) -> Callable[[torch.Tensor, Any], torch.Tensor]:
        """``extract`` reading a sample of the settled size in the settled shape (a flat G's outputs
        on its fixed codes too)."""
        return _InShape(self, extract)

    def _samples(self, value: Any, name: str) -> torch.Tensor | None:
        """A batch as a tensor: a NumPy array's numbers (shared, not copied); anything
        else the sample probes cannot read (said once, and left out, rather than each probe failing
        on it and being switched off with an error about a missing method)."""
        if value is None or isinstance(value, torch.Tensor):
            return value
        if _is_numpy(value) and getattr(value, "ndim", 0) >= 1:
            try:
                return torch.from_numpy(value)
            except (TypeError, ValueError):  # an object or string array
                pass
        if not self.not_tensor_said:
            self.not_tensor_said = True
            self.warn(
                f"{name}= is a {type(value).__module__}.{type(value).__qualname__}, not a batch of samples as a torch tensor "
                "(or a NumPy array, a loader's (images, labels) or a dict with one image tensor): the probes that read "
                "samples (D probe, features, sample statistics) skip the steps that pass one"
            )
        return None


def _image_pair(value: Any) -> bool:
    """Two floating batches of one shape (images, not labels) passed as one tuple."""
    return (
        isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, torch.Tensor) and v.is_floating_point() for v in value)
        and value[0].dim() >= 2 and value[0].shape == value[1].shape
    )


def _working_writer(doctor: Doctor) -> RunLogWriter | None:
    """The run log's writer, unless it failed and was switched off (then nothing writes to it)."""
    return None if "writer" in doctor._disabled else doctor._writer


def _write_samples(doctor: Doctor, step: int, grid: Mapping[str, Any] | None) -> None:
    # Under the writer's own guard: a full disk is the writer's failure, reported once as such,
    # not the sample grid probe's (which would be switched off for it).
    writer = doctor._writer
    if writer is not None:
        doctor._guard("writer", lambda: writer.write_samples(step, grid))


def _batches_of(doctor: Doctor) -> tuple[_Batches, FeatureBank]:
    """How ``doctor`` takes each step's samples, and the feature bank a change of their size restarts."""
    bank = FeatureBank()
    warn = lambda message: _warn(_working_writer(doctor), doctor._step, doctor._notes.setdefault("batches", message))  # noqa: E731
    return _Batches(warn, functools.partial(_resized, doctor, bank)), bank


def _resized(doctor: Doctor, bank: FeatureBank, old: tuple[int, ...], new: tuple[int, ...]) -> None:
    """The samples changed size (a progressive GAN's new scale): the features of the two sizes do
    not compare, so the sample statistics start again from the new size, said once per size. Fed
    to the features of the old size, they failed and switched off for the rest of the run (PGAN:
    75% of it), while the report kept its early reading as the run's end."""
    bank.restart()
    said = f"G's samples changed size at step {doctor._step}, {'x'.join(map(str, old))} -> {'x'.join(map(str, new))} (a progressive GAN's new scale?): the sample statistics start again from here"
    _warn(_working_writer(doctor), doctor._step, doctor._notes.setdefault(f"resized {new}", said))


def _warn(writer: RunLogWriter | None, step: int, message: str, exc_info: Any = None) -> None:
    """A warning to the logger and, with a writer, to the run log (never raising)."""
    logger.warning("gandoctor: %s", message, exc_info=exc_info)
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.write_event(step, "warning", message)


def _failure_message(probe: str, exc: BaseException) -> str:
    if isinstance(exc, ProbeRefused):  # nothing broke: the probe cannot read this model as set up, and says what to pass
        return f"probe '{probe}' is switched off: {exc}"
    message = f"probe '{probe}' failed and is switched off: {type(exc).__name__}: {exc}"
    if isinstance(exc, TypeError) and probe in _CALLS_D:
        message += " (if D is called with other inputs than (x) or (x, labels), pass d_forward= to Doctor)"
    elif isinstance(exc, TypeError) and probe == "latents":
        message += " (if G takes other inputs than (z) or (z, labels), pass Doctor(sample_latent=lambda n, gen: (z, ...)) returning them as a tuple)"
    return message


#: Keys under which a dict batch (Hugging Face datasets, torchvision v2 wrappers) holds its images.
_IMAGE_KEYS = ("pixel_values", "images", "image", "img", "x", "input", "inputs", "data")


def _is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "dtype")  # NumPy not imported on the step path


def _batch_tensor(value: Any) -> Any:
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    if isinstance(value, abc.Mapping):  # collections.abc: typing.Mapping checks are slow on the step path
        found = next((value[k] for k in _IMAGE_KEYS if isinstance(value.get(k), torch.Tensor)), None)
        floats = [v for v in value.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
        return found if found is not None else floats[0] if len(floats) == 1 else value
    return value


def _check_optimizers(g: nn.Module, d: nn.Module, g_opt: torch.optim.Optimizer | None, d_opt: torch.optim.Optimizer | None) -> None:
    """An optimizer that steps the other network's parameters and none of its own is a swap:
    refused here, where it would be read as the wrong network's gradients for the whole run. (One
    optimizer over both networks steps its own too; a wrapper that flattens parameters, as FSDP
    does, steps neither network's by identity: both pass.)"""
    g_ids, d_ids = {id(p) for p in g.parameters()}, {id(p) for p in d.parameters()}
    for role, opt, own, other, other_name in (("g_optimizer", g_opt, g_ids, d_ids, "D"), ("d_optimizer", d_opt, d_ids, g_ids, "G")):
        stepped = set() if opt is None else {id(p) for group in opt.param_groups for p in group["params"]}
        if stepped & other and not stepped & own:
            raise ValueError(
                f"{role} steps {other_name}'s parameters and none of its own network's: swapped? pass "
                "g_optimizer=<the optimizer of G's parameters>, d_optimizer=<the optimizer of D's parameters>"
            )


def _unwrap_optimizer(opt: Any) -> torch.optim.Optimizer:
    """Lightning's LightningOptimizer and Accelerate's AcceleratedOptimizer wrap the real one (the
    latter subclasses Optimizer itself, so the unwrapping goes on while an inner optimizer exists);
    fastai's OptimWrapper holds it as ``.opt``."""
    seen = 0
    while seen < 4 and not isinstance(opt, torch.optim.Optimizer) or isinstance(getattr(opt, "optimizer", None), torch.optim.Optimizer):
        inner = getattr(opt, "optimizer", None)
        if inner is None and isinstance(getattr(opt, "opt", None), torch.optim.Optimizer):
            inner = opt.opt
        if inner is None or seen >= 4:
            break
        opt, seen = inner, seen + 1
    if not isinstance(opt, torch.optim.Optimizer):
        kind = f"{type(opt).__module__}.{type(opt).__qualname__}"
        raise TypeError(
            f"expected a torch.optim.Optimizer (or a wrapper holding one as .optimizer or .opt), got {kind}"
            + (": fastai's own optimizers are not torch's; build the Learner with opt_func=partial(OptimWrapper, "
               "opt=torch.optim.Adam) and pass learn.opt, or leave the optimizer out (no gradient norms)" if kind.startswith("fastai.") else "")
        )
    return opt


def _wrappers(module: nn.Module) -> list[nn.Module]:
    """The module and what it wraps, outermost first: DDP / DataParallel's ``module``,
    torch.compile's OptimizedModule's ``_orig_mod`` (at most four levels)."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    chain = [module]
    for _ in range(4):
        inner = module.module if isinstance(module, (DataParallel, DistributedDataParallel)) else getattr(module, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            break
        chain.append(module := inner)
    return chain


def _unwrap_module(module: nn.Module) -> nn.Module:
    """DDP / DataParallel wrap the model (probe forwards use the inner module, so no collective
    runs); torch.compile's OptimizedModule keeps it as ``_orig_mod`` (layer names stay the user's)."""
    return _wrappers(module)[-1]


def _compiled_in_place(module: nn.Module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None  # D.compile()


def _compiled(module: nn.Module) -> bool:
    """``torch.compile(D)`` or ``D.compile()``, under any DDP / DataParallel wrapping."""
    return any(hasattr(m, "_orig_mod") or _compiled_in_place(m) for m in _wrappers(module))


def _hook_point(module: nn.Module) -> nn.Module | None:
    """Where the probes hang their forward hooks to see the loop's own D calls. Dynamo traces a
    compiled module's hooks into its graphs and guards on them, so a hook armed an iteration in
    ten on a compiled D recompiled it (the cache limit of 8 graphs reached within 40 steps), and
    the loss form's, armed for the first steps, added three graphs to two. Not compiled: D itself.
    Under ``torch.compile(D)`` the module the loop calls (OptimizedModule, or a DDP wrapper around
    it) runs its own hooks eagerly around the compiled forward: that one. A module the loop
    calls that is compiled in place (``D.compile()``) traces its own hooks: none."""
    chain = _wrappers(module)
    if not _compiled(module):
        return chain[-1]
    return None if _compiled_in_place(chain[0]) else chain[0]


#: Doctors not yet closed. A script that crashes or stops right after its first NaN never calls
#: close(): at interpreter exit the values still buffered (up to flush_every steps, the NaN among
#: them) are written anyway, so `gandoctor analyze` of the run log sees how the run ended. Each is
#: kept with ``id(sys.last_value)`` when it was made: an exception an interactive session had
#: already printed (a notebook's earlier cell) is not the one that stopped its training.
_OPEN: weakref.WeakKeyDictionary[Doctor, int] = weakref.WeakKeyDictionary()


@atexit.register
def _close_open_doctors() -> None:
    # An uncaught exception ended the script (the interpreter keeps it as sys.last_value): said in
    # each open doctor's log, whose last records are then where the run stopped, not where it finished.
    close_dropped()
    stopped = getattr(sys, "last_value", None)
    for doctor in list(_OPEN):
        with contextlib.suppress(Exception):
            if stopped is not None and _OPEN.get(doctor) != id(stopped) and (writer := _working_writer(doctor)) is not None:
                when = f"after step {doctor._step}" if doctor._step >= 0 else "before its first step"
                writer.write_stopped(doctor._step, f"the script stopped on an uncaught {type(stopped).__name__} "
                                     f"({_first_line(stopped)}) {when}: the run ends there, unfinished")
            doctor.close()


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message as a verdict's line can hold it: its first line, cut at ``limit``
    characters (a load_state_dict error's 340 lines filled lightweight-gan's report and a 22 KB gate line)."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    cut = len(first) > limit or len(lines) > 1
    return (first[:limit].rstrip() + " ...") if cut else first


def _say_at_start(doctor: Doctor, one_optimizer: bool) -> None:
    """What the doctor can say of the run as it starts, once, where the report shows it."""
    if one_optimizer:
        # fastai's Learner trains G and D with one optimizer, freezing the other network by phase.
        message = doctor._notes["one_optimizer"] = (
            "the same optimizer was given as g_optimizer and d_optimizer: its steps, rates and betas are read as both "
            "networks', so D's steps per G step and the learning-rate ratio cannot be read; pass each network's own optimizer"
        )
        _warn(doctor._writer, doctor._step, message)
    _say_if_watched_twice(doctor)


def _say_if_watched_twice(doctor: Doctor) -> None:
    """Said once, where the report shows it: another Doctor, still open, on the same G or D (one
    made per epoch, never closed): both record, and their hooks add up on D and the optimizers."""
    if any(other is not doctor and not other._closed and (other.discriminator is doctor.discriminator or other.generator is doctor.generator) for other in list(_OPEN)):
        message = doctor._notes["watched"] = (
            "another Doctor, still open, watches the same generator or discriminator: both record, and their hooks "
            "add up on D and the optimizers; close() the first (or use `with gandoctor.Doctor(...) as doctor:`) before making another"
        )
        _warn(doctor._writer, doctor._step, message)


def _existing_folders(folders: Sequence[str | os.PathLike[str]]) -> tuple[Path, ...]:
    paths = tuple(Path(d) for d in folders)
    missing = [d for d in paths if not d.is_dir()]
    if missing:
        raise RuleError(f"{missing[0]}: rules folder does not exist")
    return paths


def _idle_reasons(
    probes: Sequence[Probe], every: Callable[[Probe], int], step: int, said: Collection[str], guard: Callable[[str, Callable[[], Any]], Any]
) -> list[tuple[str, str]]:
    """The probes on in the schedule that have had two intervals to run and could not, with why
    (asked under the probe's own guard: a failing answer switches that probe off, not the flush)."""
    found = []
    for probe in probes:
        interval = every(probe)
        if probe.name not in said and interval and step >= 2 * interval:
            reason = guard(probe.name, probe.idle_reason)
            if reason:
                found.append((probe.name, reason))
    return found


class _InShape:
    """An extractor reading each batch in the shape :class:`_Batches` settled; what ``auto`` chose
    shows through as ``chosen`` (a bare closure hid it: ``features="auto"`` on images never told
    the run that its features move with D, and their k-means cells were fitted once)."""

    def __init__(self, batches: _Batches, extract: Callable[[torch.Tensor, Any], torch.Tensor]) -> None:
        self.batches = batches
        self.extract = extract

    @property
    def chosen(self) -> str | None:
        return getattr(self.extract, "chosen", None)

    def __call__(self, x: torch.Tensor, labels: Any) -> torch.Tensor:
        shape = self.batches.sample_shape
        if shape is not None and 1 <= x.dim() < len(shape) + 1 and math.prod(x.shape[1:]) == math.prod(shape):
            x = x.reshape(x.shape[0], *shape)
        return self.extract(x, labels)


def _plain(value: Any) -> Any:
    """A tensor subclass as a plain tensor (the same data): BigGAN-PyTorch draws z and y as a
    ``Distribution`` whose ``.to()`` reads attributes its slices and clones lack, and its labels
    passed as fake_labels= switched the fixed-latent probe off, a loss made from z the loss form's."""
    if value is None or type(value) is torch.Tensor or not isinstance(value, torch.Tensor) or isinstance(value, nn.Parameter):
        return value
    return value.as_subclass(torch.Tensor)


def _step_inputs(step: int, batches: _Batches, given: tuple[Any, ...], extra: Mapping[str, Any]) -> StepInputs:
    """One step's inputs, as plain tensors: (d_loss, g_loss, real, fake, d_real, d_fake, labels, fake_labels)."""
    d_loss, g_loss, real, fake, d_real, d_fake, labels, fake_labels = map(_plain, given)
    return StepInputs(step, d_loss, g_loss, *batches.take(real, fake), d_real, d_fake, labels, fake_labels, extra)


def _check_arguments(generator: Any, discriminator: Any, d_output: str, latent_dim: Any) -> None:
    for role, module in (("generator", generator), ("discriminator", discriminator)):
        if not isinstance(module, nn.Module):
            raise TypeError(f"{role} must be a torch.nn.Module, got {type(module).__name__}")
    if d_output not in ("auto", "logit", "prob", "critic", "energy"):
        raise ValueError(f"d_output must be 'auto', 'logit', 'prob', 'critic' or 'energy', got {d_output!r}")
    if latent_dim is not None and (not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1):
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")


def standard_probes(
    host: ProbeHost, d_opt: torch.optim.Optimizer | None, g_opt: torch.optim.Optimizer | None, latents: LatentProbe
) -> list[Probe]:
    """The built-in probes, in the order they run within a step (features before what reads them)."""
    loss_form = LossForm()
    kind = OutputKind(host, loss_form)
    # The loss form settles before D's outputs of the same step are read (its accuracy threshold).
    probes: list[Probe] = [LossProbe(host), LossFormProbe(host, loss_form)]
    optimizers = {role: (opt, module) for role, opt, module in (("d", d_opt, host.discriminator), ("g", g_opt, host.generator)) if opt is not None}
    probes += [GradientProbe(host, role, opt, module) for role, (opt, module) in optimizers.items()]
    return probes + [
        DOutputsProbe(host, kind), DForwardProbe(host, kind, d_opt), WeightProbe(host), OptimizerProbe(host, optimizers), SpectrumProbe(host),
        FeatureProbe(host), SmallBatchTopUp(host), BinReservoirProbe(host), latents, SampleStatsProbe(host), FidelityProbe(host), NdbProbe(host),
    ]


def _live_monitor(doctor: Doctor, *options: Any) -> LiveMonitor | None:
    from ..live import LiveMonitor  # the diagnosis side: imported at run time only, as report() does

    return LiveMonitor.attach(doctor, *options)


class _ClosedOnExit:
    """``with Doctor(...) as doctor:`` and the finaliser: both close the doctor."""

    _closed: bool

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # Never close() here: the garbage collector runs finalisers wherever an allocation
        # triggers it, inside NumPy's errstate or the AST builder too, and close() runs the last
        # sample statistics, a flush and the live check, all NumPy and torch. A test session
        # that dropped unclosed doctors segfaulted in np.errstate and failed on "AST constructor
        # recursion depth mismatch". Kept alive instead, and closed at the next safe point.
        if not getattr(self, "_closed", True):
            _DROPPED.append(self)


#: Doctors dropped without close() (collected as garbage): closed at the next safe point, when
#: another Doctor is made or flushes, or at the interpreter's exit, never inside the collector.
_DROPPED: list[_ClosedOnExit] = []


def close_dropped() -> None:
    while _DROPPED:
        with contextlib.suppress(Exception):
            _DROPPED.pop().close()


def _register_open(doctor: Doctor) -> None:
    close_dropped()
    _OPEN[doctor] = id(getattr(sys, "last_value", None))


@dataclass
class _Pending:
    step: int
    values: dict[str, torch.Tensor | float] = field(default_factory=dict)
    deferred: list[Deferred] = field(default_factory=list)


class Doctor(_ClosedOnExit):
    """Watches a GAN training loop: ``doctor.step(...)`` once per iteration, ``doctor.report()`` any time."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        g_optimizer: torch.optim.Optimizer | None = None,
        d_optimizer: torch.optim.Optimizer | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        *,
        d_output: str = "auto",
        uses: Iterable[str] | Mapping[str, Any] = (),
        schedule: Schedule | None = None,
        features: str | FeatureFn = "pooled",
        feature_layer: str | None = None,
        d_forward: DForward | None = None,
        config: Config | str | os.PathLike[str] | None = None,
        rules_dirs: Sequence[str | os.PathLike[str]] = (),
        strict: bool = False,
        capacity: int = 4096,
        seed: int = 0,
        latent_dim: int | None = None,
        sample_latent: SampleLatent | None = None,
        on_finding: FindingCallback | Sequence[FindingCallback] = (), alerts: Sequence[AlertSink] = (), stop_on: Iterable[str] = (),
        raise_on_nonfinite: bool = False, live_every: int | None = None, live_panel: bool = False,
    ) -> None:
        _check_arguments(generator, discriminator, d_output, latent_dim)
        self.generator, self.discriminator = _unwrap_module(generator), _unwrap_module(discriminator)
        g_opt, d_opt = (None if opt is None else _unwrap_optimizer(opt) for opt in (g_optimizer, d_optimizer))
        _check_optimizers(self.generator, self.discriminator, g_opt, d_opt)
        self.d_output, self.schedule, self.strict = d_output, schedule or Schedule(), strict
        from ..config import Config, load_config  # not the rules: they load in report()

        self.config = config if isinstance(config, Config) else load_config(None if config is None else Path(config))
        self._rules_dirs = _existing_folders(rules_dirs)
        self.signals = SignalLog(capacity=capacity)
        self._live = _live_monitor(self, on_finding, alerts, stop_on, raise_on_nonfinite, live_every, live_panel)
        self._disabled: dict[str, str] = {}
        self._notes: dict[str, str] = {}  # said once: probes on in the schedule that could not run, the batch shape
        self._pending: list[_Pending] = []
        self._step, self._closed = -1, False
        self._batches, bank = _batches_of(self)
        _register_open(self)
        self._writer: RunLogWriter | None = None
        rng = torch.Generator().manual_seed(seed)  # projections and power iteration: never the global RNG
        plain_d_forward, hook_point = d_forward is None, _hook_point(discriminator)
        d_forward = d_forward or _default_d_forward(self.discriminator)
        feature_context = FeatureContext(self.discriminator, d_forward, untouched, self.schedule.feature_dim, rng, feature_layer)
        extract = self._batches.in_one_shape(build_extractor(features, feature_context))
        known = {"features": features if isinstance(features, str) else type(features).__name__}
        self._context = inspect_training(self.generator, self.discriminator, g_opt, d_opt, d_output, uses).merged(
            RunContext(frozenset(self.config.uses), known | ({"latent_dim": latent_dim} if latent_dim else {}))
        )
        self._inference = ContextInference(d_output)
        host = ProbeHost(
            self.generator, self.discriminator, d_forward, d_output, self.schedule, extract, rng, seed, bank,
            lambda: self._context, self._note_context, self._defer, self._guard,
            functools.partial(_write_samples, self), functools.partial(self._defer, first=True), plain_d_forward, hook_point,
        )
        self._latents = LatentProbe(host, latent_shape_candidates(self.generator, latent_dim), sample_latent, shape_given=latent_dim is not None)
        self.probes = standard_probes(host, d_opt, g_opt, self._latents)
        self._budget = Budget(self.schedule.budget, self.probes, reserved=self._live.time_share() if self._live else 0.0)
        self._visits = Visits(self.probes, self._budget)
        if log_dir is not None and is_main_process():
            self._writer = self._guard("writer", lambda: RunLogWriter(log_dir, self._context.to_dict(), capacity))
        self._reducer = RankReducer(self.schedule.rank_timeout, self._guard, self._disable)  # every rank, here
        self._note_context(set(), self._reducer.context_values())
        _say_at_start(self, g_opt is not None and g_opt is d_opt)

    # -- context and services lent to the probes -----------------------------------------------
    @property
    def context(self) -> RunContext:
        return self._context

    @property
    def samples(self) -> torch.Tensor | None:
        """G's newest outputs for the first fixed latent codes (up to 16, on the CPU), or None."""
        return self._latents.samples

    @property
    def intervals(self) -> dict[str, int]:
        """Each scheduled probe's current interval in steps, the overhead budget's stretch included (0 = off)."""
        return {p.name: self._budget.every(p) for p in self.probes if p.schedule_field is not None}

    def _note_context(self, flags: set[str], values: Mapping[str, Any] = {}) -> None:
        new = self._context.merged(RunContext(frozenset(flags), values))
        if new != self._context:
            self._context = new
            if self._writer is not None:
                writer = self._writer
                self._guard("writer", lambda: writer.write_context(new.to_dict()))

    def _defer(self, tensors: Sequence[torch.Tensor | float], then: Settle, first: bool = False) -> None:
        self._pending[-1].deferred.append((tuple(tensors), then, first))

    # -- fault containment -----------------------------------------------------------------
    def _guard(self, probe: str, fn: Callable[[], Any]) -> Any:
        if probe in self._disabled:
            return None
        try:
            return fn()
        except Exception as exc:
            if self.strict:
                raise
            self._disable(probe, exc)
            return None

    def _disable(self, probe: str, exc: BaseException) -> None:
        self._disabled[probe] = message = _failure_message(probe, exc)
        if isinstance(exc, ProbeRefused):  # breaks nothing: no traceback; what it found out about the run is noted
            self._note_context(set(exc.established))
        _warn(_working_writer(self), self._step, message, None if isinstance(exc, ProbeRefused) else (type(exc), exc, exc.__traceback__))

    @property
    def disabled_probes(self) -> Mapping[str, str]:
        return dict(self._disabled)

    @property
    def should_stop(self) -> bool:
        """True once a live check found a mode named in ``stop_on``: ``if doctor.should_stop: break``."""
        return self._live is not None and self._live.should_stop

    # -- the per-step entry point ------------------------------------------------------------
    def step(
        self,
        d_loss: Any = None,
        g_loss: Any = None,
        real: torch.Tensor | None = None,
        fake: torch.Tensor | None = None,
        *,
        d_real: torch.Tensor | None = None,
        d_fake: torch.Tensor | None = None,
        labels: Any = None,
        fake_labels: Any = None,
        step: int | None = None,
        **extra: Any,
    ) -> None:
        """Record one training iteration. Call once per iteration, after the G update."""
        if self._closed:
            return
        start = time.perf_counter()
        scheduled = hooks = 0.0
        try:
            with torch.no_grad():
                self._step = int(step) if step is not None else self._step + 1
                inputs = _step_inputs(self._step, self._batches, (d_loss, g_loss, real, fake, d_real, d_fake, labels, fake_labels), extra)
                self._pending.append(_Pending(self._step))
                now, disabled, every_of = self._step, self._disabled, self._budget.every
                for probe in self._visits.at(now):  # on most steps only the every-step probes
                    if probe.name in disabled:
                        continue
                    every = every_of(probe)
                    hooks += (hook := probe.hook_seconds() if probe.arms else 0.0)
                    # The interval check first: most probes are not due at most steps.
                    if every and now % every == 0 and probe.due(inputs, every):
                        scheduled += self._run(probe, inputs, hook)
                    if probe.arms:
                        probe.after_step(now, every)
                if len(self._pending) >= self.schedule.flush_every:
                    t0 = time.perf_counter()
                    self._guard("flush", self._flush)
                    self._budget.flush_ran(time.perf_counter() - t0)
        except Exception as exc:
            if self.strict:
                raise
            self._disable("step", exc)
        self._budget.step_done(start, time.perf_counter(), scheduled, hooks)
        if self._live is not None:  # outside the guards: raise_on_nonfinite's error is meant to reach the loop
            self._live.after_step(self._step)

    def _run(self, probe: Probe, inputs: StepInputs, hook: float) -> float:
        """Run one probe under the guard; returns its time if it is scheduled (the budget may stretch it), else 0."""
        t0 = time.perf_counter()
        self._pending[-1].values.update(self._guard(probe.name, lambda: probe.measure(inputs)) or {})
        if probe.schedule_field is None:  # every step, never stretched: its time is the fixed share's
            return 0.0
        self._budget.probe_ran(probe.name, (seconds := time.perf_counter() - t0) + hook)
        return seconds

    # -- transfer and logging ------------------------------------------------------------
    def _flush(self, final: bool = False) -> None:
        close_dropped()  # a safe point, every flush_every steps, not every step
        pending, self._pending = self._pending, []
        for step, values in self._reducer.reduce(_host_records(pending), final):  # across ranks under DDP
            self._record(step, values)
        if self._writer is not None and final:  # else on the writer's own clock (2 s or 200 records), not every 25 steps
            self._guard("writer", self._writer.flush)
        self._replan(plan=not final)  # the run is over at the final flush: no new plan from its last few steps

    def _record(self, step: int, values: dict[str, float]) -> None:
        learnt = self._inference.observe(values, self._context)
        if learnt is not None:
            self._note_context(set(learnt.flags), learnt.values)
        if self._live is not None:
            self._live.observe(step, values)
        rounded = {k: round_value(v) for k, v in values.items()}
        self.signals.record(step, rounded)
        if self._writer is not None:
            writer = self._writer
            self._guard("writer", lambda: writer.write_step(step, rounded))

    def _replan(self, plan: bool = True) -> None:
        for name, reason in _idle_reasons(self.probes, self._budget.every, self._step, self._notes.keys() | self._disabled.keys(), self._guard):
            self._notes[name] = reason
            _warn(_working_writer(self), self._step, reason)
        changed = self._budget.plan() if plan else {}
        if changed and self._writer is not None:
            now = ", ".join(f"{p.name} every {self._budget.every(p)}" for p in self.probes if p.name in changed)
            self._guard("writer", lambda: self._writer.write_event(self._step, "info", self._budget.plan_message(now)) if self._writer else None)

    # -- results ---------------------------------------------------------------------------
    def report(self) -> Report:
        """Diagnose what has been recorded so far (callable mid-training; on one rank alone under DDP)."""
        from ..diagnose import alerts_of, diagnose
        from ..report import Report

        if not self._reducer.active:  # under DDP no collective here (report() may run on rank 0 alone)
            if not self._closed:  # the newest features too, where no measurement has seen them (report() before close())
                _pend(self._pending, self._step, _final_values(self.probes, self._disabled, self._guard, self._step))
            self._guard("flush", self._flush)
        try:
            rules = self.config.ruleset(self._rules_dirs)
            source = str(self._writer.path) if self._writer else ""
            signals = with_pending(self.signals, _host_records(self._pending)) if self._reducer.active else self.signals
            warnings, alerts = (*self._disabled.values(), *self._notes.values()), alerts_of(self._live.markers if self._live else ())
            if self._reducer.active and not self._closed:
                warnings = (*warnings, _PARTIAL_UNDER_DDP.format(step=self._step))
            return diagnose(signals, rules, self._context, source=source, warnings=warnings, strict=self.strict, alerts=alerts)
        except Exception as exc:
            if self.strict:
                raise
            self._disable("report", exc)
            return Report.failed(self._context, f"diagnosis failed: {exc}")

    def close(self) -> None:
        if self._closed:
            return
        _OPEN.pop(self, None)
        _pend(self._pending, self._step, _final_values(self.probes, self._disabled, self._guard, self._step))
        self._guard("flush", lambda: self._flush(final=True))
        if self._live is not None:  # a blow-up the loop stopped at, before a flush brought it: alerted now
            self._live.at_close(self._step)
        for probe in self.probes:
            probe.close()
        if self._live is not None:
            self._live.close()
        if self._writer is not None:
            self._guard("writer", self._writer.close)
        self._closed = True


#: Said by report() before close() under DDP, where the last measurements wait for close() (they
#: reduce across ranks, and report() may run on one rank alone).
_PARTIAL_UNDER_DDP = (
    "under DDP, report() before close() leaves out the sample measurements since the last check before step {step} "
    "(they are reduced across the ranks at close()): call doctor.close() on every rank, then doctor.report(), for the run's end"
)


def _pend(pending: list[_Pending], step: int, values: Mapping[str, Any]) -> None:
    """``values`` pending for the next flush at ``step`` (beside what that step already holds)."""
    if values:
        if not pending or pending[-1].step != step:
            pending.append(_Pending(step))
        pending[-1].values.update(values)


def _final_values(probes: Sequence[Probe], disabled: Mapping[str, str], guard: Callable[[str, Callable[[], Any]], Any], step: int) -> dict[str, Any]:
    """The probes' last measurements (the sample statistics of the newest features, where no
    measurement has seen them) at the current step."""
    values: dict[str, Any] = {}
    if step < 0:
        return values
    with torch.no_grad():
        for probe in probes:
            if probe.name not in disabled:
                values.update(guard(probe.name, functools.partial(probe.final, step)) or {})
    return values


def _host_records(pending: list[_Pending]) -> list[tuple[int, dict[str, float]]]:
    """Each pending step's values on the host, in one transfer, the deferred ones settled."""
    tensors: list[torch.Tensor | float] = []
    for entry in pending:
        tensors += [v for v in entry.values.values() if isinstance(v, torch.Tensor)]
        tensors += [t for tensors_, _, _ in entry.deferred for t in tensors_]
    numbers = iter(_to_host(tensors))
    records: list[tuple[int, dict[str, float]]] = []
    settles: list[tuple[bool, Settle, list[float], dict[str, float]]] = []
    for entry in pending:
        values = {k: (next(numbers) if isinstance(v, torch.Tensor) else v) for k, v in entry.values.items()}
        settles += [(first, then, [next(numbers) for _ in tensors_], values) for tensors_, then, first in entry.deferred]
        records.append((entry.step, values))
    # What other settles read (the loss form learnt from this flush's tries) is settled first,
    # so every step of the flush is read with it; the rest in step order.
    for first_pass in (True, False):
        for first, then, got, values in settles:
            if first is first_pass:
                then(got, values)
    return records


def _to_host(tensors: list[torch.Tensor | float]) -> list[float]:
    """All values of a flush (scalars) to the host: host floats as they are, CPU values read
    directly (nothing to wait for), those on an accelerator in one copy per device (:func:`one_copy_to_host`). The old
    path widened and copied each value on its own: 0.5 ms for 150 CPU values, now 0.08 ms."""
    numbers: list[float] = [0.0] * len(tensors)
    elsewhere: dict[torch.device, list[tuple[int, torch.Tensor]]] = {}
    for j, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor) or t.device.type == "cpu":
            numbers[j] = float(t)
        else:
            elsewhere.setdefault(t.device, []).append((j, t))
    for device, held in elsewhere.items():
        for (j, _), v in zip(held, one_copy_to_host([t for _, t in held], device), strict=True):
            numbers[j] = v
    return numbers


def one_copy_to_host(tensors: list[torch.Tensor], device: torch.device) -> list[float]:
    """Scalars on one device as host floats: one stack per dtype, widened once to float64
    (float32 where the device lacks it: a float64 gradient norm of 1e40 is finite and must stay
    so on its way to the log), one device-to-host copy; a few kernels per flush, not two per value."""
    by_dtype: dict[torch.dtype, list[int]] = {}
    for j, t in enumerate(tensors):
        by_dtype.setdefault(t.dtype, []).append(j)
    wide = widest_float(device)
    stacked = torch.cat([torch.stack([tensors[j].reshape(()) for j in idx]).to(wide) for idx in by_dtype.values()])
    out: list[float] = [0.0] * len(tensors)
    for j, v in zip((j for idx in by_dtype.values() for j in idx), stacked.cpu().tolist(), strict=True):
        out[j] = v
    return out
