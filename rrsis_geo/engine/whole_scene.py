"""Whole-scene mode: the scene resampled to the model's input, one model call, probabilities
resampled back to full resolution.

For scenes of about one tile, where expressions such as "the lake in the north-west corner" refer
to the whole scene (the frame the model must see). Tiled mode is the default for anything larger.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from rrsis_geo.engine.accumulate import PROB_NODATA
from rrsis_geo.engine.raster import SceneInfo, TileReader
from rrsis_geo.errors import InputError, ModelError

# A scene may be at most this many times the model's input size on each side.
MAX_FACTOR = 4


def check_whole_scene(info: SceneInfo, input_size: int) -> None:
    limit = MAX_FACTOR * input_size
    if max(info.width, info.height) > limit:
        raise InputError(
            f"--whole-scene is for scenes of about one tile (at most {limit} pixels a side for this "
            f"model); this one is {info.width} x {info.height}: drop --whole-scene to tile it"
        )


def resize_to(prob: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize with pixel-centre alignment (what a model's own resize uses)."""
    sh, sw = prob.shape
    rows = (np.arange(height) + 0.5) * sh / height - 0.5
    cols = (np.arange(width) + 0.5) * sw / width - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(prob, [rr, cc], order=1, mode="nearest").astype(np.float32)


def predict_whole_scene(info: SceneInfo, reader: TileReader, predictor, encoded, size: int) -> np.ndarray:
    """Probabilities at full resolution, ``PROB_NODATA`` where the scene is invalid."""
    img = reader.read_resampled(size)
    valid = reader.valid_rows(0, info.height)
    small_valid = resize_to(valid.astype(np.float32), size, size) > 0.5
    out = resize_to(_predict_resampled(predictor, img, small_valid, encoded), info.height, info.width)
    out[~valid] = PROB_NODATA
    return out


def glance_scene(reader: TileReader, predictor, encoded, size: int) -> np.ndarray:
    """The scene (or the AOI inside it) resampled to ``size x size``, one model call: the glance
    pass of a scene-level run. Returns the probabilities on that coarse grid, 0 where invalid."""
    valid = reader.valid_resampled(size)
    out = _predict_resampled(predictor, reader.read_resampled(size), valid, encoded)
    out[~valid] = 0.0
    return out


def _predict_resampled(predictor, img: np.ndarray, valid: np.ndarray, encoded) -> np.ndarray:
    """One model call on a resampled scene ``img`` (bands, size, size), its invalid pixels zeroed:
    the probabilities (size, size), a new array."""
    img[:, ~valid] = 0.0
    size = img.shape[-1]
    prob = np.asarray(predictor.predict(img[None], encoded), dtype=np.float32)
    if prob.shape != (1, size, size):
        raise ModelError(f"model returned probabilities of shape {prob.shape}, expected {(1, size, size)}")
    return prob[0].copy()
