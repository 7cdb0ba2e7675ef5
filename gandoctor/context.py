"""What is known about a run besides its signals: the RunContext and how it is read from the models.

Three sources fill it: the inspection of G, D and their optimizers when a Doctor attaches
(:func:`inspect_training`), the user (``Doctor(uses=...)``, ``gandoctor analyze --uses``), and
facts the Doctor infers from the signals as they arrive (a negative D loss means a critic; two
D optimizer steps per G step, ``multi_d_steps``). The run log stores it as
``{"flags": [...], "values": {...}}`` (:meth:`RunContext.to_dict` / :meth:`RunContext.from_dict`).

torch is imported only inside :func:`inspect_training`, so readers and the CLI can use the
dataclass without it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from .errors import GanDoctorError

if TYPE_CHECKING:
    import torch
    from torch import nn


class ContextError(GanDoctorError):
    """A stored run context is malformed. The message names where it was read from."""


# A context value is JSON-safe: a scalar, or a list of scalars (``g_norm: ["BatchNorm2d"]``).
_SCALARS = (str, int, float, bool)


def _is_value(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, _SCALARS):
        return True
    return isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) and _is_value(v) for v in value)


@dataclass(frozen=True)
class RunContext:
    """What is known about the run: flags (``d_spectral_norm``, ``critic``, ``ttur`` …) and values.

    Flags name techniques the run already uses, so remedies can skip them. They come from the
    probes (inspection of the models and optimizers), the run log header, or the user
    (``Doctor(uses=...)`` / ``gandoctor analyze --uses``). Values are numbers, strings, or
    lists of them (``lr_d``, ``optimizer_d``, ``g_norm`` …).
    """

    flags: frozenset[str] = frozenset()
    values: Mapping[str, Any] = field(default_factory=dict)

    def merged(self, other: RunContext) -> RunContext:
        """This context with ``other``'s flags added and its values taking precedence."""
        return RunContext(self.flags | other.flags, dict(self.values) | dict(other.values))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the run log stores: sorted flags, values with lists for tuples."""
        return {
            "flags": sorted(self.flags),
            "values": {k: list(v) if isinstance(v, tuple) else v for k, v in self.values.items()},
        }

    @classmethod
    def from_dict(cls, data: Any, where: str, strict: bool = True) -> RunContext:
        """Parse :meth:`to_dict`'s form read from ``where`` (a file and line, for the message).

        ``strict=False`` drops what is malformed instead of raising (a reader that warns and
        goes on); ``strict=True`` raises :class:`ContextError` naming ``where``, the key, what
        was expected and what was found.
        """
        if not isinstance(data, Mapping):
            if strict:
                raise ContextError(f"{where}: context: expected an object with 'flags' and 'values', got {type(data).__name__}")
            return cls()
        flags_raw = data.get("flags", [])
        values_raw = data.get("values", {})
        if not isinstance(flags_raw, list) or not all(isinstance(f, str) for f in flags_raw):
            if strict:
                raise ContextError(f"{where}: context.flags: expected a list of strings, got {flags_raw!r}")
            flags_raw = [f for f in flags_raw if isinstance(f, str)] if isinstance(flags_raw, list) else []
        if not isinstance(values_raw, Mapping):
            if strict:
                raise ContextError(f"{where}: context.values: expected an object, got {type(values_raw).__name__}")
            values_raw = {}
        values: dict[str, Any] = {}
        for key, value in values_raw.items():
            if isinstance(key, str) and _is_value(value):
                values[key] = list(value) if isinstance(value, tuple) else value
            elif strict:
                raise ContextError(
                    f"{where}: context.values.{key}: expected a finite number, a string, a boolean or a list of them, got {value!r}"
                )
        return cls(frozenset(flags_raw), values)


def parse_uses(uses: Iterable[str] | Mapping[str, Any]) -> RunContext:
    """``uses=["gradient_penalty"]`` or ``uses={"gradient_penalty": 10.0}``: flags, and values for a mapping."""
    if isinstance(uses, str):
        raise TypeError(f"uses must be a list of flags or a mapping flag -> value, got the string {uses!r}")
    if isinstance(uses, Mapping):
        for flag, value in uses.items():
            if not isinstance(flag, str) or not _is_value(value):
                raise ValueError(f"uses[{flag!r}]: expected a string flag and a number, string or boolean value, got {value!r}")
        return RunContext(frozenset(uses), dict(uses))
    flags = list(uses)
    bad = [f for f in flags if not isinstance(f, str)]
    if bad:
        raise TypeError(f"uses must hold strings, got {bad[0]!r}")
    return RunContext(frozenset(flags))


def latent_shape(generator: nn.Module, latent_dim: int | None = None) -> tuple[int, ...] | None:
    """The shape of one latent code: from G's first Linear / ConvTranspose layer, or ``latent_dim``."""
    candidates = latent_shape_candidates(generator, latent_dim)
    return candidates[0] if candidates else None


