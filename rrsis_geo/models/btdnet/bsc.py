"""BSC: Bidirectional Spatial Correlation, the vision<->language exchange after each encoder stage.

BTDNet (arXiv 2502.08486), Sec. "Bidirectional Spatial Correlation" [paper]: language-to-vision
attention, spatial correlation computed by unfolding windows of several receptive fields whose
affinities are mixed with learnable weights, vision-to-language attention, and conv +
InstanceNorm gating. The paper's equations are not in our copy; the layout below follows the
figure and the LAVT/RMSIN PWAM convention [parent], the sizes are config values [ours].

Reading order (matching the figure, left to right)::

    A  = L2V(V, L)                      pixel-word attention, language-aware map        [parent]
    S  = SpatialCorrelation(A)          k x k window affinities, k in kernel_sizes      [paper]
    U  = V2L(L, V)                      each word attends to the visual map             [paper]
    V' = V + alpha_v * sigmoid(IN(conv1x1([V, S]))) * S                                 [ours]
    L' = L + alpha_l * sigmoid(LN(Linear([L, U]))) * U * mask                           [ours]

``alpha_v``/``alpha_l`` are scalars initialised at ``residual_init`` (0): at step 0 a BSC block is
an exact identity, so the fused encoders start as the pretrained ones [ours]. Padding tokens get
no update.
"""

from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.models.btdnet.config import BSCConfig


