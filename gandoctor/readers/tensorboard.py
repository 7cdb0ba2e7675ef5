"""TensorBoard event files: one file, a run directory, or a parent directory of runs.

Read without TensorFlow or the ``tensorboard`` package: the TFRecord framing and the few
protobuf messages needed (Event, Summary, Summary.Value, TensorProto, Image) are decoded here
from the wire format; benchmarks/read_speed.py measured this against the protobuf library and
against tbparse / TensorBoard's loaders (README, "read speed").

- Scalars: ``simple_value`` and the tensor form (TF2 / ``new_style``): one-element float,
  double, half, int tensors whose plugin is ``scalars`` (or none).
- Images: PNG sample grids (``add_image``/``add_images``, and the TF2 tensor form) -> ``img.*``
  signals (images.py). Real-sample grids (tags naming ``real``) are left out.
- Framing: each record's CRC32C is checked with a C implementation (``google-crc32c`` or
  ``crc32c``) when one is installed. Without one, only the 8-byte length is checked (in Python)
  and a damaged payload is caught by the decoder; checking every payload in pure Python would
  cost more than the rest of the read (measured).
- A run directory: its own event files in name order (= creation time: restarts, several
  writers), plus those of its direct subdirectories (``add_scalars`` writes ``<tag>_<key>/``).
- Damage: a record whose CRC fails is skipped, a corrupted length makes the reader search for
  the next valid record, a cut-off last record is dropped; each with a warning naming the file
  and the byte offset.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ..context import RunContext
from ..errors import LogFormatError
from ..signals import alias_for
from . import Reader, RunData, register_reader
from ._common import MAX_STEP, PLAYER_NAMES, Collector, NameMapper, frozen, iterations_per_kimg, read_options
from ._lines import progress_callback
from .grids import GridKeeper, from_png
from .images import GridStats, ImageError, decode_png, features, infer_layout, tiles

CHUNK = 4 << 20
MAX_RECORD = 256 << 20  # a length beyond this is a damaged header, not a record
EVENT_MARK = "tfevents"

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")


# -- CRC32C --------------------------------------------------------------------------------
def _python_crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE: list[int] = []


def python_crc32c(data: bytes) -> int:
    if not _TABLE:
        _TABLE.extend(_python_crc32c_table())
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _c_crc32c() -> tuple[str, Callable[[bytes], int]] | None:
    try:
        import google_crc32c

        if getattr(google_crc32c, "implementation", "c") == "c":
            return "google-crc32c", google_crc32c.value
    except ImportError:
        pass
    try:
        import crc32c

        return "crc32c", crc32c.crc32c
    except ImportError:
        return None


_C_CRC = _c_crc32c()
CRC_IMPLEMENTATION = _C_CRC[0] if _C_CRC else "python (length only)"


def masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


#: Check the records of a chunk together with numpy (crc32c_many) rather than one call each.
VECTOR_CRC = True
_VECTOR_MIN_GROUP = 32  # records of one length; fewer are checked one by one
_VECTOR_MAX_LENGTH = 1024  # longer payloads (images) are checked one by one
_NP_TABLE: np.ndarray | None = None


def crc32c_many(buf: bytes, starts: np.ndarray, lengths: np.ndarray, crc: Callable[[bytes], int]) -> np.ndarray:
    """CRC32C of many byte ranges of ``buf`` at once: the records are grouped by length and each
    group runs the table-driven CRC one byte column at a time over all its records (numpy), so
    the cost per record is a few array operations per byte instead of one Python call each."""
    global _NP_TABLE
    if _NP_TABLE is None:
        _NP_TABLE = np.array(_python_crc32c_table(), dtype=np.uint32)
    table = _NP_TABLE
    arr = np.frombuffer(buf, dtype=np.uint8)
    out = np.empty(starts.shape[0], dtype=np.uint32)
    uniq, inverse, counts = np.unique(lengths, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    for k, length in enumerate(uniq.tolist()):
        sel = np.flatnonzero(inverse == k)
        if counts[k] < _VECTOR_MIN_GROUP or length > _VECTOR_MAX_LENGTH:
            for i in sel.tolist():
                a = int(starts[i])
                out[i] = crc(buf[a : a + length])
            continue
        columns = arr[starts[sel][None, :] + np.arange(length)[:, None]]  # (length, records)
        value = np.full(sel.shape[0], 0xFFFFFFFF, dtype=np.uint32)
        for column in columns:
            value = table[(value ^ column) & 0xFF] ^ (value >> 8)
        out[sel] = value ^ np.uint32(0xFFFFFFFF)
    return out


def _masked_many(crcs: np.ndarray) -> np.ndarray:
    return ((crcs >> 15) | (crcs << 17)) + np.uint32(0xA282EAD8)  # uint32 arithmetic wraps


def _checked_run(buf: bytes, pos: int, size: int, crc: Callable[[bytes], int]) -> tuple[np.ndarray | None, int]:
    """The hot path: walk whole records from ``pos`` by their lengths (the only per-record
    Python), then check all their CRCs at once. Returns the payload starts of the leading records
    that pass (None if none do) and where to go on: after them, or at the first that fails."""
    walk: list[int] = []
    add = walk.append
    unpack_len = _U64.unpack_from
    at = pos
    while at + 12 <= size:
        length = unpack_len(buf, at)[0]
        if length > MAX_RECORD or at + 16 + length > size:
            break
        add(at)
        at += 16 + length
    if not walk:
        return None, pos
    heads = np.asarray(walk, dtype=np.int64)
    arr = np.frombuffer(buf, dtype=np.uint8)
    lens = arr[heads[:, None] + np.arange(8)].view("<u8").reshape(-1).astype(np.int64)
    stored = arr[(heads + 12 + lens)[:, None] + np.arange(4)].view("<u4").reshape(-1)
    if VECTOR_CRC:
        good = _masked_many(crc32c_many(buf, heads + 12, lens, crc)) == stored
    else:
        good = np.array([masked(crc(buf[h + 12 : h + 12 + n])) for h, n in zip(walk, lens.tolist(), strict=True)], dtype=np.uint32) == stored
    first_bad = int(np.argmin(good)) if not good.all() else len(walk)
    return (heads[:first_bad] + 12 if first_bad else None), (walk[first_bad] if first_bad < len(walk) else at)


def _classify(buf: bytes, pos: int, full: bool, crc: Callable[[bytes], int]) -> tuple[str, int, int]:
    """The record at ``pos``, one at a time (after damage, or at a chunk's end): "short" (read
    ``need`` bytes first), "good", "bad_crc" (a valid header, a failing payload: skip to ``end``)
    or "damaged" (no valid header here: move on a byte)."""
    avail = len(buf) - pos
    need = 12
    length = 0
    if avail >= 12:
        (length,) = _U64.unpack_from(buf, pos)
        if length <= MAX_RECORD:
            need = 16 + length
        if avail < need and not _header_ok(buf, pos, crc):
            need = 12  # a damaged length: do not read ahead for it
    if avail < need:
        return "short", need, 0
    if need == 12:  # an impossible length
        return "damaged", need, 0
    end = pos + 12 + length
    if not full:
        return ("good" if _header_ok(buf, pos, crc) else "damaged"), need, end
    if (((c := crc(buf[pos + 12 : end])) >> 15 | c << 17) + 0xA282EAD8) & 0xFFFFFFFF == _U32.unpack_from(buf, end)[0]:
        return "good", need, end  # masked CRC inlined: this line runs once per record off the hot path
    return ("bad_crc" if _header_ok(buf, pos, crc) else "damaged"), need, end


def _header_ok(buf: bytes, at: int, crc: Callable[[bytes], int]) -> bool:
    return masked(crc(buf[at : at + 8])) == _U32.unpack_from(buf, at + 8)[0]


def _warn_at_end(warnings: list[str], path: Path, damaged_at: int | None, base: int, pos: int, size: int, avail: int, need: int) -> None:
    if damaged_at is not None:
        warnings.append(f"{path}: bytes {damaged_at}-{base + size}: damaged to the end of the file; skipped")
    elif avail:
        warnings.append(f"{path}: byte {base + pos}: the last record is cut off ({avail} of {need} bytes); dropped")


# -- TFRecord framing ----------------------------------------------------------------------
def iter_batches(
    fh: IO[bytes], path: Path, warnings: list[str], crc: Callable[[bytes], int] | None = None, full: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[bytes, int, np.ndarray, np.ndarray]]:
    """(buffer, its file offset, payload starts, payload lengths) of the valid records of each
    chunk read: memory is one chunk, and the records of a chunk can be decoded together.

    Every payload's CRC is checked (``full``; False checks the lengths' CRCs only): the records
    a chunk holds are first walked by their lengths and checked together (crc32c_many); from
    the first one that fails, records are taken one at a time: a payload CRC that fails with a
    valid length CRC is a damaged record (skipped), a failing length CRC a damaged length
    (search byte by byte for the next valid header). ``crc`` checks single records: a C
    CRC32C when installed, else Python.
    """
    if crc is None:
        crc = _C_CRC[1] if _C_CRC else python_crc32c
    full = True if full is None else full
    buf, pos, base, size, eof = b"", 0, 0, 0, False  # base: file offset of buf[0]
    damaged_at: int | None = None
    starts: list[int] = []

    def healed(at: int) -> None:
        nonlocal damaged_at
        if damaged_at is not None:
            warnings.append(f"{path}: bytes {damaged_at}-{base + at}: damaged; skipped to the next valid record")
            damaged_at = None

    parts: list[np.ndarray] = []  # runs of good payload starts found by the walk, in order
    while True:
        if full and damaged_at is None and pos + 12 <= size:
            good_starts, pos = _checked_run(buf, pos, size, crc)
            if good_starts is not None:
                if starts:
                    parts.append(np.asarray(starts, dtype=np.int64))
                    starts.clear()
                parts.append(good_starts)
        kind, need, end = _classify(buf, pos, full, crc)
        if kind == "bad_crc":
            healed(pos)
            warnings.append(f"{path}: byte {base + pos}: record fails its CRC check; skipped")
            pos = end + 4
            continue
        if kind == "good":
            healed(pos)
            starts.append(pos + 12)
            pos = end + 4
            continue
        if kind == "damaged":
            if damaged_at is None:
                damaged_at = base + pos
            pos += 1
            continue
        if starts or parts:
            # The lengths are read back from the headers in one numpy gather, not kept per record.
            if starts:
                parts.append(np.asarray(starts, dtype=np.int64))
                starts.clear()
            found = np.concatenate(parts)
            parts = []
            heads8 = np.frombuffer(buf, dtype=np.uint8)[(found - 12)[:, None] + np.arange(8)]
            yield buf, base, found, heads8.view("<u8").reshape(-1).astype(np.int64)
        if not eof:
            base += pos
            buf = buf[pos:]
            pos = 0
            more = fh.read(max(CHUNK, need - len(buf)))
            if more:
                buf += more
                if progress is not None:
                    progress(len(more))
            else:
                eof = True
            size = len(buf)
            continue
        # End of file with an incomplete record or header left.
        avail = len(buf) - pos
        if damaged_at is None and avail >= 12 and not _header_ok(buf, pos, crc):
            damaged_at = base + pos
        _warn_at_end(warnings, path, damaged_at, base, pos, len(buf), avail, need)
        return


def iter_records(
    fh: IO[bytes], path: Path, warnings: list[str], crc: Callable[[bytes], int] | None = None, full: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, bytes]]:
    """(byte offset of the record, payload) of each valid record."""
    for buf, base, starts, lengths in iter_batches(fh, path, warnings, crc, full, progress):
        for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
            yield base + start - 12, buf[start : start + length]


# -- protobuf wire format -----------------------------------------------------------------
class DecodeError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise DecodeError("varint too long")


def _skip(buf: bytes, pos: int, wire: int) -> int:
    if wire == 0:
        return _varint(buf, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 2:
        n, pos = _varint(buf, pos)
        return pos + n
    if wire == 5:
        return pos + 4
    raise DecodeError(f"wire type {wire}")


def _fields(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end or varint value) over a message."""
    pos = start
    end = len(buf) if end is None else end
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise DecodeError("length past the end of the message")
            yield field, wire, pos, pos + n
            pos += n
        elif wire == 0:
            value, pos = _varint(buf, pos)
            yield field, wire, pos, value
        elif wire == 1:
            yield field, wire, pos, pos + 8
            pos += 8
        elif wire == 5:
            yield field, wire, pos, pos + 4
            pos += 4
        else:
            raise DecodeError(f"wire type {wire}")
    if pos != end:
        raise DecodeError("message overruns its length")


