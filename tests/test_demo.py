"""The demo's runs: each replaces its own previous run log, so reading it back warns of nothing."""

from __future__ import annotations

import io
import json

from rich.console import Console

from gandoctor.demo import run_demo
from gandoctor.readers import read_run


def test_a_second_demo_replaces_its_own_run_log(tmp_path):
    console = Console(file=io.StringIO(), width=100)
    for _ in range(2):
        assert run_demo("healthy", 40, str(tmp_path), console) == 0
    log = tmp_path / "healthy" / "gandoctor.jsonl"
    headers = [line for line in log.read_text().splitlines() if json.loads(line).get("type") == "header"]
    assert len(headers) == 1  # appended, the second run would have left two (and a warning on reading)
    assert not [w for w in read_run(log).warnings if "new run starts" in w]
