"""The model registry, keyed by architecture: ``create_model(name, **overrides)`` in the timm style.

An architecture is one subpackage of ``rrsis_geo.models`` (``btdnet/``, ``rsrefseg/``) that
registers an :class:`Architecture` (its config class, builder, pretrained loaders, text
processor, parameter groups, summary parts) and its presets. Everything else (checkpoints, the
engine's predictor, the trainer, evaluation, export, ``rrsis model``) goes through this
interface and knows no architecture by name.

Model call convention, every architecture: ``model(images, text_batch, targets=None,
text_cache=None)`` returns an object with ``logits`` (B, 2, H, W) = [bg, fg] at the input size
(a pixel is foreground iff fg > bg) and, with targets, ``loss`` and ``losses``;
``model.encode_text(text_batch)`` does the expression-only work once (the ``text_cache``).
A model carries its config as ``model.cfg``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from rrsis_geo.errors import CheckpointError, ModelError
from rrsis_geo.models import config_tree


class Architecture:
    """What an architecture tells the shared machinery. Subclass it in the architecture's package
    and pass an instance to :func:`register_architecture`."""

    name: str = ""
    config_class: type = object
    summary: str = ""  # one line for `rrsis model list`
    components: tuple[str, ...] = ()  # top-level submodules whose parameters `rrsis model info` counts
    training_only: tuple[str, ...] = ()  # components unused at inference
    #: key prefixes of the pretrained encoders: the slow learning-rate group, and what overrides on an
    #: `rrsis init-weights` file may never rebuild
    encoder_prefixes: tuple[str, ...] = ()
    #: what `rrsis init-weights --source NAME=PATH` takes: NAME -> (config override, what PATH is)
    init_sources: dict[str, tuple[str, str]] = {}

    def build(self, cfg) -> nn.Module:
        """The model with random weights (the caller seeds the RNG)."""
        raise NotImplementedError

    def load_pretrained(self, model: nn.Module) -> dict:
        """Load every pretrained part the config names; returns provenance by part."""
        return {}

    def encoders(self, cfg) -> dict[str, str]:
        """Key prefix -> weights spec of the pretrained parts a compact checkpoint may store by
        reference (``"text."`` -> ``"package:..."``); :meth:`load_encoder` rebuilds one."""
        return {}

    def load_encoder(self, model: nn.Module, prefix: str) -> dict:
        raise CheckpointError(f"{prefix!r} is not an encoder whose config names pretrained weights")

    def settings(self, cfg) -> dict:
        """What the engine and the checkpoint header need: ``input_size``, ``bands``, ``mean``,
        ``std``, ``threshold``, ``gsd_m``, ``max_tokens``."""
        raise NotImplementedError

    def header_fields(self, cfg_dict: dict) -> dict:
        """Architecture fields of the checkpoint header (``tokenizer``: what reads the text)."""
        return {}

    def text_processor(self, cfg):
        """Callable ``(list of sentences) -> dict of (B, T) tensors``, with ``process_one(text)``
        (an item with ``.text`` and ``.truncated``) and ``collate(items)``; picklable."""
        raise NotImplementedError

    def param_groups(self, model: nn.Module, encoder_lr: float = 1e-5, head_lr: float = 1e-4,
                     weight_decay: float = 0.01) -> list[dict]:
        raise NotImplementedError

    def example_inputs(self, cfg, size: int, tokens: int, device) -> tuple[torch.Tensor, dict]:
        """One image and a text batch of ``tokens`` tokens, for the FLOPs count."""
        x = torch.zeros(1, self.settings(cfg)["bands"], size, size, device=device)
        ids = torch.zeros(1, tokens, dtype=torch.long, device=device)
        return x, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def describe(self, cfg) -> dict:
        """Architecture lines of `rrsis model info` (besides parameters and FLOPs)."""
        return {}

    def prepare_save(self, cfg_dict: dict) -> dict:
        """The config as a checkpoint stores it (e.g. with choices made on this machine resolved)."""
        return cfg_dict

    # config plumbing, the same for every dataclass-tree config
    def config_from_dict(self, d: dict):
        return config_tree.from_dict(self.config_class, d)

    def config_to_dict(self, cfg) -> dict:
        return config_tree.to_dict(cfg)

    def apply_overrides(self, cfg, overrides: dict):
        return config_tree.apply_overrides(cfg, overrides)


ARCHITECTURES: dict[str, Architecture] = {}
PRESETS: dict[str, tuple[str, Callable[[], Any]]] = {}  # preset -> (architecture, config factory)


def register_architecture(arch: Architecture) -> Architecture:
    ARCHITECTURES[arch.name] = arch
    return arch


def register_preset(name: str, architecture: str):
    def deco(fn):
        PRESETS[name] = (architecture, fn)
        return fn
    return deco


def get_architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ModelError(f"architecture {name!r} is not one this rrsis-geo knows ({', '.join(sorted(ARCHITECTURES))})")
    return ARCHITECTURES[name]


def config_of(model_or_cfg):
    """The config of a model (looking through DDP / ``torch.compile`` wrappers), or the config itself."""
    return unwrap_model(model_or_cfg).cfg if isinstance(model_or_cfg, nn.Module) else model_or_cfg


def architecture_of(model_or_cfg) -> Architecture:
    """The registered architecture of a model (or of its config)."""
    cfg = config_of(model_or_cfg)
    for arch in ARCHITECTURES.values():
        if isinstance(cfg, arch.config_class):
            return arch
    raise ModelError(f"no registered architecture has a config of type {type(cfg).__name__}")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel / DataParallel / ``torch.compile`` wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def adamw_groups(model: nn.Module, is_encoder: Callable[[str], bool], no_decay: Callable[[str, nn.Parameter], bool],
                 encoder_lr: float, head_lr: float, weight_decay: float) -> list[dict]:
    """AdamW parameter groups ``encoder``, ``encoder_no_decay``, ``head``, ``head_no_decay`` (empty
    ones omitted) of the trainable parameters, each with a ``name`` and its ``param_names``;
    wrappers (DDP, ``torch.compile``) are looked through. Architectures give the two predicates."""
    model = unwrap_model(model)
    groups: dict[str, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        enc, flat = is_encoder(name), no_decay(name, p)
        key = ("encoder" if enc else "head") + ("_no_decay" if flat else "")
        g = groups.setdefault(key, {"name": key, "params": [], "param_names": [], "lr": encoder_lr if enc else head_lr,
                                    "weight_decay": 0.0 if flat else weight_decay})
        g["params"].append(p)
        g["param_names"].append(name)
    return [groups[k] for k in ("encoder", "encoder_no_decay", "head", "head_no_decay") if k in groups]


def list_presets(architecture: str | None = None) -> list[str]:
    return sorted(n for n, (a, _) in PRESETS.items() if architecture in (None, a))


def preset_architecture(name: str) -> Architecture:
    if name not in PRESETS:
        raise ModelError(f"unknown model {name!r}: use one of {', '.join(list_presets())} or a checkpoint path")
    return ARCHITECTURES[PRESETS[name][0]]


def checkpoint_for(name_or_path: str) -> Path | None:
    """Where a model argument's weights are: a shipped model's file, ``None`` for a preset (built by
    :func:`create_model`), or an existing checkpoint path, looked up in that order; anything else is
    a :class:`ModelError` listing the choices."""
    from rrsis_geo.weights import SHIPPED, shipped_path

    if name_or_path in SHIPPED:
        return shipped_path(name_or_path)
    if name_or_path in PRESETS:
        return None
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ModelError(f"model {name_or_path!r} is neither a shipped model ({', '.join(SHIPPED)}), a preset "
                         f"({', '.join(list_presets())}) nor an existing checkpoint file")
    return path


def get_config(name: str, **overrides):
    """The config of preset ``name`` with ``overrides`` applied (see :func:`config_tree.apply_overrides`)."""
    arch = preset_architecture(name)
    return arch.apply_overrides(PRESETS[name][1](), overrides)


def preset_settings(name: str) -> dict:
    """A preset's engine settings (:meth:`Architecture.settings`) without building it."""
    cfg = get_config(name)
    return architecture_of(cfg).settings(cfg)


