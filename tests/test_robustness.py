"""Crash safety and bad input: SIGKILLed writers, fuzzed readers and rule files.

Bounded: a fixed number of kills and hypothesis examples, each with short deadlines.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gandoctor.errors import LogFormatError, RuleError
from gandoctor.readers import read_run
from gandoctor.rules import load_rules
from gandoctor.runlog import LOG_NAME, RunLogWriter

WRITER_CHILD = r"""
import sys, math
from gandoctor.runlog import RunLogWriter
w = RunLogWriter(sys.argv[1], {"flags": [], "values": {}}, 4096, flush_seconds=1e9, flush_records=7)
print(0, flush=True)   # ready: the header is on disk
step = 0
while True:
    w.write_step(step, {"loss.d": 0.5 + step * 1e-3, "loss.g": float("nan") if step % 13 == 0 else 1.0, "d.auc": 0.6})
    step += 1
    if len(w._pending) == 0:
        print(step, flush=True)   # every record up to `step` has been handed to the OS
"""


def test_sigkill_mid_write_loses_nothing_beyond_the_last_flush(tmp_path):
    rng = random.Random(1234)
    kills = 25
    for i in range(kills):
        run_dir = tmp_path / f"run{i}"
        child = subprocess.Popen([sys.executable, "-c", WRITER_CHILD, str(run_dir)], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        first = child.stdout.readline()  # wait until the writer is up, then kill at a random point
        time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
        flushed = [int(x) for x in (first + out).split()]
        data = read_run(run_dir)
        last_flushed = flushed[-1] if flushed else 0
        assert data.records >= last_flushed, f"kill {i}: {data.records} records read, {last_flushed} were flushed"
        raw_lines = (run_dir / LOG_NAME).read_text().split("\n")
        complete_steps = sum(1 for line in raw_lines[:-1] if line.startswith('{"type":"step"'))
        assert data.records == complete_steps


def _valid_log(tmp_path: Path, steps: int = 60) -> Path:
    writer = RunLogWriter(tmp_path, {"flags": ["critic"], "values": {"lr_d": 1e-4}}, 64)
    for s in range(steps):
        writer.write_step(s, {"loss.d": 0.7, "loss.g": float("inf") if s == 5 else 0.9, "grad_norm.d": 1.5})
    writer.close()
    return tmp_path / LOG_NAME


FUZZ = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _read_must_be_clean(path: Path, format: str | None = None) -> None:
    try:
        data = read_run(path, format=format)
    except LogFormatError as exc:
        assert str(path) in str(exc) or "log format" in str(exc)
        return
    assert data.records >= 1  # a read that succeeds has something to diagnose; nothing usable is an error
    assert all(str(path) in w for w in data.warnings)  # every warning names the file


@FUZZ
@given(cut=st.integers(min_value=0, max_value=10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_runlog_reader_survives_truncation_and_byte_flips(tmp_path_factory, cut, flips):
    tmp = tmp_path_factory.mktemp("fuzz")
    path = _valid_log(tmp)
    raw = bytearray(path.read_bytes())
    raw = raw[: cut % (len(raw) + 1)]
    for pos, byte in flips:
        if raw:
            raw[pos % len(raw)] = byte
    path.write_bytes(bytes(raw))
    _read_must_be_clean(tmp)
    _read_must_be_clean(path, format="runlog")


@FUZZ
@given(payload=st.binary(max_size=4000))
def test_every_reader_survives_binary_garbage(tmp_path_factory, payload):
    tmp = tmp_path_factory.mktemp("garbage")
    for name, fmt in (("log.csv", "csv"), ("log.jsonl", "jsonl"), (LOG_NAME, "runlog")):
        path = tmp / name
        path.write_bytes(payload)
        _read_must_be_clean(path, format=fmt)
    gz = tmp / "log.jsonl.gz"
    gz.write_bytes(payload)
    _read_must_be_clean(gz, format="jsonl")


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers(min_value=-(10**30), max_value=10**30) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(records=st.lists(st.dictionaries(st.sampled_from(["type", "step", "s", "schema", "version", "context", "x"]), json_values, max_size=6), max_size=15))
def test_runlog_reader_survives_wrong_types(tmp_path_factory, records):
    tmp = tmp_path_factory.mktemp("types")
    lines = [json.dumps({"type": "header", "schema": "gandoctor.runlog", "version": 1})] + [json.dumps(r) for r in records]
    (tmp / LOG_NAME).write_text("\n".join(lines) + "\n")
    _read_must_be_clean(tmp)


def test_deeply_nested_and_enormous_lines_are_skipped_with_warnings(tmp_path):
    path = _valid_log(tmp_path, steps=10)
    with path.open("a") as fh:
        fh.write("[" * 100_000 + "]" * 100_000 + "\n")
        fh.write('{"type":"step","step":11,"s":{"loss.d":' + "1" * (2 << 20) + "}}\n")
        fh.write('{"type":"step","step":12,"s":{"loss.d":0.5}}\n')
    data = read_run(tmp_path)
    assert data.records == 11
    # Line 12 is the writer's closing line; the nested line and the enormous one follow it.
    assert any("line 13" in w for w in data.warnings)
    assert any("line 14" in w and "longer than" in w for w in data.warnings)


def test_huge_values_are_kept_as_data(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("step,loss_D,loss_G\n0,1e308,1e309\n1,-1e308,nan\n")
    data = read_run(path)
    view = data.signals.get("loss.g")
    assert view is not None and int(view.nonfinite.sum()) == 2


def test_gzip_truncated_mid_stream_keeps_what_decompressed(tmp_path):
    path = _valid_log(tmp_path, steps=2000)
    gz = tmp_path / "cut" / (LOG_NAME + ".gz")
    gz.parent.mkdir()
    blob = gzip.compress(path.read_bytes())
    gz.write_bytes(blob[: len(blob) * 2 // 3])
    data = read_run(gz.parent)
    assert 0 < data.records < 2000
    assert any("damaged" in w or "incomplete" in w for w in data.warnings)


rule_keys = st.sampled_from(["code", "name", "mode", "summary", "why", "conditions", "params", "remedies", "match", "bogus"])


@FUZZ
@given(table=st.dictionaries(rule_keys, json_values, max_size=8))
def test_rule_loader_gives_rule_errors_only(tmp_path_factory, table):
    tmp = tmp_path_factory.mktemp("rules")
    (tmp / "remedies.toml").write_text('[remedy.x]\ntitle="t"\naction="a"\nsource="s"\nsection="c"\n')
    lines = []
    for key, value in table.items():
        lines.append(f"{key} = {json.dumps(value)}")
    (tmp / "GD999-fuzz.toml").write_text("\n".join(lines))
    try:
        load_rules([tmp], include_builtin=False)
    except RuleError as exc:
        assert "GD999-fuzz.toml" in str(exc) or "remedies.toml" in str(exc)


@pytest.mark.parametrize("mutation", ["truncate", "flip"])
def test_rule_files_with_damage_name_the_file(tmp_path, mutation):
    source = sorted((Path(__file__).resolve().parent.parent / "rules").glob("GD3*.toml"))[0]
    text = source.read_text()
    if mutation == "truncate":
        text = text[: len(text) // 3] + "\n[[conditions"
    else:
        text = text.replace('op = "<"', 'op = "≈"', 1)
    (tmp_path / "remedies.toml").write_text((source.parent / "remedies.toml").read_text())
    (tmp_path / source.name).write_text(text)
    with pytest.raises(RuleError, match=source.name):
        load_rules([tmp_path], include_builtin=False)
    assert os.path.exists(tmp_path / source.name)
