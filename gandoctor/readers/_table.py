"""Reading tables of logged values: CSV/TSV (one row a step; ';' and '|' separated too, and text
files of white-space separated columns under a header), JSON Lines and JSON arrays.

Shared by the csv, jsonl and wandb readers (tabular.py, wandb.py register them).

Names are mapped onto gandoctor's signals through the one alias table
(:data:`gandoctor.signals.ALIASES`); names that match no alias are kept as ``user.<name>`` so
they show up in ``--json`` output without feeding any rule by accident.

The step: ``--step COLUMN`` if given; else a global step column (``_step``, ``global_step``,
``step``, ...); else an epoch column with a batch-within-epoch column (``epoch,iter``), turned
into epoch x batches per epoch + batch; else the row order. A step that goes backwards is
never taken as history silently (see :class:`StepClock`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from ..context import RunContext
from ..errors import LogFormatError
from ..signals import alias_for, alias_key
from . import RunData
from ._common import MAX_STEP, Collector, StepClock, frozen, iterations_per_kimg, number, read_options, script_names
from ._lines import iter_lines, open_text

#: Columns that count steps over the whole run, most specific first. StyleGAN2-ADA's and
#: StyleGAN3's ``stats.jsonl`` count training in thousands of images, one record a tick
#: (``{"Progress/kimg": {"mean": 4.0, ...}}``): kimg is their step, as in their TensorBoard logs.
GLOBAL_STEP_KEYS = (
    "_step", "global_step", "globalstep", "total_step", "batches_done", "total_iters", "niter", "step", "steps",
    "itr",  # BigGAN-PyTorch's metalog
    "progress/kimg_mean", "progress/kimg",
)
KIMG_KEYS = ("progress/kimg_mean", "progress/kimg")


#: Columns that may count batches within an epoch (or over the run: the clock tells which).
BATCH_KEYS = ("iter", "iteration", "iters", "it", "batch", "batch_idx", "i", "iter_in_epoch")
EPOCH_KEYS = ("epoch", "epochs", "ep")
#: Bookkeeping columns of trackers: never signals.
IGNORED_KEYS = ("_runtime", "_timestamp", "timestamp", "time", "wall_time", "walltime", "date", "_wandb")



def signal_name(column: str) -> str | None:
    """The signal a column maps to by the alias table alone (no ``--map``), else ``user.<column>``."""
    from ._common import NameMapper

    return NameMapper({})(column)


class StepPlan:
    """Which keys of a row hold its step, decided from the row's keys (or the CSV header)."""

    def __init__(self, keys: Iterable[str], override: str | None, where: str) -> None:
        norm = {alias_key(k): k for k in keys}
        self.per_unit = 1.0  # steps per unit of the step column (kimg -> G iterations)
        self.step_key: str | None = None
        self.epoch_key: str | None = None
        self.batch_key: str | None = None
        if override is not None:
            # A JSON record's {"mean", "num", "std"} value flattens to <name>_mean (StyleGAN's Progress/tick).
            key = override if override in norm.values() else norm.get(alias_key(override)) or norm.get(alias_key(override) + "_mean")
            if key is None:
                raise LogFormatError(f"{where}: --step {override!r}: no such column; columns: {', '.join(repr(k) for k in norm.values())}")
            self.step_key = key
            return
        epoch = next((norm[k] for k in EPOCH_KEYS if k in norm), None)
        glob = next((norm[k] for k in GLOBAL_STEP_KEYS if k in norm), None)
        batch = next((norm[k] for k in BATCH_KEYS if k in norm), None)
        if glob is not None and (glob.startswith("_") or epoch is None or batch is None):
            self.step_key = glob
        elif epoch is not None and (batch is not None or glob is not None):
            self.epoch_key, self.batch_key = epoch, batch if batch is not None else glob
        elif batch is not None:
            self.step_key = batch
        self.epoch_key = self.epoch_key or epoch  # an epoch column alone is bookkeeping, not a signal

    def skip(self) -> set[str]:
        return {k for k in (self.step_key, self.epoch_key, self.batch_key) if k is not None}

    def step(self, row: Mapping[str, Any], clock: StepClock, where: str) -> int | None | str:
        """The global step, None for row order, or an error message."""
        if self.batch_key is not None and self.epoch_key is not None:
            epoch, batch = number(row.get(self.epoch_key)), number(row.get(self.batch_key))
            if epoch is None or batch is None or not math.isfinite(epoch + batch) or not 0 <= epoch < MAX_STEP or not 0 <= batch < MAX_STEP:
                return f"columns '{self.epoch_key}', '{self.batch_key}': expected epoch and batch numbers, got {row.get(self.epoch_key)!r}, {row.get(self.batch_key)!r}"
            return clock.epoch_batch(int(epoch), int(batch), None, where)
        if self.step_key is not None:
            raw = number(row.get(self.step_key))
            if raw is None or not math.isfinite(raw) or not 0 <= raw < MAX_STEP:
                return f"column '{self.step_key}': expected a step number, got {row.get(self.step_key)!r}"
            return clock.step(int(round(raw * self.per_unit)) if self.per_unit != 1.0 else int(raw), where)
        return None

    def counts_kimg(self) -> bool:
        return self.step_key is not None and alias_key(self.step_key) in KIMG_KEYS


