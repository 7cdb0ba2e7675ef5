"""Sample grids saved during a run: G's outputs for the doctor's fixed latent codes (run log
``samples`` events, written by :func:`gandoctor.probes.latents.quantised_grid`) or an image grid
the user logged to TensorBoard. Readers keep them so a report can show the samples near each
finding's onset. Nothing is executed: the run log's pixels are base64 bytes checked against the
declared shape, a logged image is kept as the PNG it was."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: At most this many grids are kept per run (a long run is thinned evenly; the newest stays).
MAX_GRIDS = 256
_MAX_VALUES = 1 << 24  # a grid larger than this (16 M values) is not a sample grid
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, eq=False)
class SampleGrid:
    """A few samples of G saved at one training step.

    ``pixels``: uint8, (N, C, H, W) images, (N, H, W) single-channel images or (N, D) vectors;
    0..255 stand for ``lo``..``hi``. ``png``: an image as it was logged (already a grid), with
    ``pixels`` None. ``source``: ``"runlog"`` or the TensorBoard tag it was logged under."""

    step: int
    source: str
    pixels: np.ndarray | None = None
    lo: float = 0.0
    hi: float = 1.0
    png: bytes = b""

    @property
    def kind(self) -> str:
        """``"png"``, ``"images"`` or ``"vectors"``: how a report should draw it."""
        if self.pixels is None:
            return "png"
        return "vectors" if self.pixels.ndim == 2 else "images"

    def values(self) -> np.ndarray:
        """The samples in their own units (float64), as G produced them up to 8-bit rounding."""
        if self.pixels is None:
            raise ValueError("a logged image has no sample values, only its PNG")
        return self.lo + self.pixels.astype(np.float64) / 255.0 * (self.hi - self.lo)


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        return None
    return float(raw)


def from_runlog(step: int, raw: Any) -> SampleGrid | str:
    """The grid of a run log ``samples`` event, or why it cannot be read."""
    if not isinstance(raw, dict):
        return "'samples' is not an object"
    shape = raw.get("shape")
    if not isinstance(shape, list) or not 2 <= len(shape) <= 4 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
        return f"'samples.shape': expected 2 to 4 positive integers, got {shape!r}"
    size = math.prod(shape)
    if size > _MAX_VALUES:
        return f"'samples.shape' {shape} holds {size} values, more than a sample grid does"
    lo, hi = _number(raw.get("lo")), _number(raw.get("hi"))
    if lo is None or hi is None or hi < lo:
        return f"'samples.lo'/'samples.hi': expected finite numbers with lo <= hi, got {raw.get('lo')!r}, {raw.get('hi')!r}"
    data = raw.get("uint8")
    if not isinstance(data, str) or len(data) > 4 * (size // 3 + 1):
        return "'samples.uint8': expected base64 text of one byte per value"
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return "'samples.uint8' is not valid base64"
    if len(decoded) != size:
        return f"'samples.uint8' holds {len(decoded)} bytes, the shape {shape} needs {size}"
    pixels = np.frombuffer(decoded, dtype=np.uint8).reshape(shape)
    return SampleGrid(int(step), "runlog", pixels, lo, hi)


def from_png(step: int, tag: str, encoded: bytes) -> SampleGrid | None:
    """A logged image grid, kept as its PNG bytes; None for anything that is not a PNG."""
    if not encoded.startswith(_PNG_MAGIC):
        return None
    return SampleGrid(int(step), tag, None, png=bytes(encoded))


class GridKeeper:
    """Keeps at most ``limit`` grids spread evenly over the run, and always the newest one."""

    def __init__(self, limit: int = MAX_GRIDS) -> None:
        self.limit = max(2, limit)
        self._kept: list[SampleGrid] = []
        self._newest: SampleGrid | None = None
        self._stride = 1
        self._offered = 0

    def offer(self, grid: SampleGrid) -> None:
        if self._offered % self._stride == 0:
            self._kept.append(grid)
            if len(self._kept) > self.limit:
                self._kept = self._kept[::2]
                self._stride *= 2
        self._offered += 1
        self._newest = grid

    def clear(self) -> None:
        self._kept, self._newest, self._stride, self._offered = [], None, 1, 0

    def grids(self) -> tuple[SampleGrid, ...]:
        out = list(self._kept)
        if self._newest is not None and (not out or out[-1] is not self._newest):
            out.append(self._newest)
        return tuple(sorted(out, key=lambda g: g.step))
