"""Spectral indices as extra evidence for the encoder stem and the detail refinement [ours].

Classes such as water or vegetation are defined by band ratios: NDWI = (green - NIR) / (green + NIR),
NDVI = (NIR - red) / (NIR + red). A convolution over normalised bands can only approximate a
ratio, and a small target gives it few pixels to learn one from. With ``spectral_indices`` (pairs
``(a, b)`` of 0-based input bands) the model computes each normalised difference
``(x_a - x_b) / (x_a + x_b)`` from its own input, undoing the normalisation with the model's
``mean``/``std``, so the engine and the datasets feed the same bands as before and a checkpoint
carries everything inference needs.

The indices enter twice, both through convolutions whose output starts at zero, so a model grown
from a checkpoint without them (``model.init`` plus ``model.overrides.spectral_indices``) starts
exactly at that checkpoint's predictions:

* :class:`IndexStem` adds a correction to the vision stem's output (area-averaged to its grid);
* the detail refinement (``decoder.fine_stride`` 2 or 1) reads them beside the bands.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.errors import ConfigError


def check_index_pairs(pairs, in_chans: int) -> tuple[tuple[int, int], ...]:
    """``pairs`` as a tuple of (a, b) band positions, or a one-line :class:`ConfigError`."""
    out = []
    for pair in pairs:
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in pair)):
            raise ConfigError(f"spectral_indices: each index is a pair [a, b] of band positions, not {pair!r}")
        a, b = pair
        if not (0 <= a < in_chans and 0 <= b < in_chans) or a == b:
            raise ConfigError(f"spectral_indices: [{a}, {b}] needs two different bands among 0..{in_chans - 1} "
                              f"(vision.in_chans={in_chans})")
        out.append((a, b))
    return tuple(out)


class NormalizedDifferences(nn.Module):
    """(B, C, H, W) normalised bands -> (B, k, H, W) normalised differences in [-1, 1].

    A pixel whose two bands sum to (about) zero, such as nodata or padding at zero reflectance,
    gets 0 rather than a division blow-up."""

    def __init__(self, pairs, mean, std, eps: float = 1e-6):
        super().__init__()
        pairs = check_index_pairs(pairs, len(mean))
        self.register_buffer("a", torch.tensor([p[0] for p in pairs], dtype=torch.long), persistent=False)
        self.register_buffer("b", torch.tensor([p[1] for p in pairs], dtype=torch.long), persistent=False)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.eps = eps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raw = images.float() * self.std + self.mean
        xa, xb = raw.index_select(1, self.a), raw.index_select(1, self.b)
        total = xa + xb
        ok = total.abs() > self.eps
        nd = torch.where(ok, (xa - xb) / torch.where(ok, total, torch.ones_like(total)), torch.zeros_like(total))
        return nd.clamp(-1.0, 1.0).to(images.dtype)


class IndexStem(nn.Module):
    """The indices, area-averaged to the stem's grid, through a 3x3 conv whose output starts at zero:
    a correction added to the vision stem's output."""

    def __init__(self, count: int, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(count, channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, indices: torch.Tensor, size) -> torch.Tensor:
        if tuple(indices.shape[-2:]) != tuple(size):
            indices = F.interpolate(indices, size=tuple(size), mode="area")
        return self.conv(indices)
