"""The CSV/TSV and JSON Lines readers (the table reading itself is in _table.py).

Names map through the one alias table, :data:`gandoctor.signals.ALIASES` (re-exported here for
code written against its old home).
"""

from __future__ import annotations

from ..signals import ALIASES
from . import Reader, register_reader
from ._table import _accepts_csv, _accepts_jsonl, read_csv, read_jsonl, signal_name

__all__ = ["ALIASES", "read_csv", "read_jsonl", "signal_name"]

register_reader(Reader("csv", _accepts_csv, read_csv, "a CSV/TSV (or a ';'-, '|'- or space-separated table) with loss columns and a step or epoch,iter columns (step,loss_D,loss_G,...)"))
register_reader(Reader("jsonl", _accepts_jsonl, read_jsonl, "JSON Lines or a JSON array, one object per step ({\"step\": 1, \"loss_D\": ...})"))