class LanguageToVision(nn.Module):
    """Pixel-word attention [parent: LAVT PWM/PWAM]: query IN(conv1x1(V)), key/value from the words
    (padding masked out, softmax over words); output IN(conv1x1(.)) * GELU(conv1x1(V))."""

    def __init__(self, v_dim: int, l_dim: int, key_dim: int):
        super().__init__()
        self.query = nn.Sequential(nn.Conv2d(v_dim, key_dim, 1), nn.InstanceNorm2d(key_dim))
        self.key = nn.Conv1d(l_dim, key_dim, 1)
        self.value = nn.Conv1d(l_dim, key_dim, 1)
        self.out = nn.Sequential(nn.Conv2d(key_dim, v_dim, 1), nn.InstanceNorm2d(v_dim))
        self.vis = nn.Sequential(nn.Conv2d(v_dim, v_dim, 1), nn.GELU())
        self.scale = key_dim ** -0.5

    def forward(self, v: torch.Tensor, l: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, _, h, w = v.shape
        q = self.query(v).flatten(2).transpose(1, 2)  # B, HW, K
        lt = l.transpose(1, 2)  # B, C, T
        k, val = self.key(lt), self.value(lt)  # B, K, T
        logits = torch.bmm(q, k) * self.scale  # B, HW, T
        logits = logits.masked_fill(~mask[:, None, :].bool(), torch.finfo(logits.dtype).min)
        ctx = torch.bmm(logits.softmax(-1), val.transpose(1, 2))  # B, HW, K
        ctx = ctx.transpose(1, 2).reshape(b, -1, h, w)
        return self.out(ctx) * self.vis(v)


class SpatialCorrelation(nn.Module):
    """Per-pixel affinity to its k x k neighbours, for each k, mixed by learnable softmax weights
    [paper: unfold windows, affinities weighted per receptive field by learnable weights].

    Size-agnostic (``F.unfold`` with ``k // 2`` zero padding; padded neighbours are masked out).
    """

    def __init__(self, dim: int, key_dim: int, kernel_sizes: tuple[int, ...]):
        super().__init__()
        if any(k % 2 == 0 or k < 1 for k in kernel_sizes):
            raise ValueError(f"BSC kernel sizes must be odd and positive, got {kernel_sizes}")
        self.kernel_sizes = tuple(kernel_sizes)
        self.qk = nn.Conv2d(dim, 2 * key_dim, 1)
        self.mix = nn.Parameter(torch.zeros(len(kernel_sizes)))  # softmax -> equal weights at init
        self.scale = key_dim ** -0.5

    def _window(self, a: torch.Tensor, q: torch.Tensor, kk: torch.Tensor, k: int) -> torch.Tensor:
        if k == 1:  # a single neighbour: affinity 1, the map itself
            return a
        b, c, h, w = a.shape
        pad = k // 2
        keys = F.unfold(kk, k, padding=pad).view(b, kk.shape[1], k * k, h * w)
        vals = F.unfold(a, k, padding=pad).view(b, c, k * k, h * w)
        valid = F.unfold(torch.ones(1, 1, h, w, device=a.device, dtype=a.dtype), k, padding=pad)
        aff = (q.flatten(2).unsqueeze(2) * keys).sum(1) * self.scale  # B, k*k, HW
        aff = aff.masked_fill(valid.view(1, k * k, h * w) == 0, torch.finfo(aff.dtype).min)
        aff = aff.softmax(1)
        return (vals * aff.unsqueeze(1)).sum(2).view(b, c, h, w)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        q, kk = self.qk(a).chunk(2, dim=1)
        weights = self.mix.softmax(0)
        out = 0
        for wgt, k in zip(weights, self.kernel_sizes):
            out = out + wgt * self._window(a, q, kk, k)
        return out


class VisionToLanguage(nn.Module):
    """Each word attends to every pixel of the visual map, giving a vision-aware text update
    [paper: bidirectional; details ours]."""

    def __init__(self, v_dim: int, l_dim: int, key_dim: int):
        super().__init__()
        self.query = nn.Linear(l_dim, key_dim)
        self.key = nn.Conv2d(v_dim, key_dim, 1)
        self.value = nn.Conv2d(v_dim, key_dim, 1)
        self.out = nn.Linear(key_dim, l_dim)
        self.scale = key_dim ** -0.5

    def forward(self, l: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = self.query(l)  # B, T, K
        k = self.key(v).flatten(2)  # B, K, HW
        val = self.value(v).flatten(2).transpose(1, 2)  # B, HW, K
        attn = (torch.bmm(q, k) * self.scale).softmax(-1)
        return self.out(torch.bmm(attn, val))


class BSCBlock(nn.Module):
    """One bidirectional exchange after an encoder stage; an exact identity at initialisation."""

    def __init__(self, v_dim: int, l_dim: int, cfg: BSCConfig, kernel_sizes: tuple[int, ...]):
        super().__init__()
        key_dim = min(cfg.key_dim, v_dim)
        self.l2v = LanguageToVision(v_dim, l_dim, key_dim)
        self.spatial = SpatialCorrelation(v_dim, max(key_dim // 4, 16), kernel_sizes)
        self.v2l = VisionToLanguage(v_dim, l_dim, key_dim)
        self.v_gate = nn.Sequential(nn.Conv2d(2 * v_dim, v_dim, 1), nn.InstanceNorm2d(v_dim))
        self.l_gate = nn.Sequential(nn.Linear(2 * l_dim, l_dim), nn.LayerNorm(l_dim))
        self.alpha_v = nn.Parameter(torch.full((1,), float(cfg.residual_init)))
        self.alpha_l = nn.Parameter(torch.full((1,), float(cfg.residual_init)))

    def forward(self, v: torch.Tensor, l: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.spatial(self.l2v(v, l, mask))
        u = self.v2l(l, v)
        gv = torch.sigmoid(self.v_gate(torch.cat([v, s], 1)))
        gl = torch.sigmoid(self.l_gate(torch.cat([l, u], -1)))
        v_out = v + self.alpha_v * (gv * s)
        l_out = l + self.alpha_l * (gl * u * mask[..., None].to(u.dtype))
        return v_out, l_out


def stage_kernel_sizes(cfg: BSCConfig, stage: int) -> tuple[int, ...]:
    """Kernel sizes for one stage: at stage 0 (1/4 resolution) only those <= stage0_max_kernel."""
    if stage == 0:
        ks = tuple(k for k in cfg.kernel_sizes if k <= cfg.stage0_max_kernel)
        return ks or (1,)
    return tuple(cfg.kernel_sizes)
