"""Checks shared by the loaders of rule files and the remedy catalogue: every error names the
file and the key, what was expected and what was got."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .errors import RuleError


def where(path: Path | str, key: str) -> str:
    return f"{path}: key '{key}'"


def expect(cond: bool, path: Path | str, key: str, what: str, got: Any) -> None:
    if not cond:
        raise RuleError(f"{where(path, key)}: expected {what}, got {got!r}")


def unknown_keys(table: Mapping[str, Any], allowed: set[str], path: Path | str, prefix: str) -> None:
    for key in table:
        if key not in allowed:
            raise RuleError(f"{where(path, prefix + key)}: unknown key; allowed keys: {', '.join(sorted(allowed))}")
