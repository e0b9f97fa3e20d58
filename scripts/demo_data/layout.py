"""Chip grid and spatially disjoint split (pure arithmetic, no I/O).

A scene is cut into fixed ``size`` x ``size`` chips on a grid with ``gap`` pixels between
neighbouring chips, so no two chips overlap and no object is seen by two chips across a split
border without a gap. Splits are assigned to whole regions (rows / blocks of the grid), never to
random chips, by a per-scene rule ``split_of(col_index, row_index, n_cols, n_rows)``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chip:
    scene: str
    col: int  # grid column / row index
    row: int
    col_off: int  # pixel window in the scene
    row_off: int
    size: int
    split: str

    @property
    def name(self) -> str:
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
