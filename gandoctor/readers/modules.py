"""Models printed in a console log (``print(netG)``): which layers G and D are made of.

pytorch/examples' DCGAN, the PyTorch DCGAN tutorial and many other scripts print both models
before training. A module's repr names the class of every layer, so a console log can say what
a live Doctor reads from the modules themselves (:func:`gandoctor.context.inspect_training`):
BatchNorm in G (``g_batchnorm``, on which GD305 and GD601 stand down), BatchNorm, dropout and
spectral norm in D (remedies the run already uses are not offered again), and a D that decodes
(transposed convolutions, upsampling: an autoencoder D, ``energy_d``, whose loss is a
reconstruction error the loss-floor rules do not read). The text is only
matched line by line: nothing in it is imported or executed.

A repr starts at the beginning of a line with the model's class, ``Generator(``, or a label
printed before it, ``netD: Sequential(``, and ends at a line holding ``)`` alone. Which model is
G and which D is read from that class name or label (``Generator``, ``netG``, ``ConvG``, ``G``;
``Discriminator``, ``Critic``, ``netD``, ``DCGAN_D``, ``D``); a repr named neither way, or both, is
left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from ..context import RunContext, spectral_norm_class

Role = Literal["g", "d"]

#: A logging call's prefix before a printed model (``logger.info(netG)``: StudioGAN's
#: ``[INFO] 2020-09-15 13:23:51 > Generator(``; ``INFO:root:``; ``2020-09-15 13:23:51,123 - ``): only the
#: repr's first line carries it.
LOG_PREFIX = r"(?:(?:\[[^\[\]]{1,60}\]|\d{4}-\d\d-\d\d[ T][\d:.,]+|[A-Z]{3,8}:[\w.]+:)\s*(?:[>|\-:]\s+)?)*"
START = re.compile(r"^" + LOG_PREFIX + r"(?:(?P<label>[A-Za-z_][\w .\-]{0,40}?)\s*[:=]\s*)?(?P<cls>[A-Za-z_][\w.]*)\($")
LAYER = re.compile(r"^\s+\([\w.\-]+\):\s+(?P<cls>[A-Za-z_][\w.]*)\(")
END = re.compile(r"^\)\s*$")
# "Gen"/"Disc"/"Critic" anywhere (DCGenerator), lower case only where a word starts (my_generator):
# ImageNet is not a generator.
_G = re.compile(r"Gen|(?:^|[^a-zA-Z])gen|^_?net_?g\b|^[gG]$|^[gG]_?net")
_D = re.compile(r"Disc|Critic|(?:^|[^a-zA-Z])(?:disc|critic)|^_?net_?[dD]\b|^[dD]$|^[dD]_?net")
# A capital G or D closing a class name after a lower-case letter, digit or underscore: ConvG, DCGAN_D (not VGG).
_G_SUFFIX = re.compile(r"[a-z0-9_]G$")
_D_SUFFIX = re.compile(r"[a-z0-9_]D$")


#: Layers that enlarge their input: in a D, a decoder's (an autoencoder D). No classifier D has them.
DECODER_LAYERS = frozenset({"ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle"})


@dataclass(frozen=True)
class PrintedModel:
    """One model's repr found in a log: its role, class, the classes of its layers and where it starts."""

    role: Role
    name: str
    layers: frozenset[str]
    line: int


def role_of(*names: str | None) -> Role | None:
    """``"g"`` or ``"d"`` where the label or class name says which model it is, else None."""
    for name in names:
        if not name:
            continue
        short = name.strip().rsplit(".", 1)[-1]
        g = bool(_G.search(short) or _G_SUFFIX.search(short))
        d = bool(_D.search(short) or _D_SUFFIX.search(short))
        if g != d:
            return "g" if g else "d"
    return None


class ModelReprs:
    """Fed a log's lines in order; :meth:`feed` says which belong to a printed model (they are
    not log records), and :attr:`models` holds the G and D found (the first of each)."""

    def __init__(self) -> None:
        self.models: dict[Role, PrintedModel] = {}
        self._open: tuple[str | None, str, int] | None = None  # label, class, first line
        self._layers: set[str] = set()

    def feed(self, lineno: int, text: str) -> bool:
        line = text.rstrip("\r\n")
        if self._open is None:
            m = START.match(line)
            if m is None:
                return False
            self._open, self._layers = (m["label"], m["cls"], lineno), set()
            return True
        if END.match(line):
            self._close()
            return True
        m = LAYER.match(line)
        if m is not None:
            self._layers.add(m["cls"].rsplit(".", 1)[-1])
            return True
        if line.startswith((" ", "\t")):  # a wrapped argument list, a custom extra_repr
            return True
        # Anything else at column 0 ends the repr (a log cut short, a module printed without its close).
        self._close()
        return self.feed(lineno, text)

    def finish(self) -> None:
        if self._open is not None:
            self._close()

    def _close(self) -> None:
        assert self._open is not None
        label, cls, line = self._open
        self._open = None
        role = role_of(label, cls)
        if role is None or not self._layers or role in self.models:
            return
        self.models[role] = PrintedModel(role, label.strip() if label else cls, frozenset(self._layers), line)

    def context(self) -> RunContext:
        """The flags and values a live Doctor would read from these models (those it can see in a repr)."""
        flags: set[str] = set()
        values: dict[str, Any] = {}
        for role, model in self.models.items():
            # As context.norm_layers names them; spectral norm is a parametrization, not a norm layer.
            norms = sorted(c for c in model.layers if "Norm" in c and not spectral_norm_class(c))
            values[f"{role}_norm"] = norms
            values[f"{role}_printed_at_line"] = model.line
            if any(c.startswith("BatchNorm") or c == "SyncBatchNorm" for c in model.layers):
                flags.add(f"{role}_batchnorm")
            if role == "d":
                if any(c.startswith(("Dropout", "AlphaDropout", "FeatureAlphaDropout")) for c in model.layers):
                    flags.add("d_dropout")
                if any(spectral_norm_class(c) for c in model.layers):  # parametrizations' SpectralNorm, a wrapper, SNConv2d
                    flags.add("d_spectral_norm")
                if any(c in DECODER_LAYERS for c in model.layers):
                    # A D that upsamples decodes: an autoencoder D (BEGAN, EBGAN), whose loss is a
                    # reconstruction error, as a live Doctor establishes from D's outputs (energy_d).
                    flags.add("energy_d")
        return RunContext(frozenset(flags), values)
