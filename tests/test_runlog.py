"""gandoctor.runlog (the writer) and gandoctor.readers.runlog (its reader): round trip and damage."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from gandoctor import LogFormatError, RunContext, read_run
from gandoctor.readers import runlog as runlog_reader
from gandoctor.runlog import LOG_NAME, SCHEMA, VERSION, Ending, HealthyMarker, RunLogWriter, encode_value, round_value

CONTEXT = {"flags": ["d_spectral_norm", "ttur"], "values": {"lr_d": 0.0002, "arch": "dcgan"}}


def write_run(log_dir: Path, n: int = 50, capacity: int = 64, **kw) -> Path:
    w = RunLogWriter(log_dir, CONTEXT, capacity, **kw)
    for step in range(n):
        w.write_step(step, {"loss.d": 0.5 + step / 100.0, "loss.g": 1.0 - step / 200.0})
    w.close()
    return log_dir / LOG_NAME


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# -- writer -----------------------------------------------------------------------------
def test_writer_header_then_steps_strict_json(tmp_path):
    path = write_run(tmp_path, n=3, capacity=64)
    lines = lines_of(path)
    header = json.loads(lines[0])
    assert header == {"type": "header", "schema": SCHEMA, "version": VERSION, "capacity": 64, "closes": True, "context": CONTEXT}
    for line in lines[1:]:
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert json.loads(lines[1]) == {"type": "step", "step": 0, "s": {"loss.d": 0.5, "loss.g": 1.0}}
    assert len(lines) == 5 and json.loads(lines[-1])["level"] == "closed"  # the promised closing line


def test_writer_encodes_non_finite_as_strings(tmp_path):
    w = RunLogWriter(tmp_path, {}, 64)
    w.write_step(7, {"loss.d": math.nan, "loss.g": math.inf, "grad_norm.d": -math.inf, "grad_norm.g": 1.5})
    w.close()
    record = json.loads(lines_of(tmp_path / LOG_NAME)[1])
    assert record["s"] == {"loss.d": "nan", "loss.g": "inf", "grad_norm.d": "-inf", "grad_norm.g": 1.5}


def test_step_records_are_the_lines_json_writes(tmp_path):
    """write_step builds its line by hand (it runs every step): byte for byte json.dumps's."""
    writer = RunLogWriter(tmp_path, {}, capacity=64)
    cases = [
        {"loss.d": 0.6931472, "loss.g": 1.234e-07, "grad_norm.d": 1e30, "w": -0.0},
        {'user.\u00e9"quote\\': 3.0, "user.\u65e5\u672c": 2.5e-300},
        {"loss.d": math.nan, "loss.g": math.inf},  # non-finite: encoded as strings
        {"opt_steps.d": 2, "flag": True},  # not floats
        {},
    ]
    for step, values in enumerate(cases):
        writer.write_step(step, values)
        expected = {"type": "step", "step": step, "s": {k: encode_value(v) for k, v in values.items()}}
        assert writer._pending[-1] == json.dumps(expected, separators=(",", ":"), allow_nan=False)


def test_a_log_dir_under_the_home_folder_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    writer = RunLogWriter("~/runs/exp1", {}, capacity=64)
    writer.close()
    assert (tmp_path / "runs" / "exp1" / LOG_NAME).exists() and writer.path == tmp_path / "runs" / "exp1" / LOG_NAME
    with pytest.raises(LogFormatError, match=r"runs/exp1/gandoctor.jsonl: no step records"):  # found by the same name
        read_run("~/runs/exp1")


def test_writer_buffers_until_flush_records(tmp_path):
    w = RunLogWriter(tmp_path, {}, 64, flush_seconds=3600, flush_records=5)
    path = tmp_path / LOG_NAME
    assert len(lines_of(path)) == 1  # the header is flushed at once
    for step in range(4):
        w.write_step(step, {"loss.d": 1.0})
    assert len(lines_of(path)) == 1
    w.write_step(4, {"loss.d": 1.0})
    assert len(lines_of(path)) == 6
    w.write_step(5, {"loss.d": 1.0})
    w.close()
    assert len(lines_of(path)) == 8  # the step and the closing line
    w.close()  # closing twice is harmless
    w.write_step(6, {"loss.d": 1.0})  # after close: buffered, never written, no error
    w.flush()
    assert len(lines_of(path)) == 8


