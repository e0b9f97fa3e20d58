"""The tile plan: pure arithmetic, no I/O.

A scene of ``width x height`` pixels is covered by square tiles of side ``tile`` that overlap
their neighbours by at least ``overlap`` pixels. Every tile is full size and the last tile of a
row or column is flush with the scene edge (so the last partial row/column is covered, never
dropped, and never fed to the model as a sliver). A scene smaller than one tile gets one tile
that extends past the scene; the reader pads it and the blender ignores the padding.

Each tile also records how much it overlaps the tile before and after it along each axis: the
blending window tapers only inside those overlaps and never at the scene border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rrsis_geo.errors import InputError


@dataclass(frozen=True)
class Tile:
    """One tile of the plan, in pixel coordinates of the scene.

    ``row``/``col`` are the tile's grid position; ``y``/``x`` its top-left pixel; ``size`` its
    side. ``overlap_top`` etc. are the overlaps with the neighbouring tiles (0 at the border).
    """

    row: int
    col: int
    y: int
    x: int
    size: int
    overlap_top: int
    overlap_bottom: int
    overlap_left: int
    overlap_right: int

    @property
    def y_end(self) -> int:
        return self.y + self.size

    @property
    def x_end(self) -> int:
        return self.x + self.size


@dataclass(frozen=True)
class AxisPlan:
    """Tile starts along one axis with the overlap each tile has before and after it."""

    starts: tuple[int, ...]
    before: tuple[int, ...]
    after: tuple[int, ...]


def default_overlap(tile: int) -> int:
    """The overlap used when none is given: an eighth of the tile."""
    return tile // 8


def validate_tiling(tile: int, overlap: int) -> None:
    """Raise :class:`InputError` unless ``0 <= overlap < tile`` and ``tile >= 1``."""
    if tile < 1:
        raise InputError(f"--tile must be a positive number of pixels, got {tile}")
    if overlap < 0:
        raise InputError(f"--overlap must be >= 0 pixels, got {overlap}")
    if overlap >= tile:
        raise InputError(f"--overlap ({overlap}) must be smaller than --tile ({tile})")


def axis_plan(length: int, tile: int, overlap: int) -> AxisPlan:
    """Tile starts covering ``[0, length)`` with tiles of ``tile`` pixels.

    Starts are spread evenly so that neighbours overlap by at least ``overlap`` and the first
    tile starts at 0 and the last ends exactly at ``length``. When ``length <= tile`` there is
    one tile at 0.
    """
    validate_tiling(tile, overlap)
    if length < 1:
        raise InputError(f"cannot tile an axis of {length} pixels")
    if length <= tile:
        return AxisPlan(starts=(0,), before=(0,), after=(0,))
    stride = tile - overlap
    n = math.ceil((length - tile) / stride) + 1
    span = length - tile
    # Even spacing keeps every overlap >= the requested one and spreads the excess fairly.
    starts = tuple(round(i * span / (n - 1)) for i in range(n))
    before = (0,) + tuple(starts[i - 1] + tile - starts[i] for i in range(1, n))
    after = tuple(starts[i] + tile - starts[i + 1] for i in range(n - 1)) + (0,)
    return AxisPlan(starts=starts, before=before, after=after)


def plan_tiles(width: int, height: int, tile: int, overlap: int) -> list[Tile]:
    """All tiles of the plan in row-major order (the order the engine processes them)."""
    rows = axis_plan(height, tile, overlap)
    cols = axis_plan(width, tile, overlap)
    return [
        Tile(
            row=r,
            col=c,
            y=y,
            x=x,
            size=tile,
            overlap_top=rows.before[r],
            overlap_bottom=rows.after[r],
            overlap_left=cols.before[c],
            overlap_right=cols.after[c],
        )
        for r, y in enumerate(rows.starts)
        for c, x in enumerate(cols.starts)
    ]


def grid_shape(width: int, height: int, tile: int, overlap: int) -> tuple[int, int]:
    """(rows, cols) of the tile grid."""
    return (
        len(axis_plan(height, tile, overlap).starts),
        len(axis_plan(width, tile, overlap).starts),
    )


def rows_final_after(row_starts: tuple[int, ...], height: int, tile_row: int) -> int:
    """Scene rows ``< returned value`` receive no contribution from tile rows after ``tile_row``.

    Used by the strip accumulator to know which rows it may flush once a tile row is done.
    """
    if tile_row + 1 < len(row_starts):
        return row_starts[tile_row + 1]
    return height
