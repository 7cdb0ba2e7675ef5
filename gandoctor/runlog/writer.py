"""The run log writer: buffered, line-atomic appends (the format is in :mod:`.format`).

Records are buffered and written to the OS at most every ``flush_seconds`` seconds (default 2)
or every ``flush_records`` records, and on close; so a killed process loses at most that much,
and never a complete line already flushed.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import IO, Any, Mapping

from .format import CLOSED_LEVEL, LOG_NAME, SCHEMA, STOPPED_LEVEL, VERSION, HealthyMarker, encode_value


class RunLogWriter:
    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        context: Mapping[str, Any],
        capacity: int,
        flush_seconds: float = 2.0,
        flush_records: int = 200,
    ) -> None:
        self.path = Path(log_dir).expanduser() / LOG_NAME  # "~/runs/exp1" is the home folder's, not a folder named "~"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._pending: list[str] = []
        self._keys: dict[str, str] = {}  # signal name -> its JSON string, for step records
        self._last_flush = time.monotonic()
        self.flush_seconds = flush_seconds
        self.flush_records = flush_records
        # "closes": this log ends with a "closed" event when the doctor closes it; a reader finding
        # none knows the process is still running or was killed (older logs lack both: nothing said).
        self._append({"type": "header", "schema": SCHEMA, "version": VERSION, "capacity": capacity, "closes": True, "context": dict(context)})
        self.flush()

    def _append(self, record: Mapping[str, Any]) -> None:
        self._append_line(json.dumps(record, separators=(",", ":"), allow_nan=False))

    def _append_line(self, line: str) -> None:
        self._pending.append(line)
        if len(self._pending) >= self.flush_records or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def write_step(self, step: int, values: Mapping[str, float]) -> None:
        """One step record, the very line ``json.dumps`` writes, built from each name's JSON string
        (kept) and each finite float's ``repr`` (what ``json`` writes for it): a step record is
        written every step, and this costs a third of encoding the record whole."""
        parts = []
        for name, value in values.items():
            if type(value) is not float or not math.isfinite(value):  # NaN/inf, ints, anything else: json's way
                self._append({"type": "step", "step": int(step), "s": {k: encode_value(v) for k, v in values.items()}})
                return
            key = self._keys.get(name)
            if key is None:
                key = json.dumps(name)
                if len(self._keys) < 4096:
                    self._keys[name] = key
            parts.append(f"{key}:{value!r}")
        self._append_line(f'{{"type":"step","step":{int(step)},"s":{{{",".join(parts)}}}}}')

    def write_context(self, context: Mapping[str, Any]) -> None:
        self._append({"type": "context", "context": dict(context)})

    def write_event(self, step: int | None, level: str, message: str) -> None:
        self._append({"type": "event", "step": step, "level": level, "message": message})

    def write_stopped(self, step: int, message: str) -> None:
        """The script stopped on an uncaught exception (see :class:`.format.RunEnd`)."""
        self.write_event(int(step), STOPPED_LEVEL, message)

    def write_marker(self, marker: HealthyMarker) -> None:
        """A "last healthy step" marker (an event record; see :class:`.format.HealthyMarker`); flushed at once."""
        self._append(marker.to_record())
        self.flush()

    def write_samples(self, step: int, grid: Mapping[str, Any] | None) -> None:
        if grid is not None:
            self._append({"type": "event", "step": int(step), "level": "samples", "message": "G's outputs for fixed latent codes", "samples": dict(grid)})

    def _reopened(self) -> None:
        """A doctor dropped without close() is closed later (see ``Doctor.__del__``); the garbage
        collector may have closed its file meanwhile (flushed: appending carries on)."""
        if self._fh is not None and self._fh.closed:
            self._fh = self.path.open("a", encoding="utf-8")

    def flush(self) -> None:
        if self._fh is None:
            return
        self._reopened()
        assert self._fh is not None
        if self._pending:
            # One write call per batch of complete lines: a kill leaves at most one partial line.
            self._fh.write("\n".join(self._pending) + "\n")
            self._pending.clear()
        self._fh.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._fh is None:
            return
        self.write_event(None, CLOSED_LEVEL, "the doctor closed its log")
        self.flush()
        try:
            os.fsync(self._fh.fileno())
        except OSError:
            pass
        self._fh.close()
        self._fh = None
