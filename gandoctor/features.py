"""Sample-feature extractors: an explicit registry (like torch-fidelity's), torch only here.

An extractor maps a batch (and its class labels, for conditional models) to an (n, d) float
tensor on the batch's device. Built in:

- ``pixels``: the flattened samples, reduced to ``dim`` dimensions by a fixed Gaussian
  projection when larger (distances survive the projection, Johnson-Lindenstrauss). Free.
- ``random_projection``: always the fixed projection to ``dim`` dimensions.
- ``pooled`` (the Doctor's default): images larger than 8x8 average-pooled to 8x8 per channel
  first, then as ``pixels``; anything else exactly as ``pixels``. Pixel noise dominates the
  distances between full-resolution fakes; the pooled view keeps what they depict.
- ``d_penultimate``: D's own features, the input of D's last layer with parameters (or the
  output of the module named by ``layer``), from a no-grad D forward that leaves D untouched.
  Costs one D forward on the feature batch per measurement.

Register your own with ``register_feature_extractor(name, factory, doc)``; the factory gets a
:class:`FeatureContext` and returns the extractor. Any ``nn.Module`` or one-argument callable
passed as ``Doctor(features=...)`` is used as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

Extractor = Callable[[torch.Tensor, Any], torch.Tensor]


@dataclass(frozen=True)
class FeatureContext:
    discriminator: nn.Module
    d_forward: Callable[[nn.Module, torch.Tensor, Any], Any]
    untouched: Callable[[nn.Module, torch.device], ContextManager[None]]
    dim: int
    generator: torch.Generator
    layer: str | None = None


@dataclass(frozen=True)
class ExtractorSpec:
    name: str
    factory: Callable[[FeatureContext], Extractor]
    doc: str


FEATURE_EXTRACTORS: dict[str, ExtractorSpec] = {}


def register_feature_extractor(name: str, factory: Callable[[FeatureContext], Extractor], doc: str) -> None:
    """Add an extractor to the registry. Duplicate names fail fast."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"feature extractor name must be a non-empty string without surrounding spaces, got {name!r}")
    if name in FEATURE_EXTRACTORS:
        raise ValueError(f"feature extractor {name!r} is already registered")
    FEATURE_EXTRACTORS[name] = ExtractorSpec(name, factory, doc)


class _Projection:
    """A fixed Gaussian projection to ``dim`` dimensions, drawn once from the doctor's own RNG."""

    def __init__(self, dim: int, generator: torch.Generator, always: bool = False) -> None:
        self.dim = dim
        self.generator = generator
        self.always = always
        self.matrix: torch.Tensor | None = None

    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        flat = flat.float()
        if flat.shape[1] <= self.dim and not self.always:
            return flat
        if self.matrix is None or self.matrix.shape[0] != flat.shape[1]:
            self.matrix = torch.randn(flat.shape[1], self.dim, generator=self.generator) / math.sqrt(self.dim)
        if self.matrix.device != flat.device:
            self.matrix = self.matrix.to(flat.device)
        return flat @ self.matrix


def _pixels(ctx: FeatureContext) -> Extractor:
    project = _Projection(ctx.dim, ctx.generator)
    return lambda x, labels: project(x.detach().reshape(x.shape[0], -1))


def _random_projection(ctx: FeatureContext) -> Extractor:
    project = _Projection(ctx.dim, ctx.generator, always=True)
    return lambda x, labels: project(x.detach().reshape(x.shape[0], -1))


def _pooled(ctx: FeatureContext) -> Extractor:
    project = _Projection(ctx.dim, ctx.generator)

    def extract(x: torch.Tensor, labels: Any) -> torch.Tensor:
        x = x.detach().float()
        if x.dim() == 4 and (x.shape[-1] > 8 or x.shape[-2] > 8):
            x = F.adaptive_avg_pool2d(x, 8)
        return project(x.reshape(x.shape[0], -1))

    return extract


def output_layer(module: nn.Module) -> tuple[str, nn.Module]:
    """D's last leaf module that owns parameters (class embeddings aside): its input is D's
    penultimate feature."""
    from torch.nn.utils import parametrize

    last: tuple[str, nn.Module] | None = None
    for name, m in module.named_modules():
        if ".parametrizations" in f".{name}":
            continue  # the parametrization's own modules (spectral norm's `original`) are not layers
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
            continue  # a projection D's class embedding reads labels, not features
        leaf = not list(m.children()) and any(True for _ in m.parameters(recurse=False))
        if leaf or parametrize.is_parametrized(m):
            last = (name, m)
    if last is None:
        raise ValueError(f"{type(module).__name__} has no layer with parameters to take features from")
    return last