_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_STRING, _DT_INT64, _DT_HALF = 1, 2, 3, 7, 9, 19


def _tensor(buf: bytes, start: int, end: int) -> tuple[float | None, list[bytes]]:
    """A TensorProto: its value if it holds one number, and its string values (images)."""
    dtype = 0
    dims: list[int] = []
    numbers: list[float] = []
    strings: list[bytes] = []
    content = b""
    for field, wire, a, b in _fields(buf, start, end):
        if field == 1 and wire == 0:
            dtype = b
        elif field == 2 and wire == 2:
            for f2, w2, a2, b2 in _fields(buf, a, b):
                if f2 == 2 and w2 == 2:
                    size = 1
                    for f3, w3, _a3, b3 in _fields(buf, a2, b2):
                        if f3 == 1 and w3 == 0:
                            size = b3
                    dims.append(size)
        elif field == 4 and wire == 2:
            content = buf[a:b]
        elif field == 5:  # float_val, packed or not
            numbers.extend(x[0] for x in _F32.iter_unpack(buf[a:b])) if (b - a) % 4 == 0 else None
        elif field == 6:
            numbers.extend(x[0] for x in _F64.iter_unpack(buf[a:b])) if (b - a) % 8 == 0 else None
        elif field in (7, 10, 13):  # int_val, int64_val, half_val (varints)
            if wire == 0:
                numbers.append(_signed(b) if field != 13 else _half(b))
            elif wire == 2:
                p = a
                while p < b:
                    v, p = _varint(buf, p)
                    numbers.append(_signed(v) if field != 13 else _half(v))
        elif field == 8 and wire == 2:
            strings.append(buf[a:b])
    if dtype == _DT_STRING or any(d != 1 for d in dims):
        return None, strings
    if not numbers and content:
        fmt = {_DT_FLOAT: "<f", _DT_DOUBLE: "<d", _DT_INT32: "<i", _DT_INT64: "<q", _DT_HALF: "<e"}.get(dtype)
        if fmt is not None and len(content) == struct.calcsize(fmt):
            numbers.append(float(struct.unpack(fmt, content)[0]))
    if len(numbers) == 1 and dtype in (_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_INT64, _DT_HALF, 0):
        return float(numbers[0]), strings
    return None, strings


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _half(bits: int) -> float:
    return float(struct.unpack("<e", struct.pack("<H", bits & 0xFFFF))[0])


