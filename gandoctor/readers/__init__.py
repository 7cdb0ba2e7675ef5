"""Readers turn a log on disk into a SignalLog plus what is known about the run.

An explicit registry (like torch-fidelity's): each reader has a name, a test for whether a
path is its format, and a read function. ``read_run`` picks the first reader that accepts
the path. Readers never execute anything from the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import LogFormatError
from ..findings import RunContext
from ..signals import SignalLog


@dataclass(frozen=True)
class RunData:
    signals: SignalLog
    context: RunContext
    source: str
    format: str
    records: int
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Reader:
    name: str
    accepts: Callable[[Path], bool]
    read: Callable[[Path, int], RunData]
    doc: str


READERS: dict[str, Reader] = {}


def register_reader(reader: Reader) -> None:
    if reader.name in READERS:
        raise ValueError(f"reader {reader.name!r} is already registered")
    READERS[reader.name] = reader


def read_run(
    path: str | Path,
    capacity: int = 4096,
    format: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> RunData:
    """Read a run directory or a log file into signals. Raises LogFormatError with the reason.

    ``progress`` is called now and then with (characters read, file size or None for gzip).
    """
    from ._lines import progress_callback

    token = progress_callback.set(progress)
    try:
        return _read_run(Path(path), capacity, format)
    finally:
        progress_callback.reset(token)


def _read_run(path: Path, capacity: int, format: str | None) -> RunData:
    if not path.exists():
        raise LogFormatError(f"{path}: no such file or directory")
    if format is not None:
        if format not in READERS:
            raise LogFormatError(f"unknown log format {format!r}; known: {', '.join(READERS)}")
        return READERS[format].read(path, capacity)
    for reader in READERS.values():
        if reader.accepts(path):
            return reader.read(path, capacity)
    kinds = "; ".join(f"{r.name}: {r.doc}" for r in READERS.values())
    raise LogFormatError(f"{path}: not a log gandoctor can read (expected one of — {kinds})")


from . import runlog as _runlog  # noqa: E402  (registration order is detection order)
from . import tabular as _tabular  # noqa: E402,F401