#: Attributes under which a G keeps the size of its code (StyleGAN2-ADA's and StyleGAN3's ``z_dim``,
#: BigGAN-PyTorch's ``dim_z``, DCGAN ports' ``nz``): read before G's layers, whose first may be a
#: layer class of the code's own (StyleGAN's FullyConnectedLayer is no nn.Linear).
LATENT_ATTRIBUTES = ("z_dim", "latent_dim", "dim_z", "nz", "noise_dim", "latent_size", "z_size")


def latent_attribute(generator: nn.Module) -> tuple[int, ...] | None:
    """The code's shape from an attribute G keeps its size under, or None."""
    for name in LATENT_ATTRIBUTES:
        value = getattr(generator, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return (value,)
    return None


def latent_shape_candidates(generator: nn.Module, latent_dim: int | None = None) -> tuple[tuple[int, ...], ...]:
    """Shapes one latent code may have, most likely first: ``latent_dim`` when given; else the
    input width of G's first Linear / ConvTranspose layer, then that width less each label
    embedding's size (a conditional G that concatenates z with an embedding of its labels, as
    PyTorch-GAN's cgan.py does, reads z and the embedding together in its first layer)."""

    if latent_dim is None and (declared := latent_attribute(generator)) is not None:
        # The layers' shape where its width agrees (a DCGAN's nz read as the (nz, 1, 1) its first
        # transposed convolution takes), else the attribute's, then the layers' guesses.
        layers = _layer_latent_shapes(generator, None)
        return tuple(dict.fromkeys(
            [s for s in layers if s[0] == declared[0]][:1] + [declared] + [s for s in layers if s[0] != declared[0]]
        ))
    return _layer_latent_shapes(generator, latent_dim)


def _layer_latent_shapes(generator: nn.Module, latent_dim: int | None) -> tuple[tuple[int, ...], ...]:
    from torch import nn

    embeddings = sorted({m.embedding_dim for m in generator.modules() if isinstance(m, nn.Embedding)})
    tail: tuple[int, ...]
    for m in generator.modules():
        if isinstance(m, nn.Linear):
            width, tail = m.in_features, ()
        elif isinstance(m, nn.modules.conv._ConvTransposeNd):
            # DCGAN-style: a (C, 1, 1) code expanded by the first transposed convolution.
            width, tail = m.in_channels, (1,) * len(m.kernel_size)
        elif isinstance(m, nn.modules.conv._ConvNd):
            break  # G starts from an image: no latent shape to read
        else:
            continue
        if latent_dim is not None:
            return ((latent_dim, *tail),)
        if width == 0:  # a lazy first layer (nn.LazyLinear) before G's first forward: not known yet
            return ()
        return tuple((w, *tail) for w in (width, *(width - e for e in embeddings if 0 < width - e)))
    return () if latent_dim is None else ((latent_dim,),)


def spectral_norm_class(name: str) -> bool:
    """A module class that applies spectral norm itself: a ``SpectralNorm(nn.Conv2d(...))`` wrapper
    (christiancosgrove's SN-GAN and its many copies) or BigGAN-PyTorch's ``SNConv2d`` / ``SNLinear``."""
    return "SpectralNorm" in name or (len(name) > 2 and name.startswith("SN") and name[2].isupper())


def has_spectral_norm(module: nn.Module) -> bool:
    for m in module.modules():
        # torch.nn.utils.spectral_norm keeps weight_orig and its power-iteration vector weight_u;
        # an equalized learning rate (rosinality's StyleGAN: EqualLR) keeps weight_orig alone.
        if (hasattr(m, "weight_orig") and hasattr(m, "weight_u")) or spectral_norm_class(type(m).__name__):
            return True
        params = getattr(m, "parametrizations", None)
        if params is not None:
            for plist in params.values():
                if any("SpectralNorm" in type(p).__name__ for p in plist):
                    return True
    return False


def norm_layers(module: nn.Module) -> list[str]:
    """Sorted type names of the normalisation layers (BatchNorm2d, LayerNorm, a custom PixelNorm …)."""
    from torch import nn

    known = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
    names = {
        type(m).__name__
        for path, m in module.named_modules()
        # Spectral norm is a parametrization of a weight (flag d_spectral_norm), not a layer.
        if "parametrizations" not in path.split(".") and not spectral_norm_class(type(m).__name__)
        and (isinstance(m, known) or "Norm" in type(m).__name__)
    }
    return sorted(names)


def training_group(opt: torch.optim.Optimizer, module: nn.Module) -> dict[str, Any]:
    """The parameter group that trains the module: one optimizer over G's and D's groups (each
    with its own lr) holds D's settings in the group of D's parameters, not necessarily the first."""
    own = {id(p) for p in module.parameters()}
    return next((g for g in opt.param_groups if any(id(p) in own for p in g["params"])), opt.param_groups[0])


def _optimizer_values(role: str, opt: torch.optim.Optimizer, module: nn.Module, flags: set[str], values: dict[str, Any]) -> None:
    group = training_group(opt, module)
    if "initial_lr" in group:  # a torch.optim.lr_scheduler was made before the Doctor
        flags.add("lr_schedule")
    values[f"optimizer_{role}"] = type(opt).__name__
    if isinstance(group.get("lr"), (int, float)):
        values[f"lr_{role}"] = float(group["lr"])
    betas = group.get("betas")
    if isinstance(betas, (tuple, list)) and len(betas) == 2:
        values[f"beta1_{role}"] = float(betas[0])
        values[f"beta2_{role}"] = float(betas[1])
    decay = group.get("weight_decay", 0.0)
    if isinstance(decay, (int, float)):
        values[f"weight_decay_{role}"] = float(decay)
        if decay > 0:
            flags.add(f"weight_decay_{role}")


def inspect_training(
    g: nn.Module,
    d: nn.Module,
    g_opt: torch.optim.Optimizer | None,
    d_opt: torch.optim.Optimizer | None,
    d_output: str = "auto",
    uses: Iterable[str] | Mapping[str, Any] = (),
) -> RunContext:
    """What the models and optimizers say about the run (the user's ``uses`` merged in)."""
    from torch import nn

    user = parse_uses(uses)
    flags: set[str] = set(user.flags)
    values: dict[str, Any] = {"d_output": d_output}
    if has_spectral_norm(d):
        flags.add("d_spectral_norm")
    dropouts = [m.p for m in d.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if dropouts:
        flags.add("d_dropout")
    values["d_dropout_p"] = float(max(dropouts, default=0.0))
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules()):
        flags.add("d_batchnorm")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in g.modules()):
        flags.add("g_batchnorm")
    values["d_norm"] = norm_layers(d)
    values["g_norm"] = norm_layers(g)
    if d_output == "critic":
        flags.add("critic")
    if d_output == "energy":  # lower for reals: its loss is a reconstruction error or a margin, not a classification loss
        flags.add("energy_d")
    for role, opt, module in (("d", d_opt, d), ("g", g_opt, g)):
        if opt is not None:
            _optimizer_values(role, opt, module, flags, values)
    if "lr_d" in values and "lr_g" in values and not math.isclose(values["lr_d"], values["lr_g"]):
        flags.add("ttur")
        if values["lr_d"] > values["lr_g"]:
            flags.add("lr_d_above_lr_g")
    # A lazy module's parameters have no size before its first forward (nn.LazyLinear): not counted.
    values["d_params"] = sum(p.numel() for p in d.parameters() if not nn.parameter.is_lazy(p))
    values["g_params"] = sum(p.numel() for p in g.parameters() if not nn.parameter.is_lazy(p))
    from .probes.latents import takes_one_input  # recording side only, where inspect_training runs

    shape = latent_shape(g)
    # A G that needs labels reads z and the labels at its first layer: that width is not z's (the
    # fixed-latent probe notes z's width once it finds it); an attribute such as z_dim names z's alone.
    if shape is not None and (takes_one_input(g) or latent_attribute(g) is not None):
        values["latent_dim"] = shape[0]
    values.update(user.values)
    return RunContext(frozenset(flags), values)


