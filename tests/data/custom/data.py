"""Write tiny custom data: one UTM GeoTIFF + target polygons in WGS84 (GeoJSON), so the
reader must reproject them to the raster's CRS.

Raster: 96 x 80 px, 2 m pixels, EPSG:32633, band values encode column/row so a chip's content
can be checked against its window. Targets: squares and an L-shape spread over the scene.
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import Polygon, box

W, H, RES = 96, 80, 2.0
ORIGIN = (500000.0, 4800000.0)
CRS = "EPSG:32633"
TRANSFORM = from_origin(*ORIGIN, RES, RES)


def px_box(c0, r0, c1, r1):
    """A polygon covering pixel columns c0..c1 and rows r0..r1 (map coordinates)."""
    x0, y0 = TRANSFORM.c + c0 * RES, TRANSFORM.f - r0 * RES
    x1, y1 = TRANSFORM.c + c1 * RES, TRANSFORM.f - r1 * RES
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def write(root) -> dict:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cols, rows = np.meshgrid(np.arange(W), np.arange(H))
    data = np.stack([cols % 256, rows % 256, (cols + rows) % 256]).astype(np.uint8)
    with rasterio.open(root / "scene.tif", "w", driver="GTiff", width=W, height=H, count=3, dtype="uint8",
                       crs=CRS, transform=TRANSFORM) as dst:
        dst.write(data)
    l_shape = px_box(60, 50, 70, 70).union(px_box(60, 62, 80, 70))
    geoms = [px_box(4, 4, 12, 10), px_box(40, 8, 50, 20), px_box(20, 44, 30, 52), l_shape,
             Polygon([(0, 0), (1, 0), (1, 1)])]  # last one in WGS84 far away: outside the raster
    exprs = ["the small field top left", "the pond near the top", "the field in the lower left",
             "the L-shaped building", "not on any raster"]
    cats = ["field", "pond", "field", "building", "field"]
    projected = gpd.GeoSeries(geoms[:4], crs=CRS).to_crs("EPSG:4326").tolist() + [geoms[4]]
    gdf = gpd.GeoDataFrame({"text": exprs, "kind": cats}, geometry=projected, crs="EPSG:4326")
    gdf.to_file(root / "targets.geojson", driver="GeoJSON")
    return {"geoms_utm": geoms[:4], "exprs": exprs, "transform": TRANSFORM, "crs": CRS, "shape": (H, W)}


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else "custom_fixture")
