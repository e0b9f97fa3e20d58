"""The contract between the scene engine and any segmentation model.

The engine knows nothing about BTDNet: it reads tiles, normalises them with the numbers in
:class:`ModelInfo`, and calls a :class:`Predictor`. BTDNet implements this protocol in
``rrsis_geo.models``; tests implement it with small fake models.
"""

from __future__ import annotations

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
