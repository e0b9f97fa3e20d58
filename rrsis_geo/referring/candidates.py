"""Candidates in the scene frame: every stitched object of a category map, measured in metres.

A candidate is one connected object of the zoom pass (already merged across tiles and strips)
with what the resolver compares: area, length and width of the equivalent rectangle (the
rectangle with the object's area and perimeter, so a winding river's length is along its course;
the perimeter is the outline's simplified by one pixel side, without the pixel staircase),
elongation, its centroid on the map and in the frame (``u`` west -> east, ``v`` south -> north,
both 0..1 over the scene's or the AOI's extent, map north up), the zoom pass's mean and maximum
probability, its glance support (the mean probability the whole-scene glance pass gave it), and
whether it touches the edge of the area searched (the scene's footprint or its AOI part), where
it may continue beyond what was measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from scipy import ndimage

from rrsis_geo.engine.geometry import MetricContext


@dataclass
class Frame:
    """The extent compass words refer to, in the metric frame (x east, y north, metres)."""

    minx: float
    miny: float
    maxx: float
    maxy: float

    @classmethod
    def of(cls, metric_geom: shapely.Geometry) -> Frame:
        return cls(*metric_geom.bounds)

    def uv(self, x: float, y: float) -> tuple[float, float]:
        w, h = max(self.maxx - self.minx, 1e-9), max(self.maxy - self.miny, 1e-9)
        return (x - self.minx) / w, (y - self.miny) / h


@dataclass
class Candidate:
    geometry: shapely.Geometry  # scene CRS
    metric: shapely.Geometry  # local metric frame
    area_m2: float
    length_m: float
    width_m: float
    elongation: float
    x: float  # centroid, scene CRS
    y: float
    u: float  # centroid in the frame, 0 = west .. 1 = east
    v: float  # 0 = south .. 1 = north
    score: float  # mean zoom probability
    score_max: float
    pixels: int
    glance: float | None = None
    record: dict | None = None  # the vectoriser's feature record it came from
    at_edge: bool = False  # within a pixel of the searched area's outline


def equivalent_rectangle(area: float, perimeter: float) -> tuple[float, float]:
    """(length, width) of the rectangle with this area and perimeter (a square when none fits)."""
    disc = perimeter * perimeter - 16.0 * area
    length = (perimeter + math.sqrt(disc)) / 4.0 if disc > 0 else math.sqrt(max(area, 0.0))
    width = area / length if length > 0 else 0.0
    return length, width


def build_candidates(records: list[dict], metric: MetricContext, frame: Frame,
                     footprint: shapely.Geometry | None = None) -> list[Candidate]:
    """Candidates from the vectoriser's feature records (geometry in the scene CRS); ``footprint``
    (the searched area in the metric frame) marks those within a pixel of its outline."""
    outline = footprint.boundary if footprint is not None else None
    out = []
    for r in records:
        geom = r["geometry"]
        m = metric.to_metric(geom)
        # the perimeter of the outline without its pixel staircase (simplified by one pixel side)
        pixel = math.sqrt(m.area / r["pixels"]) if r["pixels"] else 0.0
        length, width = equivalent_rectangle(m.area, m.simplify(pixel, preserve_topology=True).length)
        c = geom.centroid
        mc = m.centroid
        u, v = frame.uv(mc.x, mc.y)
        out.append(Candidate(
            geometry=geom, metric=m, area_m2=float(r["area_m2"]), length_m=length, width_m=width,
            elongation=length / width if width > 0 else 1.0, x=c.x, y=c.y, u=u, v=v,
            score=float(r["score"]), score_max=float(r["score_max"]), pixels=int(r["pixels"]), record=r,
            at_edge=outline is not None and m.distance(outline) <= pixel,
        ))
    return out


def add_glance_support(candidates: list[Candidate], glance: np.ndarray, transform: Affine) -> None:
    """Set each candidate's ``glance`` to the mean glance probability over its footprint.

    ``glance`` is the glance pass's (h, w) probability grid and ``transform`` its affine (the
    scene's, scaled to the coarse grid). Objects smaller than a glance pixel take the pixels they
    touch; one hidden under a larger neighbour takes the value at its representative point.
    """
    if not candidates:
        return
    h, w = glance.shape
    order = sorted(range(len(candidates)), key=lambda i: -candidates[i].area_m2)  # small ones last, on top
    labels = rasterize(((candidates[i].geometry, i + 1) for i in order), out_shape=(h, w),
                       transform=transform, all_touched=True, fill=0, dtype="int32")
    index = np.arange(1, len(candidates) + 1)
    counts = ndimage.sum_labels(np.ones_like(glance), labels, index)
    sums = ndimage.sum_labels(glance, labels, index)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    inverse = ~transform
    for i, c in enumerate(candidates):
        if counts[i] > 0:
            c.glance = float(means[i])
        else:
            p = c.geometry.representative_point()
            col, row = inverse @ (p.x, p.y)
            r, k = min(max(int(row), 0), h - 1), min(max(int(col), 0), w - 1)
            c.glance = float(glance[r, k])
