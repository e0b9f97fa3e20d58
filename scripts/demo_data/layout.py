"""Chip grid and spatially disjoint split (pure arithmetic, no I/O).

A scene is cut into fixed ``size`` x ``size`` chips on a grid with ``gap`` pixels between
neighbouring chips, so no two chips overlap and no object is seen by two chips across a split
border without a gap. Splits are assigned to whole regions (rows / blocks of the grid), never to
random chips, by a per-scene rule ``split_of(col_index, row_index, n_cols, n_rows)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chip:
    scene: str
    col: int  # grid column / row index
    row: int
    col_off: int  # pixel window in the scene
    row_off: int
    size: int
    split: str
    op: int = 0  # dihedral op applied to the window (0: none; see :func:`dihedral`)
    window: bool = False  # a training window cut off the grid (see :func:`train_windows`)

    @property
    def name(self) -> str:
        if self.window:
            return f"{self.scene}_w{self.col_off}_{self.row_off}_d{self.op}.tif"
        return f"{self.scene}_r{self.row}c{self.col}.tif"

    def overlaps(self, other: "Chip") -> bool:
        if self.scene != other.scene:
            return False
        return (self.col_off < other.col_off + other.size and other.col_off < self.col_off + self.size
                and self.row_off < other.row_off + other.size and other.row_off < self.row_off + self.size)


def grid(scene: str, width: int, height: int, size: int, gap: int, split_of) -> list[Chip]:
    """Non-overlapping chips covering the scene from its top-left corner, centred by the leftover."""
    if size <= 0 or gap < 0:
        raise ValueError("size must be > 0 and gap >= 0")
    step = size + gap
    n_cols = (width + gap) // step
    n_rows = (height + gap) // step
    x0 = (width - (n_cols * step - gap)) // 2
    y0 = (height - (n_rows * step - gap)) // 2
    return [Chip(scene, c, r, x0 + c * step, y0 + r * step, size, split_of(c, r, n_cols, n_rows))
            for r in range(n_rows) for c in range(n_cols)]


def split_by_rows(val_rows, test_rows):
    """Split rule: grid rows in ``val_rows`` / ``test_rows`` are held out (whole bands of the scene)."""
    def f(c, r, n_cols, n_rows):
        r_from_end = r - n_rows  # negative indices count from the south
        if r in test_rows or r_from_end in test_rows:
            return "test"
        if r in val_rows or r_from_end in val_rows:
            return "val"
        return "train"
    return f


def split_by_cells(cells: dict):
    """Split rule: explicit (col, row) -> split, train elsewhere."""
    return lambda c, r, n_cols, n_rows: cells.get((c, r), "train")


def dihedral(a: np.ndarray, op: int) -> np.ndarray:
    """One of the 8 symmetries of the square on the last two axes: ``op % 4`` quarter turns
    (counter-clockwise), then a left-right mirror when ``op >= 4``. Op 0 is the identity."""
    a = np.rot90(a, op % 4, axes=(-2, -1))
    if op >= 4:
        a = a[..., ::-1]
    return np.ascontiguousarray(a)


def split_map(chips: list[Chip], width: int, height: int, gap: int) -> np.ndarray:
    """Per-pixel split code of the grid's regions (0 none, 1 train, 2 val, 3 test): every chip's
    extent grown by ``gap // 2`` on each side, so neighbouring chips' regions meet in the gap."""
    codes = {"train": 1, "val": 2, "test": 3}
    m = np.zeros((height, width), np.uint8)
    g = gap // 2
    for c in chips:
        m[max(c.row_off - g, 0):c.row_off + c.size + g, max(c.col_off - g, 0):c.col_off + c.size + g] = codes[c.split]
    return m


def train_windows(chips: list[Chip], valid: np.ndarray, size: int, gap: int, n: int, rng: np.random.Generator,
                  stride: int = 8, ops: int = 8) -> list[Chip]:
    """``n`` random ``size`` windows (top-left on a ``stride`` lattice, without repeats) lying wholly
    in the *train* regions of the grid and in valid pixels, each with a random dihedral op among the
    first ``ops``. They may overlap one another and straddle train chips, never a val/test region:
    held-out areas stay held out, while training sees its objects in many frames and positions."""
    h, w = valid.shape
    ok = (split_map(chips, w, h, gap) == 1) & valid
    bad = np.pad(np.cumsum(np.cumsum(~ok, 0, dtype=np.int64), 1), ((1, 0), (1, 0)))  # integral image of non-train
    ys, xs = np.arange(0, h - size + 1, stride), np.arange(0, w - size + 1, stride)
    y, x = np.meshgrid(ys, xs, indexing="ij")
    count = bad[y + size, x + size] - bad[y, x + size] - bad[y + size, x] + bad[y, x]
    cand = np.stack([y[count == 0], x[count == 0]], 1)
    if len(cand) == 0 or n <= 0:
        return []
    pick = rng.choice(len(cand), size=min(n, len(cand)), replace=False)
    scene = chips[0].scene
    return [Chip(scene, -1, -1, int(cand[i, 1]), int(cand[i, 0]), size, "train", op=int(rng.integers(ops)), window=True)
            for i in sorted(pick)]
