"""G's outputs for a fixed batch of latent codes: how far they move between checks, and a grid.

The codes are drawn once from the doctor's own seeded generator (shape from G's first Linear /
ConvTranspose layer, ``Doctor(latent_dim=...)``, or ``Doctor(sample_latent=fn(n, generator))``),
from the law of the loop's own codes as its first call of G shows them: uniform on [0, 1) or
[-1, 1) where they lie there (znxlwm's collection draws ``torch.rand``), else standard normal. A
G trained on uniform codes and run on normal ones is run off its inputs' range, where its outputs
say little of what it learnt.
Every ``latent_every`` steps G runs on them under no_grad, in its current mode, with its buffers
restored and the RNG streams forked, so training stays bit-identical.

A conditional G (``forward(z, y)``) runs on the fixed codes with fixed labels: the first
``latent_batch`` labels passed as ``fake_labels=`` to the first due ``doctor.step``, cycled.

``latent.drift`` is the median over the codes of the distance G's output moved since the
previous check, in the sample-feature space, divided by the median nearest-neighbour distance
among as many real samples (a real-vs-real floor): about 1 means the outputs for the same
codes moved as far as neighbouring real samples lie apart. Both outputs are re-extracted with the
current extractor, so features that change with D (``d_penultimate``) compare like with like.

``latent.cell_churn`` is the share of the k-means cells of the real data (the sample-statistics
bins) that G's outputs for the codes held at the previous check (``samplestats.held_threshold``:
at least three codes and a fifth of a fair share) and now hold not one code. The codes are the same at both checks,
so there is no sampling noise to subtract: a G that keeps its modes, or gains more while it
learns, scores 0; one that hops from mode to mode, or whose distribution keeps rotating, scores
high. Every output counts, realistic or not: gated on precision's k-NN test, the signal was
undefined on most runs, whose G rarely lands inside the real balls of a tight mixture (the
rule that reads it asks for some realistic samples instead). Not recorded before the bins are
fitted, nor with features that move with D (``d_penultimate``: the cells would move too).

``latent.eval_diversity_ratio`` (only for a G with BatchNorm that tracks running statistics):
G runs on the same codes once more in eval mode, as samples are usually drawn after training
(each module's own mode restored afterwards, buffers and RNG as above), and the mean pairwise
distance of those outputs' features is divided by that of the reals: ``feat.diversity_ratio``'s
definition, for the samples a user will draw. Trained with small batches, BatchNorm's running
statistics can be far from any one batch's, and G in eval mode then maps every code to nearly
the same image while its training-mode outputs look diverse.
"""

from __future__ import annotations

import base64
import inspect
import math
from typing import Any, Callable, Iterator

import torch

from ..context import latent_shape_candidates
from ..errors import ProbeRefused
from ..samplestats import Bins, held_threshold
from .base import CopySafeHook, Probe, ProbeHost, StepInputs, Values, doctor_forward_running, untouched

GRID_SIZE = 16
#: A grid at each of the first checks too: short runs (CI smoke runs, 300-1000 steps) would
#: otherwise keep one grid from step 0 and show nothing near a finding's onset.
EARLY_GRIDS = 5
GRID_MAX_SIDE = 32  # larger images are average-pooled down before they are written
#: ``fn(n, generator)``: G's input for n samples, or a tuple of G's inputs (``G(*inputs)``: an
#: InfoGAN's G takes noise, labels and a code).
#: A list is one input of G (rosinality's StyleGAN2 takes ``G([z])``), a tuple G's several inputs.
SampleLatent = Callable[[int, torch.Generator], "torch.Tensor | list[torch.Tensor] | tuple[Any, ...]"]
Codes = torch.Tensor | list[torch.Tensor] | tuple[Any, ...]


def _moved(codes: Any, device: torch.device) -> Any:
    """``codes`` (a tensor, or lists and tuples of them) on ``device``."""
    if isinstance(codes, torch.Tensor):
        return codes.to(device)
    if isinstance(codes, (list, tuple)):
        return type(codes)(_moved(c, device) for c in codes)
    return codes