#: ``values["world_size"]``: the ranks of a torch.distributed run whose values the run log holds
#: reduced (averaged; norms their maximum). Absent where one process recorded them.
WORLD_SIZE = "world_size"
#: The flag of a run whose D statistics come from fewer than :data:`FEW_D_SAMPLES_BELOW` samples a
#: side (``values["d_samples"]``): d.auc's spread from batch to batch is then sampling noise at the
#: bars of the rules that read its swings (at chance its standard deviation is 0.149 with 8 a side,
#: 0.051 with 64; d2l's GAN trains on batches of 8 and its healthy run was called cycling, GD601).
FEW_D_SAMPLES = "few_d_samples"
FEW_D_SAMPLES_BELOW = 32
#: The flag of a run whose D outputs came from the doctor's own forward (``d_forward=``, or the
#: loop's D calls unseen) on fewer than :data:`FEW_D_SAMPLES_BELOW` samples a side: that forward
#: runs after D's step on those very samples, so D's accuracy there is its training accuracy
#: (pix2pix at its batch of 1: one Adam step flips D's call on the pair; a healthy run read 0.98
#: and "separates perfectly" against 0.75 from the loop's own outputs of the same training).
D_OUTPUTS_TRAINED_ON = "d_outputs_trained_on"
#: The flag of a run whose samples reached the doctor with labels (``labels=`` or ``fake_labels=``):
#: a conditional G's fakes spread across its labels as widely as the data while repeating one
#: image per label (the Packt book's cGAN with a 2-d z: 92% repeats, diversity 0.84 of the reals').
CONDITIONAL = "conditional"
#: ``values["d_loss_step_share"]``: the share of D's optimizer steps that follow a backward of a
#: loss on D's outputs, where it is under 1: a loop that steps D's optimizer a second time on a
#: gradient penalty alone (SAGAN's WGAN-GP) read as two D steps per G step, and was told to train
#: G more often. D's steps per G step count those steps only.
D_LOSS_STEP_SHARE = "d_loss_step_share"
#: ``values["d_loss_form"]`` when the Doctor tried D's loss against every known form and none fitted.
D_LOSS_FORM_UNRECOGNISED = "unrecognised"
#: The flag of a run whose D loss fits no known form and whose unit was not declared: the rules that
#: read D's loss against a unit's floor or chance (GD102, GD106, GD207) skip it, and corroborations
#: on a scaled threshold are dropped. Read as BCE, a least-squares loss towards -1/0 at 0.16 (near
#: its chance, 0.25) was called D dominance at confidence 0.76 beside the note that its form was unknown.
D_LOSS_UNIT_UNKNOWN = "d_loss_unit_unknown"
#: Runs whose D loss has no unit to know: a Wasserstein critic's estimate, an energy D's margin or
#: reconstruction error.
NO_LOSS_UNIT: frozenset[str] = frozenset({"critic", "energy_d"})


