"""Detail refinement: final logits at a finer stride than the decoder's 1/4 [ours].

BTDNet decodes to pixel embeddings at 1/4 of the input [paper]; its logits are upsampled from
there. A target a few cells wide at 1/4 (a 10 m pond of 12 x 12 px at the input is 3 x 3 cells)
then comes back as a blurred blob. With ``decoder.fine_stride`` 2 (or 1) a small convolutional
branch reads the input image at that stride, is fused with the upsampled pixel embeddings and
logits, and adds a correction to the upsampled logits::

    detail = conv(image, stride s) ─┐
    P (1/4) ─ 1x1 ─ upsample ───────┼─ concat ─ conv ─ 1x1 (zero-init) ─► correction at 1/s
    logits (1/4) ─ upsample ────────┘

The model's logits are ``upsample(logits) + upsample(correction)`` at the input size. The output
convolution starts at zero, so a model grown from a stride-4 checkpoint (``model.init``
with ``model.overrides.decoder.fine_stride``) starts exactly at that checkpoint's predictions.
The branch reads the image, not an encoder stage, so it works with any vision encoder.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.models.btdnet.decoder import conv_gn_relu


class DetailRefiner(nn.Module):
    def __init__(self, in_chans: int, embed_dim: int, stride: int, dim: int = 32):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"fine stride {stride}: use 1 or 2 (4 means no refinement)")
        self.stride = stride
        self.detail = nn.Sequential(
            nn.Conv2d(in_chans, dim, 3, stride=stride, padding=1, bias=False),
            nn.GroupNorm(1 if dim % 8 else 8, dim), nn.ReLU(inplace=True), conv_gn_relu(dim, dim))
        self.embed = nn.Conv2d(embed_dim, dim, 1)
        self.fuse = conv_gn_relu(2 * dim + 2, dim)
        self.out = nn.Conv2d(dim, 2, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor, p: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """image (B, C, H, W), p (B, D, H/4, W/4), logits (B, 2, H/4, W/4) -> the correction to the
        logits, (B, 2, H/s, W/s)."""
        d = self.detail(image)
        size = d.shape[-2:]
        up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        e = F.interpolate(self.embed(p), size=size, mode="bilinear", align_corners=False)
        return self.out(self.fuse(torch.cat([d, e, up], 1)))