def _values(out: Collector, row: Mapping[str, Any], skip: set[str], where: str, strict: bool, ignore: Callable[[str], bool]) -> dict[str, float]:
    values: dict[str, float] = {}
    for key, raw in row.items():
        if key in skip or alias_key(key) in IGNORED_KEYS or ignore(key):
            continue
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue  # a missing cell: nothing logged for this signal at this step
        value = number(raw)
        if value is None:
            if strict:
                out.problem(f"{where}: column '{key}': expected a number, got {raw!r}; value skipped")
            continue
        name = out.names(key)
        if name is not None and name not in values:
            values[name] = value
    return values


def _no_ignore(key: str) -> bool:
    return False


# -- CSV ------------------------------------------------------------------------------------
#: Cell separators a table's header is tried with: the one that splits it into the most cells
#: wins (a European spreadsheet's ';', a '|' table); the extension's own (',' or tab) on a tie.
DELIMITERS = (",", "\t", ";", "|")
#: Other text files read as tables when their first lines are a header and a row of numbers
#: separated by white space (``f.write(f"{step} {d_loss} {g_loss}\n")`` under a header line).
TABLE_SUFFIXES = (".txt", ".log", ".dat", ".out", ".txt.gz", ".log.gz", ".dat.gz")
WHITESPACE = "whitespace"


def _accepts_csv(path: Path) -> bool:
    name = path.name.lower()
    if not path.is_file():
        return False
    return name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")) or (name.endswith(TABLE_SUFFIXES) and _whitespace_table(path))


def _whitespace_table(path: Path) -> bool:
    """A header of names (one of them a known signal or step) over a row of as many numbers."""
    try:
        with open_text(path) as fh:
            lines = [line.split() for line in (fh.readline() for _ in range(20)) if line.strip()][:2]
    except Exception:  # noqa: BLE001 - detection never fails another reader
        return False
    if len(lines) < 2 or len(lines[0]) < 2 or len(lines[0]) != len(lines[1]):
        return False
    header, row = lines
    named = all(number(c) is None for c in header) and any(alias_for(c) or alias_key(c) in GLOBAL_STEP_KEYS for c in header)
    return named and all(number(c) is not None for c in row)


def _delimiter(path: Path, header: str) -> str:
    default = "\t" if ".tsv" in path.name.lower() else ","
    cells = {d: len(next(csv.reader([header], delimiter=d), [])) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (cells[d], d == default))
    if cells[best] >= 2 or len(header.split()) < 2:
        return best
    return WHITESPACE


