"""What every foreign-log reader shares: the read options, name mapping and step derivation.

Kept apart from the registry so a reader module can import it without import cycles.
"""

from __future__ import annotations

import contextvars
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import LogFormatError
from ..signals import (
    ALIASES,
    SIGNALS,
    SignalLog,
    alias_for,
    alias_key,
    check_signal_name,
)

MAX_REPORTED = 20
#: Steps beyond this are damage, not training (and would overflow the int64 step arrays).
MAX_STEP = 1 << 53
_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "+inf": math.inf, "infinity": math.inf, "-infinity": -math.inf}

#: Signals the readers compute themselves from image summaries (not probes' signals).
#: Pixels are scaled to [0, 1]; a "tile" is one sample of a logged grid.
READER_SIGNALS: Mapping[str, str] = {
    "img.diversity": "mean RMS pixel difference between two tiles of a logged sample grid: 0 = every sample identical",
    "img.dup_rate": "share of the grid's tiles whose nearest other tile differs by less than DUPLICATE_RMS (near-duplicates)",
    "img.change": "mean RMS pixel difference of each tile to the same tile of the previous logged grid (fixed latents: how far G moved)",
    "img.tiles": "number of tiles the grid was split into",
}


@dataclass(frozen=True)
class ReadOptions:
    """What the user told the CLI about a log: explicit names, the step column, the grid layout."""

    #: signal -> the log's own name for it (``--map loss.d=errD``); wins over the alias table
    mapping: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: column / key holding the step (``--step COLUMN``), overriding detection
    step: str | None = None
    #: (height, width) of one tile of logged image grids (``--grid-tile HxW``)
    grid_tile: tuple[int, int] | None = None
    #: the steps each record stands for where no line or row gives its position (``--record-steps N``:
    #: a script printing one line of averages per epoch of N batches)
    record_steps: int = 1


read_options: contextvars.ContextVar[ReadOptions] = contextvars.ContextVar("gandoctor_read_options", default=ReadOptions())  # noqa: B039 (frozen)