def _d_penultimate(ctx: FeatureContext) -> Extractor:
    d = ctx.discriminator
    modules = dict(d.named_modules())
    if ctx.layer is not None:
        if ctx.layer not in modules:
            raise ValueError(f"feature layer {ctx.layer!r} is not a module of D; modules: {', '.join(n for n in modules if n)}")
        target, use_output = modules[ctx.layer], True
    else:
        target, use_output = output_layer(d)[1], False
    project = _Projection(ctx.dim, ctx.generator)

    def extract(x: torch.Tensor, labels: Any) -> torch.Tensor:
        captured: list[torch.Tensor] = []

        def grab(module: nn.Module, inputs: Any, output: Any = None) -> None:
            value = output if use_output else inputs[0]
            captured.append(value.detach())

        handle = target.register_forward_hook(grab) if use_output else target.register_forward_pre_hook(grab)
        try:
            with torch.no_grad(), ctx.untouched(d, x.device):
                ctx.d_forward(d, x.detach(), labels)
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError("D's forward did not reach the feature layer")
        feats = captured[-1]
        return project(feats.reshape(feats.shape[0], -1))

    return extract


#: ``auto`` keeps raw coordinates up to this many values per sample (2-D points, 8x8 digits),
#: where they are the natural metric, and uses D's features above it (images), where pixel
#: distances say little about what a sample shows.
AUTO_PIXELS_MAX_DIM = 256


class _Auto:
    """Picks ``pixels`` or ``d_penultimate`` from the size of the first batch it sees."""

    def __init__(self, ctx: FeatureContext) -> None:
        self.ctx = ctx
        self.chosen: str | None = None
        self.extract: Extractor | None = None

    def __call__(self, x: torch.Tensor, labels: Any) -> torch.Tensor:
        if self.extract is None:
            per_sample = x[0].numel() if x.shape[0] else 0
            self.chosen = "pixels" if per_sample <= AUTO_PIXELS_MAX_DIM else "d_penultimate"
            try:
                self.extract = FEATURE_EXTRACTORS[self.chosen].factory(self.ctx)
            except ValueError:  # a D without a layer to take features from
                self.chosen = "pixels"
                self.extract = FEATURE_EXTRACTORS["pixels"].factory(self.ctx)
        return self.extract(x, labels)


def _inception(ctx: FeatureContext) -> Extractor:
    from .fidelity import inception_extractor

    return inception_extractor()


register_feature_extractor(
    "auto", _Auto, f"`pixels` for samples of up to {AUTO_PIXELS_MAX_DIM} values, D's penultimate features for larger ones"
)
register_feature_extractor("pixels", _pixels, "flattened samples, projected to `dim` dimensions when larger")
register_feature_extractor("random_projection", _random_projection, "a fixed Gaussian projection of the flattened samples")
register_feature_extractor("pooled", _pooled, "images average-pooled to 8x8 per channel, then as pixels")
register_feature_extractor("d_penultimate", _d_penultimate, "D's own features: the input of its last layer (or the output of `layer`)")
register_feature_extractor(
    "inception", _inception, "torch-fidelity's InceptionV3 pool features (2048-d), when its weights are on this machine"
)


def build_extractor(features: str | nn.Module | Callable[..., torch.Tensor], ctx: FeatureContext) -> Extractor:
    """Resolve ``Doctor(features=...)``: a registered name, an nn.Module, or a callable."""
    if isinstance(features, str):
        if features not in FEATURE_EXTRACTORS:
            raise ValueError(f"unknown feature extractor {features!r}; registered: {', '.join(sorted(FEATURE_EXTRACTORS))}")
        return FEATURE_EXTRACTORS[features].factory(ctx)
    if callable(features):
        user = features

        def extract(x: torch.Tensor, labels: Any) -> torch.Tensor:
            out = user(x.detach())
            return out.detach().float().reshape(out.shape[0], -1)

        return extract
    raise TypeError(f"features must be a registered name, an nn.Module or a callable, got {type(features).__name__}")

