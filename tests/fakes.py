"""Test doubles for the model interface. They test the ENGINE's logic (tiling, blending,
masks, vectorising, outputs), not any learned model; BTDNet has its own tests.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from rrsis_geo.predictor import ModelInfo


class PointwiseModel:
    """p = sigmoid(gain * (band0 - band1 + bias)): translation-equivariant, no receptive field."""

    def __init__(self, input_size: int = 64, gain: float = 3.0, bias: float = 0.0, bands: int = 3):
        self.info = ModelInfo(model_id="fake-pointwise", checksum="fake", input_size=input_size,
                              bands=bands, mean=(0.5,) * bands, std=(0.25,) * bands)
        self.gain, self.bias = gain, bias
        self.calls: list[np.ndarray] = []
        self.expressions: list[str] = []

    def encode_expression(self, expression: str):
        self.expressions.append(expression)
        return {"expression": expression}

    def predict(self, tiles: np.ndarray, encoded) -> np.ndarray:
        assert tiles.dtype == np.float32 and tiles.ndim == 4
        self.calls.append(tiles.copy())
        z = self.gain * (tiles[:, 0] - tiles[:, 1] + self.bias)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


class BoxFilterModel(PointwiseModel):
    """Pointwise model followed by a (2r+1)^2 mean filter with edge-replicate padding: its
    output near a tile edge differs from the untiled result, exactly what blending must hide."""

    def __init__(self, radius: int = 2, **kw):
        super().__init__(**kw)
        self.radius = radius

    def predict(self, tiles, encoded):
        p = super().predict(tiles, encoded)
        k = 2 * self.radius + 1
        return ndimage.uniform_filter(p, size=(1, k, k), mode="nearest").astype(np.float32)


class ThresholdModel(PointwiseModel):
    """p = 0.9 where band 0 (in [0,1] units) is above ``level``, else 0.1."""

    def __init__(self, level: float = 0.5, **kw):
        super().__init__(**kw)
        self.level = level

    def predict(self, tiles, encoded):
        self.calls.append(tiles.copy())
        raw = tiles[:, 0] * self.info.std[0] + self.info.mean[0]
        return np.where(raw > self.level, 0.9, 0.1).astype(np.float32)


class ConstantModel(PointwiseModel):
    def __init__(self, value: float = 1.0, **kw):
        super().__init__(**kw)
        self.value = value

    def predict(self, tiles, encoded):
        self.calls.append(tiles.copy())
        return np.full(tiles[:, 0].shape, self.value, dtype=np.float32)


class IdentityModel(PointwiseModel):
    """Returns band 0 in [0, 1] units: shows exactly how the engine normalised the pixels."""

    def predict(self, tiles, encoded):
        self.calls.append(tiles.copy())
        return (tiles[:, 0] * self.info.std[0] + self.info.mean[0]).astype(np.float32)


class FailingModel(PointwiseModel):
    """Raises after ``after`` successful calls (a crash mid-run)."""

    def __init__(self, after: int, exc=RuntimeError, **kw):
        super().__init__(**kw)
        self.after, self.exc = after, exc

    def predict(self, tiles, encoded):
        if len(self.calls) >= self.after:
            raise self.exc("boom")
        return super().predict(tiles, encoded)


class CategoryModel(PointwiseModel):
    """A referring model whose category maps are known: p = 0.9 where the band its phrase names
    is above ``level`` (``bands_by_word``: "lake" -> band 0, "river" -> band 1), else 0.05.
    Its vocabulary (lake, river; "all the lakes" / "all the rivers") is in its metadata, as a
    trained checkpoint's is. It records every phrase it is asked."""

    def __init__(self, level: float = 0.5, bands_by_word=None, **kw):
        super().__init__(**kw)
        self.level = level
        self.bands_by_word = bands_by_word or {"lake": 0, "river": 1}
        vocab = {"categories": {w: {"nouns": [w, "pond"] if w == "lake" else [w], "prompt": f"all the {w}s"}
                                for w in self.bands_by_word}}
        self.info = ModelInfo(model_id="fake-category", checksum="fake", input_size=self.info.input_size,
                              bands=self.info.bands, mean=self.info.mean, std=self.info.std,
                              extra={"vocabulary": vocab})
        self.phrases: list[tuple[str, int]] = []  # (phrase, tiles asked)

    def predict(self, tiles, encoded):
        self.calls.append(tiles.copy())
        phrase = encoded["expression"]
        self.phrases.append((phrase, len(tiles)))
        band = next((b for w, b in self.bands_by_word.items() if w in phrase), None)
        if band is None:
            return np.full(tiles[:, 0].shape, 0.05, dtype=np.float32)
        raw = tiles[:, band] * self.info.std[band] + self.info.mean[band]
        return np.where(raw > self.level, 0.9, 0.05).astype(np.float32)


def category_model(model: str, device: str = "auto") -> CategoryModel:
    """A loader (``loader(model, device=...)``) that ``rrsis batch``'s worker processes import by
    name (``"tests.fakes:category_model"``), where a monkeypatch cannot reach."""
    return CategoryModel(input_size=64)


class DyingCategoryModel(CategoryModel):
    """A :class:`CategoryModel` whose process kills itself (SIGKILL: a lost worker) on its
    ``die_at``-th predict call while the file ``trigger`` exists; it removes the file first, so
    exactly one process dies, mid-scene (after a pause that lets the engine save the rows it has)."""

    def __init__(self, trigger: str, die_at: int = 8, **kw):
        super().__init__(**kw)
        self.trigger, self.die_at = trigger, die_at

    def predict(self, tiles, encoded):
        import os
        import signal
        import time

        if len(self.calls) + 1 >= self.die_at and os.path.exists(self.trigger):
            os.remove(self.trigger)
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGKILL)
        return super().predict(tiles, encoded)


def dying_category_model(model: str, device: str = "auto") -> DyingCategoryModel:
    """The loader of :class:`DyingCategoryModel`; ``model`` is the trigger file's path."""
    return DyingCategoryModel(model, input_size=64)
