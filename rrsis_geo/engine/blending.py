"""Blending windows: how much each tile's prediction counts at each of its pixels.

A window is 1 in the tile's core and tapers only inside the overlaps with neighbouring tiles,
never at the scene border (where no other tile can take over). Inside an overlap of ``o``
pixels the first ``margin`` pixels next to the tile's edge get weight 0, because a
convolutional model is least reliable where it saw padding, and the weight then ramps up to 1.
The neighbour's window is the mirror image, so every pixel of an overlap keeps a positive total
weight as long as ``margin < o / 2``; the engine chooses the margin so that holds.

The accumulator divides the weighted sum by the summed weight, so windows need not sum to 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rrsis_geo.engine.tiling import Tile


def _linear(t: np.ndarray) -> np.ndarray:
    return t


def _cosine(t: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * t)


def _flat(t: np.ndarray) -> np.ndarray:
    return np.ones_like(t)


# name -> ramp profile on (0, 1). The CLI and the QGIS plugin list choices from this table.
WINDOWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "cosine": _cosine,
    "linear": _linear,
    "flat": _flat,
}
DEFAULT_WINDOW = "cosine"


def default_margin(overlap: int) -> int:
    """Pixels next to an interior tile edge that get no weight: a quarter of the overlap, at
    most 16. Always < overlap / 2, so overlaps stay fully covered."""
    return min(overlap // 4, 16)


def ramp(overlap: int, margin: int, window: str = DEFAULT_WINDOW) -> np.ndarray:
    """Weights for the ``overlap`` pixels at a tile's edge, ordered from the edge inwards."""
    if overlap <= 0:
        return np.ones(0, dtype=np.float64)
    profile = WINDOWS[window]
    margin = min(margin, max((overlap - 1) // 2, 0))
    out = np.zeros(overlap, dtype=np.float64)
    n = overlap - 2 * margin  # pixels over which the weight rises
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    out[margin : margin + n] = profile(t)
    out[margin + n :] = 1.0
    return np.maximum(out, 0.0)


def axis_weights(size: int, before: int, after: int, margin: int, window: str) -> np.ndarray:
    """1-D window along one axis of a tile of ``size`` pixels."""
    w = np.ones(size, dtype=np.float64)
    if before:
        w[:before] *= ramp(before, margin, window)
    if after:
        w[size - after :] *= ramp(after, margin, window)[::-1]
    return w


def tile_weights(tile: Tile, margin: int, window: str = DEFAULT_WINDOW) -> np.ndarray:
    """2-D float32 window of a tile (outer product of its two axis windows)."""
    wy = axis_weights(tile.size, tile.overlap_top, tile.overlap_bottom, margin, window)
    wx = axis_weights(tile.size, tile.overlap_left, tile.overlap_right, margin, window)
    return np.outer(wy, wx).astype(np.float32)
