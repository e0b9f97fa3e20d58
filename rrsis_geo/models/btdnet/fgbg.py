"""The target/background twin-stream predictor (Fg-Bg), the joint-prediction end of T-BTD.

BTDNet (arXiv 2502.08486) [paper]: a target stream driven by the expression and a background
stream with 5 learnable background tokens, adaptive pooling, and a prior from the expression with
its object noun phrase masked (the "context without the target"); the mask is predicted jointly
from the two streams: a pixel is target iff its target score beats the background score.

``variant="paper"`` (:class:`TwinStreamPredictor`, new models)::

    fg = Lin(masked-mean of the MCI-refined words) + MLP(adaptive-pool(P))        [paper: target
                                                                                    from the refined text; form ours]
    C  = [Lin(adaptive-pool_s(masked text)) for s in bg_pool_sizes]               [paper: adaptive pooling of
                                                                                    the masked text; sizes ours]
    bg_k = LN(t_k + Attn(t_k, C)), t_1..t_5 learnable                              [paper: 5 tokens; attention ours]
    logits = [reduce_k cos(P, bg_k) / tau, cos(P, fg) / tau]                        [ours: cosine, reduce]

``bg_prior=False`` (the ablation) drops C: bg_k = LN(t_k). The model's final logits are
these (no other head) [paper: joint prediction from the twin stream].

``variant="legacy"`` (:class:`FgBgPredictor`, checkpoints saved before): fg from the BSC-fused
text, bg = tokens + Lin(one-scale pooled masked text), logsumexp over the background scores, and
the model adds a conv head's logits to these.
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
        self.bg_text = nn.Linear(masked_dim, d) if cfg.bg_prior else None
        log_scale = torch.tensor(math.log(1.0 / cfg.tau))
        if cfg.learn_tau:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def prototypes(self, p: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
                   masked_text: torch.Tensor, masked_mask: torch.Tensor):
        pooled = F.adaptive_avg_pool2d(p, self.pool).flatten(1)
        fg = self.fg_text(masked_mean(text, mask)) + self.fg_pixel(pooled)  # B, d
        bg = self.bg_tokens[None].expand(p.shape[0], -1, -1)  # B, K, d
        if self.bg_text is not None:
            bg_ctx = adaptive_token_pool(masked_text, masked_mask, self.cfg.n_bg_tokens)  # B, K, Cm
            bg = bg + self.bg_text(bg_ctx)
        return fg, bg

    def forward(self, p: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
                masked_text: torch.Tensor, masked_mask: torch.Tensor) -> torch.Tensor:
        fg, bg = self.prototypes(p, text, mask, masked_text, masked_mask)
        return cosine_logits(p, fg, bg, self.log_scale, "logsumexp")


BG_REDUCE = {
    "max": lambda s: s.amax(1),
    "logsumexp": lambda s: torch.logsumexp(s, dim=1),
    "mean": lambda s: s.mean(1),
}


def cosine_logits(p: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, log_scale: torch.Tensor,
                  reduce: str) -> torch.Tensor:
    """[bg, fg] logits (B, 2, h, w): scaled cosines of the pixel embeddings P (B, C, h, w) to the
    target prototype fg (B, C) and to the background prototypes bg (B, K, C), the K background
    scores reduced to one by ``reduce`` (a :data:`BG_REDUCE` name)."""
    pn = F.normalize(p, dim=1)
    scale = log_scale.exp().clamp(max=100.0)
    fg_score = torch.einsum("bchw,bc->bhw", pn, F.normalize(fg, dim=-1)) * scale
    bg_scores = torch.einsum("bchw,bkc->bkhw", pn, F.normalize(bg, dim=-1)) * scale
    return torch.stack([BG_REDUCE[reduce](bg_scores), fg_score], 1)


class TwinStreamPredictor(FgBgPredictor):
    """The paper's Fg-Bg: P (B, d, h, w), MCI-refined words (B, T, dim), masked-text features ->
    logits (B, 2, h, w) = [bg, fg] (see the module docstring). Shares the legacy predictor's
    target stream [paper], background tokens [paper], masked-text projection and temperature."""

    def __init__(self, pix_dim: int, text_dim: int, masked_dim: int, cfg: FgBgConfig):
        from rrsis_geo.errors import ConfigError

        if cfg.bg_reduce not in BG_REDUCE:
            raise ConfigError(f"fgbg.bg_reduce must be one of {', '.join(BG_REDUCE)}, not {cfg.bg_reduce!r}")
        if not cfg.bg_pool_sizes or min(cfg.bg_pool_sizes) < 1:
            raise ConfigError(f"fgbg.bg_pool_sizes must be positive sizes, got {tuple(cfg.bg_pool_sizes)}")
        super().__init__(pix_dim, text_dim, masked_dim, cfg)
        d = pix_dim
        # the background tokens read the pooled masked text [paper: adaptive pooling; attention ours]
        self.bg_attn = nn.MultiheadAttention(d, 1, batch_first=True) if cfg.bg_prior else None
        self.bg_norm = nn.LayerNorm(d)

    def background_context(self, masked_text: torch.Tensor, masked_mask: torch.Tensor) -> torch.Tensor:
        """(B, N, d): the masked text adaptive-pooled over its valid tokens at every size of
        ``bg_pool_sizes`` [paper: adaptive pooling; sizes ours]."""
        return torch.cat([self.bg_text(adaptive_token_pool(masked_text, masked_mask, s))
                          for s in self.cfg.bg_pool_sizes], 1)

    def prototypes(self, p: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
                   masked_text: torch.Tensor | None, masked_mask: torch.Tensor | None):
        pooled = F.adaptive_avg_pool2d(p, self.pool).flatten(1)
        fg = self.fg_text(masked_mean(text, mask)) + self.fg_pixel(pooled)  # B, d
        tokens = self.bg_tokens[None].repeat(p.shape[0], 1, 1)  # a copy: a view of a leaf would keep requires_grad under no_grad
        if self.bg_attn is not None:  # the masked-text prior [paper]
            ctx = self.background_context(masked_text, masked_mask)
            tokens = tokens + self.bg_attn(tokens, ctx, ctx, need_weights=False)[0]
        bg = self.bg_norm(tokens)  # B, K, d
        return fg, bg

    def forward(self, p: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
                masked_text: torch.Tensor | None, masked_mask: torch.Tensor | None) -> torch.Tensor:
        fg, bg = self.prototypes(p, text, mask, masked_text, masked_mask)
        return cosine_logits(p, fg, bg, self.log_scale, self.cfg.bg_reduce)
