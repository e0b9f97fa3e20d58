"""BTDNet's two encoders, exposed stage by stage so BSC blocks can sit between stages.

BTDNet (arXiv 2502.08486) interleaves a Swin-B vision encoder and a BERT text encoder: BERT's 12
layers form 4 stages of 3, one per Swin stage, and a BSC block exchanges information after each
pair [paper]. The schedule (see :class:`rrsis_geo.models.btdnet.model.BTDNet`)::

    L = text.embed(ids);  V = vision.stem(img)
    for i in 0..3:
        L = text.run_stage(i, L, mask);  V = vision.run_stage(i, V)
        V, L = bsc[i](V, L, mask);       feats[i] = V

Vision maps travel between stages as NCHW. ``vision.run_stage(i)`` includes the downsampling that
timm places at the *start* of stage i > 0 (Microsoft's Swin puts it at the end of stage i-1: the
same computation, see :func:`rrsis_geo.models.btdnet.pretrained.swin_checkpoint_filter`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from rrsis_geo.models.btdnet.config import TextConfig, VisionConfig


class SwinStages(nn.Module):
    """timm's SwinTransformer without its final norm and head, run one stage at a time [paper].

    Maps whose side is not a multiple of the window are zero-padded inside each block (as in the
    parents' Swin); timm pads after the cyclic shift where Microsoft's segmentation code pads
    before it, which only matters at map borders that are not window multiples.
    """

    def __init__(self, cfg: VisionConfig, img_size: int):
        super().__init__()
        from timm.models.swin_transformer import SwinTransformer

        swin = SwinTransformer(
            img_size=img_size, patch_size=4, in_chans=cfg.in_chans, num_classes=0,
            embed_dim=cfg.embed_dim, depths=tuple(cfg.depths), num_heads=tuple(cfg.num_heads),
            window_size=cfg.window_size, drop_path_rate=cfg.drop_path_rate,
            strict_img_size=False,  # any input size; attention masks are built per forward
            # keep the configured window (padding small maps) instead of shrinking it to the map:
            # the parents' segmentation Swin does this, and the parameter shapes (relative-position
            # tables) then do not depend on the input size [parent]
            always_partition=True,
        )
        self.patch_embed = swin.patch_embed
        self.layers = swin.layers  # same key names as timm: patch_embed.*, layers.{i}.*
        self.channels = [cfg.embed_dim * 2 ** i for i in range(len(cfg.depths))]
        self.stem_channels = cfg.embed_dim
        self.strides = [4 * 2 ** i for i in range(len(cfg.depths))]

    @property
    def num_stages(self) -> int:
        return len(self.layers)

    def stem(self, img: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(img).permute(0, 3, 1, 2)  # NHWC -> NCHW

    def run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        x = self.layers[i](x.permute(0, 2, 3, 1))  # downsample (i > 0) + blocks, NHWC
        return x.permute(0, 3, 1, 2).contiguous()


class EfficientNetStages(nn.Module):
    """timm ``efficientnet_lite0`` cut into 4 stages at strides 4/8/16/32 (the lite preset) [ours].

    Stage boundaries come from timm's ``feature_info``; the classifier tail (``conv_head``, ``bn2``,
    ``classifier``) is dropped.
    """

    def __init__(self, cfg: VisionConfig, img_size: int):
        super().__init__()
        import timm

        net = timm.create_model(cfg.timm_name, pretrained=False, in_chans=cfg.in_chans,
                                drop_path_rate=cfg.drop_path_rate)
        self.conv_stem, self.bn1 = net.conv_stem, net.bn1
        self.stem_channels = net.conv_stem.out_channels
        self.blocks = net.blocks
        infos = [f for f in net.feature_info if f["reduction"] >= 4][:4]
        ends = [int(f["module"].split(".")[1]) + 1 for f in infos]
        starts = [0] + ends[:-1]
        self.stage_ranges = list(zip(starts, ends))
        self.channels = [f["num_chs"] for f in infos]
        self.strides = [f["reduction"] for f in infos]

    @property
    def num_stages(self) -> int:
        return len(self.stage_ranges)

    def stem(self, img: torch.Tensor) -> torch.Tensor:
        return self.bn1(self.conv_stem(img))  # timm's BatchNormAct2d includes the activation

    def run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        a, b = self.stage_ranges[i]
        for j in range(a, b):
            x = self.blocks[j](x)
        return x


def build_vision(cfg: VisionConfig, img_size: int) -> nn.Module:
    if cfg.kind == "swin":
        return SwinStages(cfg, img_size)
    if cfg.kind == "efficientnet":
        return EfficientNetStages(cfg, img_size)
    from rrsis_geo.errors import ConfigError

    raise ConfigError(f"unknown vision.kind {cfg.kind!r}: use 'swin' or 'efficientnet'")


class BertStages(nn.Module):
    """A transformers ``BertModel`` (no pooler) whose layers are grouped into stages [paper]."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        from transformers import BertConfig, BertModel

        if sum(cfg.stage_layers) != cfg.num_layers:
            from rrsis_geo.errors import ConfigError

            raise ConfigError(f"text.stage_layers {cfg.stage_layers} must sum to text.num_layers={cfg.num_layers}")
        self.bert_config = BertConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
            max_position_embeddings=cfg.max_position_embeddings, hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout, pad_token_id=0,
        )
        self.bert_config._attn_implementation = "sdpa"
        self.bert = BertModel(self.bert_config, add_pooling_layer=False)
        bounds = [0]
        for n in cfg.stage_layers:
            bounds.append(bounds[-1] + n)
        self.stage_bounds = list(zip(bounds[:-1], bounds[1:]))
        self.hidden_size = cfg.hidden_size

    @property
    def num_stages(self) -> int:
        return len(self.stage_bounds)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.bert.embeddings(input_ids=ids)

    @staticmethod
    def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, T) 1/0 -> (B, 1, 1, T) additive mask (0 keep, dtype-min drop)."""
        m = mask[:, None, None, :].to(dtype)
        return (1.0 - m) * torch.finfo(dtype).min

    def run_stage(self, i: int, h: torch.Tensor, add_mask: torch.Tensor) -> torch.Tensor:
        a, b = self.stage_bounds[i]
        for layer in self.bert.encoder.layer[a:b]:
            out = layer(h, attention_mask=add_mask)
            h = out[0] if isinstance(out, tuple) else out  # transformers 4.x returns a tuple
        return h

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Plain BERT (no vision interaction): used for the masked-text prior [paper]."""
        h = self.embed(ids)
        add = self.additive_mask(mask, h.dtype)
        for i in range(self.num_stages):
            h = self.run_stage(i, h, add)
        return h