def _plugin(buf: bytes, start: int, end: int) -> str:
    for field, wire, a, b in _fields(buf, start, end):
        if field == 1 and wire == 2:  # SummaryMetadata.plugin_data
            for f2, w2, a2, b2 in _fields(buf, a, b):
                if f2 == 1 and w2 == 2:
                    return buf[a2:b2].decode("utf-8", "replace")
    return ""


# Value kinds yielded by decode_event
SCALAR, IMAGE, START = 0, 1, 2


def decode_event(buf: bytes) -> tuple[int, list[tuple[int, str, object]]]:
    """(step, [(kind, tag, value)]) of one Event record; kinds: SCALAR (float), IMAGE (list of
    encoded images), START (a SessionLog START: the writer (re)started)."""
    step = 0
    out: list[tuple[int, str, object]] = []
    for field, wire, a, b in _fields(buf):
        if field == 2 and wire == 0:
            step = _signed(b)
        elif field == 5 and wire == 2:
            for f1, w1, va, vb in _fields(buf, a, b):
                if f1 != 1 or w1 != 2:
                    continue
                tag = ""
                simple: float | None = None
                image: bytes | None = None
                tensor: tuple[int, int] | None = None
                plugin = ""
                for f2, w2, x, y in _fields(buf, va, vb):
                    if f2 == 1 and w2 == 2:
                        tag = buf[x:y].decode("utf-8", "replace")
                    elif f2 == 2 and w2 == 5:
                        simple = _F32.unpack_from(buf, x)[0]
                    elif f2 == 4 and w2 == 2:
                        for f3, w3, ia, ib in _fields(buf, x, y):
                            if f3 == 4 and w3 == 2:
                                image = buf[ia:ib]
                    elif f2 == 8 and w2 == 2:
                        tensor = (x, y)
                    elif f2 == 9 and w2 == 2:
                        plugin = _plugin(buf, x, y)
                if simple is not None:
                    out.append((SCALAR, tag, simple))
                elif image is not None:
                    out.append((IMAGE, tag, [image]))
                elif tensor is not None:
                    value, strings = _tensor(buf, tensor[0], tensor[1])
                    if plugin == "images" and len(strings) > 2:
                        out.append((IMAGE, tag, strings[2:]))  # [width, height, png, ...]
                    elif value is not None and plugin in ("scalars", ""):
                        out.append((SCALAR, tag, value))
        elif field == 7 and wire == 2:
            for f1, w1, _a, status in _fields(buf, a, b):
                if f1 == 1 and w1 == 0 and status == 1:
                    out.append((START, "", None))
    return step, out


