"""BSC: Bidirectional Spatial Correlation, the vision<->language exchange after each encoder stage.

BTDNet (arXiv 2502.08486), Sec. III-C2 and Fig. 4. Two variants (``BSCConfig.variant``):

``"paper"`` (:class:`BSCBlock`, new models), as the paper's text describes it::

    for k in kernel_sizes (1, 3, 5):                                                   [paper]
        V_k = mean of the k x k window around every pixel of Wv V        [paper: unfold; the mean ours]
        L_k = mean of the k-token window around every word of Wl L       [paper: unfold; the mean ours]
              (valid words only)
    A_dir = sum_k softmax(w_dir)_k  V_k L_k^T / sqrt(d)     learnable per-field weights [paper]
    U_v = Conv(softmax_words(A_l2v) Vl(L))                  language-to-vision          [paper]
    U_l = Lin(softmax_pixels(A_v2l^T) Vv(V))                vision-to-language          [paper]
    V'  = V + sigmoid(IN(Conv1x1([V, U_v])) + b_v) * U_v    conv + IN gating            [paper]
    L'  = L + sigmoid(LN(Lin([L, U_l])) + b_l) * U_l * mask                              [ours: LN for text]

``b_v``/``b_l`` are learnable gate biases starting at ``gate_bias`` (-2): the exchange starts at
12 % strength, close to the pretrained encoders, and every weight gets gradient at step 0 (a zero
residual scalar would block all of them) [ours]. ``l2v_stages``/``v2l_stages`` switch each
direction per stage (the ablations); a stage with neither is :class:`NoExchange`.

``"legacy"`` (:class:`LegacyBSCBlock`, checkpoints saved before the paper variant): LAVT-style
global pixel-word attention [parent], a k x k self-attention inside the image map, word-to-pixel
attention, gated updates added through zero-init residual scalars.
"""

from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.errors import ConfigError
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


class LegacyBSCBlock(nn.Module):
    """The legacy exchange after an encoder stage; an exact identity at initialisation."""

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
    """Window sizes for one stage. Legacy: at stage 0 (1/4 resolution) only those <=
    ``stage0_max_kernel``; paper: all of them at every stage (window means cost little)."""
    if stage == 0 and cfg.variant == "legacy":
        ks = tuple(k for k in cfg.kernel_sizes if k <= cfg.stage0_max_kernel)
        return ks or (1,)
    return tuple(cfg.kernel_sizes)


# -- the paper's BSC --------------------------------------------------------------------------

