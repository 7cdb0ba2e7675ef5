"""The run log format: append-only JSON Lines with a versioned schema.

Why JSON Lines: one self-contained record per line means a crash can only damage the last
line, which the reader skips with a warning; it is greppable, streamable, and needs nothing
outside the standard library. Lines:

- ``{"type": "header", "schema": "gandoctor.runlog", "version": 1, "capacity": 4096, "context": {...}}``
- ``{"type": "step", "step": 120, "s": {"loss.d": 0.69, "grad_norm.g": "nan", ...}}``
- ``{"type": "context", "context": {...}}`` (later facts about the run, merged in order)
- ``{"type": "event", "step": 120, "level": "warning", "message": "..."}``
- ``{"type": "event", "step": 1000, "level": "samples", "message": "...", "samples": {"shape": [16, 1, 16, 16],
  "lo": -1.0, "hi": 1.0, "uint8": "<base64>"}}``: G's outputs for fixed latent codes, quantised
  to uint8 between ``lo`` and ``hi`` (C order); an event, so readers that only want signals skip it.

Non-finite values are written as the strings ``"nan"``, ``"inf"``, ``"-inf"`` so every line is
strict JSON. The reader is :mod:`gandoctor.readers.runlog`, the writer :mod:`.writer`.
"""

from __future__ import annotations

import math

SCHEMA = "gandoctor.runlog"
VERSION = 1
LOG_NAME = "gandoctor.jsonl"


def encode_value(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def round_value(value: float) -> float:
    """The precision the log keeps (float32-like); the live log records the same value."""
    if not math.isfinite(value) or value == 0.0:
        return value
    return float(f"{value:.7g}")