def build_model(cfg, pretrained: bool = True, seed: int | None = 0):
    """Build the model a config describes; ``pretrained`` loads the weights the config names.
    ``seed`` makes random initialisation reproducible (None: leave the global RNG alone)."""
    arch = architecture_of(cfg)
    if seed is None:
        model = arch.build(cfg)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = arch.build(cfg)
    model.provenance = {"preset": cfg.name, "init_seed": seed}
    if pretrained:
        model.provenance["pretrained"] = arch.load_pretrained(model)
    return model


def create_model(name: str, pretrained: bool = True, seed: int | None = 0, **overrides):
    """A preset of any architecture, optionally overridden (``max_tokens=50``, ``mci={"iters": 1}``,
    ``mci__iters=1``, ``vision__weights=PATH``). ``pretrained=False`` skips pretrained weights."""
    return build_model(get_config(name, **overrides), pretrained=pretrained, seed=seed)


def param_groups(model: nn.Module, encoder_lr: float = 1e-5, head_lr: float = 1e-4, weight_decay: float = 0.01) -> list[dict]:
    """The optimiser parameter groups of any registered model (its architecture's recipe)."""
    return architecture_of(model).param_groups(model, encoder_lr=encoder_lr, head_lr=head_lr, weight_decay=weight_decay)


def text_processor(model_or_cfg):
    """The picklable text processor of any registered model (or config)."""
    cfg = config_of(model_or_cfg)
    return architecture_of(cfg).text_processor(cfg)
