"""Sample grids logged as images (``add_image(make_grid(fake))``, ``add_images(fake)``): split
into tiles, one tile a sample, and summarised as ``img.*`` signals (see READER_SIGNALS).

Layouts understood:
- torchvision ``make_grid`` (padding 2 by default): tiles of h x w at (2 + r(h+2), 2 + c(w+2)),
  the padding lines one uniform colour. The columns and rows are found from those lines.
- ``SummaryWriter.add_images`` (no padding, 8 columns): tiles assumed square.
- any layout, given ``--grid-tile HxW``: padding 2, 0 or 1 tried in that order.
Tiles entirely of the padding colour (the unfilled end of the last row) are dropped.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

from ..samplestats import pairwise_distances

#: Two tiles closer than this RMS pixel difference (pixels in [0, 1]) are near-duplicates:
#: 8-bit rounding alone gives about 0.002; two different digits or faces give 0.2 or more.
DUPLICATE_RMS = 0.03
#: Tiles are averaged down to at most this many pixels a side before comparing (cost bound).
FEATURE_SIDE = 32
MIN_TILE = 4


class ImageError(ValueError):
    """An image summary that cannot be decoded or split (reported as a warning by the reader)."""


def decode_png(data: bytes) -> np.ndarray:
    """(H, W, C) uint8 from an encoded image (PNG as SummaryWriter writes it)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with torchvision
        raise ImageError("Pillow is not installed (pip install 'gandoctor[tensorboard]')") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            arr = np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a damaged image
        raise ImageError(f"not a decodable image ({exc})") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def _uniform_lines(img: np.ndarray, axis: int, colour: np.ndarray) -> np.ndarray:
    """For each column (axis=1) or row (axis=0): is every pixel of it the padding colour?"""
    same = (img == colour).all(axis=2)
    return same.all(axis=0) if axis == 1 else same.all(axis=1)


def _split_counts(length: int, uniform: np.ndarray, pad: int) -> int | None:
    """Largest number of tiles along one axis whose padding lines are all uniform."""
    best = None
    for count in range(1, (length - pad) // (MIN_TILE + pad) + 1):
        if (length - pad) % count:
            continue
        cell = (length - pad) // count
        lines = [k * cell + j for k in range(count + 1) for j in range(pad) if k * cell + j < length]
        if all(uniform[i] for i in lines):
            best = count
    return best


@dataclass(frozen=True)
class Layout:
    rows: int
    cols: int
    tile_h: int
    tile_w: int
    pad: int


def infer_layout(img: np.ndarray, tile: tuple[int, int] | None = None) -> Layout | None:
    """The grid layout of ``img`` (H, W, C), or None when it does not look like a grid."""
    height, width = img.shape[:2]
    if tile is not None:
        h, w = tile
        for pad in (2, 0, 1):
            if (width - pad) % (w + pad) == 0 and (height - pad) % (h + pad) == 0:
                return Layout((height - pad) // (h + pad), (width - pad) // (w + pad), h, w, pad)
        return None
    colour = img[0, 0]
    cols_uniform = _uniform_lines(img, 1, colour)
    rows_uniform = _uniform_lines(img, 0, colour)
    if cols_uniform[:2].all() and rows_uniform[:2].all():
        cols = _split_counts(width, cols_uniform, 2)
        rows = _split_counts(height, rows_uniform, 2)
        if cols and rows and cols * rows > 1:
            return Layout(rows, cols, (height - 2) // rows - 2, (width - 2) // cols - 2, 2)
    # add_images: no padding, square tiles, 8 a row (fewer samples: one row of them).
    one_row = Layout(1, width // height, height, height, 0) if width % height == 0 and 1 < width // height <= 8 else None
    side = width // 8
    eight = Layout(height // side, 8, side, side, 0) if width % 8 == 0 and side >= MIN_TILE and height % side == 0 and height > side else None
    if one_row is not None and eight is not None:
        # Same size either way (160x40: four 40x40 or sixteen 20x20): the finer layout's extra
        # boundaries must be edges in the picture; with no evidence either way, 8 a row.
        return one_row if _edges(img, height, side) else eight
    return one_row or eight


def _edges(img: np.ndarray, coarse: int, fine: int) -> bool:
    """Do the columns at multiples of ``coarse`` show edges while those only at multiples of
    ``fine`` do not (i.e. the coarse tiling is the real one)?"""
    diff = np.abs(np.diff(img.astype(np.float32), axis=1)).mean(axis=(0, 2))  # diff[p - 1]: between p - 1 and p
    typical = float(np.median(diff)) + 1e-6
    real = [p - 1 for p in range(coarse, img.shape[1], coarse)]
    extra = [p - 1 for p in range(fine, img.shape[1], fine) if p % coarse]
    return bool(real) and bool(extra) and float(diff[real].mean()) > 1.5 * typical and float(diff[extra].mean()) < 1.2 * typical


def tiles(img: np.ndarray, layout: Layout) -> list[np.ndarray]:
    """The non-empty tiles of the grid, row by row."""
    colour = img[0, 0]
    out = []
    for r in range(layout.rows):
        for c in range(layout.cols):
            y = layout.pad + r * (layout.tile_h + layout.pad)
            x = layout.pad + c * (layout.tile_w + layout.pad)
            t = img[y : y + layout.tile_h, x : x + layout.tile_w]
            if layout.pad and (t == colour).all():
                continue  # make_grid's unfilled cells at the end of the last row
            out.append(t)
    return out


def features(tile_list: list[np.ndarray]) -> np.ndarray:
    """(n, d) float64 in [0, 1]: each tile area-averaged to at most FEATURE_SIDE a side."""
    stack = np.stack(tile_list).astype(np.float64) / 255.0
    n, h, w, c = stack.shape
    f = max(1, math.ceil(max(h, w) / FEATURE_SIDE))
    h2, w2 = (h // f) * f, (w // f) * f
    stack = stack[:, :h2, :w2].reshape(n, h2 // f, f, w2 // f, f, c).mean(axis=(2, 4))
    return stack.reshape(n, -1)


class GridStats:
    """Per image tag: statistics of each logged grid, and its change from the previous one."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None

    def measure(self, feats: np.ndarray) -> dict[str, float]:
        n, d = feats.shape
        dist = pairwise_distances(feats, feats) / math.sqrt(d)  # RMS pixel differences
        np.fill_diagonal(dist, np.inf)
        nearest = dist.min(axis=1)
        np.fill_diagonal(dist, 0.0)
        out = {
            "img.diversity": float(dist.sum() / (n * (n - 1))),
            "img.dup_rate": float((nearest < DUPLICATE_RMS).mean()),
            "img.tiles": float(n),
        }
        if self._previous is not None and self._previous.shape == feats.shape:
            out["img.change"] = float(np.sqrt(((feats - self._previous) ** 2).mean(axis=1)).mean())
        self._previous = feats
        return out
