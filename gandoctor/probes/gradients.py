"""Gradient norms of what each optimizer applies, captured by an optimizer step pre-hook."""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .base import CopySafeHook, Probe, ProbeHost, StepInputs, Values, layer_of, widest_float


def tensor_norms(grads: list[torch.Tensor]) -> torch.Tensor:
    """Per-tensor 2-norms on an accelerator, without a device sync: in float64 on CUDA (a
    memory-bound reduction: as fast; a float32 sum of squares overflows once a norm passes
    ~1.8e19, so a finite gradient on its way to blowing up would read as non-finite one step
    early), and for a double-precision model on any device that has float64 (the fused norm
    refuses to narrow float64 to float32: the tap would fail and be switched off); float32
    elsewhere (Apple's MPS has no float64). CPU gradients take :func:`host_norms`."""
    device = grads[0].device
    wide = device.type == "cuda" or any(g.dtype == torch.float64 for g in grads)
    dtype = widest_float(device) if wide else torch.float32
    return torch.stack(torch._foreach_norm(grads, 2, dtype=dtype))


def host_norms(grads: list[torch.Tensor]) -> list[float]:
    """Per-tensor 2-norms of CPU gradients as host floats (a CPU value needs no sync to read).

    Each float32 or float64 gradient's sum of squares in NumPy (``np.dot`` on a view: no copy, no
    torch dispatch, and no narrowing of a double-precision model's gradients); half precision,
    whose NumPy sums stay in half, through one fused float32 norm. Measured inside the demo's
    training loop, where the step has just evicted the caches, each torch call costs 3-7x its
    cost in a tight loop: the tensor path's five calls took 92 us per D step, the fused norm and
    a read of each about 40, NumPy about 27 (cold caches, six tensors of an MLP). A float32 sum of
    squares overflows once a norm passes ~1.8e19: those norms alone are taken again in float64
    (float64 throughout costs 4-20x on the CPU).
    """
    values: list[float] = []
    fused: list[int] = []
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is handled below, not warned about in the loop
        for g in grads:
            if g.dtype == torch.float32 or g.dtype == torch.float64:
                # A gradient of backward(create_graph=True) requires grad itself: NumPy needs it detached.
                x = (g.detach() if g.requires_grad else g).numpy().reshape(-1)
                norm = math.sqrt(float(np.dot(x, x)))
                values.append(_scaled_norm(x) if norm == math.inf else norm)
            else:
                fused.append(len(values))
                values.append(math.nan)
    if fused:
        for j, n in zip(fused, torch._foreach_norm([grads[j] for j in fused], 2, dtype=torch.float32), strict=True):
            values[j] = n.item()
            if values[j] == math.inf:
                values[j] = float(torch.linalg.vector_norm(grads[j], dtype=torch.float64))
    return values


def _scaled_norm(x: np.ndarray) -> float:
    """The 2-norm of a vector whose sum of squares overflowed: over its largest magnitude first,
    in float64 (exact for a float32 norm past ~1.8e19 and a float64 one past ~1e154; inf where an
    entry is)."""
    top = float(np.max(np.abs(x)))
    if not math.isfinite(top) or top == 0.0:
        return top
    scaled = x.astype(np.float64) / top
    return top * math.sqrt(float(np.dot(scaled, scaled)))