def test_writer_context_and_event_records(tmp_path):
    w = RunLogWriter(tmp_path, {"flags": ["a_flag"]}, 64)
    w.write_step(0, {"loss.d": 1.0})
    w.write_context({"flags": ["critic"], "values": {"n_critic": 5}})
    w.write_event(0, "warning", "something happened")
    w.close()
    kinds = [json.loads(line)["type"] for line in lines_of(tmp_path / LOG_NAME)]
    assert kinds == ["header", "step", "context", "event", "event"]  # the last: closed
    data = read_run(tmp_path)
    assert data.context.flags == frozenset({"a_flag", "critic"})
    assert data.context.values == {"n_critic": 5}
    assert data.records == 1
    # What the Doctor reported during training (a probe switched off) is said by the analysis too.
    assert data.warnings == (f"{tmp_path / LOG_NAME}: step 0: during training: something happened",)


def test_encode_and_round_value():
    assert encode_value(1.25) == 1.25
    assert [encode_value(v) for v in (math.nan, math.inf, -math.inf)] == ["nan", "inf", "-inf"]
    assert round_value(1.23456789012) == 1.234568
    assert round_value(0.0) == 0.0
    assert math.isnan(round_value(math.nan))


# -- round trip -----------------------------------------------------------------------------
def test_round_trip_values_steps_and_context(tmp_path):
    rng = np.random.default_rng(1)
    steps = np.arange(0, 500, 5)
    d = rng.normal(0.7, 0.1, steps.size)
    g = rng.normal(1.2, 0.3, steps.size)
    w = RunLogWriter(tmp_path, CONTEXT, 4096)
    for step, dv, gv in zip(steps, d, g):
        w.write_step(int(step), {"loss.d": float(dv), "loss.g": float(gv)})
    w.close()
    data = read_run(tmp_path)
    assert data.format == "runlog"
    assert data.source == str(tmp_path / LOG_NAME)
    assert data.records == steps.size
    assert data.warnings == ()
    assert data.context == RunContext(frozenset(CONTEXT["flags"]), CONTEXT["values"])
    assert data.signals.names() == ["loss.d", "loss.g"]
    view = data.signals.get("loss.d")
    assert view.steps.tolist() == steps.tolist()
    assert np.array_equal(view.values, d)  # JSON keeps float64 exactly
    assert np.array_equal(data.signals.get("loss.g").values, g)
    assert (data.signals.first_step, data.signals.last_step) == (0, 495)


def test_round_trip_non_finite_values(tmp_path):
    w = RunLogWriter(tmp_path, {}, 64)
    values = [1.0, math.nan, math.inf, -math.inf, 2.0]
    for step, v in enumerate(values):
        w.write_step(step, {"loss.d": v})
    w.close()
    view = read_run(tmp_path).signals.get("loss.d")
    assert view.nonfinite.tolist() == [0, 1, 1, 1, 0]
    assert view.values[0] == 1.0 and view.values[4] == 2.0
    assert np.isnan(view.values[1:4]).all()
    # the reader decodes each spelling
    assert math.isnan(runlog_reader._value("nan"))
    assert runlog_reader._value("inf") == math.inf and runlog_reader._value("-inf") == -math.inf
    assert runlog_reader._value("Infinity") is None and runlog_reader._value(True) is None


def test_header_capacity_is_used_by_the_reader(tmp_path):
    write_run(tmp_path, n=100, capacity=16)
    view = read_run(tmp_path).signals.get("loss.d")
    assert len(view) <= 16
    assert int(view.counts.sum()) == 100


def test_reads_file_path_and_directory_alike(tmp_path):
    path = write_run(tmp_path)
    a, b = read_run(tmp_path), read_run(path)
    assert a.records == b.records == 50
    assert a.signals.get("loss.d").values.tolist() == b.signals.get("loss.d").values.tolist()


