"""D-MOLS: dual-modal object learning, the Joint Reconstruction head (training only).

BTDNet (arXiv 2502.08486) [paper]: the object noun phrase is masked (NLTK), a transformer-decoder
"Joint Reconstruction" module reconstructs the masked object from both modalities, and a
reconstruction loss with stop-gradient targets trains it; it is switched off at inference.

Details [ours]: queries are the masked-expression features (BERT, no vision); they attend to the
fused text stream with the object positions hidden (no copying), then to the MCI visual tokens;
a projection reconstructs the fused text features at the masked positions. Loss: mean over the
masked positions of 1 - cosine(reconstruction, stop-grad(fused text)).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.models.btdnet.config import DMOLSConfig
from rrsis_geo.models.btdnet.mci import CrossAttentionLayer


class JointReconstruction(nn.Module):
    def __init__(self, masked_dim: int, text_dim: int, vis_dim: int, cfg: DMOLSConfig):
        super().__init__()
        d = vis_dim
        self.query = nn.Linear(masked_dim, d)
        self.text_kv = nn.Linear(text_dim, d)
        self.text_layers = nn.ModuleList(CrossAttentionLayer(d, cfg.heads, 4.0, 0.0) for _ in range(cfg.layers))
        self.vis_layers = nn.ModuleList(CrossAttentionLayer(d, cfg.heads, 4.0, 0.0) for _ in range(cfg.layers))
        self.head = nn.Linear(d, text_dim)

    def forward(self, masked_text: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                object_mask: torch.Tensor, vis_tokens: torch.Tensor) -> torch.Tensor:
        """Returns the reconstruction loss (a scalar; 0 with a graph when nothing is masked)."""
        q = self.query(masked_text)
        kv = self.text_kv(text)
        hide = (~text_mask.bool()) | object_mask.bool()
        hide = hide & ~hide.all(1, keepdim=True)  # a sample with nothing visible keeps its tokens
        for t_layer, v_layer in zip(self.text_layers, self.vis_layers):
            q = t_layer(q, kv, hide)
            q = v_layer(q, vis_tokens)
        rec = self.head(q)
        target = text.detach()
        cos = F.cosine_similarity(rec, target, dim=-1)  # B, T
        m = object_mask.to(cos.dtype)
        return ((1.0 - cos) * m).sum() / m.sum().clamp_min(1.0)
