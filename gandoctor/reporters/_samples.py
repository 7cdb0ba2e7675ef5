"""The sample grids of the HTML report: each grid drawn as a PNG embedded in the page (a data
URI, so the page stays one file that requests nothing), the grids nearest a finding's onset,
and a strip of grids over the run.

Images are tiled (4 x 4 for 16 samples) and enlarged by whole pixels; 2-D samples are drawn as
points and longer vectors as one row per sample, both on one scale shared by every grid of the
run, so a grid whose samples have collapsed together looks it next to an earlier one.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..readers.grids import SampleGrid

_GRID_PX = 160  # about this many pixels a side for an image grid
_STRIP = 12  # at most this many grids in the strip over the run


@dataclass(frozen=True)
class Scale:
    """The value range shared by the run's vector grids (so they compare)."""

    lo: float
    hi: float


def shared_scale(grids: Sequence[SampleGrid]) -> Scale:
    vectors = [g for g in grids if g.kind == "vectors"]
    if not vectors:
        return Scale(0.0, 1.0)
    lo, hi = min(g.lo for g in vectors), max(g.hi for g in vectors)
    return Scale(lo, hi if hi > lo else lo + 1.0)


def _tile(pixels: np.ndarray) -> np.ndarray:
    """(N, C, H, W) or (N, H, W) uint8 -> one (rows*H, cols*W[, 3]) image, 1-px gaps, enlarged."""
    x = pixels if pixels.ndim == 4 else pixels[:, None]
    x = x[:, :3] if x.shape[1] >= 3 else x[:, :1]  # RGB(A) -> RGB; other channel counts: the first
    n, c, h, w = x.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.full((c, rows * (h + 1) + 1, cols * (w + 1) + 1), 255, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        canvas[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + k * (w + 1) : 1 + k * (w + 1) + w] = x[i]
    scale = max(1, _GRID_PX // max(canvas.shape[1:]))
    canvas = canvas.repeat(scale, axis=1).repeat(scale, axis=2)
    return canvas[0] if c == 1 else canvas.transpose(1, 2, 0)


def _rows(values: np.ndarray, scale: Scale) -> np.ndarray:
    """(N, D) vectors -> an image with one row per sample, on the run's shared scale."""
    q = np.clip((values - scale.lo) / (scale.hi - scale.lo) * 255, 0, 255).astype(np.uint8)
    row_px = 8
    col_px = max(1, _GRID_PX // q.shape[1])
    return q.repeat(row_px, axis=0).repeat(col_px, axis=1)


def _png_of_array(plt: Any, image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    kwargs = {"cmap": "gray", "vmin": 0, "vmax": 255} if image.ndim == 2 else {}
    plt.imsave(buffer, image, format="png", **kwargs)
    return buffer.getvalue()


def _png_of_points(plt: Any, values: np.ndarray, scale: Scale) -> bytes:
    fig, ax = plt.subplots(figsize=(1.7, 1.7), dpi=96)
    try:
        ax.scatter(values[:, 0], values[:, 1], s=10, color="#333333")
        pad = 0.05 * (scale.hi - scale.lo)
        ax.set_xlim(scale.lo - pad, scale.hi + pad)
        ax.set_ylim(scale.lo - pad, scale.hi + pad)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        fig.tight_layout(pad=0.2)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()
    finally:
        plt.close(fig)


def grid_png(plt: Any, grid: SampleGrid, scale: Scale) -> bytes:
    """The grid drawn as PNG bytes."""
    if grid.pixels is None:
        return grid.png
    if grid.kind == "images":
        return _png_of_array(plt, _tile(grid.pixels))
    values = grid.values()
    if values.shape[1] == 2:
        return _png_of_points(plt, values, scale)
    return _png_of_array(plt, _rows(values, scale))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def nearest(grids: Sequence[SampleGrid], onset: int) -> tuple[SampleGrid | None, SampleGrid | None]:
    """The grid saved last at or before ``onset``, and the first one saved after it."""
    before = [g for g in grids if g.step <= onset]
    after = [g for g in grids if g.step > onset]
    return (before[-1] if before else None), (after[0] if after else None)


def strip(grids: Sequence[SampleGrid], count: int = _STRIP) -> list[SampleGrid]:
    """Up to ``count`` grids spread evenly over the run, first and last included."""
    if len(grids) <= count:
        return list(grids)
    idx = np.unique(np.linspace(0, len(grids) - 1, count).round().astype(int))
    return [grids[i] for i in idx]