def csv_rows(path: Path, fh: IO[str], warnings: list[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for each line, streamed; a line the csv module rejects is skipped.
    The separator is chosen on the first non-empty line (the header)."""
    delimiter: str | None = None
    for lineno, text, _complete in iter_lines(fh, warnings, path):
        if delimiter is None:
            if not text.strip():
                continue
            delimiter = _delimiter(path, text)
        if delimiter == WHITESPACE:
            yield lineno, text.split()
            continue
        try:
            row = next(csv.reader([text], delimiter=delimiter), None)
        except csv.Error:
            continue
        if row is not None:
            yield lineno, row


def read_table(
    path: Path, capacity: int, fmt: str, rename: Callable[[str], str] = lambda c: c, ignore: Callable[[str], bool] = _no_ignore
) -> RunData:
    """Stream a delimited file whose first line is a header. ``rename`` cleans header cells
    (W&B's ``'run - metric'``), ``ignore`` drops columns (W&B's ``__MIN``/``__MAX``)."""
    out = Collector(path, capacity)
    clock = StepClock(path, out.warnings)
    with open_text(path) as fh:
        rows = csv_rows(path, fh, out.warnings)
        first = next(rows, None)
        if first is None:
            raise LogFormatError(f"{path}: empty file (expected a header row such as 'step,loss_D,loss_G')")
        header_line, header = first
        columns = [rename(c.strip()) for c in header]
        if all(number(c) is not None for c in columns if c):
            raise LogFormatError(f"{path}: line {header_line}: expected a header row naming the columns (such as 'step,loss_D,loss_G'), got numbers")
        plan = StepPlan(columns, read_options.get().step, f"{path}: line {header_line}")
        skip = plan.skip()
        own, note = script_names(columns, path)
        if own:  # a script whose column names mean something else than the alias table says
            out.read_names_as(own)
            if note:
                out.warnings.append(note)
        for lineno, row in rows:
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                out.problem(f"line {lineno}: expected {len(columns)} columns, got {len(row)}; row skipped")
                continue
            cells = dict(zip(columns, row, strict=True))
            where = f"line {lineno}"
            step = plan.step(cells, clock, where)
            if isinstance(step, str):
                out.problem(f"{where}: {step}; row skipped")
                continue
            if step is None:
                step = clock.row()
            out.record(step, _values(out, cells, skip, where, True, ignore))
    signals, warnings, mapped = out.finish()
    return RunData(signals, RunContext(), str(path), fmt, out.records, tuple(warnings), frozen(mapped))


def read_csv(path: Path, capacity: int = 4096) -> RunData:
    return read_table(path, capacity, "csv")


# -- JSON Lines (and JSON arrays of records) ------------------------------------------------
def _accepts_jsonl(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".json", ".json.gz"))


def _flatten(obj: Mapping[str, Any], prefix: str = "", depth: int = 0) -> Iterable[tuple[str, Any]]:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < 2:
            yield from _flatten(value, name + "_", depth + 1)
        else:
            yield name, value


JSON_CHUNK = 1 << 16
MAX_JSON_RECORD = 1 << 20


def json_records(path: Path, fh: IO[str], warnings: list[str]) -> Iterator[tuple[str, Any, bool]]:
    """(where, decoded value or None if invalid, complete) for each record of a JSON Lines file or
    of a top-level JSON array, streamed: memory is bounded by one record, not the file."""
    try:
        head = fh.read(1)
        while head and head.isspace():
            head = fh.read(1)
    except (OSError, EOFError, ValueError) as exc:  # gzip.BadGzipFile is an OSError
        raise LogFormatError(f"{path}: cannot be read: {exc}") from None
    if head != "[":
        for lineno, text, complete in _prefixed_lines(head, fh, warnings, path):
            if not text.strip():
                continue
            try:
                yield f"line {lineno}", json.loads(text), complete
            except (json.JSONDecodeError, RecursionError, ValueError):
                yield f"line {lineno}", None, complete
        return
    decoder = json.JSONDecoder()
    buf, index, done = "", 0, False
    while True:
        buf = buf.lstrip().lstrip(",").lstrip()
        if buf.startswith("]"):
            return
        try:
            value, end = decoder.raw_decode(buf)
        except (json.JSONDecodeError, RecursionError, ValueError):
            if done or len(buf) > MAX_JSON_RECORD:
                if buf.strip():  # cut off at the end (incomplete), or an invalid / over-long record
                    yield f"record {index + 1}", None, not done
                return
            try:
                more = fh.read(JSON_CHUNK)
            except (OSError, EOFError) as exc:
                warnings.append(f"{path}: record {index + 1}: stopped reading, the file is damaged ({exc})")
                return
            done = not more
            buf += more
            continue
        index += 1
        yield f"record {index}", value, True
        buf = buf[end:]


def _prefixed_lines(head: str, fh: IO[str], warnings: list[str], path: Path) -> Iterator[tuple[int, str, bool]]:
    first = True
    for lineno, text, complete in iter_lines(fh, warnings, path):
        if first:
            text, first = head + text, False
        yield lineno, text, complete
    if first and head:
        yield 1, head, False


def read_records(path: Path, capacity: int, fmt: str, ignore: Callable[[str], bool] = _no_ignore) -> RunData:
    out = Collector(path, capacity)
    clock = StepClock(path, out.warnings)
    override = read_options.get().step
    plans: dict[frozenset[str], StepPlan] = {}
    per_kimg: float | None = None
    with open_text(path) as fh:
        for where, record, complete in json_records(path, fh, out.warnings):
            if record is None:
                if complete:
                    out.problem(f"{where}: not valid JSON; skipped")
                else:
                    out.warnings.append(f"{path}: {where}: incomplete last record; skipped")
                continue
            if not isinstance(record, dict):
                out.problem(f"{where}: expected a JSON object; skipped")
                continue
            flat = dict(_flatten(record))
            keys = frozenset(flat)
            plan = plans.get(keys)
            if plan is None:
                try:
                    plan = StepPlan(flat, override, f"{path}: {where}")
                except LogFormatError:
                    out.problem(f"{where}: no key '{override}' (--step); skipped")
                    continue
                if plan.counts_kimg():
                    if per_kimg is None:
                        per_kimg = iterations_per_kimg(path, out.warnings)
                    plan.per_unit = per_kimg
                if len(plans) < 256:
                    plans[keys] = plan
            step = plan.step(flat, clock, where)
            if isinstance(step, str):
                out.problem(f"{where}: {step.replace('column', 'key')}; skipped")
                continue
            values = _values(out, flat, plan.skip(), where, False, ignore)
            if values:
                out.record(clock.row() if step is None else step, values)
    signals, warnings, mapped = out.finish()
    return RunData(signals, RunContext(), str(path), fmt, out.records, tuple(warnings), frozen(mapped))


def read_jsonl(path: Path, capacity: int = 4096) -> RunData:
    return read_records(path, capacity, "jsonl")
