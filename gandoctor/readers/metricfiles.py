"""A folder of one plain-text file per metric: BigGAN-PyTorch's ``utils.MyLogger``
(``logs/<experiment>/G_loss.log``, ``D_loss_real.log``, ``D_loss_fake.log``, one line
``<iteration>: <value>`` each, and a file per layer's singular values, ``..._sv0.log``).

Each file is a series named by its file's stem, mapped through the alias table like a column
(``G_loss`` is G's loss; ``D_loss_real`` and ``D_loss_fake`` are D's loss in two parts, summed).
The files are read side by side, in step order, one line each at a time: memory holds a line per
file, not the run.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from pathlib import Path

from ..context import RunContext
from ..signals import alias_for
from . import Reader, RunData, register_reader
from ._common import Collector, frozen, number
from ._lines import iter_lines, open_text

#: ``<iteration>: <value>``, as MyLogger writes it (``'%d: %s\n' % (itr, '%3.3f' % value)``).
_LINE = re.compile(r"^\s*(\d+)\s*:\s*(\S+)\s*$")
_SUFFIXES = (".log", ".txt")
#: Files looked at to decide whether a folder is such a log (a folder of other logs is left alone).
_SNIFFED = 64


def _first_line(path: Path) -> str:
    try:
        with open_text(path) as fh:
            for line in fh:
                if line.strip():
                    return line
                break
    except (OSError, UnicodeDecodeError, EOFError, ValueError):
        pass
    return ""


def metric_files(path: Path) -> list[Path]:
    """The files of ``path`` (a folder) that read as one metric per line ``<iteration>: <value>``."""
    if not path.is_dir():
        return []
    candidates = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES))[: _SNIFFED * 4]
    return [p for p in candidates if _LINE.match(_first_line(p))]


def _stem(path: Path) -> str:
    return path.name[: path.name.lower().rfind(".")]


def _accepts(path: Path) -> bool:
    # At least one file a loss or D output by its name: a folder of other numbers is not a GAN's log.
    return any(alias_for(_stem(p)) is not None for p in metric_files(path))


def _points(path: Path, out: Collector) -> Iterator[tuple[int, str, float]]:
    """(iteration, file stem, value) of each line, in the file's order, until its iteration goes back."""
    stem, last = _stem(path), -1
    with open_text(path) as fh:
        for lineno, text, complete in iter_lines(fh, out.warnings, path):
            if not text.strip():
                continue
            if not complete:  # MyLogger ends every line: one without its newline was cut off mid-write
                out.warnings.append(f"{path}: line {lineno}: incomplete last line (no newline), {text.strip()[:60]!r}; skipped")
                return
            match = _LINE.match(text)
            value = number(match.group(2)) if match else None
            if match is None or value is None:
                out.problem(f"{path.name}: line {lineno}: expected '<iteration>: <value>', got {text.strip()[:60]!r}; skipped")
                continue
            step = int(match.group(1))
            if step < last:
                out.warnings.append(
                    f"{path}: line {lineno}: the iteration goes back from {last} to {step} (a resumed run appended to the file?); "
                    "the lines from here on are not read"
                )
                return
            last = step
            yield step, stem, value


def read(path: Path, capacity: int = 4096) -> RunData:
    files = metric_files(path)
    out = Collector(path, capacity)
    step: int | None = None
    values: dict[str, float] = {}
    for at, stem, value in heapq.merge(*(_points(f, out) for f in files), key=lambda point: point[0]):
        if step is not None and at != step:
            out.record(step, values)
            values = {}
        step = at
        signal = out.names(stem)
        if signal is not None:
            values.setdefault(signal, value)
    if step is not None:
        out.record(step, values)
    signals, warnings, mapped = out.finish()
    return RunData(signals, RunContext(), str(path), "metricfiles", out.records, tuple(warnings), frozen(mapped))


register_reader(Reader(
    "metricfiles", _accepts, read,
    "a folder of one text file per metric, each line '<iteration>: <value>' (BigGAN-PyTorch's logs/<experiment>/G_loss.log, D_loss_real.log, ...)",
))
