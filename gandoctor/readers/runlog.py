"""Reader for gandoctor's own run log (``gandoctor.jsonl`` or ``.jsonl.gz``)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..context import RunContext
from ..errors import LogFormatError
from ..runlog.format import CLOSED_LEVEL, LOG_NAME, SCHEMA, STOPPED_LEVEL, VERSION, Ending, HealthyMarker, RunEnd
from ..signals import SignalLog
from . import Reader, RunData, SampleGrid, register_reader
from ._lines import iter_lines, open_text
from .grids import GridKeeper, from_runlog

_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
MAX_REPORTED = 20


def log_in(folder: Path) -> Path | None:
    """The run log in ``folder`` (plain or gzipped), or None."""
    for name in (LOG_NAME, LOG_NAME + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_run_logs(path: Path, depth: int = 3, max_dirs: int = 2_000) -> list[Path]:
    """Folders at most ``depth`` levels under ``path`` that hold a run log (``Doctor(log_dir=
    "runs/exp1/gandoctor")`` beside a script's checkpoints and plots: ``analyze runs/exp1`` reads it)."""
    found: list[Path] = []
    base = len(path.parts)
    for seen, (root, dirs, _files) in enumerate(os.walk(path), start=1):
        dirs.sort()
        if seen > max_dirs:
            break
        folder = Path(root)
        if log_in(folder) is not None:
            found.append(folder)
            dirs[:] = []
        elif len(folder.parts) - base >= depth:
            dirs[:] = []
    return found


def _find_log(path: Path) -> Path | None:
    if path.is_dir():
        own = log_in(path)
        if own is not None:
            return own
        below = find_run_logs(path)
        return log_in(below[0]) if len(below) == 1 else None  # several: expand_runs names each
    return path


def _accepts(path: Path) -> bool:
    log = _find_log(path)
    if log is None or not log.is_file():
        return False
    try:
        with open_text(log) as fh:
            first = fh.readline(4096)
    except (OSError, LogFormatError, EOFError, UnicodeError, ValueError):
        return False
    return f'"schema":"{SCHEMA}"' in first.replace(" ", "")


def _value(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str) and raw in _SPECIAL:
        return _SPECIAL[raw]
    return None


def _context_from(raw: Any) -> RunContext:
    # Lenient: what is malformed is dropped (lists of names such as g_norm are kept).
    return RunContext.from_dict(raw, "run log context", strict=False)


class _Reading:
    """The state of one pass over a run log: what was read so far and what went wrong."""

    def __init__(self, log_path: Path, capacity: int) -> None:
        self.log_path, self.capacity = log_path, capacity
        self.warnings: list[str] = []
        self.problems = self.records = 0
        self.context = RunContext()
        self.signals: SignalLog | None = None
        self.saw_header = self.restart_pending = False
        self.markers: list[HealthyMarker] = []
        self.last_step = -1
        self.grids = GridKeeper()
        self.promises_close = self.closed = False  # the header's "closes", and the "closed" event seen after it
        self.stopped: RunEnd | None = None
        self.new_run_grids: list[SampleGrid] = []  # grids after a second header, before its first step

    def problem(self, lineno: int, message: str) -> None:
        self.problems += 1
        if self.problems <= MAX_REPORTED:
            self.warnings.append(f"{self.log_path}: line {lineno}: {message}")

    def header(self, lineno: int, record: dict[str, Any]) -> None:
        version = record.get("version")
        if record.get("schema") != SCHEMA or not isinstance(version, int) or isinstance(version, bool):
            self.problem(lineno, f"header without schema '{SCHEMA}' and an integer 'version'; skipped")
            return
        if version > VERSION:
            raise LogFormatError(
                f"{self.log_path}: line {lineno}: run log schema version {version} is newer than this gandoctor reads "
                f"(up to {VERSION}); upgrade gandoctor"
            )
        if self.saw_header and self.records:
            self.restart_pending = True  # a second header: a resumed or a new run
            self.new_run_grids = []
        self.saw_header = True
        self.promises_close, self.closed, self.stopped = record.get("closes") is True, False, None  # a resumed run's own
        cap = record.get("capacity")
        if self.signals is None:
            if isinstance(cap, int) and not isinstance(cap, bool) and 16 <= cap <= 1 << 20 and cap % 2 == 0:
                self.capacity = cap
            self.signals = SignalLog(capacity=self.capacity)
        self.context = self.context.merged(_context_from(record.get("context")))

    def step(self, lineno: int, record: dict[str, Any]) -> None:
        step, values = record.get("step"), record.get("s")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0 or not isinstance(values, dict):
            self.problem(lineno, "step record needs an integer 'step' >= 0 and an object 's'; skipped")
            return
        clean: dict[str, float] = {}
        for name, raw in values.items():
            value = _value(raw)
            if value is None or not isinstance(name, str) or "." not in name:
                self.problem(lineno, f"key 's.{name}': expected a number or 'nan'/'inf'/'-inf', got {raw!r}; value skipped")
                continue
            clean[name] = value
        if self.restart_pending:
            self.restart_pending = False
            if step <= self.last_step:
                self.warnings.append(
                    f"{self.log_path}: line {lineno}: a new run starts here (steps restart at {step}); only this newest run is analysed"
                )
                self.signals = SignalLog(capacity=self.signals.capacity if self.signals else self.capacity)
                self.records = 0
                self.grids.clear()
                for grid in self.new_run_grids:  # the new run's first grid comes before its first step
                    self.grids.offer(grid)
                self.markers.clear()  # they were about the older run
                self.last_step = -1
        if self.signals is None:
            self.signals = SignalLog(capacity=self.capacity)
        self.signals.record(step, clean)
        self.records += 1
        self.last_step = max(self.last_step, step)

    def marker(self, lineno: int, record: dict[str, Any]) -> None:
        marker = HealthyMarker.from_record(record)
        if marker is None:
            self.problem(lineno, "marker event needs a 'marker' object with kind 'last_healthy' and integer steps; skipped")
        else:
            self.markers.append(marker)

    def line(self, lineno: int, text: str, complete: bool) -> None:
        try:
            record = json.loads(text)
        except (json.JSONDecodeError, RecursionError, ValueError):
            if not complete:
                self.warnings.append(f"{self.log_path}: line {lineno}: incomplete last record (the writer was probably killed); skipped")
            else:
                self.problem(lineno, "not valid JSON; skipped")
            return
        if not isinstance(record, dict) or not isinstance(record.get("type"), str):
            self.problem(lineno, "expected an object with a 'type' key; skipped")
            return
        kind = record["type"]
        if kind == "header":
            self.header(lineno, record)
        elif kind == "context":
            self.context = self.context.merged(_context_from(record.get("context")))
        elif kind == "step":
            self.step(lineno, record)
        elif kind == "event":
            if record.get("level") == "samples" and "samples" in record:
                self.samples(lineno, record)
            elif record.get("level") == CLOSED_LEVEL:
                self.closed = True
            elif record.get("level") == STOPPED_LEVEL and isinstance(record.get("message"), str):
                step = record.get("step")
                self.stopped = RunEnd(Ending.STOPPED, step if isinstance(step, int) and not isinstance(step, bool) else None, record["message"])
            elif record.get("level") == "marker":
                self.marker(lineno, record)
            elif record.get("level") == "warning" and isinstance(record.get("message"), str):
                # What the Doctor reported during training (a probe switched off, ...): the
                # analysis of the log rests on the same gaps, so it says so too.
                self.warnings.append(f"{self.log_path}: step {record.get('step')}: during training: {record['message']}")
        else:
            self.problem(lineno, f"unknown record type {kind!r}; skipped")

    def samples(self, lineno: int, record: dict[str, Any]) -> None:
        step = record.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            self.problem(lineno, "samples event needs an integer 'step' >= 0; skipped")
            return
        grid = from_runlog(step, record["samples"])
        if isinstance(grid, str):
            self.problem(lineno, f"samples event: {grid}; skipped")
            return
        self.grids.offer(grid)
        if self.restart_pending:
            self.new_run_grids.append(grid)


def read(path: Path, capacity: int = 4096) -> RunData:
    log_path = _find_log(path)
    if log_path is None:
        raise LogFormatError(f"{path}: no {LOG_NAME} in this directory")
    state = _Reading(log_path, capacity)
    with open_text(log_path) as fh:
        for lineno, text, complete in iter_lines(fh, state.warnings, log_path):
            if text.strip():
                state.line(lineno, text, complete)
    if state.problems > MAX_REPORTED:
        state.warnings.append(f"{log_path}: {state.problems - MAX_REPORTED} more problems not listed")
    if not state.saw_header:
        state.warnings.append(f"{log_path}: no header line; read the step records without the run's context")
    if not state.records:
        said = f": {state.stopped.message()}" if state.stopped is not None else " (the run may have stopped before its first step)"
        raise LogFormatError(f"{log_path}: no step records{said}")
    ending = state.stopped or (RunEnd(Ending.CUT_SHORT, state.last_step) if state.promises_close and not state.closed else None)
    signals = state.signals or SignalLog(capacity=state.capacity)
    return RunData(
        signals, state.context, str(log_path), "runlog", state.records, tuple(state.warnings),
        samples=state.grids.grids(), markers=tuple(state.markers), ending=ending,
    )


register_reader(Reader("runlog", _accepts, read, f"a gandoctor run directory or {LOG_NAME}[.gz]"))
