"""Console output of training scripts, as saved with ``python train.py | tee train.log``.

Line formats, tried in order on each line (and on each ``\\r``-separated part of it, since
tqdm redraws its bar with carriage returns; a bar's drawing is removed before matching, its
``n/total`` kept as the batch and its postfix ``key=value`` pairs as values, so a Lightning or
``tqdm.set_postfix`` progress bar, ``Epoch 3:  45%|####| 422/938 [00:05<00:06, 80.1it/s,
d_loss=0.31, g_loss=2.1]``, is a record at epoch 3, batch 422 of 938):

- the PyTorch DCGAN example: ``[e/E][b/B]\\tLoss_D: .. Loss_G: .. D(x): .. D(G(z)): a / b``
  (``a``, D(G(z)) before D's update, is ``d_prob.fake``; ``b`` is kept as ``user.d_g_z2``);
- the PyTorch-GAN implementations: ``[Epoch e/E] [Batch b/B] [D loss: ..] [G loss: ..]``;
- pytorch-CycleGAN-and-pix2pix's loss log, ``(epoch: e, iters: n, ...) G_GAN: .. D_real: ..``,
  whose names are read in that script's sense (``_common.SCRIPT_NAMES``);
- improved_wgan_training's ``lib/plot.py`` lines (caogang/wgan-gp's ``gan_toy.py``):
  ``iter 99\tdisc cost\t-2.30\tgen cost\t1.12``, tab-separated, each name the last part of its path;
- ``print("disc loss", d, "gen loss", g)``: names and numbers with spaces only between, where a
  name maps to a signal and no ``key: value`` pair on the line does;
- generic ``key: value`` / ``key=value`` pairs, with the position from ``epoch``/``step``/
  ``iter``/``batch`` keys (``Epoch [1/5], Step [100/600]`` too). A generic line counts only if
  one of its names maps to a signal, so argument dumps and progress messages are not data.
  ``Epoch: [ 1] [  10/  28]`` (Zeleni9/pytorch-wgan) is epoch 1, batch 10 of 28; a one-element
  tensor printed, ``tensor([0.1091])``, is its number.
  A log whose lines name the losses bare, ``D: 0.69 G: 0.71`` (and no other name maps to a
  signal), is read with ``D`` and ``G`` as the two losses, and says so in a warning: a bare letter
  is too ambiguous for the alias table every reader shares (a CSV column ``D`` or ``G`` is not
  read as a loss), but a line printing both as numbers is the common ``print(f"D: {d_loss:.3f}
  G: {g_loss:.3f}")``; ``--map`` reads them otherwise.
- values printed before their names, grouped under a network's letter (devnag's 1-D GAN:
  ``D (0.69 real_err, 0.70 fake_err) G (0.69 err)``).

A line under D's own counter of at most 10 (``Discriminator iteration: 2/5``, one per critic step)
is no position: its values join the record of the next line that gives the run's step (G's, which
``G_step [10/500]`` gives too); a D counter over more steps counts the run's.

Step = epoch x batches per epoch + batch (the ``/B`` total when printed), else the line order.
Lines that match nothing are skipped and counted.
Models printed before training (``print(netG)``) are read for what they are made of
(:mod:`.modules`: BatchNorm in G, BatchNorm, dropout and spectral norm in D), not as records.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Callable

from ..errors import LogFormatError
from ..signals import alias_key
from . import Reader, RunData, register_reader
from ._common import MAX_STEP, Collector, StepClock, frozen, number, read_options, script_names
from ._lines import iter_lines, open_text
from .modules import ModelReprs

_NUM = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|nan|NaN|inf|Inf|-inf|-Inf)"
DCGAN = re.compile(r"\[(\d+)/(\d+)\]\s*\[(\d+)/(\d+)\]\s*(.*)")
PYTORCH_GAN = re.compile(r"\[Epoch (\d+)/(\d+)\]\s*\[Batch (\d+)/(\d+)\]\s*(.*)")
#: pytorch_GAN_zoo's trainers: ``[scale : iter] loss G : 0.708 loss D : 1.385``, the iteration
#: counted from 0 again at each of PGAN's scales (read as an epoch's batches: the run's step goes on).
GAN_ZOO = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*(.*)")
BRACKET = re.compile(r"\[([^\[\]]*)\]")
DGZ_PAIR = re.compile(r"D\(G\(z\)\)\s*:\s*(" + _NUM + r")\s*/\s*(" + _NUM + r")")
#: ``print("disc loss", d_loss.item(), "gen loss", g_loss.item())`` (christiancosgrove's SN-GAN): a
#: name and its number with only spaces between, read only for names that map to a signal (else prose),
#: also beside ``name: value`` pairs on the same line.
SPACED = re.compile(r"([A-Za-z_][\w.()/\-]*(?: [A-Za-z_][\w.()/\-]*)?)\s+(" + _NUM + r")(?![\w.])")
#: devnag's 1-D GAN prints each network's values number first, grouped under its letter:
#: ``D (0.69 real_err, 0.70 fake_err) G (0.69 err)``, read as ``D_real_err``, ``D_fake_err``, ``G_err``.
VALUE_FIRST = re.compile(r"\b([A-Za-z]\w*)\s*\(((?:\s*" + _NUM + r"\s+[A-Za-z_]\w*\s*,?)+)\)")
_VALUE_NAME = re.compile(r"(" + _NUM + r")\s+([A-Za-z_]\w*)")
#: Whether a line (its pairs blanked) may hold a SPACED pair at all: a cheap search before the costly one.
SPACED_HINT = re.compile(r"[\w.()/\-]\s+[-+]?(?:\d|\.\d|nan|inf)", re.IGNORECASE)
PAIR = re.compile(r"([A-Za-z_][\w.()/\-]*(?: [A-Za-z_][\w.()/\-]*)?)\s*[:=]\s*(" + _NUM + r")(?![\w.])")
POSITION = re.compile(r"\b((?:global|total)[ _]?step|epoch|step|iter|iteration|batch(?:[ _]?(?:num|no|idx|index))?|it)\s*[:=]?\s*\[?\s*(\d+)\s*/\s*(\d+)\s*\]?",
                      re.IGNORECASE)
#: A bar drawn (``45%|####| 422/938 [...]``) or not (``tqdm(ncols=0)``: ``45% 422/938 [...]``), or a count without a total.
TQDM = re.compile(r"(?:\d+%(?:\|[^|]*\||\s)\s*(?P<n>\d+)/(?P<total>\d+)\s*\[(?P<inner>[^\]]*)\]|(?P<count>\d+)it\s*\[(?P<inner2>[^\]]*)\])")
#: pytorch-ignite's ProgressBar: ``Epoch [2/100]: [15/28]  54%|█████▍    , errD=0.25, errG=1.7 [00:05<00:04]``
#: (``Iteration: [15/28] ...`` for a single epoch)
#: (its epochs count from 1, its count from 1 after the first iteration; the postfix sits after the
#: drawing, before the times).
IGNITE_BAR = re.compile(
    r"(?:Epoch|Iteration)\s*(?:\[(?P<epoch>\d+)/\d+\])?:?\s*\[(?P<n>\d+)/(?P<total>\d+)\]\s*\d+%\|[^|,\[]*(?P<postfix>(?:,\s*[^,\[]+=[^,\[]+)*)\s*\[[^\]]*\]"
)
#: gandoctor's own lines (a live alert printed onto a progress bar's line): never a record.
OWN_LINE = re.compile(r"(?:\b[A-Z]+:gandoctor:)?\bgandoctor: .*")
#: Lightning's Rich progress bar (``Epoch 29/29 ━━━━ 29/29 0:00:03 • 0:00:00 9.05it/s v_num: 0.000``).
RICH_BAR = re.compile(r"[━╸╺]+\s*(\d+)/(\d+)")
TQDM_EPOCH = re.compile(r"\bEpoch\s+(\d+)\s*:?\s*$", re.IGNORECASE)  # the bar's description, as Lightning writes it
#: ``print("D loss:", d_loss)`` prints the tensor: ``tensor(0.6931, grad_fn=<...>)`` (``device=...`` too), or
#: ``tensor([0.6931])`` for a one-element tensor (Zeleni9/pytorch-wgan's WGAN-CP prints its losses so).
TENSOR = re.compile(r"tensor\(\s*\[?\s*(" + _NUM + r")\s*\]?\s*(?:,[^()]*(?:\([^()]*\)[^()]*)*)?\)")
#: ``print("step", step, ...)``: a position word and its number with no ':' or '=' between.
#: ``logging``'s ``step 100: d_loss=...`` too; not ``step 3/10`` (a position with its total) nor ``step 1.5``.
#: ``Epoch: [ 1] [  10/  28]`` (Zeleni9/pytorch-wgan's DCGAN): the epoch, then the batch of the epoch's total.
#: ``Epoch 0 [5/15] loss_D: ...`` (the Packt book's conditional GAN): a bare epoch, then the batch of the epoch's total.
EPOCH_BRACKETS = re.compile(r"\bepoch\s*:?\s*(?:\[\s*(\d+)\s*\]|(\d+))\s*\[\s*(\d+)\s*/\s*(\d+)\s*\]", re.IGNORECASE)
#: D's inner loop counter (``Discriminator iteration: 2/5``, ``critic iter 3/5``; Zeleni9's WGAN-GP prints
#: one line per critic step before G's ``Generator iteration: 10/4000``): not the run's step.
INNER_POSITION = re.compile(
    r"\b(?:discriminator|disc|critic|d)[ _]?(?:iteration|iter|step)s?\s*[:=]?\s*\[?\s*(\d+)\s*/\s*(\d+)\s*\]?,?", re.IGNORECASE
)
#: The most iterations a D loop inside one G step is taken to print (n_critic is 5 in WGAN-GP's and
#: most scripts): a D counter with a larger total counts the run's steps (SAGAN's ``D_step[10/500]``).
INNER_MAX = 10
#: G's counter, the run's step (SAGAN: ``G_step [10/500], D_step[10/500], d_out_real: ...``).
G_POSITION = re.compile(r"\b(?:generator|gen|g)[ _]?(?:iteration|iter|step)s?\s*[:=]?\s*\[?\s*(\d+)\s*/\s*(\d+)\s*\]?", re.IGNORECASE)
BARE_POSITION = re.compile(r"\b(step|global_step|iter|iteration|epoch|batch)\s+(\d+)\b(?!\s*/|\.\d|\s*=)", re.IGNORECASE)
SNIFF_BYTES = 1 << 16

#: Loss names some scripts print bare, read as the losses only where a line holds both (see above).
BARE_LOSSES = {"loss.d": "D", "loss.g": "G"}

_STEP_KEYS = ("step", "global_step", "iteration", "iter", "it", "steps", "batches_done", "total_step", "itr")
_BATCH_KEYS = ("batch", "iter", "iteration", "it", "step", "i", "iters")
#: Names that give a position, not a value.
_POSITION_WORDS = frozenset((*_STEP_KEYS, *_BATCH_KEYS, "epoch"))

#: improved_wgan_training's ``lib/plot.py`` flush (igul222's code and its PyTorch ports, caogang/wgan-gp):
#: ``iter 99\tdisc cost\t-2.30\tgen cost\t1.12``, tab-separated names and values, each name its plot's
#: file path (``tmp/8gaussians/disc cost``), of which the last part names the value.
PLOT_FLUSH = re.compile(r"^\s*iter\s+\d+\t")
_NUMBER = re.compile(_NUM)
#: A printed module's line (``(0): Linear(in_features=2, out_features=512, bias=True)``): its
#: ``name=value`` arguments are no log's values.
MODULE_LINE = re.compile(r"^\s*(?:\(\w+\):\s*)?[A-Z]\w*\(")
#: pytorch-CycleGAN-and-pix2pix's loss log (``loss_log.txt`` and its console): ``(epoch: 3, iters:
#: 400, time: 0.056, data: 0.002) G_GAN: 2.1 G_L1: 23.4 D_real: 0.31 D_fake: 0.52``; its names are
#: read in that script's sense (``_common.SCRIPT_NAMES``).
JUNYANZ = re.compile(r"\(epoch:\s*\d+,\s*iters:\s*\d+[^)]*\)")


def _unbar(part: str, postfix: bool = True) -> tuple[str, int]:
    """``part`` with each tqdm bar's drawing taken out, the bar's position and postfix pairs left
    as text the generic format reads (``epoch=3 batch 422/938 d_loss=0.31, ...``); a bar without
    postfix pairs (or every bar, ``postfix=False``) leaves nothing. Returns the text and the
    number of bars."""
    if "gandoctor: " in part:
        part = OWN_LINE.sub("", part)
    if "%|" in part and (ignite := IGNITE_BAR.search(part)):
        values = ignite.group("postfix").strip(" ,")
        # Ignite's epochs count from 1 and its count is of iterations done: epoch e, count n is
        # iteration (e - 1) x total + n, counted from 1.
        where = f" epoch={int(ignite.group('epoch') or 1) - 1} batch {ignite.group('n')}/{ignite.group('total')} "
        text = where + values if postfix and values else ""
        return part[: ignite.start()] + text + part[ignite.end():], 1
    bars = list(TQDM.finditer(part))
    if not bars:
        return part, 0
    pieces, last = [], 0
    if not postfix:  # the bars' postfixes left out, but a description's values are at the bar's count
        for m in bars:
            before = part[last : m.start()]
            pieces += [before, _bar_position(m) if _describes(before) else ""]
            last = m.end()
        return "".join(pieces) + part[last:], len(bars)
    for m in bars:
        before = part[last : m.start()]
        lightning = 0
        if last == 0:  # the description before the first bar: Lightning's "Epoch 3: "
            before, lightning = TQDM_EPOCH.subn(lambda e: f"epoch={e.group(1)} ", before)
        # Values in the description (rosinality's StyleGAN2: ``pbar.set_description('d: 1.31; g: 0.72; ...')``)
        # are at the bar's count, as a postfix's are: read in row order, 50 iterations were 77 records.
        pieces += [before, _bar_values(m, described=_describes(before), lightning=bool(lightning))]
        last = m.end()
    return "".join(pieces) + part[last:], len(bars)


def _bar_values(m: re.Match[str], described: bool = False, lightning: bool = False) -> str:
    if lightning and m.group("n") == "0":
        # Lightning sets its bar's postfix after each batch, and resets the bar at an epoch's end
        # with the last batch's postfix still on it ("Epoch 0:   0%| 0/29 [..., d_loss=...]"):
        # read, the step went back and the rest of the log was read in row order (300 batches as
        # 600 steps). Elsewhere a postfix set before the update is drawn at the count it belongs to.
        return ""
    inner = m.group("inner") if m.group("inner") is not None else m.group("inner2")
    postfix = [seg.strip() for seg in inner.split(",")[2:] if "=" in seg]  # after "elapsed<left, rate"
    if not postfix and not described:
        return ""
    return _bar_position(m) + ", ".join(postfix)


def _described(part: str) -> bool:
    """Whether a tqdm bar on ``part`` carries values in its description (``d: 1.31; g: 0.72: 2%|...``)."""
    m = TQDM.search(part)
    return m is not None and _describes(part[: m.start()])


def _describes(description: str) -> bool:
    """Whether a bar's description holds values (a name and its number: ``d: 1.31`` or ``d=1.31``)."""
    return ":" in description or "=" in description