def with_loss_unit_status(context: RunContext) -> RunContext:
    """``context`` with :data:`D_LOSS_UNIT_UNKNOWN` where D's loss fits no known form and no unit
    was declared (a critic's or an energy D's loss has none to know: their flags say so)."""
    values = context.values
    # A hinge loss, declared where its form could not be learnt (micro-batches accumulated), has its own: 2.0 at chance.
    if values.get("d_loss_form") != D_LOSS_FORM_UNRECOGNISED or "d_loss_unit" in values or context.flags & (NO_LOSS_UNIT | {"hinge_loss"}):
        return context
    return context.merged(RunContext(frozenset({D_LOSS_UNIT_UNKNOWN})))

#: Doctor steps with optimizer counts before D's steps per G step are read from their sums.
_RATIO_STEPS = 20


class ContextInference:
    """Facts read from the signals as they are recorded.

    A negative D loss (``d_output="auto"`` only) means a Wasserstein critic: BCE, hinge and
    least-squares D losses are never negative. Two or more D optimizer steps per G step mean
    ``multi_d_steps`` (with ``d_steps_per_g``): the median of the ratios within one doctor step
    (kept up to date: the original WGAN trains D 100 times per G step for its first 25 and every
    500th, 5 times otherwise, and its first steps read 29), or summed over the first twenty doctor
    steps with counts (a loop that calls doctor.step on every batch, G training on every n-th).
    """

    def __init__(self, d_output: str) -> None:
        self.auto = d_output == "auto"
        self.saw_negative_d_loss = False
        # Optimizer steps summed over the doctor steps: a loop that calls doctor.step on every
        # batch while G trains on every n-th one (PyTorch-GAN's wgan_gp.py) has G counts of 0 at most.
        self.total_d = self.total_g = 0.0
        self.counted = 0
        self.ratios: Counter[float] = Counter()  # D steps per G step within a doctor step, and how often each

    def observe(self, values: Mapping[str, float], context: RunContext) -> RunContext | None:
        flags: set[str] = set()
        learnt: dict[str, Any] = {}
        loss_d = values.get("loss.d")
        if self.auto and not self.saw_negative_d_loss and loss_d is not None and loss_d < -1e-6:
            self.saw_negative_d_loss = True
            flags.add("critic")
        steps_d, steps_g = values.get("opt_steps.d"), values.get("opt_steps.g")
        if steps_d is not None and steps_g is not None and math.isfinite(steps_d) and math.isfinite(steps_g):
            self.total_d, self.total_g, self.counted = self.total_d + steps_d, self.total_g + steps_g, self.counted + 1
            if steps_d and steps_g:
                self.ratios[round(steps_d / steps_g, 2)] += 1
        seen = sum(self.ratios.values())
        share = context.values.get(D_LOSS_STEP_SHARE, 1.0)
        share = share if isinstance(share, (int, float)) and 0 < share <= 1 else 1.0
        # Read at the first ratio and every twentieth after: a ratio that alternates (2, 3, 2, ...)
        # does not rewrite the context at every step.
        typical = _median_of_counts(self.ratios) if seen == 1 or (seen and seen % _RATIO_STEPS == 0) else None
        typical = None if typical is None else round(typical * share, 2)
        if typical is not None and typical >= 2:
            if "multi_d_steps" not in context.flags:
                flags.add("multi_d_steps")
            if context.values.get("d_steps_per_g") != typical:
                learnt["d_steps_per_g"] = typical
        elif self.counted in _SUM_CHECKS and self.total_g and self.total_d * share >= 2 * self.total_g and (
            not self.ratios or "multi_d_steps" not in context.flags
        ):
            # Summed again at longer spans: a cycle of one G batch and five D batches holds 4 G
            # steps and 16 D steps in the first twenty (read 4.0 for 5); at a hundred, 4.9. Where
            # ratios within doctor steps gave the count, the sums do not overwrite it.
            if "multi_d_steps" not in context.flags:
                flags.add("multi_d_steps")
            ratio = round(self.total_d * share / self.total_g, 1)
            if context.values.get("d_steps_per_g") != ratio:
                learnt["d_steps_per_g"] = ratio
        elif typical is not None and "multi_d_steps" not in context.flags and self.total_d * share < 2 * self.total_g:
            # One D step per G step, known (not merely unseen): "train G more often" is then done
            # already, and a critic at one step is the weak one WGAN's five steps are for.
            if context.values.get("d_steps_per_g") != typical:
                learnt["d_steps_per_g"] = typical
        if self.counted in _SUM_CHECKS and self.total_g:
            # A loop that calls doctor.step on every D batch makes several doctor steps per G
            # step: the rules' windows, calibrated on one doctor step per G step, are read in G
            # iterations (crcrpar's SNGAN, n_dis=5: GD101 fired after 54 G iterations attached one
            # way, "too short to judge" at 200 the other).
            per_g = round(self.counted / self.total_g, 1)
            if per_g >= 1.5 and context.values.get(STEPS_PER_G_STEP) != per_g:
                learnt[STEPS_PER_G_STEP] = per_g
        return RunContext(frozenset(flags), learnt) if flags or learnt else None


#: Doctor steps per G optimizer step, where a loop calls doctor.step more often than G steps.
STEPS_PER_G_STEP = "doctor_steps_per_g"

#: Doctor steps at which the optimizer counts summed so far are read (a loop whose doctor steps hold either D's or G's steps).
_SUM_CHECKS = frozenset({_RATIO_STEPS, 5 * _RATIO_STEPS, 25 * _RATIO_STEPS})


def _median_of_counts(counts: Mapping[float, int]) -> float | None:
    """The median of values kept as value -> how often it was seen (None when none was)."""
    total = sum(counts.values())
    if not total:
        return None
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if 2 * seen >= total:
            return value
    return None
