"""BTDNet: the whole model, read top-down against the paper's overview figure.

"Referring Remote Sensing Image Segmentation via Bidirectional Alignment Guided Joint Prediction"
(BTDNet, arXiv 2502.08486). Pipeline [paper]::

    image ──► vision stage 0 ─► BSC ─► vision stage 1 ─► BSC ─► ... stage 3 ─► BSC ─┐ 4 maps
    text  ──► BERT stage 0  ─┘      ─► BERT stage 1  ─┘       ... stage 3  ─┘      │ fused text
                                                                                    ▼
                                       MCI (multi-scale V<->L cross-attention, n times)
                                                                                    ▼
                                       top-down decoder ─► pixel embeddings P (1/4)
    masked text ─► BERT (no vision) ─►  Fg-Bg twin-stream predictor ─► [bg, fg] = final logits
    (training) D-MOLS joint reconstruction of the masked object ─► L_rec

Each of BSC, MCI and Fg-Bg has two variants (``variant`` in its config section): ``"paper"``, the
module as the paper's text describes it (what the presets build), and ``"legacy"``, the earlier
reconstruction that checkpoints saved before the paper variants hold (their stored configs have
no ``variant`` key and are read as legacy). With the paper's Fg-Bg the final logits are the twin
stream's [paper], so ``L_ce(final)`` and ``L_fgbg`` name one output, counted once [ours]; with the
legacy Fg-Bg they are the sum of a conv segmentation head on P [parent: LAVT-style classifier] and
the Fg-Bg logits, and ``L_ce(final) + 0.6 L_fgbg`` [paper] supervises both. Inference: a pixel is
target iff fg > bg [paper].
With ``decoder.fine_stride`` 2 or 1, a detail branch on the input image adds a correction to the
final logits at that stride (``refine.py``) [ours]; the default 4 is the paper's head.

Inputs of any size are accepted: they are zero-padded (right/bottom) to a multiple of the
encoder's output stride and the logits are cropped back [ours].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.models.btdnet.bsc import build_bsc
from rrsis_geo.models.btdnet.config import VARIANTS, BTDNetConfig
from rrsis_geo.models.btdnet.decoder import TopDownDecoder
from rrsis_geo.models.btdnet.dmols import JointReconstruction
from rrsis_geo.models.btdnet.encoders import BertStages, build_vision
from rrsis_geo.models.btdnet.fgbg import FgBgPredictor, TwinStreamPredictor
from rrsis_geo.models.btdnet.indices import IndexStem, NormalizedDifferences
from rrsis_geo.models.btdnet.losses import BTDNetLoss
from rrsis_geo.models.btdnet.mci import MCI
from rrsis_geo.models.btdnet.refine import DetailRefiner
from rrsis_geo.models.registry import adamw_groups, unwrap_model  # noqa: F401 (unwrap_model re-exported)


@dataclass
class BTDNetOutput:
    """``logits``: final (B, 2, H, W) = [bg, fg] at the input size; ``fgbg_logits``: the
    twin-stream branch alone (the same values with the paper's Fg-Bg); ``loss``/``losses``: only when targets were given."""

    logits: torch.Tensor
    fgbg_logits: torch.Tensor
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class TextCache:
    """Expression-only work, reusable for every tile of a scene: the masked-text prior features."""

    masked_features: torch.Tensor  # (B or 1, T, text hidden)
    masked_attention_mask: torch.Tensor  # (B or 1, T)


class BTDNet(nn.Module):
    def __init__(self, cfg: BTDNetConfig):
        super().__init__()
        self.cfg = cfg
        from rrsis_geo.errors import ConfigError

        if not len(cfg.mean) == len(cfg.std) == cfg.vision.in_chans:
            raise ConfigError(f"mean/std have {len(cfg.mean)}/{len(cfg.std)} values but the model takes "
                              f"{cfg.vision.in_chans} bands (vision.in_chans)")
        for section in ("bsc", "mci", "fgbg"):
            if getattr(cfg, section).variant not in VARIANTS:
                raise ConfigError(f"{section}.variant must be one of {', '.join(VARIANTS)}, "
                                  f"not {getattr(cfg, section).variant!r}")
        if cfg.max_tokens > cfg.text.max_position_embeddings:
            raise ConfigError(f"max_tokens={cfg.max_tokens} exceeds the text encoder's "
                              f"{cfg.text.max_position_embeddings} positions")
        # encoders [paper]
        self.vision = build_vision(cfg.vision, cfg.input_size)
        # band ratios as extra evidence for the stem and the refinement [ours]; None: the paper's input
        n_idx = len(cfg.spectral_indices)
        self.indices = NormalizedDifferences(cfg.spectral_indices, cfg.mean, cfg.std) if n_idx else None
        self.index_stem = IndexStem(n_idx, self.vision.stem_channels) if n_idx else None
        self.text = BertStages(cfg.text)
        if self.vision.num_stages != self.text.num_stages:
            raise ConfigError(f"{self.vision.num_stages} vision stages but {self.text.num_stages} text stages")
        v_dims, l_dim = self.vision.channels, cfg.text.hidden_size
        # bidirectional alignment after every stage [paper]
        self.bsc = nn.ModuleList(build_bsc(c, l_dim, cfg.bsc, i, len(v_dims)) for i, c in enumerate(v_dims))
        # multi-scale context integration [paper]
        self.mci = MCI(v_dims, l_dim, cfg.mci)
        # target/background twin-stream decoding [paper]
        self.decoder = TopDownDecoder(cfg.mci.dim, len(v_dims), cfg.decoder)
        if cfg.fgbg.variant == "paper":  # the joint prediction is the twin stream's [paper]
            self.fgbg = TwinStreamPredictor(cfg.decoder.dim, cfg.mci.dim, l_dim, cfg.fgbg)
            self.seg_head = None
        else:
            self.fgbg = FgBgPredictor(cfg.decoder.dim, l_dim, l_dim, cfg.fgbg)
            self.seg_head = nn.Sequential(nn.Conv2d(cfg.decoder.dim, cfg.decoder.dim, 3, padding=1, bias=False),
                                      nn.GroupNorm(32 if cfg.decoder.dim % 32 == 0 else 1, cfg.decoder.dim),
                                          nn.ReLU(inplace=True), nn.Conv2d(cfg.decoder.dim, 2, 1))
        if cfg.decoder.fine_stride not in (1, 2, 4):
            raise ConfigError(f"decoder.fine_stride={cfg.decoder.fine_stride}: use 4 (the decoder's 1/4), 2 or 1")
        # finer logits than the decoder's 1/4 [ours]; None keeps the paper's head
        self.refine = (DetailRefiner(cfg.vision.in_chans + n_idx, cfg.decoder.dim, cfg.decoder.fine_stride, cfg.decoder.fine_dim)
                       if cfg.decoder.fine_stride < 4 else None)
        # dual-modal object learning, training only [paper]
        self.dmols = JointReconstruction(l_dim, l_dim, cfg.mci.dim, cfg.dmols) if cfg.dmols.enabled else None
        self.criterion = BTDNetLoss(cfg.loss)

    # -- pieces -------------------------------------------------------------------------------

    def encode_text(self, text: dict[str, torch.Tensor]) -> TextCache:
        """The masked-text prior: the expression with its object masked, through BERT without
        vision [paper]. Depends on the expression only, so inference computes it once."""
        ids = text.get("masked_input_ids", text["input_ids"])
        mask = text.get("masked_attention_mask", text["attention_mask"])
        return TextCache(self.text(ids, mask), mask)

    def encode(self, images: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, indices: torch.Tensor | None = None):
        """The interleaved encoders with BSC after each stage. Returns (4 maps NCHW, fused text).
        ``indices``: this model's spectral indices of ``images`` (computed here when None)."""
        l = self.text.embed(ids)
        add_mask = self.text.additive_mask(mask, l.dtype)
        v = self.vision.stem(images)
        if self.index_stem is not None:
            idx = indices if indices is not None else self.indices(images)
            v = v + self.index_stem(idx, v.shape[-2:])
        feats = []
        for i in range(self.vision.num_stages):
            l = self.text.run_stage(i, l, add_mask)
            v = self.vision.run_stage(i, v)
            v, l = self.bsc[i](v, l, mask)
            feats.append(v)
        return feats, l

    # -- forward ------------------------------------------------------------------------------

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor], targets: torch.Tensor | None = None,
                text_cache: TextCache | None = None) -> BTDNetOutput:
        """images (B, C, H, W) normalised; text: a :class:`TextProcessor` batch; targets (B, H, W)
        in {0, 1}. ``text_cache`` (from :meth:`encode_text`, batch 1 or B) skips the prior."""
        b, _, h, w = images.shape
        stride = self.vision.strides[-1]
        # Pad to a multiple of the deepest stride, and to at least 2 cells there: a 1 x 1 last
        # stage would break InstanceNorm in training. The logits are cropped back below.
        ph, pw = max((-h) % stride, 2 * stride - h), max((-w) % stride, 2 * stride - w)
        if ph or pw:
            images = F.pad(images, (0, pw, 0, ph))
        ids, mask = text["input_ids"], text["attention_mask"]
        if ids.shape[0] != b:
            raise ValueError(f"{b} images but {ids.shape[0]} expressions")

        idx = self.indices(images) if self.indices is not None else None
        feats, l = self.encode(images, ids, mask, idx)
        maps, vis_tokens, mci_text = self.mci(feats, l, mask)
        p = self.decoder(maps)
        cache = text_cache if text_cache is not None else self.encode_text(text)
        m_feat, m_mask = cache.masked_features, cache.masked_attention_mask
        if m_feat.shape[0] != b:
            m_feat, m_mask = m_feat.expand(b, -1, -1), m_mask.expand(b, -1)
        if self.seg_head is None:  # paper: the target prototype reads the MCI-refined words
            final = fgbg = self.fgbg(p, mci_text, mask, m_feat, m_mask)
        else:
            fgbg = self.fgbg(p, l, mask, m_feat, m_mask)
            final = self.seg_head(p) + fgbg
        size = images.shape[-2:]
        up = F.interpolate(final, size=size, mode="bilinear", align_corners=False)
        if self.refine is not None:
            fine = self.refine(images if idx is None else torch.cat([images, idx], 1), p, final)
            up = up + (fine if fine.shape[-2:] == size else F.interpolate(fine, size=size, mode="bilinear", align_corners=False))
        final = up[:, :, :h, :w]
        fgbg = F.interpolate(fgbg, size=size, mode="bilinear", align_corners=False)[:, :, :h, :w]
        out = BTDNetOutput(logits=final, fgbg_logits=fgbg)
        if targets is not None:
            rec = None
            if self.training and self.dmols is not None and "object_mask" in text:
                rec = self.dmols(m_feat, l, mask, text["object_mask"], vis_tokens)
            out.loss, out.losses = self.criterion(final, None if self.seg_head is None else fgbg, targets, rec)
        return out


# -- optimisation ---------------------------------------------------------------------------

ENCODER_PREFIXES = ("vision.", "text.")
NO_DECAY_NAMES = ("relative_position_bias_table", "position_embeddings", "scale_embed", "log_scale")


def param_groups(model: BTDNet, encoder_lr: float = 1e-5, head_lr: float = 1e-4,
                 weight_decay: float = 0.01) -> list[dict]:
    """AdamW parameter groups [paper: lr 1e-5 encoders, 1e-4 the rest; wd 0.01] with no weight
    decay on norms, biases, scalars and position tables [parent]. Each group has a ``name``
    (``encoder``, ``encoder_no_decay``, ``head``, ``head_no_decay``); empty groups are omitted.
    DDP / ``torch.compile`` wrappers are looked through (same parameter objects)."""
    return adamw_groups(model, lambda name: name.startswith(ENCODER_PREFIXES),
                        lambda name, p: p.ndim <= 1 or any(k in name for k in NO_DECAY_NAMES),
                        encoder_lr, head_lr, weight_decay)
