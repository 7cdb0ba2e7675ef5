"""Readers for logs users already have: CSV (one row a step) and generic JSON Lines.

Foreign column names are mapped onto gandoctor's signal names through ``ALIASES``; columns
that match no alias are kept as ``user.<column>`` so they show up in ``--json`` output
without feeding any rule by accident.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import LogFormatError
from ..findings import RunContext
from ..signals import SignalLog
from . import Reader, RunData, register_reader
from ._lines import iter_lines, open_text

STEP_KEYS = ("step", "global_step", "iteration", "iter", "it", "batch", "steps")

ALIASES: Mapping[str, str] = {
    **dict.fromkeys(["loss_d", "d_loss", "lossd", "errd", "err_d", "disc_loss", "discriminator_loss", "loss_disc", "loss_discriminator", "loss/d", "d/loss", "loss.d", "critic_loss", "loss_critic"], "loss.d"),
    **dict.fromkeys(["loss_g", "g_loss", "lossg", "errg", "err_g", "gen_loss", "generator_loss", "loss_gen", "loss_generator", "loss/g", "g/loss", "loss.g"], "loss.g"),
    **dict.fromkeys(["d_x", "dx", "d(x)", "d_real", "d_out_real", "d_prob_real", "d_prob.real", "d_real_prob"], "d_prob.real"),
    **dict.fromkeys(["d_g_z", "dgz", "d(g(z))", "d_g_z1", "d_fake", "d_out_fake", "d_prob_fake", "d_prob.fake", "d_fake_prob"], "d_prob.fake"),
    **dict.fromkeys(["grad_norm_d", "d_grad_norm", "grad_norm.d", "gradnorm_d", "d_gradnorm"], "grad_norm.d"),
    **dict.fromkeys(["grad_norm_g", "g_grad_norm", "grad_norm.g", "gradnorm_g", "g_gradnorm"], "grad_norm.g"),
}

_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "+inf": math.inf, "infinity": math.inf, "-infinity": -math.inf}
MAX_REPORTED = 20


def _norm(key: str) -> str:
    return key.strip().lower().replace(" ", "_").replace("-", "_")


def signal_name(column: str) -> str | None:
    key = _norm(column)
    if key in ALIASES:
        return ALIASES[key]
    safe = re.sub(r"[^a-z0-9_]+", "_", key).strip("_")
    return f"user.{safe}" if safe else None


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if text.lower() in _SPECIAL:
            return _SPECIAL[text.lower()]
        try:
            return float(text)
        except ValueError:
            return None
    return None


class _Collector:
    def __init__(self, path: Path, capacity: int) -> None:
        self.path = path
        self.signals = SignalLog(capacity=capacity)
        self.warnings: list[str] = []
        self.problems = 0
        self.records = 0

    def problem(self, message: str) -> None:
        self.problems += 1
        if self.problems <= MAX_REPORTED:
            self.warnings.append(f"{self.path}: {message}")

    def done(self, fmt: str) -> RunData:
        if self.problems > MAX_REPORTED:
            self.warnings.append(f"{self.path}: {self.problems - MAX_REPORTED} more problems not listed")
        if not self.records:
            raise LogFormatError(f"{self.path}: no usable records (expected rows with a step and numeric loss columns)")
        return RunData(self.signals, RunContext(), str(self.path), fmt, self.records, tuple(self.warnings))


def _accepts_csv(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and (name.endswith(".csv") or name.endswith(".csv.gz") or name.endswith(".tsv"))


def read_csv(path: Path, capacity: int = 4096) -> RunData:
    out = _Collector(path, capacity)
    with open_text(path) as fh:
        lines = ((n, t) for n, t, _complete in iter_lines(fh, out.warnings, path))
        numbered = list(_numbered_rows(lines, "\t" if path.name.lower().endswith(".tsv") else ","))
    if not numbered:
        raise LogFormatError(f"{path}: empty file (expected a header row such as 'step,loss_D,loss_G')")
    header_line, header = numbered[0]
    columns = [c.strip() for c in header]
    step_index = next((i for i, c in enumerate(columns) if _norm(c) in STEP_KEYS), None)
    names = [signal_name(c) for c in columns]
    if not any(n and not n.startswith("user.") for n in names):
        out.warnings.append(f"{path}: line {header_line}: no column maps to a known signal (e.g. loss_D, loss_G); known aliases: {', '.join(sorted(ALIASES))}")
    last_step = -1
    for lineno, row in numbered[1:]:
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            out.problem(f"line {lineno}: expected {len(columns)} columns, got {len(row)}; row skipped")
            continue
        if step_index is None:
            step = last_step + 1
        else:
            raw_step = _number(row[step_index])
            if raw_step is None or not math.isfinite(raw_step) or raw_step < 0:
                out.problem(f"line {lineno}: column '{columns[step_index]}': expected a step number, got {row[step_index]!r}; row skipped")
                continue
            step = int(raw_step)
        values: dict[str, float] = {}
        for i, (cell, name) in enumerate(zip(row, names)):
            if i == step_index or name is None or not cell.strip():
                continue
            value = _number(cell)
            if value is None:
                out.problem(f"line {lineno}: column '{columns[i]}': expected a number, got {cell!r}; value skipped")
                continue
            values[name] = value
        out.signals.record(step, values)
        out.records += 1
        last_step = step
    return out.done("csv")


def _numbered_rows(lines: Iterable[tuple[int, str]], delimiter: str) -> Iterable[tuple[int, list[str]]]:
    for lineno, text in lines:
        try:
            rows = list(csv.reader([text], delimiter=delimiter))
        except csv.Error:
            continue
        if rows:
            yield lineno, rows[0]


def _accepts_jsonl(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and (name.endswith(".jsonl") or name.endswith(".jsonl.gz") or name.endswith(".ndjson"))


def _flatten(obj: Mapping[str, Any], prefix: str = "", depth: int = 0) -> Iterable[tuple[str, Any]]:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < 2:
            yield from _flatten(value, name + "_", depth + 1)
        else:
            yield name, value


def read_jsonl(path: Path, capacity: int = 4096) -> RunData:
    out = _Collector(path, capacity)
    last_step = -1
    with open_text(path) as fh:
        for lineno, text, complete in iter_lines(fh, out.warnings, path):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except (json.JSONDecodeError, RecursionError, ValueError):
                if complete:
                    out.problem(f"line {lineno}: not valid JSON; skipped")
                else:
                    out.warnings.append(f"{path}: line {lineno}: incomplete last record; skipped")
                continue
            if not isinstance(record, dict):
                out.problem(f"line {lineno}: expected a JSON object; skipped")
                continue
            flat = dict(_flatten(record))
            step_key = next((k for k in flat if _norm(k) in STEP_KEYS), None)
            if step_key is None:
                step = last_step + 1
            else:
                raw = _number(flat.pop(step_key))
                if raw is None or not math.isfinite(raw) or raw < 0:
                    out.problem(f"line {lineno}: key '{step_key}': expected a step number; skipped")
                    continue
                step = int(raw)
            values: dict[str, float] = {}
            for key, raw in flat.items():
                value = _number(raw)
                name = signal_name(key)
                if value is None or name is None:
                    continue
                values[name] = value
            if values:
                out.signals.record(step, values)
                out.records += 1
                last_step = step
    return out.done("jsonl")


register_reader(Reader("csv", _accepts_csv, read_csv, "a CSV with a step column and loss columns (step,loss_D,loss_G,...)"))
register_reader(Reader("jsonl", _accepts_jsonl, read_jsonl, "JSON Lines, one object per step ({\"step\": 1, \"loss_D\": ...})"))