# -- runs ----------------------------------------------------------------------------------
def _event_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if EVENT_MARK in p.name and p.is_file())
    except OSError:
        return []


def find_runs(path: Path, max_dirs: int = 10_000) -> list[Path]:
    """Directories under ``path`` that are TensorBoard runs: they hold event files and their
    parent does not (a subdirectory of a run is that run's ``add_scalars`` part); or a folder of
    one writer per metric (:func:`_metric_folders`), which is one run."""
    runs: list[Path] = []
    for seen, (root, dirs, files) in enumerate(os.walk(path), start=1):
        dirs.sort()
        if seen > max_dirs:
            break
        if any(EVENT_MARK in f for f in files):
            runs.append(Path(root))
            dirs[:] = []  # its subdirectories belong to it
    parents: dict[Path, list[Path]] = {}
    for run in runs:
        parents.setdefault(run.parent, []).append(run)
    merged = {parent for parent, children in parents.items() if len(children) > 1 and _metric_folders(children)}
    out: list[Path] = []
    for run in runs:
        if run.parent not in merged:
            out.append(run)
        elif run.parent not in out:
            out.append(run.parent)
    return out


_HEAD_BYTES = 1 << 16  # enough of an event file for the tags of its first records


def _head_scalar_tags(file: Path) -> set[str]:
    """The scalar tags among the records in the first ``_HEAD_BYTES`` of an event file."""
    try:
        with file.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError:
        return set()
    tags: set[str] = set()
    for _offset, payload in iter_records(io.BytesIO(head), file, [], full=False):
        try:
            tags.update(tag for kind, tag, _ in decode_event(payload)[1] if kind == SCALAR)
        except (DecodeError, IndexError, struct.error, UnicodeError):
            continue
    return tags


