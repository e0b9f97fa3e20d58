"""Blending tile predictions into a strip buffer whose size does not depend on scene height.

Tiles arrive in row-major order. The buffer holds scene rows ``[top, top + tile)``: once a tile
row is done, every row above the next tile row's start is final (no later tile touches it) and
is handed to a sink as ``probability = sum(w * p) / sum(w)`` with invalid pixels set to
``nodata``. Memory is ``2 x tile x width`` float32, whatever the height.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rrsis_geo.engine.tiling import Tile

PROB_NODATA = -1.0

Sink = Callable[[int, np.ndarray, np.ndarray], None]  # (first_row, prob rows, weight rows)


class StripAccumulator:
    def __init__(self, width: int, height: int, tile: int, sink: Sink, top: int = 0):
        self.width = width
        self.height = height
        self.cap = tile
        self.sink = sink
        self.top = top  # first scene row held in the buffer (everything above is flushed)
        self.wsum = np.zeros((self.cap, width), dtype=np.float32)
        self.psum = np.zeros((self.cap, width), dtype=np.float32)
        self._tmp = np.empty((tile, tile), dtype=np.float32)

    def add(self, tile: Tile, prob: np.ndarray, weight: np.ndarray) -> None:
        """Add one tile's probabilities with its blending weights (0 where invalid)."""
        y0 = max(tile.y, self.top)
        y1 = min(tile.y_end, self.height)
        x1 = min(tile.x_end, self.width)
        if y1 <= y0:
            return
        if y1 - self.top > self.cap:
            raise RuntimeError("tile added out of order: flush the previous tile row first")
        ty0 = y0 - tile.y
        w = weight[ty0 : ty0 + (y1 - y0), : x1 - tile.x]
        p = prob[ty0 : ty0 + (y1 - y0), : x1 - tile.x]
        b0, b1 = y0 - self.top, y1 - self.top
        self.wsum[b0:b1, tile.x : x1] += w
        tmp = self._tmp[: w.shape[0], : w.shape[1]]
        np.multiply(w, p, out=tmp)
        self.psum[b0:b1, tile.x : x1] += tmp

    def flush(self, until: int) -> None:
        """Emit final rows ``[top, until)`` to the sink and slide the buffer down."""
        until = min(until, self.height)
        n = until - self.top
        if n <= 0:
            return
        w = self.wsum[:n]
        prob = np.full(w.shape, PROB_NODATA, dtype=np.float32)
        np.divide(self.psum[:n], w, out=prob, where=w > 0)
        self.sink(self.top, prob, w.copy())
        # Move the unflushed rows to the front of fresh (lazily zeroed) buffers.
        for name in ("wsum", "psum"):
            old = getattr(self, name)
            new = np.zeros(old.shape, dtype=old.dtype)  # calloc: zero pages come for free
            new[: self.cap - n] = old[n:]
            setattr(self, name, new)
        self.top = until
