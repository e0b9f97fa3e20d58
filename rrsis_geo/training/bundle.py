"""What the trainer needs from a model, in one value.

The trainer is written against :class:`ModelBundle`, not against BTDNet, so it can be tested
with a tiny stand-in and so BTDNet's own API (``rrsis_geo.models``) is touched in one place:
:func:`build_bundle`.

Model call convention (BTDNet's): ``model(images, text_batch, targets=None)`` returns an object
(or dict) with ``logits`` (B, 2, H, W) = [bg, fg] and, when targets are given in training
mode, ``loss`` and ``losses`` (name -> tensor). A pixel is foreground iff fg > bg.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from rrsis_geo.predictor import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class ModelBundle:
    model: nn.Module
    text_processor: Callable[[list[str]], dict[str, torch.Tensor]]
    param_groups: Callable[..., list[dict]]  # (model, encoder_lr=, head_lr=, weight_decay=) -> groups
    save: Callable[..., None]  # (model, path, **meta) -> None, a self-describing .safetensors
    name: str = "model"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    info: dict[str, Any] = field(default_factory=dict)


def output_field(out, name: str, default=None):
    if isinstance(out, dict):
        return out.get(name, default)
    return getattr(out, name, default)


def foreground(logits: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) [bg, fg] logits -> (B, H, W) bool, fg > bg [paper]."""
    return logits[:, 1] > logits[:, 0]


def _models_api():
    try:
        import rrsis_geo.models as models
    except ImportError as exc:  # pragma: no cover - the package ships the models
        raise RuntimeError(f"rrsis_geo.models is not importable: {exc}") from None
    for name in ("create_model", "save_checkpoint", "load_checkpoint"):
        if not hasattr(models, name):
            raise RuntimeError(f"rrsis_geo.models has no {name}(): the model package is not integrated yet")
    return models


def build_bundle(name: str, overrides: dict | None = None, init: str | Path | None = None) -> ModelBundle:
    """A BTDNet preset (optionally starting from a checkpoint) wrapped for the trainer."""
    models = _models_api()
    overrides = dict(overrides or {})
    if init is not None:
        model, meta = _load(models, init)
        if overrides:
            from rrsis_geo.errors import ConfigError

            raise ConfigError("model.overrides cannot change a model loaded from model.init")
    else:
        model = models.create_model(name, **overrides)
    return wrap_btdnet(models, model, name)


def _load(models, path):
    loaded = models.load_checkpoint(path)
    if isinstance(loaded, tuple):
        return loaded[0], (loaded[1] if len(loaded) > 1 else {})
    return loaded, {}


def wrap_btdnet(models, model: nn.Module, name: str) -> ModelBundle:
    cfg = getattr(model, "cfg", None)
    text = models.TextProcessor.from_config(cfg.text) if hasattr(models.TextProcessor, "from_config") else models.TextProcessor()
    mean = tuple(getattr(cfg, "mean", IMAGENET_MEAN)) if cfg is not None else IMAGENET_MEAN
    std = tuple(getattr(cfg, "std", IMAGENET_STD)) if cfg is not None else IMAGENET_STD
    return ModelBundle(model=model, text_processor=text, param_groups=models.param_groups,
                       save=models.save_checkpoint, name=name, mean=mean, std=std,
                       info={"input_size": getattr(cfg, "input_size", None)})
