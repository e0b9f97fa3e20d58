"""MCI: Multi-scale Context Integration.

BTDNet (arXiv 2502.08486) [paper]: multi-scale attention among the image tokens and
cross-attention vision->language then language->vision, repeated n times. Every stage map is
projected to ``dim`` with a 1x1 conv, flattened and concatenated into one token sequence (plus a
learned per-scale embedding, and with ``position="fourier"`` a learned projection of Fourier
features of each token's normalised (x, y) position in the frame) [ours]; the sequence is split
back into the four maps afterwards. Nothing depends on the input size. One iteration::

    vis = MSA(vis, pool(vis))    image tokens attend to the tokens of all scales     [paper]
                                 (keys pooled to <= kv_pool^2 per scale; the scales
                                 taking part: attn_levels)                           [ours]
    txt = XA(txt, vis)           the words gather visual context (+FFN)              [paper]
    vis = XA(vis, txt)           the image tokens read the updated words (+FFN)      [paper]

``variant="legacy"`` (checkpoints saved before the paper variant) has no MSA step.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.errors import ConfigError
from rrsis_geo.models.btdnet.config import MCIConfig

POSITION_KINDS = ("none", "fourier")


def fourier_positions(h: int, w: int, freqs: int, device=None, dtype=None) -> torch.Tensor:
    """(h*w, 4*freqs) sin/cos features of cell centres normalised to (0, 1) on each axis, row-major.

    Normalised coordinates make the features depend on where a cell lies in the frame, not on the
    input size: cell (0, 0) of a 8 x 8 map and of a 16 x 16 map share the corner's features.
    """
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    bands = math.pi * (2.0 ** torch.arange(freqs, device=device, dtype=torch.float32))
    ang = torch.cat([xx.reshape(-1, 1) * bands, yy.reshape(-1, 1) * bands], 1)
    return torch.cat([ang.sin(), ang.cos()], 1).to(dtype or torch.float32)


class CrossAttentionLayer(nn.Module):
    """Post-norm cross-attention + FFN (queries attend to a context sequence)."""

    def __init__(self, dim: int, heads: int, ffn_ratio: float, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        hidden = int(dim * ffn_ratio)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, q: torch.Tensor, ctx: torch.Tensor, ctx_pad: torch.Tensor | None = None) -> torch.Tensor:
        q = self.norm1(q + self.attn(q, ctx, ctx, key_padding_mask=ctx_pad, need_weights=False)[0])
        return self.norm2(q + self.ffn(q))


class MCI(nn.Module):
    """Projects the stage maps and the fused text to ``dim`` and runs ``iters`` rounds of
    text->vision and vision->text cross-attention over all scales at once."""

    def __init__(self, v_dims: list[int], l_dim: int, cfg: MCIConfig):
        super().__init__()
        d = cfg.dim
        self.proj = nn.ModuleList(nn.Sequential(nn.Conv2d(c, d, 1), nn.GroupNorm(32 if d % 32 == 0 else 1, d))
                                  for c in v_dims)
        self.scale_embed = nn.Parameter(torch.zeros(len(v_dims), d))
        nn.init.trunc_normal_(self.scale_embed, std=0.02)
        if cfg.position not in POSITION_KINDS:
            raise ConfigError(f"mci.position must be one of {', '.join(POSITION_KINDS)}, not {cfg.position!r}")
        self.freqs = cfg.position_freqs
        self.pos_proj = nn.Linear(4 * cfg.position_freqs, d) if cfg.position == "fourier" else None
        self.text_proj = nn.Sequential(nn.Linear(l_dim, d), nn.LayerNorm(d))
        self.text_layers = nn.ModuleList(CrossAttentionLayer(d, cfg.heads, cfg.ffn_ratio, cfg.dropout)
                                         for _ in range(cfg.iters))
        self.vis_layers = nn.ModuleList(CrossAttentionLayer(d, cfg.heads, cfg.ffn_ratio, cfg.dropout)
                                        for _ in range(cfg.iters))
        self.kv_pool = cfg.kv_pool
        levels = range(len(v_dims)) if cfg.attn_levels is None else cfg.attn_levels
        self.attn_levels = tuple(sorted(set(levels)))
        if cfg.variant == "paper" and (not self.attn_levels or not set(self.attn_levels) <= set(range(len(v_dims)))):
            raise ConfigError(f"mci.attn_levels must name levels among 0..{len(v_dims) - 1}, got {tuple(cfg.attn_levels)}")
        # multi-scale attention among the image tokens [paper]; absent in the legacy variant
        self.self_layers = (nn.ModuleList(CrossAttentionLayer(d, cfg.heads, cfg.ffn_ratio, cfg.dropout)
                                          for _ in range(cfg.iters)) if cfg.variant == "paper" else None)

    def pooled_scales(self, levels: list[torch.Tensor], shapes: list) -> torch.Tensor:
        """The keys of the multi-scale attention: each level's tokens (B, h*w, dim) average-pooled
        to at most ``kv_pool`` x ``kv_pool`` cells, concatenated (B, N', dim) [ours]."""
        out = []
        for x, (h, w) in zip(levels, shapes):
            x = x.transpose(1, 2).reshape(x.shape[0], -1, h, w)
            if h > self.kv_pool or w > self.kv_pool:
                x = F.adaptive_avg_pool2d(x, (min(h, self.kv_pool), min(w, self.kv_pool)))
            out.append(x.flatten(2).transpose(1, 2))
        return torch.cat(out, 1)

    def multiscale_attention(self, layer: nn.Module, vis: torch.Tensor, shapes: list) -> torch.Tensor:
        """The tokens of ``attn_levels`` attend to those levels' pooled tokens; the other
        levels' tokens pass through."""
        bounds = [0]
        for h, w in shapes:
            bounds.append(bounds[-1] + h * w)
        levels = [vis[:, bounds[i]:bounds[i + 1]] for i in range(len(shapes))]
        chosen = [levels[i] for i in self.attn_levels]
        out = layer(torch.cat(chosen, 1), self.pooled_scales(chosen, [shapes[i] for i in self.attn_levels]))
        start = 0
        for i in self.attn_levels:
            n = levels[i].shape[1]
            levels[i], start = out[:, start:start + n], start + n
        return torch.cat(levels, 1)

    def forward(self, feats: list[torch.Tensor], l: torch.Tensor, mask: torch.Tensor):
        """Returns (maps: list of (B, dim, Hi, Wi), visual tokens (B, N, dim), text (B, T, dim))."""
        shapes, tokens = [], []
        for i, (f, proj) in enumerate(zip(feats, self.proj)):
            x = proj(f)
            shapes.append(x.shape[-2:])
            t = x.flatten(2).transpose(1, 2) + self.scale_embed[i]
            if self.pos_proj is not None:
                t = t + self.pos_proj(fourier_positions(*x.shape[-2:], self.freqs, x.device, x.dtype))
            tokens.append(t)
        vis = torch.cat(tokens, 1)
        txt = self.text_proj(l)
        pad = ~mask.bool()
        for i, (t_layer, v_layer) in enumerate(zip(self.text_layers, self.vis_layers)):
            if self.self_layers is not None:
                vis = self.multiscale_attention(self.self_layers[i], vis, shapes)  # [paper]
            txt = t_layer(txt, vis)  # language queries gather visual context [paper]
            vis = v_layer(vis, txt, pad)  # visual tokens read the updated language [paper]
        maps, start = [], 0
        for h, w in shapes:
            n = h * w
            maps.append(vis[:, start:start + n].transpose(1, 2).reshape(vis.shape[0], -1, h, w))
            start += n
        return maps, vis, txt
