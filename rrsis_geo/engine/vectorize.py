"""Probability strips -> one polygon per connected object, merged across strip seams.

Strips are fed top to bottom. Each is thresholded and labelled (4-connectivity); labels that touch
the last row of the previous strip are joined with the objects still open there (a graph of
label ids, ``scipy.sparse.csgraph.connected_components``). An object is finished once none of
its pixels lies in the newest strip's last row. Its pixel count, probability sum and maximum
are added up as it grows, so objects that cannot reach the minimum area are dropped by their
pixel counts before any geometry is built (:func:`area_bound` makes that test conservative for
every CRS; the exact metric test is the caller's).

Outlines are built in numpy, never per object in Python:

* the boundary of the kept pixels is cut into maximal straight runs of pixel edges ("segments",
  directed so the object lies on their right, in pixel coordinates x = column, y = row). Which
  edges are boundary depends on the foreground alone (4-adjacent foreground pixels always belong
  to one object), so a strip needs just the previous strip's last row to emit its edges, and the
  seam between two strips is never a boundary. Segments of open objects wait in a list;
* when objects finish, their segments (from every strip they cover) are linked end to start by
  sorting on vertex ids. Where two pixels of one object touch only at a corner, the outline
  turns away from the pixel it follows, so every ring is simple (holes may touch the shell or
  each other at that point, which is valid); pixels of different objects touching at a corner
  stay apart. Which of the two applies is decided only when the object is finished, so pieces
  joined strips later are handled too. Rings are put in order with a ruling set (short walks
  between rulers, pointer doubling over the rulers), vertices where the outline runs straight
  on (a vertical run cut by a strip seam) are dropped, and shells and holes (by signed area)
  become ``shapely.polygons`` in one call, after one affine map of all vertices to the CRS.

The result equals ``rasterio.features.shapes`` on the whole mask (4-connectivity), object by
object: the same vertices, one feature per object, holes kept, area = pixel count x pixel area.

Memory is O(width), never O(height): the strip as read, worked through in chunks of about
half a million pixels (``CHUNK_PIXELS``) one at a time, each with a few int32/bool copies and the
segments of the objects it finishes (tracemalloc peak 27 MB at width 4096 and 30 MB at width
8192 on the many-objects benchmark's kind of mask, the strip aside), plus the segments of the
objects still open at the seam (17 bytes per straight run of their outlines), which for objects
of bounded size is proportional to the width. Only an object as tall as the scene is held until
it ends, as any vectoriser must. The finished objects are the caller's to keep or write.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.affinity
from affine import Affine
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

_FOUR = ndimage.generate_binary_structure(2, 1)

# Directions of segments, clockwise on screen (y grows downwards); the object is on the right.
_E, _S, _W, _N = 0, 1, 2, 3
_DX = np.array([1, 0, -1, 0], dtype=np.int32)
_DY = np.array([0, 1, 0, -1], dtype=np.int32)

CHUNK_PIXELS = 2**19  # add_strip works through strips in chunks of about this many pixels

# area_bound(y0, y1) -> (a, c): an object of n pixels, all in rows [y0, y1), has at most
# a * n + c * n**3 square metres by the exact measure.
AreaBound = Callable[[int, int], tuple[float, float]]


@dataclass
class Objects:
    """Finished objects: polygons in the CRS of the transform, with their pixel statistics."""

    geometry: np.ndarray  # shapely Polygons
    pixels: np.ndarray  # int64
    prob_sum: np.ndarray  # float64
    prob_max: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.geometry)

    @property
    def score(self) -> np.ndarray:
        return self.prob_sum / np.maximum(self.pixels, 1)

    @staticmethod
    def empty() -> Objects:
        return Objects(np.empty(0, dtype=object), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))

    @staticmethod
    def concat(parts: list[Objects]) -> Objects:
        parts = [p for p in parts if len(p)]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return Objects.empty()
        return Objects(*(np.concatenate([getattr(p, f) for p in parts])
                         for f in ("geometry", "pixels", "prob_sum", "prob_max")))


@dataclass
class _Segments:
    """Directed boundary runs: start vertex, direction, length in pixels and object id."""

    sx: np.ndarray  # int32
    sy: np.ndarray  # int32
    d: np.ndarray  # int8
    n: np.ndarray  # int32
    gid: np.ndarray  # int32, id of the object (0 = none)

    FIELDS = ("sx", "sy", "d", "n", "gid")

    @staticmethod
    def empty() -> _Segments:
        z = np.zeros(0, np.int32)
        return _Segments(z, z, np.zeros(0, np.int8), z, z)

    def take(self, idx) -> _Segments:
        return _Segments(*(getattr(self, f)[idx] for f in self.FIELDS))

    @staticmethod
    def concat(parts: list[_Segments]) -> _Segments:
        fields = _Segments.FIELDS
        return _Segments(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


class SeamMerger:
    """Feed strips top to bottom with :meth:`add_strip`, then call :meth:`finish`; each returns
    the objects it finished as :class:`Objects`.

    ``transform`` maps pixel (column, row) to the CRS (the raster's affine). Objects whose area
    bound (``area_bound``, see :func:`area_bound`) is below ``min_area_m2`` are dropped before
    their outline is built; the caller still applies the exact area test to what comes out.
    """

    def __init__(self, width: int, threshold: float, transform: Affine = Affine.identity(),
                 min_area_m2: float = 0.0, area_bound: AreaBound | None = None):
        self.width = int(width)
        self.threshold = threshold
        self.transform = transform
        self.min_area = float(min_area_m2)
        self.area_bound = area_bound if self.min_area > 0 else None
        self.next_row = 0
        self.prev_gid = np.zeros(self.width, np.int32)  # open-object ids (1..m) of the last row
        # statistics of the open objects, index = id (0 unused)
        self.pixels = np.zeros(1, np.int64)
        self.psum = np.zeros(1)
        self.pmax = np.zeros(1)
        self.bound_a = np.zeros(1)
        self.bound_c = np.zeros(1)
        self.pending = _Segments.empty()  # boundary segments of the open objects

    def add_strip(self, y0: int, prob: np.ndarray, valid: np.ndarray | None = None) -> Objects:
        """Add scene rows ``[y0, y0 + len(prob))``; return the objects finished by this strip.

        Long strips are worked through in chunks of about half a million pixels (the result does
        not depend on where strips are cut; smaller arrays are faster and take less memory)."""
        if y0 != self.next_row:
            raise ValueError(f"strips must come in order: expected row {self.next_row}, got {y0}")
        prob = np.asarray(prob)
        if prob.ndim != 2 or prob.shape[1] != self.width:
            raise ValueError(f"a strip must be (rows, {self.width}), got {prob.shape}")
        rows = max(16, CHUNK_PIXELS // max(self.width, 1))
        parts = [self._add(y0 + i, prob[i : i + rows], None if valid is None else valid[i : i + rows])
                 for i in range(0, prob.shape[0], rows)]
        return Objects.concat(parts)

    def _add(self, y0: int, prob: np.ndarray, valid: np.ndarray | None) -> Objects:
        fg = prob > self.threshold
        if valid is not None:
            fg &= valid
        labels, n = ndimage.label(fg, structure=_FOUR, output=np.int32)
        lab, p = labels[fg], prob[fg].astype(np.float64)
        counts = np.bincount(lab, minlength=n + 1)
        sums = np.bincount(lab, weights=p, minlength=n + 1)
        maxs = np.zeros(n + 1)
        np.maximum.at(maxs, lab, p)
        del lab, p, fg
        return self._step(y0, labels, n, counts, sums, maxs)

    def finish(self) -> Objects:
        """Return every object still open (call after the last strip)."""
        empty = np.zeros((1, self.width), np.int32)
        return self._step(self.next_row, empty, 0, np.zeros(1, np.int64), np.zeros(1), np.zeros(1),
                          final=True)

    # ------------------------------------------------------------------ one strip
    def _step(self, y0, labels, n, counts, sums, maxs, final=False) -> Objects:
        h, w = labels.shape
        m = len(self.pixels) - 1  # open objects are nodes 1..m, the strip's labels m+1..m+n
        nodes = m + n + 1
        # objects: connected components of open objects and labels touching across the seam
        below = labels[0]
        both = (self.prev_gid > 0) & (below > 0)
        graph = coo_matrix((np.ones(int(both.sum()), np.int8),
                            (self.prev_gid[both], below[both].astype(np.int64) + m)),
                           shape=(nodes, nodes)).tocsr()
        _, comp = connected_components(graph, directed=False)
        used = np.zeros(nodes, bool)
        used[comp[1:]] = True
        renum = (np.cumsum(used) * used).astype(np.int32)  # objects 1..k in node order
        obj = renum[comp]
        obj[0] = 0
        k = int(renum.max()) if nodes > 1 else 0
        pix = np.bincount(obj, weights=np.concatenate([self.pixels, counts[1:]]), minlength=k + 1)
        pix = pix.round().astype(np.int64)
        psum = np.bincount(obj, weights=np.concatenate([self.psum, sums[1:]]), minlength=k + 1)
        pmax = np.zeros(k + 1)
        np.maximum.at(pmax, obj, np.concatenate([self.pmax, maxs[1:]]))
        ba, bc = np.zeros(k + 1), np.zeros(k + 1)
        if self.area_bound is not None:
            sa, sc = (0.0, 0.0) if final else self.area_bound(y0, y0 + h)
            np.maximum.at(ba, obj, np.concatenate([self.bound_a, np.full(n, sa)]))
            np.maximum.at(bc, obj, np.concatenate([self.bound_c, np.full(n, sc)]))
        # objects with a pixel in the last row stay open; the others are finished
        is_open = np.zeros(k + 1, bool)
        if not final:
            last = labels[-1]
            is_open[obj[last[last > 0].astype(np.int64) + m]] = True
        finished = ~is_open
        finished[0] = False
        keep_obj = np.arange(k + 1, dtype=np.int32)
        if self.area_bound is not None:  # too small for sure: no outline is ever built
            npx = pix.astype(np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                keep_obj[finished & (ba * npx + bc * npx**3 < self.min_area)] = 0
        node_obj = keep_obj[obj]  # node -> kept object id (0: none or dropped)
        lut = np.concatenate([[0], node_obj[m + 1 :]]).astype(np.int32)
        gimg = lut[labels]  # the strip as kept object ids
        del labels
        segs = _boundary_segments(gimg, node_obj[self.prev_gid], y0)
        pend = self.pending
        pend.gid = node_obj[pend.gid]
        self.pending = _Segments.empty()
        parts = (pend, segs)
        closing = _Segments.concat([p.take(finished[p.gid]) for p in parts])
        rest = _Segments.concat([p.take(is_open[p.gid]) for p in parts])
        del segs, pend, parts
        out = self._polygonise(closing, pix, psum, pmax)
        # carry the open objects, renumbered 1..m'
        new_id = (np.cumsum(is_open) * is_open).astype(np.int32)
        rest.gid = new_id[rest.gid]
        self.pending = rest
        self.pixels = np.concatenate([[0], pix[is_open]])
        self.psum = np.concatenate([[0.0], psum[is_open]])
        self.pmax = np.concatenate([[0.0], pmax[is_open]])
        self.bound_a = np.concatenate([[0.0], ba[is_open]])
        self.bound_c = np.concatenate([[0.0], bc[is_open]])
        self.prev_gid = np.zeros(w, np.int32) if final else new_id[gimg[-1]]
        self.next_row = y0 + (0 if final else h)
        return out

    def _polygonise(self, seg: _Segments, pix, psum, pmax) -> Objects:
        if len(seg.sx) == 0:
            return Objects.empty()
        ring_no, ring_obj, x, y = _rings(seg, self.width)
        t = self.transform
        xy = np.empty((len(x), 2))
        xy[:, 0] = t.a * x + t.b * y + t.c  # one affine for every vertex
        xy[:, 1] = t.d * x + t.e * y + t.f
        del x, y
        rings = shapely.linearrings(xy, indices=ring_no)
        first = np.r_[True, ring_obj[1:] != ring_obj[:-1]]
        polys = shapely.polygons(rings, indices=np.cumsum(first) - 1)
        ids = ring_obj[first]
        return Objects(polys, pix[ids], psum[ids], pmax[ids])


# ---------------------------------------------------------------------- segments
def _runs(mask: np.ndarray):
    """Runs of True along each row of a 2-D bool array: (row, first column, length), int32."""
    r, c = mask.shape
    pad = np.zeros((r, c + 2), bool)
    pad[:, 1:-1] = mask
    flat = pad.ravel()
    starts = np.flatnonzero(flat[1:] & ~flat[:-1])  # flat index of the cell before each run
    ends = np.flatnonzero(flat[:-1] & ~flat[1:])  # flat index of each run's last cell
    row, col = np.divmod(starts, c + 2)
    return row.astype(np.int32), col.astype(np.int32), (ends - starts).astype(np.int32)


def _boundary_segments(gimg: np.ndarray, prev: np.ndarray, y0: int) -> _Segments:
    """Boundary runs of the object-id image ``gimg`` (rows y0..), whose row above is ``prev``.

    Horizontal runs lie on the lines y0 .. y0 + h - 1 (the line below the last row belongs to the
    next strip); vertical runs span the strip's rows."""
    h, w = gimg.shape
    y0 = np.int32(y0)
    fg = gimg > 0
    upfg = np.empty_like(fg)
    upfg[0] = prev > 0
    upfg[1:] = fg[:-1]
    parts = []
    # top edges of pixels with background above: eastwards from the pixel's top-left corner
    r, c, n = _runs(fg & ~upfg)
    parts.append(_Segments(c, r + y0, np.full(len(r), _E, np.int8), n, gimg[r, c]))
    # bottom edges of the pixels above with background below: westwards from the right end
    r, c, n = _runs(upfg & ~fg)
    above = np.where(r > 0, gimg[np.maximum(r - 1, 0), c], prev[c])
    parts.append(_Segments(c + n, r + y0, np.full(len(r), _W, np.int8), n, above))
    del upfg
    # vertical edges: runs down each column line of pixels whose right / left side is open
    side = np.zeros((h, w + 2), bool)
    side[:, 1:-1] = fg
    del fg
    c, r, n = _runs((side[:, 1:-1] & ~side[:, 2:]).T)
    parts.append(_Segments(c + 1, r + y0, np.full(len(r), _S, np.int8), n, gimg[r, c]))
    c, r, n = _runs((side[:, 1:-1] & ~side[:, :-2]).T)
    parts.append(_Segments(c, r + n + y0, np.full(len(r), _N, np.int8), n, gimg[r, c]))
    return _Segments.concat(parts)


def _rings(seg: _Segments, width: int):
    """Link complete sets of segments into rings.

    Returns ``(ring number per vertex, object id per ring, x, y)``: rings grouped by object, the
    shell first, vertices in order along each ring (pixel coordinates, float64)."""
    count = len(seg.sx)
    d = seg.d.astype(np.intp)
    ex = seg.sx + _DX[d] * seg.n
    ey = seg.sy + _DY[d] * seg.n
    span = np.int64(width + 1)
    # Each vertex of an object has as many segments ending as starting there (one, or two where
    # two of its pixels touch at a corner), so ends and starts sorted by vertex pair up...
    outs = np.argsort((seg.sy * span + seg.sx) * 4 + d)
    end_v = ey * span + ex
    ins = np.argsort(end_v, kind="stable")
    nxt = np.empty(count, np.intp)
    nxt[ins] = outs
    # ...except at corners with two: there, pixels of one object are joined (the outline turns
    # left, away from the pixel it follows) and pixels of two objects stay apart (it turns right).
    end_v = end_v[ins]
    k = np.flatnonzero(end_v[1:] == end_v[:-1])
    del end_v
    if len(k):
        i1, i2, o1, o2 = ins[k], ins[k + 1], outs[k], outs[k + 1]
        want = np.where(seg.gid[i1] == seg.gid[i2], (d[i1] + 3) % 4, (d[i1] + 1) % 4)
        swap = d[o1] != want
        nxt[i1[swap]] = o2[swap]
        nxt[i2[swap]] = o1[swap]
    del ins, outs
    # Every ring has a top: a horizontal segment entered going up and left going down. Those,
    # and one segment at a random place in every block of 32 (which keeps the walks between
    # rulers short on long smooth outlines), are the rulers that order the rings.
    prev = np.empty(count, np.intp)
    prev[nxt] = np.arange(count)
    ruler = (d[prev] == _N) & (d[nxt] == _S)
    del prev
    spread = np.arange(0, count, 32) + np.random.default_rng(0).integers(0, 32, -(-count // 32))
    ruler[spread[spread < count]] = True
    ring, pos, heads, length = _order_cycles(nxt, ruler)
    del ruler, nxt
    # shells run clockwise on screen, which is a positive area in these coordinates
    cross = seg.sx.astype(np.float64) * ey - ex.astype(np.float64) * seg.sy
    area2 = np.bincount(ring, weights=cross, minlength=len(heads))
    del ex, ey
    hole = area2 < 0
    obj = seg.gid[heads]
    order = np.lexsort((heads, hole, obj))  # by object, its shell first
    hole, obj = hole[order], obj[order]
    first = np.r_[True, obj[1:] != obj[:-1]]
    if (hole == first).any():
        raise RuntimeError("vectoriser: an object did not come out as one shell with holes")
    slot = np.empty(len(order), np.intp)  # ring -> its place in the output
    slot[order] = np.arange(len(order))
    sizes = length[order]
    offset = (np.cumsum(sizes) - sizes)[slot]  # ring -> first output position
    at = offset[ring] + pos  # output position of each segment
    seq = np.empty(count, np.intp)
    seq[at] = np.arange(count)
    # drop vertices where the outline runs straight on (vertical runs cut at a strip seam)
    rlen = length[ring]
    before = seq[np.where(pos == 0, at + rlen - 1, at - 1)]
    del at, rlen, pos, offset
    keep = (d[before] != d)[seq]
    del before
    pick = seq[keep]
    ring_no = np.repeat(np.arange(len(order)), sizes)[keep]
    return ring_no, obj, seg.sx[pick].astype(np.float64), seg.sy[pick].astype(np.float64)


def _order_cycles(nxt: np.ndarray, ruler: np.ndarray):
    """Cycle decomposition of the permutation ``nxt``, given ``ruler``, a mask with at least one
    element on every cycle.

    Returns ``(cycle number per element, position per element, head per cycle, length per
    cycle)``; positions count from the cycle's head (an element index).

    Ruling set: walking from every ruler to the next (all at once, one step per numpy pass)
    numbers the elements in between; pointer doubling over the rulers alone, weighted by those
    distances, places the rulers. O(n) work plus O(rulers * log n)."""
    n = len(nxt)
    rulers = np.flatnonzero(ruler)
    nr = len(rulers)
    owner = np.full(n, -1, np.intp)  # the ruler (rank) each element follows
    owner[rulers] = np.arange(nr)
    off = np.zeros(n, np.intp)  # steps after that ruler
    succ = np.empty(nr, np.intp)  # next ruler along the cycle
    gap = np.empty(nr, np.intp)  # steps to it
    cur, who, t = nxt[rulers], np.arange(nr), 1
    while len(cur):
        hit = ruler[cur]
        succ[who[hit]] = owner[cur[hit]]
        gap[who[hit]] = t
        miss = ~hit
        cur, who = cur[miss], who[miss]
        owner[cur] = who
        off[cur] = t
        cur = nxt[cur]
        t += 1
    if (owner < 0).any():
        raise RuntimeError("vectoriser: a ring without a ruler")
    # the smallest ruler rank on a cycle is its head: distance from each ruler to it
    low = np.arange(nr)
    dist = np.zeros(nr, np.intp)
    ptr, width = succ, gap
    while True:
        ahead = low[ptr]
        better = ahead < low
        if not better.any():
            break
        low = np.where(better, ahead, low)
        dist = np.where(better, dist[ptr] + width, dist)
        width = width + width[ptr]
        ptr = ptr[ptr]
    is_head = low == np.arange(nr)
    cycle_of_head = np.cumsum(is_head) - 1
    cyc = cycle_of_head[low]  # ruler -> cycle number
    length = np.bincount(cyc, weights=gap, minlength=int(is_head.sum())).astype(np.intp)
    rlen = length[cyc]
    rpos = (rlen - dist) % rlen
    return cyc[owner], rpos[owner] + off, rulers[is_head], length


# ---------------------------------------------------------------------- area bounds
def area_bound(metric, transform: Affine, width: int) -> AreaBound:
    """``(y0, y1) -> (a, c)`` such that any object of ``n`` pixels in rows ``[y0, y1)`` measures at
    most ``a * n + c * n**3`` m^2 by ``metric.area_m2``.

    Projected CRSs: ``a`` is the pixel area (with a hair of slack for rounding), ``c = 0``.
    Geographic CRSs: ``a`` is the largest pixel area in the rows (the area element of the
    ellipsoid peaks at the latitude nearest the equator) with 1 % slack, and ``c n^3`` bounds how
    far geodesic edges can bulge past the pixel grid's straight lon/lat edges (an edge of length
    L at latitude phi encloses at most about L^3 tan(phi) / (12 R); an object of n pixels has
    edges of at most n pixels, at most 4n pixel sides in all, so at most 4 n^3 pixel sides
    cubed), doubled for safety. Near the poles the bound is infinite, so nothing is dropped
    there before the exact test.
    """
    t = transform
    det = abs(t.a * t.e - t.b * t.d)
    if not metric.geographic:
        a = det * metric.unit_m**2 * (1 + 1e-9)
        return lambda y0, y1: (a, 0.0)
    geod = metric.geod
    ea, es = float(geod.a), float(geod.es)
    rad = math.pi / 180.0
    side_deg = max(math.hypot(t.a, t.d), math.hypot(t.b, t.e))
    side_m = 1.01 * ea / math.sqrt(1 - es) * side_deg * rad  # longest pixel side, generously
    r_min = ea * (1 - es)  # smallest radius of curvature of the ellipsoid

    def bound(y0: int, y1: int) -> tuple[float, float]:
        lats = [t.d * x + t.e * y + t.f for x in (0, width) for y in (y0, y1)]
        lo, hi = min(lats), max(lats)
        if lo < -90 or hi > 90:
            return math.inf, math.inf
        near = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
        far = max(abs(lo), abs(hi))
        s = math.sin(near * rad)
        density = ea * ea * (1 - es) * math.cos(near * rad) / (1 - es * s * s) ** 2  # m^2 / rad^2
        a = 1.01 * density * det * rad * rad
        if far >= 89.0:
            return a, math.inf
        c = 2.0 * side_m**3 * math.tan(far * rad) / (3.0 * r_min)
        return a, c

    return bound


def areas_m2(metric, geoms: np.ndarray) -> np.ndarray:
    """``metric.area_m2`` of each geometry (vectorised for projected CRSs)."""
    if not metric.geographic:
        return shapely.area(geoms) * metric.unit_m**2
    return np.array([metric.area_m2(g) for g in geoms], dtype=np.float64)


def simplify_m(metric, geoms: np.ndarray, tolerance_m: float) -> np.ndarray:
    """``metric.simplify`` of each geometry (vectorised for projected CRSs)."""
    if tolerance_m <= 0 or len(geoms) == 0:
        return geoms
    if not metric.geographic:
        return shapely.simplify(geoms, tolerance_m / metric.unit_m, preserve_topology=True)
    return np.array([metric.simplify(g, tolerance_m) for g in geoms], dtype=object)

