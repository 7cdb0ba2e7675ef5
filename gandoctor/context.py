"""RunContext: what is known about the run, from the models and optimizers, the user and the signals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class RunContext:
    """What is known about the run: flags (``d_spectral_norm``, ``critic``, ``ttur`` …) and values.

    Flags name techniques the run already uses, so remedies can skip them. They come from the
    probes (inspection of the models and optimizers), the run log header, or the user
    (``Doctor(uses=...)`` / ``gandoctor analyze --uses``).
    """

    flags: frozenset[str] = frozenset()
    values: Mapping[str, Any] = field(default_factory=dict)

    def merged(self, other: "RunContext") -> "RunContext":
        return RunContext(self.flags | other.flags, dict(self.values) | dict(other.values))