def window_mean_2d(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the k x k window around every cell of (B, C, H, W), over the cells inside the map."""
    if k == 1:
        return x
    return F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)


def window_mean_1d(x: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the k-token window around every token of (B, T, C) over the valid tokens (mask 1)."""
    if k == 1:
        return x
    m = mask.to(x.dtype)[:, None, :]  # B, 1, T
    ones = x.new_ones(x.shape[-1], 1, k)
    total = F.conv1d(x.transpose(1, 2) * m, ones, padding=k // 2, groups=x.shape[-1])
    count = F.conv1d(m, x.new_ones(1, 1, k), padding=k // 2)
    return (total / count.clamp_min(1.0)).transpose(1, 2)


def check_kernel_sizes(kernel_sizes: tuple[int, ...]) -> None:
    if not kernel_sizes or any(k % 2 == 0 or k < 1 for k in kernel_sizes):
        raise ConfigError(f"bsc.kernel_sizes must be odd and positive, got {tuple(kernel_sizes)}")


class LocalAffinity(nn.Module):
    """Pixel-word affinity from local contexts: sum_k w_k <mean_k(Wv V)_p, mean_k(Wl L)_t> / sqrt(d),
    one set of softmax weights w per direction that uses it [paper]."""

    def __init__(self, v_dim: int, l_dim: int, key_dim: int, kernel_sizes: tuple[int, ...], directions: tuple[str, ...]):
        super().__init__()
        check_kernel_sizes(kernel_sizes)
        self.kernel_sizes = tuple(kernel_sizes)
        self.v_key = nn.Conv2d(v_dim, key_dim, 1)  # [ours: 1x1 projections before the windows]
        self.l_key = nn.Linear(l_dim, key_dim)
        # learnable weights of the receptive fields [paper]; zeros = equal at init [ours]
        self.field_weights = nn.ParameterDict({d: nn.Parameter(torch.zeros(len(kernel_sizes))) for d in directions})
        self.scale = key_dim ** -0.5

    def forward(self, v: torch.Tensor, l: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """{direction: (B, HW, T) affinity}."""
        kv, kl = self.v_key(v), self.l_key(l)
        per_k = [torch.bmm(window_mean_2d(kv, k).flatten(2).transpose(1, 2),  # B, HW, d [paper: unfold pixels; mean ours]
                           window_mean_1d(kl, mask, k).transpose(1, 2))  # B, d, T [paper: unfold words; mean ours]
                 for k in self.kernel_sizes]
        out = {}
        for d, w in self.field_weights.items():
            mix = w.softmax(0)
            out[d] = sum(m * a for m, a in zip(mix, per_k)) * self.scale  # [paper: weighted fields]
        return out


class BSCBlock(nn.Module):
    """The paper's BSC after one encoder stage: local-context affinities in both directions, each
    update gated by conv + InstanceNorm (see the module docstring)."""

    def __init__(self, v_dim: int, l_dim: int, cfg: BSCConfig, kernel_sizes: tuple[int, ...],
                 l2v: bool = True, v2l: bool = True):
        super().__init__()
        key_dim = min(cfg.key_dim, v_dim)
        self.l2v, self.v2l = l2v, v2l
        self.affinity = LocalAffinity(v_dim, l_dim, key_dim, kernel_sizes,
                                      tuple(d for d, on in (("l2v", l2v), ("v2l", v2l)) if on))
        if l2v:  # language -> vision [paper]
            self.l_value = nn.Linear(l_dim, key_dim)
            self.v_out = nn.Conv2d(key_dim, v_dim, 1)
            self.v_gate = nn.Sequential(nn.Conv2d(2 * v_dim, v_dim, 1), nn.InstanceNorm2d(v_dim))  # [paper]
            self.v_gate_bias = nn.Parameter(torch.full((1,), float(cfg.gate_bias)))  # [ours]
        if v2l:  # vision -> language [paper]
            self.v_value = nn.Conv2d(v_dim, key_dim, 1)
            self.l_out = nn.Linear(key_dim, l_dim)
            self.l_gate = nn.Sequential(nn.Linear(2 * l_dim, l_dim), nn.LayerNorm(l_dim))  # [ours: LN over tokens]
            self.l_gate_bias = nn.Parameter(torch.full((1,), float(cfg.gate_bias)))  # [ours]

    def updates(self, v: torch.Tensor, l: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The ungated updates (U_v (B, Cv, H, W) or None, U_l (B, T, Cl) or None)."""
        b, _, h, w = v.shape
        aff = self.affinity(v, l, mask)
        valid = mask.bool()
        u_v = u_l = None
        if self.l2v:  # each pixel reads the words, softmax over the valid words [paper]
            a = aff["l2v"]
            a = a.masked_fill(~valid[:, None, :], torch.finfo(a.dtype).min).softmax(-1)
            ctx = torch.bmm(a, self.l_value(l))  # B, HW, d
            u_v = self.v_out(ctx.transpose(1, 2).reshape(b, -1, h, w))
        if self.v2l:  # each word reads the pixels, softmax over the pixels [paper]
            a = aff["v2l"].transpose(1, 2).softmax(-1)  # B, T, HW
            u_l = self.l_out(torch.bmm(a, self.v_value(v).flatten(2).transpose(1, 2)))
        return u_v, u_l

    def forward(self, v: torch.Tensor, l: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u_v, u_l = self.updates(v, l, mask)  # both from the stage's inputs [ours]
        if u_v is not None:
            g = torch.sigmoid(self.v_gate(torch.cat([v, u_v], 1)) + self.v_gate_bias)  # [paper: conv + IN gate]
            v = v + g * u_v  # [ours: gated residual]
        if u_l is not None:
            g = torch.sigmoid(self.l_gate(torch.cat([l, u_l], -1)) + self.l_gate_bias)
            l = l + g * u_l * mask[..., None].to(u_l.dtype)  # padding tokens stay as they are [ours]
        return v, l


class NoExchange(nn.Module):
    """A stage whose BSC is switched off in both directions (an ablation): the identity."""

    def forward(self, v: torch.Tensor, l: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return v, l


def build_bsc(v_dim: int, l_dim: int, cfg: BSCConfig, stage: int, num_stages: int) -> nn.Module:
    """The exchange after stage ``stage`` for the configured variant and switches."""
    for key in ("l2v_stages", "v2l_stages"):
        bad = [s for s in getattr(cfg, key) if not 0 <= s < num_stages]
        if bad:
            raise ConfigError(f"bsc.{key} has stage(s) {bad}: the model has stages 0..{num_stages - 1}")
    ks = stage_kernel_sizes(cfg, stage)
    if cfg.variant == "legacy":
        every = tuple(range(num_stages))
        if tuple(cfg.l2v_stages) != every or tuple(cfg.v2l_stages) != every:
            raise ConfigError("bsc.l2v_stages / bsc.v2l_stages switch the paper variant only (bsc.variant: paper)")
        return LegacyBSCBlock(v_dim, l_dim, cfg, ks)
    l2v, v2l = stage in cfg.l2v_stages, stage in cfg.v2l_stages
    if not (l2v or v2l):
        return NoExchange()
    return BSCBlock(v_dim, l_dim, cfg, ks, l2v=l2v, v2l=v2l)
