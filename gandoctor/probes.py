"""Doctor: attaches to G, D and their optimizers, records signals, never breaks training.

What runs when (defaults in :class:`Schedule`):

- every step: losses (kept on the device), the gradient norms captured by optimizer
  step pre-hooks, D's outputs if the loop passes them;
- every ``d_probe_every`` steps, when the loop does not pass D's outputs: a no-grad D forward
  on a slice of the real and fake batch, with D's buffers (BatchNorm statistics, spectral-norm
  vectors) restored afterwards and the RNG streams forked, so training is bit-identical;
- every ``weight_every`` steps: weight norms and the largest singular value of D's matrices;
- every ``spectrum_every`` steps: the whole singular-value spectrum of each D matrix (up to
  ``spectrum_max_elements`` entries), summarised as its normalised stable and effective rank;
- every ``feature_every`` steps: features of a slice of real and fake samples;
  every ``sample_stats_every`` steps: diversity / coverage / precision against the real data.

Values stay on the device until a flush every ``flush_every`` steps moves them all to the host
in one transfer, so there is no GPU-to-CPU synchronisation per step.

Any exception inside a probe is logged once (logger ``gandoctor``) with its traceback, written
to the run log as an event, and that probe is switched off; ``strict=True`` re-raises instead.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import samplestats
from .diagnose import diagnose
from .features import FeatureContext, build_extractor
from .config import Config, load_config
from .findings import RunContext
from .report import Report
from .runlog import RunLogWriter, round_value
from .signals import SignalLog

logger = logging.getLogger("gandoctor")

_BLAS: Any = None


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
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

GRID_SIZE = 16
GRID_MAX_SIDE = 32  # larger images are average-pooled down before they are written


def _quantised_grid(x: torch.Tensor) -> dict[str, Any] | None:
    """A few samples as uint8 (min-max over the grid) for the run log; None if not finite."""
    import base64

    x = x.detach().float()
    if x.dim() >= 3 and max(x.shape[-2:]) > GRID_MAX_SIDE:
        x = torch.nn.functional.adaptive_avg_pool2d(x.reshape(-1, *x.shape[-3:]) if x.dim() > 3 else x, GRID_MAX_SIDE)
    if not bool(torch.isfinite(x).all()):
        return None
    lo, hi = float(x.min()), float(x.max())
    q = ((x - lo) / max(hi - lo, 1e-12) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return {"shape": list(q.shape), "lo": lo, "hi": hi, "uint8": base64.b64encode(q.tobytes()).decode("ascii")}


FeatureFn = Callable[[torch.Tensor], torch.Tensor]
DForward = Callable[[nn.Module, torch.Tensor, Any], torch.Tensor]


@dataclass(frozen=True)
class Schedule:
    """How often each probe runs, in doctor steps. Defaults keep the overhead to a few percent."""

    flush_every: int = 25
    d_probe_every: int = 10
    d_probe_batch: int = 64
    weight_every: int = 50
    layer_every: int = 50
    feature_every: int = 25
    feature_batch: int = 128
    sample_stats_every: int = 100
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
    # Fixed latent codes through G every N steps (0 = off): latent.drift, and a sample grid
    # written to the run log every ``sample_grid_every`` of those checks (0 = never written).
    latent_every: int = 100
    latent_batch: int = 64
    sample_grid_every: int = 10

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if name == "extended_sample_stats":
                if not isinstance(value, bool):
                    raise ValueError(f"Schedule.{name} must be True or False, got {value!r}")
                continue
            if name in ("fidelity_every", "spectrum_every", "ndb_every", "latent_every", "sample_grid_every"):
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


def _default_d_forward(d: nn.Module, x: torch.Tensor, labels: Any) -> torch.Tensor:
    return d(x) if labels is None else d(x, labels)


def _scalar(value: Any) -> torch.Tensor | float | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        if value.numel() == 0:
            return None
        return value.detach().float().mean() if value.numel() > 1 else value.detach().float().reshape(())
    return float(value)


def _per_sample(out: Any) -> torch.Tensor:
    """D output of any shape (B,), (B,1), (B,1,H,W) → (B,) mean score per sample."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    out = out.detach().float()
    return out.reshape(out.shape[0], -1).mean(dim=1) if out.dim() > 1 else out.reshape(-1)


