"""The default tile side: a tile covers the ground one training window covered.

A checkpoint may record the side of its training windows in pixels (``chip_px``, before the
model's resize to its input size) and the ground resolutions they had (``gsd_m_range``, or
``gsd_m`` alone). The model resizes every tile to its input size, so a tile of ``chip_px *
gsd / g`` scene pixels reaches the model at the training resolution for a scene of ``g`` metres
per pixel. The resampling is limited to ``MAX_RESAMPLE`` either way.
"""

from __future__ import annotations

from rrsis_geo.engine.geometry import MetricContext, pixel_box
from rrsis_geo.engine.raster import SceneInfo
from rrsis_geo.predictor import ModelInfo

# Largest factor by which a tile is made larger or smaller than a training window; a scene
# further than this from the training resolutions gets a warning that results will be poor.
MAX_RESAMPLE = 4.0
# Smallest default tile side in pixels.
MIN_TILE = 32


def scene_gsd_m(info: SceneInfo) -> float:
    """Ground resolution in metres per pixel at the scene's centre: the square root of the
    centre pixel's area (on the ellipsoid for a geographic CRS; rotated grids included)."""
    col, row = info.width // 2, info.height // 2
    pixel = pixel_box(info.transform, col, row, col + 1, row + 1)
    return MetricContext(info.crs, info.bounds).area_m2(pixel) ** 0.5


def training_resolution(minfo: ModelInfo) -> tuple[int, float, float] | None:
    """``(chip_px, gsd_min, gsd_max)`` from the model's metadata, or None when it lacks them."""
    chip = minfo.extra.get("chip_px")
    span = minfo.extra.get("gsd_m_range") or ([minfo.gsd_m] * 2 if minfo.gsd_m else None)
    if not chip or not span:
        return None
    return int(chip), float(span[0]), float(span[1])


def training_tile(info: SceneInfo, minfo: ModelInfo, tile: int | None) -> tuple[int, str | None]:
    """The tile side in scene pixels, and a one-line warning when the scene's ground resolution
    is more than ``MAX_RESAMPLE`` times off the model's training resolutions (else None).

    A given ``tile`` (``--tile``) is returned as is. Otherwise: ``chip_px`` for a scene within the
    training range; for a finer or coarser one, ``chip_px`` scaled by the nearest end of the range
    over the scene's resolution (the factor limited to ``MAX_RESAMPLE``, the side at least
    ``MIN_TILE``). A model without ``chip_px`` and a training resolution gets ``tile`` or its
    input size.
    """
    trained = training_resolution(minfo)
    if trained is None:
        return tile or minfo.input_size, None
    chip, gmin, gmax = trained
    g = scene_gsd_m(info)
    target = min(max(g, gmin), gmax)  # the training resolution nearest to the scene's
    factor = target / g
    warning = None
    if not 1 / MAX_RESAMPLE <= factor <= MAX_RESAMPLE:
        span = f"{gmin:g} m" if gmin == gmax else f"{gmin:g}-{gmax:g} m"
        how = "finer" if factor > 1 else "coarser"
        warning = (f"the scene's ground resolution ({g:.3g} m) is {max(factor, 1 / factor):.1f}x {how} than the "
                   f"model's training data ({span}), more than the {MAX_RESAMPLE:g}x the tiles are resampled by: "
                   f"results will be poor; resample the scene to about {target:g} m per pixel first")
    if tile:
        return tile, warning
    factor = min(max(factor, 1 / MAX_RESAMPLE), MAX_RESAMPLE)
    return max(MIN_TILE, round(chip * factor)), warning
