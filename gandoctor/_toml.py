"""Reading TOML files with errors that name the file (shared by rules and config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .errors import GanDoctorError


def read_toml(path: Path, error: type[GanDoctorError]) -> Mapping[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read: {exc.strerror}") from None
