"""The README's examples work when pasted: its self-contained Python programs run as written, and
its rule-authoring example (a rule file and its cases) passes ``gandoctor rules --check``. The
blocks are read from the README itself, so an edit that breaks one fails here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gandoctor.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
#: Imports of optional extras a block may need (their own tests cover them): such blocks are not run here.
EXTRAS = ("gandoctor.integrations", "lightning", "accelerate")


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall(README.read_text(encoding="utf-8")) if kind == lang]


def programs() -> list[str]:
    """Python blocks that are whole programs: they import what they use, build their own models
    and hold no placeholder (the Quickstart's ``...`` stands for the user's loop)."""
    return [b for b in blocks("python") if b.startswith("import ") and "..." not in b and not any(e in b for e in EXTRAS)]


def test_the_readme_holds_runnable_programs():
    assert len(programs()) >= 2  # the image-to-image example and the live-alert example


@pytest.mark.parametrize("index", range(len(programs())))
def test_a_readme_program_runs_as_pasted(tmp_path, index):
    program = programs()[index]
    done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip()  # each prints what it shows (a report, the step it stopped at)
    assert list(tmp_path.glob("runs/*/gandoctor.jsonl*"))  # and leaves its run log where it says


def test_the_readme_rule_example_passes_its_own_check(tmp_path, capsys):
    files = {}
    for body in blocks("toml"):
        first = body.splitlines()[0]
        if first.startswith("# gan_rules/"):
            files[first[2:].strip()] = body
    assert set(files) == {"gan_rules/ACME1-critic-gap.toml", "gan_rules/cases/ACME1.toml"}
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body, encoding="utf-8")
    assert main(["rules", "--check", str(tmp_path / "gan_rules")]) == 0
    out = capsys.readouterr().out
    assert "1 rule(s) valid" in out and "2 of 2 case(s) passed" in out
