"""The contract between the scene engine and any segmentation model.

The engine knows no architecture: it reads tiles, normalises them with the numbers in
:class:`ModelInfo`, and calls a :class:`Predictor`. Every registered architecture (BTDNet,
RSRefSeg) implements this protocol through ``rrsis_geo.models.load_predictor``; tests implement it
with small fake models.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rrsis_geo.errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelInfo:
    """What the engine needs to know about a model to feed it correctly.

    ``mean``/``std`` apply to pixel values already scaled to [0, 1] (scene-wide, by the engine).
    ``input_size`` is the tile side the model was trained at; the engine uses it as its default
    tile size. ``gsd_m`` is the ground resolution of the training data in metres, if known.
    ``extra`` may describe the training pixels (see :func:`check_input_metadata`): ``radiometry``,
    ``gsd_m_range`` and ``chip_px``.
    ``checksum`` identifies the exact weights (sha256 of a checkpoint file, or a description of
    how a preset's weights were made, e.g. ``"random-init:seed=0"``).
    """

    model_id: str
    checksum: str
    input_size: int = 512
    bands: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    threshold: float = 0.5
    gsd_m: float | None = None
    max_tokens: int = 20
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("mean", "std"):
            n = len(getattr(self, name))
            if n not in (1, self.bands):
                raise ModelError(f"model {self.model_id} has {n} {name} values for {self.bands} bands")
        check_input_metadata({**self.extra, "gsd_m": self.gsd_m}, self.bands, f"model {self.model_id}")


def _numbers(value, what: str, owner: str) -> list[float]:
    """``value`` as a list of finite numbers, or a one-line :class:`ModelError`."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                             for v in values):
        raise ModelError(f"{owner}: {what} must be finite numbers, got {value!r}")
    return [float(v) for v in values]


def _check_radiometry(radiometry, bands: int, owner: str) -> None:
    if not isinstance(radiometry, dict) or not radiometry:
        raise ModelError(f"{owner}: radiometry must map data types to {{lo, hi}}, got {radiometry!r}")
    for dtype, entry in radiometry.items():
        try:
            kind = np.dtype(dtype).kind
        except TypeError:
            kind = None
        if kind not in ("u", "i", "f") or not isinstance(entry, dict):
            raise ModelError(f"{owner}: radiometry[{dtype!r}] must be a numeric data type with {{lo, hi}}")
        ends = {}
        for name in ("lo", "hi"):
            ends[name] = _numbers(entry.get(name), f"radiometry[{dtype!r}].{name}", owner)
            if len(ends[name]) not in (1, bands):
                raise ModelError(f"{owner}: radiometry[{dtype!r}].{name} has {len(ends[name])} values for "
                                 f"{bands} bands (give one per band, or one for all)")
        if not np.all(np.asarray(ends["lo"]) < np.asarray(ends["hi"])):
            raise ModelError(f"{owner}: radiometry[{dtype!r}] needs lo < hi in every band, "
                             f"got lo {ends['lo']}, hi {ends['hi']}")


def check_input_metadata(meta: dict, bands: int, owner: str) -> None:
    """Check the metadata that describes a model's training pixels, where present; raise a
    one-line :class:`ModelError` naming ``owner`` otherwise.

    * ``radiometry``: ``{dtype: {"lo": [...], "hi": [...], "note": "..."}}``, the linear map of
      raw values of that data type to [0, 1] that made the training pixels; ``lo``/``hi`` hold
      one finite value per band (or one for all) with ``lo < hi``.
    * ``gsd_m`` (metres per pixel) > 0; ``gsd_m_range`` ``[min, max]`` with ``0 < min <= max``,
      holding ``gsd_m``.
    * ``chip_px``: the side in pixels of the training windows before the model's resize, >= 1.
    """
    if meta.get("radiometry") is not None:
        _check_radiometry(meta["radiometry"], bands, owner)
    gsd = meta.get("gsd_m")
    if gsd is not None and _numbers(gsd, "gsd_m", owner)[0] <= 0:
        raise ModelError(f"{owner}: gsd_m must be > 0 metres, got {gsd!r}")
    span = meta.get("gsd_m_range")
    if span is not None:
        values = _numbers(span, "gsd_m_range", owner)
        if len(values) != 2 or not 0 < values[0] <= values[1]:
            raise ModelError(f"{owner}: gsd_m_range must be [min, max] metres with 0 < min <= max, got {span!r}")
        if gsd is not None and not values[0] <= gsd <= values[1]:
            raise ModelError(f"{owner}: gsd_m {gsd} lies outside gsd_m_range {span}")
    chip = meta.get("chip_px")
    if chip is not None and (isinstance(chip, bool) or not isinstance(chip, numbers.Integral) or chip < 1):
        raise ModelError(f"{owner}: chip_px must be a whole number of pixels >= 1, got {chip!r}")


@runtime_checkable
class Predictor(Protocol):
    """A model the engine can run.

    ``encode_expression`` does all expression-only work once (tokenising, text encodings) and
    returns an opaque object that ``predict`` accepts for every tile batch.

    ``predict`` takes ``tiles`` as float32 ``(B, bands, H, W)``, already normalised with
    ``info.mean``/``info.std``, and returns float32 ``(B, H, W)`` foreground probabilities in
    [0, 1] at the same H and W (a model with a fixed input size resizes internally).
    """

    info: ModelInfo

    def encode_expression(self, expression: str) -> Any: ...

    def predict(self, tiles: np.ndarray, expression: Any) -> np.ndarray: ...
