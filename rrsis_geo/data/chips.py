"""Pure chip and block arithmetic for custom GeoTIFF + vector data (no I/O).

Pixel space of one raster is cut into square *blocks* of ``block`` pixels starting at (0, 0).
Each block belongs to one split; a chip is always placed inside one block (it may hang over the
raster edge, where it is read as nodata), so chips of different splits never overlap and the
validation split is spatially disjoint from training: neighbouring chips cannot leak.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ChipWindow:
    """A chip's pixel window in its raster (may extend past the raster edge)."""

    col_off: int
    row_off: int
    size: int

    @property
    def width(self) -> int:
        return self.size

    @property
    def height(self) -> int:
        return self.size

    @property
    def bounds_px(self) -> tuple[int, int, int, int]:
        return self.col_off, self.row_off, self.col_off + self.size, self.row_off + self.size


@dataclass(frozen=True)
class RasterWindow:
    """A whole raster used as the frame (whole-raster mode): no chip is cut, the frame is the file."""

    width: int
    height: int
    col_off: int = 0
    row_off: int = 0

    @property
    def bounds_px(self) -> tuple[int, int, int, int]:
        return self.col_off, self.row_off, self.col_off + self.width, self.row_off + self.height


def centre_chip(col: float, row: float, chip: int) -> ChipWindow:
    """A ``chip``-pixel window centred on (col, row), not clamped to any block (used when the
    splits come from a column, so blocks play no part)."""
    if chip <= 0:
        raise ValueError(f"need chip > 0 (got {chip})")
    return ChipWindow(int(round(col - chip / 2)), int(round(row - chip / 2)), chip)


def block_of(col: float, row: float, block: int) -> tuple[int, int]:
    """(block column, block row) that holds pixel coordinate (col, row)."""
    return int(math.floor(col / block)), int(math.floor(row / block))


def place_chip(col: float, row: float, chip: int, block: int) -> ChipWindow:
    """A ``chip``-pixel window centred on (col, row) as far as its block allows.

    The window is shifted (never resized) to lie entirely inside the block that holds the
    centre, which requires ``block >= chip``.
    """
    if chip <= 0 or block < chip:
        raise ValueError(f"need 0 < chip ({chip}) <= block ({block})")
    bx, by = block_of(col, row, block)
    x0 = int(round(col - chip / 2))
    y0 = int(round(row - chip / 2))
    x0 = min(max(x0, bx * block), (bx + 1) * block - chip)
    y0 = min(max(y0, by * block), (by + 1) * block - chip)
    return ChipWindow(x0, y0, chip)


def block_score(key: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) for a block (same on every machine and run)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_blocks(keys, val_fraction: float, test_fraction: float = 0.0, seed: int = 0) -> dict[str, str]:
    """Split block keys into train/val/test by whole blocks.

    Blocks are ordered by :func:`block_score`; the first ``round(val_fraction * n)`` go to val
    (at least one when ``val_fraction > 0`` and there are two or more blocks), the next
    ``round(test_fraction * n)`` to test, the rest to train. Training always keeps a block.
    """
    keys = sorted(set(keys))
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum below 1")
    n = len(keys)
    order = sorted(keys, key=lambda k: block_score(k, seed))
    n_val = round(val_fraction * n)
    n_test = round(test_fraction * n)
    if val_fraction > 0 and n >= 2:
        n_val = max(n_val, 1)
    if test_fraction > 0 and n >= 3:
        n_test = max(n_test, 1)
    while n_val + n_test >= n and n_val + n_test > 0:
        if n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    out = {}
    for i, k in enumerate(order):
        out[k] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    return out