def _bar_position(m: re.Match[str]) -> str:
    return f" batch {m.group('n')}/{m.group('total')} " if m.group("n") is not None else f" it={m.group('count')} "


def _pairs(text: str, known: Callable[[str], bool] | None = None) -> list[tuple[str, str]]:
    """The ``name: value`` pairs of a line (``known``: :func:`_known_names`, made once by a caller
    reading many lines)."""
    text = TENSOR.sub(r"\1", text)
    out: list[tuple[str, str]] = [(m.group(1), m.group(2)) for m in BARE_POSITION.finditer(text)]
    if PLOT_FLUSH.match(text):
        fields = [field.strip() for field in text.split("\t")[1:]]
        return out + [(name.rsplit("/", 1)[-1], value) for name, value in zip(fields[::2], fields[1::2]) if _NUMBER.fullmatch(value)]
    dgz = DGZ_PAIR.search(text)
    if dgz:
        out += [("D(G(z))", dgz.group(1)), ("D_G_z2", dgz.group(2))]
        text = text[: dgz.start()] + text[dgz.end():]
    if "(" in text:
        for group in VALUE_FIRST.finditer(text):
            out += [(f"{group.group(1)}_{name}", value) for value, name in _VALUE_NAME.findall(group.group(2))]
        text = VALUE_FIRST.sub(" ", text)
    matches = list(PAIR.finditer(text))
    known = known or _known_names()
    # A known name with its number and only spaces between, beside or instead of ``name: value``
    # pairs (the original WGAN's ``Loss_D_real: -0.05 Loss_D_fake 0.02``), never inside a pair.
    rest = PAIR.sub(lambda m: " " * len(m.group(0)), text)  # the pairs blanked, every other offset kept
    if SPACED_HINT.search(rest):  # SPACED backtracks over every word; most lines have no such pair left
        matches += [m for m in SPACED.finditer(rest) if known(m.group(1))]
    return out + [(_pair_name(m, text, known), m.group(2)) for m in sorted(matches, key=lambda m: m.start())]


