"""Blending tile predictions into a strip buffer whose size does not depend on scene height.

Tiles arrive in row-major order. The buffer holds scene rows ``[top, top + tile)``: once a tile
row is done, every row above the next tile row's start is final (no later tile touches it) and
is handed to a sink as ``probability = sum(w * p) / sum(w)`` with invalid pixels set to
``nodata``. The buffer is a ring indexed by ``row % tile``, so flushing moves no data and
allocates nothing. Memory is ``2 x tile x width`` float32, whatever the height.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rrsis_geo.engine.tiling import Tile

PROB_NODATA = -1.0

Sink = Callable[[int, np.ndarray], None]  # (first_row, probability rows)


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

    def _spans(self, y0: int, y1: int):
        """Split scene rows ``[y0, y1)`` into (ring slice, offset into the rows) pieces."""
        start = y0 % self.cap
        first = min(y1 - y0, self.cap - start)
        yield slice(start, start + first), 0
        if first < y1 - y0:
            yield slice(0, y1 - y0 - first), first

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
        n, wd = y1 - y0, x1 - tile.x
        w = weight[ty0 : ty0 + n, :wd]
        tmp = self._tmp[:n, :wd]
        np.multiply(w, prob[ty0 : ty0 + n, :wd], out=tmp)
        for ring, off in self._spans(y0, y1):
            rows = ring.stop - ring.start
            self.wsum[ring, tile.x : x1] += w[off : off + rows]
            self.psum[ring, tile.x : x1] += tmp[off : off + rows]

    def flush(self, until: int) -> None:
        """Emit final rows ``[top, until)`` to the sink and clear them in the ring."""
        until = min(until, self.height)
        n = until - self.top
        if n <= 0:
            return
        prob = np.full((n, self.width), PROB_NODATA, dtype=np.float32)
        for ring, off in self._spans(self.top, until):
            rows = ring.stop - ring.start
            w, p = self.wsum[ring], self.psum[ring]
            np.divide(p, w, out=prob[off : off + rows], where=w > 0)
            w.fill(0)
            p.fill(0)
        self.sink(self.top, prob)
        self.top = until
