"""Signals computed from other signals when a rule asks for them (no torch, nothing stored).

A log with ``d_prob.real`` and ``d_prob.fake`` (a CSV's ``D_x`` and ``D_G_z``) also answers
``d.gap``; the engine reads a :class:`DerivedView` of the log, so a derived series exists
exactly when its sources do, in live runs and in saved logs alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .signals import SeriesView, SignalLog


@dataclass(frozen=True)
class Derived:
    name: str
    doc: str
    sources: tuple[str, ...]
    combine: Callable[[np.ndarray, np.ndarray], np.ndarray]
    # The sources' finite values must lie in this range, else the series is not derived (a log
    # whose "D_x" column holds raw critic or hinge scores has no probability gap).
    domain: tuple[float, float] | None = None
    # Other source pairs to use, in order, when the log lacks ``sources`` (the same quantity
    # under another signal: D's raw outputs where its probabilities were not logged).
    fallbacks: tuple[tuple[str, ...], ...] = ()


DERIVED: dict[str, Derived] = {}


def register_derived(derived: Derived) -> None:
    if derived.name in DERIVED:
        raise ValueError(f"derived signal {derived.name!r} is already registered")
    DERIVED[derived.name] = derived


register_derived(
    Derived(
        "d.gap",
        "d_prob.real - d_prob.fake at the steps both were logged: near 1 D separates, near 0 D cannot tell, < 0 D is fooled",
        ("d_prob.real", "d_prob.fake"),
        lambda real, fake: real - fake,
        domain=(0.0, 1.0),
    )
)


def _real_ahead(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
    # NaN where either side is missing, so a window's mean counts the steps both were logged. A tie
    # counts half, as in d.auc: torch_mimicry logs a critic's sigmoid to 4 places, 1.0000 on both
    # sides for a critic that separates, and ties counted as D losing called it G-dominated (GD206).
    ahead = np.where(real > fake, 1.0, np.where(real == fake, 0.5, 0.0))
    return np.where(np.isfinite(real) & np.isfinite(fake), ahead, np.nan)


register_derived(
    Derived(
        "d.real_ahead",
        "1 where D's mean output on the real batch exceeds its mean on the fakes, 0.5 where they tie, else 0: over a window, the share of "
        "steps D ranked the reals' batch above the fakes' (near 1 D separates, about 0.5 D cannot tell, below 0.5 D is "
        "fooled); only the sign counts, so probabilities, logits and critic scores read alike",
        ("d_out.real", "d_out.fake"),
        _real_ahead,
        fallbacks=(("d_prob.real", "d_prob.fake"),),
    )
)


register_derived(
    Derived(
        "d.acc",
        "D's balanced accuracy at threshold 0 from the mean signs of its raw outputs (a log's d_sign.*: StyleGAN2-ADA's "
        "Loss/signs/real and /fake): the share of reals scored real and of fakes scored fake, averaged",
        ("d_sign.real", "d_sign.fake"),
        lambda real, fake: (2.0 + real - fake) / 4.0,
        domain=(-1.0, 1.0),
    )
)


def _pairwise(a: SeriesView, b: SeriesView, name: str, combine: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> SeriesView | None:
    steps, ia, ib = np.intersect1d(a.steps, b.steps, return_indices=True)
    if steps.size == 0:
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        values = combine(a.values[ia], b.values[ib])
    counts = np.minimum(a.counts[ia], b.counts[ib])
    nonfinite = np.maximum(a.nonfinite[ia], b.nonfinite[ib])
    return SeriesView(name, steps, values.astype(np.float64), counts, nonfinite, _first_of_both(a, ia, b, ib))


def _first_of_both(a: SeriesView, ia: np.ndarray, b: SeriesView, ib: np.ndarray) -> np.ndarray | None:
    """Per point, the earlier of the two inputs' first non-finite steps (-1 where neither has one)."""
    if a.first_nonfinite is None or b.first_nonfinite is None:
        return None
    fa, fb = a.first_nonfinite[ia], b.first_nonfinite[ib]
    return np.where(fa < 0, fb, np.where(fb < 0, fa, np.minimum(fa, fb)))


def _within(values: np.ndarray, domain: tuple[float, float], tol: float = 1e-6) -> bool:
    finite = values[np.isfinite(values)]
    return bool(finite.size == 0 or (finite.min() >= domain[0] - tol and finite.max() <= domain[1] + tol))


class DerivedView:
    """Read-only view of a SignalLog that also answers the derived signals."""

    def __init__(self, log: SignalLog) -> None:
        self._log = log
        self.first_step = log.first_step
        self.last_step = log.last_step
        # Derived series computed once per view (a view lives for one evaluation; several rules,
        # and each rule's presence check, ask for the same one).
        self._derived: dict[str, SeriesView | None] = {}

    def get(self, name: str) -> SeriesView | None:
        view = self._log.get(name)
        if view is not None or name not in DERIVED:
            return view
        if name not in self._derived:
            view = self._derive(DERIVED[name])
            if view is not None:  # shared by every caller of this view: read-only, so none can change it for the others
                for array in (view.steps, view.values, view.counts, view.nonfinite, view.first_nonfinite):
                    if array is not None:
                        array.flags.writeable = False
            self._derived[name] = view
        return self._derived[name]

    def _derive(self, spec: Derived) -> SeriesView | None:
        name = spec.name
        for sources in (spec.sources, *spec.fallbacks):
            a, b = (self._log.get(s) for s in sources)
            if a is None or b is None:
                continue
            if spec.domain is not None and not all(_within(p.values, spec.domain) for p in (a, b)):
                return None
            return _pairwise(a, b, name, spec.combine)
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def names(self) -> list[str]:
        return sorted(set(self._log.names()) | {n for n in DERIVED if n in self})

    def span(self, keep: Callable[[str], bool]) -> tuple[int | None, int | None]:
        """:meth:`SignalLog.span` of the log viewed (a derived series lies within its sources' steps)."""
        return self._log.span(keep)

    def views(self) -> Iterator[SeriesView]:
        for name in self.names():
            view = self.get(name)
            if view is not None:
                yield view
