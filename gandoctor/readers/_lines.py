"""Bounded line reading shared by the text readers: no line may take unbounded memory."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import IO, Iterator

from ..errors import LogFormatError

MAX_LINE_BYTES = 1 << 20


def open_text(path: Path) -> IO[str]:
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
        return path.open("r", encoding="utf-8", errors="replace")
    except OSError as exc:
        raise LogFormatError(f"{path}: cannot be opened: {exc.strerror or exc}") from None


def iter_lines(fh: IO[str], warnings: list[str], path: Path) -> Iterator[tuple[int, str, bool]]:
    """Yield (line number, text without newline, complete). Over-long lines are skipped with a warning."""
    lineno = 0
    while True:
        try:
            chunk = fh.readline(MAX_LINE_BYTES)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            warnings.append(f"{path}: line {lineno + 1}: stopped reading, the file is damaged ({exc}); kept the {lineno} lines before it")
            return
        if not chunk:
            return
        lineno += 1
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