# -- damaged logs -------------------------------------------------------------------------
def test_truncated_last_line_keeps_earlier_records_and_warns(tmp_path):
    path = write_run(tmp_path, n=10)
    text = path.read_text(encoding="utf-8").rstrip("\n").rsplit("\n", 1)[0]  # a killed writer never closed
    last = text.rsplit("\n", 1)[1]
    path.write_text(text[: -len(last) // 2], encoding="utf-8")  # half of the last JSON line
    data = read_run(tmp_path)
    assert data.records == 9
    assert data.signals.get("loss.d").steps.tolist() == list(range(9))
    (warning,) = data.warnings
    assert str(path) in warning and "line 11" in warning and "incomplete last record" in warning
    assert data.ending is not None and data.ending.step == 8


def test_garbage_line_in_the_middle_is_skipped_with_a_warning(tmp_path):
    path = write_run(tmp_path, n=10)
    lines = lines_of(path)
    lines.insert(4, "this is {not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = read_run(tmp_path)
    assert data.records == 10
    assert data.signals.get("loss.d").steps.tolist() == list(range(10))
    (warning,) = data.warnings
    assert str(path) in warning and "line 5" in warning and "not valid JSON" in warning


@pytest.mark.parametrize(
    "bad_line,fragment",
    [
        ('{"type":"step","step":-1,"s":{"loss.d":1}}', "integer 'step' >= 0"),
        ('{"type":"step","step":"3","s":{"loss.d":1}}', "integer 'step' >= 0"),
        ('{"type":"step","step":3,"s":{"loss.d":"high"}}', "key 's.loss.d'"),
        ('{"type":"mystery"}', "unknown record type 'mystery'"),
        ("[1, 2, 3]", "expected an object with a 'type' key"),
    ],
)
def test_bad_records_warn_with_line_number(tmp_path, bad_line, fragment):
    path = write_run(tmp_path, n=5)
    lines = lines_of(path)
    lines.insert(2, bad_line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = read_run(tmp_path)
    assert any(f"{path}: line 3:" in w and fragment in w for w in data.warnings), data.warnings


def test_many_problems_are_summarised(tmp_path):
    path = write_run(tmp_path, n=3)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("garbage\n" * 30)
    data = read_run(tmp_path)
    assert len(data.warnings) == runlog_reader.MAX_REPORTED + 1
    assert data.warnings[-1] == f"{path}: 10 more problems not listed"
    assert data.records == 3


def test_newer_schema_version_raises(tmp_path):
    path = write_run(tmp_path, n=3)
    lines = lines_of(path)
    header = json.loads(lines[0])
    header["version"] = VERSION + 1
    lines[0] = json.dumps(header)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(LogFormatError) as info:
        read_run(tmp_path)
    assert str(path) in str(info.value) and "line 1" in str(info.value) and f"version {VERSION + 1}" in str(info.value)


def test_gzip_log_reads_the_same(tmp_path):
    plain = write_run(tmp_path / "plain", n=40)
    gz_dir = tmp_path / "gz"
    gz_dir.mkdir()
    gz = gz_dir / (LOG_NAME + ".gz")
    with plain.open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    a, b = read_run(plain), read_run(gz_dir)
    assert b.format == "runlog" and b.source == str(gz)
    assert a.records == b.records == 40
    assert a.context == b.context
    assert a.signals.get("loss.g").values.tolist() == b.signals.get("loss.g").values.tolist()
    assert read_run(gz).records == 40


def test_truncated_gzip_warns_instead_of_crashing(tmp_path):
    plain = write_run(tmp_path / "plain", n=2000)
    gz = tmp_path / "run.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    data = runlog_reader.read(gz)
    assert any("damaged" in w and str(gz) in w for w in data.warnings), data.warnings
    assert data.records < 2000


def test_empty_file(tmp_path):
    path = tmp_path / LOG_NAME
    path.write_text("", encoding="utf-8")
    # read as a run log: nothing in it is an error naming the file
    with pytest.raises(LogFormatError, match="no step records") as info:
        runlog_reader.read(path)
    assert str(path) in str(info.value)
    # detected automatically it is not a run log, and no other reader finds records either
    with pytest.raises(LogFormatError, match="no usable records"):
        read_run(path)


def test_header_only_log_is_an_error_not_a_healthy_run(tmp_path):
    # A run that died before its first step must not pass a CI gate as "healthy".
    RunLogWriter(tmp_path, CONTEXT, 64).close()
    with pytest.raises(LogFormatError, match="no step records"):
        read_run(tmp_path)


def _append_run(folder, steps, value):
    """One writer session appending `steps` to the run log in `folder`, as a (re)started job would."""
    writer = RunLogWriter(folder, CONTEXT, 64)
    for s in steps:
        writer.write_step(s, {"loss.d": value})
    writer.close()


def test_a_restarted_run_in_the_same_folder_is_analysed_alone(tmp_path):
    _append_run(tmp_path, range(100), 1.0)
    _append_run(tmp_path, range(30), 2.0)
    data = read_run(tmp_path)
    assert data.records == 30
    assert set(data.signals.get("loss.d").values.tolist()) == {2.0}
    assert any("new run starts here" in w for w in data.warnings)


def test_a_resumed_run_continues(tmp_path):
    _append_run(tmp_path, range(50), 1.0)
    _append_run(tmp_path, range(50, 80), 1.0)
    data = read_run(tmp_path)
    assert data.records == 80 and not any("new run" in w for w in data.warnings)


# -- last-healthy-step markers (written by the live diagnosis) ------------------------------------
MARKER = HealthyMarker(seen_at=49, last_healthy_step=41, onset_step=42, modes=("exploding_gradients",), rules=("GD501",))


def test_a_marker_is_an_event_that_reads_back_typed(tmp_path):
    writer = RunLogWriter(tmp_path, CONTEXT, 64)
    for step in range(50):
        writer.write_step(step, {"loss.d": 0.5})
    writer.write_marker(MARKER)
    writer.write_marker(HealthyMarker(60, None, 0, ("mode_collapse",), ("GD301",)))  # unhealthy from the start
    writer.close()
    record = json.loads(lines_of(tmp_path / LOG_NAME)[-3])
    assert (record["type"], record["level"], record["step"]) == ("event", "marker", 49)
    assert "last healthy step 41" in record["message"]
    data = read_run(tmp_path)
    assert data.markers == (MARKER, HealthyMarker(60, None, 0, ("mode_collapse",), ("GD301",)))
    assert data.records == 50 and not data.warnings


def test_each_alert_of_a_marker_keeps_its_own_onset_and_an_older_marker_the_run_s_earliest(tmp_path):
    # diegoalejogm's vanilla GAN: GD601 seen from step 250 and GD304 from 375 both read "onset 125",
    # the run's earliest, when the marker kept that one onset only.
    from gandoctor.diagnose import alerts_of

    writer = RunLogWriter(tmp_path, CONTEXT, 64)
    for step in range(500):
        writer.write_step(step, {"loss.d": 0.5})
    writer.write_marker(HealthyMarker(499, 124, 125, ("non_convergence", "mode_collapse"), ("GD601", "GD304"), (250, 375)))
    writer.close()
    (marker,) = read_run(tmp_path).markers
    assert [(a.rule, a.onset_step) for a in alerts_of([marker])] == [("GD601", 250), ("GD304", 375)]
    older = HealthyMarker.from_record({"step": 499, "level": "marker", "marker": {
        "kind": "last_healthy", "last_healthy_step": 124, "onset_step": 125, "modes": ["mode_collapse"], "rules": ["GD304"]}})
    assert older is not None and [a.onset_step for a in alerts_of([older])] == [125]


def test_logs_without_markers_read_as_before_and_bad_markers_warn(tmp_path):
    path = write_run(tmp_path / "old", n=20)
    assert read_run(path).markers == ()
    with path.open("a") as fh:
        fh.write(json.dumps({"type": "event", "step": 20, "level": "marker", "message": "x", "marker": {"kind": "last_healthy"}}) + "\n")
        fh.write(json.dumps({"type": "event", "step": 21, "level": "info", "message": "an ordinary event"}) + "\n")
    data = read_run(path)
    assert data.markers == () and data.records == 20
    assert len(data.warnings) == 1 and "line 23: marker event needs" in data.warnings[0]


def test_markers_of_an_older_run_in_the_same_folder_are_dropped_with_it(tmp_path):
    _append_run(tmp_path, range(100), 1.0)
    writer = RunLogWriter(tmp_path, CONTEXT, 64)
    writer.write_marker(MARKER)
    writer.close()
    _append_run(tmp_path, range(30), 2.0)
    assert read_run(tmp_path).markers == ()


def test_directory_without_a_log_is_rejected(tmp_path):
    with pytest.raises(LogFormatError, match="not a log gandoctor can read"):
        read_run(tmp_path)
    with pytest.raises(LogFormatError, match=f"no {LOG_NAME}"):
        runlog_reader.read(tmp_path)


def test_a_live_alert_that_no_longer_holds_at_the_last_step_is_reported_as_such(tmp_path):
    """A live check raised D dominance at step 49; the run then recovered. The verdict is on the
    end state, and the report says what was raised on the way (console, JSON, Markdown)."""
    from gandoctor.diagnose import analyze
    from gandoctor.reporters.console import render_text
    from gandoctor.reporters.markdown import render_markdown

    writer = RunLogWriter(tmp_path, CONTEXT, 64)
    for step in range(400):
        writer.write_step(step, {"loss.d": 1.3 + 0.05 * math.sin(step), "loss.g": 0.7 + 0.05 * math.cos(step)})
    writer.write_marker(HealthyMarker(49, 29, 30, ("discriminator_dominance",), ("GD102",)))
    writer.close()
    report = analyze(tmp_path)
    assert report.verdict == "healthy"
    assert [(a.mode, a.rule, a.seen_at, a.onset_step) for a in report.cleared_alerts] == [("discriminator_dominance", "GD102", 49, 30)]
    assert report.to_dict()["alerts"] == [
        {"mode": "discriminator_dominance", "rule": "GD102", "seen_at": 49, "onset_step": 30, "holds_at_end": False}
    ]
    said = "discriminator_dominance (GD102) alerted at step 49, onset 30"
    text = render_text(report, width=200)
    assert "Raised during training, not holding at the last step" in text and said in text
    assert said in render_markdown(report)


def test_a_log_cut_short_says_where_its_newest_run_stood(tmp_path):
    # The header promises a closing line; a killed writer leaves none. A run appended after a
    # finished one is judged on its own: its promise, its last step.
    _append_run(tmp_path, range(100), 1.0)
    writer = RunLogWriter(tmp_path, CONTEXT, 64)
    for step in range(30):
        writer.write_step(step, {"loss.d": 2.0})
    writer.flush()  # and then killed: no close()
    ending = read_run(tmp_path).ending
    assert ending is not None and ending.how is Ending.CUT_SHORT and ending.step == 29
    assert "ends at step 29 without the doctor closing it" in ending.message()
    writer.close()
    assert read_run(tmp_path).ending is None
    # A log written before the promise (no "closes" in its header) says nothing of the kind.
    old = tmp_path / "old" / LOG_NAME
    old.parent.mkdir()
    old.write_text(json.dumps({"type": "header", "schema": SCHEMA, "version": VERSION, "capacity": 64, "context": {}}) + "\n"
                   + json.dumps({"type": "step", "step": 0, "s": {"loss.d": 1.0}}) + "\n")
    assert read_run(old).ending is None


def test_a_run_log_in_a_folder_below_the_one_named_is_found(tmp_path):
    # Doctor(log_dir="runs/exp1/gandoctor") beside a script's checkpoints and plots: `analyze runs/exp1`
    # said "not a log gandoctor can read"; a folder of such runs stands for each of them.
    from gandoctor.readers import expand_runs

    write_run(tmp_path / "runs" / "exp1" / "gandoctor", n=30)
    (tmp_path / "runs" / "exp1" / "plots").mkdir()
    assert read_run(tmp_path / "runs" / "exp1").records == 30
    write_run(tmp_path / "runs" / "exp2" / "gandoctor", n=20)
    assert expand_runs([tmp_path / "runs"]) == [tmp_path / "runs" / "exp1" / "gandoctor", tmp_path / "runs" / "exp2" / "gandoctor"]
    with pytest.raises(LogFormatError):  # two runs below it: one of them must be named (the CLI names each)
        read_run(tmp_path / "runs")
    assert expand_runs([tmp_path / "runs" / "exp1" / "gandoctor"]) == [tmp_path / "runs" / "exp1" / "gandoctor"]
