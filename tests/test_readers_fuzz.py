"""The new readers under damage: truncations, byte flips and garbage never crash them; they
give the valid records with warnings, or a LogFormatError naming the file (as
tests/test_robustness.py does for the runlog, CSV and JSON Lines readers)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gandoctor.errors import LogFormatError
from gandoctor.readers import read_run
from gandoctor.readers import tensorboard as tb

FUZZ = settings(max_examples=60, deadline=4000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _read_must_be_clean(path: Path, format: str | None = None) -> int:
    try:
        data = read_run(path, format=format)
    except LogFormatError as exc:
        assert str(path) in str(exc) or "log format" in str(exc)
        return -1
    assert data.records > 0
    assert all(isinstance(w, str) for w in data.warnings)
    return data.records


def _record(payload: bytes) -> bytes:
    length = struct.pack("<Q", len(payload))
    c1 = tb.masked(tb.python_crc32c(length))
    c2 = tb.masked(tb.python_crc32c(payload))
    return length + struct.pack("<I", c1) + payload + struct.pack("<I", c2)


def _scalar_event(step: int, tag: bytes, value: float) -> bytes:
    """An Event as SummaryWriter.add_scalar writes it, encoded by hand (varint step, one Value)."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    value_msg = b"\x0a" + varint(len(tag)) + tag + b"\x15" + struct.pack("<f", value)
    summary = b"\x0a" + varint(len(value_msg)) + value_msg
    step_field = b"\x10" + varint(step) if step else b""
    return b"\x09" + struct.pack("<d", 1.7e9 + step) + step_field + b"\x2a" + varint(len(summary)) + summary


def _event_file(steps: int = 80) -> bytes:
    out = io.BytesIO()
    out.write(_record(b"\x09" + struct.pack("<d", 1.7e9) + b"\x1a\x0dbrain.Event:2"))
    for s in range(steps):
        out.write(_record(_scalar_event(s * 37, b"loss_D", 0.5 + s)))
        out.write(_record(_scalar_event(s * 37, b"a much longer tag name for the generator loss/G" * 3, 1.0)))
    return out.getvalue()


def test_hand_encoded_events_decode_as_the_fast_and_the_general_path_agree(tmp_path):
    path = tmp_path / "events.out.tfevents.1.x"
    path.write_bytes(_event_file())
    data = read_run(path, format="tensorboard")
    d = data.signals.get("loss.d")
    assert d.steps.tolist() == [s * 37 for s in range(80)] and d.values.tolist() == [0.5 + s for s in range(80)]
    # the long tag (over 127 bytes) takes the general decoder; it is still read
    assert len([n for n in data.signals.names() if n.startswith("user.")]) == 1
    for _offset, payload in tb.iter_records(path.open("rb"), path, []):
        step, _values = tb.decode_event(payload)
        assert step % 37 == 0


@FUZZ
@given(cut=st.integers(0, 20_000), flips=st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 255)), max_size=8))
def test_tensorboard_reader_survives_truncation_and_byte_flips(tmp_path_factory, cut, flips):
    tmp = tmp_path_factory.mktemp("tb")
    raw = bytearray(_event_file())
    raw = raw[: cut % (len(raw) + 1)]
    for pos, byte in flips:
        if raw:
            raw[pos % len(raw)] = byte
    path = tmp / "events.out.tfevents.1.x"
    path.write_bytes(bytes(raw))
    records = _read_must_be_clean(path)
    if not flips and cut % (len(_event_file()) + 1) == len(_event_file()):  # the whole file, undamaged
        assert records == 160


@FUZZ
@given(payload=st.binary(max_size=4000))
def test_new_readers_survive_binary_garbage(tmp_path_factory, payload):
    tmp = tmp_path_factory.mktemp("garbage")
    for name, fmt in (("events.out.tfevents.1.x", "tensorboard"), ("train.log", "console"), ("history.csv", "wandb"), ("history.json", "wandb")):
        path = tmp / name
        path.write_bytes(payload)
        _read_must_be_clean(path, format=fmt)
        _read_must_be_clean(path)


console_lines = st.lists(
    st.one_of(
        st.builds(lambda e, b, d, g: f"[{e}/5][{b}/100]\tLoss_D: {d}\tLoss_G: {g}\tD(x): 0.5\tD(G(z)): 0.4 / 0.3", st.integers(0, 9), st.integers(0, 200),
                  st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e6, 1e6)),
        st.builds(lambda s, d: f"step={s} loss_D={d}", st.integers(-5, 10**9), st.floats(allow_nan=True)),
        st.text(max_size=60),
        st.just(" 45%|####5     | 45/100 [00:01<00:01, 40.00it/s, loss_D=0.69]\r"),
    ),
    max_size=30,
)


@FUZZ
@given(lines=console_lines)
def test_console_reader_survives_mixed_lines(tmp_path_factory, lines):
    tmp = tmp_path_factory.mktemp("console")
    path = tmp / "train.log"
    path.write_text("\n".join(lines), encoding="utf-8", errors="replace")
    records = _read_must_be_clean(path, format="console")
    if records > 0:
        steps = read_run(path, format="console").signals.get("loss.d")
        if steps is not None:
            assert steps.steps.tolist() == sorted(steps.steps.tolist())


@FUZZ
@given(rows=st.lists(st.lists(st.one_of(st.integers(-3, 10**6), st.floats(allow_nan=True), st.text(max_size=8)), min_size=4, max_size=5), max_size=30))
def test_epoch_csv_reader_never_gives_decreasing_steps(tmp_path_factory, rows):
    import csv

    tmp = tmp_path_factory.mktemp("csv")
    path = tmp / "log.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "iter", "errD", "errG"])
        w.writerows(rows)
    if _read_must_be_clean(path) > 0:
        d = read_run(path).signals
        for name in d.names():
            steps = d.get(name).steps.tolist()
            assert steps == sorted(steps)


def test_a_huge_length_field_does_not_make_the_reader_allocate_it(tmp_path):
    path = tmp_path / "events.out.tfevents.1.x"
    good = _event_file(5)
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"\0" * 8 + good)
    data = read_run(path)
    assert data.records == 10 and any("bytes 0-" in w for w in data.warnings)