def _metric_folders(children: list[Path]) -> bool:
    """Sibling runs that are one run's metrics, a writer each (torch_mimicry's ``data/errD/``,
    ``data/D(x)/``...: each writes one scalar under a group tag, ``loss`` or ``prob``, that
    several share): each holds one scalar tag or none (images), some tag is shared, and some folder
    is named as a metric the alias table knows or as a player's part of a loss group. Runs of separate experiments hold several tags
    each, or are named as no metric."""
    tags = [set().union(*map(_head_scalar_tags, _event_files(child))) for child in children]
    scalar = [t for t in tags if t]
    if len(scalar) < 2 or any(len(t) > 1 for t in scalar):
        return False
    named = [next(iter(t)) for t in scalar]
    mapper = NameMapper()
    known = any(not (mapper(child.name) or "user.").startswith("user.") for child in children)
    return len(set(named)) < len(named) and (known or bool(loss_parts({child.name for child in children})))


def _is_metric_folder_run(run: Path) -> bool:
    """A run found as a folder of per-metric writers (it holds no event file itself)."""
    return not _event_files(run)


def run_files(run: Path) -> list[tuple[Path, str]]:
    """(event file, prefix for its tags) of one run: its own files, then its subdirectories'."""
    out = [(p, "") for p in _event_files(run)]
    try:
        subdirs = sorted(d for d in run.iterdir() if d.is_dir())
    except OSError:
        subdirs = []
    for sub in subdirs:
        out.extend((p, sub.name) for p in _event_files(sub))
    return out


def _accepts(path: Path) -> bool:
    if path.is_file():
        return EVENT_MARK in path.name
    return path.is_dir() and bool(find_runs(path, max_dirs=200))


#: The key of an add_scalars group of losses that names D's or G's (``add_scalars('losses/g-and-d',
#: {'g': ..., 'd': ...})`` writes folders ``losses_g-and-d_g/`` and ``losses_g-and-d_d/``).
_PLAYER_KEYS = {key: signal for signal, keys in PLAYER_NAMES.items() for key in keys}


