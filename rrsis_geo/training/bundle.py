"""What the trainer needs from a model, in one value.

The trainer is written against :class:`ModelBundle`, not against one architecture, so it can be
tested with a tiny stand-in and so the model registry (``rrsis_geo.models``) is touched in one
place: :func:`build_bundle`.

Model call convention (every registered architecture's): ``model(images, text_batch, targets=None)`` returns an object
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


def foreground(logits: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    """(B, 2, H, W) [bg, fg] logits -> (B, H, W) bool: fg > bg [paper] (softmax fg > 0.5), or
    softmax fg > ``threshold`` (what ``rrsis segment --threshold`` decides)."""
    if threshold is None:
        return logits[:, 1] > logits[:, 0]
    return logits.float().softmax(1)[:, 1] > threshold


def build_bundle(name: str, overrides: dict | None = None, init: str | Path | None = None, *, seed: int = 0,
                 input_size: int | None = None) -> ModelBundle:
    """A preset of any architecture (or a starting checkpoint, ``init``) wrapped for the trainer.

    ``overrides`` go to ``create_model`` (``{"mci": {"iters": 1}}``, ``{"vision__weights": PATH}``);
    ``input_size`` is recorded in the model config so its checkpoints describe the training size.
    """
    import rrsis_geo.models as models
    from rrsis_geo.errors import ConfigError
    from rrsis_geo.models.registry import architecture_of

    overrides = dict(overrides or {})
    if input_size is not None:
        overrides.setdefault("input_size", int(input_size))
    if init is not None:
        if not Path(init).expanduser().exists():
            raise ConfigError(f"model.init: {init} does not exist (make it with `rrsis init-weights ... -o {init}`)")
        model, meta = models.load_checkpoint(Path(init).expanduser())
        extra = {k: v for k, v in overrides.items() if k != "input_size"}
        if extra:
            # an `rrsis init-weights` file holds pretrained encoders and untrained heads: overrides
            # may rebuild its heads (mci.iters, the variants), never its encoders
            keep = architecture_of(model).encoder_prefixes if meta.get("init") else None
            model = grow_model(model, extra, seed=seed, source=init, keep=keep)
        if input_size is not None:
            model.cfg.input_size = int(input_size)
        model.cfg.threshold = 0.5  # a calibrated threshold belongs to the weights it was chosen for
    else:
        try:
            model = models.create_model(name, seed=seed, **overrides)
        except TypeError as exc:
            raise ConfigError(f"model.overrides: {exc}") from None
    model.train()
    return wrap_model(model, name)


def grow_model(model: nn.Module, overrides: dict, *, seed: int = 0, source="model.init",
               keep: tuple[str, ...] | None = None) -> nn.Module:
    """``model`` rebuilt with config ``overrides`` and its weights carried over: the way to add a
    module to a trained model (``decoder.fine_stride: 2`` adds the detail refinement). Every tensor
    of ``model`` (with ``keep``, every tensor whose name starts with one of those prefixes) must
    keep its name and shape in the new one; the others carry over where name and shape still
    match; tensors only the new model has start from their initialisation (seeded). Anything else
    is a :class:`ConfigError`."""
    from rrsis_geo.errors import ConfigError
    from rrsis_geo.models.registry import architecture_of, build_model

    try:
        cfg = architecture_of(model).apply_overrides(model.cfg, overrides)
        grown = build_model(cfg, pretrained=False, seed=seed)
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f"model.overrides on {source}: {exc}") from None
    old, new = model.state_dict(), grown.state_dict()
    if keep is not None:
        kept = {k: v for k, v in old.items() if k.startswith(tuple(keep))}
        old = dict(kept, **{k: v for k, v in old.items() if k in new and v.shape == new[k].shape})
    lost = sorted(set(old) - set(new))
    reshaped = sorted(k for k in set(old) & set(new) if old[k].shape != new[k].shape)
    if lost or reshaped:
        what = ", ".join((lost or reshaped)[:3]) + (" ..." if len(lost or reshaped) > 3 else "")
        raise ConfigError(f"model.overrides ({', '.join(overrides)}) would {'drop' if lost else 'reshape'} "
                          f"trained weights of {source} ({what}): only overrides that add modules or change "
                          "no weights can apply to model.init")
    grown.load_state_dict(old, strict=False)
    grown.provenance = dict(getattr(model, "provenance", {}), grown_with=sorted(overrides),
                            new_tensors=len(set(new) - set(old)))
    return grown


def wrap_model(model: nn.Module, name: str) -> ModelBundle:
    """A model of any registered architecture, wrapped for the trainer."""
    import rrsis_geo.models as models

    cfg = model.cfg
    return ModelBundle(model=model, text_processor=models.text_processor(cfg),
                       param_groups=models.param_groups, save=models.save_checkpoint, name=name,
                       mean=tuple(cfg.mean), std=tuple(cfg.std), info={"input_size": cfg.input_size})