def _a_tensor(codes: Any) -> torch.Tensor | None:
    """The first tensor in ``codes``, or None."""
    if isinstance(codes, torch.Tensor):
        return codes
    for c in codes if isinstance(codes, (list, tuple)) else ():
        if (found := _a_tensor(c)) is not None:
            return found
    return None


def quantised_grid(x: torch.Tensor) -> dict[str, Any] | None:
    """A few samples as uint8 (min-max over the grid) for the run log; None if not finite."""
    x = x.detach().float()
    if x.dim() >= 3 and max(x.shape[-2:]) > GRID_MAX_SIDE:
        x = torch.nn.functional.adaptive_avg_pool2d(x.reshape(-1, *x.shape[-3:]) if x.dim() > 3 else x, GRID_MAX_SIDE)
    if not bool(torch.isfinite(x).all()):
        return None
    lo, hi = float(x.min()), float(x.max())
    q = ((x - lo) / max(hi - lo, 1e-12) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return {"shape": list(q.shape), "lo": lo, "hi": hi, "uint8": base64.b64encode(q.tobytes()).decode("ascii")}


#: Said where G refused its fixed codes with the loop's labels beside them.
_LABELS_FORM = ("each code went with the labels passed as fake_labels=, which G may take in another form (one-hot "
                "against class indices): then pass Doctor(sample_latent=lambda n, gen: (z, labels)) in G's own form; ")


def _forward_parameters(module: torch.nn.Module) -> list[inspect.Parameter] | None:
    """The parameters of ``module.forward``; None when its signature cannot be read."""
    try:
        return list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return None


def _positional(params: list[inspect.Parameter]) -> list[inspect.Parameter]:
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def required_inputs(module: torch.nn.Module) -> list[str]:
    """The names of the positional inputs ``module.forward`` requires (none where its signature
    cannot be read)."""
    params = _forward_parameters(module)
    return [] if params is None else [p.name for p in _positional(params) if p.default is p.empty]


def takes_one_input(module: torch.nn.Module) -> bool:
    """True when ``module(z)`` is a valid call (a conditional G also needs labels)."""
    return len(required_inputs(module)) <= 1


def takes_two_inputs(module: torch.nn.Module) -> bool:
    """True when ``module(z, y)`` is a valid call (labels optional or required)."""
    params = _forward_parameters(module)
    if params is None:
        return False
    return any(p.kind == p.VAR_POSITIONAL for p in params) or len(_positional(params)) >= 2


#: The widest label part (one-hot classes, a label embedding) a conditional G's z width is searched
#: past: at most this many refused forwards, once (each fails at G's first layer: 1,000 of them took
#: 0.7 s for a 100-wide z with 1,000 one-hot classes on one CPU core).
MAX_LABEL_WIDTH = 1024

#: A guessed first-layer input at least this wide that holds as many values as one real sample
#: (an image-to-image G), or at least DATA_INPUT_MIN_WIDTH and DATA_INPUT_RATIO times as many (an
#: encoder against a prior: an AAE), is data, not a latent code: noise fed to it means nothing.
#: 512, not 256: a latent G with the common z of 256 making 16x16 images must still get codes.
SAME_AS_DATA_MIN_WIDTH = 512
DATA_INPUT_MIN_WIDTH = 512
DATA_INPUT_RATIO = 4


def reads_data(width: int, real_width: int | None) -> bool:
    """Whether a G whose first layer takes ``width`` values reads data rather than a latent code,
    judged against the values one real sample holds (``real_width``; None when unknown)."""
    if real_width is None or real_width <= 0:
        return False
    return (width == real_width and width >= SAME_AS_DATA_MIN_WIDTH) or (
        width >= DATA_INPUT_MIN_WIDTH and width >= DATA_INPUT_RATIO * real_width)


def loop_latent_shape(loop_codes: LoopCodes | None, real: torch.Tensor | None) -> tuple[int, ...] | None:
    """The shape of the codes the loop gave G, where they are latent codes: a vector or a (C, 1, 1)
    code, not an image or data (pytorch_GAN_zoo's PGAN registers its toRGB convolutions before the
    Linear that reads z, and its first layer read as a convolution over images)."""
    shape = loop_codes.shape() if loop_codes is not None else None
    if shape is None or any(size != 1 for size in shape[1:]):
        return None
    real_width = math.prod(real.shape[1:]) if isinstance(real, torch.Tensor) and real.dim() >= 1 else None
    return None if reads_data(math.prod(shape), real_width) else shape


def takes_empty_classes(module: torch.nn.Module) -> bool:
    """StyleGAN2-ADA's and StyleGAN3's G and D, unconditional: ``G(z, c)`` / ``D(img, c)`` with
    ``c_dim`` 0, c required all the same (an empty batch of classes)."""
    return getattr(module, "c_dim", None) == 0 and takes_two_inputs(module)


def _diversity_ratio(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean pairwise distance of ``fake`` over that of ``real`` (on the device; NaN when the reals
    do not spread), as :func:`gandoctor.samplestats.compare` defines the diversity ratio."""
    spread_fake = torch.pdist(fake.float()).mean()
    spread_real = torch.pdist(real.float()).mean()
    return torch.where(spread_real > 0, spread_fake / spread_real.clamp_min(1e-30), torch.full_like(spread_real, float("nan")))


class LoopCodes:
    """How the loop draws G's codes, from its first calls of G (a forward pre-hook, removed once it
    has seen ``CALLS``): uniform on [0, 1) or [-1, 1) where they lie there, else standard normal
    (also where nothing was seen). A batch of one value throughout is no draw: Lightning's model
    summary runs G once on ``example_input_array``, zeros in its GAN template, which read as
    uniform on [0, 1) and fed a normal-code G codes it never saw (GD306 on a diverse G). Host
    reads at the probe's first check only."""

    CALLS = 4

    def __init__(self, generator: torch.nn.Module) -> None:
        # Per call seen: the shape of one code and the batch's least and largest value (on its
        # device, read at the first check); not the batch, whose storage (an image-to-image G's
        # inputs) would stay alive for the run.
        self.seen: list[tuple[tuple[int, ...], torch.Tensor, torch.Tensor]] = []
        self.calls = 0
        self._handle: Any = generator.register_forward_pre_hook(CopySafeHook(self._see))

    def _see(self, module: torch.nn.Module, args: Any) -> None:
        if torch.compiler.is_compiling() or doctor_forward_running():
            return
        try:  # inside the loop's forward: nothing may raise into training (unseen, the codes are normal)
            x = args[0] if args else None
            if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() >= 2 and x.shape[0]:
                self.seen.append((tuple(x.shape[1:]), *torch.aminmax(x.detach())))
        finally:
            self.calls += 1
            if self.calls >= self.CALLS:
                self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _draws(self) -> Iterator[tuple[tuple[int, ...], float, float]]:
        """The batches seen that are draws (a code's shape, least and largest value, read here):
        one value throughout is a summary's example input, not a draw."""
        for shape, least, largest in self.seen:
            lo, hi = float(least), float(largest)
            if lo != hi:
                yield shape, lo, hi

    def law(self, width: int) -> str:
        """``uniform01``, ``uniform11`` or ``normal``, where the loop's codes were this wide."""
        for shape, lo, hi in self._draws():
            if math.prod(shape) == width:
                return "uniform01" if 0 <= lo and hi <= 1 else "uniform11" if -1 <= lo and hi <= 1 else "normal"
        return "normal"

    def shape(self) -> tuple[int, ...] | None:
        """The shape of one of the loop's codes (its first draw's), or None."""
        return next((shape for shape, _, _ in self._draws()), None)

    def draw(self, shape: tuple[int, ...], rng: torch.Generator) -> torch.Tensor:
        law = self.law(math.prod(shape[1:]))
        if law == "normal":
            return torch.randn(shape, generator=rng)
        u = torch.rand(shape, generator=rng)
        return u if law == "uniform01" else 2 * u - 1


def cell_churn(before: torch.Tensor, now: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor | None:
    """The share of the cells ``before`` held that ``now`` holds none of (module docstring), on the
    device (no sync); None for outputs of another size than the reals the cells were fitted on."""
    if now.shape[1] != centroids.shape[1]:
        return None
    k = centroids.shape[0]

    def counts(x: torch.Tensor) -> torch.Tensor:
        # A one-hot sum, not bincount: bincount on CUDA refuses deterministic mode.
        cell = torch.cdist(x.float(), centroids).argmin(dim=1)
        return (cell[:, None] == torch.arange(k, device=cell.device)[None, :]).sum(dim=0)

    held = counts(before) >= held_threshold(before.shape[0], k)
    lost = (held & (counts(now) == 0)).sum()
    n_held = held.sum()
    finite = torch.isfinite(before).all() & torch.isfinite(now).all()
    share = lost / n_held.clamp_min(1)
    return torch.where(finite & (n_held > 0), share, torch.full_like(share, float("nan")))


class LoopKeywords:
    """The plain keyword arguments (numbers, strings, flags) of the loop's latest call of G, read
    by a one-shot forward pre-hook armed again at each check, so G runs on the fixed codes as the
    loop runs it: a progressive G's ``G(z, step=step, alpha=alpha)`` (rosinality's StyleGAN) at the
    scale it trains, not its untrained first one. Tensors are not kept (the loop's batches)."""

    def __init__(self, generator: torch.nn.Module) -> None:
        self.generator = generator
        self.latest: dict[str, Any] = {}
        self._handle: Any = None
        self.listen()

    def listen(self) -> None:
        if self._handle is None:
            self._handle = self.generator.register_forward_pre_hook(CopySafeHook(self._see), with_kwargs=True)

    def _see(self, module: torch.nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
        if torch.compiler.is_compiling() or doctor_forward_running():
            return
        self.latest = {k: v for k, v in kwargs.items() if v is None or isinstance(v, (bool, int, float, str))}
        self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


class LatentProbe(Probe):
    name = "latents"
    schedule_field = "latent_every"
    signals = ("latent.drift", "latent.cell_churn", "latent.eval_diversity_ratio")
    cost = 0.6  # a G forward on 128 codes, two feature extractions, distances to 16 centroids (one more forward for a BatchNorm G)

    def __init__(
        self, host: ProbeHost, shapes: tuple[tuple[int, ...], ...], sample_latent: SampleLatent | None, shape_given: bool = False
    ) -> None:
        super().__init__(host)
        self.shapes = shapes  # the code shapes to try, most likely first (context.latent_shape_candidates)
        self.shape_guessed = bool(shapes) and not shape_given and sample_latent is None
        self.sample_latent = sample_latent
        # A G of lazy modules (nn.LazyLinear) shows its first layer's width after its first forward.
        self.lazy = not shapes and not shape_given and sample_latent is None and any(torch.nn.parameter.is_lazy(p) for p in host.generator.parameters())
        self.usable = bool(shapes) or sample_latent is not None or self.lazy  # off while no code shape is known
        self.conditional = not takes_one_input(host.generator)
        # More inputs than a code and labels (InfoGAN's G(noise, labels, code)): only sample_latent can feed them.
        self.inputs_needed = required_inputs(host.generator) if sample_latent is None else []
        self.eval_differs = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in host.generator.modules())
        self.labels: torch.Tensor | None = None
        self.codes: Codes | None = None
        self.output: torch.Tensor | None = None
        self.checks = 0
        self._centroids: tuple[Bins, torch.Tensor] | None = None  # (the bins, their centroids on G's device)
        # The law of the loop's own codes, seen at its first call of G (none where sample_latent draws them).
        self.loop_codes = None if sample_latent is not None else LoopCodes(host.generator)
        self.loop_keywords = LoopKeywords(host.generator)
        self.classless = takes_empty_classes(host.generator)  # its c: an empty batch, no labels awaited

    def due(self, inputs: StepInputs, every: int) -> bool:
        waiting_for_labels = self.conditional and self.labels is None and not isinstance(inputs.fake_labels, torch.Tensor) and not self.classless
        if len(self.inputs_needed) > 2 or (waiting_for_labels and self.sample_latent is None):
            return False
        if self.lazy and super().due(inputs, every) and not any(torch.nn.parameter.is_lazy(p) for p in self.host.generator.parameters()):
            self.lazy = False
            self.shapes = latent_shape_candidates(self.host.generator)
            self.shape_guessed = self.usable = bool(self.shapes)
        if not self.usable and (code := loop_latent_shape(self.loop_codes, inputs.real)) is not None:
            self.shapes, self.shape_guessed, self.usable = (code,), True, True  # G's first layer hid it; its calls did not
        return self.usable and not self.lazy and super().due(inputs, every)

    def idle_reason(self) -> str | None:
        if self.checks:
            return None
        what = "latent.drift and latent.cell_churn (GD606: G hopping between modes) are not recorded"
        if self.eval_differs:
            what += ", nor latent.eval_diversity_ratio (GD306: collapse in eval mode)"
        if not self.usable:
            first = next((type(m).__name__ for m in self.host.generator.modules() if not list(m.children())), "none")
            return (
                f"the fixed-latent probe has not run: G's input could not be inferred from its first layer ({first}, not a "
                "Linear or ConvTranspose taking z), so " + what + "; pass Doctor(sample_latent=lambda n, gen: inputs) "
                "returning n of G's inputs (for an image-to-image G a fixed batch of input images; for a latent G its "
                "codes, or Doctor(latent_dim=...))"
            )
        if len(self.inputs_needed) > 2:
            return (
                f"the fixed-latent probe has not run: G's forward takes {len(self.inputs_needed)} inputs "
                f"({', '.join(self.inputs_needed)}), more than a latent code and labels, so " + what + "; pass "
                f"Doctor(sample_latent=lambda n, gen: ({', '.join(self.inputs_needed)})) returning a tuple of n of each "
                "for G(*inputs), drawn once and kept, or Schedule(latent_every=0) to switch this probe off"
            )
        if self.conditional and self.labels is None and self.sample_latent is None:
            # Named as G's forward names them: a second input need not be labels (gan_toy.py's G(noise, real_data)).
            z, y = self.inputs_needed if len(self.inputs_needed) == 2 else ("z", "y")
            return (
                f"the fixed-latent probe has not run: G's forward takes a second input (forward({z}, {y})) and no "
                "fake_labels= reached doctor.step, so " + what + f"; if {y} is G's class labels, pass fake_labels= (the "
                f"labels G's fakes were made with); whatever it is, Doctor(sample_latent=lambda n, gen: ({z}, {y})) "
                "returning n of each for G's inputs, drawn once and kept"
            )
        return None

    def _fix_labels(self, fake_labels: Any, n: int, device: torch.device) -> None:
        """The conditional G's labels for the fixed codes, taken once (cycled to n) and kept. A G
        whose labels are optional (``forward(z, y=None)``) gets them too when the loop passes
        ``fake_labels``: it is conditional in this run. StyleGAN's G takes ``G(z, c)`` whatever
        its classes: with none (``c_dim`` 0) its c is an empty batch."""
        if self.labels is None and self.classless:
            self.labels = torch.zeros(n, 0, device=device)
        if self.labels is None and isinstance(fake_labels, torch.Tensor) and not self.conditional:
            self.conditional = takes_two_inputs(self.host.generator)
        if self.conditional and self.labels is None and isinstance(fake_labels, torch.Tensor):
            labels = fake_labels.detach()
            self.labels = labels[torch.arange(n, device=labels.device) % labels.shape[0]].clone().to(device)

    def _forward(self, codes: Codes, eval_mode: bool = False) -> torch.Tensor:
        g = self.host.generator
        modes = [(m, m.training) for m in g.modules()] if eval_mode else []
        first = _a_tensor(codes)
        with untouched(g, first.device if first is not None else torch.device("cpu")):
            try:
                if eval_mode:
                    g.eval()
                keywords = self.loop_keywords.latest
                if isinstance(codes, tuple):  # all of G's inputs, from sample_latent
                    out = g(*codes, **keywords)
                else:
                    out = g(codes, **keywords) if self.labels is None else g(codes, self.labels, **keywords)
            finally:
                for module, training in modes:  # each module's own mode (a user may keep some in eval)
                    module.training = training
        return (out[0] if isinstance(out, (tuple, list)) else out).detach()

    def _shapes_to_try(self, real_width: int | None = None) -> Iterator[tuple[int, ...]]:
        """The code shapes to try: the given one; else the shape of the loop's own codes (not where
        they hold as many values as a data sample), then the guesses from G's first layer, and for a
        conditional G every narrower z after them. A G that concatenates z with its labels in any
        form (an embedding, one-hot vectors) accepts exactly one z width: the first layer's input
        less the labels' part. Each refused width fails at that layer, before any compute. BigGAN's
        G splits a 32-wide z into four and reads 8 in its first layer: the guess from that layer
        failed, the loop's own codes did not."""
        if not self.shape_guessed:
            yield from self.shapes[:1]
            return
        seen = self.loop_codes.shape() if self.loop_codes is not None else None
        if seen is not None and seen not in self.shapes and math.prod(seen) != real_width and not reads_data(math.prod(seen), real_width):
            yield seen
        yield from self.shapes
        if self.conditional:
            width, *tail = self.shapes[0]
            for w in range(width - 1, max(0, width - 1 - MAX_LABEL_WIDTH), -1):
                if (w, *tail) not in self.shapes:
                    yield (w, *tail)

    def _first_output(self, fake_labels: Any, real: Any = None) -> torch.Tensor:
        """Draw the codes and run G on them; a (C, 1, 1) code that G refuses is retried flat
        (a G that starts with ``Unflatten`` or a ``view``), with the same numbers."""
        def code_rng() -> torch.Generator:
            # Its own stream, the same numbers for every shape tried: the global RNG is untouched.
            return torch.Generator().manual_seed(self.host.seed + 1)

        n = self.host.schedule.latent_batch
        device = next((p.device for p in self.host.generator.parameters()), torch.device("cpu"))
        # Codes in G's own precision (a double or bfloat16 G refuses float32 input); drawn in float32
        # first, so the same seed gives the same codes whatever the precision.
        dtype = next((p.dtype for p in self.host.generator.parameters() if p.is_floating_point()), torch.float32)
        self._fix_labels(fake_labels, n, device)
        if self.sample_latent is not None:
            drawn = self.sample_latent(n, code_rng())
            self.codes = _moved(drawn, device)
            return self._forward(self.codes)
        width = math.prod(self.shapes[0]) if self.shapes else 0
        real_width = int(real[0].numel()) if isinstance(real, torch.Tensor) and real.dim() >= 1 and real.shape[0] else None
        if self.shape_guessed and reads_data(width, real_width):
            raise ProbeRefused(
                f"G's first layer takes {width} values where one real sample holds {real_width}: G reads "
                "data (an image-to-image G, or an encoder whose outputs D compares with a prior, as in an adversarial "
                "autoencoder), not a latent code, so noise fed to it would measure nothing; pass "
                "Doctor(sample_latent=lambda n, gen: inputs) returning a fixed batch of n of its inputs, or "
                "Doctor(latent_dim=...) if that layer does read a latent code"
            )
        failures: list[str] = []
        tried = 0
        for shape in self._shapes_to_try(real_width):
            tried += 1
            codes = self.loop_codes.draw((n, *shape), code_rng()) if self.loop_codes else torch.randn((n, *shape), generator=code_rng())
            codes = codes.to(device=device, dtype=dtype)
            try:
                try:
                    out = self._forward(codes)
                except Exception as first:
                    if len(shape) == 1:
                        raise
                    try:
                        codes = codes.reshape(n, shape[0])
                        out = self._forward(codes)
                    except Exception:
                        raise first from None  # the shape G's first layer asks for says more than a flat retry
            # Any error of G's on a guessed shape is a refusal of it (BigGAN's G raised IndexError).
            except Exception as exc:
                if not self.shape_guessed and self.labels is not None:
                    raise ProbeRefused(f"G refused its fixed codes of the shape given {tuple(shape)} with the labels passed as fake_labels= ({exc}); "
                                       + _LABELS_FORM + "or pass Schedule(latent_every=0) to switch this probe off") from exc
                if not self.shape_guessed:
                    raise
                if len(failures) < 2:
                    failures.append(f"{tuple(shape)}: {exc}")
                continue
            if shape != self.shapes[0]:
                self.host.note_context(set(), {"latent_dim": shape[0]})  # the first layer read z and the labels
            break
        else:
            raise ProbeRefused(
                f"G refused {n} latent codes of the {tried} shape(s) tried (its first layer's, and the loop's own codes' where they differ) "
                f"({'; '.join(failures)}{'; ...' if tried > len(failures) else ''}); "
                + (_LABELS_FORM + "otherwise " if self.labels is not None else "")
                + "pass Doctor(latent_dim=...) or Doctor(sample_latent=lambda n, gen: ...) returning z, or a tuple of all of G's "
                "inputs for G(*inputs), or Schedule(latent_every=0) to switch this probe off"
            )
        self.codes = codes
        return out

    def measure(self, inputs: StepInputs) -> Values:
        out = self._first_output(inputs.fake_labels, inputs.real) if self.codes is None else self._forward(self.codes)
        self.loop_keywords.listen()  # the keywords of the loop's next call, for the next check
        # A progressive G's new scale: outputs of the two sizes do not compare.
        previous, self.output = (self.output if self.output is not None and self.output.shape == out.shape else None), out
        self.checks += 1
        every = self.host.schedule.sample_grid_every
        if every and (self.checks <= EARLY_GRIDS or (self.checks - 1) % every == 0):
            self.host.guard("sample_grid", lambda: self.host.write_samples(inputs.step, quantised_grid(out[:GRID_SIZE])))
        reals = self.host.bank.real
        if previous is None or not reals:
            return {}
        real = torch.cat(reals)
        n = min(out.shape[0], real.shape[0])
        if n < 2:
            return {}
        extract = self.host.extract
        values: dict[str, torch.Tensor | float] = {}
        if self.eval_differs and self.codes is not None:
            values["latent.eval_diversity_ratio"] = _diversity_ratio(extract(self._forward(self.codes, eval_mode=True), None), real)
        now, before = extract(out, None), extract(previous, None)
        moved = torch.linalg.vector_norm(now[:n] - before[:n], dim=1).median()
        real_d = torch.cdist(real[:n].float(), real[:n].float())
        real_d.fill_diagonal_(float("inf"))
        floor = real_d.min(dim=1).values.median()
        drift = torch.where(floor > 0, moved / floor.clamp_min(1e-30), torch.full_like(moved, float("nan")))
        values["latent.drift"] = drift
        churn = self._cell_churn(before, now)
        if churn is not None:
            values["latent.cell_churn"] = churn
        return values

    def _cell_churn(self, before: torch.Tensor, now: torch.Tensor) -> torch.Tensor | None:
        """See the module docstring; tensors on the device throughout (no sync)."""
        bins = self.host.bank.bins
        if bins is None or self.host.features_move_with_d():
            return None
        if self._centroids is None or self._centroids[0] is not bins:
            # Copied to the device once per fitting (the bins are fitted once), not at every check.
            self._centroids = (bins, torch.as_tensor(bins.centroids, dtype=torch.float32).to(now.device))
        return cell_churn(before, now, self._centroids[1])

    def close(self) -> None:
        self.loop_keywords.close()
        if self.loop_codes is not None:
            self.loop_codes.close()

    @property
    def samples(self) -> torch.Tensor | None:
        """G's newest outputs for the first codes (up to 16, on the CPU), or None."""
        return None if self.output is None else self.output[:GRID_SIZE].float().cpu()
