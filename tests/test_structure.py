"""The shape the codebase keeps (issue 8): small parts, and a recording side that does not pull
the diagnosis into the training process."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gandoctor"


def _nodes():  # type: ignore[no-untyped-def]
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            yield path.relative_to(PACKAGE.parent), node


def test_no_class_over_250_lines_and_no_function_over_80():
    too_long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, node in _nodes()
        if (isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 250)
        or (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80)
    ]
    assert not too_long, too_long


def test_reporters_and_integrations_have_homes():
    assert (PACKAGE / "reporters" / "__init__.py").exists() and (PACKAGE / "integrations" / "__init__.py").exists()
