"""Probability strips -> one polygon per connected object, merged across strip seams.

Each strip is thresholded and labelled (4-connectivity) and its components are polygonised by
``rasterio.features.shapes`` in *pixel* coordinates, where the edges two strips share are exact
integers. Components that touch across a seam (a foreground pixel directly above another) are
joined with a union-find; a group is finished once none of its members reaches the bottom row of
the newest strip, and is then unioned into one polygon (holes kept) and mapped to the CRS.
Memory holds one strip plus the polygons still open at the seam.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
import shapely.affinity
from affine import Affine
from scipy import ndimage
from shapely.geometry import shape

_FOUR = ndimage.generate_binary_structure(2, 1)


@dataclass
class Component:
    """One finished object in pixel coordinates with its probability statistics."""

    geometry: shapely.Geometry  # pixel space: x = column, y = row
    pixels: int
    prob_sum: float
    prob_max: float

    @property
    def score(self) -> float:
        return self.prob_sum / self.pixels if self.pixels else 0.0


@dataclass
class _Group:
    geoms: list
    pixels: int
    prob_sum: float
    prob_max: float


class SeamMerger:
    """Feed strips top to bottom with :meth:`add_strip`; finished components come out."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.parent: dict[int, int] = {}
        self.groups: dict[int, _Group] = {}
        self.prev_last_row: np.ndarray | None = None  # global labels of the last row seen
        self.next_id = 1

    def _find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return
        ga, gb = self.groups.pop(rb), self.groups[ra]
        gb.geoms.extend(ga.geoms)
        gb.pixels += ga.pixels
        gb.prob_sum += ga.prob_sum
        gb.prob_max = max(gb.prob_max, ga.prob_max)
        self.parent[rb] = ra

    def add_strip(self, y0: int, prob: np.ndarray, valid: np.ndarray | None = None) -> Iterator[Component]:
        """Add scene rows ``[y0, y0 + len(prob))``; yield components finished by this strip."""
        fg = prob > self.threshold
        if valid is not None:
            fg &= valid
        labels, n = ndimage.label(fg, structure=_FOUR)
        if n:
            idx = np.arange(1, n + 1)
            counts = ndimage.sum_labels(np.ones_like(prob), labels, idx)
            sums = ndimage.sum_labels(prob, labels, idx)
            maxs = ndimage.maximum(prob, labels, idx)
            geoms: dict[int, list] = {}
            for geom, value in rasterio.features.shapes(
                labels.astype(np.int32), mask=fg, connectivity=4, transform=Affine.translation(0, y0)
            ):
                geoms.setdefault(int(value), []).append(shape(geom))
            base = self.next_id - 1
            for local in range(1, n + 1):
                gid = base + local
                self.parent[gid] = gid
                self.groups[gid] = _Group(
                    geoms=geoms.get(local, []),
                    pixels=int(counts[local - 1]),
                    prob_sum=float(sums[local - 1]),
                    prob_max=float(maxs[local - 1]),
                )
            self.next_id += n
            glabels = np.where(labels > 0, labels + base, 0)
        else:
            glabels = np.zeros_like(labels)
        # Join components that touch across the seam with the previous strip.
        if self.prev_last_row is not None:
            above, below = self.prev_last_row, glabels[0]
            both = (above > 0) & (below > 0)
            for a, b in set(zip(above[both].tolist(), below[both].tolist())):
                self._union(a, b)
        self.prev_last_row = glabels[-1].copy()
        open_roots = {self._find(int(g)) for g in np.unique(self.prev_last_row) if g > 0}
        yield from self._emit(keep=open_roots)

    def finish(self) -> Iterator[Component]:
        """Yield everything still open (call after the last strip)."""
        yield from self._emit(keep=set())
        self.prev_last_row = None

    def _emit(self, keep: set[int]) -> Iterator[Component]:
        for root in [r for r in self.groups if r not in keep]:
            g = self.groups.pop(root)
            geom = g.geoms[0] if len(g.geoms) == 1 else shapely.union_all(g.geoms)
            yield Component(geometry=geom, pixels=g.pixels, prob_sum=g.prob_sum, prob_max=g.prob_max)
        # Drop union-find entries of emitted groups to keep memory bounded.
        live = set(self.groups)
        if len(self.parent) > 4 * max(len(live), 1) + 1024:
            self.parent = {k: v for k, v in self.parent.items() if self._find(k) in live}


def to_crs_geometry(geom: shapely.Geometry, transform: Affine) -> shapely.Geometry:
    """Map a pixel-space geometry (x = column, y = row) into the raster's CRS."""
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    return shapely.affinity.affine_transform(geom, [a, b, d, e, c, f])