def parse_mapping(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``['loss.d=errD', ...]`` -> ``{'loss.d': 'errD'}``; raises LogFormatError on a bad item."""
    out: dict[str, str] = {}
    for item in items:
        signal, sep, name = item.partition("=")
        signal, name = signal.strip(), name.strip()
        if not sep or not signal or not name:
            raise LogFormatError(f"--map {item!r}: expected SIGNAL=NAME, e.g. loss.d=errD")
        if signal not in SIGNALS and signal not in READER_SIGNALS:
            check_signal_name(signal)
            raise LogFormatError(f"--map {item!r}: unknown signal {signal!r}; expected one of: {', '.join(sorted(SIGNALS))}")
        out[signal] = name
    return out


def parse_tile(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match.group(1)) < 2 or int(match.group(2)) < 2:
        raise LogFormatError(f"--grid-tile {text!r}: expected HEIGHTxWIDTH in pixels, e.g. 64x64")
    return int(match.group(1)), int(match.group(2))


def number(raw: Any) -> float | None:
    """A cell or JSON value as a float (``'nan'``, ``'inf'`` understood), or None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        text = raw.strip()
        special = _SPECIAL.get(text.lower())
        if special is not None:
            return special
        try:
            return float(text)
        except ValueError:
            return None
    return None


#: Names of a player alone (lower case), each signal's: an add_scalars key of a loss group
#: (TensorBoard's ``loss_parts``), or a scalar of its own (:data:`BARE_PLAYER_NAMES`).
PLAYER_NAMES: Mapping[str, frozenset[str]] = {
    "loss.d": frozenset({"d", "dis", "disc", "discriminator", "critic"}),
    "loss.g": frozenset({"g", "gen", "generator"}),
}
#: Scalars named for a player alone, read as that player's loss where a log has no loss under a
#: name the alias table knows (their user.* form); a model's name (netD) stands for its player too.
BARE_PLAYER_NAMES: Mapping[str, frozenset[str]] = {
    "loss.d": PLAYER_NAMES["loss.d"] | {"netd"},
    "loss.g": PLAYER_NAMES["loss.g"] | {"netg"},
}


def _user_name(name: str) -> str | None:
    safe = re.sub(r"[^a-z0-9_]+", "_", alias_key(name)).strip("_")
    return f"user.{safe}" if safe else None


class NameMapper:
    """Maps a log's names onto signals: ``--map`` first, then the alias table, else ``user.*``.

    Remembers which original name each signal came from (``mapped``). A name the alias table
    maps to a signal that ``--map`` gave to another name stays ``user.*``. With ``exclusive``
    (TensorBoard tags, each its own series) a second name for a signal already taken stays
    ``user.*`` too, with a note, so two tags never interleave in one series; tables instead keep
    the first of two such columns per row, and records may spell a name differently.
    """

    def __init__(self, overrides: Mapping[str, str] | None = None, exclusive: bool = False) -> None:
        self.exclusive = exclusive
        overrides = dict(read_options.get().mapping if overrides is None else overrides)
        self._forced = {alias_key(name): signal for signal, name in overrides.items()}
        self._forced_exact = {name: signal for signal, name in overrides.items()}
        # A name as the warnings show the log's unmapped scalars (user.*'s form: 'Losses/MinimaxDiscriminatorLoss'
        # is offered as 'losses_minimaxdiscriminatorloss'): that form maps too.
        self._forced_user = {_user_name(name): signal for signal, name in overrides.items()}
        self._given = dict(read_options.get().mapping)  # the user's --map, said where it matched nothing
        self._claimed = set(overrides)
        self._forced_signals = frozenset(overrides)
        self.mapped: dict[str, str] = {}
        self.found: dict[str, None] = {}
        self.notes: list[str] = []
        self._cache: dict[str, str | None] = {}

    def __call__(self, name: str) -> str | None:
        hit = self._cache.get(name, "")
        if hit != "":
            return hit
        signal = self._resolve(name)
        self._cache[name] = signal
        return signal

    def _resolve(self, name: str) -> str | None:
        self.found.setdefault(name, None)
        signal = self._forced_exact.get(name) or self._forced.get(alias_key(name)) or self._forced_user.get(_user_name(name))
        if signal is None:
            signal = alias_for(name)
            if signal is not None and signal in self._claimed and (self.exclusive or signal in self._forced_signals) and self.mapped.get(signal) != name:
                taken = self.mapped.get(signal, "--map")
                self.notes.append(f"'{name}' also looks like {signal}, which is already read from '{taken}'; kept as {_user_name(name)}")
                signal = None
        if signal is None:
            return _user_name(name)
        self._claimed.add(signal)
        self.mapped.setdefault(signal, name)
        return signal

    def given_losses(self) -> bool:
        """Whether the user's --map names a loss (then no other name is taken for one)."""
        return bool({"loss.d", "loss.g", "loss.d_real", "loss.d_fake"} & set(self._given))

    def unused(self) -> list[str]:
        """Notes on the user's --map names that matched no name of the log."""
        return [
            f"--map {signal}={name} matched no name in the log (its names: {', '.join(repr(n) for n in list(self.found)[:12])})"
            for signal, name in self._given.items() if signal not in self.mapped
        ]

    def check(self, path: Path, signals: SignalLog) -> None:
        """Raise when nothing in the log maps to a signal gandoctor checks."""
        if any(not n.startswith("user.") for n in signals.names()):
            return
        found = list(self.found)
        shown = ", ".join(repr(n) for n in found[:30]) + (f" and {len(found) - 30} more" if len(found) > 30 else "")
        examples: dict[str, list[str]] = {}
        for alias, signal in ALIASES.items():
            examples.setdefault(signal, []).append(alias)
        expected = "; ".join(f"{s} (e.g. {', '.join(a[:3])})" for s, a in examples.items())
        raise LogFormatError(
            f"{path}: no name in this log maps to a signal gandoctor checks; found: {shown or '(no names)'}; "
            f"expected: {expected}; or name one with --map SIGNAL=NAME"
        )


class StepClock:
    """Turns what a log says about position into a global step that never goes backwards.

    - epoch + batch within epoch (with the batches per epoch when known): epoch x per_epoch + batch;
      unknown per_epoch is learned: at each new epoch the count continues from the last batch
      seen plus the logging interval.
    - a plain step column: taken as is while it increases.
    Whenever the step would go backwards (a restart, or a counter that is per epoch after all),
    the history is continued in row order from where it was, with a warning, rather than
    letting the old steps be overwritten or dropped silently.
    """

    def __init__(self, path: Path, warnings: list[str]) -> None:
        self.path = path
        self.warnings = warnings
        self.last = -1  # last global step given out
        self.offset = 0  # added to the raw counter of the current segment
        self._raw_last: float | None = None
        self._gap = 0  # smallest positive raw increment seen: the logging interval
        self._epoch: float | None = None
        # Epochs printed from 1 (``epoch + 1``: znxlwm's and Zeleni9's scripts): a log whose first epoch
        # is 1 counts from there, so its first iterations are steps 0.., not one epoch late.
        self._first_epoch: int | None = None
        self.backwards = 0
        self.rows = 0  # steps given out in row order, for want of a position on the line
        self.placed = 0  # steps given out from a position the log gave

    def _segment(self, raw: int) -> None:
        """Start a new segment whose first raw count ``raw`` follows the last step given out."""
        self.offset = self.last + max(self._gap, 1) - raw

    def _note_raw(self, raw: int) -> None:
        if self._raw_last is not None and raw > self._raw_last:
            gap = int(raw - self._raw_last)
            self._gap = gap if not self._gap else min(self._gap, gap)
        self._raw_last = raw

    def step(self, raw: int, where: str) -> int:
        if self.last >= 0 and raw + self.offset < self.last:
            self.backwards += 1
            if self.backwards == 1:
                self.warnings.append(
                    f"{self.path}: {where}: the step goes back from {self.last} to {raw}; "
                    "not taken as history: the rows from here on are continued in row order (use --step to name the step column)"
                )
            self._segment(raw)
        self._note_raw(raw)
        self.placed += 1
        self.last = raw + self.offset
        return self.last

    def epoch_batch(self, epoch: int, batch: int, per_epoch: int | None, where: str) -> int:
        if self._first_epoch is None:
            self._first_epoch = epoch
        if self._first_epoch == 1:
            epoch -= 1
        if per_epoch is not None and per_epoch > 0 and epoch * per_epoch + batch < MAX_STEP:
            return self.step(epoch * per_epoch + batch, where)
        if self._epoch is not None and epoch != self._epoch and self._raw_last is not None and batch <= self._raw_last:
            # The batch counter restarted with the epoch: continue from the last one.
            self._segment(batch)
            self._raw_last = None
        self._epoch = epoch
        return self.step(batch, where)

    def row(self) -> int:
        """The next step in row order: each record the last of the ``record_steps`` it stands for."""
        self.rows += 1
        self.last += read_options.get().record_steps
        return self.last


#: Scripts whose log names mean something else than the alias table says, known by the names
#: they log together (signal -> the script's name). pytorch-CycleGAN-and-pix2pix: pix2pix's
#: ``D_real``/``D_fake`` are D's loss on each batch (the table reads ``D_real`` as D's output) and
#: ``G_GAN`` is G's adversarial loss; CycleGAN logs two pairs, ``G_A``/``D_A`` and ``G_B``/``D_B``.
SCRIPT_NAMES: tuple[tuple[frozenset[str], dict[str, str]], ...] = (
    (frozenset({"G_GAN", "D_real", "D_fake"}), {"loss.g": "G_GAN", "loss.d_real": "D_real", "loss.d_fake": "D_fake"}),
    (frozenset({"G_A", "D_A", "G_B", "D_B"}), {"loss.g": "G_A", "loss.d": "D_A"}),
)


def script_names(names: Iterable[str], where: Path) -> tuple[dict[str, str], str]:
    """The reading of a recognised script's names (signal -> name) and a note where the reading is
    a choice; nothing where the user's --map names any of those signals or names (theirs wins)."""
    present = set(names)
    user = read_options.get().mapping
    for signature, mapping in SCRIPT_NAMES:
        if not signature <= present:
            continue
        if any(signal in user for signal in mapping) or any(name in user.values() for name in mapping.values()):
            return {}, ""
        note = ""
        if "G_B" in signature:
            note = (f"{where}: a two-domain log (CycleGAN): read the pair G_A / D_A (G_A's fakes judged by D_A); "
                    "for the other, --map loss.g=G_B --map loss.d=D_B")
        return dict(mapping), note
    return {}, ""


def iterations_per_kimg(path: Path, warnings: list[str]) -> float:
    """StyleGAN2-ADA and StyleGAN3 count their logs' steps in thousands of images: where their
    ``training_options.json`` lies beside the log, its ``batch_size`` turns kimg into G iterations
    (1000 / batch_size per kimg), the unit the rules' windows count; else kimg as they are."""
    options = (path if path.is_dir() else path.parent) / "training_options.json"
    if not options.is_file():
        return 1.0
    try:
        settings = json.loads(options.read_text(encoding="utf-8", errors="replace")[: 1 << 20])
    except (OSError, ValueError):
        return 1.0
    batch = settings.get("batch_size") if isinstance(settings, dict) and "total_kimg" in settings else None
    if isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0:
        return 1.0
    warnings.append(f"{path}: steps count kimg: read as G iterations (1000 / the batch_size {batch} of {options.name} beside it)")
    return 1000.0 / batch



class Collector:
    """Signals, warnings and counts for one file being read."""

    def __init__(self, path: Path, capacity: int, exclusive_names: bool = False, bare_player_losses: bool = False) -> None:
        self.path = path
        # TensorBoard tags named for a player alone are its loss (a table's D column may be D(x);
        # console lines have their own rule for bare D and G).
        self.bare_player_losses = bare_player_losses
        self.signals = SignalLog(capacity=capacity)
        self.warnings: list[str] = []
        self.problems = 0
        self.records = 0
        self.names = NameMapper(exclusive=exclusive_names)
        self._summed_d_loss = False
        self._total_d_loss = False  # the log has D's total loss: its parts are never summed
        self._d_parts: dict[str, tuple[int, float]] = {}  # part -> (step, value) last seen

    def read_names_as(self, names: Mapping[str, str]) -> None:
        """Read the log's names through the user's --map first, then ``names`` (signal -> name: a
        script's own sense of its names, a console's bare letters), then the alias table."""
        self.names = NameMapper({**read_options.get().mapping, **names}, exclusive=self.names.exclusive)

    def problem(self, message: str) -> None:
        self.problems += 1
        if self.problems <= MAX_REPORTED:
            self.warnings.append(f"{self.path}: {message}")

    def record(self, step: int, values: Mapping[str, float]) -> None:
        if values:
            values = self._d_loss_from_parts(step, values)
            self.signals.record(step, values)
            self.records += 1

    def _d_loss_from_parts(self, step: int, values: Mapping[str, float]) -> Mapping[str, float]:
        """D's loss logged in two parts only (on the reals, on the fakes): their sum is D's loss in
        the form the rules know (BCE summed over both batches, 2 ln 2 at chance), however the script
        scaled its own total. The parts may come in one row or, as TensorBoard writes them, in two
        records of the same step."""
        if "loss.d" in values:
            self._total_d_loss = True
        if self._total_d_loss:
            return values
        for part in ("loss.d_real", "loss.d_fake"):
            if part in values:
                self._d_parts[part] = (step, values[part])
        real, fake = self._d_parts.get("loss.d_real"), self._d_parts.get("loss.d_fake")
        if real is None or fake is None or real[0] != step or fake[0] != step:
            return values
        self._d_parts.clear()  # each step's sum once
        self._summed_d_loss = True
        return {**values, "loss.d": real[1] + fake[1]}

    def _d_loss_from_part_series(self) -> None:
        """The same sum for readers that append whole series (TensorBoard's tags), step by step
        where both parts have a point; a point either part holds non-finite values in is NaN."""
        if self._total_d_loss or "loss.d" in self.signals:
            return
        real, fake = self.signals.get("loss.d_real"), self.signals.get("loss.d_fake")
        if real is None or fake is None:
            return
        steps, ir, jf = np.intersect1d(real.steps, fake.steps, return_indices=True)
        if not steps.size:
            return
        with np.errstate(invalid="ignore", over="ignore"):
            total = real.values[ir] + fake.values[jf]
        total[(real.nonfinite[ir] > 0) | (fake.nonfinite[jf] > 0)] = np.nan
        self.signals.extend("loss.d", steps, total)
        self._summed_d_loss = True

    def finish(self) -> tuple[SignalLog, list[str], dict[str, str]]:
        if self.problems > MAX_REPORTED:
            self.warnings.append(f"{self.path}: {self.problems - MAX_REPORTED} more problems not listed")
        self.warnings.extend(f"{self.path}: {note}" for note in (*self.names.notes, *self.names.unused()))
        if not self.records:
            raise LogFormatError(f"{self.path}: no usable records (expected rows with a step and numeric loss columns)")
        self._d_loss_from_part_series()
        self._losses_from_bare_player_names()
        self.names.check(self.path, self.signals)
        self._unprobable()
        self._two_counters()
        mapped = dict(self.names.mapped)
        if self._summed_d_loss and "loss.d" not in mapped:
            mapped["loss.d"] = f"{mapped.get('loss.d_real', 'loss.d_real')} + {mapped.get('loss.d_fake', 'loss.d_fake')}"
        return self.signals, self.warnings, mapped

    def _losses_from_bare_player_names(self) -> None:
        """A TensorBoard log with neither loss under a name gandoctor knows, whose scalars include one
        tag named for D alone and one for G alone (sngan_projection's ``dis`` and ``gen``): those
        are the players' losses, said in a warning."""
        if not self.bare_player_losses or "loss.d" in self.signals or "loss.g" in self.signals or self.names.given_losses():
            return
        pair = {}
        for player, names in BARE_PLAYER_NAMES.items():
            found = [name for name in self.signals.names() if name.removeprefix("user.") in names and name.startswith("user.")]
            if len(found) != 1:
                return
            pair[player] = found[0]
        for signal, name in pair.items():
            self.signals.rename(name, signal)
            original = next((n for n in self.names.found if _user_name(n) == name), name.removeprefix("user."))
            self.names.mapped[signal] = original
        self.warnings.append(
            f"{self.path}: no loss under a name gandoctor knows; read '{self.names.mapped['loss.d']}' as D's loss and "
            f"'{self.names.mapped['loss.g']}' as G's (named for the players alone); if they are not, "
            "say which are: --map loss.d=NAME --map loss.g=NAME"
        )

    def _two_counters(self) -> None:
        """D's and G's losses ending at steps far apart: each logged against its own counter (LynnHo's
        TensorBoard: ``D/*`` at each of 1,400 D steps, ``G/*`` at each of 280 G steps), which the
        rules read as one, G's step 280 beside D's step 280. Said, since nothing else would show it."""
        ends = {}
        for name in ("loss.d", "loss.g"):
            view = self.signals.get(name)
            if view is not None and len(view) > 1:
                ends[name] = int(view.steps[-1])
        if len(ends) == 2 and min(ends.values()) > 0 and max(ends.values()) >= TWO_COUNTERS_RATIO * min(ends.values()):
            d, g = ends["loss.d"], ends["loss.g"]
            self.warnings.append(
                f"{self.path}: D's loss ({self.names.mapped.get('loss.d', 'loss.d')}) runs to step {d} and G's "
                f"({self.names.mapped.get('loss.g', 'loss.g')}) to step {g}: if each is logged against its own counter "
                "(D's iterations and G's), they are read as one, step by step; log both against one counter"
            )

    def _unprobable(self) -> None:
        """Columns the alias table reads as D's probabilities (``d_real``, ``D_x``) whose values lie
        mostly outside [0, 1] are critic scores or logits: kept as D's raw outputs (``d_out.*``), so no
        rule reads them as probabilities (D(x) - D(G(z)) as a gap in [-1, 1]). The pair is judged
        together: least squares towards +/-1 puts D(G(z)) near -1 and D(x) near 1, both raw."""
        pairs = (("d_prob.real", "d_out.real"), ("d_prob.fake", "d_out.fake"))
        ranges: dict[str, tuple[float, float]] = {}
        for prob, raw in pairs:
            view = self.signals.get(prob)
            finite = view.values[np.isfinite(view.values)] if view is not None and raw not in self.signals else np.empty(0)
            # Most values well outside [0, 1]: least squares towards 1/0 overshoots a little, and a
            # blow-up leaves a few wild values; a critic's or a logit's scores live out there.
            if finite.size and float(np.mean((finite < -0.1) | (finite > 1.1))) > 0.5:
                ranges[prob] = (float(finite.min()), float(finite.max()))
        if not ranges:
            return
        for prob, raw in pairs:
            if prob not in self.signals or raw in self.signals:
                continue
            self.signals.rename(prob, raw)
            column = self.names.mapped.pop(prob, prob)
            self.names.mapped[raw] = column
            lo, hi = ranges.get(prob, next(iter(ranges.values())))
            whose = "its values lie" if prob in ranges else "the other D output column's values lie"
            self.warnings.append(
                f"{self.path}: column {column!r} read as D's raw output ({raw}), not as a probability: "
                f"{whose} mostly outside [0, 1] ({lo:.3g} to {hi:.3g})"
            )


#: D's and G's losses ending this many times apart read as two step counters (``_two_counters``).
TWO_COUNTERS_RATIO = 1.5


def frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))
