"""Readers turn a log on disk into a SignalLog plus what is known about the run.

An explicit registry (like torch-fidelity's): each reader has a name, a test for whether a
path is its format, and a read function. ``read_run`` picks the first reader that accepts
the path. Readers never execute anything from the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from ..context import RunContext
from ..errors import LogFormatError
from ..runlog import HealthyMarker, RunEnd
from ..signals import SignalLog
from ._common import (
    READER_SIGNALS,
    ReadOptions,
    parse_mapping,
    parse_tile,
    read_options,
)
from .grids import SampleGrid

__all__ = ["READERS", "READER_SIGNALS", "ReadOptions", "Reader", "RunData", "SampleGrid", "expand_runs", "parse_mapping", "parse_tile", "read_run", "register_reader"]


@dataclass(frozen=True)
class RunData:
    signals: SignalLog
    context: RunContext
    source: str
    format: str
    records: int
    warnings: tuple[str, ...] = field(default_factory=tuple)
    #: signal -> the name it was found under in the log (``'loss.d': 'Loss_D'``), for the report
    mapped: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: sample grids saved during the run, by step (run log ``samples`` events, TensorBoard images)
    samples: tuple[SampleGrid, ...] = ()
    #: "last healthy step" markers the live diagnosis wrote into gandoctor's own run log, in order
    markers: tuple[HealthyMarker, ...] = ()
    #: where gandoctor's run log says the run did not finish (an uncaught exception, a killed
    #: process); None where it finished or the log cannot say (other tools' logs)
    ending: RunEnd | None = None


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
    options: ReadOptions | None = None,
) -> RunData:
    """Read a run directory or a log file into signals. Raises LogFormatError with the reason.

    ``progress`` is called now and then with (characters read, file size or None for gzip).
    ``options``: explicit names (``--map``), step column (``--step``), grid tile size.
    ``format`` None or ``'auto'`` detects the format.
    """
    from ._lines import progress_callback

    token = progress_callback.set(progress)
    token_opts = read_options.set(options or ReadOptions())
    try:
        data = _read_run(Path(path).expanduser(), capacity, None if format == "auto" else format)
    finally:
        progress_callback.reset(token)
        read_options.reset(token_opts)
    return _say_if_no_loss(data)  # gandoctor's own log leaves ``mapped`` empty: nothing was renamed


def _say_if_no_loss(data: RunData) -> RunData:
    """A log read without either loss under a name gandoctor knows, but with scalars of its own
    (a TensorBoard log tagged ``loss`` alone read as ``user.loss``): a warning names them and the
    ``--map`` that would read one as a loss; without it the report only said NOT JUDGED."""
    if data.format == "runlog" or "loss.d" in data.signals or "loss.g" in data.signals:
        return data
    own = [name.removeprefix("user.") for name in data.signals.names() if name.startswith("user.")]
    if not own:
        return data
    said = (
        f"{data.source}: no D or G loss under a name gandoctor knows; the log's own scalars: {', '.join(own[:8])}. "
        f"If one is a loss, name it: --map loss.d=NAME --map loss.g=NAME (Python: ReadOptions(mapping=...))"
    )
    return replace(data, warnings=(*data.warnings, said))


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
    from .console import bars_without_values, unmapped_names

    names = unmapped_names(path) if path.is_file() else []
    hint = (
        f"; its lines hold values named {', '.join(repr(n) for n in names)}, none of them a name gandoctor knows: "
        f"name the losses with --map loss.d=NAME --map loss.g=NAME (Python: read_run(..., options=ReadOptions(mapping=...)))"
        if names else ""
    )
    if not names and path.is_file() and bars_without_values(path):
        hint = ("; its lines are progress bars that show no values (no tqdm set_postfix, no Lightning self.log(..., "
                "prog_bar=True)): the script's losses are logged "
                "elsewhere, such as TensorBoard event files or a CSV it writes; give gandoctor those")
    raise LogFormatError(f"{path}: not a log gandoctor can read (expected one of — {kinds}){hint}")


def expand_runs(paths: list[str | Path] | tuple[str | Path, ...]) -> list[Path]:
    """The runs named by the paths: a parent directory of gandoctor run logs, or else of TensorBoard
    runs, stands for each run in it."""
    from .runlog import find_run_logs, log_in
    from .tensorboard import find_runs

    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        runs: list[Path] = []
        if path.is_dir() and log_in(path) is None:
            runs = find_run_logs(path) or find_runs(path)
        out.extend(runs if len(runs) > 1 else [path])
    return out


# Registration order is detection order: keep these lines in this order (import sorters off).
# isort: off
from . import runlog as _runlog  # noqa: E402, F401
from . import tensorboard as _tensorboard  # noqa: E402, F401
from . import wandb as _wandb  # noqa: E402, F401  (before csv/jsonl: it claims only W&B exports)
from . import tabular as _tabular  # noqa: E402, F401
from . import metricfiles as _metricfiles  # noqa: E402, F401  (folders of one file per metric: BigGAN-PyTorch)
from . import console as _console  # noqa: E402, F401  (last: it sniffs any text file)
# isort: on
