"""The target/background twin-stream predictor (Fg-Bg), the joint-prediction end of T-BTD.

BTDNet (arXiv 2502.08486) [paper]: a foreground stream driven by the fused expression and a
background stream with 5 learnable background tokens, adaptive pooling, and a prior from the
expression with its object noun phrase masked (the "context without the target"). Details [ours]:

* fg prototype  = Linear(masked-mean of the fused text tokens) + MLP(adaptive-pool(P))
* bg prototypes = learnable tokens_k + Linear(adaptive-pool over the valid masked-text tokens)_k,
  k = 1..n_bg_tokens (the text is pooled to one slot per background token)
* scores        = cosine(P, prototype) / tau; background scores aggregated by logsumexp
* logits        = [bg, fg] per pixel; pixel is target iff fg > bg [paper]
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.models.btdnet.config import FgBgConfig


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T, C) over the tokens where mask (B, T) is 1."""
    m = mask.to(x.dtype)[..., None]
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def adaptive_token_pool(x: torch.Tensor, mask: torch.Tensor, bins: int) -> torch.Tensor:
    """``adaptive_avg_pool1d`` over each sample's *valid* tokens only: (B, T, C) -> (B, bins, C).

    Bin i of a sample with n valid tokens averages tokens [floor(i n / bins), ceil((i+1) n / bins)),
    so every bin is non-empty whenever n >= 1, exactly as torch's adaptive pooling.
    """
    b, t, _ = x.shape
    n = mask.sum(1).clamp_min(1).to(x.dtype)  # B
    i = torch.arange(bins, device=x.device, dtype=x.dtype)
    start = torch.floor(i[None] * n[:, None] / bins)  # B, bins
    end = torch.ceil((i[None] + 1) * n[:, None] / bins)
    pos = torch.arange(t, device=x.device, dtype=x.dtype)
    w = ((pos[None, None] >= start[..., None]) & (pos[None, None] < end[..., None])).to(x.dtype)  # B, bins, T
    w = w / w.sum(-1, keepdim=True).clamp_min(1.0)
    return torch.bmm(w, x)


class FgBgPredictor(nn.Module):
    """Pixel embeddings P + fused text + masked-text features -> logits (B, 2, h, w) = [bg, fg]."""

    def __init__(self, pix_dim: int, text_dim: int, masked_dim: int, cfg: FgBgConfig):
        super().__init__()
        d = pix_dim
        self.cfg = cfg
        self.pool = cfg.fg_pixel_pool
        self.fg_text = nn.Linear(text_dim, d)
        self.fg_pixel = nn.Sequential(nn.Linear(d * self.pool ** 2, d), nn.GELU(), nn.Linear(d, d))
        self.bg_tokens = nn.Parameter(torch.zeros(cfg.n_bg_tokens, d))
        nn.init.trunc_normal_(self.bg_tokens, std=0.02)
        self.bg_text = nn.Linear(masked_dim, d)
        log_scale = torch.tensor(math.log(1.0 / cfg.tau))
        if cfg.learn_tau:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def prototypes(self, p: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
                   masked_text: torch.Tensor, masked_mask: torch.Tensor):
        pooled = F.adaptive_avg_pool2d(p, self.pool).flatten(1)
        fg = self.fg_text(masked_mean(text, mask)) + self.fg_pixel(pooled)  # B, d
        bg_ctx = adaptive_token_pool(masked_text, masked_mask, self.cfg.n_bg_tokens)  # B, K, Cm
        bg = self.bg_tokens[None] + self.bg_text(bg_ctx)  # B, K, d
        return fg, bg

    def forward(self, p: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
                masked_text: torch.Tensor, masked_mask: torch.Tensor) -> torch.Tensor:
        fg, bg = self.prototypes(p, text, mask, masked_text, masked_mask)
        pn = F.normalize(p, dim=1)
        scale = self.log_scale.exp().clamp(max=100.0)
        fg_score = torch.einsum("bchw,bc->bhw", pn, F.normalize(fg, dim=-1)) * scale
        bg_scores = torch.einsum("bchw,bkc->bkhw", pn, F.normalize(bg, dim=-1)) * scale
        bg_score = torch.logsumexp(bg_scores, dim=1)  # soft max over the background tokens
        return torch.stack([bg_score, fg_score], 1)
