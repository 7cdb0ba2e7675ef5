"""Reader for gandoctor's own run log (``gandoctor.jsonl`` or ``.jsonl.gz``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import LogFormatError
from ..context import RunContext
from ..runlog import LOG_NAME, SCHEMA, VERSION
from ..signals import SignalLog
from . import Reader, RunData, register_reader
from ._lines import iter_lines, open_text

_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
MAX_REPORTED = 20


def _find_log(path: Path) -> Path | None:
    if path.is_dir():
        for name in (LOG_NAME, LOG_NAME + ".gz"):
            if (path / name).is_file():
                return path / name
        return None
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


def read(path: Path, capacity: int = 4096) -> RunData:
    log_path = _find_log(path)
    if log_path is None:
        raise LogFormatError(f"{path}: no {LOG_NAME} in this directory")
    warnings: list[str] = []
    problems = 0
    context = RunContext()
    signals: SignalLog | None = None
    records = 0
    saw_header = False
    restart_pending = False
    last_step = -1

    def problem(message: str) -> None:
        nonlocal problems
        problems += 1
        if problems <= MAX_REPORTED:
            warnings.append(message)

    with open_text(log_path) as fh:
        for lineno, text, complete in iter_lines(fh, warnings, log_path):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except (json.JSONDecodeError, RecursionError, ValueError):
                if not complete:
                    warnings.append(f"{log_path}: line {lineno}: incomplete last record (the writer was probably killed); skipped")
                else:
                    problem(f"{log_path}: line {lineno}: not valid JSON; skipped")
                continue
            if not isinstance(record, dict) or not isinstance(record.get("type"), str):
                problem(f"{log_path}: line {lineno}: expected an object with a 'type' key; skipped")
                continue
            kind = record["type"]
            if kind == "header":
                version = record.get("version")
                if record.get("schema") != SCHEMA or not isinstance(version, int) or isinstance(version, bool):
                    problem(f"{log_path}: line {lineno}: header without schema '{SCHEMA}' and an integer 'version'; skipped")
                    continue
                if version > VERSION:
                    raise LogFormatError(
                        f"{log_path}: line {lineno}: run log schema version {version} is newer than this gandoctor reads "
                        f"(up to {VERSION}); upgrade gandoctor"
                    )
                if saw_header and records:
                    restart_pending = True  # a second header: a resumed or a new run
                saw_header = True
                cap = record.get("capacity")
                if signals is None:
                    if isinstance(cap, int) and not isinstance(cap, bool) and 16 <= cap <= 1 << 20 and cap % 2 == 0:
                        capacity = cap
                    signals = SignalLog(capacity=capacity)
                context = context.merged(_context_from(record.get("context")))
            elif kind == "context":
                context = context.merged(_context_from(record.get("context")))
            elif kind == "step":
                step = record.get("step")
                values = record.get("s")
                if not isinstance(step, int) or isinstance(step, bool) or step < 0 or not isinstance(values, dict):
                    problem(f"{log_path}: line {lineno}: step record needs an integer 'step' >= 0 and an object 's'; skipped")
                    continue
                clean: dict[str, float] = {}
                for name, raw in values.items():
                    value = _value(raw)
                    if value is None or not isinstance(name, str) or "." not in name:
                        problem(f"{log_path}: line {lineno}: key 's.{name}': expected a number or 'nan'/'inf'/'-inf', got {raw!r}; value skipped")
                        continue
                    clean[name] = value
                if restart_pending:
                    restart_pending = False
                    if step <= last_step:
                        warnings.append(
                            f"{log_path}: line {lineno}: a new run starts here (steps restart at {step}); "
                            "only this newest run is analysed"
                        )
                        signals = SignalLog(capacity=signals.capacity if signals else capacity)
                        records = 0
                if signals is None:
                    signals = SignalLog(capacity=capacity)
                signals.record(step, clean)
                records += 1
                last_step = max(last_step, step)
            elif kind == "event":
                continue
            else:
                problem(f"{log_path}: line {lineno}: unknown record type {kind!r}; skipped")
    if problems > MAX_REPORTED:
        warnings.append(f"{log_path}: {problems - MAX_REPORTED} more problems not listed")
    if not saw_header:
        warnings.append(f"{log_path}: no header line; read the step records without the run's context")
    if not records:
        raise LogFormatError(f"{log_path}: no step records (the run may have stopped before its first step)")
    return RunData(signals or SignalLog(capacity=capacity), context, str(log_path), "runlog", records, tuple(warnings))


register_reader(Reader("runlog", _accepts, read, f"a gandoctor run directory or {LOG_NAME}[.gz]"))
