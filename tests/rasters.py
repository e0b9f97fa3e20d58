"""Small GeoTIFF writers for tests: every raster the tests use is made here, nothing downloaded."""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.transform import Affine, from_origin

UTM = "EPSG:32633"


def write_raster(path, data: np.ndarray, crs=UTM, transform: Affine | None = None, nodata=None,
                 alpha: np.ndarray | None = None, mask: np.ndarray | None = None,
                 res: float = 10.0, tiled: bool = False, **extra) -> str:
    """Write ``data`` (bands, h, w) as a GeoTIFF.

    ``alpha`` adds an alpha band (0 = invalid); ``mask`` writes an internal per-dataset mask.
    """
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    count = data.shape[0] + (1 if alpha is not None else 0)
    transform = transform if transform is not None else from_origin(500000.0, 5000000.0, res, res)
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": count,
               "dtype": data.dtype.name, "transform": transform, **extra}
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data, list(range(1, data.shape[0] + 1)))
            if alpha is not None:
                dst.write(alpha.astype(data.dtype), count)
                ci = list(dst.colorinterp)
                ci[-1] = rasterio.enums.ColorInterp.alpha
                dst.colorinterp = ci
            if mask is not None:
                dst.write_mask(np.where(mask, 255, 0).astype("uint8"))
    return str(path)


def smooth_field(h: int, w: int, bands: int = 3, seed: int = 0, dtype="uint8") -> np.ndarray:
    """A deterministic textured image with values spread over the dtype's range."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for b in range(bands):
        f = (np.sin(x / (7.0 + b)) + np.cos(y / (5.0 + 2 * b)) + 0.5 * rng.standard_normal((h, w)))
        f = (f - f.min()) / (f.max() - f.min() + 1e-9)
        out.append(f)
    arr = np.stack(out)
    if dtype == "uint8":
        return (arr * 254 + 1).astype("uint8")
    if dtype == "uint16":
        return (arr * 4000 + 100).astype("uint16")
    return (arr * 0.8 + 0.1).astype(dtype)
