"""Top-down decoder: the MCI maps (1/32 .. 1/4) fused coarse-to-fine into pixel embeddings at 1/4.

BTDNet (arXiv 2502.08486) decodes top-down to the pixel level [paper]; the FPN form with 3x3
conv + GroupNorm + ReLU after each merge follows the parents' decoders [parent]; widths [ours].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.models.btdnet.config import DecoderConfig


def conv_gn_relu(cin: int, cout: int) -> nn.Sequential:
    groups = 32 if cout % 32 == 0 else 1
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout), nn.ReLU(inplace=True))


class TopDownDecoder(nn.Module):
    """P = FPN(maps): upsample the coarser result, add the lateral map, refine; output (B, dim, H/4, W/4)."""

    def __init__(self, in_dim: int, num_levels: int, cfg: DecoderConfig):
        super().__init__()
        d = cfg.dim
        self.lateral = nn.ModuleList(nn.Conv2d(in_dim, d, 1) for _ in range(num_levels))
        self.refine = nn.ModuleList(conv_gn_relu(d, d) for _ in range(num_levels))
        self.out = nn.Conv2d(d, d, 1)

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        x = None
        for i in reversed(range(len(maps))):
            lat = self.lateral[i](maps[i])
            if x is not None:
                lat = lat + F.interpolate(x, size=lat.shape[-2:], mode="bilinear", align_corners=False)
            x = self.refine[i](lat)
        return self.out(x)