def loss_parts(prefixes: set[str]) -> dict[str, str]:
    """signal -> folder of the add_scalars parts whose group is a loss and whose key names a player
    only (gordicaleksa/pytorch-GANs' ``losses/g-and-d`` with keys ``g`` and ``d``), where the alias
    table maps neither the folder's name nor another part to that signal."""
    found: dict[str, list[str]] = {}
    for prefix in prefixes:
        group, _, key = prefix.rpartition("_")
        if "loss" in group.lower() and key.lower() in _PLAYER_KEYS and alias_for(prefix) is None:
            found.setdefault(_PLAYER_KEYS[key.lower()], []).append(prefix)
    taken = {alias_for(prefix) for prefix in prefixes}
    return {signal: names[0] for signal, names in found.items() if len(names) == 1 and signal not in taken}


def _tag_name(prefix: str, tag: str) -> str:
    if not prefix:
        return tag
    # add_scalars('loss', {'D': ..}) writes tag 'loss' into folder 'loss_D'.
    if prefix.startswith(tag.replace("/", "_") + "_"):
        return prefix
    return f"{prefix}/{tag}"


def _is_real_images(tag: str) -> bool:
    low = tag.lower()
    return any(word in low for word in ("real", "input", "target", "data", "ground"))


def decode_simple_scalars(arr: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised decoder for the commonest record, one ``simple_value`` as ``add_scalar``
    writes it: wall_time (field 1), step (field 2, absent when 0, up to 4 varint bytes), one
    Summary.Value of tag (field 1) and simple_value (field 2), checked byte by byte.

    ``arr``: the chunk as uint8; ``starts``/``lengths``: the payloads. Returns (mask of the
    records of that shape, their steps, values, tag starts, tag lengths); every other record
    takes the general decoder (decode_event).
    """
    n = lengths
    ok = (n >= 20) & (n < 0x80 + 16)
    p = np.where(ok, starts, 0)
    ok &= arr[p] == 0x09
    has_step = arr[p + 9] == 0x10
    b = [arr[p + 10 + k].astype(np.int64) for k in range(4)]
    size = np.where(b[0] < 0x80, 1, np.where(b[1] < 0x80, 2, np.where(b[2] < 0x80, 3, np.where(b[3] < 0x80, 4, 0))))
    ok &= ~has_step | (size > 0)
    value = b[0] & 0x7F
    steps = np.zeros_like(value)
    for k in range(4):
        if k:
            value = value | (b[k] & 0x7F) << (7 * k)
        steps = np.where(size == k + 1, value, steps)
    steps = np.where(has_step, steps, 0)
    pos = p + 9 + np.where(has_step, 1 + size, 0)
    end = p + n
    ok &= end - pos >= 11
    q = np.where(ok, pos, p)
    l1 = arr[q + 1].astype(np.int64)
    ok &= (
        (arr[q] == 0x2A) & (arr[q + 2] == 0x0A) & (arr[q + 4] == 0x0A) & (arr[np.where(ok, end - 5, p)] == 0x15)
        & (l1 < 0x80) & (l1 == end - q - 2) & (arr[q + 3].astype(np.int64) == l1 - 2) & (arr[q + 5].astype(np.int64) == l1 - 9)
    )
    at = (end - 4)[ok]
    values = arr[at[:, None] + np.arange(4)].copy().view("<f4").reshape(-1).astype(np.float64)
    return ok, steps[ok], values, (q + 6)[ok], (l1 - 9)[ok]


class _RunReader:
    """Reads the event files of one run into a Collector (see read)."""

    def __init__(self, path: Path, capacity: int) -> None:
        self.path = path
        self.out = Collector(path, capacity, exclusive_names=True, bare_player_losses=True)
        self.options = read_options.get()
        self.last: dict[str, float] = {}  # per signal: the last step kept (to count re-logged steps)
        self.grids: dict[str, GridStats] = {}
        self.kept = GridKeeper()  # the chosen tag's images, for a report to show
        self.image_tag = self.options.mapping.get("img.diversity")
        self.skipped_images: dict[str, str] = {}
        self.undecodable = 0
        self.dropped = 0
        self.per_step = 1.0  # steps per unit of the log's step (kimg -> G iterations: StyleGAN2-ADA)
        self.first_drop: tuple[int, int] | None = None
        # A folder of one writer per metric: each subfolder's name is its scalar's name (its tag a group's).
        self.metric_folders = False

    def _name(self, prefix: str, tag: str) -> str:
        return prefix if self.metric_folders and prefix else _tag_name(prefix, tag)

    def read_file(self, file: Path, prefix: str, progress: Callable[[int], None]) -> None:
        # A later file must go strictly past the steps already read (a resumed run re-logs its
        # last step); within a file the same step may repeat. Half a step says both cheaply.
        for key in self.last:
            self.last[key] = int(self.last[key]) + 0.5
        self.dropped, self.first_drop = 0, None
        tags: dict[bytes, str | None] = {}
        try:
            fh = file.open("rb")
        except OSError as exc:
            self.out.warnings.append(f"{file}: cannot be opened: {exc.strerror or exc}; skipped")
            return
        with fh:
            for buf, base, starts, lengths in iter_batches(fh, file, self.out.warnings, progress=progress):
                self._batch(buf, base, starts, lengths, prefix, tags, file)
        if self.dropped:
            assert self.first_drop is not None
            self.out.warnings.append(
                f"{file}: steps restart at {self.first_drop[0]} after the run had reached {self.first_drop[1]} (a resumed run?); "
                f"{self.dropped} re-logged values up to step {self.first_drop[1]} dropped, the first ones logged kept"
            )

    def _batch(self, buf: bytes, base: int, starts: np.ndarray, lengths: np.ndarray, prefix: str, tags: dict[bytes, str | None], file: Path) -> None:
        arr = np.frombuffer(buf, dtype=np.uint8)
        ok, steps, values, tag_at, tag_len = decode_simple_scalars(arr, starts, lengths)
        if steps.shape[0]:
            # Group the records by tag: rows of tag bytes, one unique() per tag length; the
            # groups in order of first appearance, so the first name for a signal wins.
            groups: list[tuple[int, bytes, np.ndarray]] = []
            for length in np.unique(tag_len).tolist():
                sel = np.flatnonzero(tag_len == length)
                rows = arr[tag_at[sel][:, None] + np.arange(length)]
                uniq, first, inverse = np.unique(rows.view(f"V{length}").reshape(-1), return_index=True, return_inverse=True)
                inverse = inverse.reshape(-1)
                for k in range(uniq.shape[0]):
                    groups.append((int(sel[first[k]]), uniq[k].tobytes(), sel[inverse == k]))
            for _first, raw_tag, idx in sorted(groups, key=lambda g: g[0]):
                signal = tags.get(raw_tag, "")
                if signal == "":
                    signal = tags[raw_tag] = self.out.names(self._name(prefix, raw_tag.decode("utf-8", "replace")))
                if signal is not None:
                    self._extend(signal, steps[idx], values[idx])
        if not ok.all():
            for start, length in zip(starts[~ok].tolist(), lengths[~ok].tolist(), strict=True):
                self._event(base + start - 12, buf[start : start + length], prefix, file)

    def _extend(self, signal: str, steps: np.ndarray, values: np.ndarray) -> None:
        if self.per_step != 1.0:
            steps = np.round(steps * self.per_step).astype(steps.dtype)
        last = self.last.get(signal, -1.0)
        before = np.maximum.accumulate(np.concatenate(([last], steps[:-1].astype(np.float64))))
        keep = steps >= before
        if not keep.all():
            first = int(np.flatnonzero(~keep)[0])
            self.dropped += int((~keep).sum())
            self.first_drop = self.first_drop or (int(steps[first]), int(before[first]))
            steps, values = steps[keep], values[keep]
        if steps.shape[0]:
            self.out.signals.extend(signal, steps, values)
            self.out.records += int(steps.shape[0])
            self.last[signal] = float(steps[-1])

    def _event(self, offset: int, payload: bytes, prefix: str, file: Path) -> None:
        out = self.out
        try:
            step, values = decode_event(payload)
        except (DecodeError, IndexError, struct.error, UnicodeError) as exc:
            self.undecodable += 1
            out.problem(f"byte {offset} of {file.name}: not a valid Event record ({exc}); skipped")
            return
        if not 0 <= step < MAX_STEP:
            return
        step = int(round(step * self.per_step)) if self.per_step != 1.0 else step
        record: dict[str, float] = {}
        for kind, tag, value in values:
            name = self._name(prefix, tag) if kind == SCALAR else _tag_name(prefix, tag)
            if kind == SCALAR:
                signal = out.names(name)
                if signal is None:
                    continue
                if step < self.last.get(signal, -1):
                    self.dropped += 1
                    self.first_drop = self.first_drop or (step, int(self.last[signal]))
                    continue
                self.last[signal] = step
                record[signal] = float(value)  # type: ignore[arg-type]
            elif kind == IMAGE:
                self._image(step, name, value, record)  # type: ignore[arg-type]
        out.record(step, record)

    def _image(self, step: int, name: str, encoded: list[bytes], record: dict[str, float]) -> None:
        if self.image_tag is None and not _is_real_images(name):
            self.image_tag = name
        if name != self.image_tag:
            why = "its name says real data, not samples" if _is_real_images(name) and self.image_tag is None else (
                f"the grid statistics are taken from '{self.image_tag}' (--map img.diversity=TAG to choose)"
            )
            self.skipped_images.setdefault(name, why)
            return
        self.out.names.mapped.setdefault("img.diversity", name)
        stats = _grid_signals(encoded, self.grids.setdefault(name, GridStats()), self.options.grid_tile)
        if isinstance(stats, str):
            self.out.problem(f"step {step}: image '{name}': {stats}")
        elif step >= self.last.get("img.diversity", -1):
            self.last["img.diversity"] = step
            record.update(stats)
            grid = from_png(step, name, encoded[0]) if len(encoded) == 1 else None
            if grid is not None:
                self.kept.offer(grid)


def read(path: Path, capacity: int = 4096) -> RunData:
    if path.is_dir():
        runs = find_runs(path)
        if not runs:
            raise LogFormatError(f"{path}: no TensorBoard event files (events.out.tfevents.*) in this directory")
        if len(runs) > 1:
            names = ", ".join(str(r) for r in runs[:10]) + (" ..." if len(runs) > 10 else "")
            raise LogFormatError(f"{path}: holds {len(runs)} TensorBoard runs ({names}); name one, or pass them all (gandoctor analyze {path}/*)")
        files = run_files(runs[0])
    else:
        files = [(path, "")]
    reader = _RunReader(path, capacity)
    # StyleGAN2-ADA / StyleGAN3 write kimg as the step: G iterations where their options say the batch.
    reader.per_step = iterations_per_kimg(files[0][0] if files else path, reader.out.warnings)
    reader.metric_folders = path.is_dir() and _is_metric_folder_run(runs[0])
    named = loss_parts({prefix for _, prefix in files if prefix})
    if named:
        reader.out.read_names_as(named)
    report = progress_callback.get()
    total = sum(_size(p) for p, _ in files)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if report is not None:
            report(done, total)

    for file, prefix in files:
        reader.read_file(file, prefix, advance)
    out = reader.out
    for name, why in reader.skipped_images.items():
        out.warnings.append(f"{path}: image tag '{name}' not used for sample statistics: {why}")
    if not out.records and reader.undecodable == 0 and total == 0:
        raise LogFormatError(f"{path}: empty event file (nothing was logged)")
    signals, warnings, mapped = out.finish()
    if reader.per_step != 1.0 and any(view.steps.size > 1 and (np.diff(view.steps) == 0).any() for view in signals.views()):
        warnings.append(
            f"{path}: ticks shorter than 1 kimg share a step (the log writes kimg as whole numbers): "
            "read the stats.jsonl beside it, whose kimg are exact"
        )
    return RunData(signals, RunContext(), str(path), "tensorboard", out.records, tuple(warnings), frozen(mapped), reader.kept.grids())


def _grid_signals(images: list[bytes], stats: GridStats, tile: tuple[int, int] | None) -> dict[str, float] | str:
    try:
        img = decode_png(images[0])
    except ImageError as exc:
        return str(exc)
    if len(images) > 1:  # TF2 form: several images, each a sample
        try:
            samples = [img] + [decode_png(b) for b in images[1:]]
        except ImageError as exc:
            return str(exc)
        if len({s.shape for s in samples}) != 1:
            return "samples of different sizes"
        return stats.measure(features(samples))
    layout = infer_layout(img, tile)
    if layout is None:
        return f"a {img.shape[0]}x{img.shape[1]} image that does not split into a grid of samples (give the tile size: --grid-tile HxW)"
    parts = tiles(img, layout)
    if len(parts) < 2:
        return "fewer than two samples in the grid"
    return stats.measure(features(parts))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


register_reader(Reader("tensorboard", _accepts, read, "TensorBoard event files (events.out.tfevents.*), a run directory or a directory of runs"))