def _label_slices(labels: Any, fake_labels: Any, n: int) -> tuple[Any, Any]:
    """Labels for the first ``n`` samples; fakes share the real labels unless given their own."""
    y_real = labels[:n] if isinstance(labels, torch.Tensor) else labels
    if fake_labels is None:
        return y_real, y_real
    return y_real, fake_labels[:n] if isinstance(fake_labels, torch.Tensor) else fake_labels


def _auc(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """P(D(real) > D(fake)) over all pairs, ties counted half; stays on the device."""
    r = real[:256].reshape(-1, 1)
    f = fake[:256].reshape(1, -1)
    auc = (r > f).float().mean() + 0.5 * (r == f).float().mean()
    # Non-finite outputs make the ranking meaningless: NaN, not a confident 0 or 1.
    finite = torch.isfinite(r).all() & torch.isfinite(f).all()
    return torch.where(finite, auc, torch.full_like(auc, float("nan")))


def _balanced_accuracy(real: torch.Tensor, fake: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """Mean of the true-real and true-fake rates at ``threshold``, ties counted half; on the device."""
    hit_real = (real > threshold).float().mean() + 0.5 * (real == threshold).float().mean()
    hit_fake = (fake < threshold).float().mean() + 0.5 * (fake == threshold).float().mean()
    acc = 0.5 * (hit_real + hit_fake)
    finite = torch.isfinite(real).all() & torch.isfinite(fake).all()
    return torch.where(finite, acc, torch.full_like(acc, float("nan")))


def _latent_shape(generator: nn.Module, latent_dim: int | None) -> tuple[int, ...] | None:
    """The shape of one latent code: from G's first Linear / ConvTranspose layer, or ``latent_dim``."""
    for m in generator.modules():
        if isinstance(m, nn.Linear):
            return (latent_dim or m.in_features,)
        if isinstance(m, nn.modules.conv._ConvTransposeNd):
            # DCGAN-style: a (C, 1, 1) code expanded by the first transposed convolution.
            return (latent_dim or m.in_channels,) + (1,) * len(m.kernel_size)
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Embedding)):
            break  # G starts from an image or from labels: no latent shape to read
    return None if latent_dim is None else (latent_dim,)


def _takes_one_input(module: nn.Module) -> bool:
    """True when ``module(z)`` is a valid call (a conditional G also needs labels)."""
    import inspect

    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return True
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) <= 1


def _has_spectral_norm(module: nn.Module) -> bool:
    for m in module.modules():
        if hasattr(m, "weight_orig"):
            return True
        params = getattr(m, "parametrizations", None)
        if params is not None:
            for plist in params.values():
                if any("SpectralNorm" in type(p).__name__ for p in plist):
                    return True
    return False


def _unwrap_optimizer(opt: Any) -> torch.optim.Optimizer:
    """Lightning's LightningOptimizer and Accelerate's AcceleratedOptimizer wrap the real one."""
    seen = 0
    while not isinstance(opt, torch.optim.Optimizer) and hasattr(opt, "optimizer") and seen < 4:
        opt, seen = opt.optimizer, seen + 1
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"expected a torch.optim.Optimizer (or a wrapper with .optimizer), got {type(opt).__name__}")
    return opt


