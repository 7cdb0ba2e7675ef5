"""Weights & Biases run-history exports: the CSV and JSON the W&B UI and API produce.

- API history (``run.history()`` / ``run.scan_history()`` saved as CSV, JSON Lines or a JSON
  array; the local ``wandb-history.jsonl``): one row per logged step, ``_step`` is the step,
  ``_runtime`` / ``_timestamp`` are bookkeeping.
- UI chart export (CSV): a ``Step`` column and ``'<run> - <metric>'`` columns, each with
  ``__MIN`` / ``__MAX`` companions (the smoothing band, not data: skipped).

Metric names are mapped through the alias table after the ``'<run> - '`` and ``train/``
prefixes are taken off, so ``train/loss_D`` becomes ``loss.d``.
"""

from __future__ import annotations

from pathlib import Path

from . import Reader, RunData, register_reader
from ._lines import open_text
from ._table import read_records, read_table

_UI_SUFFIXES = ("__MIN", "__MAX")


def _ignore(key: str) -> bool:
    return key.endswith(_UI_SUFFIXES) or key.startswith(("_wandb", "system/"))


def _rename(column: str) -> str:
    # 'Step' of the UI export is the run's _step.
    return "_step" if column == "Step" else column


def _head(path: Path) -> str:
    try:
        with open_text(path) as fh:
            return fh.read(8192)
    except Exception:  # noqa: BLE001 - detection must never fail the read of another format
        return ""


def _accepts(path: Path) -> bool:
    name = path.name.lower()
    if not path.is_file() or not name.endswith((".csv", ".csv.gz", ".json", ".json.gz", ".jsonl", ".jsonl.gz")):
        return False
    head = _head(path)
    if ".csv" in name:
        first = head.split("\n", 1)[0]
        return '"_step"' in first or first.startswith("_step") or ",_step" in first or (
            first.startswith(("Step,", '"Step",')) and " - " in first
        )
    return '"_step"' in head.split("\n", 1)[0][:4096] or (head.lstrip().startswith("[") and '"_step"' in head)


def read(path: Path, capacity: int = 4096) -> RunData:
    if ".csv" in path.name.lower():
        return read_table(path, capacity, "wandb", rename=_rename, ignore=_ignore)
    return read_records(path, capacity, "wandb", ignore=_ignore)


register_reader(Reader("wandb", _accepts, read, "a W&B run-history export (CSV or JSON with a _step column)"))