#: What comes right before a word that is the value of the name before it (``ada_p: No``, ``Topk: N/A``).
_AFTER_NAME = re.compile(r"[:=]\s*$")


def _pair_name(match: re.Match[str], text: str, known: Callable[[str], bool]) -> str:
    """A pair's name; of a two-word name no alias knows, the second word alone where the first is
    the value of the pair before (StudioGAN: ``ada_p: No Discriminator_loss: 0.0066`` is
    ``Discriminator_loss``, not ``No Discriminator_loss``; ``train: D loss: 0.5`` stays ``D loss``)."""
    name = match.group(1).strip()
    if " " in name and _AFTER_NAME.search(text, 0, match.start()) and not known(name):
        return name.split(" ", 1)[1]
    return name


def _bracket_pairs(rest: str) -> list[tuple[str, str]]:
    """``[D loss: 0.5, acc: 50%] [G loss: 1.2]`` -> D loss, D acc, G loss."""
    out: list[tuple[str, str]] = []
    for group in BRACKET.findall(rest):
        found = PAIR.findall(group)
        if not found:
            continue
        head = found[0][0].split(" ")[0]
        out.append((found[0][0], found[0][1]))
        out += [(f"{head} {k}", v) for k, v in found[1:]]
    return out


class _Parser:
    def __init__(self, out: Collector, clock: StepClock, latest_per_step: bool = False) -> None:
        self.out = out
        self.clock = clock
        self.matched = 0
        self._last: tuple[int, dict[str, float]] | None = None
        self._last_placed = False  # the last record's line gave its position
        # A progress bar's postfix is drawn at the count before and after each update (set_postfix,
        # then update): one count shows two iterations' values. Read from bars, a step keeps the
        # last values drawn at it (a record is held until the count moves on).
        self.latest_per_step = latest_per_step
        self._held: tuple[int, dict[str, float]] | None = None
        self._known = _known_names()
        # The position of the last line that gave one and no value (epoch, batch, batches per
        # epoch), and the names read under it since.
        self._context: tuple[int | None, int | None, int | None] | None = None
        self._context_names: set[str] = set()
        # Lines skipped although they hold ``name: value`` pairs, none of a name that maps to a
        # signal (Zeleni9's WGAN-GP: ``loss_fake: ..., loss_real: ...``): their names, and on how
        # many lines, for the warning that offers --map.
        self.unread_names: dict[str, int] = {}
        # Values printed on D's inner steps, held for the next line that gives the run's step.
        self._inner: list[tuple[str, str]] = []
        self._inner_at = -1  # D's inner counter on the last of those lines
        self.images_per_batch = 1  # what a position counts per iteration (pix2pix's `iters`: images)
        # --step NAME: the number after NAME on a line is its step (``G_step [10/500]``, ``it: 30``, ``Epoch 19``).
        step_name = read_options.get().step
        self._user_step = re.compile(r"(?<![\w.])" + re.escape(step_name) + r"\s*[:=]?\s*\[?\s*(\d+)", re.IGNORECASE) if step_name else None
        self._forced: int | None = None  # the line's step by --step

    def parse(self, text: str, where: str) -> bool:
        """Record the values of one line (or one \\r part); False if it matched no format."""
        self._forced = None
        if self._user_step is not None and (named := self._user_step.search(text)) is not None:
            self._forced = int(named.group(1))
            text = text[: named.start()] + " " + text[named.end() :]
        m = PYTORCH_GAN.search(text)
        if m:
            return self._emit_at(int(m.group(1)), int(m.group(3)), int(m.group(4)), _bracket_pairs(m.group(5)), where, ())
        m = GAN_ZOO.match(text)
        if m and (":" in m.group(3) or "=" in m.group(3)):
            return self._emit(int(m.group(1)), int(m.group(2)), None, _pairs(m.group(3), self._known), where, any_name=True)
        m = DCGAN.search(text)
        if m and (":" in m.group(5) or "=" in m.group(5)):
            # A global counter printed beside ``[e/E][b/B]`` (pytorch-ignite's DCGAN: ``| iteration: 100 |``,
            # its epochs counted from 1) is the step.
            pairs = _pairs(m.group(5), self._known)
            return self._emit_at(int(m.group(1)), int(m.group(3)), int(m.group(4)), pairs, where, ("iteration", "global_step", "step"))
        text = EPOCH_BRACKETS.sub(lambda e: f"epoch={e.group(1) or e.group(2)} batch {e.group(3)}/{e.group(4)} ", text)
        text, g_counter = G_POSITION.subn(r" step \1/\2 ", text)
        inner: int | None = None  # D's inner counter on the line, where it has one
        for m in list(INNER_POSITION.finditer(text))[::-1]:  # D's own counter: an inner loop's, or the run's step
            if g_counter:  # beside G's, which gives the step
                said = " "
            elif int(m.group(2)) <= INNER_MAX:
                said, inner = " ", int(m.group(1))
            else:
                said = f" step {m.group(1)}/{m.group(2)} "
            text = text[: m.start()] + said + text[m.end() :]
        text = RICH_BAR.sub(lambda m: f" batch {m.group(1)}/{m.group(2)} ", text)
        pairs = [(k, v) for k, v in _pairs(text, self._known) if not _not_a_value(k)]
        positions = {_position_key(p.group(1)): (int(p.group(2)), int(p.group(3))) for p in POSITION.finditer(text)}
        if not pairs and not positions and self._forced is None:
            return False
        keyed = {alias_key(k): v for k, v in pairs}
        epoch = positions.get("epoch", (None, None))[0]
        # A global counter with the run's total beside the epoch (torch_mimicry's ``[Epoch 2/20][Global
        # Step: 40/600]``) is the step, not a batch of the epoch: read so, 600 steps took 12,000.
        global_step = positions.pop("global_step", None) or positions.pop("total_step", None)
        if global_step is not None:
            epoch, positions = None, {"step": (global_step[0], 0)}
        if epoch is None and "epoch" in keyed:
            e = number(keyed["epoch"])
            epoch = int(e) if e is not None and math.isfinite(e) and e >= 0 else None
        batch, per_epoch = None, None
        for key in _BATCH_KEYS:
            if key in positions:
                batch, per_epoch = positions[key]
                break
        if batch is None:
            for key in (_BATCH_KEYS if epoch is not None else _STEP_KEYS):
                if key in keyed:
                    b = number(keyed[key])
                    if b is not None and math.isfinite(b) and b >= 0:
                        batch = int(b)
                        break
        if epoch is not None and batch is None:
            batch = None  # an epoch summary line: in row order
        skip = {"epoch", *(_BATCH_KEYS if batch is not None else ()), *(_STEP_KEYS if batch is not None else ())}
        values = [(k, v) for k, v in pairs if alias_key(k) not in skip]
        if not values and self._forced is not None:  # --step's number on a line of no values: the lines under it are at it
            self._context, self._context_names = (None, self._forced, None), set()
            return True
        if not values and (epoch is not None or batch is not None):
            return self._position_only(epoch, batch, per_epoch)
        if not any(not (self.out.names(k) or "user.").startswith("user.") for k, _ in values):
            for key in dict.fromkeys(k for k, _ in values if alias_key(k).rsplit("_", 1)[-1] not in _POSITION_WORDS):
                self.unread_names[key] = self.unread_names.get(key, 0) + 1
            return False
        if self._forced is not None:
            return self._emit(None, self._forced, None, values, where, any_name=False)
        if epoch is None and batch is None and inner is not None:
            if self._inner and inner <= self._inner_at:  # D's loop began again with no G line between: no inner loop of one
                self._emit(None, None, None, [], where, any_name=False)
            self._inner += values  # D's step of the G step whose line follows: its values join that record
            self._inner_at = inner
            return True
        if epoch is None and batch is None and self._context is not None:
            epoch, batch, per_epoch = self._context_for(values)
        return self._emit(epoch, batch, per_epoch, values, where, any_name=False)

    def _given_step(self, pairs: list[tuple[str, str]], counters: tuple[str, ...]) -> tuple[int | None, list[tuple[str, str]]]:
        """The step a line names itself (``--step``'s, else one of ``counters``: names of a global
        counter), and its other pairs."""
        if self._forced is not None:
            return self._forced, pairs
        for wanted in counters:
            for i, (key, raw) in enumerate(pairs):
                if alias_key(key) == wanted and (n := number(raw)) is not None and math.isfinite(n) and 0 <= n < MAX_STEP:
                    return int(n), pairs[:i] + pairs[i + 1 :]
        return None, pairs

    def _emit_at(self, epoch: int, batch: int, per_epoch: int, pairs: list[tuple[str, str]], where: str, counters: tuple[str, ...]) -> bool:
        """A line of a known format, at its ``[e/E][b/B]`` unless it names its step itself."""
        given, rest = self._given_step(pairs, counters)
        if given is not None:
            return self._emit(None, given, None, rest, where, any_name=True)
        return self._emit(epoch, batch, per_epoch, pairs, where, any_name=True)

    def _position_only(self, epoch: int | None, batch: int | None, per_epoch: int | None) -> bool:
        """A line that gives a position and no value (``Epoch: [0/167], Batch Num: [0/18]`` above
        the values' lines, diegoalejogm's GAN logger; ``Epoch 1`` then ``Iteration 11``, EmilienDupont's
        WGAN-GP): the lines after it without a position of their own are at that position."""
        if batch is None:  # an epoch alone: batches counted from it on
            self._context = (epoch, None, None)
        else:
            self._context = (epoch if epoch is not None else (self._context or (None,))[0], batch, per_epoch)
        self._context_names = set()
        return True

    def _context_for(self, values: list[tuple[str, str]]) -> tuple[int | None, int | None, int | None]:
        """The position a line without one is at: the last position-only line's, while the lines
        under it name new values; a name seen again under it is a new record, in row order."""
        assert self._context is not None
        names = {name for k, _ in values if (name := self.out.names(k)) is not None}
        if self._context[1] is None or names & self._context_names:
            return self._context[0], None, None
        self._context_names |= names
        return self._context

    def _emit(self, epoch: int | None, batch: int | None, per_epoch: int | None, pairs: list[tuple[str, str]], where: str, any_name: bool) -> bool:
        if batch is not None and self.images_per_batch > 1:
            batch //= self.images_per_batch  # pix2pix's iters count images
        if self._inner:  # the line's own values first, then D's last inner step's (the latest of each name)
            pairs, self._inner = pairs + self._inner[::-1], []
        values: dict[str, float] = {}
        for key, raw in pairs:
            value = number(raw)
            name = self.out.names(key)
            if value is not None and name is not None and name not in values:
                values[name] = value
        if not values:
            return False
        if (batch is not None and batch >= MAX_STEP) or (epoch is not None and epoch >= MAX_STEP):
            return False  # numbers that large are not a position in training
        if batch is None and epoch is None and self._last is not None and self._last_placed and values == self._last[1]:
            return True  # the run's closing summary repeats its last record (d2l's 'loss_D 0.540, ..., examples/sec')
        self._last_placed = batch is not None or epoch is not None
        if batch is None:
            step = self.clock.row()
        elif epoch is None:
            step = self.clock.step(batch, where)
        else:
            step = self.clock.epoch_batch(epoch, batch, per_epoch, where)
        if (step, values) == self._last:
            return True  # a progress bar redrawn as it was (on close, on a timer): one record
        self._last = (step, values)
        if self.latest_per_step:
            if self._held is not None and self._held[0] != step:
                self._record(*self._held)
            self._held = (step, values)
            return True
        self._record(step, values)
        return True

    def _record(self, step: int, values: dict[str, float]) -> None:
        self.out.record(step, values)
        self.matched += 1

    def finish(self) -> None:
        self._forced = None
        if self._inner:  # D's steps after G's last: a record in row order
            self._emit(None, None, None, [], "the end", any_name=False)
        if self._held is not None:
            self._record(*self._held)
            self._held = None


