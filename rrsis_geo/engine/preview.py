"""A PNG overlay of a run's polygons on the scene (``rrsis segment --preview out.png``).

The scene is read decimated (at most ``max_side`` pixels on its long side, overviews used when
present) with a 2-98 percentile stretch and drawn at least ``min_side`` pixels on its long side
(small scenes are enlarged with square, sharp pixels, so the title and outlines stay legible). The
polygons are drawn in pixel space through the inverse geotransform, so rotated grids and
geographic CRSs look right.
"""

from __future__ import annotations

import os
import textwrap

import numpy as np
import rasterio
from rasterio.enums import Resampling

from rrsis_geo.engine.output import PendingFile, temp_sibling


def render_preview(scene_path: str, bands: tuple[int, ...], frame, path: str, title: str = "",
                   max_side: int = 1200, min_side: int = 768, faint=None) -> PendingFile:
    """Draw ``frame``'s polygons (in the scene's CRS) over the scene; return the pending PNG.

    ``faint``: more polygons drawn first as thin cyan outlines (a scene-level run's candidates).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MplPath

    bands = tuple(bands[:3])  # the model's first three bands are shown as RGB (of red, green, blue, NIR: no NIR read)
    with rasterio.open(scene_path) as ds:
        scale = max(ds.width, ds.height) / max_side
        scale = max(scale, 1.0)
        shape = (max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
        unique = list(dict.fromkeys(bands))
        data = ds.read(unique, out_shape=(len(unique), *shape), resampling=Resampling.average,
                       masked=True)
        inv = ~ds.transform
        sx, sy = ds.width / shape[1], ds.height / shape[0]
    rgb = np.stack([data[unique.index(b)] for b in bands]).astype(np.float64)
    out = np.zeros((*shape, 3))
    for i in range(3):
        band = rgb[i]
        vals = band.compressed() if np.ma.isMaskedArray(band) else band.ravel()
        lo, hi = np.percentile(vals, (2, 98)) if vals.size else (0.0, 1.0)
        out[..., i] = np.clip((np.ma.filled(band, lo) - lo) / max(hi - lo, 1e-9), 0, 1)

    zoom = max(1.0, min_side / max(shape))
    fig, ax = plt.subplots(figsize=(shape[1] * zoom / 100, shape[0] * zoom / 100), dpi=100)
    fig.subplots_adjust(0, 0, 1, 1)
    ax.imshow(out, interpolation="nearest")
    ax.set_axis_off()

    def to_px(coords):
        c = np.asarray(coords)[:, :2]
        cols = (inv.a * c[:, 0] + inv.b * c[:, 1] + inv.c) / sx
        rows = (inv.d * c[:, 0] + inv.e * c[:, 1] + inv.f) / sy
        return np.column_stack([cols, rows])

    def draw(geoms, **style):
        for geom in geoms:
            for poly in getattr(geom, "geoms", [geom]):
                verts, codes = [], []
                for ring in [poly.exterior, *poly.interiors]:
                    pts = to_px(ring.coords)
                    verts.extend(pts)
                    codes.extend([MplPath.MOVETO] + [MplPath.LINETO] * (len(pts) - 2) + [MplPath.CLOSEPOLY])
                ax.add_patch(PathPatch(MplPath(verts, codes), **style))

    if faint is not None:
        draw(faint.geometry, facecolor="none", edgecolor=(0.3, 0.9, 1.0, 0.9), linewidth=1.0)
    draw(frame.geometry, facecolor=(1, 0.2, 0.1, 0.35), edgecolor=(1, 0.9, 0.1, 1.0), linewidth=1.2)
    if title:  # wrapped to the picture's width (about 9 px a character at this font size)
        title = "\n".join(textwrap.wrap(title, max(20, int(shape[1] * zoom / 9.5))))
        ax.text(8, 16, title, color="white", fontsize=11, va="top",
                bbox={"facecolor": "black", "alpha": 0.6, "pad": 4, "edgecolor": "none"})
    ax.set_xlim(0, shape[1])
    ax.set_ylim(shape[0], 0)
    temp = temp_sibling(path)
    try:
        fig.savefig(temp, format="png")
    finally:
        plt.close(fig)
    return PendingFile(temp, os.path.abspath(path))
