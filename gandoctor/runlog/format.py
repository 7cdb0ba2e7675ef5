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
- ``{"type": "event", "step": 50, "level": "marker", "message": "last healthy step 36 ...", "marker": {"kind":
  "last_healthy", "last_healthy_step": 36, "onset_step": 37, "modes": ["exploding_gradients"], "rules": ["GD501"],
  "onsets": [37]}}``:
  written by the live diagnosis (:mod:`gandoctor.live`) when a finding first appears; ``step`` is when it was
  seen, ``last_healthy_step`` the last recorded step before the earliest onset of the findings seen so far
  (``null`` when the run was unhealthy from its first record), the checkpoint to roll back to, and
  ``onsets`` each new finding's own onset. See
  :class:`HealthyMarker`.

- ``{"type": "event", "step": null, "level": "closed", "message": "..."}``: the last line, written by
  ``Doctor.close()`` (also at interpreter exit); a header with ``"closes": true`` promises it, so a
  log that has the promise and not the line was cut short: its process is still running or was
  killed (out of memory, a job's time limit).
- ``{"type": "event", "step": 3, "level": "stopped", "message": "the script stopped on an uncaught
  RuntimeError (...) after step 3: ..."}``: written at interpreter exit where an uncaught exception
  ended the script with the doctor open. Both read as a :class:`RunEnd`.

Version 1 throughout: markers were added as events, which every reader of version 1 skips, so logs
with markers stay readable by older gandoctors and older logs simply have none.

Non-finite values are written as the strings ``"nan"``, ``"inf"``, ``"-inf"`` so every line is
strict JSON. The reader is :mod:`gandoctor.readers.runlog`, the writer :mod:`.writer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

SCHEMA = "gandoctor.runlog"
VERSION = 1
LOG_NAME = "gandoctor.jsonl"


#: Levels of the events that end a log (see the module docstring).
CLOSED_LEVEL, STOPPED_LEVEL = "closed", "stopped"


class Ending(str, Enum):
    """How a run log ends, where it says."""

    STOPPED = STOPPED_LEVEL  # an uncaught exception ended the script (a "stopped" event)
    CUT_SHORT = "cut_short"  # no closing line where the header promised one: still running, or killed


@dataclass(frozen=True)
class RunEnd:
    """A run log that does not end where its run finished: how, and at which step."""

    how: Ending
    step: int | None  # the last step recorded
    detail: str = ""  # for STOPPED, what the doctor wrote (the exception)

    def message(self) -> str:
        if self.how is Ending.STOPPED:
            return self.detail or f"the script stopped on an uncaught exception after step {self.step}"
        return (
            f"the log ends at step {self.step} without the doctor closing it: the run is still going, or its process "
            "was killed there (out of memory, a job's time limit, kill -9); its last records are where it stood, not where it finished"
        )


@dataclass(frozen=True)
class HealthyMarker:
    """A "last healthy step" marker: where a live check first saw findings, and the step to roll back to."""

    seen_at: int  # the doctor step of the live check that saw the findings
    last_healthy_step: int | None  # the last recorded step before ``onset_step``; None: none was recorded
    onset_step: int  # the earliest onset of the findings seen so far
    modes: tuple[str, ...] = ()  # the new findings' modes and rules
    rules: tuple[str, ...] = ()
    #: each new finding's own onset (a log written before these were kept has none: its alerts
    #: read the run's earliest onset)
    onsets: tuple[int, ...] = ()

    KIND = "last_healthy"

    def message(self) -> str:
        what = ", ".join(f"{m} ({r})" for m, r in zip(self.modes, self.rules))
        before = "none recorded" if self.last_healthy_step is None else str(self.last_healthy_step)
        return f"last healthy step {before}: {what} seen at step {self.seen_at}, earliest onset step {self.onset_step}"

    def to_record(self) -> dict[str, Any]:
        return {
            "type": "event", "step": self.seen_at, "level": "marker", "message": self.message(),
            "marker": {
                "kind": self.KIND, "last_healthy_step": self.last_healthy_step, "onset_step": self.onset_step,
                "modes": list(self.modes), "rules": list(self.rules), "onsets": list(self.onsets),
            },
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> HealthyMarker | None:
        """The marker of an event record, or None when it is not one (or is malformed)."""
        raw = record.get("marker")
        if record.get("level") != "marker" or not isinstance(raw, Mapping) or raw.get("kind") != cls.KIND:
            return None
        seen, onset, healthy = _int(record.get("step")), _int(raw.get("onset_step")), raw.get("last_healthy_step")
        modes, rules = raw.get("modes", []), raw.get("rules", [])
        if seen is None or onset is None or (healthy is not None and _int(healthy) is None):
            return None
        if not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in (modes, rules)):
            return None
        onsets = raw.get("onsets", [])
        if not (isinstance(onsets, list) and len(onsets) == len(modes) and all(_int(x) is not None for x in onsets)):
            onsets = []  # older logs (and damaged ones): the run's earliest onset stands for each
        return cls(seen, healthy, onset, tuple(modes), tuple(rules), tuple(onsets))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def encode_value(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def round_value(value: float) -> float:
    """The precision the log keeps (float32-like); the live log records the same value."""
    if not math.isfinite(value) or value == 0.0:
        return value
    return float(f"{value:.7g}")