class GradTap:
    """Optimizer step pre-hook: global and per-layer gradient norms of what the optimizer applies
    to the watched module's parameters (an optimizer that also steps another network, as
    CycleGAN's steps both generators, is read for the watched one only).

    Armed per iteration: when not ``active`` it only counts the optimizer step (the overhead
    budget may measure every k-th iteration); ``seconds`` is the time spent measuring.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, names: Mapping[int, str]) -> None:
        self.optimizer = optimizer
        self.names = names
        self.total: torch.Tensor | float | None = None
        self.nonfinite: torch.Tensor | float | None = None
        self.steps = 0  # optimizer steps measured
        self.count = 0  # optimizer steps in this iteration
        self.active = True
        self.want_layers = False
        self.layers: dict[str, torch.Tensor | float] = {}
        self.seconds = 0.0
        self._params: list[torch.Tensor] | None = None  # the optimizer's parameters, listed once
        self._layer: dict[int, str] = {}  # id(parameter) -> its layer, worked out once
        self._groups = 0
        self.handle = optimizer.register_step_pre_hook(CopySafeHook(self._hook))
        self.failed: BaseException | None = None

    def _hook(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.count += 1
        if not self.active:
            return
        start = time.perf_counter()
        try:
            if self._params is None or len(optimizer.param_groups) != self._groups:
                stepped = [p for g in optimizer.param_groups for p in g["params"]]
                # The watched module's own parameters: CycleGAN's G optimizer also steps G_BA. All of
                # them where none is the module's (a wrapper that flattens parameters, e.g. FSDP).
                own = [p for p in stepped if id(p) in self.names]
                self._params = own or stepped
                self._layer = {id(p): layer_of(self.names.get(id(p), "unnamed")) for p in self._params}
                self._groups = len(optimizer.param_groups)
            params = [p for p in self._params if p.grad is not None and not p.grad.is_sparse]
            if not params:
                return
            with torch.no_grad():
                grads = [g for p in params if (g := p.grad) is not None]
                if grads[0].device.type == "cpu":
                    self._measure_on_host(params, host_norms(grads))
                else:
                    self._measure_on_device(params, tensor_norms(grads))
                self.steps += 1
        except Exception as exc:  # never let a probe break optimizer.step()
            self.failed = exc
            self.handle.remove()
        finally:
            self.seconds += time.perf_counter() - start

    def _measure_on_host(self, params: list[torch.Tensor], norms: list[float]) -> None:
        # math.hypot scales as it sums: no overflow short of a norm beyond float64's range.
        global_norm = math.hypot(*norms)
        self.total = global_norm if self.total is None else self.total + global_norm
        if self.want_layers:  # per-layer detail only on the layer schedule
            self.nonfinite = float(sum(not math.isfinite(n) for n in norms))
            per_layer: dict[str, list[float]] = {}
            for p, n in zip(params, norms, strict=True):
                per_layer.setdefault(self._layer[id(p)], []).append(n)
            self.layers = {k: math.hypot(*v) for k, v in per_layer.items()}

    def _measure_on_device(self, params: list[torch.Tensor], norms: torch.Tensor) -> None:
        # Few kernels, no sync: one fused per-tensor norm, one stack, one norm (of the norms in
        # float64: their sum of squares can overflow float32 too).
        dtype = widest_float(norms.device)
        global_norm = torch.linalg.vector_norm(norms, dtype=dtype)
        self.total = global_norm if self.total is None else self.total + global_norm
        if self.want_layers:
            self.nonfinite = (~torch.isfinite(norms)).sum().float()
            sq: dict[str, list[torch.Tensor]] = {}
            for p, n in zip(params, norms, strict=True):
                sq.setdefault(self._layer[id(p)], []).append(n)
            self.layers = {k: torch.linalg.vector_norm(torch.stack(v), dtype=dtype) for k, v in sq.items()}

    def take(self) -> tuple[dict[str, torch.Tensor | float], dict[str, torch.Tensor | float]]:
        out: dict[str, torch.Tensor | float] = {}
        if self.steps and self.total is not None:
            out["grad_norm"] = self.total / self.steps
        if self.nonfinite is not None:
            out["grad_nonfinite"] = self.nonfinite
        out["opt_steps"] = float(self.count)
        layers = self.layers
        self.arm(self.active, False)
        return out, layers

    def arm(self, active: bool, want_layers: bool) -> None:
        """Start a new iteration: measured or only counted."""
        self.total = self.nonfinite = None
        self.steps = self.count = 0
        self.layers = {}
        self.active = active
        self.want_layers = want_layers and active

    def remove(self) -> None:
        self.handle.remove()


#: Doctor steps without a step of an optimizer that had stepped before it is said to be replaced (or ten times its longest gap).
SILENT_STEPS = 200


class GradientProbe(Probe):
    """One per optimizer given (``grads.d``, ``grads.g``); a failed hook switches off only its own."""

    schedule_field = "grad_every"
    arms = True
    # At least every 8th iteration on long runs (the budget plans from step 5000): the two taps were
    # most of the doctor's scheduled time on the tiny MLP at every 4th (24 of 40 us per 1.9 ms
    # step), which held it over its budget; a burst the rules call (GD507: 20 steps over 1e4) still
    # spans two or three measured iterations, and a non-finite value reaches the next loss.
    max_stretch = 8
    signals: tuple[str, ...] = ("grad_norm.{role}", "grad_nonfinite.{role}", "opt_steps.{role}", "grad_norm.{role}.layer.*")
    cost = 0.06  # both hooks of one iteration of the demo's MLP GAN, one core

    def __init__(self, host: ProbeHost, role: str, optimizer: torch.optim.Optimizer, module: nn.Module) -> None:
        super().__init__(host)
        self.role = role
        self.name = f"grads.{role}"  # one instance per role
        self.signals = tuple(s.format(role=role) for s in GradientProbe.signals)
        self.tap = GradTap(optimizer, {id(p): name for name, p in module.named_parameters()})
        # The optimizer's last measured step with a count, the longest gap between two, the latest measured step.
        self.stepped_at: int | None = None
        self.longest_gap = 0
        self.measured_at = 0

    def measure(self, inputs: StepInputs) -> Values:
        if self.tap.failed is not None:
            failed, self.tap.failed = self.tap.failed, None
            raise failed
        taken, layers = self.tap.take()
        self.measured_at = inputs.step
        if taken["opt_steps"]:
            if self.stepped_at is not None:
                self.longest_gap = max(self.longest_gap, inputs.step - self.stepped_at)
            self.stepped_at = inputs.step
        values: dict[str, torch.Tensor | float] = {f"{key}.{self.role}": value for key, value in taken.items()}
        for layer, norm in layers.items():
            values[f"grad_norm.{self.role}.layer.{layer}"] = norm
        return values

    def idle_reason(self) -> str | None:
        """Said once: the optimizer given stepped, then stopped for far longer than any gap before
        while doctor.step goes on: replaced by a new one (pytorch_GAN_zoo's PGAN makes new optimizers
        at each scale; lightweight-gan rebuilds G, D and theirs after a NaN), whose steps no hook sees."""
        if self.stepped_at is None or self.measured_at - self.stepped_at < max(SILENT_STEPS, 10 * self.longest_gap):
            return None
        player = "D" if self.role == "d" else "G"
        return (
            f"{player}'s optimizer given to the Doctor has not stepped since step {self.stepped_at} while doctor.step goes on "
            f"(step {self.measured_at}): was it replaced by a new one, or {player} rebuilt? Its gradient norms and step counts "
            "end there and the rules that read them judge the run before it; load new states into the optimizer given "
            "(optimizer.load_state_dict) rather than making another, or give the rebuilt models and optimizers a Doctor of their own"
        )

    def after_step(self, step: int, every: int) -> None:
        # The hooks run during the next iteration's optimizer steps, before its doctor step.
        nxt = step + 1
        self.tap.arm(every > 0 and nxt % every == 0, nxt % self.host.schedule.layer_every == 0)

    def hook_seconds(self) -> float:
        seconds, self.tap.seconds = self.tap.seconds, 0.0
        return seconds

    def close(self) -> None:
        self.tap.remove()