_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*")


#: Names that print a setting, never a series (an options block's ``[default: 1]``, a layer's ``eps=1e-05``).
_SETTINGS = frozenset({"default", "eps", "momentum"})


def _unread_names_hint(names: dict[str, int], records: int) -> str:
    """What the skipped lines printed that could be read, where a log's other lines were: the
    names seen on the most lines, and the --map that reads them (printed on at least a tenth as
    many lines as the records read, so a stray line's names are not offered)."""
    common = sorted(
        (n for n, count in names.items() if count >= max(10, records // 10) and _IDENTIFIER.fullmatch(n) and n.lower() not in _SETTINGS),
        key=lambda n: -names[n],
    )[:4]
    if not records or not common:
        return ""
    shown = ", ".join(f"'{n}'" for n in common)
    return (
        f"; {max(names[n] for n in common):,} of them print values named {shown}, which no alias maps: "
        "read them with --map SIGNAL=NAME (e.g. --map d_out.real=NAME for D's mean output on reals; "
        "the README's Signals section lists the signals)"
    )


def _position_key(word: str) -> str:
    """``Batch Num`` / ``batch_idx`` -> ``batch``; other position words as :func:`alias_key` gives them."""
    key = alias_key(word)
    return "batch" if key.startswith("batch") else key


def _head_parts(path: Path) -> tuple[str, ...]:
    """The ``\\r``-separated parts of the first lines of a text file, or none for a file that
    cannot be read or holds a NUL byte (binary): what detection and its hints look at. Detection,
    the script-name check, the bare-letter check and the hints all ask for them: the file's head
    is read once per version of the file (its size and modification time)."""
    try:
        stat = path.stat()
    except OSError:
        return ()
    return _head_parts_of(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _head_parts_of(path: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    try:
        with open_text(Path(path)) as fh:
            head = fh.read(SNIFF_BYTES)
    except Exception:  # noqa: BLE001 - detection never fails another reader
        return ()
    if "\x00" in head:
        return ()
    return tuple(part for line in head.splitlines()[:500] for part in line.split("\r"))


def _sniff(path: Path) -> bool:
    known = _known_names()
    return any(_a_log_line(part, known) for part in _head_parts(path)) or _a_log_line_further(path, known)


def _a_log_line(part: str, known: Callable[[str], bool]) -> bool:
    part = _unbar(part)[0]
    if PYTORCH_GAN.search(part) or (DCGAN.search(part) and "Loss" in part) or JUNYANZ.search(part):
        return True
    pairs = _pairs(part, known)
    return any(alias_key(k) and known(k) for k, _ in pairs) or _bare_losses(pairs)


#: How far past the head detection reads for a first line of values: jalola/improved-wgan-pytorch
#: prints counters and timings on every critic step and its losses only at each `saving_step`
#: (200 iterations: line ~4,600), so its console was "not a log gandoctor can read".
SNIFF_FAR_BYTES = 16 << 20


def _a_log_line_further(path: Path, known: Callable[[str], bool]) -> bool:
    try:
        with open_text(path) as fh:
            read = 0
            for line in fh:
                read += len(line)
                if read > SNIFF_FAR_BYTES or "\x00" in line:
                    return False
                if any(_a_log_line(part, known) for part in line.rstrip("\r\n").split("\r")):
                    return True
    except Exception:  # noqa: BLE001 - detection never fails another reader
        return False
    return False


def _bare_losses(pairs: list[tuple[str, str]]) -> bool:
    """A line that prints both losses under bare names: ``D: 0.69 G: 0.71``, or in lower case
    (rosinality's StyleGAN2: ``d: 1.31; g: 0.72; r1: 0.01; ...`` in its tqdm description)."""
    keys = {k.lower() for k, _ in pairs}
    return all(name.lower() in keys for name in BARE_LOSSES.values())


def _reads_bare_losses(path: Path) -> bool:
    """Whether the bare names are the log's losses: its head prints both on a line, and the
    user mapped neither loss (``--map`` decides otherwise)."""
    mapping = read_options.get().mapping
    if any(signal in mapping for signal in BARE_LOSSES):
        return False
    return any(_bare_losses(_pairs(_unbar(part)[0])) for part in _head_parts(path))


def _not_a_value(key: str) -> bool:
    """Names a console prints that no log's value is: a progress bar's rate and version, Lightning's
    model summary (``Trainable params: 190 K``, ``Total FLOPs: 0``, ``Modules in train mode: 43``)."""
    k = alias_key(key)
    return "v_num" in k or "it/s" in k or "s/it" in k or k.endswith(("params", "flops", "_mode", "(mb)", "mb)"))


def unmapped_names(path: Path, most: int = 8) -> list[str]:
    """The names of ``name: number`` pairs at the head of a text file that no alias maps (the
    step's names left out): what ``--map`` could name when no reader took the file."""
    known = _known_names()
    found: dict[str, None] = {}
    for part in _head_parts(path):
        if MODULE_LINE.match(part):
            continue
        for key, _ in _pairs(_unbar(part)[0], known):
            if alias_key(key) not in _POSITION_WORDS and not known(key) and not _not_a_value(key):
                found.setdefault(key, None)
    return list(found)[:most]


def bars_without_values(path: Path) -> bool:
    """Whether the head of a text file holds progress bars and no value at all (tqdm without a
    postfix: LynnHo's train.py, which logs its losses to TensorBoard): the values are elsewhere."""
    parts = list(_head_parts(path))
    bars = sum(_unbar(part)[1] for part in parts) + sum(bool(RICH_BAR.search(part)) for part in parts)
    values = (k for part in parts if not MODULE_LINE.match(part) for k, _ in _pairs(_unbar(part)[0]))
    return bars > 0 and all(alias_key(k) in _POSITION_WORDS or _not_a_value(k) for k in values)


def _known_names() -> Callable[[str], bool]:
    """Whether a name maps to a signal: through the alias table, or because the user mapped it
    (--map loss.d=D), or --map could not make a log readable."""
    mapped = {alias_key(name) for name in read_options.get().mapping.values()}
    return lambda key: _aliased(key) or alias_key(key) in mapped


@functools.lru_cache(maxsize=4096)
def _aliased(key: str) -> bool:
    """Whether the alias table maps ``key`` (asked for every name of every line: a log repeats its names)."""
    from ..signals import alias_for

    return alias_for(key) is not None


def _accepts(path: Path) -> bool:
    name = path.name.lower()
    if not path.is_file() or name.endswith((".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".csv.gz", ".jsonl.gz", ".json.gz")):
        return False
    return _sniff(path)


def read(path: Path, capacity: int = 4096) -> RunData:
    own, note = script_names({k for part in _head_parts(path) for k, _ in _pairs(_unbar(part)[0])}, path)
    out, models = _read_lines_or_bars(path, capacity, own=own)
    if note:
        out.warnings.append(note)
    if not any(loss in out.signals for loss in BARE_LOSSES) and _reads_bare_losses(path):
        # No loss under a known name (lines with only D(x) and D(G(z)) known, or none): the bare names are them.
        out, models = _read_lines_or_bars(path, capacity, bare=True)
    if not out.records:
        raise LogFormatError(
            f"{path}: no training log lines found (expected lines like '[0/5][10/469] Loss_D: 1.2 Loss_G: 0.7', "
            "'[Epoch 0/200] [Batch 10/938] [D loss: 0.6] [G loss: 0.7]', 'step=10 loss_D=1.2 loss_G=0.7' or a "
            "progress bar's postfix 'Epoch 0:  45%|####| 422/938 [00:05<00:06, 80.1it/s, d_loss=0.31, g_loss=2.1]')"
        )
    signals, warnings, mapped = out.finish()
    # What the printed models say (`print(netG)`): BatchNorm in G, dropout or spectral norm in D.
    return RunData(signals, models.context(), str(path), "console", out.records, tuple(warnings), frozen(mapped))


def _read_lines_or_bars(path: Path, capacity: int, bare: bool = False, own: dict[str, str] | None = None) -> tuple[Collector, ModelReprs]:
    # The lines a script prints are its log; a progress bar's postfix (tqdm.set_postfix, Lightning's
    # bar) usually repeats them, so it is read only from a log that holds nothing else.
    out, bars, models = _read(path, capacity, bar_postfix=False, bare=bare, own=own)
    if not out.records and bars:
        out, _, models = _read(path, capacity, bar_postfix=True, bare=bare, own=own)
    return out, models


_BATCH_SIZE_OPTION = re.compile(r"^\s*batch_size:\s*(\d+)\b", re.MULTILINE)
_OPTIONS_BLOCK = re.compile(r"^-{5,} Options -{5,}\s*$")


def _junyanz_batch_size(path: Path, warnings: list[str]) -> int:
    """pytorch-CycleGAN-and-pix2pix counts ``iters`` in images (``epoch_iter += opt.batch_size``):
    where its ``train_opt.txt`` lies beside the loss log (its checkpoint folder holds both), the
    positions are divided by its ``batch_size`` (600 iterations at batch 16 read as steps 160..9600,
    and windows saw 16 times fewer records). 1 elsewhere."""
    head = _head_parts(path)
    if not any(JUNYANZ.search(part) for part in head):
        return 1
    options = path.with_name("train_opt.txt")
    where = f"{options.name} beside it"
    if options.is_file():
        try:
            found = _BATCH_SIZE_OPTION.search(options.read_text(encoding="utf-8", errors="replace")[:65536])
        except OSError:
            return 1
    else:  # its console: train.py prints the same options block before training
        start = next((i for i, part in enumerate(head) if _OPTIONS_BLOCK.search(part)), None)
        found = None if start is None else _BATCH_SIZE_OPTION.search("\n".join(head[start : start + 200]))
        where = "the options block it prints"
    size = int(found.group(1)) if found else 1
    if size > 1:
        warnings.append(f"{path}: iters count images: divided by the batch_size {size} of {where}")
    return max(size, 1)


def _read(
    path: Path, capacity: int, bar_postfix: bool, bare: bool = False, own: dict[str, str] | None = None
) -> tuple[Collector, int, ModelReprs]:
    out = Collector(path, capacity)
    models = ModelReprs()
    if own:
        out.read_names_as(own)
    if bare:
        out.read_names_as(BARE_LOSSES)
        out.warnings.append(
            f"{path}: read 'D' and 'G' as D's and G's losses (no other name in the log is one); "
            "if they are something else, name the losses with --map loss.d=NAME --map loss.g=NAME"
        )
    clock = StepClock(path, out.warnings)
    parser = _Parser(out, clock, latest_per_step=bar_postfix)
    parser.images_per_batch = _junyanz_batch_size(path, out.warnings)
    unmatched = bars = 0
    first_unmatched: int | None = None
    with open_text(path) as fh:
        for lineno, text, _complete in iter_lines(fh, out.warnings, path):
            if not text.strip():
                continue
            if models.feed(lineno, text):  # a printed model's line: not a record, not unmatched
                continue
            hit = False
            rest = False  # text besides progress bars
            for part in text.split("\r"):
                cleaned, n = _unbar(part, bar_postfix)
                bars += n
                if n and not parser.latest_per_step and _described(part):
                    parser.latest_per_step = True  # a bar redrawn with its values: the last drawn at each count
                if cleaned.strip():
                    rest = True
                    if parser.parse(cleaned, f"line {lineno}"):
                        hit = True
            if rest and not hit:
                unmatched += 1
                first_unmatched = first_unmatched or lineno
    parser.finish()
    if clock.rows and not clock.placed and read_options.get().record_steps == 1:
        out.warnings.append(
            f"{path}: no line gives a step, iteration or batch position: each of its {clock.rows} records counts as "
            "one step, so a line that stands for many iterations (an epoch's averages, a print every 100 batches) "
            "makes the run look shorter to the rules than it was; pass --record-steps N (the iterations each line "
            "stands for), or print the iteration on each line (step=...), to have it judged in iterations"
        )
    if unmatched:
        out.warnings.append(
            f"{path}: {unmatched} lines matched no known log format and were skipped (the first: line {first_unmatched})"
            + _unread_names_hint(parser.unread_names, out.records)
        )
    models.finish()
    return out, bars, models


register_reader(Reader("console", _accepts, read, "console output of a training script (DCGAN example, PyTorch-GAN, key: value lines)"))
