"""A plain-data summary of a scene and its tile plan (what ``rrsis info`` prints)."""

from __future__ import annotations

import rasterio

from rrsis_geo.engine.disk import disk_estimate, format_bytes, stored_fraction
from rrsis_geo.engine.geometry import MetricContext
from rrsis_geo.engine.raster import SceneInfo
from rrsis_geo.engine.tiling import grid_shape, plan_tiles


def scene_summary(info: SceneInfo, tile: int, overlap: int) -> dict:
    t = info.transform
    with rasterio.open(info.path) as ds:
        overviews = ds.overviews(1)
        block = ds.block_shapes[0]
    # Ground size of one pixel along each image axis, in metres.
    metric = MetricContext(info.crs, info.bounds)
    import shapely

    px = shapely.Polygon([(t.c, t.f), (t.c + t.a, t.f + t.d), (t.c + t.a + t.b, t.f + t.d + t.e),
                         (t.c + t.b, t.f + t.e)])
    rows, cols = grid_shape(info.width, info.height, tile, overlap)
    tiles = plan_tiles(info.width, info.height, tile, overlap)
    fraction = stored_fraction(info.path)
    estimate = disk_estimate(info.width, info.height, fraction)
    return {
        "path": info.path,
        "size": f"{info.width} x {info.height} pixels, {info.count} band(s), {info.dtype}",
        "crs": info.crs.to_string() + (" (assumed)" if info.crs_assumed else ""),
        "transform": list(t)[:6],
        "rotated": bool(t.b or t.d),
        "pixel_area_m2": round(metric.area_m2(px), 4),
        "bounds": [round(v, 6) for v in info.bounds],
        "nodata": info.nodata,
        "bands": {
            f"band {i + 1}": f"{info.color_interp[i]}, mask: {info.mask_flags[i]}"
            for i in range(info.count)
        },
        "model_bands": list(info.bands),
        "block": list(block),
        "overviews": overviews,
        "tile_plan": {
            "tile": tile,
            "overlap": overlap,
            "grid": f"{rows} rows x {cols} cols",
            "tiles": len(tiles),
            "row_starts": sorted({x.y for x in tiles}),
            "col_starts": sorted({x.x for x in tiles}),
        },
        # One model pass (a --per-tile run; a scene-level run adds one per relation reference).
        "disk_estimate_bytes": estimate,
        "disk_estimate": f"{format_bytes(estimate)} for one model pass ({fraction:.0%} of the scene's blocks stored)",
    }

