"""Bounded line reading shared by the text readers: no line may take unbounded memory."""

from __future__ import annotations

import contextvars
import gzip
import io
from pathlib import Path
from typing import IO, Callable, Iterator

from ..errors import LogFormatError

MAX_LINE_BYTES = 1 << 20
PROGRESS_EVERY_LINES = 20_000

#: Set by ``read_run(progress=...)``: called with (characters read so far, file size or None).
progress_callback: contextvars.ContextVar[Callable[[int, int | None], None] | None] = contextvars.ContextVar(
    "gandoctor_read_progress", default=None
)


def open_text(path: Path) -> IO[str]:
    # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is dropped, not read into the first
    # column's name ('\ufeffstep' is no step column); text without one reads as plain UTF-8.
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="replace")
        return path.open("r", encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise LogFormatError(f"{path}: cannot be opened: {exc.strerror or exc}") from None


def iter_lines(fh: IO[str], warnings: list[str], path: Path) -> Iterator[tuple[int, str, bool]]:
    """Yield (line number, text without newline, complete). Over-long lines are skipped with a warning."""
    lineno = 0
    done = 0
    report = progress_callback.get()
    total: int | None = None
    if report is not None and path.suffix != ".gz" and path.is_file():
        total = path.stat().st_size
    while True:
        try:
            chunk = fh.readline(MAX_LINE_BYTES)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            warnings.append(f"{path}: line {lineno + 1}: stopped reading, the file is damaged ({exc}); kept the {lineno} lines before it")
            return
        if not chunk:
            if report is not None:
                report(done, total)
            return
        lineno += 1
        done += len(chunk)
        if report is not None and lineno % PROGRESS_EVERY_LINES == 0:
            report(done, total)
        if chunk.endswith("\n"):
            yield lineno, chunk.rstrip("\r\n"), True
            continue
        if len(chunk) < MAX_LINE_BYTES:
            yield lineno, chunk, False  # last line without newline: possibly cut off
            return
        # Over-long line: drain it without keeping it.
        while chunk and not chunk.endswith("\n"):
            chunk = fh.readline(MAX_LINE_BYTES)
        warnings.append(f"{path}: line {lineno}: longer than {MAX_LINE_BYTES} bytes; skipped")
