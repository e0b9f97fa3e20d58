"""BTDNet's training loss.

BTDNet (arXiv 2502.08486) [paper]: ``L_mask = L_ce(final) + 0.6 * L_fgbg`` and
``L = L_mask + 0.1 * L_rec``, the segmentation terms generalized cross entropy (Zhang & Sabuncu
2018), ``(1 - p_y^q) / q`` per pixel (``ce_type="gce"``, the paper's reproduction configs) or plain
CE (``"ce"``). The parents' class weights [0.9, 1.1] and optional 0.1 Dice term are options
[parent]. Every weight is a :class:`~rrsis_geo.models.btdnet.config.LossConfig` value.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.models.btdnet.config import LossConfig


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice on the foreground probability, averaged over the batch."""
    p = logits.float().softmax(1)[:, 1].flatten(1)
    t = target.float().flatten(1)
    inter = (p * t).sum(1)
    return (1 - (2 * inter + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def generalized_ce(logits: torch.Tensor, target: torch.Tensor, q: float, weight: torch.Tensor | None) -> torch.Tensor:
    """GCE (Zhang & Sabuncu 2018): (1 - p_y^q) / q, optionally class-weighted (weighted mean)."""
    p_y = logits.float().softmax(1).gather(1, target[:, None]).squeeze(1).clamp_min(1e-7)
    loss = (1 - p_y ** q) / q
    if weight is None:
        return loss.mean()
    w = weight[target]
    return (loss * w).sum() / w.sum()


class BTDNetLoss(nn.Module):
    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.cfg = cfg
        cw = torch.tensor(cfg.class_weights, dtype=torch.float32) if cfg.class_weights else None
        self.register_buffer("class_weights", cw, persistent=False)
        if cfg.ce_type not in ("ce", "gce"):
            from rrsis_geo.errors import ConfigError

            raise ConfigError(f"loss.ce_type must be 'ce' or 'gce', got {cfg.ce_type!r}")

    def seg(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.cfg.ce_type == "gce":
            return generalized_ce(logits, target, self.cfg.gce_q, self.class_weights)
        return F.cross_entropy(logits.float(), target, weight=self.class_weights)

    def forward(self, logits: torch.Tensor, fgbg_logits: torch.Tensor | None, target: torch.Tensor,
                rec: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """logits/fgbg_logits (B, 2, H, W) at the target's size; target (B, H, W) in {0, 1}.
        ``fgbg_logits`` None: the final logits are the twin stream's (the paper's Fg-Bg), one term."""
        target = target.long()
        c = self.cfg
        losses = {"ce": self.seg(logits, target)}
        total = c.ce_weight * losses["ce"]
        if fgbg_logits is not None:
            losses["fgbg"] = self.seg(fgbg_logits, target)
            total = total + c.fgbg_weight * losses["fgbg"]
        if c.dice_weight:
            losses["dice"] = dice_loss(logits, target)
            total = total + c.dice_weight * losses["dice"]
        if rec is not None:
            losses["rec"] = rec
            total = total + c.rec_weight * rec
        return total, losses