def _unwrap_module(module: nn.Module) -> nn.Module:
    """DDP / DataParallel wrap the model; probe forwards use the inner module so no collective runs."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    return module.module if isinstance(module, (DataParallel, DistributedDataParallel)) else module


def _param_groups(module: nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in module.named_parameters()}


def _layer_of(param_name: str) -> str:
    name = param_name
    for suffix in (".parametrizations.weight.original", ".weight_orig", ".weight", ".bias"):
        if name.endswith(suffix):
            return name[: -len(suffix)] or "root"
    return name.rsplit(".", 1)[0] if "." in name else name


class _GradTap:
    """Optimizer step pre-hook: global and per-layer gradient norms of what the optimizer applies."""

    def __init__(self, optimizer: torch.optim.Optimizer, names: Mapping[int, str]) -> None:
        self.optimizer = optimizer
        self.names = names
        self.total: torch.Tensor | None = None
        self.nonfinite: torch.Tensor | None = None
        self.steps = 0
        self.want_layers = False
        self.layers: dict[str, torch.Tensor] = {}
        self.handle = optimizer.register_step_pre_hook(self._hook)
        self.failed: BaseException | None = None

    def _hook(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        try:
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None and not p.grad.is_sparse]
            if not params:
                return
            with torch.no_grad():
                # Few kernels, no sync: one fused per-tensor norm, one stack, one norm.
                norms = torch.stack(torch._foreach_norm([p.grad for p in params], 2, dtype=torch.float32))
                global_norm = torch.linalg.vector_norm(norms)
                self.total = global_norm if self.total is None else self.total + global_norm
                self.steps += 1
                if self.want_layers:
                    # Per-layer detail only on the layer schedule.
                    self.nonfinite = (~torch.isfinite(norms)).sum()
                    sq: dict[str, list[torch.Tensor]] = {}
                    for p, n in zip(params, norms):
                        sq.setdefault(_layer_of(self.names.get(id(p), "unnamed")), []).append(n)
                    self.layers = {k: torch.linalg.vector_norm(torch.stack(v)) for k, v in sq.items()}
        except Exception as exc:  # never let a probe break optimizer.step()
            self.failed = exc
            self.handle.remove()

    def take(self) -> tuple[dict[str, torch.Tensor | float], dict[str, torch.Tensor]]:
        out: dict[str, torch.Tensor | float] = {}
        if self.steps and self.total is not None:
            out["grad_norm"] = self.total / self.steps
        if self.nonfinite is not None:
            out["grad_nonfinite"] = self.nonfinite.float()
        out["opt_steps"] = float(self.steps)
        layers = self.layers
        self.total = self.nonfinite = None
        self.steps = 0
        self.layers = {}
        return out, layers

    def remove(self) -> None:
        self.handle.remove()


class Doctor:
    """Watches a GAN training loop. See the module docstring for what is measured and when."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        g_optimizer: torch.optim.Optimizer | None = None,
        d_optimizer: torch.optim.Optimizer | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        *,
        d_output: str = "auto",
        uses: Iterable[str] = (),
        schedule: Schedule | None = None,
        features: str | FeatureFn = "pixels",
        feature_layer: str | None = None,
        d_forward: DForward | None = None,
        config: Config | str | os.PathLike[str] | None = None,
        rules_dirs: Sequence[str | os.PathLike[str]] = (),
        strict: bool = False,
        capacity: int = 4096,
        seed: int = 0,
        latent_dim: int | None = None,
        sample_latent: Callable[[int, torch.Generator], torch.Tensor] | None = None,
    ) -> None:
        if not isinstance(generator, nn.Module):
            raise TypeError(f"generator must be a torch.nn.Module, got {type(generator).__name__}")
        if not isinstance(discriminator, nn.Module):
            raise TypeError(f"discriminator must be a torch.nn.Module, got {type(discriminator).__name__}")
        if d_output not in ("auto", "logit", "prob", "critic"):
            raise ValueError(f"d_output must be 'auto', 'logit', 'prob' or 'critic', got {d_output!r}")
        self.generator = _unwrap_module(generator)
        self.discriminator = _unwrap_module(discriminator)
        g_optimizer = None if g_optimizer is None else _unwrap_optimizer(g_optimizer)
        d_optimizer = None if d_optimizer is None else _unwrap_optimizer(d_optimizer)
        self.d_output = d_output
        self.schedule = schedule or Schedule()
        self.strict = strict
        self.d_forward = d_forward or _default_d_forward
        self.config = config if isinstance(config, Config) else load_config(config)
        self._rules = self.config.ruleset(tuple(Path(d) for d in rules_dirs))
        self.signals = SignalLog(capacity=capacity)
        self._disabled: dict[str, str] = {}
        self._pending: list[tuple[int, dict[str, torch.Tensor | float]]] = []
        self._step = -1
        self._closed = False
        self._saw_negative_d_loss = False
        self._output_range_ok = True  # all D outputs seen lie in [0, 1]
        self._proj_gen = torch.Generator().manual_seed(seed)
        self._np_rng = np.random.default_rng(seed)
        self._extract = build_extractor(
            features,
            FeatureContext(self.discriminator, self.d_forward, self._untouched, self.schedule.feature_dim, self._proj_gen, feature_layer),
        )
        self._features_name = features if isinstance(features, str) else type(features).__name__
        self._u: dict[str, torch.Tensor] = {}
        self._real_feats: list[torch.Tensor] = []
        self._fake_feats: list[torch.Tensor] = []
        self._prev_fake: np.ndarray | None = None
        self._bins: samplestats.Bins | None = None
        self._bin_reservoir: list[torch.Tensor] = []
        if latent_dim is not None and (not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1):
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        self._latent_shape = _latent_shape(self.generator, latent_dim)
        self._sample_latent = sample_latent
        self._latent_seed = seed
        self._latent_codes: torch.Tensor | None = None
        self._latent_out: torch.Tensor | None = None
        self._latent_checks = 0
        self._user_flags = frozenset(uses) | self.config.uses
        self._context = self._inspect(g_optimizer, d_optimizer)
        self._taps: dict[str, _GradTap] = {}
        for role, opt, module in (("d", d_optimizer, self.discriminator), ("g", g_optimizer, self.generator)):
            if opt is not None:
                self._taps[role] = _GradTap(opt, _param_groups(module))
        self._writer: RunLogWriter | None = None
        if log_dir is not None and self._is_main_process():
            self._guard("writer", lambda: self._open_writer(log_dir, capacity))

    # -- context ------------------------------------------------------------------------
    @staticmethod
    def _is_main_process() -> bool:
        dist = torch.distributed
        return not (dist.is_available() and dist.is_initialized() and dist.get_rank() != 0)

    def _inspect(self, g_opt: torch.optim.Optimizer | None, d_opt: torch.optim.Optimizer | None) -> RunContext:
        flags: set[str] = set(self._user_flags)
        values: dict[str, Any] = {"d_output": self.d_output}
        d = self.discriminator
        if _has_spectral_norm(d):
            flags.add("d_spectral_norm")
        if any(isinstance(m, nn.Dropout) for m in d.modules()):
            flags.add("d_dropout")
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules()):
            flags.add("d_batchnorm")
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.generator.modules()):
            flags.add("g_batchnorm")
        if self.d_output == "critic":
            flags.add("critic")
        for role, opt in (("d", d_opt), ("g", g_opt)):
            if opt is None:
                continue
            group = opt.param_groups[0]
            values[f"optimizer_{role}"] = type(opt).__name__
            if isinstance(group.get("lr"), (int, float)):
                values[f"lr_{role}"] = float(group["lr"])
            betas = group.get("betas")
            if isinstance(betas, (tuple, list)) and len(betas) == 2:
                values[f"beta1_{role}"] = float(betas[0])
            if float(group.get("weight_decay", 0.0) or 0.0) > 0:
                flags.add(f"weight_decay_{role}")
        if "lr_d" in values and "lr_g" in values and not math.isclose(values["lr_d"], values["lr_g"]):
            flags.add("ttur")
            if values["lr_d"] > values["lr_g"]:
                flags.add("lr_d_above_lr_g")
        values["d_params"] = sum(p.numel() for p in d.parameters())
        values["features"] = self._features_name
        values["g_params"] = sum(p.numel() for p in self.generator.parameters())
        if self._latent_shape is not None:
            values["latent_dim"] = self._latent_shape[0]
        return RunContext(frozenset(flags), values)

    @property
    def context(self) -> RunContext:
        return self._context

    def _open_writer(self, log_dir: str | os.PathLike[str], capacity: int) -> None:
        self._writer = RunLogWriter(log_dir, self._context_dict(), capacity)

    def _context_dict(self) -> dict[str, Any]:
        return {"flags": sorted(self._context.flags), "values": dict(self._context.values)}

    def _update_context(self, flags: set[str], values: Mapping[str, Any] = {}) -> None:
        new = self._context.merged(RunContext(frozenset(flags), values))
        if new != self._context:
            self._context = new
            if self._writer is not None:
                self._guard("writer", lambda: self._writer.write_context(self._context_dict()) if self._writer else None)

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
        message = f"probe '{probe}' failed and is switched off: {type(exc).__name__}: {exc}"
        self._disabled[probe] = message
        logger.warning("gandoctor: %s", message, exc_info=(type(exc), exc, exc.__traceback__))
        if probe != "writer" and self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.write_event(self._step, "warning", message)

    @property
    def disabled_probes(self) -> Mapping[str, str]:
        return dict(self._disabled)

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
        try:
            with torch.no_grad():
                self._step = int(step) if step is not None else self._step + 1
                values: dict[str, torch.Tensor | float] = {}
                self._guard("losses", lambda: self._losses(values, d_loss, g_loss, extra))
                self._guard("grads", lambda: self._grads(values))
                if d_real is not None and d_fake is not None:
                    self._guard("d_outputs", lambda: self._d_outputs(values, _per_sample(d_real), _per_sample(d_fake)))
                elif real is not None and fake is not None and self._step % self.schedule.d_probe_every == 0:
                    self._guard("d_probe", lambda: self._d_probe(values, real, fake, labels, fake_labels))
                if self._step % self.schedule.weight_every == 0:
                    self._guard("weights", lambda: self._weights(values))
                if self.schedule.spectrum_every and self._step % self.schedule.spectrum_every == 0:
                    self._guard("spectrum", lambda: self._spectrum(values))
                if real is not None and fake is not None and self._step % self.schedule.feature_every == 0:
                    self._guard("features", lambda: self._collect_features(real, fake, labels, fake_labels))
                if self.schedule.latent_every and self._step % self.schedule.latent_every == 0 and self._latent_ready():
                    self._guard("latents", lambda: self._latents(values))
                self._pending.append((self._step, values))
                if self._step % self.schedule.sample_stats_every == 0 and self._step > 0:
                    self._guard("sample_stats", self._sample_stats)
                if len(self._pending) >= self.schedule.flush_every:
                    self._guard("flush", self._flush)
        except Exception as exc:
            if self.strict:
                raise
            self._disable("step", exc)

    # -- probes ------------------------------------------------------------------------------
    def _losses(self, values: dict[str, torch.Tensor | float], d_loss: Any, g_loss: Any, extra: Mapping[str, Any]) -> None:
        for name, raw in (("loss.d", d_loss), ("loss.g", g_loss)):
            value = _scalar(raw)
            if value is not None:
                values[name] = value
        for key, raw in extra.items():
            value = _scalar(raw)
            if value is not None:
                values[f"user.{key.lower()}"] = value

    def _grads(self, values: dict[str, torch.Tensor | float]) -> None:
        want_layers = (self._step + 1) % self.schedule.layer_every == 0
        for role, tap in self._taps.items():
            if tap.failed is not None:
                failed, tap.failed = tap.failed, None
                if self.strict:
                    raise failed
                self._disable(f"grads.{role}", failed)
                continue
            if f"grads.{role}" in self._disabled:
                continue
            taken, layers = tap.take()
            for key, value in taken.items():
                values[f"{key}.{role}"] = value
            for layer, norm in layers.items():
                values[f"grad_norm.{role}.layer.{layer}"] = norm
            tap.want_layers = want_layers

    def _d_outputs(self, values: dict[str, torch.Tensor | float], real: torch.Tensor, fake: torch.Tensor) -> None:
        values["d_out.real"] = real.mean()
        values["d_out.fake"] = fake.mean()
        values["d.auc"] = _auc(real, fake)
        kind = self.d_output
        midpoint = 0.5 * (values["d_out.real"] + values["d_out.fake"])
        if kind == "logit":
            threshold: torch.Tensor | float = 0.0
        elif kind == "prob":
            threshold = 0.5
        elif kind == "critic" or "critic" in self._context.flags:
            threshold = midpoint
        else:
            # auto: probabilities while every output seen lies in [0, 1], logits otherwise;
            # decided on the device so no value is read back here.
            in_range = (torch.minimum(real.min(), fake.min()) >= 0) & (torch.maximum(real.max(), fake.max()) <= 1)
            threshold = torch.where(in_range & self._output_range_ok, torch.full_like(midpoint, 0.5), torch.zeros_like(midpoint))
        values["d.acc"] = _balanced_accuracy(real, fake, threshold)
        if kind == "logit":
            values["d_prob.real"] = torch.sigmoid(real).mean()
            values["d_prob.fake"] = torch.sigmoid(fake).mean()
        elif kind in ("prob", "auto"):
            # In auto mode the probabilities are written now and dropped at flush time if an
            # output outside [0, 1] shows the D is not a probability model.
            values["d_prob.real"] = real.mean()
            values["d_prob.fake"] = fake.mean()
            values["_range.min"] = torch.minimum(real.min(), fake.min())
            values["_range.max"] = torch.maximum(real.max(), fake.max())

    @contextlib.contextmanager
    def _untouched(self, module: nn.Module, device: torch.device) -> Iterator[None]:
        """Run a forward that leaves no trace: buffers restored, RNG streams forked."""
        saved = [(b, b.detach().clone()) for b in module.buffers()]
        devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                yield
        finally:
            for buffer, copy in saved:
                buffer.copy_(copy)

    def _d_probe(self, values: dict[str, torch.Tensor | float], real: torch.Tensor, fake: torch.Tensor, labels: Any, fake_labels: Any) -> None:
        n = self.schedule.d_probe_batch
        real_s, fake_s = real[:n].detach(), fake[:n].detach()
        y_real, y_fake = _label_slices(labels, fake_labels, n)
        with self._untouched(self.discriminator, real_s.device):
            out_real = _per_sample(self.d_forward(self.discriminator, real_s, y_real))
            out_fake = _per_sample(self.d_forward(self.discriminator, fake_s, y_fake))
        self._d_outputs(values, out_real, out_fake)

    def _weights(self, values: dict[str, torch.Tensor | float]) -> None:
        for role, module in (("d", self.discriminator), ("g", self.generator)):
            params = [p.detach() for p in module.parameters()]
            if params:
                values[f"weight_norm.{role}"] = torch.linalg.vector_norm(torch.stack([n.float() for n in torch._foreach_norm(params)]))
        sigmas = []
        for name, p in self.discriminator.named_parameters():
            if p.dim() < 2 or name.endswith("bias"):
                continue
            w = p.detach().float().reshape(p.shape[0], -1)
            u = self._u.get(name)
            if u is None or u.shape[0] != w.shape[0] or u.device != w.device:
                u = torch.randn(w.shape[0], generator=self._proj_gen).to(w.device)
                u = u / (u.norm() + 1e-12)
            for _ in range(self.schedule.power_iterations):
                v = w.t() @ u
                v = v / (v.norm() + 1e-12)
                u = w @ v
                u = u / (u.norm() + 1e-12)
            self._u[name] = u
            sigmas.append(u @ w @ v)
        if sigmas:
            values["sigma_max.d"] = torch.stack(sigmas).max()

    def _spectrum(self, values: dict[str, torch.Tensor | float]) -> None:
        """Normalised stable rank (sum s^2 / s_max^2) and effective rank (exp entropy of s / sum s),
        each divided by the matrix's full rank: 1 = flat spectrum, 1/rank = one direction left."""
        stable, effective = [], []
        for name, p in self.discriminator.named_parameters():
            if p.dim() < 2 or name.endswith("bias") or p.numel() > self.schedule.spectrum_max_elements:
                continue
            w = p.detach().float().reshape(p.shape[0], -1)
            if not bool(torch.isfinite(w).all()):  # a blown-up D is GD501's finding, not a probe fault
                continue
            s = torch.linalg.svdvals(w)
            full = s.shape[0]
            top = s[0].clamp_min(1e-12)
            sr = (s * s).sum() / (top * top) / full
            q = s / s.sum().clamp_min(1e-12)
            er = torch.exp(-(q * torch.log(q.clamp_min(1e-30))).sum()) / full
            stable.append(sr)
            effective.append(er)
            values[f"spectrum.d.layer.{_layer_of(name)}"] = sr
        if stable:
            values["spectrum.d.stable_rank"] = torch.stack(stable).mean()
            values["spectrum.d.effective_rank"] = torch.stack(effective).mean()

    def _collect_features(self, real: torch.Tensor, fake: torch.Tensor, labels: Any, fake_labels: Any) -> None:
        n = self.schedule.feature_batch
        y_real, y_fake = _label_slices(labels, fake_labels, n)
        self._real_feats.append(self._extract(real[:n].detach(), y_real))
        self._fake_feats.append(self._extract(fake[:n].detach(), y_fake))
        chosen = getattr(self._extract, "chosen", None)
        if chosen is not None and self._context.values.get("features") != chosen:
            self._update_context(set(), {"features": chosen})  # what `auto` picked
        if self._bins is None and sum(len(f) for f in self._bin_reservoir) < samplestats.BIN_RESERVOIR:
            self._bin_reservoir.append(self._real_feats[-1])
        # Keep 4 batches of reals (two independent real sets) and the 2 newest batches of fakes.
        del self._real_feats[:-4]
        del self._fake_feats[:-2]

    def _sample_stats(self) -> None:
        if len(self._real_feats) < 2 or not self._fake_feats:
            return
        real = torch.cat(self._real_feats).cpu().numpy().astype(np.float64)
        fake = torch.cat(self._fake_feats).cpu().numpy().astype(np.float64)
        if not (np.isfinite(real).all() and np.isfinite(fake).all()):
            self._pending[-1][1]["feat.nonfinite"] = 1.0
            return
        perm = self._np_rng.permutation(real.shape[0])
        half = real.shape[0] // 2
        with _one_blas_thread():
            if self._context.values.get("features") == "d_penultimate":
                # D's features move as D trains: bins fitted once would describe an old feature
                # space, so they are refitted on the current reals (~5 ms) at each measurement.
                self._bins = samplestats.fit_bins(real, seed=self._latent_seed)
            elif self._bins is None and sum(len(f) for f in self._bin_reservoir) >= samplestats.BIN_RESERVOIR:
                self._guard("bins", self._fit_bins)
            stats = samplestats.compare(
                real[perm[:half]], real[perm[half:]], fake, self._prev_fake, self.schedule.extended_sample_stats, self._bins
            )
        self._prev_fake = fake
        self._pending[-1][1].update(stats.as_signals())
        every = self.schedule.fidelity_every
        if every and self._step % every == 0:
            with _one_blas_thread():
                self._guard("fidelity", lambda: self._fidelity(real, fake))
        every = self.schedule.ndb_every
        if every and self._step % every == 0:
            real_a = real[perm[:half]]
            with _one_blas_thread():
                self._guard("ndb", lambda: self._pending[-1][1].update({"feat.ndb_frac": samplestats.ndb_fraction(real_a, fake, seed=self._step)}))

    def _fit_bins(self) -> None:
        reservoir = torch.cat(self._bin_reservoir).cpu().numpy().astype(np.float64)
        if np.isfinite(reservoir).all():  # else wait for finite reals; the reservoir refills
            self._bins = samplestats.fit_bins(reservoir, seed=self._latent_seed)
        self._bin_reservoir = []

    # -- fixed latent codes ------------------------------------------------------------------
    def _latent_ready(self) -> bool:
        return (self._latent_shape is not None or self._sample_latent is not None) and _takes_one_input(self.generator)

    def _latents(self, values: dict[str, torch.Tensor | float]) -> None:
        """G on the fixed codes, leaving no trace; latent.drift once there is a previous output and real features."""
        if self._latent_codes is None:
            gen = torch.Generator().manual_seed(self._latent_seed + 1)  # its own stream: the global RNG is untouched
            n = self.schedule.latent_batch
            if self._sample_latent is not None:
                codes = self._sample_latent(n, gen)
            else:
                codes = torch.randn((n, *(self._latent_shape or ())), generator=gen)
            device = next((p.device for p in self.generator.parameters()), torch.device("cpu"))
            self._latent_codes = codes.to(device)
        codes = self._latent_codes
        with self._untouched(self.generator, codes.device):
            out = self.generator(codes)
        out = (out[0] if isinstance(out, (tuple, list)) else out).detach()
        previous, self._latent_out = self._latent_out, out
        self._latent_checks += 1
        every = self.schedule.sample_grid_every
        if every and self._writer is not None and (self._latent_checks - 1) % every == 0:
            writer = self._writer
            self._guard("sample_grid", lambda: writer.write_samples(self._step, _quantised_grid(out[:GRID_SIZE])))
        if previous is None or not self._real_feats:
            return
        reals = torch.cat(self._real_feats)
        n = min(out.shape[0], reals.shape[0])
        if n < 2:
            return
        moved = torch.linalg.vector_norm(self._extract(out[:n], None) - self._extract(previous[:n], None), dim=1).median()
        real_d = torch.cdist(reals[:n].float(), reals[:n].float())
        real_d.fill_diagonal_(float("inf"))
        floor = real_d.min(dim=1).values.median()
        values["latent.drift"] = torch.where(floor > 0, moved / floor.clamp_min(1e-30), torch.full_like(moved, float("nan")))

    @property
    def samples(self) -> torch.Tensor | None:
        """G's newest outputs for the first fixed latent codes (up to 16, on the CPU), or None."""
        return None if self._latent_out is None else self._latent_out[:GRID_SIZE].float().cpu()

    def _fidelity(self, real: np.ndarray, fake: np.ndarray) -> None:
        from .fidelity import metrics_from_features

        m = metrics_from_features(torch.from_numpy(real), torch.from_numpy(fake), kid_subset_size=min(100, len(fake)))
        self._pending[-1][1].update({"feat.fid": m.fid, "feat.kid": m.kid_mean})

    # -- transfer and logging ------------------------------------------------------------
    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        tensors: list[torch.Tensor] = []
        slots: list[tuple[int, str]] = []
        for i, (_, values) in enumerate(pending):
            for name, value in values.items():
                if isinstance(value, torch.Tensor):
                    tensors.append(value.reshape(()).float())
                    slots.append((i, name))
        host: list[dict[str, float]] = [{k: v for k, v in values.items() if not isinstance(v, torch.Tensor)} for _, values in pending]
        if tensors:
            by_device: dict[torch.device, list[int]] = {}
            for j, t in enumerate(tensors):
                by_device.setdefault(t.device, []).append(j)
            numbers: list[float] = [0.0] * len(tensors)
            for device, idx in by_device.items():
                # The one device-to-host copy of this flush.
                for j, v in zip(idx, torch.stack([tensors[j] for j in idx]).cpu().tolist()):
                    numbers[j] = v
            for (i, name), number in zip(slots, numbers):
                host[i][name] = number
        for (step, _), values in zip(pending, host):
            self._record(step, values)
        if self._writer is not None:
            self._guard("writer", self._writer.flush)

    def _record(self, step: int, values: dict[str, float]) -> None:
        lo, hi = values.pop("_range.min", None), values.pop("_range.max", None)
        if lo is not None and hi is not None and (lo < -1e-6 or hi > 1 + 1e-6) and self._output_range_ok:
            self._output_range_ok = False
            self._update_context(set(), {"d_output_detected": "score"})
        if self.d_output == "auto" and not self._output_range_ok:
            values.pop("d_prob.real", None)
            values.pop("d_prob.fake", None)
        loss_d = values.get("loss.d")
        if loss_d is not None and loss_d < -1e-6 and not self._saw_negative_d_loss and self.d_output == "auto":
            # BCE, hinge and least-squares D losses are never negative; a Wasserstein critic's is.
            self._saw_negative_d_loss = True
            self._update_context({"critic"})
        steps_d, steps_g = values.get("opt_steps.d"), values.get("opt_steps.g")
        if steps_d and steps_g and steps_d >= 2 * steps_g and "multi_d_steps" not in self._context.flags:
            self._update_context({"multi_d_steps"}, {"d_steps_per_g": steps_d / steps_g})
        rounded = {k: round_value(v) for k, v in values.items()}
        self.signals.record(step, rounded)
        if self._writer is not None:
            writer = self._writer
            self._guard("writer", lambda: writer.write_step(step, rounded))

    # -- results ---------------------------------------------------------------------------
    def report(self) -> Report:
        """Diagnose what has been recorded so far (callable mid-training)."""
        self._guard("flush", self._flush)
        try:
            return diagnose(
                self.signals,
                self._rules,
                self._context,
                source=str(self._writer.path) if self._writer else "",
                warnings=tuple(self._disabled.values()),
                strict=self.strict,
            )
        except Exception as exc:
            if self.strict:
                raise
            self._disable("report", exc)
            return Report(findings=(), context=self._context, warnings=(f"diagnosis failed: {exc}",))

    def close(self) -> None:
        if self._closed:
            return
        self._guard("flush", self._flush)
        for tap in self._taps.values():
            tap.remove()
        if self._writer is not None:
            self._guard("writer", self._writer.close)
        self._closed = True

    def __enter__(self) -> "Doctor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not self._closed and self._writer is not None:
                self._writer.close()
